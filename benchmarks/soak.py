"""Soak test (not in CI): tiny pretraining for a long time with frequent checkpoints and evaluations, watching the
process's memory (RSS) and open file descriptors for leaks.

    nice -n 10 .venv/bin/python benchmarks/soak.py                # 20 minutes
    .venv/bin/python benchmarks/soak.py --minutes 2 --warmup 0.5   # a quick look

`python -m electra pretrain configs/debug.toml` runs in a child process on the 2 MB Wikipedia slice prepared by
benchmarks/faults.py, one thread, with an endless step count, a checkpoint every --checkpoint-every steps (the newest
2 kept, so old ones are deleted all along), an evaluation every --eval-every steps and TensorBoard on. This script
samples the child's RSS and open file descriptors (psutil) every --sample-s seconds and stops it with SIGINT after
--minutes. The first --warmup minutes are warm-up (allocator pools, lazy imports, the first checkpoint and
evaluation); RSS growth is the median of the last minute's samples against the median of the first minute after
warm-up. Prints the figures and writes them to WORK/soak.json; exit status 1 when RSS grew by 5% or more or the
median descriptor count of the last minute exceeds that of the first minute after warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults import DEBUG, REPO, tiny_prepared_data  # noqa: E402  (benchmarks/ is not a package)


def count_records(metrics: Path) -> dict:
    counts = {"train": 0, "eval": 0, "last_step": 0}
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            counts[record["kind"]] = counts.get(record["kind"], 0) + 1
            counts["last_step"] = max(counts["last_step"], record.get("step", 0))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="minutes of warm-up before the baseline (3)")
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "soak")
    args = parser.parse_args()
    if args.minutes <= args.warmup + 1:
        sys.exit("--minutes must exceed --warmup by more than one minute (a baseline minute and a final minute)")

    data = tiny_prepared_data(args.work)
    run = args.work / "run"
    cmd = [sys.executable, "-m", "electra", "pretrain", str(DEBUG), f"--data.dir={data}", f"--run.out={run}",
           "--train.steps=100000000", "--train.log_every=10", f"--train.checkpoint_every={args.checkpoint_every}",
           "--train.keep_checkpoints=2", f"--train.eval_every={args.eval_every}", "--train.eval_batches=4",
           "--train.threads=1", "--run.progress=false", "--run.tensorboard=true", "--run.report=false",
           "--run.export=false", "--overwrite"]
    log = args.work / "soak-child.log"
    samples = []  # (seconds since start, RSS bytes, open fds)
    with open(log, "w") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        proc = psutil.Process(child.pid)
        start = time.monotonic()
        try:
            while time.monotonic() - start < args.minutes * 60:
                if child.poll() is not None:
                    sys.exit(f"the pretraining process ended early (exit {child.returncode}); see {log}")
                samples.append((time.monotonic() - start, proc.memory_info().rss, proc.num_fds()))
                time.sleep(args.sample_s)
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()

    warm = args.warmup * 60
    after = [s for s in samples if s[0] >= warm]
    first = [s for s in after if s[0] < warm + 60]
    last = [s for s in after if s[0] >= samples[-1][0] - 60]
    base_rss = statistics.median(s[1] for s in first)
    end_rss = statistics.median(s[1] for s in last)
    growth = 100 * (end_rss - base_rss) / base_rss
    counts = count_records(run / "metrics.jsonl")
    result = {
        "minutes": round(samples[-1][0] / 60, 2), "warmup_minutes": args.warmup, "samples": len(samples),
        "steps": counts["last_step"], "evaluations": counts["eval"],
        "checkpoints_written": counts["last_step"] // args.checkpoint_every,
        "rss_mb_start": round(samples[0][1] / 1e6, 1), "rss_mb_after_warmup": round(base_rss / 1e6, 1),
        "rss_mb_end": round(end_rss / 1e6, 1), "rss_mb_max_after_warmup": round(max(s[1] for s in after) / 1e6, 1),
        "rss_growth_pct_after_warmup": round(growth, 2),
        "fds_after_warmup": statistics.median(s[2] for s in first), "fds_end": statistics.median(s[2] for s in last),
        "fds_max": max(s[2] for s in samples),
    }
    (args.work / "soak.json").write_text(json.dumps({**result, "trace": samples}, indent=1) + "\n")
    print(json.dumps(result, indent=2))
    ok = growth < 5 and result["fds_end"] <= result["fds_after_warmup"]
    print(f"RSS growth after warm-up {growth:+.2f}% ({'< 5%' if growth < 5 else '>= 5%: LEAK?'}); open fds "
          f"(median) {result['fds_after_warmup']} after warm-up, {result['fds_end']} in the last minute, max "
          f"{result['fds_max']}: "
          f"{'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
