"""The one thread rule (electra.threads): N as asked, 0 = auto from the free cores, restored after the block.

    .venv/bin/pytest -q tests/test_threads.py
"""
from __future__ import annotations

import os

import pytest
import torch

from electra.errors import ElectraError
from electra.threads import describe_threads, resolve_threads, torch_threads


def test_explicit_count_is_kept():
    assert resolve_threads(3) == 3
    with pytest.raises(ElectraError, match="threads=-1"):
        resolve_threads(-1)


def test_auto_uses_the_free_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert resolve_threads(0) == resolve_threads(None) == 8  # idle: every core
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 0.0, 0.0))
    assert resolve_threads(0) == 3  # 5 cores busy elsewhere
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 0.0, 0.0))
    assert resolve_threads(0) == 1  # oversubscribed: one thread
    assert describe_threads(0) == "auto: load 40.0 on 8 cores"
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's one thread per process
    assert resolve_threads(0) == 1
    assert resolve_threads(4) == 4


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError):
        with torch_threads(1):
            raise KeyError("x")
    assert torch.get_num_threads() == before
