"""The diagnosis with reference points (electra/diagnose.py, electra/reference.py): the reference detectors measure
what they claim, the messages switch on the right conditions, representation collapse is told from random init.

    .venv/bin/python -m pytest -q tests/test_diagnose.py
"""
from __future__ import annotations

import contextlib
import json

import numpy as np
import torch

from electra.config import preset
from electra.diagnose import COLLAPSED_COS, binary_entropy, diagnose, eval_lines, evaluate, explain, explanation
from electra.objectives import build_objective
from electra.reference import Bigram, Corruptions, auc, fit_token_prior, hidden_cosines, mean_pair_cosine, \
    reference_aucs

V = 60


def _chain_text(rng, n: int, length: int, successor: np.ndarray) -> np.ndarray:
    """Sequences where each token decides the next (t -> successor[t]), so only adjacent pairs tell a replacement."""
    seqs = np.zeros((n, length), np.int64)
    seqs[:, 0] = rng.integers(0, V, n)
    for i in range(1, length):
        seqs[:, i] = successor[seqs[:, i - 1]]
    return seqs


def _corrupt(rng, seqs: np.ndarray, rate: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Replace `rate` of the tokens by uniform random other tokens; (ids, labels)."""
    labels = rng.random(seqs.shape) < rate
    other = (seqs + rng.integers(1, V, seqs.shape)) % V
    return np.where(labels, other, seqs), labels.astype(np.int64)


def test_bigram_detector_scores_where_bigrams_decide_and_chance_on_shuffled_labels():
    rng = np.random.default_rng(0)
    successor = rng.permutation(V)
    bigram = Bigram.from_sequences(list(_chain_text(rng, 400, 32, successor)), V)
    ids, labels = _corrupt(rng, _chain_text(rng, 200, 32, successor))
    keep = np.ones_like(labels, bool)
    held = Corruptions(ids, labels, keep, logits=np.zeros(ids.shape))
    assert reference_aucs(held, None, bigram)["bigram_auc"] > 0.95
    shuffled = Corruptions(ids, rng.permutation(labels.reshape(-1)).reshape(labels.shape), keep, np.zeros(ids.shape))
    assert abs(reference_aucs(shuffled, None, bigram)["bigram_auc"] - 0.5) < 0.03
    # Padding is not a neighbour: with the second half of each row dropped, the kept tokens score as before.
    half = keep.copy()
    half[:, 16:] = False
    cut = Corruptions(ids, labels, half, np.zeros(ids.shape))
    assert reference_aucs(cut, None, bigram)["bigram_auc"] > 0.95


def test_token_prior_learns_which_tokens_get_replaced_and_nothing_else():
    rng = np.random.default_rng(1)

    def corruptions(n):  # replacements are always drawn from tokens 0-9; text is uniform over 0-59
        ids = rng.integers(0, V, (n, 32))
        labels = (rng.random(ids.shape) < 0.15).astype(np.int64)
        ids = np.where(labels == 1, rng.integers(0, 10, ids.shape), ids)
        return Corruptions(ids, labels, np.ones_like(labels, bool), np.zeros(ids.shape))

    prior = fit_token_prior(corruptions(300), V)
    held = corruptions(200)
    got = reference_aucs(held, prior, None)["token_prior_auc"]
    assert got > 0.85
    # It knows no context: on the chain text above (replacements uniform over the vocab) it is at chance.
    successor = rng.permutation(V)
    ids, labels = _corrupt(rng, _chain_text(rng, 300, 32, successor))
    train = Corruptions(ids, labels, np.ones_like(labels, bool), np.zeros(ids.shape))
    ids, labels = _corrupt(rng, _chain_text(rng, 200, 32, successor))
    held = Corruptions(ids, labels, np.ones_like(labels, bool), np.zeros(ids.shape))
    assert abs(reference_aucs(held, fit_token_prior(train, V), None)["token_prior_auc"] - 0.5) < 0.05
    assert auc(np.zeros(5), np.arange(5)) is None  # one class: undefined, not a number


def _plateau(**over) -> dict:
    """Held-out numbers of a small from-scratch run on its plateau (the issue's demo at step 400)."""
    m = {"eval_rtd_auc": 0.54, "eval_token_prior_auc": 0.53, "eval_bigram_auc": 0.79, "eval_replaced_frac": 0.145,
         "eval_rtd_loss": 0.41, "eval_mlm_acc": 0.10, "eval_rtd_recall": 0.0, "tokens_seen": 1_600_000}
    return {**m, **over}


def test_explanation_puts_the_auc_beside_the_references():
    line = explanation(_plateau())
    assert line == ("AUC 0.54 (token prior 0.53, bigram 0.79): it has learned which tokens get replaced, not yet "
                    "context; normal this early at this size")
    late = explanation(_plateau(tokens_seen=500_000_000))
    assert "not yet context" in late and "not expected after this many tokens" in late and "normal" not in late
    strong = explanation(_plateau(eval_mlm_acc=0.75))
    assert "not expected with this generator" in strong
    assert "beyond adjacent words" in explanation(_plateau(eval_rtd_auc=0.86))
    assert "about as much context as adjacent-word counts" in explanation(_plateau(eval_rtd_auc=0.80))
    assert "some context" in explanation(_plateau(eval_rtd_auc=0.65))
    assert "below the context-free prior" in explanation(_plateau(eval_rtd_auc=0.45))
    assert explanation({"eval_rtd_auc": 0.7}) == "AUC 0.70"
    assert explanation({}) is None


def test_majority_class_fires_on_loss_vs_entropy_and_auc_not_on_recall():
    h = binary_entropy(0.145)
    assert abs(h - 0.4146) < 1e-3  # nats: the loss of answering 14.5% for every token
    kinds = lambda m: [k for k, _ in diagnose(m, 0.15)]  # noqa: E731
    early = diagnose(_plateau(eval_rtd_loss=0.99 * h), 0.15)
    assert [k for k, _ in early] == ["majority-class"]
    assert "majority class" in early[0][1] and "Expected this early" in early[0][1] and "1.6M" in early[0][1]
    late = diagnose(_plateau(eval_rtd_loss=0.99 * h, tokens_seen=500_000_000), 0.15)
    assert "real collapse" in late[0][1] and "generator_hidden_fraction" in late[0][1]
    strong = diagnose(_plateau(eval_rtd_loss=0.99 * binary_entropy(0.03), eval_mlm_acc=0.8, eval_replaced_frac=0.03),
                      0.15)
    assert [k for k, _ in strong][0] == "majority-class" and "generator is too strong" in strong[0][1]
    assert "generator-too-strong" in [k for k, _ in strong]
    # Recall 0 at p > 0.5 alone is no collapse: the loss is well under the entropy and the AUC is high.
    assert kinds(_plateau(eval_rtd_loss=0.6 * h, eval_rtd_auc=0.8, eval_rtd_recall=0.0)) == []
    # A loss far above the entropy is an uncalibrated start (it says 'replaced' too often), not the majority class.
    assert kinds(_plateau(eval_rtd_loss=1.6 * h, eval_rtd_auc=0.5, eval_rtd_recall=0.7)) == []
    # A high AUC with a loss still near the entropy (poor calibration early) is not the majority class either.
    assert kinds(_plateau(eval_rtd_loss=0.99 * h, eval_rtd_auc=0.75)) == []
    # Train records carry no AUC and no tokens_seen: the loss decides and the text hedges.
    train = diagnose({"rtd_loss": 0.99 * h, "replaced_frac": 0.145, "mlm_acc": 0.05, "rtd_recall": 0.3}, 0.15)
    assert [k for k, _ in train] == ["majority-class"] and "persists" in train[0][1]


def test_representation_collapse_decision():
    assert [k for k, _ in diagnose({"eval_hidden_cos": 0.99, "eval_hidden_cos_random": 0.34}, 0.15)] == [
        "representation-collapse"]
    text = diagnose({"eval_hidden_cos": 0.99, "eval_hidden_cos_random": 0.34}, 0.15)[0][1]
    assert "WORSE than random init" in text and "0.99" in text and "0.34" in text
    assert diagnose({"eval_hidden_cos": 0.5, "eval_hidden_cos_random": 0.34}, 0.15) == []
    # the measured points: the Chinese demo (fine-tuned worse than random init) and continued MiniLM (better)
    assert len(diagnose({"eval_hidden_cos": 0.90, "eval_hidden_cos_random": 0.18}, 0.15)) == 1
    assert diagnose({"eval_hidden_cos": 0.65, "eval_hidden_cos_random": 0.21}, 0.15) == []
    # a random init that is itself anisotropic is no evidence against the trained model
    assert diagnose({"eval_hidden_cos": COLLAPSED_COS + 0.01, "eval_hidden_cos_random": 0.85}, 0.15) == []
    rng = np.random.default_rng(0)
    same = np.tile(rng.normal(size=(1, 1, 16)), (4, 8, 1))
    keep = np.ones((4, 8), bool)
    assert mean_pair_cosine(same, keep) > 0.999
    assert abs(mean_pair_cosine(rng.normal(size=(4, 8, 16)), keep)) < 0.1


def _tiny_objective(prepared) -> torch.nn.Module:
    meta = json.loads((prepared / "meta.json").read_text())
    special = {k: int(meta[f"{k}_id"]) for k in ("pad", "unk", "cls", "sep", "mask")}
    torch.manual_seed(0)
    return build_objective(preset("tiny", vocab_size=meta["vocab_size"]), special)


def test_a_collapsed_encoder_is_flagged_a_random_one_is_not(tiny_prepared_dir):
    objective = _tiny_objective(tiny_prepared_dir)
    fresh = hidden_cosines(objective, tiny_prepared_dir, 16, 2, "cpu", seed=0)
    assert fresh["hidden_cos"] < COLLAPSED_COS and fresh["hidden_cos_random"] < COLLAPSED_COS
    assert "representation-collapse" not in [k for k, _ in diagnose({f"eval_{k}": v for k, v in fresh.items()}, .15)]
    with torch.no_grad():  # the last LayerNorm's gain to 0: every hidden state is its bias, one vector
        last = objective.discriminator.layers[-1].ffn_norm
        last.weight.zero_()
        last.bias.normal_()
    collapsed = hidden_cosines(objective, tiny_prepared_dir, 16, 2, "cpu", seed=0)
    assert collapsed["hidden_cos"] > 0.999 and abs(collapsed["hidden_cos_random"] - fresh["hidden_cos_random"]) < 1e-6
    found = diagnose({f"eval_{k}": v for k, v in collapsed.items()}, 0.15)
    assert [k for k, _ in found] == ["representation-collapse"]


def test_evaluate_reports_the_references_on_the_same_corruptions(tiny_prepared_dir):
    objective = _tiny_objective(tiny_prepared_dir)
    m = evaluate(objective, str(tiny_prepared_dir), 16, 3, "cpu", contextlib.nullcontext, seed=1)
    for key in ("eval_rtd_auc", "eval_token_prior_auc", "eval_bigram_auc", "eval_hidden_cos",
                "eval_hidden_cos_random", "eval_label_entropy"):
        assert m[key] is not None and np.isfinite(m[key]), key
    # An untrained generator replaces tokens at random: the bigram counts see that; a random discriminator does not.
    assert m["eval_bigram_auc"] > 0.7 and abs(m["eval_rtd_auc"] - 0.5) < 0.1
    assert abs(m["eval_label_entropy"] - binary_entropy(m["eval_replaced_frac"])) < 0.02
    again = evaluate(objective, str(tiny_prepared_dir), 16, 3, "cpu", contextlib.nullcontext, seed=1)
    assert again == m  # fixed seeds: the same corruptions, the same numbers
    record = {"kind": "eval", "step": 10, "tokens_seen": 10 * 16 * 64, **m}
    record = explain(record, 0.15)
    lines = eval_lines(record)
    assert lines[0].startswith("eval at step 10: ") and record["explanation"] in lines[0]
    assert "token prior" in lines[0] and "hidden-state cosine" in lines[0]
    assert [x[len("warning at step 10: "):] for x in lines[1:]] == record["warnings"]
