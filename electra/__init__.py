"""electra: ELECTRA pretraining on your own corpus and fine-tuning, interoperable with Hugging Face.

Import is cheap: nothing here touches torch devices, logging or the network.
"""
__version__ = "0.1.0"


def load(path, device=None, runtime: str = "torch", int8: bool = False):
    """Load a fine-tuned model folder (ours or Hugging Face's) for prediction: `load(dir).predict([...])`.
    `runtime`: torch, onnx (onnxruntime, CPU) or auto; `int8`: dynamic int8 weights (CPU, lossy)."""
    from electra.predict import load as _load

    return _load(path, device=device, runtime=runtime, int8=int8)
