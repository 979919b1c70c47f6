"""Inference helpers shared by the fine-tuning loop, `electra predict`, `electra evaluate` and ranking: the tokenizer
that fits a model, batched logits, and a fine-tuned folder loaded back.

    tokenizer = load_tokenizer_for(model_dir, None, vocab_size)   # ElectraError when its ids do not fit the model
    outputs = infer(model, features, batch_size=64, pad_id=0, device="cpu")   # one logits array per feature
    loaded = load_finetuned("runs/sst2/model")                    # model, tokenizer, task, labels, cfg, device

Nothing here trains: the loop (electra/finetune_loop.py) sits above this module, so predicting never imports it.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import NamedTuple

import torch

from electra.errors import ElectraError
from electra.tasks import Task, collate

GENERIC_TASK = {"sequence": "classify", "token": "ner", "span": "squad"}  # for folders without electra_task.json


def load_tokenizer_for(model_dir: Path, tokenizer_path, vocab_size: int):
    """The tokenizer (--tokenizer, else the model folder's); ElectraError when its ids do not fit the model."""
    from electra.tokenizer import load_tokenizer

    source = Path(tokenizer_path) if tokenizer_path else model_dir
    tok = load_tokenizer(source)
    if tok.get_vocab_size() != vocab_size:
        raise ElectraError(f"tokenizer {source} has {tok.get_vocab_size():,} tokens but the model in {model_dir} "
                           f"has a {vocab_size:,}-token vocabulary; use the tokenizer the model was trained with")
    return tok


@torch.no_grad()
def infer(model, features: list[dict], batch_size: int, pad_id: int, device, progress: bool = False) -> list:
    """Logits per feature, as numpy arrays: (num_labels,) for sequences, (len, C) for tokens and spans. Features
    are batched by length (less padding) and returned in their original order."""
    from tqdm import tqdm

    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    outputs = [None] * len(features)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="eval", unit="batch", file=sys.stderr, disable=not progress, leave=False):
        batch = collate([features[i] for i in idx], pad_id)
        _, logits = model(batch["input_ids"].to(device), batch["token_type_ids"].to(device),
                          batch["attention_mask"].to(device))
        logits = logits.float().cpu().numpy()
        for row, i in enumerate(idx):
            outputs[i] = logits[row] if model.kind == "sequence" else logits[row, :len(features[i]["input_ids"])]
    return outputs


# ---------------------------------------------------------------------------------------------------------------
# A fine-tuned folder, loaded back


def read_task_metadata(folder: Path) -> dict:
    """electra_task.json, or what a plain HF folder's config.json implies."""
    from electra.hf import KIND_OF_CLASS, read_config

    path = folder / "electra_task.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ElectraError(f"{path}: not valid JSON ({e.msg})") from None
    config = read_config(folder)
    arch = (config.get("architectures") or [""])[0]
    kind = KIND_OF_CLASS.get(arch)
    if kind not in GENERIC_TASK:
        raise ElectraError(f"{folder}: architecture '{arch or '?'}' is not a fine-tuned task model "
                           "(sequence / token classification or question answering)")
    regression = config.get("problem_type") == "regression"
    id2label = config.get("id2label") or {}
    labels = None if kind == "span" or regression else \
        [id2label.get(str(i), f"LABEL_{i}") for i in range(int(config.get("num_labels", len(id2label) or 2)))]
    return {"task": GENERIC_TASK[kind], "kind": kind, "labels": labels, "regression": regression}


class Finetuned(NamedTuple):
    """A fine-tuned model in eval mode on its device, with what predicting needs around it."""

    model: torch.nn.Module  # electra.model.TaskModel
    tokenizer: object  # tokenizers.Tokenizer
    task: Task
    labels: list | None
    cfg: object  # electra.finetune_config.FinetuneConfig: lengths and QA options from electra_task.json
    device: torch.device


def load_finetuned(path, device=None) -> Finetuned:
    """OUT/model (or OUT) of `electra finetune`, or an HF ElectraFor* task folder, ready to predict."""
    from electra.dist import pick_device
    from electra.finetune_config import config_from_metadata
    from electra.hf import load_task_model
    from electra.tasks import get_task

    folder = Path(path)
    if (folder / "model" / "config.json").is_file():  # OUT of `electra finetune` (its config.json is the run's)
        folder = folder / "model"
    meta = read_task_metadata(folder)
    task = get_task(meta["task"])
    if meta.get("regression"):
        task = dataclasses.replace(task, regression=True)
    model = load_task_model(folder, kind=task.kind)
    tokenizer = load_tokenizer_for(folder, None, model.cfg.vocab_size)
    cfg = config_from_metadata(meta)
    if cfg.max_seq_len is None:
        cfg = dataclasses.replace(cfg, max_seq_len=min(task.max_seq_len, model.cfg.max_position_embeddings))
    device = pick_device(str(device) if device is not None else "auto")
    return Finetuned(model.to(device).eval(), tokenizer, task, meta.get("labels"), cfg, device)
