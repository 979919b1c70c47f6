"""What every task family shares: the `Task` row, the MissingSplit error, finding a split's file, and batching.

    from electra.tasks.base import Task, MissingSplit, find_split, collate
    path = find_split(data_dir, "dev", cfg, ("dev.json",))   # --dev-file, else the first name present
    batch = collate(features, pad_id)                        # padded tensors for TaskModel

The registry (electra/tasks/__init__.py) imports the families; the families import this module, never the registry.
The contract of a Task's six functions is in the registry's docstring.
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


def find_split(data_dir, split: str, cfg, names: tuple) -> Path:
    """The file of `split`: --train-file / --dev-file / --test-file when given, else the first of `names` present in
    `data_dir` (a file, or a `datasets` save_to_disk split folder: one with state.json). MissingSplit (an
    ElectraError) naming the places looked at otherwise."""
    explicit = getattr(cfg, f"{split}_file", None) if split in ("train", "dev", "test") else None
    candidates = [Path(explicit)] if explicit else [Path(data_dir) / name for name in names]
    path = next((p for p in candidates if p.is_file() or (p / "state.json").is_file()), None)
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
