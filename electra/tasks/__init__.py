"""The fine-tuning task registry: task name -> `Task`, one row per task (a dict, not an if/elif ladder).

    from electra.tasks import TASKS, get_task
    task = get_task("sst2")
    train = task.read(Path("../shared/data/glue/SST-2"), "train", cfg, stats)  # list of examples
    features, stats = task.encode(train, tokenizer, labels, cfg)          # token ids + targets per feature
    predictions = task.decode(dev, features, outputs, labels, cfg)        # one prediction per example
    scores = task.metric(dev, predictions)                                # {"acc": 91.3, ...} in points (0-100)

A `Task` (electra/tasks/base.py) is plain data plus six functions. The functions come from the module of its family
(`classification.py`: GLUE + generic CSV/TSV/JSONL; `tagging.py`: CoNLL BIO; `qa.py`: SQuAD/CMRC; `ranking.py`:
answer selection), so adding a task is adding a row to its family's TASKS; adding a family is writing those six
functions in a new module that imports `electra.tasks.base` (never this registry) and adding its TASKS below:

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
    metric(examples, predictions) -> {name: value}  scores in points (0-100), computed by scikit-learn / scipy,
                                                    or the official SQuAD / CMRC / conlleval rules (metrics.py)
    from_input(item) -> example                     one user input for `electra predict` / `load(dir).predict`
    to_output(example, prediction) -> dict          the JSON line written for one prediction

Labels: `labels` fixes the label set (GLUE); None collects it from the training split (generic tasks, NER).
"""
from __future__ import annotations

from electra.errors import ElectraError
from electra.tasks import classification, qa, ranking, tagging
from electra.tasks.base import MissingSplit, Task, collate, find_split  # noqa: F401 (the families' shared pieces)

# name -> Task, in the order of the families' tables.
TASKS: dict[str, Task] = {**classification.TASKS, **tagging.TASKS, **qa.TASKS, **ranking.TASKS}


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
    """All tasks, by name (the TASKS table)."""
    return TASKS
