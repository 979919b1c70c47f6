"""Inference throughput of a sequence classifier: ours vs `transformers`, in the same process.

    python benchmarks/inference.py                                   # small preset, batch 32, length 128, CPU
    python benchmarks/inference.py --model runs/sst2/model           # a fine-tuned folder (ours or any HF ELECTRA)
    python benchmarks/inference.py --smoke                           # CI-size check
    python benchmarks/inference.py --real-text --threads 1           # `electra predict` on SST-2 dev (see below)

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

--real-text: the job users run, end to end (texts in, labels and probabilities out), on the 872 SST-2 dev sentences
at batch 32. Reference: a `transformers` `pipeline("text-classification")` (fp32, top_k=None) on the same exported
folder, same texts, same batch size. Ours: `electra.load(folder, runtime=...).predict(texts, batch_size=32)`
(sorted by length, each batch padded to its longest) with PyTorch and onnxruntime, fp32 and int8. Without --model a
small-preset classifier is fine-tuned first (random init, --finetune-steps batches of SST-2 train, cached in
.cache/bench-inference/): its accuracy is low, but the point is speed on real lengths. Each round times every row
once, in turn; medians over --rounds. The exported-graph set-up (seconds, once per load) is reported, not timed
in the rows. The last line is the ratio of the row `electra predict` uses by default (`--runtime auto`).
"""
from __future__ import annotations

import argparse
import os
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
    p.add_argument("--real-text", action="store_true", help="`electra predict` on SST-2 dev vs a transformers pipeline")
    p.add_argument("--data", default=None, help="--real-text: the SST-2 folder (default ../shared/data/glue/SST-2)")
    p.add_argument("--limit", type=int, default=0, help="--real-text: only the first N dev sentences (0 = all)")
    p.add_argument("--rounds", type=int, default=3, help="--real-text: timed rounds per row (default: 3)")
    p.add_argument("--finetune-steps", type=int, default=300,
                   help="--real-text without --model: fine-tuning steps of the small model (default: 300)")
    args = p.parse_args(argv)
    if args.real_text:
        if args.threads:
            torch.set_num_threads(args.threads)
        return real_text(args)
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



# ---------------------------------------------------------------------------------------------------------------
# --real-text


def finetuned_small(steps: int, data: Path, shared: Path) -> Path:
    """A small-preset SST-2 classifier: random init, `steps` batches of 32 (one epoch over steps * 32 examples),
    cached under .cache/bench-inference/ (speed does not depend on how well it learned)."""
    from electra.cli import main as electra
    from electra.hf import export_task_model
    from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab

    out = Path(__file__).resolve().parents[1] / f".cache/bench-inference/sst2-small-{steps}"
    if (out / "model" / "config.json").is_file():
        print(f"# using the cached fine-tuned model {out / 'model'}")
        return out / "model"
    tok = tokenizer_from_vocab(shared / "vocab/bert-base-uncased.txt")
    init = out.parent / "small-init"
    torch.manual_seed(0)
    export_task_model(TaskModel(preset("small", vocab_size=tok.get_vocab_size()).discriminator, "pretraining"),
                      init, tokenizer_dir=save_tokenizer_folder(tok, out.parent / "tokenizer"),
                      overwrite=True)
    print(f"# fine-tuning a small model from random init on {steps * 32:,} SST-2 examples ({steps} steps)", flush=True)
    code = electra(["finetune", "--task", "sst2", "--model", str(init), "--data", str(data), "--out", str(out),
                    "--max-train-examples", str(steps * 32), "--epochs", "1", "--no-predict-test",
                    "--no-progress", "--threads", str(torch.get_num_threads()), "--overwrite"])
    if code != 0:
        raise SystemExit(f"fine-tuning failed (exit {code})")
    return out / "model"


def real_text(args) -> int:
    import numpy as np
    import transformers

    from electra import load
    from electra.inference import onnx_available, pick_runtime
    from electra.sources import shared_data_dir

    shared = shared_data_dir() or Path("../shared/data")
    data = Path(args.data) if args.data else shared / "glue/SST-2"
    rows_tsv = [line.split("\t") for line in (data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    rows_tsv = rows_tsv[:args.limit] if args.limit else rows_tsv
    texts, gold = [r[0] for r in rows_tsv], [r[1].strip() for r in rows_tsv]
    folder = Path(args.model) if args.model else finetuned_small(args.finetune_steps, data, shared)
    bs = args.batch_size
    pipe = transformers.pipeline("text-classification", model=str(folder), device="cpu", top_k=None)
    labels = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]

    def reference():
        return [{"label": max(r, key=lambda d: d["score"])["label"], "probabilities": {d["label"]: d["score"] for d in r}}
                for r in pipe(texts, batch_size=bs)]

    rows, setup = {"transformers fp32": reference}, {}
    runtimes = ["torch"] + (["onnx"] if onnx_available() and not args.no_onnx else [])
    for runtime in runtimes:
        for int8 in (False, True):
            t0 = time.perf_counter()
            predictor = load(folder, device="cpu", runtime=runtime, int8=int8)
            name = f"ours {runtime} {'int8' if int8 else 'fp32'}"
            setup[name] = time.perf_counter() - t0
            rows[name] = lambda p=predictor: p.predict(texts, batch_size=bs)
    default = f"ours {pick_runtime('auto', predictor.model, 'cpu', len(texts))} fp32"
    if "onnx" in runtimes:  # onnxruntime's offline transformer fusions, measured against the session's own
        from electra.onnx import OnnxRunner

        t0 = time.perf_counter()
        fused = load(folder, device="cpu")
        fused.runner = OnnxRunner.from_model(fused.model, threads=torch.get_num_threads(), fuse=True)
        setup["ours onnx+fuse fp32"] = time.perf_counter() - t0
        rows["ours onnx+fuse fp32"] = lambda: fused.predict(texts, batch_size=bs)

    outputs = {name: fn() for name, fn in rows.items()}  # warm-up, and the outputs compared below
    times = {name: [] for name in rows}
    for r in range(args.rounds):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        print(f"# round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items())
              + f"; load average {os.getloadavg()[0]:.1f}", flush=True)

    def probs(out):
        return np.array([[o["probabilities"][label] for label in labels] for o in out])

    ref_probs = probs(outputs["transformers fp32"])
    base = statistics.median(times["transformers fp32"])
    print(f"# SST-2 dev, {len(texts)} sentences, batch {bs}, model {folder} ({pipe.model.config.num_hidden_layers} "
          f"layers, hidden {pipe.model.config.hidden_size}), CPU, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, transformers {transformers.__version__}, {args.rounds} rounds, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'row':<20}{'s (median)':>11}{'sent/s':>9}{'vs transformers':>17}{'accuracy':>10}{'label agree':>13}"
          f"{'max |dprob|':>13}{'setup s':>9}")
    for name, out in outputs.items():
        m = statistics.median(times[name])
        acc = 100 * np.mean([o["label"] == g for o, g in zip(out, gold)])
        agree = 100 * np.mean([o["label"] == r["label"] for o, r in zip(out, outputs["transformers fp32"])])
        print(f"{name:<20}{m:>11.2f}{len(texts) / m:>9.1f}{base / m:>16.2f}x{acc:>9.2f}%{agree:>12.2f}%"
              f"{np.abs(probs(out) - ref_probs).max():>13.1e}{setup.get(name, 0.0):>9.1f}")
    print(f"ratio ours/transformers fp32 real-text: {base / statistics.median(times[default]):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
