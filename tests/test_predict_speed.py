"""The fast prediction path (issue 17): inputs sorted by length into batches padded only to their longest, results in
input order, the same labels and probabilities (1e-5) as predicting one input at a time, with PyTorch and with
onnxruntime; int8 as an opt-in that changes the outputs only a little; `electra predict --runtime/--int8`.
Hermetic: a tiny classifier with perturbed weights around a vocabulary written here.

    .venv/bin/pytest -q tests/test_predict_speed.py
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from electra import load
from electra.cli import main
from electra.config import preset
from electra.errors import ElectraError
from electra.hf import export_task_model
from electra.inference import infer, pick_runtime
from electra.model import TaskModel
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab

WORDS = ("a the film movie is was not very good bad dull funny long short story acting plot and but it too far "
         "gripping charming , . ! ?").split()
LABELS = ["neg", "neu", "pos"]


def texts(n: int, seed: int = 0) -> list[str]:
    """Sentences of 1 to 40 words in random order: many lengths, so sorting and padding matter."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_speed")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok_dir = save_tokenizer_folder(tokenizer_from_vocab(root / "vocab.txt"), root / "tokenizer")
    torch.manual_seed(0)
    model = TaskModel(preset("tiny", vocab_size=5 + len(WORDS)).discriminator, "sequence", num_labels=3)
    with torch.no_grad():  # a "fine-tuned" model: weights away from their initial values, non-trivial outputs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    meta = {"task": "classify", "kind": "sequence", "labels": LABELS, "max_seq_len": 64}
    return export_task_model(model.eval(), root / "model", tokenizer_dir=tok_dir, labels=LABELS,
                             extra={"electra_task.json": meta})


def probabilities(predictions) -> np.ndarray:
    return np.array([[p["probabilities"][label] for label in LABELS] for p in predictions])


def assert_same(got, want, atol=1e-5):
    assert [p["label"] for p in got] == [p["label"] for p in want]
    np.testing.assert_allclose(probabilities(got), probabilities(want), atol=atol, rtol=0)


RUNTIMES = ["torch", pytest.param("onnx", marks=pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")), reason="onnx extra"))]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sorted_batches_equal_one_at_a_time_and_keep_input_order(model_dir, runtime):
    inputs = texts(37)
    one_by_one = load(model_dir, device="cpu")
    want = [one_by_one.predict([t], batch_size=1)[0] for t in inputs]
    predictor = load(model_dir, device="cpu", runtime=runtime)
    assert predictor.runtime == runtime
    assert_same(predictor.predict(inputs, batch_size=8), want)
    # input order is the caller's: a permutation of the inputs permutes the outputs the same way
    perm = list(reversed(range(len(inputs))))
    assert_same(predictor.predict([inputs[i] for i in perm], batch_size=5), [want[i] for i in perm])


def test_each_batch_is_padded_only_to_its_longest(model_dir):
    predictor = load(model_dir, device="cpu")
    examples = [predictor.task.from_input(t) for t in texts(50, seed=1)]
    features, _ = predictor.task.encode(examples, predictor.tokenizer, predictor.labels, predictor.cfg)
    seen = []

    def recording(input_ids, token_type_ids, attention_mask):
        seen.append(attention_mask.sum(1).tolist())
        assert attention_mask[:, -1].any()  # the last column is a real token for some row: no extra padding
        return predictor.model(input_ids, token_type_ids, attention_mask)

    recording.kind, recording.eval = "sequence", lambda: None
    outputs = infer(recording, features, 8, predictor.pad_id, "cpu")
    lengths = [n for batch in seen for n in batch]
    assert lengths == sorted(len(f["input_ids"]) for f in features)  # sorted by length, every input once
    unsorted = infer(predictor.model, features[::-1], 8, predictor.pad_id, "cpu")[::-1]
    np.testing.assert_allclose(np.stack(outputs), np.stack(unsorted), atol=1e-5, rtol=0)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_is_an_opt_in_close_to_fp32(model_dir, runtime):
    inputs = texts(40, seed=2)
    fp32 = load(model_dir, device="cpu").predict(inputs)
    quantized = load(model_dir, device="cpu", runtime=runtime, int8=True)
    assert quantized.runtime == f"{runtime} int8"
    got = quantized.predict(inputs, batch_size=16)
    diff = np.abs(probabilities(got) - probabilities(fp32)).max()
    assert 0 < diff < 0.05  # lossy, but only a little on this model


def test_auto_runtime_rule(model_dir):
    model = load(model_dir, device="cpu").model
    assert pick_runtime("auto", model, "cpu", n_inputs=3) == "torch"  # the export would cost more than it saves
    assert pick_runtime("torch", model, "cpu", n_inputs=10_000) == "torch"
    with pytest.raises(ElectraError, match="runs on the CPU"):
        pick_runtime("onnx", model, "cuda")
    with pytest.raises(ElectraError, match="unknown runtime"):
        pick_runtime("tensorrt", model, "cpu")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_cli_runtime_gives_the_same_predictions_in_order(model_dir, tmp_path, capsys, runtime):
    inputs = texts(30, seed=3)
    (tmp_path / "in.txt").write_text("".join(json.dumps(t) + "\n" for t in inputs))
    assert main(["predict", "--model", str(model_dir), "--input", str(tmp_path / "in.txt"), "--output",
                 str(tmp_path / "out.jsonl"), "--batch-size", "7", "--device", "cpu", "--runtime", runtime]) == 0
    assert f"({runtime})" in capsys.readouterr().err
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert_same(got, load(model_dir, device="cpu").predict(inputs, batch_size=1))


@pytest.mark.skipif(not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")),
                    reason="onnx extra")
def test_onnxruntime_transformer_fusions_keep_the_outputs(model_dir):
    from electra.onnx import OnnxRunner

    inputs = texts(20, seed=4)
    predictor = load(model_dir, device="cpu")
    want = predictor.predict(inputs)
    predictor.runner = OnnxRunner.from_model(predictor.model, fuse=True)  # SkipLayerNormalization, BiasGelu
    assert_same(predictor.predict(inputs, batch_size=6), want)
