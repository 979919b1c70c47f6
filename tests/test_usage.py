"""fill-mask, detect and infill (electra/usage.py) on tiny models: parity with `transformers` (fill-mask pipeline,
ElectraForPreTraining), behaviour of a generator trained here on a toy "capital of" corpus, the mask-predict
re-masking rule, and the CLI (colours, HTML, errors).

    .venv/bin/pytest -q tests/test_usage.py
"""
import json
import re

import pytest
import torch

from electra.cli import main
from electra.config import preset
from electra.hf import export_pretraining, export_task_model
from electra.model import TaskModel
from electra.objectives import build_objective
from electra.tokenizer import SPECIAL_TOKENS, build_tokenizer, save_tokenizer_folder
from electra.usage import (Detection, colour_ansi, detect, encode_masked, fill_mask, infill, infill_ids, load_model,
                           render_html)

PAIRS = [("france", "paris"), ("italy", "rome"), ("spain", "madrid"), ("germany", "berlin"), ("japan", "tokyo"),
         ("egypt", "cairo")]
SENTENCES = [f"the capital of {c} is {k} ." for c, k in PAIRS]
WORDS = sorted({w for s in SENTENCES for w in s.split()} | {"cat", "sat", "on", "mat", "moon", "##s", "banana"})


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    vocab = {t: i for i, t in enumerate(list(SPECIAL_TOKENS.values()) + WORDS)}
    return save_tokenizer_folder(build_tokenizer(vocab), tmp_path_factory.mktemp("toy_tok"))


@pytest.fixture(scope="module")
def random_pair(tok_dir, tmp_path_factory):
    """An untrained tiny ELECTRA exported as HF discriminator + generator folders with the toy tokenizer."""
    torch.manual_seed(0)
    tok = build_tokenizer({t: i for i, t in enumerate(list(SPECIAL_TOKENS.values()) + WORDS)})
    ids = {k: tok.token_to_id(v) for k, v in SPECIAL_TOKENS.items()}
    electra = build_objective(preset("tiny", vocab_size=tok.get_vocab_size()), ids).eval()
    with torch.no_grad():  # non-trivial heads so a wrong mapping cannot hide
        for p in electra.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return export_pretraining(electra, tmp_path_factory.mktemp("random_pair"), tokenizer_dir=tok_dir)


@pytest.fixture(scope="module")
def trained_generator(tok_dir, tmp_path_factory):
    """A tiny generator trained by MLM on the six "capital of" sentences (one blank per sentence, sometimes two)
    until it knows them: 350 steps on one thread."""
    torch.manual_seed(0)
    vocab = {t: i for i, t in enumerate(list(SPECIAL_TOKENS.values()) + WORDS)}
    tok = build_tokenizer(vocab)
    ids = {k: tok.token_to_id(v) for k, v in SPECIAL_TOKENS.items()}
    cfg = preset("tiny", vocab_size=len(vocab), hidden_dropout=0.0, attention_dropout=0.0).discriminator
    model = TaskModel(cfg, "masked-lm")
    rows = torch.tensor([tok.encode(s).ids for s in SENTENCES]).repeat(4, 1)  # (24, 9): all the same length
    B, T = rows.shape
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared 2-core box
    try:
        for _ in range(350):
            k = 1 + (torch.rand(B, 1, generator=g) < 0.25).long()  # blanks per row
            blank = torch.zeros_like(rows, dtype=torch.bool)
            blank[:, 1:-1] = torch.rand(B, T - 2, generator=g).argsort(1).argsort(1) < k  # never [CLS]/[SEP]
            labels = torch.where(blank, rows, torch.full_like(rows, -100))
            x = rows.masked_fill(blank, ids["mask"])
            loss, _ = model(x, torch.zeros_like(x), torch.ones_like(x), labels=labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return export_task_model(model.eval(), tmp_path_factory.mktemp("trained_gen") / "generator", tokenizer_dir=tok_dir)


# ---------------------------------------------------------------------------------------------------------------
# fill-mask


def test_fill_mask_matches_transformers(random_pair):
    """Same tokens and probabilities as transformers' own tokenizer + ElectraForMaskedLM on the exported folder."""
    transformers = pytest.importorskip("transformers")
    text = "the capital of france is [MASK] ."
    gen = load_model(random_pair["generator"], "generator")
    ours = fill_mask(gen, text, top_k=5)
    hf_tok = transformers.AutoTokenizer.from_pretrained(random_pair["generator"])
    hf = transformers.ElectraForMaskedLM.from_pretrained(random_pair["generator"]).eval()
    enc = hf_tok(text, return_tensors="pt")
    assert enc["input_ids"][0].tolist() == encode_masked(gen, text)[0]
    with torch.no_grad():
        probs = hf(**enc).logits[0].softmax(-1)
    at = enc["input_ids"][0].tolist().index(hf_tok.mask_token_id)
    p, i = probs[at].topk(5)
    assert [t for t, _ in ours[0]] == hf_tok.convert_ids_to_tokens(i.tolist())
    torch.testing.assert_close(torch.tensor([q for _, q in ours[0]]), p, atol=1e-5, rtol=0)


def test_encode_masked_puts_one_mask_token_per_blank(random_pair):
    gen = load_model(random_pair["generator"], "generator")
    ids, positions = encode_masked(gen, "the [MASK] of [MASK][MASK] is paris .")
    assert [gen.tokenizer.id_to_token(i) for i in ids] == \
        ["[CLS]", "the", "[MASK]", "of", "[MASK]", "[MASK]", "is", "paris", ".", "[SEP]"]
    assert positions == [2, 4, 5]


def test_trained_generator_fills_the_capital(trained_generator):
    gen = load_model(trained_generator, "generator")
    for country, capital in PAIRS:
        (cands,) = fill_mask(gen, f"the capital of {country} is [MASK] .", top_k=3)
        assert cands[0][0] == capital and cands[0][1] > 0.5
        assert sum(p for _, p in cands) <= 1.0 + 1e-6
        assert [p for _, p in cands] == sorted((p for _, p in cands), reverse=True)


# ---------------------------------------------------------------------------------------------------------------
# infill (mask-predict)


def test_infill_recovers_a_consistent_sentence(trained_generator):
    gen = load_model(trained_generator, "generator")
    out = infill(gen, "the capital of [MASK] is [MASK] .", iterations=2)
    assert out.text in SENTENCES
    assert len(out.steps) == 2 and len(out.tokens) == 2
    out = infill(gen, "the [MASK] [MASK] [MASK] is rome .", iterations=3)
    assert out.text == "the capital of italy is rome ."


def test_infill_one_iteration_is_the_argmax_of_one_pass(random_pair):
    gen = load_model(random_pair["generator"], "generator")
    ids, positions = encode_masked(gen, "the [MASK] of [MASK] is [MASK] .")
    x = torch.tensor([ids])
    blanks = torch.zeros_like(x, dtype=torch.bool)
    blanks[0, positions] = True
    filled, conf, steps = infill_ids(gen, x, torch.ones_like(x), blanks, iterations=1)
    with torch.no_grad():
        logits = gen.model(x, torch.zeros_like(x), torch.ones_like(x))[1][0].float()
    logits[:, sorted(gen.special.values())] = float("-inf")
    probs = logits.softmax(-1)
    assert filled[0, positions].tolist() == probs[positions].argmax(-1).tolist()
    torch.testing.assert_close(conf[0, positions], probs[positions].max(-1).values)
    assert torch.equal(filled[~blanks], x[~blanks])  # the given tokens never change
    assert not set(filled[0, positions].tolist()) & set(gen.special.values())


@pytest.mark.parametrize("use_discriminator", [False, True])
def test_mask_predict_remasks_the_least_trusted_blanks(random_pair, use_discriminator):
    """Iteration 2 of 2 re-predicts exactly floor(N/2) blanks: the generator's least confident, or the ones the
    discriminator scores most likely replaced; every other blank keeps its first-pass token."""
    gen = load_model(random_pair["generator"], "generator")
    disc = load_model(random_pair["discriminator"], "discriminator") if use_discriminator else None
    ids, positions = encode_masked(gen, "[MASK] capital [MASK] france [MASK] [MASK] [MASK] .")
    x = torch.tensor([ids])
    blanks = torch.zeros_like(x, dtype=torch.bool)
    blanks[0, positions] = True
    _, conf1, _ = infill_ids(gen, x, torch.ones_like(x), blanks, iterations=1)
    filled, _, steps = infill_ids(gen, x, torch.ones_like(x), blanks, iterations=2, discriminator=disc)
    first = steps[0]
    if disc is None:
        trust = conf1[0, positions]
    else:
        with torch.no_grad():
            trust = -torch.sigmoid(disc.model(first, torch.zeros_like(first), torch.ones_like(first))[1][0, positions])
    k = len(positions) // 2
    chosen = [positions[i] for i in trust.argsort()[:k].tolist()]
    remasked = x.clone()
    remasked[0] = first[0]
    remasked[0, chosen] = gen.special["mask"]
    with torch.no_grad():
        logits = gen.model(remasked, torch.zeros_like(x), torch.ones_like(x))[1][0].float()
    logits[:, sorted(gen.special.values())] = float("-inf")
    expected = first[0].clone()
    expected[chosen] = logits[chosen].argmax(-1)
    assert filled[0].tolist() == expected.tolist()


# ---------------------------------------------------------------------------------------------------------------
# detect


def test_detect_matches_transformers_and_maps_tokens_to_text(random_pair):
    transformers = pytest.importorskip("transformers")
    disc = load_model(random_pair["discriminator"], "discriminator")
    texts = ["The cat sat on the moon.", "the capital of france is banana .", "cats"]
    results = detect(disc, texts, batch_size=2)  # two batches, padding inside the first
    hf = transformers.ElectraForPreTraining.from_pretrained(random_pair["discriminator"]).eval()
    for text, d in zip(texts, results):
        x = torch.tensor([disc.tokenizer.encode(text).ids])
        with torch.no_grad():
            ref = torch.sigmoid(hf(input_ids=x).logits[0, 1:-1])
        torch.testing.assert_close(torch.tensor(d.probs), ref, atol=1e-5, rtol=0)
        assert [text[s:e].lower() for s, e in d.offsets] == [t.removeprefix("##") for t in d.tokens]
    assert [w for w, _ in results[2].words()] == ["cats"]  # "cat" + "##s" joined


def _detection():
    return Detection("The cat sat on the moon.", ["the", "cat", "sat", "on", "the", "moon", "."],
                     [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 23), (23, 24)],
                     [0.01, 0.3, 0.6, 0.05, 0.02, 0.9, 0.1])


def test_ansi_and_html_rendering_highlight_by_probability():
    d = _detection()
    coloured = colour_ansi(d)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == d.text  # colours only, text unchanged
    assert "\x1b[30;48;5;196mmoon\x1b[0m" in coloured and "\x1b[30;48;5;208msat\x1b[0m" in coloured
    assert coloured.startswith("The \x1b[30;48;5;229mcat\x1b[0m")  # "The" (0.01) stays plain
    page = render_html([d, Detection("<b>", ["<"], [(0, 1)], [0.7])], "title & co", threshold=0.5)
    assert page.count('class="flag"') == 3  # sat, moon, <
    assert 'title="moon: p(replaced) = 0.900">moon</span>' in page
    assert ">&lt;</span>b&gt;" in page and "<b>" not in page.split("<body>")[1]  # escaped
    assert d.flagged(0.5) == [("sat", 0.6), ("moon", 0.9)]


# ---------------------------------------------------------------------------------------------------------------
# command line


def test_cli_detect_colour_html_and_json(random_pair, tmp_path, capsys):
    page = tmp_path / "detect.html"
    assert main(["detect", "--model", str(random_pair["discriminator"]), "the cat sat on the moon .",
                 "--html", str(page), "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert page.read_text().count("<span") == 7 and "flagged" in out
    assert "\x1b[" in out  # the untrained discriminator says about 0.5 everywhere: coloured
    assert main(["detect", "--model", str(random_pair["discriminator"]), "the cat sat .", "--color", "never"]) == 0
    assert "\x1b[" not in capsys.readouterr().out  # not a TTY and not asked: no colour codes
    assert main(["detect", "--model", str(random_pair["discriminator"]), "the cat sat .", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["tokens"] == ["the", "cat", "sat", "."] and len(row["probs"]) == 4


def test_cli_fill_mask_and_infill(trained_generator, capsys):
    assert main(["fill-mask", "--model", str(trained_generator), "the capital of japan is [MASK] .", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["masks"][0][0]["token"] == "tokyo" and len(row["masks"][0]) == 5
    assert main(["infill", "--model", str(trained_generator), "the capital of egypt is [MASK] .", "--steps"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "the capital of egypt is cairo ."


def test_cli_infill_with_the_discriminator_beside_the_generator(random_pair, capsys):
    assert main(["infill", "--model", str(random_pair["generator"]), "the [MASK] [MASK] [MASK] is paris .",
                 "--remask", "discriminator", "--iterations", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(row["tokens"]) == 3 and 1 <= len(row["steps"]) <= 3


@pytest.mark.parametrize("argv,message", [
    (["fill-mask", "--model", "{disc}", "a [MASK] ."], "needs the generator"),
    (["detect", "--model", "{gen}", "a cat ."], "needs the discriminator"),
    (["fill-mask", "--model", "{gen}", "no blank here"], "has no [MASK]"),
    (["fill-mask", "--model", "{missing}", "a [MASK] ."], "not found"),
    (["infill", "--model", "{gen}", "a [MASK] .", "--iterations", "0"], "--iterations must be >= 1"),
    (["detect", "--model", "{disc}", "a cat .", "--html", "{missing}/x.html"], "does not exist"),
])
def test_cli_user_errors_exit_2_with_one_line(random_pair, tmp_path, capsys, argv, message):
    fill = {"gen": str(random_pair["generator"]), "disc": str(random_pair["discriminator"]),
            "missing": str(tmp_path / "missing")}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_help_texts_name_defaults(capsys):
    for name in ("fill-mask", "detect", "infill"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
    out = capsys.readouterr().out
    for needle in ("(5)", "(0.5)", "(auto)", "(10)", "(generator)"):
        assert needle in out
