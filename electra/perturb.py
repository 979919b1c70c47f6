"""Robustness: word-level perturbations of a classification dev set, and how well a discriminator flags them.

    electra evaluate --model runs/sst2/model --data DIR --perturb typo --rate 0.1 --seed 0
    electra evaluate --model runs/sst2/model --data DIR --perturb substitute --rate 0.2 --detector runs/pretrain

    from electra.perturb import perturb_text, perturb_examples
    perturb_text("a gripping film", "swap", 0.5, random.Random(0), vocab=[])   # Perturbed(text, touched, n_words)

The four kinds are TextAttack / nlpaug's usual ones, written small here (no extra dependency). Words are the
whitespace-separated pieces of a text; `rate` is the fraction of them touched, rounded, at least one when rate > 0:
    typo        one character edit inside each touched word (replace, insert, or delete a character)
    swap        touched words swapped with their right neighbour, in non-overlapping pairs (two words per pair)
    delete      touched words removed (one word always stays)
    substitute  touched words replaced by another word drawn uniformly from the dataset's vocabulary (the distinct
                words of the split being scored)
Example i of a split uses random.Random(seed * 1_000_003 + i): the same seed gives the same perturbed set. Labels
are never touched. Detection (`--detector`): a word of the perturbed text is flagged when the discriminator's
p(replaced) of any of its tokens exceeds 0.5 (fixed threshold, not tuned); precision and recall are over the words
the perturbation touched (typo, swap, substitute; a deleted word has nothing left to flag).
"""
from __future__ import annotations

import dataclasses
import random
import string
from dataclasses import dataclass

from electra.errors import ElectraError

PERTURBATIONS = ("typo", "swap", "delete", "substitute")
LETTERS = string.ascii_lowercase
THRESHOLD = 0.5  # p(replaced) above which a word counts as flagged


@dataclass
class Perturbed:
    """A perturbed text and the indices of its words that the perturbation changed (none for deletions)."""

    text: str
    touched: list[int]
    n_words: int  # words of the original text
    n_changed: int  # words of the original text touched (deleted ones included)


def n_touched(n_words: int, rate: float) -> int:
    """round(rate * words), at least one when rate > 0 and there is a word."""
    return 0 if rate <= 0 or n_words == 0 else max(1, min(n_words, round(rate * n_words)))


def _typo(word: str, rng: random.Random) -> str:
    ops = ("replace", "insert", "delete") if len(word) >= 2 else ("replace", "insert")
    op, i = rng.choice(ops), rng.randrange(len(word))
    if op == "insert":
        return word[:i] + rng.choice(LETTERS) + word[i:]
    if op == "delete":
        return word[:i] + word[i + 1:]
    return word[:i] + rng.choice([c for c in LETTERS if c != word[i]]) + word[i + 1:]


def perturb_text(text: str, kind: str, rate: float, rng: random.Random, vocab: list[str]) -> Perturbed:
    """`text` with round(rate * words) of its words perturbed by `kind` (see the module docstring)."""
    words = text.split()
    k = n_touched(len(words), rate)
    if kind == "typo":
        touched = sorted(rng.sample(range(len(words)), k))
        for i in touched:
            words[i] = _typo(words[i], rng)
        return Perturbed(" ".join(words), touched, len(words), k)
    if kind == "swap":
        starts = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
        rng.shuffle(starts)
        used: set[int] = set()
        for i in starts:
            if len(used) + 2 > max(2, k) or i in used or i + 1 in used:
                continue
            words[i], words[i + 1] = words[i + 1], words[i]
            used |= {i, i + 1}
        return Perturbed(" ".join(words), sorted(used), len(words), len(used))
    if kind == "delete":
        k = min(k, len(words) - 1)
        gone = set(rng.sample(range(len(words)), k)) if k > 0 else set()
        return Perturbed(" ".join(w for i, w in enumerate(words) if i not in gone), [], len(words), k)
    if kind == "substitute":
        touched = sorted(rng.sample(range(len(words)), k))
        for i in touched:
            choices = [w for w in rng.sample(vocab, min(len(vocab), 8)) if w != words[i]]
            if not choices:
                raise ElectraError("substitute needs a vocabulary of at least two distinct words")
            words[i] = choices[0]
        return Perturbed(" ".join(words), touched, len(words), k)
    raise ElectraError(f"unknown perturbation '{kind}'; choose one of {', '.join(PERTURBATIONS)}")


def perturb_examples(examples: list, kind: str, rate: float, seed: int = 0) -> tuple[list, list[Perturbed]]:
    """(the examples with text_a (and text_b) perturbed, labels kept; one Perturbed per text perturbed)."""
    if kind not in PERTURBATIONS:
        raise ElectraError(f"unknown perturbation '{kind}'; choose one of {', '.join(PERTURBATIONS)}")
    if not 0 < rate <= 1:
        raise ElectraError(f"--rate {rate} must be in (0, 1]")
    if examples and not hasattr(examples[0], "text_a"):
        raise ElectraError("--perturb works on text classification tasks (examples with text_a / text_b)")
    vocab = sorted({w for e in examples for t in (e.text_a, e.text_b) if t for w in t.split()})
    out, records = [], []
    for i, e in enumerate(examples):
        rng = random.Random(seed * 1_000_003 + i)
        a = perturb_text(e.text_a, kind, rate, rng, vocab)
        b = perturb_text(e.text_b, kind, rate, rng, vocab) if e.text_b is not None else None
        records += [a] + ([b] if b is not None else [])
        out.append(dataclasses.replace(e, text_a=a.text, text_b=b.text if b is not None else None))
    return out, records


def summary(kind: str, rate: float, seed: int, records: list[Perturbed]) -> dict:
    words = sum(r.n_words for r in records)
    changed = sum(r.n_changed for r in records)
    return {"kind": kind, "rate": rate, "seed": seed, "texts": len(records), "words": words,
            "words_touched": changed, "touched_fraction": round(changed / max(1, words), 4)}


def word_flags(detection) -> list[float]:
    """p(replaced) per whitespace word of `detection.text`: the highest of the tokens that start inside it."""
    spans, pos = [], 0
    for w in detection.text.split():
        start = detection.text.index(w, pos)
        spans.append((start, start + len(w)))
        pos = start + len(w)
    best = [0.0] * len(spans)
    j = 0
    for (s, _), p in zip(detection.offsets, detection.probs):
        while j + 1 < len(spans) and s >= spans[j][1]:
            j += 1
        if spans:
            best[j] = max(best[j], p)
    return best


def detection_scores(detector_path, records: list[Perturbed], threshold: float = THRESHOLD) -> dict:
    """Precision / recall / F1 of flagging the touched words with the discriminator at `detector_path`."""
    from electra.usage import detect, load_model

    disc = load_model(detector_path, "discriminator")
    scored = [r for r in records if r.text.strip()]
    tp = fp = fn = 0
    for r, d in zip(scored, detect(disc, [r.text for r in scored])):
        touched = set(r.touched)
        for i, p in enumerate(word_flags(d)):
            flagged = p > threshold
            tp += flagged and i in touched
            fp += flagged and i not in touched
            fn += (not flagged) and i in touched
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"detector": str(detector_path), "threshold": threshold, "rule": "word flagged when p(replaced) > 0.5",
            "precision": round(100 * precision, 2), "recall": round(100 * recall, 2), "f1": round(100 * f1, 2),
            "touched_words": tp + fn, "flagged_words": tp + fp}
