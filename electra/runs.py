"""A pretraining run's seeds, RNG state and folder: what makes a run resumable bit for bit, and what it writes.

    seed = derived_seed(cfg.train.seed, step, shard, stream=0)     # masking; stream 1: dropout
    state = rng_state(); set_rng_state(state)                      # into / out of a checkpoint's state.pt
    prepare_run_dir(Path("runs/debug"), resume=False, overwrite=False)   # refusals first; start_run_dir creates it
    with StopSignals(env) as stop: train(run, stop.arm())               # Ctrl-C / SIGTERM: checkpoint, exit 130 / 143
    log = MetricsLog(run_dir, start=0, tensorboard=True, say=print); log.write({"kind": "train", "step": 5, ...})

Run folder: config.json (resolved), metrics.jsonl (one JSON record a line: train, eval, diagnosis), tb/,
tokenizer/, checkpoints/ (electra.checkpoint), hf/ and the report (electra.report).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import threading
from pathlib import Path

from electra.errors import ElectraError
from electra.files import removed_on_failure, write_json


def derived_seed(seed: int, step: int, shard: int, stream: int) -> int:
    """A 63-bit seed for one (step, shard of the global batch, stream); independent of world size and resumes."""
    digest = hashlib.blake2b(f"{seed}:{step}:{shard}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def rng_state() -> dict:
    """Every process-wide RNG (torch, CUDA, Python, NumPy) as tensors and plain values (torch.load weights_only)."""
    import numpy as np
    import torch

    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype("uint32"), *rest))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Create the run folder; refuse an existing run unless resuming or overwriting, and anything not a run."""
    looks_like_run = (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").is_dir()
    if run_dir.exists() and any(run_dir.iterdir()) and not (resume or overwrite):
        if looks_like_run:
            raise ElectraError(f"run folder {run_dir} already holds a run; pass --resume to continue it or "
                               f"--overwrite to start over")
        raise ElectraError(f"run folder {run_dir} exists and is not empty; choose another run.out")
    if overwrite and not resume and run_dir.exists():
        if any(run_dir.iterdir()) and not looks_like_run and not (run_dir / "config.json").is_file():
            raise ElectraError(f"refusing to overwrite {run_dir}: it is not a pretraining run folder")
        shutil.rmtree(run_dir)


def start_run_dir(run_dir: Path, resolved: dict, data_dir: str) -> None:
    """The run folder with config.json (the resolved settings) and, once, a copy of the data's tokenizer (rank 0).
    A folder this call creates is removed again if these first writes fail (a full disk, a read-only parent)."""
    with removed_on_failure(run_dir, when=not run_dir.exists()):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", resolved)
        if not (run_dir / "tokenizer").is_dir() and (Path(data_dir) / "tokenizer").is_dir():
            shutil.copytree(Path(data_dir) / "tokenizer", run_dir / "tokenizer")


def warn_schedule_change(saved: dict, cfg, start: int, say) -> None:
    """One warning line when a resume changes the learning-rate schedule: train.steps, optim.warmup_steps or
    optim.lr differ from the checkpoint's (`saved`: its config). The run goes on with the new schedule."""
    from electra.optim import linear_schedule

    t, o = saved.get("train", {}), saved.get("optim", {})
    names = ("train.steps", "optim.warmup_steps", "optim.lr")
    new = (cfg.train.steps, cfg.optim.warmup_steps, cfg.optim.lr)
    old = (t.get("steps", new[0]), o.get("warmup_steps", new[1]), o.get("lr", new[2]))
    if old == new or start >= new[0]:  # unchanged, or nothing left to train (said elsewhere)
        return
    lr_old, lr_new = (lr * linear_schedule(warmup, steps)(start) for steps, warmup, lr in (old, new))
    changed = ", ".join(f"{n} {a:g} -> {b:g}" for n, a, b in zip(names, old, new) if a != b)
    say(f"warning: resuming with {changed}: warm-up ({new[1]:,} steps) and linear decay to 0 are now computed over "
        f"{new[0]:,} steps; the lr at step {start:,} jumps from {lr_old:.3g} to {lr_new:.3g}")


def finished_result(run_dir: Path, start: int, steps: int, say) -> dict:
    """Resuming a run whose checkpoint (at `start`, just verified) is at or past train.steps: say so, and return
    the result with that checkpoint's last train and eval metrics."""
    from electra.checkpoint import META, step_dir_name

    ckpt = run_dir / "checkpoints" / step_dir_name(start)
    meta = json.loads((ckpt / META).read_text(encoding="utf-8"))
    say(f"{run_dir} is finished: its newest checkpoint is at step {start:,} (train.steps={steps:,}); nothing to "
        f"train. To train longer, resume with a larger --train.steps")
    return {"run_dir": str(run_dir), "step": start, "train": meta.get("train", {}), "eval": meta.get("eval", {}),
            "checkpoint": str(ckpt), "finished": True, "diagnoses": [],
            "nonfinite_steps": meta.get("train", {}).get("nonfinite_steps", 0)}


class Interrupted(ElectraError):
    """Training stopped by SIGINT (Ctrl-C) or SIGTERM after a checkpoint: exit status 128 + the signal (130, 143)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopSignals:
    """SIGINT and SIGTERM while training: once armed, the first one is noted, the step in progress (forward, backward,
    optimizer step) finishes, the loop saves a checkpoint of it and raises `interrupted()`; a second signal acts at
    once (the previous handlers are back). Arm it only around the loop, so Ctrl-C during set-up stops at once; a
    context manager (leaving it puts the previous handlers back); nothing is installed off the main thread.

        with StopSignals(env) as stop:
            train(run, stop.arm())   # after each step: if stop.requested(): save, raise stop.interrupted(...)
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, env=None):
        self.env, self.signum, self.previous = env, 0, {}

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def arm(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread() and not self.previous:
            self.previous = {s: signal.signal(s, self._note) for s in self.SIGNALS}
        return self

    def _note(self, signum, frame) -> None:  # nothing printed here: the handler may run in the middle of a write
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def requested(self) -> int:
        """The signal if any rank got one (ranks agree: one small all-reduce per step under DDP), else 0."""
        if self.env is not None and self.env.distributed:
            import torch

            from electra import dist

            flag = torch.tensor([float(self.signum)], device=self.env.device)
            self.signum = int(dist.all_reduce_max(flag, self.env).item())
        return self.signum

    def interrupted(self, step: int, ckpt, run_dir: Path, close=()) -> Interrupted:
        """The error to raise once the checkpoint `ckpt` of `step` is written; closes `close` (progress bar, log)."""
        for thing in close:
            thing.close()
        where = ckpt or run_dir / "checkpoints"
        return Interrupted(f"stopped by {signal.Signals(self.signum).name} after step {step:,}, checkpoint {where}; "
                           f"continue with: electra pretrain {run_dir / 'config.json'} --resume", self.signum)


def metrics_lines(path: Path, up_to_step: int) -> list[str]:
    """The lines of metrics.jsonl at or before `up_to_step` (a line cut by a kill is dropped)."""
    keep = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= up_to_step:
                    keep.append(line)
            except ValueError:
                continue
    return keep


class MetricsLog:
    """RUN/metrics.jsonl (cut back to `start` on a resume) and TensorBoard scalars. Rank 0 opens one; the other
    ranks use `MetricsLog.null()`, whose writes do nothing."""

    def __init__(self, run_dir: Path | None, start: int = 0, tensorboard: bool = False, say=print):
        self.file, self.tb = None, None
        if run_dir is None:
            return
        path = run_dir / "metrics.jsonl"
        path.write_text("".join(line + "\n" for line in metrics_lines(path, start)))
        self.file = open(path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start or None)
            except ImportError:
                say("tensorboard is not installed: no RUN/tb (pip install tensorboard)")

    @classmethod
    def null(cls) -> MetricsLog:
        return cls(None)

    def write(self, record: dict) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "kind") and v is not None:
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def table_row(rec: dict, header: bool) -> str:
    """One train record as a row of the console table (with the column titles above it when `header`)."""
    cols = [("step", "{:>7d}", "step"), ("loss", "{:>8.4f}", "loss"), ("mlm_loss", "{:>8.4f}", "gen loss"),
            ("rtd_loss", "{:>8.4f}", "disc loss"), ("mlm_acc", "{:>7.1%}", "gen acc"),
            ("rtd_acc", "{:>8.1%}", "disc acc"), ("rtd_recall", "{:>7.1%}", "recall"), ("lr", "{:>9.2e}", "lr"),
            ("tokens_per_s", "{:>9.0f}", "tok/s")]
    cols = [c for c in cols if c[0] in rec]
    row = "  ".join(fmt.format(rec[k]) for k, fmt, _ in cols)
    if not header:
        return row
    head = "  ".join(f"{title:>{len(fmt.format(rec[k]))}}" for k, fmt, title in cols)
    return head + "\n" + row
