"""Issue 19 (items 3, 4): perturbations do what they say, generator augmentation changes masked positions only, and
an ensemble averages its members' probabilities. Tiny random models around the real English vocab (seconds).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_robustness.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_model_dir
from electra.augment import masked_variants
from electra.cli import main
from electra.config import ModelConfig
from electra.ensemble import Averaged
from electra.errors import ElectraError
from electra.finetune_config import FinetuneConfig, task_metadata
from electra.hf import export_task_model
from electra.model import TaskModel
from electra.perturb import n_touched, perturb_examples, perturb_text, word_flags
from electra.predict import load
from electra.tasks import get_task
from electra.tasks.classification import Example
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab
from electra.usage import Detection, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["a gripping , funny and moving film about growing up", "dull and far too long", "it works",
         "the best performance of the year by a mile"]


def sst2_model(shared_data: Path, out: Path, seed: int) -> Path:
    """A tiny random SST-2 classifier saved as `electra finetune` saves one."""
    tok = tokenizer_from_vocab(shared_data / "vocab/bert-base-uncased.txt")
    tok_dir = save_tokenizer_folder(tok, out.parent / f"{out.name}-tokenizer")
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), embedding_size=32, hidden_size=64, num_layers=1, num_heads=2,
                      intermediate_size=128, max_position_embeddings=512)
    meta = task_metadata(get_task("sst2"), ["0", "1"], FinetuneConfig(max_seq_len=128))
    model = TaskModel(cfg, "sequence", num_labels=2).eval()
    # A random model predicts one class for every text; centring its logits on some dev sentences makes its
    # predictions depend on the words (so a perturbation changes some of them).
    dev = (shared_data / "glue/SST-2/dev.tsv").read_text().splitlines()[1:101]
    with torch.no_grad():
        enc = tok.encode_batch([line.split("\t")[0] for line in dev])
        logits = torch.stack([model(torch.tensor([e.ids]), torch.tensor([e.type_ids]))[1][0] for e in enc])
        model.head.out.bias -= logits.median(0).values
    return export_task_model(model, out, tokenizer_dir=tok_dir, labels=["0", "1"], extra={"electra_task.json": meta})


def examples() -> list[Example]:
    return [Example(id=str(i), text_a=t, label=str(i % 2)) for i, t in enumerate(TEXTS)]


# ---------------------------------------------------------------------------------------------------------------
# Perturbations


@pytest.mark.parametrize("kind", ["typo", "swap", "delete", "substitute"])
def test_perturbations_touch_the_stated_words_seeded_labels_kept(kind):
    exs = examples()
    out, records = perturb_examples(exs, kind, 0.3, seed=7)
    again, _ = perturb_examples(exs, kind, 0.3, seed=7)
    other, _ = perturb_examples(exs, kind, 0.3, seed=8)
    assert [e.text_a for e in out] == [e.text_a for e in again]  # seeded: reproducible
    assert [e.text_a for e in out] != [e.text_a for e in other]
    assert [(e.id, e.label) for e in out] == [(e.id, e.label) for e in exs]  # labels untouched
    vocab = {w for t in TEXTS for w in t.split()}
    for e, new, r in zip(exs, out, records):
        old_w, new_w = e.text_a.split(), new.text_a.split()
        k = n_touched(len(old_w), 0.3)
        if kind == "delete":
            assert len(new_w) == len(old_w) - min(k, len(old_w) - 1) and r.touched == []
            it = iter(old_w)  # what is left is a subsequence of the original, in order
            assert all(w in it for w in new_w)
            continue
        assert len(new_w) == len(old_w)
        changed = [i for i, (a, b) in enumerate(zip(old_w, new_w)) if a != b]
        assert changed == r.touched
        if kind == "swap":
            assert len(changed) == 2 * max(1, k // 2) and sorted(new_w) == sorted(old_w)
            assert all(new_w[i] == old_w[i + 1] and new_w[i + 1] == old_w[i] for i in changed[::2])
        else:
            assert len(changed) == k
        if kind == "typo":  # one character edit: lengths differ by at most one, letters mostly shared
            assert all(abs(len(old_w[i]) - len(new_w[i])) <= 1 for i in changed)
            assert all(sum(a != b for a, b in zip(old_w[i], new_w[i])) <= 1 or len(old_w[i]) != len(new_w[i])
                       for i in changed)
        if kind == "substitute":
            assert all(new_w[i] in vocab for i in changed)


def test_perturb_rate_counts_and_bad_input():
    assert [n_touched(n, 0.1) for n in (0, 1, 10, 25, 40)] == [0, 1, 1, 2, 4]
    text = " ".join(f"w{i}" for i in range(40))
    assert len(perturb_text(text, "typo", 0.25, random.Random(0), []).touched) == 10
    with pytest.raises(ElectraError, match="unknown perturbation"):
        perturb_examples(examples(), "shuffle", 0.1)
    with pytest.raises(ElectraError, match="rate"):
        perturb_examples(examples(), "typo", 1.5)


def test_word_flags_take_the_highest_token_of_each_word():
    d = Detection("unreal cat sat", ["un", "##real", "cat", "sat"], [(0, 2), (2, 6), (7, 10), (11, 14)],
                  [0.1, 0.9, 0.2, 0.7])
    assert word_flags(d) == [0.9, 0.2, 0.7]


def test_evaluate_perturb_reports_clean_perturbed_and_detection(capsys, shared_data, tmp_path):
    model = sst2_model(shared_data, tmp_path / "m", 0)
    disc = tiny_model_dir(shared_data / "vocab/bert-base-uncased.txt", tmp_path / "disc")
    data = shared_data / "glue/SST-2"
    base = ["evaluate", "--model", str(model), "--data", str(data), "--max-examples", "40", "--device", "cpu"]
    assert main(base) == 0
    clean = json.loads(capsys.readouterr().out)
    assert main(base + ["--perturb", "substitute", "--rate", "0.2", "--seed", "3", "--detector", str(disc)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"clean", "perturbed", "perturbation"} and out["clean"]["acc"] == clean["acc"]
    p = out["perturbation"]
    assert (p["kind"], p["rate"], p["seed"], p["texts"]) == ("substitute", 0.2, 3, 40)
    assert 0.15 < p["touched_fraction"] < 0.3
    d = p["detection"]
    assert d["touched_words"] == p["words_touched"] and 0 <= d["precision"] <= 100 and 0 <= d["recall"] <= 100
    # The perturbed accuracy is the model's accuracy on the perturbed texts, scored directly.
    dev = [line.split("\t") for line in (data / "dev.tsv").read_text().splitlines()[1:41]]
    exs = [Example(id=str(i), text_a=t, label=y) for i, (t, y) in enumerate(dev)]
    changed, _ = perturb_examples(exs, "substitute", 0.2, seed=3)
    preds = load(model, device="cpu").predict([e.text_a for e in changed])
    assert out["perturbed"]["acc"] == pytest.approx(100 * np.mean([p["label"] == e.label
                                                                   for p, e in zip(preds, changed)]))
    assert out["perturbed"]["acc"] != out["clean"]["acc"]  # this (centred) model changes some predictions
    assert main(base + ["--detector", str(disc)]) == 2  # --detector needs --perturb
    assert "pass --perturb" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Augmentation


def test_augment_variants_differ_only_at_masked_positions(shared_data, tmp_path):
    from electra.hf import export_task_model as export

    tok = tokenizer_from_vocab(shared_data / "vocab/bert-base-uncased.txt")
    tok_dir = save_tokenizer_folder(tok, tmp_path / "tok")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), embedding_size=32, hidden_size=64, num_layers=1, num_heads=2,
                      intermediate_size=128, max_position_embeddings=512)
    gen = load_model(export(TaskModel(cfg, "masked-lm"), tmp_path / "gen", tokenizer_dir=tok_dir), "generator")
    features = [{"input_ids": e.ids, "token_type_ids": e.type_ids, "labels": i % 2, "example": i}
                for i, e in enumerate(tok.encode_batch(TEXTS * 3))]
    variants, masks = masked_variants(features, gen, k=3, seed=5)
    assert len(variants) == 3 * len(features)
    special = {tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")}
    n_differ = 0
    for j, (v, m) in enumerate(zip(variants, masks)):
        f = features[j // 3]
        assert {k: x for k, x in v.items() if k != "input_ids"} == {k: x for k, x in f.items() if k != "input_ids"}
        real = [i for i, t in enumerate(f["input_ids"]) if t not in special]
        assert len(m) == max(1, round(0.15 * len(real))) and set(m) <= set(real)
        assert all(a == b for i, (a, b) in enumerate(zip(f["input_ids"], v["input_ids"])) if i not in m)
        assert all(v["input_ids"][i] not in special for i in m)
        n_differ += sum(f["input_ids"][i] != v["input_ids"][i] for i in m)
    assert n_differ > 0.8 * sum(len(m) for m in masks)  # sampled from a 30k vocab: almost always new
    again, _ = masked_variants(features, gen, k=3, seed=5)
    other, _ = masked_variants(features, gen, k=3, seed=6)
    assert again == variants and other != variants


# ---------------------------------------------------------------------------------------------------------------
# Ensembles


def test_ensemble_of_copies_equals_the_model_and_averages_members(capsys, shared_data, tmp_path):
    a, b = sst2_model(shared_data, tmp_path / "a", 0), sst2_model(shared_data, tmp_path / "b", 1)
    single = load(a, device="cpu").predict(TEXTS)
    copies = load([a, a], device="cpu").predict(TEXTS)
    assert [p["label"] for p in copies] == [p["label"] for p in single]
    assert np.allclose([p["probabilities"]["1"] for p in copies], [p["probabilities"]["1"] for p in single],
                       atol=1e-6)
    pb = load(b, device="cpu").predict(TEXTS)
    mixed = load(f"{a},{b}", device="cpu").predict(TEXTS)
    mean = [(p["probabilities"]["1"] + q["probabilities"]["1"]) / 2 for p, q in zip(single, pb)]
    assert not np.allclose([p["probabilities"]["1"] for p in single], [p["probabilities"]["1"] for p in pb])
    assert np.allclose([p["probabilities"]["1"] for p in mixed], mean, atol=1e-6)
    assert isinstance(load([a, b]).model, Averaged)
    # The CLI: repeated flags and comma lists; evaluate's accuracy is that of the averaged predictions.
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    assert main(["predict", "--model", str(a), "--model", str(b), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "p.jsonl"), "--device", "cpu"]) == 0
    cli = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert np.allclose([p["probabilities"]["1"] for p in cli], mean, atol=1e-6)
    assert main(["evaluate", "--model", f"{a},{b}", "--data", str(shared_data / "glue/SST-2"), "--max-examples",
                 "30", "--device", "cpu"]) == 0
    acc = json.loads(capsys.readouterr().out)["acc"]
    dev = [line.split("\t") for line in (shared_data / "glue/SST-2/dev.tsv").read_text().splitlines()[1:31]]
    preds = load([a, b], device="cpu").predict([t for t, _ in dev])
    assert acc == pytest.approx(100 * np.mean([p["label"] == y for p, (_, y) in zip(preds, dev)]))


def test_ensemble_refuses_other_kinds_in_one_line(capsys, shared_data, tmp_path):
    a = sst2_model(shared_data, tmp_path / "a", 0)
    tok_dir = tmp_path / "a-tokenizer"
    cfg = ModelConfig(vocab_size=30522, embedding_size=32, hidden_size=64, num_layers=1, num_heads=2,
                      intermediate_size=128, max_position_embeddings=512)
    meta = task_metadata(get_task("stsb"), None, FinetuneConfig(max_seq_len=128))
    reg = export_task_model(TaskModel(cfg, "sequence", num_labels=1), tmp_path / "reg", tokenizer_dir=tok_dir,
                            extra={"electra_task.json": meta})
    (tmp_path / "in.txt").write_text('["a", "b"]\n')
    code = main(["predict", "--model", str(reg), "--model", str(reg), "--input", str(tmp_path / "in.txt"),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "classification models only" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", "--model", f"{a},{a}", "--input", str(tmp_path / "in.txt"), "--runtime", "onnx",
                 "--device", "cpu"]) == 2
    assert "runs on PyTorch" in capsys.readouterr().err


def test_finetune_keep_all_and_augment(capsys, shared_data, tmp_path):
    """--keep-all saves every seed's model, the one the metrics call best among them; --augment K multiplies the
    training features by K + 1 (the generator of a tiny HF masked-LM folder with the same vocab)."""
    from electra.hf import export_task_model as export

    disc = tiny_model_dir(shared_data / "vocab/bert-base-uncased.txt", tmp_path / "disc")
    tok_dir = tmp_path / "disc-tokenizer"
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30522, embedding_size=32, hidden_size=64, num_layers=1, num_heads=2,
                      intermediate_size=128, max_position_embeddings=512)
    gen = export(TaskModel(cfg, "masked-lm"), tmp_path / "gen", tokenizer_dir=tok_dir)
    out = tmp_path / "ft"
    args = ["finetune", "--task", "sst2", "--model", str(disc), "--data", str(shared_data / "glue/SST-2"),
            "--max-train-examples", "48", "--max-dev-examples", "24", "--epochs", "1", "--lr", "1e-3",
            "--no-progress", "--threads", "1", "--no-predict-test"]
    assert main(args + ["--out", str(out), "--seeds", "2", "--keep-all"]) == 0
    capsys.readouterr()
    m = json.loads((out / "metrics.json").read_text())
    assert m["seed_models"] == ["seeds/0/model", "seeds/1/model"]
    probs = {s: [p["probabilities"]["1"] for p in load(out / f"seeds/{s}/model", device="cpu").predict(TEXTS)]
             for s in (0, 1)}
    assert not np.allclose(probs[0], probs[1])  # two seeds, two models
    saved = [p["probabilities"]["1"] for p in load(out, device="cpu").predict(TEXTS)]
    assert np.allclose(saved, probs[m["best_seed"]], atol=1e-6)
    for s in m["seeds"]:  # each kept model scores what its seed scored
        assert main(["evaluate", "--model", str(out / "seeds" / str(s["seed"]) / "model"), "--data",
                     str(shared_data / "glue/SST-2"), "--max-examples", "24", "--device", "cpu"]) == 0
        assert json.loads(capsys.readouterr().out)["acc"] == pytest.approx(s["dev"]["acc"])
    assert main(args + ["--out", str(tmp_path / "aug"), "--augment", "2", "--augment-model", str(gen)]) == 0
    err = capsys.readouterr().out
    m = json.loads((tmp_path / "aug/metrics.json").read_text())
    assert m["counts"]["train_features"] == 3 * 48 and "augment: 48 train features + 96 variants" in err
    assert m["seed_models"] == [] and not (tmp_path / "aug/seeds").exists()
