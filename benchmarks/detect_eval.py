"""How well does `electra detect` find an odd word? One word per held-out Wikipedia sentence is replaced by another
word of the same text (a deliberate "wrong word", the typo / odd-word use users ask for), and the discriminator's
p(replaced) is scored against where the replacement really is.

    .venv/bin/python benchmarks/detect_eval.py --model runs/usage-demo/hf/discriminator --sentences 300

Prints JSON: token-level ROC AUC (scikit-learn) of p(replaced) for the replaced token vs every other token; hit@1
(the replaced token has the highest p(replaced) of its sentence) next to the chance rate (mean of 1 / tokens);
the mean percentile rank of the replaced token (1.0 = top, 0.5 = chance); and how many tokens of the unmodified
sentences are flagged at p >= 0.5. Sentences come from the documents after the demo model's training slice (see
`infill_eval.py`), so none was seen in training.
"""
from __future__ import annotations

import argparse
import json
import random

import numpy as np
import torch

from electra.usage import detect, load_model
from infill_eval import held_out_sentences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/usage-demo/hf/discriminator",
                    help="discriminator folder (runs/usage-demo/hf/discriminator)")
    ap.add_argument("--sentences", type=int, default=300, help="held-out sentences (300)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sklearn.metrics import roc_auc_score

    disc = load_model(args.model, "discriminator")
    rng = random.Random(args.seed)
    sentences = held_out_sentences(args.sentences, args.seed)
    words = [w for s in sentences for w in s.split() if w.isalpha() and w.islower()]
    corrupted, targets = [], []
    for s in sentences:
        toks = s.split()
        choices = [i for i, w in enumerate(toks) if w.isalpha()]
        i = rng.choice(choices)
        new = rng.choice([w for w in words if w != toks[i].lower()][:5000])
        corrupted.append(" ".join(toks[:i] + [new] + toks[i + 1:]))
        targets.append(len(" ".join(toks[:i])) + (1 if i else 0))  # character offset of the replaced word
    results = detect(disc, corrupted)
    scores, labels, hits, chance, percentiles = [], [], 0, [], []
    for d, start in zip(results, targets):
        is_target = np.array([s == start or (s > start and d.text[start:s].isalpha()) for s, _ in d.offsets])
        p = np.array(d.probs)
        scores += p.tolist()
        labels += is_target.astype(int).tolist()
        best = p[is_target].max()
        hits += int(best >= p[~is_target].max())
        chance.append(1 / len(p))
        percentiles.append(float((p[~is_target] < best).mean()))
    clean = detect(disc, sentences)
    flagged = sum(sum(q >= 0.5 for q in d.probs) for d in clean)
    total = sum(len(d.probs) for d in clean)
    print(json.dumps({"model": str(disc.path), "sentences": len(sentences),
                      "roc_auc": round(float(roc_auc_score(labels, scores)), 4),
                      "hit_at_1": round(hits / len(results), 4), "hit_at_1_chance": round(float(np.mean(chance)), 4),
                      "mean_percentile_of_replaced": round(float(np.mean(percentiles)), 4),
                      "clean_tokens_flagged_at_0.5": f"{flagged}/{total}"}))


if __name__ == "__main__":
    main()
