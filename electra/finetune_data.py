"""A task's data for fine-tuning and evaluation: read the splits, hold out dev, subset, label, encode.

    splits, dev_fraction = read_data(task, cfg, stats)   # {"train", "dev", extra dev splits..., test splits...}
    labels = label_list(task, splits["train"])           # the fixed labels, or those seen in training
    encode_splits(task, splits, tokenizer, labels, cfg)  # adds "<split>_features" for every split

Used by the loop (electra/finetune_loop.py) and by `electra evaluate`, which rebuilds the dev split exactly as
fine-tuning built it (`holdout`).
"""
from __future__ import annotations

import dataclasses
import random
import sys
from collections import Counter
from pathlib import Path

from electra.errors import ElectraError
from electra.tasks import MissingSplit, Task


def read_data(task: Task, cfg, stats: Counter) -> tuple[dict[str, list], float]:
    """({"train", "dev", extra dev splits..., test splits...}: examples, the fraction of train held out as dev)."""
    data_dir = Path(cfg.data)
    if not cfg.train_file and not data_dir.is_dir():
        raise ElectraError(f"data folder {data_dir} not found")
    splits = {"train": task.read(data_dir, "train", cfg, stats)}
    fraction = cfg.dev_fraction or 0.0
    if not fraction:
        try:
            splits["dev"] = task.read(data_dir, "dev", cfg, stats)
        except MissingSplit as e:
            if cfg.dev_fraction is not None or not task.dev_from_train:
                raise
            fraction = task.dev_from_train
            print(f"{e}; holding out {fraction:.0%} of train as dev", file=sys.stderr)
    if fraction:
        splits["train"], splits["dev"] = holdout(splits["train"], fraction)
    for prefix, split in task.extra_dev:
        try:
            splits[prefix] = task.read(data_dir, split, cfg, stats)
        except MissingSplit as e:
            print(f"{e}; skipped", file=sys.stderr)
    if cfg.predict_test:
        for split, _ in task.submission:
            try:
                splits[split] = task.read(data_dir, split, cfg, stats)
            except MissingSplit:
                pass
    if cfg.max_train_examples and len(splits["train"]) > cfg.max_train_examples:
        order = list(range(len(splits["train"])))
        random.Random(0).shuffle(order)
        splits["train"] = [splits["train"][i] for i in sorted(order[:cfg.max_train_examples])]
    if cfg.max_dev_examples:
        splits["dev"] = splits["dev"][:cfg.max_dev_examples]
    for name in ("train", "dev"):
        if not splits[name]:
            raise ElectraError(f"the {name} split of task '{task.name}' in {cfg.data} has no examples")
    if cfg.double_unordered and task.pair:
        splits["train"] = splits["train"] + [dataclasses.replace(e, text_a=e.text_b, text_b=e.text_a)
                                             for e in splits["train"]]
    return splits, fraction


def holdout(train: list, fraction: float) -> tuple[list, list]:
    """(train, dev): a fixed random `fraction` of train (chosen with seed 0) becomes dev; order kept."""
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    n_dev = max(1, round(fraction * len(order)))
    dev = set(order[:n_dev])
    return [e for i, e in enumerate(train) if i not in dev], [e for i, e in enumerate(train) if i in dev]


def label_list(task: Task, train: list) -> list | None:
    """The task's fixed labels, or the labels seen in training (sorted; "O" first for tags); None = regression."""
    if task.regression or task.kind == "span":
        return None
    if task.labels is not None:
        return list(task.labels)
    if task.kind == "token":
        seen = {tag for e in train for tag in e.tags}
        return sorted(seen, key=lambda t: (t != "O", t))
    return sorted({e.label for e in train})


def encode_splits(task: Task, splits: dict, tokenizer, labels, cfg) -> None:
    """Add `<split>_features` for every split of `splits` (in place), warning about what was truncated or dropped."""
    for split in list(splits):
        try:
            features, counts = task.encode(splits[split], tokenizer, labels, cfg)
        except ElectraError as e:  # say where: the example's split and the data folder
            raise ElectraError(f"{split} split of {cfg.data}: {e}") from None
        warn_counts(f"{split} split", len(splits[split]), counts)
        splits[f"{split}_features"] = features


def warn_counts(name: str, total: int, counts: Counter, unit: str = "examples") -> None:
    for what, n in sorted(counts.items()):
        if n:
            print(f"warning: {name}: {n:,} of {total:,} {unit} {what}", file=sys.stderr)


def gold_of(example):
    """The gold answer of an example (label, tags or answers), written beside each prediction."""
    for name in ("label", "tags", "answers"):
        if hasattr(example, name):
            return getattr(example, name)
    return None
