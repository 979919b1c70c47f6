"""ONNX Runtime vs PyTorch inference speed on CPU for a sequence classifier, batch 32 x length 128, measured in the
same run (interleaved rounds, medians) so the ratio survives a noisy shared machine. Also checks the outputs agree.

    .venv/bin/python benchmarks/inference_onnx.py                     # tiny and small presets, 1 thread
    .venv/bin/python benchmarks/inference_onnx.py --presets small --threads 2 --rounds 7

Prints one JSON line per (preset, threads): sequences/s for PyTorch (eager, no_grad, eval) and onnxruntime
(CPUExecutionProvider, graph optimisations on), their ratio, and the largest |difference| of the logits.
Weights are random (speed does not depend on them); the model is exported with `electra.onnx.export_onnx`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from electra.config import preset
from electra.model import TaskModel
from electra.onnx import export_onnx, onnx_logits, onnx_session, sample_inputs


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"], help="model presets (tiny small)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1], help="CPU thread counts to try (1)")
    ap.add_argument("--batch", type=int, default=32, help="sequences per batch (32)")
    ap.add_argument("--length", type=int, default=128, help="tokens per sequence (128)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds; medians reported (5)")
    ap.add_argument("--repeats", type=int, default=3, help="batches per timing (3)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="electra-onnx-bench-"))
    for name in args.presets:
        torch.manual_seed(0)
        model = TaskModel(preset(name, vocab_size=30522).discriminator, "sequence", num_labels=2).eval()
        path = export_onnx(model, tmp / f"{name}.onnx")
        x = sample_inputs(30522, args.batch, args.length, seed=0, pad_last=args.length // 4)
        feed = (x["input_ids"].numpy(), x["attention_mask"].numpy(), x["token_type_ids"].numpy())
        for threads in args.threads:
            torch.set_num_threads(threads)
            session = onnx_session(path, threads=threads)

            def run_torch():
                with torch.no_grad():
                    return model(x["input_ids"], x["token_type_ids"], x["attention_mask"])[1]

            def run_ort():
                return onnx_logits(session, *feed)

            diff = float((torch.from_numpy(run_ort()) - run_torch()).abs().max())
            t_torch, t_ort = [], []
            for _ in range(args.rounds):
                t_torch.append(seconds(run_torch, args.repeats))
                t_ort.append(seconds(run_ort, args.repeats))
            torch_sps = args.batch / statistics.median(t_torch)
            ort_sps = args.batch / statistics.median(t_ort)
            print(json.dumps({"preset": name, "threads": threads, "batch": args.batch, "length": args.length,
                              "torch_seq_per_s": round(torch_sps, 1), "onnxruntime_seq_per_s": round(ort_sps, 1),
                              "onnxruntime_over_torch": round(ort_sps / torch_sps, 2),
                              "max_abs_diff": diff, "torch": torch.__version__,
                              "onnxruntime": __import__("onnxruntime").__version__}), flush=True)


if __name__ == "__main__":
    main()
