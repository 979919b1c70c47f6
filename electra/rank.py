"""Ranking and multiple choice with a model: score (context, candidate) pairs with a fine-tuned pair classifier, and
build, export and load the multiple-choice model (HF `ElectraForMultipleChoice`).

    from electra.rank import rank_pairs, encode_choices, load_multiple_choice, export_multiple_choice
    from electra.metrics import ranking_metrics
    scores = rank_pairs(model, tokenizer, [(context, candidate), ...])          # p(relevant) per pair
    ranking_metrics(contexts, scores, labels, ks=(1, 2, 5))                     # {"mrr": 81.2, "recall@1": 70.0, ...}
    mc = load_multiple_choice("hf/discriminator")                               # fresh head on a pretrained encoder
    loss, logits = mc(**encode_choices(tokenizer, question, choices), labels=y) # logits (1, C)
    export_multiple_choice(mc, "out/mc")                                        # an ElectraForMultipleChoice folder

The `rank` fine-tuning task is in electra/tasks/ranking.py, the ranking metrics in electra/metrics.py, the
multiple-choice head (`MultipleChoiceModel` = TaskModel(cfg, "multiple-choice")) in electra/model.py with its keys
in hf.py's key table; logit parity of the export with transformers is tested.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from electra.errors import ElectraError
from electra.model import TaskModel
from electra.tasks.base import collate
from electra.tasks.classification import Example, encode
from electra.tokenizer import special_ids


def rank_pairs(model, tokenizer, pairs: list[tuple[str, str]], max_seq_len: int = 128, batch_size: int = 64,
               positive: int = 1) -> np.ndarray:
    """p(label `positive`) of a sequence-pair classifier (a TaskModel of kind "sequence") for each (context,
    candidate); a 1-output (regression) model gives its raw score instead."""
    from electra.inference import infer

    if getattr(model, "kind", None) != "sequence":
        raise ElectraError("ranking needs a sequence-pair classifier (fine-tune one with --task rank)")
    examples = [Example(id=str(i), text_a=c, text_b=a) for i, (c, a) in enumerate(pairs)]
    features, _ = encode(examples, tokenizer, None, SimpleNamespace(max_seq_len=max_seq_len))
    device = next(model.parameters()).device
    outputs = np.stack(infer(model, features, batch_size, special_ids(tokenizer)["pad"], device))  # (N, labels)
    if outputs.shape[1] == 1:
        return outputs[:, 0]
    return torch.from_numpy(outputs).softmax(-1)[:, positive].numpy()


def encode_choices(tokenizer, context: str, choices: list[str], max_seq_len: int = 128) -> dict:
    """One question: `[CLS] context [SEP] choice [SEP]` per choice, padded to a common length -> (1, C, T) tensors."""
    examples = [Example(id=str(i), text_a=context, text_b=c) for i, c in enumerate(choices)]
    features, _ = encode(examples, tokenizer, None, SimpleNamespace(max_seq_len=max_seq_len))
    batch = collate(features, special_ids(tokenizer)["pad"])
    return {k: v.unsqueeze(0) for k, v in batch.items() if k in ("input_ids", "token_type_ids", "attention_mask")}


def export_multiple_choice(model: TaskModel, out_dir, tokenizer_dir=None, overwrite: bool = False) -> Path:
    """A multiple-choice TaskModel -> an HF `ElectraForMultipleChoice` folder (config.json, model.safetensors,
    tokenizer files)."""
    from electra.hf import export_task_model

    if model.kind != "multiple-choice":
        raise ElectraError(f"export_multiple_choice needs a multiple-choice model, not a {model.kind} one")
    return export_task_model(model, out_dir, tokenizer_dir=tokenizer_dir, overwrite=overwrite)


def load_multiple_choice(folder, dropout: float | None = None) -> TaskModel:
    """An `ElectraForMultipleChoice` folder with its head, or any ELECTRA/BERT folder's encoder with a fresh head."""
    from electra.hf import load_task_model

    return load_task_model(folder, kind="multiple-choice", num_labels=1, classifier_dropout=dropout)
