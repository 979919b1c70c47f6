"""Our training step eager vs torch.compile'd, in the same process, alternating steps, fp32 and bf16 autocast.

    python benchmarks/compile_cpu.py --batch-size 8 --steps 6          # CPU, small preset (compilation: minutes)
    python benchmarks/compile_cpu.py --device cuda --batch-size 128     # the same on a GPU

Prints the median ms/step of each, the speed ratio compiled / eager and the first (compiling) step's time, with
the load average (docs/PERFORMANCE.md, "torch.compile ... what the CPU checks").
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain_step import SPECIAL, make_batches, make_step, sync  # noqa: E402

from electra.config import preset  # noqa: E402
from electra.objectives import build_objective  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=6, help="timed steps per variant (default 6)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", default="fp32,bf16")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    print(f"# {args.preset}, batch {args.batch_size} x {args.seq_len}, {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    for name in args.dtypes.split(","):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        torch.manual_seed(0)
        eager = build_objective(preset(args.preset, vocab_size=30522), SPECIAL).to(device).train()
        compiled_module = copy.deepcopy(eager)
        compiled = torch.compile(compiled_module)
        steps = {"eager": make_step(eager, lambda i, t, a: eager(i, t, a)["loss"], device, dtype),
                 "compiled": make_step(compiled_module, lambda i, t, a: compiled(i, t, a)["loss"], device, dtype)}
        batches = make_batches(args.steps + 1, args.batch_size, args.seq_len, 30522, False)
        first, times = {}, {k: [] for k in steps}
        for k, step in steps.items():
            t0 = time.perf_counter()
            step(batches[0])
            sync(device)
            first[k] = time.perf_counter() - t0
        for b in batches[1:]:
            for k, step in steps.items():  # alternate so that noise hits both
                t0 = time.perf_counter()
                step(b)
                sync(device)
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}: eager {1000 * med['eager']:.0f} ms/step, compiled {1000 * med['compiled']:.0f} ms/step, "
              f"compiled speed / eager {med['eager'] / med['compiled']:.2f}x; first step eager {first['eager']:.1f} s, "
              f"compiled {first['compiled']:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
