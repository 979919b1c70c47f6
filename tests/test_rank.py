"""Ranking (electra/rank.py): MRR and recall@k against a hand-worked example and scikit-learn, pair scoring with a
sequence-pair classifier, the `rank` fine-tuning task, and the multiple-choice head against transformers'
ElectraForMultipleChoice.

    .venv/bin/pytest -q tests/test_rank.py
"""
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import label_ranking_average_precision_score, top_k_accuracy_score

from electra.config import preset
from electra.errors import ElectraError
from electra.hf import export_task_model, load_task_model
from electra.metrics import ranking_metrics
from electra.model import MultipleChoiceModel, TaskModel
from electra.rank import encode_choices, export_multiple_choice, load_multiple_choice, rank_pairs
from electra.tokenizer import SPECIAL_TOKENS, build_tokenizer

WORDS = "what is the capital of france italy paris rome city a large river ? . which one".split()


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer({t: i for i, t in enumerate(list(SPECIAL_TOKENS.values()) + WORDS)})


def test_metrics_on_a_hand_worked_example():
    contexts = ["c1"] * 3 + ["c2"] * 2 + ["c3"] * 3 + ["c4"] * 2 + ["c5"] * 3
    scores = [0.9, 0.5, 0.1, 0.2, 0.8, 0.3, 0.3, 0.1, 0.7, 0.6, 0.9, 0.8, 0.1]
    labels = [0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1]
    # c1: positive ranked 2nd -> 1/2, not in top 1, in top 2.  c2: 1st -> 1.  c3: tied with a negative: counted
    # 2nd (pessimistic) -> 1/2.  c4: no positive, left out.  c5: positives 1st and 3rd -> 1, recall@1 = @2 = 1/2.
    m = ranking_metrics(contexts, scores, labels, ks=(1, 2, 3))
    assert m["mrr"] == pytest.approx(100 * (0.5 + 1 + 0.5 + 1) / 4)
    assert m["recall@1"] == pytest.approx(100 * (0 + 1 + 0 + 0.5) / 4)
    assert m["recall@2"] == pytest.approx(100 * (1 + 1 + 1 + 0.5) / 4)
    assert m["recall@3"] == pytest.approx(100.0)
    assert m["contexts"] == 4 and m["contexts_without_positive"] == 1


def test_mrr_equals_sklearn_lrap_and_recall_equals_top_k_accuracy_with_one_positive():
    rng = np.random.default_rng(0)
    n_ctx, n_cand = 40, 10
    scores = rng.normal(size=(n_ctx, n_cand))
    positive = rng.integers(0, n_cand, n_ctx)
    labels = np.zeros_like(scores, dtype=int)
    labels[np.arange(n_ctx), positive] = 1
    contexts = [f"context {i}" for i in range(n_ctx) for _ in range(n_cand)]
    m = ranking_metrics(contexts, scores.ravel(), labels.ravel(), ks=(1, 2, 5))
    assert m["mrr"] == pytest.approx(100 * label_ranking_average_precision_score(labels, scores))
    for k in (1, 2, 5):
        expected = top_k_accuracy_score(positive, scores, k=k, labels=np.arange(n_cand))
        assert m[f"recall@{k}"] == pytest.approx(100 * expected)


def test_metrics_refuse_bad_input():
    with pytest.raises(ElectraError, match="no context has a positive"):
        ranking_metrics(["a", "a"], [0.1, 0.2], [0, 0])
    with pytest.raises(ElectraError, match="3 contexts, 2 scores"):
        ranking_metrics(["a", "a", "b"], [0.1, 0.2], [0, 1, 1])


def test_rank_pairs_is_the_classifiers_positive_probability(tok):
    torch.manual_seed(0)
    model = TaskModel(preset("tiny", vocab_size=tok.get_vocab_size()).discriminator, "sequence", 2).eval()
    pairs = [("what is the capital of france ?", "paris"), ("which one ?", "a large river ."),
             ("what is the capital of italy ?", "rome is a large city ."), ("what ?", "the")]
    scores = rank_pairs(model, tok, pairs, batch_size=3)  # batches sorted by length: order must come back intact
    for (a, b), s in zip(pairs, scores):
        enc = tok.encode(a, b)
        x = torch.tensor([enc.ids])
        with torch.no_grad():
            logits = model(x, torch.tensor([enc.type_ids]), torch.ones_like(x))[1][0]
        assert s == pytest.approx(float(logits.softmax(-1)[1]), abs=1e-6)
    with pytest.raises(ElectraError, match="sequence-pair classifier"):
        rank_pairs(TaskModel(model.cfg, "token", 3), tok, pairs)


def test_rank_task_reads_scores_and_reports_ranking(tok, tmp_path):
    from electra.tasks import get_task
    from electra.tasks.classification import decode

    task = get_task("rank")
    assert task.kind == "sequence" and task.pair and task.main_metric == "mrr"
    rows = [("what is the capital of france ?", "paris", 1), ("what is the capital of france ?", "rome", 0),
            ("what is the capital of france ?", "a river", 0), ("what is the capital of italy ?", "rome", 1),
            ("what is the capital of italy ?", "paris", 0)]
    (tmp_path / "dev.tsv").write_text("context\tcandidate\tlabel\n" + "".join(f"{c}\t{a}\t{y}\n" for c, a, y in rows))
    cfg = SimpleNamespace(max_seq_len=32, text_a=None, text_b=None, label=None, dev_file=None)
    examples = task.read(tmp_path, "dev", cfg, Counter())
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [(c, a, str(y)) for c, a, y in rows]
    features, _ = task.encode(examples, tok, list(task.labels), cfg)
    assert [f["labels"] for f in features] == [y for _, _, y in rows]
    torch.manual_seed(1)
    model = TaskModel(preset("tiny", vocab_size=tok.get_vocab_size()).discriminator, "sequence", 2).eval()
    scores = rank_pairs(model, tok, [(c, a) for c, a, _ in rows])
    outputs = [np.log(np.array([1 - s, s])) for s in scores]  # logits whose softmax is (1 - s, s)
    predictions = decode(examples, features, outputs, list(task.labels), cfg)
    got = task.metric(examples, predictions)
    expected = ranking_metrics([c for c, _, _ in rows], scores, [y for _, _, y in rows])
    assert got == {k: pytest.approx(v) for k, v in expected.items() if not k.startswith("contexts")}


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice


def _perturbed_mc(vocab, dropout=None):
    torch.manual_seed(0)
    model = MultipleChoiceModel(preset("tiny", vocab_size=vocab).discriminator, dropout)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_multiple_choice_export_matches_transformers(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = _perturbed_mc(tok.get_vocab_size())
    batch = encode_choices(tok, "what is the capital of france ?", ["paris", "rome is a large city .", "a river"])
    second = encode_choices(tok, "which one ?", ["rome", "the capital of italy is rome .", "paris ."])
    T = max(batch["input_ids"].size(-1), second["input_ids"].size(-1))
    x = {k: torch.cat([torch.nn.functional.pad(b[k], (0, T - b[k].size(-1))) for b in (batch, second)])
         for k in batch}  # (2, 3, T) with padding inside
    assert x["attention_mask"].float().mean() < 1
    with torch.no_grad():
        _, ours = model(x["input_ids"], x["token_type_ids"], x["attention_mask"])
    folder = export_multiple_choice(model, tmp_path / "mc")
    hf = transformers.ElectraForMultipleChoice.from_pretrained(folder).eval()
    with torch.no_grad():
        theirs = hf(**x).logits
    assert ours.shape == (2, 3)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    again = load_multiple_choice(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x["input_ids"], x["token_type_ids"], x["attention_mask"])[1], ours,
                                   atol=0, rtol=0)
    with torch.no_grad():
        loss, _ = model(x["input_ids"], x["token_type_ids"], x["attention_mask"], labels=torch.tensor([0, 1]))
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(ours, torch.tensor([0, 1]))), abs=1e-6)


def test_multiple_choice_from_a_pretrained_encoder_starts_a_fresh_head(tok, tmp_path):
    disc = TaskModel(preset("tiny", vocab_size=tok.get_vocab_size()).discriminator, "pretraining").eval()
    folder = export_task_model(disc, tmp_path / "disc")
    mc = load_multiple_choice(folder).eval()
    x = torch.randint(5, tok.get_vocab_size(), (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(mc.encoder(x), load_task_model(folder).eval().encoder(x), atol=0, rtol=0)
    with pytest.raises(ElectraError, match="not found"):
        load_multiple_choice(tmp_path / "missing")


def test_multiple_choice_learns_to_pick_the_matching_answer(tok):
    """A hundred steps on a toy question set: the loss falls and every answer is picked (not an order artefact)."""
    torch.manual_seed(0)
    model = MultipleChoiceModel(preset("tiny", vocab_size=tok.get_vocab_size(), hidden_dropout=0.0,
                                       attention_dropout=0.0).discriminator)
    questions = [("what is the capital of france ?", ["rome", "paris"], 1),
                 ("what is the capital of italy ?", ["rome", "paris"], 0),
                 ("which one is a river ?", ["paris", "a river"], 1),
                 ("which one is a city ?", ["a large city", "a river"], 0)]
    batches = [encode_choices(tok, q, c) for q, c, _ in questions]
    T = max(b["input_ids"].size(-1) for b in batches)
    x = {k: torch.cat([torch.nn.functional.pad(b[k], (0, T - b[k].size(-1))) for b in batches]) for k in batches[0]}
    y = torch.tensor([a for _, _, a in questions])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared 2-core box
    try:
        for _ in range(100):
            loss, _ = model(x["input_ids"], x["token_type_ids"], x["attention_mask"], labels=y)
            first = float(loss.detach()) if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        loss, logits = model(x["input_ids"], x["token_type_ids"], x["attention_mask"], labels=y)
    assert float(loss) < first / 4
    assert logits.argmax(-1).tolist() == y.tolist()
