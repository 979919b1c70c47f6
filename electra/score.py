"""Sentence scoring and N-best reranking: how likely is a text to be all original, by the discriminator's
replaced-token detection (one forward pass per text) or by the generator's masked pseudo-log-likelihood (PLL,
Salazar et al. 2020: one pass per token, each with that token masked).

    electra score --model runs/demo --input sentences.txt                  # JSONL: log p(all original) per text
    electra score --model runs/demo --input sentences.txt --words          # + p(original) per word
    electra score --model runs/demo --input test.jsonl --nbest --dev dev.jsonl      # rerank N-best lists
    electra score --model runs/demo --input test.jsonl --nbest --method electra,pll  # both, compared in one run

    from electra.usage import load_model
    from electra.nbest import read_nbest, rerank
    from electra.score import nbest_scores, score_texts
    disc = load_model("runs/demo", "discriminator")
    s = score_texts(disc, ["the cat sat on the mat .", "the cat sat on the mats ."])
    s[0].logp, s[0].logp_per_token, s[0].words()      # sum, mean over tokens, [("the", p(original)), ...]
    items = read_nbest("nbest.jsonl")                  # lines {"id", "hyps": [...], "scores": [...], "ref": ...}
    order = rerank(items, nbest_scores(disc, items), lam=0.5)   # per list: hypothesis indices, best first

Scores (natural log, [CLS]/[SEP]/padding left out; a positive discriminator logit means "replaced"):

    electra   sum over tokens of log p(original) = log sigmoid(-logit): log p(every token is original)
    pll       sum over tokens of log p(token | the text with that token masked), from the generator

Each also comes per token (the sum / the number of tokens). A word's score is the sum over its WordPiece pieces
(a word is original only if all its pieces are; its p is exp of that), so the word scores add up to the text's.
Words are whitespace-separated, except that every CJK character is a word of its own. Texts are sorted by length
into batches (PLL: the masked copies of all texts) and the results put back in input order.

N-best reranking picks, per list, the hypothesis with the highest first_pass + lambda * model score (first_pass = 0
when the list has no "scores"; ties keep the input order). With references and `--dev FILE`, lambda is chosen on
the dev lists from a grid (lowest WER, then highest top-1 accuracy, then the smallest lambda). WER is jiwer's over
all chosen hypotheses; top-1 accuracy counts lists whose choice equals the reference (whitespace collapsed).
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from electra.errors import ElectraError
from electra.nbest import (LAMBDA_GRID, NBest, nbest_metrics, normalize_space, read_jsonl, read_nbest, rerank,
                           tune_lambda)
from electra.files import read_utf8

# method -> the half of the model it needs
METHODS = {"electra": "discriminator", "pll": "generator"}


@dataclass
class TextScore:
    """Per-token log scores of one text: log p(original) (electra) or log p(token | rest) (pll)."""

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character span of each token in `text`
    token_logp: list[float]

    @property
    def logp(self) -> float:
        return float(sum(self.token_logp))

    @property
    def logp_per_token(self) -> float:
        return self.logp / max(1, len(self.token_logp))

    def words(self) -> list[tuple[str, float]]:
        """(word, p) per word: p = exp(sum of its pieces' log scores); see `word_spans` for what a word is."""
        spans = word_spans(self.text)
        starts = [s for s, _ in spans]
        logp = [0.0] * len(spans)
        for (s, _), lp in zip(self.offsets, self.token_logp):
            w = max(0, bisect.bisect_right(starts, s) - 1)  # the word the piece starts in
            logp[w] += lp
        return [(self.text[s:e], math.exp(lp)) for (s, e), lp in zip(spans, logp)]


def _is_cjk(ch: str) -> bool:
    """BERT's CJK ideograph ranges (the characters its tokenizer splits one by one)."""
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of `text`: whitespace-separated runs, each CJK character a word of its own
    ("GPT模型 works" -> "GPT", "模", "型", "works")."""
    spans = []
    for m in re.finditer(r"\S+", text):
        start = m.start()
        for i in range(m.start(), m.end()):
            if _is_cjk(text[i]):
                if start < i:
                    spans.append((start, i))
                spans.append((i, i + 1))
                start = i + 1
        if start < m.end():
            spans.append((start, m.end()))
    return spans


# ---------------------------------------------------------------------------------------------------------------
# Scoring


def _encode(lm, texts: list[str]):
    """[CLS] text [SEP] id rows and the encodings; ElectraError naming a text longer than the model takes."""
    encs = [lm.tokenizer.encode(t, add_special_tokens=False) for t in texts]
    rows = [[lm.special["cls"], *e.ids, lm.special["sep"]] for e in encs]
    for i, r in enumerate(rows):
        if len(r) > lm.max_len:
            raise ElectraError(f"text {i + 1} ({texts[i][:40]!r}...) is {len(r)} tokens; the model takes at most "
                               f"{lm.max_len}")
    return encs, rows


def _batches(order: list[int], size: int):
    for s in range(0, len(order), size):
        yield order[s:s + size]


@torch.no_grad()
def _electra_logp(disc, rows: list[list[int]], batch_size: int) -> list[list[float]]:
    """log p(original) of each real token, one discriminator pass per text; texts sorted by length into batches."""
    from electra.usage import pad_batch

    out: list[list[float]] = [[] for _ in rows]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for chunk in _batches(order, batch_size):
        x, am = pad_batch([rows[i] for i in chunk], disc.special["pad"])  # (B, T)
        _, logits = disc.model(x, torch.zeros_like(x), am)  # (B, T); > 0 = replaced
        logp = F.logsigmoid(-logits.float())  # log p(original) = log(1 - sigmoid(logit))
        for r, i in enumerate(chunk):
            out[i] = logp[r, 1:len(rows[i]) - 1].tolist()
    return out


@torch.no_grad()
def _pll_logp(gen, rows: list[list[int]], batch_size: int) -> list[list[float]]:
    """log p(token | text with that token masked) of each real token: one masked copy per token, all copies of all
    texts sorted by length into batches; the MLM head runs only at the masked position."""
    from electra.usage import pad_batch

    out = [[0.0] * (len(r) - 2) for r in rows]
    copies = [(i, p) for i, r in enumerate(rows) for p in range(1, len(r) - 1)]
    copies.sort(key=lambda c: len(rows[c[0]]))  # stable: a text's copies stay together
    model = gen.model
    for chunk in _batches(copies, batch_size):
        x, am = pad_batch([rows[i] for i, _ in chunk], gen.special["pad"])  # (B, T)
        pos = torch.tensor([p for _, p in chunk])
        target = x[torch.arange(len(chunk)), pos].clone()  # (B,)
        x[torch.arange(len(chunk)), pos] = gen.special["mask"]
        h = model.encoder(x, torch.zeros_like(x), am)  # (B, T, H)
        logits = model.head(h[torch.arange(len(chunk)), pos], model.encoder.embeddings.tok.weight)  # (B, V)
        logp = logits.float().log_softmax(-1).gather(1, target[:, None])[:, 0]
        for (i, p), lp in zip(chunk, logp.tolist()):
            out[i][p - 1] = lp
    return out


def score_texts(lm, texts: list[str], method: str = "electra", batch_size: int = 64) -> list[TextScore]:
    """Per-token log scores of each text (see the module docstring), in input order. `lm`: a discriminator from
    `electra.usage.load_model(path, "discriminator")` for "electra", a generator for "pll". `batch_size`: texts per
    pass (electra) or masked copies per pass (pll)."""
    if method not in METHODS:
        raise ElectraError(f"unknown scoring method '{method}' (choose from {', '.join(METHODS)})")
    kind = {"pretraining": "discriminator", "masked-lm": "generator"}.get(lm.model.kind, lm.model.kind)
    if kind != METHODS[method]:
        raise ElectraError(f"method '{method}' needs the {METHODS[method]}; {lm.path} is a {kind}")
    if batch_size < 1:
        raise ElectraError(f"--batch-size must be >= 1, got {batch_size}")
    encs, rows = _encode(lm, texts)
    logp = (_electra_logp if method == "electra" else _pll_logp)(lm, rows, batch_size)
    return [TextScore(t, list(e.tokens), [tuple(o) for o in e.offsets], lp) for t, e, lp in zip(texts, encs, logp)]


# ---------------------------------------------------------------------------------------------------------------
# N-best lists (reading, reranking and metrics live in electra/nbest.py)


def read_texts(path) -> list[tuple[object, str]]:
    """(id, text) pairs: a .jsonl file of {"text", "id" (optional)} objects, or any other file one text a line;
    blank lines are skipped and the id is the line number unless given."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"input file not found: {path}")
    if path.suffix == ".jsonl":
        out = []
        for n, obj in read_jsonl(path):
            if not isinstance(obj.get("text"), str):
                raise ElectraError(f"{path} line {n}: no \"text\" string")
            out.append((obj.get("id", n), obj["text"]))
        return out
    out = [(n, line) for n, line in enumerate(read_utf8(path).splitlines(), 1) if line.strip()]
    if not out:
        raise ElectraError(f"{path} has no text")
    return out


def nbest_scores(lm, items: list[NBest], method: str = "electra", per_token: bool = False,
                 batch_size: int = 64) -> list[list[float]]:
    """The model score of every hypothesis, per list: log p(all original) (electra) or PLL, summed over tokens or,
    with `per_token`, averaged. All hypotheses of all lists are scored together (sorted batching)."""
    flat = [h for it in items for h in it.hyps]
    scored = score_texts(lm, flat, method, batch_size)
    values = [s.logp_per_token if per_token else s.logp for s in scored]
    out, k = [], 0
    for it in items:
        out.append(values[k:k + len(it.hyps)])
        k += len(it.hyps)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Command line


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="a pretraining run/checkpoint of ours, or an HF folder: ElectraForPreTraining for "
                             "--method electra, ElectraForMaskedLM for --method pll")
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="texts, one per line (or .jsonl with a \"text\" field); with --nbest, JSONL N-best lists "
                             "{\"id\", \"hyps\", \"scores\" (optional), \"ref\" (optional)}")
    parser.add_argument("--method", default="electra", metavar="M[,M]",
                        help="electra (discriminator, one pass per text), pll (generator masked pseudo-log-"
                             "likelihood, one pass per token), or both comma-separated (electra)")
    parser.add_argument("--generator", metavar="DIR", help="the generator for pll when --model is a discriminator "
                        "folder (default: --model)")
    parser.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder or vocab.txt (default: the model's)")
    parser.add_argument("--output", metavar="FILE", help="write the JSONL here (default: stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--words", action="store_true", help="also p per word (pieces' log scores summed)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="texts per pass (electra) or masked copies per pass (pll) (64)")
    parser.add_argument("--nbest", action="store_true", help="--input holds N-best lists: rerank them")
    parser.add_argument("--per-token", action="store_true",
                        help="rerank with the length-normalised score (per token) instead of the sum")
    parser.add_argument("--dev", metavar="FILE", help="N-best lists with references to tune lambda on (grid)")
    parser.add_argument("--lambda", dest="lam", type=float, default=None, metavar="L",
                        help="weight of the model score when not tuned on --dev (1.0)")
    parser.add_argument("--lambda-grid", metavar="L,L,...", help=f"the grid for --dev (default: "
                        f"{','.join(f'{x:g}' for x in LAMBDA_GRID)})")


def _methods(spec: str) -> list[str]:
    methods = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ElectraError(f"unknown --method '{spec}' (choose from {', '.join(METHODS)}, comma-separated)")
    return list(dict.fromkeys(methods))


def _grid(spec: str | None) -> tuple[float, ...]:
    if spec is None:
        return LAMBDA_GRID
    try:
        grid = tuple(float(x) for x in spec.split(","))
    except ValueError:
        raise ElectraError(f"--lambda-grid must be comma-separated numbers, got '{spec}'") from None
    if not grid or not all(math.isfinite(x) for x in grid):
        raise ElectraError(f"--lambda-grid must be comma-separated finite numbers, got '{spec}'")
    return grid


def _check_writable(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise ElectraError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise ElectraError(f"{path} already exists; pass --overwrite to replace it")


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _r(x: float) -> float:
    return round(float(x), 6)


def run(args: argparse.Namespace) -> int:
    from electra.usage import load_model

    methods = _methods(args.method)
    grid = _grid(args.lambda_grid)
    if args.batch_size < 1:
        raise ElectraError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.nbest and (args.dev or args.lam is not None or args.lambda_grid or args.per_token):
        raise ElectraError("--dev, --lambda, --lambda-grid and --per-token apply to --nbest only")
    if args.dev and args.lam is not None:
        raise ElectraError("give --dev (tune lambda) or --lambda (fixed), not both")
    if args.output:
        _check_writable(Path(args.output), args.overwrite)
    items = read_nbest(args.input) if args.nbest else None
    texts = None if args.nbest else read_texts(args.input)
    dev = read_nbest(args.dev) if args.dev else None
    if dev is not None and any(it.ref is None for it in dev):
        raise ElectraError(f"--dev {args.dev}: every N-best list needs a \"ref\" to tune lambda on")
    models = {m: load_model(args.generator if m == "pll" and args.generator else args.model, METHODS[m],
                            args.tokenizer) for m in methods}

    lines, summary = [], {"input": str(args.input), "threads": torch.get_num_threads()}
    if not args.nbest:
        rows = [{"id": i, "text": t} for i, t in texts]
        for m in methods:
            scored, secs = _timed(score_texts, models[m], [t for _, t in texts], m, args.batch_size)
            summary[m] = {"seconds": round(secs, 3), "texts_per_s": round(len(texts) / max(secs, 1e-9), 1)}
            for row, s in zip(rows, scored):
                row.update({"tokens": len(s.token_logp), m: _r(s.logp), f"{m}_per_token": _r(s.logp_per_token)})
                if args.words:
                    row[f"{m}_words"] = [[w, float(f"{p:.6g}")] for w, p in s.words()]
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    else:
        has_refs = all(it.ref is not None for it in items)
        first = [it.first_pass() for it in items]
        if has_refs:
            baseline = "first_pass" if any(it.scores for it in items) else "first_hypothesis"
            summary[baseline] = nbest_metrics(items, [o[0] for o in rerank(items, first, 0.0)])
            summary["oracle_top1"] = 100 * sum(normalize_space(it.ref) in {normalize_space(h) for h in it.hyps} for it in items) / len(items)
        rows = [{"id": it.id, "hyps": it.hyps, "first_pass": it.first_pass(), "best": {}} for it in items]
        for m in methods:
            scores, secs = _timed(nbest_scores, models[m], items, m, args.per_token, args.batch_size)
            info = {"seconds": round(secs, 3), "hyps_per_s": round(sum(map(len, first)) / max(secs, 1e-9), 1)}
            lam = 1.0 if args.lam is None else args.lam
            if dev is not None:
                lam, table = tune_lambda(dev, nbest_scores(models[m], dev, m, args.per_token, args.batch_size), grid)
                info["dev"] = next(r for r in table if r["lambda"] == lam)
            info["lambda"] = lam
            orders = rerank(items, scores, lam)
            if has_refs:
                info.update(nbest_metrics(items, [o[0] for o in orders]))
                info["model_only"] = nbest_metrics(items, [o[0] for o in rerank(
                    [NBest(it.id, it.hyps, None, it.ref) for it in items], scores, 1.0)])
            summary[m] = info
            for row, s, o in zip(rows, scores, orders):
                row[m] = [_r(x) for x in s]
                row["best"][m] = o[0]
        for row, it in zip(rows, items):
            if it.ref is not None:
                row["ref"] = it.ref
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    text = "".join(line + "\n" for line in lines)
    if args.output:
        path = Path(args.output)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    else:
        sys.stdout.write(text)
    print(json.dumps({"summary": summary}), file=sys.stderr)
    return 0
