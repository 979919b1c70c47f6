"""Answer selection and dialogue response ranking: score (context, candidate) pairs with a pair classifier and report
MRR and recall@k per context; and multiple choice with a head that exports as Hugging Face `ElectraForMultipleChoice`.

    electra finetune --task rank --model hf/discriminator --data my_ranking/   # train.tsv / dev.tsv:
                                                                               # context, candidate, label (0/1)
    from electra.rank import rank_pairs, ranking_metrics
    scores = rank_pairs(model, tokenizer, [(context, candidate), ...])          # p(relevant) per pair
    ranking_metrics(contexts, scores, labels, ks=(1, 2, 5))                     # {"mrr": 81.2, "recall@1": 70.0, ...}

Ranking is pointwise, as in the ELECTRA/BERT answer-selection recipe: a binary pair classifier is fine-tuned on
(context, candidate) with label 1 for a correct answer / true response, and its p(label 1) ranks the candidates of
each context. Rows are grouped by their context text. Metrics, in points (0-100) like every fine-tuning metric:

- MRR: the mean over contexts of 1 / (rank of the best-ranked positive). With exactly one positive per context it
  equals scikit-learn's `label_ranking_average_precision_score` (pinned by a test).
- recall@k: the fraction of a context's positives ranked in its top k, averaged over contexts (Ubuntu Dialogue
  Corpus "R_n@k" when there is one positive among n candidates).
- Ties count against the model: a positive's rank is the number of candidates scoring at least as high (as sklearn).
Contexts without a positive are left out (they have no rank) and counted in `contexts_without_positive`.

Multiple choice: `MultipleChoiceModel` is an encoder + HF's ElectraSequenceSummary head (first token, dense H -> H,
gelu, dropout) + a 1-logit classifier; input (B, C, T), logits (B, C), cross-entropy over the C choices.
`export_multiple_choice` writes an `ElectraForMultipleChoice` folder (logit parity with transformers is tested);
`load_multiple_choice` reads one back, or starts a fresh head on any ELECTRA/BERT encoder folder.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.model import Encoder, init_weights
from electra.tasks import Task, collate
from electra.tasks.classification import Example, decode, encode, from_input, read_generic, to_output
from electra.tokenizer import special_ids

# ---------------------------------------------------------------------------------------------------------------
# Metrics


def group_by_context(contexts: list[str]) -> list[list[int]]:
    """Row indices grouped by context text, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(contexts):
        groups.setdefault(c, []).append(i)
    return list(groups.values())


def positive_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For one context: the rank (1 = top) of each positive; ties ranked pessimistically (as scikit-learn)."""
    return np.array([(scores >= s).sum() for s in scores[labels > 0]], dtype=np.int64)


def ranking_metrics(contexts: list[str], scores, labels, ks=(1, 2, 5)) -> dict:
    """MRR and recall@k (points, 0-100) over the contexts that have at least one positive."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if not (len(contexts) == len(scores) == len(labels)):
        raise ElectraError(f"ranking: {len(contexts)} contexts, {len(scores)} scores, {len(labels)} labels")
    reciprocal, recall = [], {k: [] for k in ks}
    skipped = 0
    for rows in group_by_context(contexts):
        ranks = positive_ranks(scores[rows], labels[rows])
        if len(ranks) == 0:
            skipped += 1
            continue
        reciprocal.append(1.0 / ranks.min())
        for k in ks:
            recall[k].append(float((ranks <= k).mean()))
    if not reciprocal:
        raise ElectraError("ranking: no context has a positive candidate (label 1)")
    out = {"mrr": 100.0 * float(np.mean(reciprocal))}
    out.update({f"recall@{k}": 100.0 * float(np.mean(v)) for k, v in recall.items()})
    out["contexts"] = len(reciprocal)
    out["contexts_without_positive"] = skipped
    return out


# ---------------------------------------------------------------------------------------------------------------
# Scoring pairs with a fine-tuned pair classifier


def rank_pairs(model, tokenizer, pairs: list[tuple[str, str]], max_seq_len: int = 128, batch_size: int = 64,
               positive: int = 1) -> np.ndarray:
    """p(label `positive`) of a sequence-pair classifier (a TaskModel of kind "sequence") for each (context,
    candidate); a 1-output (regression) model gives its raw score instead."""
    from electra.finetune import infer

    if getattr(model, "kind", None) != "sequence":
        raise ElectraError("ranking needs a sequence-pair classifier (fine-tune one with --task rank)")
    examples = [Example(id=str(i), text_a=c, text_b=a) for i, (c, a) in enumerate(pairs)]
    features, _ = encode(examples, tokenizer, None, SimpleNamespace(max_seq_len=max_seq_len))
    device = next(model.parameters()).device
    outputs = np.stack(infer(model, features, batch_size, special_ids(tokenizer)["pad"], device))  # (N, labels)
    if outputs.shape[1] == 1:
        return outputs[:, 0]
    return torch.from_numpy(outputs).softmax(-1)[:, positive].numpy()


# The `rank` fine-tuning task: the generic pair reader and encoder of classification.py (columns context,
# candidate, label), binary labels, and the ranking metric on p(label "1").


def _rank_metric(examples, predictions, ks=(1, 2, 5)) -> dict:
    scores = [p["probabilities"]["1"] for p in predictions]
    labels = [int(e.label == "1") for e in examples]
    metrics = ranking_metrics([e.text_a for e in examples], scores, labels, ks)
    return {k: v for k, v in metrics.items() if not k.startswith("contexts")}


_RANK = Task(name="rank", kind="sequence", pair=True, labels=("0", "1"), main_metric="mrr",
             description="answer selection / response ranking: (context, candidate, label 0/1) rows from "
                         "CSV / TSV / JSONL; MRR and recall@k per context",
             read=partial(read_generic, text_a="context", text_b="candidate", label="label"),
             encode=encode, decode=decode, metric=_rank_metric, from_input=from_input, to_output=to_output)
TASKS = {_RANK.name: _RANK}


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice

# Ours (inside MultipleChoiceModel.head) -> HF ElectraForMultipleChoice (no "electra." prefix on the head).
MC_HEAD_KEYS = [("summary.{p}", "sequence_summary.summary.{p}"), ("out.{p}", "classifier.{p}")]
MC_CLASS = "ElectraForMultipleChoice"


class MultipleChoiceHead(nn.Module):
    """HF's ElectraSequenceSummary (summary_type "first", use_proj, activation gelu, last dropout) + a 1-logit
    classifier: (N, T, H) -> (N,)."""

    def __init__(self, cfg: ModelConfig, dropout: float | None = None):
        super().__init__()
        self.summary = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, 1)
        self.drop = nn.Dropout(cfg.hidden_dropout if dropout is None else dropout)
        self.apply(lambda m: init_weights(m, cfg.initializer_range))

    def forward(self, h):
        return self.out(self.drop(F.gelu(self.summary(h[:, 0])))).squeeze(-1)


class MultipleChoiceModel(nn.Module):
    """Encoder + MultipleChoiceHead. forward(input_ids (B, C, T), token_type_ids, attention_mask, labels (B,))
    -> (loss or None, logits (B, C)); the C choices of a question are encoded independently, scored jointly."""

    kind = "multiple-choice"

    def __init__(self, cfg: ModelConfig, dropout: float | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.head = MultipleChoiceHead(cfg, dropout)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        B, C, T = input_ids.shape
        flat = [None if t is None else t.reshape(B * C, T) for t in (input_ids, token_type_ids, attention_mask)]
        logits = self.head(self.encoder(*flat)).view(B, C)  # (B*C, T, H) -> (B*C,) -> (B, C)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return loss, logits


def encode_choices(tokenizer, context: str, choices: list[str], max_seq_len: int = 128) -> dict:
    """One question: `[CLS] context [SEP] choice [SEP]` per choice, padded to a common length -> (1, C, T) tensors."""
    examples = [Example(id=str(i), text_a=context, text_b=c) for i, c in enumerate(choices)]
    features, _ = encode(examples, tokenizer, None, SimpleNamespace(max_seq_len=max_seq_len))
    batch = collate(features, special_ids(tokenizer)["pad"])
    return {k: v.unsqueeze(0) for k, v in batch.items() if k in ("input_ids", "token_type_ids", "attention_mask")}


def export_multiple_choice(model: MultipleChoiceModel, out_dir, tokenizer_dir=None, overwrite: bool = False) -> Path:
    """A MultipleChoiceModel -> an HF `ElectraForMultipleChoice` folder (config.json, model.safetensors, tokenizer)."""
    from electra.hf import _expand, _write_folder, hf_config, to_hf_state_dict

    config = hf_config(model.cfg, "sequence")  # the summary_* fields ElectraSequenceSummary reads are set there
    config["architectures"] = [MC_CLASS]
    config["summary_last_dropout"] = model.head.drop.p
    state = model.state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("encoder.")}
    tensors = to_hf_state_dict(encoder, model.cfg.num_layers, "pretraining")  # encoder rows only: no head keys given
    tensors.update({theirs: state[f"head.{ours}"].contiguous().clone() for ours, theirs in _expand(MC_HEAD_KEYS)})
    return _write_folder(out_dir, config, tensors, tokenizer_dir, overwrite=overwrite)


def load_multiple_choice(folder, dropout: float | None = None) -> MultipleChoiceModel:
    """An `ElectraForMultipleChoice` folder with its head, or any ELECTRA/BERT folder's encoder with a fresh head."""
    from electra.hf import _expand, load_encoder, read_config, read_weights

    folder = Path(folder)
    config = read_config(folder)
    encoder = load_encoder(folder)
    model = MultipleChoiceModel(encoder.cfg, dropout)
    model.encoder = encoder
    if (config.get("architectures") or [""])[0] == MC_CLASS:
        hf = read_weights(folder)
        head = {}
        for ours, theirs in _expand(MC_HEAD_KEYS):
            if theirs not in hf:
                raise ElectraError(f"{folder}: weights are missing '{theirs}'")
            head[ours] = hf[theirs]
        model.head.load_state_dict(head)
    return model

