"""A pretraining run's seeds, RNG state and folder: what makes a run resumable bit for bit, and what it writes.

    seed = derived_seed(cfg.train.seed, step, shard, stream=0)     # masking; stream 1: dropout
    state = rng_state(); set_rng_state(state)                      # into / out of a checkpoint's state.pt
    prepare_run_dir(Path("runs/debug"), resume=False, overwrite=False)
    log = MetricsLog(run_dir, start=0, tensorboard=True, say=print); log.write({"kind": "train", "step": 5, ...})

Run folder: config.json (resolved), metrics.jsonl (one JSON record a line: train, eval, diagnosis), tb/,
tokenizer/, checkpoints/ (electra.checkpoint), hf/ and the report (electra.report).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

from electra.errors import ElectraError
from electra.files import write_json


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
    run_dir.mkdir(parents=True, exist_ok=True)


def start_run_dir(run_dir: Path, resolved: dict, data_dir: str) -> None:
    """config.json (the resolved settings) and, once, a copy of the data's tokenizer (rank 0)."""
    write_json(run_dir / "config.json", resolved)
    if not (run_dir / "tokenizer").is_dir() and (Path(data_dir) / "tokenizer").is_dir():
        shutil.copytree(Path(data_dir) / "tokenizer", run_dir / "tokenizer")


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
