"""ONNX export (electra/onnx.py): discriminator and fine-tuned classifier folders export with dynamic batch and
sequence axes, and onnxruntime's outputs equal PyTorch's (and transformers') within 1e-4 on shapes other than the
traced one, padding included.

    .venv/bin/pytest -q tests/test_onnx.py
"""
import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from electra.config import preset
from electra.errors import ElectraError
from electra.hf import export_pretraining, export_task_model, load_task_model
from electra.model import TaskModel
from electra.objectives import build_objective
from electra.onnx import export_onnx, onnx_logits, onnx_session, sample_inputs, verify_onnx

VOCAB = 300


def _perturbed(model):
    with torch.no_grad():  # non-trivial biases and LayerNorms
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("onnx_models")
    electra = _perturbed(build_objective(preset("tiny", vocab_size=VOCAB), dict(pad=0, cls=1, sep=2, mask=3)))
    pair = export_pretraining(electra.eval(), root / "pretrained")
    classifier = _perturbed(TaskModel(preset("tiny", vocab_size=VOCAB).discriminator, "sequence", num_labels=3))
    fine_tuned = export_task_model(classifier.eval(), root / "sst", labels=["neg", "neu", "pos"],
                                   extra={"electra_task.json": {"task": "toy", "kind": "sequence",
                                                                "labels": ["neg", "neu", "pos"], "max_seq_len": 64}})
    return {"discriminator": pair["discriminator"], "classifier": fine_tuned}


@pytest.fixture(scope="module")
def exported(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_files")
    return {which: export_onnx(folder, out / f"{which}.onnx") for which, folder in folders.items()}


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("which", ["discriminator", "classifier"])
def test_onnx_equals_pytorch_on_new_batch_sizes_and_lengths(folders, exported, which):
    assert exported[which].name == f"{which}.onnx" and exported[which].is_file()
    graph = onnx.load(str(exported[which])).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(_dims(i) == ["batch", "sequence"] for i in graph.input)
    assert _dims(graph.output[0]) == (["batch", "sequence"] if which == "discriminator" else ["batch", 3])

    model = load_task_model(folders[which]).eval()
    session = onnx_session(exported[which])
    for batch, length, pad in [(1, 5, 0), (4, 37, 11), (16, 128, 60)]:
        x = sample_inputs(VOCAB, batch, length, seed=batch, pad_last=pad)
        got = onnx_logits(session, x["input_ids"], x["attention_mask"], x["token_type_ids"])
        with torch.no_grad():
            ref = model(x["input_ids"], x["token_type_ids"], x["attention_mask"])[1].numpy()
        real = x["attention_mask"].numpy().astype(bool)
        if which == "discriminator":
            got, ref = got[real], ref[real]  # outputs at padding are unspecified
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_onnx_classifier_equals_transformers(folders, exported):
    transformers = pytest.importorskip("transformers")
    hf = transformers.ElectraForSequenceClassification.from_pretrained(folders["classifier"]).eval()
    x = sample_inputs(VOCAB, 5, 19, seed=3, pad_last=6)
    with torch.no_grad():
        ref = hf(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                 token_type_ids=x["token_type_ids"]).logits.numpy()
    got = onnx_logits(exported["classifier"], x["input_ids"], x["attention_mask"], x["token_type_ids"])
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert json.loads((folders["classifier"] / "config.json").read_text())["id2label"]["2"] == "pos"


@pytest.mark.parametrize("kind,num_labels", [("token", 4), ("span", 2), ("masked-lm", 1)])
def test_every_head_exports_and_the_model_keeps_its_mode(tmp_path, kind, num_labels):
    model = TaskModel(preset("tiny", vocab_size=VOCAB).discriminator, kind, num_labels).train()
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training  # export evaluates in eval mode, then restores the caller's mode
    assert verify_onnx(model.eval(), tmp_path / "m.onnx") <= 1e-4
    x = sample_inputs(VOCAB, 2, 9)
    assert onnx_logits(tmp_path / "m.onnx", x["input_ids"]).shape[:2] == (2, 9)


def test_user_errors(folders, tmp_path):
    with pytest.raises(ElectraError, match="not found"):
        export_onnx(tmp_path / "missing", tmp_path / "x.onnx")
    (tmp_path / "x.onnx").write_text("keep me")
    with pytest.raises(ElectraError, match="already exists"):
        export_onnx(folders["classifier"], tmp_path / "x.onnx", overwrite=False)
    assert (tmp_path / "x.onnx").read_text() == "keep me"
    assert not list(tmp_path.glob(".x.onnx.tmp-*"))


def test_verification_catches_a_wrong_graph(folders, exported):
    """The check is real: a graph exported from other weights is refused."""
    other = load_task_model(folders["classifier"]).eval()
    with torch.no_grad():
        other.head.out.bias.add_(0.01)
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        verify_onnx(other, exported["classifier"])
