"""Metrics for fine-tuning, as thin wrappers around kept libraries (scikit-learn, scipy, seqeval), in points (0-100).

    accuracy(gold, pred) -> {"acc": 91.2}
    f1_accuracy(gold, pred, positive="1") -> {"f1": ..., "acc": ..., "acc_and_f1": ...}        MRPC, QQP
    mcc(gold, pred) -> {"mcc": ...}                                                                CoLA
    pearson_spearman(gold, pred) -> {"pearson": ..., "spearman": ..., "corr": ...}                 STS-B
    entity_f1(gold_tags, pred_tags) -> {"precision": ..., "recall": ..., "f1": ..., "acc": ...}    NER (seqeval)
    ranking_metrics(contexts, scores, labels, ks=(1, 2, 5)) -> {"mrr": ..., "recall@1": ..., ...}    ranking

Ranking (answer selection, response ranking) groups rows by their context text. MRR is the mean over contexts of
1 / (rank of the best-ranked positive); with exactly one positive per context it equals scikit-learn's
`label_ranking_average_precision_score` (pinned by a test). recall@k is the fraction of a context's positives ranked
in its top k, averaged over contexts (Ubuntu Dialogue Corpus "R_n@k" with one positive among n candidates). Ties
count against the model: a positive's rank is the number of candidates scoring at least as high (as sklearn).
Contexts without a positive are left out (they have no rank) and counted in `contexts_without_positive`.

The only metrics written here by hand are the official SQuAD and CMRC 2018 answer rules, in `electra/tasks/qa.py`.
"""
from __future__ import annotations

import math

import numpy as np

from electra.errors import ElectraError


def accuracy(gold: list, pred: list) -> dict:
    from sklearn.metrics import accuracy_score

    return {"acc": 100.0 * float(accuracy_score(gold, pred))}


def f1_accuracy(gold: list, pred: list, positive="1") -> dict:
    """Binary F1 of the positive class (GLUE MRPC/QQP convention) and accuracy."""
    from sklearn.metrics import f1_score

    f1 = 100.0 * float(f1_score(gold, pred, pos_label=positive, average="binary", zero_division=0))
    acc = accuracy(gold, pred)["acc"]
    return {"f1": f1, "acc": acc, "acc_and_f1": (f1 + acc) / 2}


def mcc(gold: list, pred: list) -> dict:
    from sklearn.metrics import matthews_corrcoef

    return {"mcc": 100.0 * float(matthews_corrcoef(gold, pred))}


def pearson_spearman(gold: list[float], pred: list[float]) -> dict:
    """Pearson and Spearman correlation; 0 when a side is constant (scipy returns nan there)."""
    from scipy.stats import pearsonr, spearmanr

    def safe(value) -> float:
        value = float(value)
        return 0.0 if math.isnan(value) else 100.0 * value

    if len(set(pred)) < 2 or len(set(gold)) < 2:
        p = s = 0.0
    else:
        p, s = safe(pearsonr(gold, pred)[0]), safe(spearmanr(gold, pred)[0])
    return {"pearson": p, "spearman": s, "corr": (p + s) / 2}


def entity_f1(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Entity-level precision / recall / F1 (conlleval rules, seqeval's default mode) and token accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {
        "precision": 100.0 * float(precision_score(gold, pred, zero_division=0)),
        "recall": 100.0 * float(recall_score(gold, pred, zero_division=0)),
        "f1": 100.0 * float(f1_score(gold, pred, zero_division=0)),
        "acc": 100.0 * float(accuracy_score(gold, pred)),
    }


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
