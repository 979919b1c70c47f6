"""N-best lists: reading them, reranking with first_pass + lambda * model score, WER / top-1 against references,
and tuning lambda on a dev set. The model scores come from electra/score.py (`nbest_scores`).

    from electra.nbest import read_nbest, rerank, tune_lambda
    items = read_nbest("dev.jsonl")                     # lines {"id", "hyps": [...], "scores": [...], "ref": ...}
    lam, table = tune_lambda(items, model_scores)        # model_scores[i][j]: hypothesis j of list i
    best = [order[0] for order in rerank(items, model_scores, lam)]
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from electra.errors import ElectraError
from electra.files import read_utf8

LAMBDA_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)


@dataclass
class NBest:
    """One N-best list: hypotheses, optional first-pass scores (higher = better) and reference."""

    id: object
    hyps: list[str]
    scores: list[float] | None = None
    ref: str | None = None

    def first_pass(self) -> list[float]:
        return list(self.scores) if self.scores is not None else [0.0] * len(self.hyps)


def read_jsonl(path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; ElectraError naming the line on anything else."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"input file not found: {path}")
    rows = []
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ElectraError(f"{path} line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ElectraError(f"{path} line {n}: expected a JSON object, got {type(obj).__name__}")
        rows.append((n, obj))
    if not rows:
        raise ElectraError(f"{path} has no lines")
    return rows


def read_nbest(path) -> list[NBest]:
    """N-best lists from a JSONL file: {"id", "hyps": [str, ...], "scores": [float, ...] (optional), "ref": str
    (optional)} per line; "id" defaults to the line number."""
    items = []
    for n, obj in read_jsonl(path):
        where = f"{path} line {n}"
        hyps, scores, ref = obj.get("hyps"), obj.get("scores"), obj.get("ref")
        if not isinstance(hyps, list) or not hyps or not all(isinstance(h, str) for h in hyps):
            raise ElectraError(f"{where}: \"hyps\" must be a non-empty list of strings")
        if scores is not None and (not isinstance(scores, list) or len(scores) != len(hyps) or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in scores)):
            raise ElectraError(f"{where}: \"scores\" must be a list of {len(hyps)} finite numbers, one per hypothesis")
        if ref is not None and (not isinstance(ref, str) or not ref.split()):
            raise ElectraError(f"{where}: \"ref\" must be a non-empty string")
        items.append(NBest(obj.get("id", n), hyps, [float(s) for s in scores] if scores else None, ref))
    return items


def rerank(items: list[NBest], model_scores: list[list[float]], lam: float) -> list[list[int]]:
    """Per list, its hypothesis indices best first by first_pass + lam * model score (ties keep the input order).

        rerank([NBest("a", ["x", "y"], scores=[-1.0, -1.5])], [[-9.0, -2.0]], lam=0.5)   # [[1, 0]]
    """
    orders = []
    for it, model in zip(items, model_scores):
        total = [f + lam * m for f, m in zip(it.first_pass(), model)]
        orders.append(sorted(range(len(it.hyps)), key=lambda i: -total[i]))
    return orders


def normalize_space(text: str) -> str:
    """Whitespace collapsed: how references and hypotheses are compared."""
    return " ".join(text.split())


def nbest_metrics(items: list[NBest], chosen: list[int]) -> dict:
    """WER (jiwer, in %) of the chosen hypotheses against the references and top-1 accuracy (%, chosen ==
    reference); every item needs a "ref"."""
    try:
        import jiwer
    except ImportError:
        raise ElectraError("WER needs jiwer: pip install -e '.[score]' (or pip install jiwer)") from None
    missing = [it.id for it in items if it.ref is None]
    if missing:
        raise ElectraError(f"{len(missing)} N-best list(s) have no \"ref\" (first: id {missing[0]!r})")
    refs = [normalize_space(it.ref) for it in items]
    hyps = [normalize_space(it.hyps[c]) for it, c in zip(items, chosen)]
    return {"wer": 100 * float(jiwer.wer(refs, hyps)),
            "top1": 100 * sum(r == h for r, h in zip(refs, hyps)) / len(items)}


def tune_lambda(items: list[NBest], model_scores: list[list[float]], grid=LAMBDA_GRID) -> tuple[float, list[dict]]:
    """The lambda of `grid` with the lowest WER on `items` (then the highest top-1, then the smallest lambda), and
    every grid point's metrics."""
    table = []
    for lam in sorted(grid):
        chosen = [order[0] for order in rerank(items, model_scores, lam)]
        table.append({"lambda": lam, **nbest_metrics(items, chosen)})
    best = min(table, key=lambda r: (round(r["wer"], 9), -r["top1"], r["lambda"]))
    return best["lambda"], table
