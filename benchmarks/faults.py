"""Fault injection: SIGKILL a deterministic CPU pretraining run at random steps, resume it each time, and compare its
whole loss curve (every train log and every evaluation) with an uninterrupted run's.

    .venv/bin/python benchmarks/faults.py                      # 10 kills in an 80-step configs/debug.toml run
    .venv/bin/python benchmarks/faults.py --kills 3 --steps 30  # quicker

Data: a 2 MB slice of the English Wikipedia sample in ../shared/data, a 2,000-entry tokenizer trained on it and a
seq-len 64 prepared folder, built once under --work (reused on later runs). The uninterrupted reference runs in this
process; the interrupted run is `python -m electra pretrain configs/debug.toml ... --resume` in a subprocess, killed
with SIGKILL once its metrics.jsonl shows the target step (so the kill lands mid-step, mid-evaluation or
mid-checkpoint, wherever the process happens to be), then started again. Kill steps are random (--seed) and at least
checkpoint_every + 2 apart, so every resumed process is back in training before the next kill. Prints each kill and
where the next process resumed, then `identical` or the first step whose records differ; exit status 0 when identical.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEBUG = REPO / "configs" / "debug.toml"
WALL_CLOCK_KEYS = ("tokens_per_s", "elapsed_s", "mfu")  # not part of the curve


def tiny_prepared_data(work: Path) -> Path:
    """The seq-len 64 prepared folder of a 2 MB English Wikipedia slice (built once under `work`)."""
    from electra.data import PackConfig, prepare
    from electra.sources import extract_corpus_slice, shared_data_dir
    from electra.tokenizer import save_tokenizer_folder, train_tokenizer

    data = work / "data-64"
    if (data / "meta.json").is_file():
        return data
    shared = shared_data_dir()
    if shared is None:
        sys.exit("../shared/data is absent (set $ELECTRA_SHARED_DATA)")
    corpus = extract_corpus_slice(shared / "corpus/enwiki-2015-sample.tar.gz", work / "enwiki-2mb", 2 << 20)
    tok = save_tokenizer_folder(train_tokenizer([corpus], vocab_size=2000, limit_alphabet=300), work / "tok")
    prepare([corpus], tok, data, PackConfig(seq_len=64, seed=0, valid_fraction=0.05), workers=0, overwrite=True,
            progress_bar=False)
    return data


def run_overrides(data: Path, out: Path, steps: int, checkpoint_every: int) -> list[str]:
    """Deterministic, single-threaded, quiet: the same settings for the reference and the interrupted run."""
    return [f"--data.dir={data}", f"--run.out={out}", f"--train.steps={steps}", "--train.log_every=1",
            f"--train.checkpoint_every={checkpoint_every}", f"--train.eval_every={max(steps // 4, 1)}",
            "--train.keep_checkpoints=2", "--train.threads=1", "--train.deterministic=true", "--run.progress=false",
            "--run.tensorboard=false", "--run.report=false", "--run.export=false"]


def curve(run: Path) -> list[dict]:
    """The train and eval records of metrics.jsonl, without wall-clock fields."""
    records = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] in ("train", "eval"):
            records.append({k: v for k, v in record.items() if k not in WALL_CLOCK_KEYS})
    return records


def logged_step(metrics: Path) -> int:
    """The highest step in a metrics.jsonl being written (0 if none; a line cut mid-write is ignored)."""
    best = 0
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                best = max(best, json.loads(line).get("step", 0))
            except ValueError:
                pass
    return best


def kill_steps(rng: random.Random, kills: int, steps: int, gap: int) -> list[int]:
    """`kills` random steps in [2, steps - 2], at least `gap` apart."""
    slack = steps - 4 - gap * (kills - 1)
    if slack < 0:
        sys.exit(f"{kills} kills at least {gap} steps apart need --steps >= {gap * (kills - 1) + 4}")
    cuts = sorted(rng.randint(0, slack) for _ in range(kills))  # a random composition of the slack
    return [2 + cut + gap * i for i, cut in enumerate(cuts)]


def first_difference(a: list[dict], b: list[dict]) -> str | None:
    for x, y in zip(a, b):
        if x != y:
            keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            return f"step {x.get('step')} ({x.get('kind')}): {', '.join(keys)} differ"
    if len(a) != len(b):
        return f"{len(a)} records vs {len(b)} in the reference"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026, help="picks the kill steps")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "faults")
    args = parser.parse_args()

    from electra.pretrain import load_pretrain_config, pretrain

    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    data = tiny_prepared_data(args.work)
    targets = kill_steps(random.Random(args.seed), args.kills, args.steps, args.checkpoint_every + 2)
    print(f"kill steps: {targets}")

    reference = args.work / "reference"
    with open(args.work / "reference.log", "w") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        pretrain(load_pretrain_config(DEBUG, run_overrides(data, reference, args.steps, args.checkpoint_every)),
                 overwrite=True)

    run = args.work / "killed"
    shutil.rmtree(run, ignore_errors=True)  # a stale metrics.jsonl would trigger the first kill early
    cmd = [sys.executable, "-m", "electra", "pretrain", str(DEBUG),
           *run_overrides(data, run, args.steps, args.checkpoint_every), "--overwrite"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    killed = []
    for i, target in enumerate(targets + [None]):
        log = logs / f"process-{i}.stderr"
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            if target is None:  # the last process runs to the end
                code = proc.wait()
            else:
                while proc.poll() is None and logged_step(run / "metrics.jsonl") < target:
                    time.sleep(0.005)
                if proc.poll() is not None:
                    sys.exit(f"the run ended (exit {proc.returncode}) before step {target}; see {log}")
                at = logged_step(run / "metrics.jsonl")
                os.kill(proc.pid, signal.SIGKILL)
                code = proc.wait()
                killed.append(at)
        resumed = [line.strip() for line in log.read_text().splitlines() if line.startswith("resumed from")]
        where = resumed[0].split(" at step ")[-1] if resumed else "0 (fresh start)"
        outcome = f"SIGKILL after step {killed[-1]} was logged" if target is not None else f"finished (exit {code})"
        print(f"process {i + 1}: started at step {where}; {outcome}")
        cmd[-1] = "--resume"  # every later process continues the newest valid checkpoint
        if target is None and code != 0:
            sys.exit(f"the final process failed; see {log}")

    want, got = curve(reference), curve(run)
    diff = first_difference(got, want)
    elapsed = time.perf_counter() - started
    print(f"{len(killed)} SIGKILLs after steps {killed}; {len(got)} records (train every step + "
          f"{sum(r['kind'] == 'eval' for r in want)} evaluations) compared with the uninterrupted run: "
          f"{'identical' if diff is None else 'DIFFERENT at ' + diff} ({elapsed:.0f} s)")
    return 0 if diff is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
