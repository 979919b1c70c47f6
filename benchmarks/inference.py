"""Inference throughput of a sequence classifier: ours vs `transformers`, in the same process.

    python benchmarks/inference.py                                   # small preset, batch 32, length 128, CPU
    python benchmarks/inference.py --model runs/sst2/model           # a fine-tuned folder (ours or any HF ELECTRA)
    python benchmarks/inference.py --smoke                           # CI-size check

Rows, all on the same weights and the same inputs:
  transformers fp32   ElectraForSequenceClassification (attn_implementation as transformers picks: sdpa)
  ours fp32           our TaskModel
  transformers bf16   the same under torch.autocast(bfloat16)
  ours bf16           ours under torch.autocast(bfloat16)
  ours int8-dynamic   ours with torch.ao dynamic int8 quantization of the Linear layers (weights int8, activations
                      quantized per batch); its max |logit difference| to fp32 is printed, since it is lossy
  onnxruntime fp32    our exported ONNX graph (electra.onnx.export_onnx) in onnxruntime, when installed
Each row: median ms per batch over N timed batches after warm-up, sequences/s, and the ratio to transformers fp32.
Timed batches alternate between rows so machine noise hits all of them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from electra.config import preset  # noqa: E402
from electra.hf import export_task_model, load_task_model  # noqa: E402
from electra.model import TaskModel  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a fine-tuned sequence-classification folder (default: random small preset)")
    p.add_argument("--preset", default="small", help="preset for a random model when --model is not given")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default: 32)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default: 128)")
    p.add_argument("--batches", type=int, default=8, help="timed batches per row (default: 8)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime row")
    p.add_argument("--smoke", action="store_true", help="tiny model, 2 batches: checks the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.preset, args.batch_size, args.seq_len, args.batches = "tiny", 4, 32, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="electra-inference-"))
    if args.model:
        ours = load_task_model(args.model, kind="sequence").eval()
    else:
        ours = TaskModel(preset(args.preset, vocab_size=30522 if not args.smoke else 2000).discriminator,
                         "sequence", num_labels=2).eval()
    folder = export_task_model(ours, work / "model")
    ref = transformers.ElectraForSequenceClassification.from_pretrained(folder).eval()
    vocab = ours.cfg.vocab_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1000 % vocab, vocab, (args.batch_size, args.seq_len), generator=g)
    am, tt = torch.ones_like(x), torch.zeros_like(x)
    tt[:, args.seq_len // 2:] = 1

    rows = {
        "transformers fp32": (lambda: ref(input_ids=x, attention_mask=am, token_type_ids=tt).logits, False),
        "ours fp32": (lambda: ours(x, tt, am)[1], False),
        "transformers bf16": (lambda: ref(input_ids=x, attention_mask=am, token_type_ids=tt).logits, True),
        "ours bf16": (lambda: ours(x, tt, am)[1], True),
    }
    try:  # torch.ao.quantization is deprecated in favour of torchao; skip the row where it is gone
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(ours, {torch.nn.Linear},
                                                               dtype=torch.qint8)
        rows["ours int8-dynamic"] = (lambda: quantized(x, tt, am)[1], False)
    except (AttributeError, RuntimeError) as e:
        print(f"(int8-dynamic row skipped: {type(e).__name__}: {e})")
    if not args.no_onnx:
        try:
            from electra.onnx import export_onnx, onnx_logits, onnx_session

            export_onnx(folder, work / "model.onnx")
            session = onnx_session(work / "model.onnx", threads=torch.get_num_threads())
            xn, amn, ttn = x.numpy(), am.numpy(), tt.numpy()
            rows["onnxruntime fp32"] = (lambda: torch.from_numpy(onnx_logits(session, xn, amn, ttn)), False)
        except Exception as e:  # onnx extras absent or the export failed: say so, keep the other rows
            print(f"(onnxruntime row skipped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")

    times = {name: [] for name in rows}
    with torch.inference_mode():
        reference = rows["ours fp32"][0]().float()
        drift = {}
        for name, (fn, bf16) in rows.items():  # warm-up, and each row's difference to fp32
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                drift[name] = (fn().float() - reference).abs().max().item()
        for _ in range(args.batches):
            for name, (fn, bf16) in rows.items():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["transformers fp32"])
    print(f"# sequence classifier ({ours.cfg.num_layers} layers, hidden {ours.cfg.hidden_size}), batch "
          f"{args.batch_size} x {args.seq_len}, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"transformers {transformers.__version__}")
    print(f"{'row':<20}{'ms/batch':>10}{'seq/s':>9}{'vs transformers fp32':>22}{'max |dlogit|':>14}")
    for name in rows:
        m = statistics.median(times[name])
        print(f"{name:<20}{1000 * m:>10.1f}{args.batch_size / m:>9.1f}{base / m:>21.2f}x{drift[name]:>14.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
