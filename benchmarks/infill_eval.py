"""Span infilling on held-out Wikipedia sentences, scored with BLEU (sacrebleu) and ROUGE (rouge-score).

    .venv/bin/python benchmarks/infill_eval.py --model runs/usage-demo/hf/generator --sentences 300

This measures ELECTRA's generator as what it is: an encoder filling blanks. Each sentence gets one span of K
consecutive WordPiece tokens replaced by K [MASK]s (K is given: the model never decides the length), and the
filled span is compared with the original one. Methods, all on the same spans:

    most-frequent    every blank = the most frequent token of the held-out text ("the"): the floor
    one-pass         every blank = the generator's argmax, all at once (iterations = 1)
    mask-predict     iterations = K: re-mask the least confident blanks, predict again (Ghazvininejad et al. 2019)
    mask-predict+D   the same, but the discriminator picks what to re-mask (most likely "replaced" first)

Scores: span BLEU (sacrebleu corpus BLEU over the filled spans vs the original spans), ROUGE-1/2/L F1 of the spans
(rouge-score, mean), token accuracy (blanks equal to the original token), and sentence BLEU (whole filled
sentences vs the originals; inflated by the given context, shown because papers often report it).

Held-out: the demo model (`benchmarks/pretrain_usage_demo.py`) trains on the first 8 MB of the English Wikipedia
sample; sentences here come from the documents after those (the next 2 MB), never seen in training.
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import torch

from electra.readers import iter_documents, split_sentences
from electra.sources import REPO_ROOT, extract_corpus_slice, shared_data_dir
from electra.usage import infill_ids, load_model, pad_batch

TRAIN_SLICE_BYTES = 8 << 20  # must match benchmarks/pretrain_usage_demo.py
EVAL_SLICE_BYTES = 10 << 20


def held_out_sentences(n: int, seed: int, min_words: int = 12, max_words: int = 40) -> list[str]:
    """n sentences (at most 4 per document) from the documents past the training slice."""
    tarball = shared_data_dir() / "corpus/enwiki-2015-sample.tar.gz"
    train = extract_corpus_slice(tarball, REPO_ROOT / ".cache/slices/enwiki-8mb", TRAIN_SLICE_BYTES)
    wider = extract_corpus_slice(tarball, REPO_ROOT / ".cache/slices/enwiki-10mb", EVAL_SLICE_BYTES)
    seen = sum(1 for _ in iter_documents([train]))  # both slices are prefixes of the archive, cut at </doc>
    rng = random.Random(seed)
    pool = []
    for i, doc in enumerate(iter_documents([wider])):
        if i < seen:
            continue
        sents = [s for p in doc[1:] for s in split_sentences(p) if min_words <= len(s.split()) <= max_words]
        pool += rng.sample(sents, min(4, len(sents)))
    if len(pool) < n:
        raise SystemExit(f"only {len(pool)} held-out sentences found, asked for {n}")
    return rng.sample(pool, n)


def make_spans(gen, sentences: list[str], span: int, seed: int):
    """Token rows [CLS] s [SEP] and one random span of `span` tokens per row (never [CLS]/[SEP])."""
    rng = random.Random(seed * 1000 + span)
    rows, starts = [], []
    for s in sentences:
        ids = gen.tokenizer.encode(s, add_special_tokens=False).ids[:gen.max_len - 2]
        start = rng.randrange(0, len(ids) - span + 1)
        rows.append([gen.special["cls"], *ids, gen.special["sep"]])
        starts.append(start + 1)
    return rows, starts


def fill(gen, disc, rows, starts, span, iterations, batch_size=32):
    """Mask-predict over all rows, batched; returns the filled id rows."""
    out = []
    for b in range(0, len(rows), batch_size):
        ids, am = pad_batch(rows[b:b + batch_size], gen.special["pad"])
        blanks = torch.zeros_like(ids, dtype=torch.bool)
        for r, s in enumerate(starts[b:b + batch_size]):
            blanks[r, s:s + span] = True
        masked = ids.masked_fill(blanks, gen.special["mask"])
        filled, _, _ = infill_ids(gen, masked, am, blanks, iterations, disc)
        out += [filled[r, :len(rows[b + r])].tolist() for r in range(filled.size(0))]
    return out


def score(gen, rows, filled, starts, span) -> dict:
    import sacrebleu
    from rouge_score import rouge_scorer

    dec = gen.tokenizer.decode
    refs = [dec(r[s:s + span]) for r, s in zip(rows, starts)]
    hyps = [dec(f[s:s + span]) for f, s in zip(filled, starts)]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rouge = [scorer.score(r, h) for r, h in zip(refs, hyps)]
    correct = sum(int(a == b) for r, f, s in zip(rows, filled, starts) for a, b in zip(r[s:s + span], f[s:s + span]))
    full_refs = [dec(r[1:-1]) for r in rows]
    full_hyps = [dec(f[1:-1]) for f in filled]
    return {
        "span_bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
        **{f"{k}_f1": round(100 * sum(x[k].fmeasure for x in rouge) / len(rouge), 2)
           for k in ("rouge1", "rouge2", "rougeL")},
        "token_acc": round(100 * correct / (span * len(rows)), 2),
        "sentence_bleu": round(sacrebleu.corpus_bleu(full_hyps, [full_refs]).score, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/usage-demo/hf/generator", help="generator folder "
                    "(runs/usage-demo/hf/generator)")
    ap.add_argument("--discriminator", default=None, help="discriminator folder for mask-predict+D (default: the "
                    "'discriminator' folder beside --model; skipped if absent)")
    ap.add_argument("--sentences", type=int, default=300, help="held-out sentences (300)")
    ap.add_argument("--spans", type=int, nargs="+", default=[1, 3, 5], help="span lengths in tokens (1 3 5)")
    ap.add_argument("--seed", type=int, default=0, help="sentence and span sampling seed (0)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = load_model(args.model, "generator")
    disc_dir = Path(args.discriminator) if args.discriminator else Path(args.model).parent / "discriminator"
    disc = load_model(disc_dir, "discriminator") if (disc_dir / "config.json").is_file() else None
    sentences = held_out_sentences(args.sentences, args.seed)
    counts = Counter(t for s in sentences for t in gen.tokenizer.encode(s, add_special_tokens=False).ids)
    frequent = counts.most_common(1)[0][0]
    for span in args.spans:
        rows, starts = make_spans(gen, sentences, span, args.seed)
        baseline = [r[:s] + [frequent] * span + r[s + span:] for r, s in zip(rows, starts)]
        methods = {"most-frequent": baseline,
                   "one-pass": fill(gen, None, rows, starts, span, 1),
                   "mask-predict": fill(gen, None, rows, starts, span, max(1, span))}
        if disc is not None:
            methods["mask-predict+D"] = fill(gen, disc, rows, starts, span, max(1, span))
        for name, filled in methods.items():
            print(json.dumps({"span": span, "method": name, "sentences": len(rows),
                              **score(gen, rows, filled, starts, span)}), flush=True)
        example = rows[0]
        shown = {k: gen.tokenizer.decode(v[0][1:-1]) for k, v in methods.items()}
        print(json.dumps({"span": span, "example_reference": gen.tokenizer.decode(example[1:-1]), **shown}),
              flush=True)


if __name__ == "__main__":
    main()
