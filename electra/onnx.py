"""ONNX export of a discriminator or a fine-tuned model, with dynamic batch and sequence length, verified against
PyTorch with onnxruntime. `electra export --format onnx` calls `export_onnx`; in Python:

    from electra.onnx import export_onnx, onnx_logits
    path = export_onnx("runs/sst2/model", "sst2.onnx")       # an HF folder (ElectraFor*) or a TaskModel
    logits = onnx_logits("sst2.onnx", input_ids, attention_mask, token_type_ids)   # numpy in, numpy out

The graph takes `input_ids`, `attention_mask`, `token_type_ids` (int64, (batch, sequence)) and returns `logits`:
(batch, num_labels) for sequence classification, (batch, sequence) for the discriminator's replaced-token logits,
(batch, sequence, num_labels) for token classification, (batch, sequence, 2) start/end for extractive QA,
(batch, sequence, vocab) for a generator. Needs the `onnx` extra: `pip install -e ".[onnx]"` (onnx, onnxruntime).

The exporter is torch's TorchScript-based one (`dynamo=False`): it needs nothing beyond torch and onnx, and handles
this encoder (SDPA with a boolean mask) at opset 17. After writing, the file is checked on two input shapes that
differ from the tracing shape, padding included; outputs must equal PyTorch's within `atol` (1e-4) at real tokens.

For predicting (`electra predict --runtime onnx`, `load(dir, runtime="onnx")`), `OnnxRunner.from_model(model)` exports
a TaskModel to a temporary file, optionally quantises the MatMul weights to int8 (`int8=True`: onnxruntime dynamic
quantisation, lossy), and opens it with all of onnxruntime's graph optimisations (its LayerNorm and Gelu fusions
included). It is called like a TaskModel, `runner(input_ids, token_type_ids, attention_mask) -> (None, logits)`, so
`electra.inference.infer` batches it the same way. The fp32 graph is checked against PyTorch (1e-4) before use.
onnxruntime's offline transformer optimizer (`fuse=True`: SkipLayerNormalization, BiasGelu; it does not fuse our
SDPA attention) measured slower than the session's own optimisations on SST-2 (docs/PERFORMANCE.md), so it is off.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from electra.errors import ElectraError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PER_TOKEN_KINDS = ("pretraining", "token", "span", "masked-lm")


class _Graph(torch.nn.Module):
    """The traced signature: (input_ids, attention_mask, token_type_ids) -> logits. Put it in eval mode before
    exporting: the exporter restores the wrapper's mode afterwards, recursively, which would re-enable dropout."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, token_type_ids, attention_mask)[1]


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ElectraError(f"ONNX export needs the '{module}' package: pip install -e '.[onnx]'") from None


def _load(model_or_folder):
    from electra.model import TaskModel

    if isinstance(model_or_folder, TaskModel):
        model = model_or_folder
    else:
        from electra.hf import load_task_model

        model = load_task_model(Path(model_or_folder))
    if model.kind == "multiple-choice":  # its inputs are (batch, choices, sequence): not this graph's signature
        raise ElectraError("ONNX export covers (batch, sequence) models; a multiple-choice model is not one")
    return model


def sample_inputs(vocab_size: int, batch: int, length: int, seed: int = 0, pad_last: int = 0) -> dict:
    """Random int64 inputs; the last row is padded over its final `pad_last` positions; segment B after the middle."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, length), generator=g)  # (B, T)
    am = torch.ones_like(ids)
    if pad_last:
        am[-1, length - pad_last:] = 0
        ids[-1, length - pad_last:] = 0
    tt = torch.zeros_like(ids)
    tt[:, length // 2:] = 1
    return {"input_ids": ids, "attention_mask": am, "token_type_ids": tt}


def onnx_session(path, threads: int | None = None):
    """An onnxruntime CPU session for an exported file, with all graph optimisations (constant folding, LayerNorm
    and Gelu fusions, MatMul + Add, layout)."""
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_logits(session_or_path, input_ids, attention_mask=None, token_type_ids=None) -> np.ndarray:
    """Run an exported model on int64 arrays (or tensors); missing masks default to all-ones / all-zeros."""
    session = session_or_path if hasattr(session_or_path, "run") else onnx_session(session_or_path)
    ids = np.asarray(input_ids, dtype=np.int64)
    feed = {"input_ids": ids,
            "attention_mask": np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, np.int64),
            "token_type_ids": np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, np.int64)}
    return session.run(["logits"], feed)[0]


def max_difference(model, session, inputs: dict) -> float:
    """Largest |onnx - torch| over real tokens (outputs at padding are unspecified)."""
    with torch.no_grad():
        ref = model(inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"])[1].float().numpy()
    got = onnx_logits(session, *(inputs[k].numpy() for k in INPUTS))
    if got.shape != ref.shape:
        raise RuntimeError(f"ONNX output shape {got.shape} != PyTorch {ref.shape}")
    diff = np.abs(got - ref)
    if model.kind in PER_TOKEN_KINDS:
        diff = diff[inputs["attention_mask"].numpy().astype(bool)]
    return float(diff.max())


def verify_onnx(model, session_or_path, atol: float = 1e-4, source: str = "the model") -> float:
    """Run the exported graph on two shapes other than the tracing one (padding included) and return the largest
    |onnx - torch| at real tokens; RuntimeError above `atol` (a bug, not a user error)."""
    session = session_or_path if hasattr(session_or_path, "run") else onnx_session(session_or_path)
    T = model.cfg.max_position_embeddings
    shapes = [(3, min(23, T), min(7, T - 1)), (1, min(41, T), 0)]
    diff = max(max_difference(model, session, sample_inputs(model.cfg.vocab_size, b, t, seed=i + 1, pad_last=p))
               for i, (b, t, p) in enumerate(shapes))
    if not diff <= atol:
        raise RuntimeError(f"ONNX export of {source} differs from PyTorch by {diff:.2e} (> {atol:.0e})")
    return diff


def export_onnx(hf_folder_or_task_model, out_path, opset: int = 17, verify: bool = True, atol: float = 1e-4,
                overwrite: bool = True) -> Path:
    """Export an HF folder (any ElectraFor* / fine-tuned folder of ours) or a TaskModel to `out_path` (.onnx) and
    return the path. With `verify`, onnxruntime must agree with PyTorch within `atol` (see `verify_onnx`). The file
    appears only after a successful export and check."""
    _require("onnx")
    model = _load(hf_folder_or_task_model)
    was_training = model.training
    model.eval()
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise ElectraError(f"{out} already exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    axes["logits"] = {0: "batch", 1: "sequence"} if model.kind in PER_TOKEN_KINDS else {0: "batch"}
    example = sample_inputs(model.cfg.vocab_size, batch=2, length=min(16, model.cfg.max_position_embeddings))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation; tracer notes
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(model).eval(), tuple(example[k] for k in INPUTS), str(tmp), dynamo=False,
                              input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=True)
        if verify:
            source = str(hf_folder_or_task_model) if isinstance(hf_folder_or_task_model, (str, Path)) else \
                f"a {model.kind} model"
            verify_onnx(model, tmp, atol, source)
        os.replace(tmp, out)
    finally:
        model.train(was_training)
        if tmp.exists():
            tmp.unlink()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Predicting with onnxruntime


def optimize_transformer(path, out_path, cfg) -> Path:
    """onnxruntime's offline transformer fusions (model_type "bert": SkipLayerNormalization, BiasGelu; the attention
    pattern of our SDPA export is not one it fuses) -> `out_path`. Exact up to float rounding."""
    from onnxruntime.transformers import optimizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimizer.optimize_model(str(path), model_type="bert", num_heads=cfg.num_heads,
                                         hidden_size=cfg.hidden_size, opt_level=0)
    model.save_model_to_file(str(out_path))
    return Path(out_path)


def quantize_int8(path, out_path) -> Path:
    """onnxruntime dynamic quantisation: MatMul weights int8 (per tensor), activations quantised per call. Lossy."""
    _require("onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # outputs that ONNX shape inference cannot type (the fused com.microsoft operators) are float
    quantize_dynamic(str(path), str(out_path), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return Path(out_path)


class OnnxRunner:
    """A TaskModel exported to onnxruntime, called like the model: (input_ids, token_type_ids, attention_mask) ->
    (None, logits tensor). CPU only; `electra.inference.infer` batches it like a TaskModel."""

    def __init__(self, session, kind: str, cfg, int8: bool = False):
        self.session, self.kind, self.cfg, self.int8 = session, kind, cfg, int8

    @classmethod
    def from_model(cls, model, int8: bool = False, threads: int | None = None, fuse: bool = False) -> "OnnxRunner":
        """Export (verified against PyTorch), optionally fuse and quantise, and open a session; the files are
        temporary (the session holds the graph)."""
        model = _load(model)
        with tempfile.TemporaryDirectory(prefix="electra-onnx-") as tmp:
            path = export_onnx(model, Path(tmp) / "model.onnx")
            if fuse:
                path = optimize_transformer(path, Path(tmp) / "model.opt.onnx", model.cfg)
            if int8:
                path = quantize_int8(path, Path(tmp) / "model.int8.onnx")
            session = onnx_session(path, threads)
        runner = cls(session, model.kind, model.cfg, int8)
        if fuse and not int8:  # the fused graph is still the model: check it as the export was checked
            verify_onnx(model, session, source=f"the fused {model.kind} graph")
        return runner

    def eval(self) -> "OnnxRunner":
        return self

    def __call__(self, input_ids, token_type_ids=None, attention_mask=None):
        logits = onnx_logits(self.session, input_ids.cpu().numpy(),
                             None if attention_mask is None else attention_mask.cpu().numpy(),
                             None if token_type_ids is None else token_type_ids.cpu().numpy())
        return None, torch.from_numpy(logits)
