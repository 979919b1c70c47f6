"""The one CPU-thread rule for every command: `threads = N` uses N torch threads, `threads = 0` means auto.

Auto: as many threads as free cores, at least 1: all of them (or OMP_NUM_THREADS, which torchrun sets to 1 per
process) on an idle machine, fewer when other work keeps the cores busy (1-minute load average). On a busy machine
OpenMP's spinning barriers make extra torch threads fight the other jobs and run several times slower than one.

    with torch_threads(cfg.threads) as n:      # sets torch's thread count, restores it on exit
        print(f"threads {n} ({describe_threads(cfg.threads)})")
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from electra.errors import ElectraError

HELP = ("CPU threads for torch; 0 = auto: one per free core (all cores on an idle machine, fewer when the load "
        "average shows other work, at least 1; OMP_NUM_THREADS caps it)")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _ceiling() -> int:
    """The most threads auto uses: OMP_NUM_THREADS if set to a number (torchrun: 1), else the usable cores."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return _cores()


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): assume idle
        return 0.0


def resolve_threads(n: int | None = 0) -> int:
    """N > 0 -> N; 0 or None -> auto: the free cores (cores - load average, rounded), between 1 and the ceiling."""
    if n is not None and n < 0:
        raise ElectraError(f"threads={n} must be 0 (auto) or a positive number")
    if n:
        return int(n)
    free = round(_cores() - _load())
    return max(1, min(_ceiling(), free))


def describe_threads(n: int | None = 0) -> str:
    """Why resolve_threads(n) chose what it did, for the start-up log."""
    if n:
        return "as asked"
    return f"auto: load {_load():.1f} on {_cores()} cores"


@contextmanager
def torch_threads(n: int | None = 0) -> Iterator[int]:
    """Set torch's intra-op threads to resolve_threads(n) inside the block and restore the previous count after
    (a study runs many jobs in one process)."""
    import torch

    before = torch.get_num_threads()
    chosen = resolve_threads(n)
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(before)
