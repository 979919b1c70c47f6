"""Synthetic N-best reranking: does the discriminator's log p(all original) pick the real sentence out of
confusable variants as well as the generator's masked pseudo-log-likelihood (PLL), and how much faster is it?

    .venv/bin/python benchmarks/nbest.py                      # builds runs/nbest-demo first if it is absent
    .venv/bin/python benchmarks/nbest.py --run runs/demo --lists 150 --n 5

There is no ASR data here, so the N-best lists are SYNTHETIC: each is a held-out English Wikipedia sentence (from
the documents after the first 8 MB of the sample, which the demo models train on) plus N-1 variants of it, in a
random order. A variant has 1-3 edits, each one of:

    gen    a whole word (one WordPiece, alphabetic) replaced by a different whole word sampled from the model's own
           generator at that position, masked: a word-level confusion like an ASR substitution
    word   a whole word replaced by a different word drawn from the other held-out sentences (their word
           frequencies): a confusion that owes nothing to the model
    char   one character edit inside a word of 3+ letters: swap two neighbours, delete, insert or substitute a letter
    mix    gen or char, picked per edit

Every hypothesis, the original included, is the tokenizer's decoded text (lowercase, punctuation spaced), so
formatting gives nothing away. The original is the reference. One set of lists is built per edit kind;
the scores (electra.score, no first-pass score: model only):

    electra           log p(every token original), the discriminator, one pass per hypothesis
    electra/token     the same divided by the number of tokens
    pll               masked PLL with the generator, one pass per token (Salazar et al. 2020)
    pll/token         PLL divided by the number of tokens: the length-normalised generator likelihood
    chance            the expectation of a uniform pick (top-1 = 1/N; WER = the mean WER of the list)
    fewest tokens     the hypothesis with the fewest WordPiece tokens: the length prior a summed score carries
                      (character edits split words into more pieces)

Reported: top-1 recovery (the chosen hypothesis is the original) and WER of the chosen hypotheses (jiwer), and the
seconds each model spent scoring the same hypotheses, measured in this run, with the load average. Caveat: "gen"
substitutes come from the generator that ELECTRA's discriminator was trained against and that PLL uses: they are
the discriminator's training distribution and the generator's own likely words (hard for PLL by construction).

Without --run the script builds a model the way `make demo` does (the 8,000-entry WordPiece tokenizer and the
8 MB packed corpus cached in .cache/demo/, configs/demo.toml: a 2-layer discriminator of hidden 128, generator at
half width) for --steps steps into --out, and reuses it on the next run. The numbers are for that small model.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
import time
from pathlib import Path

import torch

from electra.nbest import NBest, nbest_metrics, rerank
from electra.score import nbest_scores
from electra.sources import REPO_ROOT
from electra.usage import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infill_eval import held_out_sentences  # noqa: E402  (the same held-out documents as the usage benchmarks)

KINDS = ("gen", "word", "char", "mix")


def build_model(out: Path, steps: int) -> Path:
    """A configs/demo.toml run of `steps` steps on the demo's cached tokenizer and data (built when absent)."""
    from electra.checkpoint import latest_valid
    from electra.demo import find_data, tokenizer_and_data
    from electra.pretrain import load_pretrain_config, pretrain

    if out.is_dir() and latest_valid(out, report=lambda line: None) is not None:
        print(f"[nbest] reusing the run in {out}", file=sys.stderr, flush=True)
        return out
    corpus, _ = find_data()
    data_dir = tokenizer_and_data(corpus)
    cfg = load_pretrain_config(REPO_ROOT / "configs" / "demo.toml", [
        f"--data.dir={data_dir}", f"--run.out={out}", f"--train.steps={steps}",
        f"--optim.warmup_steps={max(1, steps // 10)}", f"--train.log_every={max(1, steps // 6)}",
        "--train.eval_every=0", f"--train.checkpoint_every={steps}", "--run.progress=false",
        "--run.tensorboard=false", "--run.report=false"])
    start = time.perf_counter()
    pretrain(cfg, overwrite=True)
    print(f"[nbest] pretrained {steps} steps in {time.perf_counter() - start:.0f} s into {out}", file=sys.stderr,
          flush=True)
    return out


def load_pair(run: Path):
    """(discriminator, generator) from a run of ours, or a folder holding discriminator/ and generator/."""
    if (run / "discriminator" / "config.json").is_file():
        return load_model(run / "discriminator", "discriminator"), load_model(run / "generator", "generator")
    return load_model(run, "discriminator"), load_model(run, "generator")


def char_edit(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word) - 1)
    op = rng.choice(("swap", "delete", "insert", "substitute"))
    if op == "swap" and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "delete":
        return word[:i] + word[i + 1:]
    if op == "insert":
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i:]
    return word[:i] + rng.choice([c for c in string.ascii_lowercase if c != word[i]]) + word[i + 1:]


_WORDS: dict[int, torch.Tensor] = {}


def whole_words(gen) -> torch.Tensor:
    """(V,) bool: the vocabulary entries that are whole alphabetic words (no "##" piece, no digit or sign)."""
    if id(gen) not in _WORDS:
        V = gen.model.cfg.vocab_size
        ok = torch.zeros(V, dtype=torch.bool)
        for i in range(min(V, gen.tokenizer.get_vocab_size())):
            t = gen.tokenizer.id_to_token(i)
            ok[i] = t is not None and t.isalpha() and t.isascii()
        _WORDS[id(gen)] = ok
    return _WORDS[id(gen)]


@torch.no_grad()
def gen_edit(gen, ids: list[int], rng: random.Random, torch_rng: torch.Generator) -> list[int]:
    """Replace one whole-word token (a word that is one WordPiece) by a different whole word sampled from the
    generator at that position, masked: a word-level confusion, like an ASR substitution."""
    words = whole_words(gen)
    tok = [gen.tokenizer.id_to_token(i) for i in ids]
    cands = [p for p in range(1, len(ids) - 1) if words[ids[p]] and not tok[p + 1].startswith("##")]
    if not cands:
        return ids
    p = rng.choice(cands)
    x = torch.tensor([ids])
    x[0, p] = gen.special["mask"]
    logits = gen.model(x, torch.zeros_like(x), torch.ones_like(x))[1][0, p].float()  # (V,)
    logits = logits.masked_fill(~words, float("-inf"))
    logits[ids[p]] = float("-inf")  # a different word
    new = int(torch.multinomial(logits.softmax(-1), 1, generator=torch_rng))
    return ids[:p] + [new] + ids[p + 1:]


def variant(gen, text: str, kind: str, rng: random.Random, torch_rng: torch.Generator, pool: list[str]) -> str:
    for _ in range(1 + rng.randrange(3)):
        edit = rng.choice(("gen", "char")) if kind == "mix" else kind
        if edit == "gen":
            ids = gen.tokenizer.encode(text).ids  # [CLS] ... [SEP]
            text = gen.tokenizer.decode(gen_edit(gen, ids, rng, torch_rng)[1:-1])
            continue
        words = text.split()
        choices = [i for i, w in enumerate(words) if len(w) >= (3 if edit == "char" else 1) and w.isalpha()]
        if not choices:
            continue
        i = rng.choice(choices)
        if edit == "char":
            words[i] = char_edit(words[i], rng)
        else:
            words[i] = rng.choice([w for w in rng.sample(pool, 8) if w != words[i]] or [words[i]])
        text = " ".join(words)
    return text


def make_lists(gen, sentences: list[str], n: int, kind: str, seed: int, pool: list[str]) -> list[NBest]:
    rng, torch_rng = random.Random(seed), torch.Generator().manual_seed(seed)
    items = []
    for k, s in enumerate(sentences):
        ref = gen.tokenizer.decode(gen.tokenizer.encode(s, add_special_tokens=False).ids)
        hyps, tries = {ref}, 0
        while len(hyps) < n and tries < 20 * n:
            hyps.add(variant(gen, ref, kind, rng, torch_rng, pool))
            tries += 1
        hyps = sorted(hyps)
        rng.shuffle(hyps)
        items.append(NBest(f"{kind}-{k}", hyps, None, ref))
    return items


def chance(items: list[NBest]) -> dict:
    top1, wer = [], []
    for it in items:
        per = [nbest_metrics([it], [i]) for i in range(len(it.hyps))]
        top1.append(sum(m["top1"] for m in per) / len(per))
        wer.append(sum(m["wer"] for m in per) / len(per))
    # the expected corpus WER of a uniform pick: per-list mean WER weighted by reference length (linearity)
    words = [len(it.ref.split()) for it in items]
    return {"top1": sum(top1) / len(top1), "wer": sum(w * x for w, x in zip(words, wer)) / sum(words)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", metavar="DIR", help="a pretraining run of ours, or a folder with discriminator/ and "
                    "generator/ HF folders (default: build --out)")
    ap.add_argument("--out", default=str(REPO_ROOT / "runs" / "nbest-demo"),
                    help="where to build the model when --run is not given (runs/nbest-demo)")
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps of the built model (300)")
    ap.add_argument("--lists", type=int, default=100, help="N-best lists per edit kind (100)")
    ap.add_argument("--n", type=int, default=5, help="hypotheses per list, the original included (5)")
    ap.add_argument("--min-words", type=int, default=8, help="shortest held-out sentence in words (8)")
    ap.add_argument("--max-words", type=int, default=25, help="longest held-out sentence in words (25)")
    ap.add_argument("--batch-size", type=int, default=64, help="texts (electra) / masked copies (pll) per pass (64)")
    ap.add_argument("--seed", type=int, default=0, help="sentence and edit seed (0)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the dev box is shared)")
    ap.add_argument("--save", metavar="DIR", help="also write the lists as DIR/{gen,word,char,mix}.jsonl for "
                    "`electra score --nbest`")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    started = time.perf_counter()
    run = Path(args.run) if args.run else build_model(Path(args.out), args.steps)
    disc, gen = load_pair(run)

    sentences = held_out_sentences(args.lists * len(KINDS), args.seed, args.min_words, args.max_words)
    pool = [w for s in sentences for w in gen.tokenizer.decode(gen.tokenizer.encode(s).ids[1:-1]).split()
            if w.isalpha()]
    sets = {kind: make_lists(gen, sentences[i * args.lists:(i + 1) * args.lists], args.n, kind, args.seed + i, pool)
            for i, kind in enumerate(KINDS)}
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for kind, items in sets.items():
            (Path(args.save) / f"{kind}.jsonl").write_text("".join(json.dumps(
                {"id": it.id, "hyps": it.hyps, "ref": it.ref}) + "\n" for it in items))

    results, seconds, hyps_total, tokens_total = {}, {"electra": 0.0, "pll": 0.0}, 0, 0
    for kind, items in sets.items():
        hyps_total += sum(len(it.hyps) for it in items)
        lengths = [[len(disc.tokenizer.encode(h, add_special_tokens=False).ids) for h in it.hyps] for it in items]
        fewest = [o[0] for o in rerank(items, [[-c for c in cc] for cc in lengths], 1.0)]
        rows = {"chance": chance(items), "fewest tokens": nbest_metrics(items, fewest)}
        for method, lm in (("electra", disc), ("pll", gen)):
            t = time.perf_counter()
            total = nbest_scores(lm, items, method, per_token=False, batch_size=args.batch_size)
            seconds[method] += time.perf_counter() - t
            counts = [[len(lm.tokenizer.encode(h, add_special_tokens=False).ids) for h in it.hyps] for it in items]
            per_token = [[s / max(1, c) for s, c in zip(ss, cc)] for ss, cc in zip(total, counts)]
            for name, scores in ((method, total), (f"{method}/token", per_token)):
                rows[name] = nbest_metrics(items, [o[0] for o in rerank(items, scores, 1.0)])
        tokens_total += sum(map(sum, lengths))
        results[kind] = rows

    end_load = os.getloadavg()
    print(f"\n{len(sentences)} held-out sentences, N = {args.n} (the original + {args.n - 1} variants), "
          f"{hyps_total} hypotheses, {tokens_total} tokens; model {disc.path.parent}")
    print("\n| scorer | " + " | ".join(f"{k}: top-1 % | {k}: WER %" for k in KINDS) + " |")
    print("|---|" + "---|---|" * len(KINDS))
    for name in ("chance", "fewest tokens", "electra", "electra/token", "pll", "pll/token"):
        cells = " | ".join(f"{results[k][name]['top1']:.1f} | {results[k][name]['wer']:.2f}" for k in KINDS)
        print(f"| {name} | {cells} |")
    ratio = seconds["pll"] / max(seconds["electra"], 1e-9)
    print(f"\nscoring time, all {hyps_total} hypotheses: electra {seconds['electra']:.2f} s "
          f"({hyps_total} passes), pll {seconds['pll']:.2f} s ({tokens_total} masked passes, batched): "
          f"PLL / ELECTRA = {ratio:.1f}x; threads {torch.get_num_threads()}; load average "
          f"{load_start[0]:.2f} at the start, {end_load[0]:.2f} at the end; whole script "
          f"{time.perf_counter() - started:.0f} s")
    print(json.dumps({"results": results, "seconds": {k: round(v, 3) for k, v in seconds.items()},
                      "pll_over_electra": round(ratio, 2), "hypotheses": hyps_total, "tokens": tokens_total,
                      "load_average": [round(load_start[0], 2), round(end_load[0], 2)], "model": str(run)}))


if __name__ == "__main__":
    main()
