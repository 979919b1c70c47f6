"""The fine-tuning task registry: task name -> `Task`, one row per task (a dict, not an if/elif ladder).

    from electra.tasks import TASKS, get_task
    task = get_task("sst2")
    train = task.read(Path("../shared/data/glue/SST-2"), "train", cfg, stats)  # list of examples
    features, stats = task.encode(train, tokenizer, labels, cfg)          # token ids + targets per feature
    predictions = task.decode(dev, features, outputs, labels, cfg)        # one prediction per example
    scores = task.metric(dev, predictions)                                # {"acc": 91.3, ...} in points (0-100)

A `Task` is plain data plus six functions. The functions come from the module of its family
(`classification.py`: GLUE + generic CSV/TSV/JSONL; `tagging.py`: CoNLL BIO; `qa.py`: SQuAD/CMRC), so adding a
task is adding a row; adding a family (e.g. answer ranking) is writing those six functions in a new module:

    read(data_dir, split, cfg, stats) -> list[example]   split is "train", "dev", "test" or a name in `files`;
                                                    cfg is the resolved FinetuneConfig (column options, limits);
                                                    skipped records are counted in the Counter `stats`;
                                                    MissingSplit when the split's file is absent; ElectraError
                                                    for a missing column or a malformed record
    encode(examples, tokenizer, labels, cfg) -> (features, Counter)   features: dicts with "input_ids",
                                                    "token_type_ids", an "example" index and the training targets
                                                    ("labels" or "start_positions"/"end_positions"); the Counter
                                                    counts what was truncated or dropped
    decode(examples, features, outputs, labels, cfg) -> list[prediction]   outputs: one logits array per feature
    metric(examples, predictions) -> {name: value}  scores in points (0-100), computed by scikit-learn / scipy /
                                                    seqeval, or the official SQuAD / CMRC rules
    from_input(item) -> example                     one user input for `electra predict` / `load(dir).predict`
    to_output(example, prediction) -> dict          the JSON line written for one prediction

Labels: `labels` fixes the label set (GLUE); None collects it from the training split (generic tasks, NER).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from electra.errors import ElectraError


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # the TaskModel head: "sequence" | "token" | "span"
    description: str
    read: Callable[..., list]
    encode: Callable[..., tuple]
    decode: Callable[..., list]
    metric: Callable[[list, list], dict]
    from_input: Callable[[Any], Any]
    to_output: Callable[[Any, Any], dict]
    main_metric: str  # the metric that picks the best epoch and the best seed (higher is better)
    labels: tuple | None = None  # fixed label set; None = collected from the training split
    regression: bool = False  # one output, MSE loss (STS-B)
    pair: bool = False  # two texts per example (token_type_ids 0 / 1)
    epochs: int = 3  # paper: 3 (10 for RTE and STS-B; 2 for SQuAD)
    max_seq_len: int = 128
    double_unordered: bool = False  # also train on (b, a) for each (a, b): official code for MRPC and STS-B
    extra_dev: tuple = ()  # further dev splits scored each epoch, e.g. MNLI mismatched: ((prefix, split), ...)
    submission: tuple = ()  # GLUE submission files: ((split, stem), ...), e.g. (("test", "SST-2"),) -> SST-2.tsv
    files: dict = field(default_factory=dict)  # split -> file name(s) inside --data (family readers use it)
    dev_from_train: float = 0.0  # without a dev file, hold out this fraction of train as dev (0 = dev required)


class MissingSplit(ElectraError):
    """A split's file is absent (fine-tuning may then hold out part of train as dev)."""


def get_task(name: str) -> Task:
    """The registered task `name`; ElectraError with the closest names otherwise."""
    import difflib

    tasks = registry()
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ElectraError(f"unknown task '{name}'{hint}; tasks: {', '.join(tasks)}")
    return tasks[name]


def registry() -> dict[str, Task]:
    """All tasks, by name, in the order of the families' tables."""
    from electra.tasks import classification, qa, tagging

    # Answer selection / response ranking (issue 8): its family lives in electra/rank.py.
    from electra import rank

    return {**classification.TASKS, **tagging.TASKS, **qa.TASKS, **rank.TASKS}


def find_split(data_dir, split: str, cfg, names: tuple) -> Path:
    """The file of `split`: --train-file / --dev-file / --test-file when given, else the first of `names` present in
    `data_dir`. MissingSplit (an ElectraError) naming the places looked at otherwise."""
    explicit = getattr(cfg, f"{split}_file", None) if split in ("train", "dev", "test") else None
    candidates = [Path(explicit)] if explicit else [Path(data_dir) / name for name in names]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        where = ", ".join(str(p) for p in candidates) or str(data_dir)
        raise MissingSplit(f"{split} split not found: {where} (give the file with --{split}-file)")
    return path


def collate(features: list[dict], pad_id: int) -> dict:
    """Pad one batch of features to its longest member (dynamic padding). Returns the tensors TaskModel takes:
    input_ids / token_type_ids / attention_mask (B, T), and labels (B,) or (B, T) (pad -100), start/end (B,)."""
    import torch

    T = max(len(f["input_ids"]) for f in features)
    batch = {
        "input_ids": torch.tensor([f["input_ids"] + [pad_id] * (T - len(f["input_ids"])) for f in features]),
        "token_type_ids": torch.tensor([f["token_type_ids"] + [0] * (T - len(f["input_ids"])) for f in features]),
        "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (T - len(f["input_ids"]))
                                        for f in features]),
    }
    first = features[0]
    if isinstance(first.get("labels"), list):
        batch["labels"] = torch.tensor([f["labels"] + [-100] * (T - len(f["labels"])) for f in features])
    elif isinstance(first.get("labels"), float):
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
    elif first.get("labels") is not None:
        batch["labels"] = torch.tensor([f["labels"] for f in features])
    for key in ("start_positions", "end_positions"):
        if first.get(key) is not None:
            batch[key] = torch.tensor([f[key] for f in features])
    return batch
