"""Ensembles of fine-tuned classifiers: the members' class probabilities, averaged.

    electra predict --model runs/sst2/seeds/0/model --model runs/sst2/seeds/1/model --input texts.txt
    electra evaluate --model runs/sst2/seeds/0/model,runs/sst2/seeds/1/model --data ../shared/data/glue/SST-2

    from electra import load
    load(["runs/sst2/seeds/0/model", "runs/sst2/seeds/1/model"]).predict(["a gripping film"])

`electra finetune --seeds N --keep-all` keeps every seed's model under OUT/seeds/SEED/model for this. The members
must be classification models (sequence kind, not regression) of one task, with the same labels and vocabulary.
`Averaged` returns log(mean probability) as its logits, so the task's softmax in decoding gives the mean exactly.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from electra.errors import ElectraError
from electra.inference import Finetuned, load_finetuned


def model_paths(values) -> list[str]:
    """--model values (repeated and/or comma-separated; a path object or an existing path is one folder, commas
    and all) -> the list of folders."""
    values = [values] if isinstance(values, (str, os.PathLike)) else list(values)
    return [part.strip() for v in values
            for part in ([str(v)] if not isinstance(v, str) or Path(v).exists() else v.split(",")) if part.strip()]


class Averaged(torch.nn.Module):
    """Several TaskModels behind one TaskModel call: (None, log of the mean of the members' softmax)."""

    def __init__(self, members: list):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.kind = "sequence"

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        probs = torch.stack([m(input_ids, token_type_ids, attention_mask)[1].float().softmax(-1)
                             for m in self.members]).mean(0)  # (B, C)
        return None, probs.log()


def load_ensemble(paths, device=None) -> Finetuned:
    """One folder: load_finetuned. Several: their models averaged, with the first member's tokenizer and config."""
    from electra.tokenizer import vocab_hash

    paths = model_paths(paths)
    if not paths:
        raise ElectraError("--model needs at least one folder")
    loaded = [load_finetuned(p, device) for p in paths]
    if len(loaded) == 1:
        return loaded[0]
    first = loaded[0]
    for path, m in zip(paths, loaded):
        if m.task.kind != "sequence" or m.task.regression or not m.labels:
            raise ElectraError(f"an ensemble averages class probabilities: {path} is a "
                               f"{'regression' if m.task.regression else m.task.kind} model; ensembles take "
                               "classification models only")
        if (m.task.name, m.labels) != (first.task.name, first.labels):
            raise ElectraError(f"{path} is a '{m.task.name}' model with labels {m.labels}, but {paths[0]} is "
                               f"'{first.task.name}' with {first.labels}; an ensemble needs one task and label set")
        if vocab_hash(m.tokenizer) != vocab_hash(first.tokenizer):
            raise ElectraError(f"{path} has another vocabulary than {paths[0]}; an ensemble needs one tokenizer")
    model = Averaged([m.model for m in loaded]).to(first.device).eval()
    return first._replace(model=model)
