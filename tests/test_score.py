"""`electra score` (electra/score.py) on a tiny pretraining run: the ELECTRA score equals log sigmoid(-logit) summed
from the discriminator's own logits, PLL equals a hand loop over masked copies, sorted batching equals batch size 1,
words add up to the text, reranking and lambda tuning, the CLI's JSONL and its one-line errors.

    .venv/bin/pytest -q tests/test_score.py
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from electra.checkpoint import resolve_model_dir
from electra.cli import main
from electra.pretrain import load_pretrain_config, pretrain
from electra.nbest import NBest, nbest_metrics, read_nbest, rerank, tune_lambda
from electra.score import nbest_scores, score_texts, word_spans
from electra.sources import REPO_ROOT
from electra.usage import load_model

TEXTS = ["the cat sat on the mat .", "a", "history of the united kingdom during the first world war",
         "unbelievably, photosynthesis happens", "the the the", "paris is the capital and most populous city"]


@pytest.fixture(scope="module")
def run(debug_overrides, tmp_path_factory):
    """A 3-step configs/debug.toml run on the conftest tiny corpus (2,000-entry vocab): untrained, but every score
    below is checked against an independent computation, not against what a trained model should say."""
    out = tmp_path_factory.mktemp("score") / "run"
    pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
        out, "--train.steps=3", "--train.eval_every=0", "--train.checkpoint_every=3", "--train.log_every=1")))
    return out


@pytest.fixture(scope="module")
def disc(run):
    return load_model(run, "discriminator")


@pytest.fixture(scope="module")
def gen(run):
    return load_model(run, "generator")


def test_electra_score_is_the_sum_of_log_sigmoid_minus_logit(disc):
    scored = score_texts(disc, TEXTS, batch_size=4)
    transformers = pytest.importorskip("transformers")
    hf = transformers.ElectraForPreTraining.from_pretrained(disc.path).eval()
    for text, s in zip(TEXTS, scored):
        ids = disc.tokenizer.encode(text).ids  # [CLS] ... [SEP]
        assert len(s.token_logp) == len(ids) - 2 == len(s.tokens)
        with torch.no_grad():
            logits = hf(input_ids=torch.tensor([ids])).logits[0, 1:-1].double()  # > 0 = replaced
        expected = torch.log(1 - torch.sigmoid(logits))  # log p(original), by hand
        torch.testing.assert_close(torch.tensor(s.token_logp, dtype=torch.float64), expected, atol=1e-5, rtol=0)
        assert s.logp == pytest.approx(float(expected.sum()), abs=1e-4)
        assert s.logp_per_token == pytest.approx(s.logp / len(s.token_logp))
        assert s.logp < 0


def test_pll_equals_a_hand_loop_over_masked_positions(gen):
    scored = score_texts(gen, TEXTS[:4], method="pll", batch_size=5)  # batches cut across texts
    for text, s in zip(TEXTS[:4], scored):
        ids = gen.tokenizer.encode(text).ids
        total = 0.0
        for p in range(1, len(ids) - 1):
            x = torch.tensor([ids])
            x[0, p] = gen.special["mask"]
            with torch.no_grad():
                logits = gen.model(x, torch.zeros_like(x), torch.ones_like(x))[1][0, p].double()  # (V,)
            lp = float(logits.log_softmax(-1)[ids[p]])
            assert s.token_logp[p - 1] == pytest.approx(lp, abs=1e-4)
            total += lp
        assert s.logp == pytest.approx(total, abs=1e-3)


@pytest.mark.parametrize("method", ["electra", "pll"])
def test_sorted_batching_gives_the_batch_size_one_results_in_input_order(disc, gen, method):
    lm = disc if method == "electra" else gen
    one = score_texts(lm, TEXTS, method, batch_size=1)
    many = score_texts(lm, TEXTS, method, batch_size=3)
    assert [s.text for s in many] == TEXTS
    for a, b in zip(one, many):
        assert a.tokens == b.tokens
        torch.testing.assert_close(torch.tensor(b.token_logp), torch.tensor(a.token_logp), atol=1e-5, rtol=0)


def test_words_add_pieces_and_split_cjk(disc):
    (s,) = score_texts(disc, ["unbelievably, photosynthesis happens"])
    assert len(s.tokens) > 3  # the tiny vocab splits these words into pieces
    words = s.words()
    assert [w for w, _ in words] == ["unbelievably,", "photosynthesis", "happens"]
    assert sum(math.log(p) for _, p in words) == pytest.approx(s.logp, abs=1e-5)  # p(word) = product of pieces
    assert all(0 < p < 1 for _, p in words)
    text = "GPT模型 works  here"
    assert [text[a:b] for a, b in word_spans(text)] == ["GPT", "模", "型", "works", "here"]


def _items(disc):
    """Four N-best lists over TEXTS with first-pass scores that prefer the last hypothesis."""
    hyps = [TEXTS[0:3], TEXTS[3:6], [TEXTS[1], TEXTS[4]], [TEXTS[2], TEXTS[0], TEXTS[5]]]
    return [NBest(i, h, [float(j) for j in range(len(h))], None) for i, h in enumerate(hyps)]


def test_rerank_lambda_zero_keeps_first_pass_and_huge_lambda_follows_electra(disc):
    items = _items(disc)
    model = nbest_scores(disc, items)
    flat = score_texts(disc, [h for it in items for h in it.hyps])
    assert [x for row in model for x in row] == pytest.approx([s.logp for s in flat])
    for it, order in zip(items, rerank(items, model, 0.0)):
        assert order == sorted(range(len(it.hyps)), key=lambda i: -it.scores[i])
    for row, order in zip(model, rerank(items, model, 1e6)):
        assert order == sorted(range(len(row)), key=lambda i: -row[i])
    tied = [NBest("t", ["x", "y", "z"])]
    assert rerank(tied, [[0.0, 0.0, 0.0]], 1.0) == [[0, 1, 2]]  # ties keep the input order


def test_tune_lambda_finds_the_weight_the_references_need(disc):
    items = _items(disc)
    model = nbest_scores(disc, items)
    by_model = [NBest(it.id, it.hyps, it.scores, it.hyps[max(range(len(m)), key=m.__getitem__)])
                for it, m in zip(items, model)]
    lam, table = tune_lambda(by_model, model)
    assert next(r for r in table if r["lambda"] == lam)["top1"] == 100.0 and lam > 0
    assert [r["lambda"] for r in table] == sorted(r["lambda"] for r in table)
    by_first = [NBest(it.id, it.hyps, it.scores, it.hyps[-1]) for it in items]
    lam, table = tune_lambda(by_first, model)
    assert lam == 0.0 and table[0]["wer"] == 0.0
    m = nbest_metrics([NBest(0, ["a b c", "a x c"], None, "a b c")], [1])
    assert m == {"wer": pytest.approx(100 / 3), "top1": 0.0}


# ---------------------------------------------------------------------------------------------------------------
# command line


def test_cli_score_jsonl_with_words_matches_the_api(run, disc, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS[:3]) + "\n\n")
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--model", str(run), "--input", str(src), "--words", "--batch-size", "2",
                 "--output", str(out)]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["summary"]
    assert summary["electra"]["seconds"] >= 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3] and [r["text"] for r in rows] == TEXTS[:3]
    for r, s in zip(rows, score_texts(disc, TEXTS[:3])):
        assert r["electra"] == pytest.approx(s.logp, abs=1e-5) and r["tokens"] == len(s.tokens)
        assert r["electra_per_token"] == pytest.approx(s.logp_per_token, abs=1e-5)
        assert [w for w, _ in r["electra_words"]] == TEXTS[rows.index(r)].split()
    assert main(["score", "--model", str(run), "--input", str(src), "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_nbest_electra_and_pll_in_one_run(run, disc, gen, tmp_path, capsys):
    items = _items(disc)
    pll = nbest_scores(gen, items, "pll")
    refs = [it.hyps[max(range(len(p)), key=p.__getitem__)] for it, p in zip(items, pll)]  # what PLL prefers
    lines = [json.dumps({"id": it.id, "hyps": it.hyps, "scores": it.scores, "ref": r}) for it, r in zip(items, refs)]
    (tmp_path / "dev.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["score", "--model", str(run), "--input", str(tmp_path / "test.jsonl"), "--nbest", "--method",
                 "electra,pll", "--dev", str(tmp_path / "dev.jsonl")]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    summary = json.loads(captured.err.strip().splitlines()[-1])["summary"]
    assert summary["pll"]["top1"] == 100.0 and summary["pll"]["wer"] == 0.0 and summary["pll"]["lambda"] > 0
    assert summary["first_pass"]["top1"] < 100.0 and summary["oracle_top1"] == 100.0
    assert {"seconds", "hyps_per_s", "dev", "model_only"} <= set(summary["electra"])
    for row, it, p in zip(rows, items, pll):
        assert row["hyps"] == it.hyps and row["first_pass"] == it.scores
        assert row["pll"] == pytest.approx(p, abs=1e-5)
        assert it.hyps[row["best"]["pll"]] == row["ref"]
    assert main(["score", "--model", str(run), "--input", str(tmp_path / "test.jsonl"), "--nbest",
                 "--lambda", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["best"]["electra"] for r in rows] == [len(it.hyps) - 1 for it in items]  # first pass kept


@pytest.mark.parametrize("argv,content,message", [
    (["--input", "{tmp}/missing.txt"], None, "input file not found"),
    (["--input", "{tmp}/in.jsonl", "--nbest"], '{"hyps": ["a"]}\n{"hyps": ["a", \n', "in.jsonl line 2: not valid JSON"),
    (["--input", "{tmp}/in.jsonl", "--nbest"], '{"hyps": "a b"}\n', "line 1: \"hyps\" must be a non-empty list"),
    (["--input", "{tmp}/in.jsonl", "--nbest"], '{"hyps": ["a", "b"], "scores": [1]}\n', "2 finite numbers"),
    (["--input", "{tmp}/in.jsonl"], '[1, 2]\n', "line 1: expected a JSON object"),
    (["--input", "{tmp}/in.jsonl", "--nbest", "--dev", "{tmp}/in.jsonl"], '{"hyps": ["a"]}\n', "needs a \"ref\""),
    (["--input", "{tmp}/in.txt", "--method", "pll", "--model", "{disc}"], "a cat\n", "needs the generator"),
    (["--input", "{tmp}/in.txt", "--model", "{gen}"], "a cat\n", "needs the discriminator"),
    (["--input", "{tmp}/in.txt", "--method", "bert"], "a cat\n", "unknown --method"),
    (["--input", "{tmp}/in.txt", "--dev", "{tmp}/in.txt"], "a cat\n", "apply to --nbest only"),
])
def test_cli_user_errors_exit_2_with_one_line(run, tmp_path, capsys, argv, content, message):
    name = next((a for a in argv if a.startswith("{tmp}/in")), None)
    if content is not None:
        (tmp_path / name.split("/")[-1]).write_text(content)
    fill = {"tmp": str(tmp_path), "disc": str(resolve_model_dir(run, "discriminator")),
            "gen": str(resolve_model_dir(run, "generator"))}
    args = [a.format(**fill) for a in argv]
    assert main(["score", "--model", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
