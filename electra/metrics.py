"""Metrics for fine-tuning, as thin wrappers around kept libraries (scikit-learn, scipy, seqeval), in points (0-100).

    accuracy(gold, pred) -> {"acc": 91.2}
    f1_accuracy(gold, pred, positive="1") -> {"f1": ..., "acc": ..., "acc_and_f1": ...}        MRPC, QQP
    mcc(gold, pred) -> {"mcc": ...}                                                                CoLA
    pearson_spearman(gold, pred) -> {"pearson": ..., "spearman": ..., "corr": ...}                 STS-B
    entity_f1(gold_tags, pred_tags) -> {"precision": ..., "recall": ..., "f1": ..., "acc": ...}    NER (seqeval)

The only metrics written here by hand are the official SQuAD and CMRC 2018 answer rules, in `electra/tasks/qa.py`.
"""
from __future__ import annotations

import math


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
