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


def recorded_vocab(model_dir: Path, tokenizer_files: bool = True) -> str | None:
    """The vocabulary hash a model folder records: electra_task.json's or source.json's `tokenizer_vocab` (ours),
    else (with `tokenizer_files`) its own tokenizer's (tokenizer.vocab_hash); None when it says nothing."""
    from electra.tokenizer import load_tokenizer, vocab_hash

    model_dir = Path(model_dir)
    for path in (model_dir / "electra_task.json", model_dir.parent / "source.json"):
        try:
            found = json.loads(path.read_text(encoding="utf-8")).get("tokenizer_vocab")
        except (OSError, ValueError, AttributeError):
            continue
        if found:
            return found
    if tokenizer_files and any((model_dir / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        return vocab_hash(load_tokenizer(model_dir))
    return None


def load_tokenizer_for(model_dir: Path, tokenizer_path, vocab_size: int):
    """The tokenizer (--tokenizer, else the model folder's); ElectraError when it is not the model's vocabulary (by
    vocabulary hash where the folder records one, else by size)."""
    from electra.tokenizer import check_vocab, load_tokenizer

    source = Path(tokenizer_path) if tokenizer_path else model_dir
    tok = load_tokenizer(source)
    if tok.get_vocab_size() != vocab_size:
        raise ElectraError(f"tokenizer {source} has {tok.get_vocab_size():,} tokens but the model in {model_dir} "
                           f"has a {vocab_size:,}-token vocabulary; use the tokenizer the model was trained with")
    check_vocab(tok, recorded_vocab(model_dir, tokenizer_files=source != model_dir), source, model_dir)  # same size
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
# Runtimes: what `infer` calls for a fine-tuned model

RUNTIMES = ("auto", "torch", "onnx")
ONNX_MIN_INPUTS = 500  # auto: below this many inputs the export (seconds) costs more than onnxruntime saves


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def pick_runtime(runtime: str, model, device, n_inputs: int | None = None) -> str:
    """"torch" or "onnx". auto = onnx where it runs (CPU, onnx + onnxruntime installed, a (batch, sequence) model)
    and pays for its export (at least ONNX_MIN_INPUTS inputs, or an unknown count), else torch: at fp32 onnxruntime
    gives the same logits faster on CPU (docs/PERFORMANCE.md)."""
    if runtime not in RUNTIMES:
        raise ElectraError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    on_cpu = torch.device(device).type == "cpu"
    if runtime == "onnx" and not on_cpu:
        raise ElectraError(f"the onnx runtime runs on the CPU, not {device}; pass --device cpu or --runtime torch")
    if runtime != "auto":
        return runtime
    fits = model.kind != "multiple-choice" and (n_inputs is None or n_inputs >= ONNX_MIN_INPUTS)
    return "onnx" if on_cpu and fits and onnx_available() else "torch"


def runtime_model(model, runtime: str = "torch", int8: bool = False, device="cpu", n_inputs: int | None = None):
    """What `infer` calls for a TaskModel: the model (torch), or an onnxruntime session behind the same call
    (electra.onnx.OnnxRunner). `int8`: dynamic int8 quantisation of the Linear / MatMul weights (activations
    quantised per batch), CPU only, lossy: opt-in."""
    runtime = pick_runtime(runtime, model, device, n_inputs)
    if int8 and torch.device(device).type != "cpu":
        raise ElectraError(f"int8 quantisation runs on the CPU, not {device}; pass --device cpu")
    if runtime == "onnx":
        from electra.onnx import OnnxRunner

        return OnnxRunner.from_model(model, int8=int8, threads=torch.get_num_threads())
    if not int8:
        return model
    import warnings

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


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
    from electra.hub import resolve_model
    from electra.tasks import get_task

    folder = Path(path) if Path(path).exists() else resolve_model(path)  # a Hub id -> its snapshot folder
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
