"""Reference points for a replaced-token-detection AUC: two cheap detectors scored on the same corrupted tokens as
the discriminator, and the representation-collapse measure (mean cosine between hidden states of random tokens).

    from electra.reference import Corruptions, fit_bigram, fit_token_prior, reference_aucs, run_batches
    held_out = Corruptions.from_outputs(run_batches(objective, "runs/data", "valid", 64, 8, device, autocast, seed=1))
    train = Corruptions.from_outputs(run_batches(objective, "runs/data", "train", 64, 8, device, autocast, seed=2))
    reference_aucs(held_out, fit_token_prior(train, vocab_size), fit_bigram("runs/data"))  # {"rtd_auc", ...}

- The token prior knows no context: P(replaced | token), counted on the corruptions of training batches by the
  generator of the moment. A discriminator at its AUC has learned which tokens the generator puts in, nothing more.
- The bigram detector has never been trained: counts of adjacent token pairs in the training text. A token whose
  (left, token) and (token, right) pairs are unusual (high -log P(right | left)) is called replaced. A
  discriminator above its AUC reads more context than adjacent pairs.
- Collapse: the mean cosine between the final hidden states of random token pairs of held-out text. Near 1, every
  token looks alike to a classifier head; a fresh random-init copy of the same encoder is the reference.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

BIGRAM_MAX_TOKENS = 2_000_000  # training tokens counted for the bigram detector: a second of numpy
SMOOTH = 0.5  # add-k smoothing of pair counts


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when one class is absent."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else None


@dataclass
class Corruptions:
    """Corrupted inputs of some batches as the discriminator saw them: ids (N, T), labels (N, T) (1 = replaced),
    keep (N, T) (non-pad tokens, those the RTD loss counts) and the discriminator's logits (N, T), all numpy."""

    ids: np.ndarray
    labels: np.ndarray
    keep: np.ndarray
    logits: np.ndarray

    @classmethod
    def from_outputs(cls, outs: list[dict]) -> Corruptions | None:
        """From objective forward outputs (those with `corrupted`); None when the objective has no corruption."""
        outs = [o for o in outs if "corrupted" in o and "rtd_labels" in o]
        if not outs:
            return None
        width = max(o["corrupted"].shape[1] for o in outs)

        def cat(key):
            parts = [o[key].float().cpu().numpy() for o in outs]  # (B, T_batch) each
            return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts])

        return cls(cat("corrupted").astype(np.int64), cat("rtd_labels").astype(np.int64),
                   cat("rtd_weights") > 0, cat("rtd_logits"))


def run_batches(objective, data_dir, split: str, batch_size: int, max_batches: int, device, autocast,
                seed: int) -> list[dict]:
    """The objective's outputs (no gradient, eval mode) on up to `max_batches` batches of `split` in file order,
    masks and samples drawn from `seed` (the same corruption positions at every call)."""
    import torch

    from electra.loader import PretrainLoader

    loader = PretrainLoader(data_dir, split, batch_size=batch_size, shuffle=False, drop_last=False,
                            pad_to_multiple=8)
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training, outs = objective.training, []
    objective.eval()
    with torch.no_grad():
        for batch in loader:
            if max_batches and len(outs) >= max_batches:
                break
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                outs.append(objective(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                                      generator=gen))
    objective.train(was_training)
    return outs


# ---------------------------------------------------------------------------------------------------------------
# The context-free token prior


def fit_token_prior(train: Corruptions, vocab_size: int, strength: float = 5.0) -> np.ndarray:
    """(V,) P(replaced | token), counted on training corruptions and shrunk toward the overall rate (a token seen
    n times weighs n / (n + strength))."""
    ids, labels = train.ids[train.keep], train.labels[train.keep]
    seen = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    replaced = np.bincount(ids, weights=labels, minlength=vocab_size)
    rate = labels.mean() if len(labels) else 0.0
    return (replaced + strength * rate) / (seen + strength)


def token_prior_scores(prior: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return prior[np.clip(ids, 0, len(prior) - 1)]


# ---------------------------------------------------------------------------------------------------------------
# The bigram count detector


@dataclass
class Bigram:
    """Adjacent-pair counts of training text: `keys` (sorted left * V + right) with `counts`, unigram counts."""

    vocab_size: int
    keys: np.ndarray
    counts: np.ndarray
    unigram: np.ndarray
    total: int

    @classmethod
    def from_sequences(cls, sequences, vocab_size: int) -> Bigram:
        pairs = [s[:-1].astype(np.int64) * vocab_size + s[1:] for s in sequences if len(s) > 1]
        pairs = np.concatenate(pairs) if pairs else np.zeros(0, np.int64)
        keys, counts = np.unique(pairs, return_counts=True)
        flat = np.concatenate([np.asarray(s, np.int64) for s in sequences]) if sequences else np.zeros(0, np.int64)
        unigram = np.bincount(flat, minlength=vocab_size).astype(np.float64)
        return cls(vocab_size, keys, counts.astype(np.float64), unigram, max(int(unigram.sum()), 1))

    def pair_counts(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        q = left.astype(np.int64) * self.vocab_size + right
        i = np.clip(np.searchsorted(self.keys, q), 0, max(len(self.keys) - 1, 0))
        if not len(self.keys):
            return np.zeros(q.shape)
        return np.where(self.keys[i] == q, self.counts[i], 0.0)

    def surprisal(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """-log P(right | left), add-k smoothed: low for usual pairs, high for pairs the text never has."""
        c = self.pair_counts(left, right) + SMOOTH
        return np.log(self.unigram[left] + SMOOTH * self.vocab_size) - np.log(c)

    def scores(self, ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """(N, T) how unusual each token's pairs with its kept neighbours are: the surprisal of (left, t) plus
        that of (t, right)."""
        ids = np.clip(ids, 0, self.vocab_size - 1)
        s = np.zeros(ids.shape)
        pair = np.where(keep[:, 1:] & keep[:, :-1], self.surprisal(ids[:, :-1], ids[:, 1:]), 0.0)  # (t-1, t)
        s[:, 1:] += pair  # token t by its left pair
        s[:, :-1] += pair  # token t-1 by its right pair
        return s


def fit_bigram(data_dir, max_tokens: int = BIGRAM_MAX_TOKENS) -> Bigram:
    """Bigram counts over the first `max_tokens` tokens of the train split (cached per folder and size)."""
    return _fit_bigram(str(data_dir), max_tokens)


@functools.lru_cache(maxsize=4)
def _fit_bigram(data_dir: str, max_tokens: int) -> Bigram:
    from electra.loader import PretrainDataset

    data = PretrainDataset(data_dir, "train")
    sequences, n = [], 0
    for i in range(len(data)):
        if n >= max_tokens:
            break
        sequences.append(data.example(i))
        n += len(sequences[-1])
    return Bigram.from_sequences(sequences, int(data.meta["vocab_size"]))


def reference_aucs(held_out: Corruptions, prior: np.ndarray | None, bigram: Bigram | None) -> dict:
    """{"rtd_auc", "token_prior_auc", "bigram_auc"} on the kept tokens of `held_out` (None where undefined)."""
    keep, y = held_out.keep, held_out.labels[held_out.keep]
    out = {"rtd_auc": auc(y, held_out.logits[keep])}
    if prior is not None:
        out["token_prior_auc"] = auc(y, token_prior_scores(prior, held_out.ids)[keep])
    if bigram is not None:
        out["bigram_auc"] = auc(y, bigram.scores(held_out.ids, keep)[keep])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Representation collapse


def mean_pair_cosine(hidden: np.ndarray, keep: np.ndarray, pairs: int = 4096, seed: int = 0) -> float | None:
    """Mean cosine between the hidden states (N, T, H) of random pairs of distinct kept tokens."""
    h = hidden[keep].astype(np.float64)  # (K, H)
    if len(h) < 2:
        return None
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(h), pairs)
    b = (a + rng.integers(1, len(h), pairs)) % len(h)  # never the same token
    h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    return float((h[a] * h[b]).sum(1).mean())


def hidden_cosines(objective, data_dir, batch_size: int, max_batches: int, device, seed: int) -> dict:
    """{"hidden_cos", "hidden_cos_random"}: mean cosine between final hidden states of random ordinary tokens of
    held-out (uncorrupted) text, for the discriminator and for a random-init copy of its architecture."""
    import torch

    from electra.loader import PretrainLoader
    from electra.model import Encoder

    encoder = getattr(objective, "discriminator", None)
    if encoder is None:
        return {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = Encoder(encoder.cfg).to(device).eval()
    special = getattr(objective, "is_special", None)
    loader = PretrainLoader(data_dir, "valid", batch_size=batch_size, shuffle=False, drop_last=False,
                            pad_to_multiple=8)
    states, keeps, was_training = {"hidden_cos": [], "hidden_cos_random": []}, [], encoder.training
    encoder.eval()
    with torch.no_grad():
        for n, batch in enumerate(loader):
            if n >= max_batches:
                break
            ids, types, mask = (batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask"))
            keep = mask.bool() if special is None else mask.bool() & ~special[ids]
            keeps.append(keep.reshape(-1).cpu().numpy())
            for key, model in (("hidden_cos", encoder), ("hidden_cos_random", fresh)):
                h = model(ids, types, mask).float()
                states[key].append(h.reshape(-1, h.size(-1)).cpu().numpy())
    encoder.train(was_training)
    if not keeps:
        return {}
    keep = np.concatenate(keeps)
    return {k: mean_pair_cosine(np.concatenate(v)[:, None, :], keep[:, None], seed=seed) for k, v in states.items()}
