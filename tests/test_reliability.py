"""Reliability cases that tests/test_checkpoint.py and tests/test_pretrain.py leave open (issue 7, items 1 and 2):

- a checkpoint save killed half-way leaves a `.step_NNNNNNN.tmp-PID` folder: resume ignores it and the next save
  removes it (it would otherwise hold a checkpoint's worth of disk forever);
- Inf gradients with a finite loss are skipped and counted like a NaN loss;
- through the command line, a run whose gradients stay non-finite stops with exit code 2, one error line that says
  what to try, and a checkpoint that `--resume` continues from;
- `optim.clip_norm = 0` (clipping off) trains normally (it used to make every step look non-finite);
- resuming with another optim.name is refused (its optimizer state would not fit).

    .venv/bin/pytest -q tests/test_reliability.py
"""
from __future__ import annotations

import json
import math

import pytest

from electra import checkpoint, optim
from electra.cli import main
from electra.config import preset
from electra.errors import ElectraError
from electra.objectives import build_objective
from electra.pretrain import load_pretrain_config, pretrain
from electra.sources import REPO_ROOT

DEBUG = str(REPO_ROOT / "configs" / "debug.toml")
SPECIAL = dict(pad=0, unk=1, cls=2, sep=3, mask=4)


def test_a_save_killed_half_way_is_ignored_then_cleaned(tmp_path):
    cfg = preset("tiny", vocab_size=200)
    obj = build_objective(cfg, SPECIAL)
    meta = {"model": cfg.to_dict(), "special_ids": SPECIAL, "loader": {}}
    good = checkpoint.save_checkpoint(tmp_path, 1, obj, None, {"step": 1}, meta)
    stale = tmp_path / "checkpoints" / ".step_0000002.tmp-99999"  # a process that died mid-save
    stale.mkdir()
    (stale / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:1000])
    assert checkpoint.list_checkpoints(tmp_path) == [good]
    assert checkpoint.latest_valid(tmp_path) == good
    newer = checkpoint.save_checkpoint(tmp_path, 2, obj, None, {"step": 2}, meta)
    assert not stale.exists()
    assert checkpoint.latest_valid(tmp_path) == newer
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_0000001", "step_0000002"]


def inf_gradients(monkeypatch, bad_calls):
    """Make the gradient norm Inf on the given optimizer steps (0-based): the loss stays finite."""
    real = optim.clip_grad_norm
    calls = [0]

    def clip(params, max_norm):
        norm = real(params, max_norm)
        calls[0] += 1
        return norm * math.inf if calls[0] - 1 in bad_calls else norm

    monkeypatch.setattr(optim, "clip_grad_norm", clip)


def test_inf_gradients_with_a_finite_loss_are_skipped_and_counted(tmp_path, debug_overrides, monkeypatch, capsys):
    inf_gradients(monkeypatch, {1, 4})
    out = tmp_path / "run"
    result = pretrain(load_pretrain_config(DEBUG, debug_overrides(out, "--train.steps=6", "--train.log_every=1",
                                                                  "--train.eval_every=0")))
    assert result["nonfinite_steps"] == 2
    train = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in train if r["kind"] == "train"] == [1, 3, 4, 6]
    assert all(math.isfinite(r["grad_norm"]) for r in train if r["kind"] == "train")
    err = capsys.readouterr().err
    assert "step 2: the loss or the gradients are NaN/Inf; update skipped (1 in a row, 1 in all)" in err
    assert "step 5: the loss or the gradients are NaN/Inf; update skipped (1 in a row, 2 in all)" in err


def test_persistent_nonfinite_steps_stop_the_cli_with_advice_and_a_resumable_checkpoint(
        tmp_path, debug_overrides, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["pretrain", DEBUG, *debug_overrides(out, "--train.steps=8", "--train.log_every=1",
                                                "--train.eval_every=0", "--train.checkpoint_every=2",
                                                "--train.max_nonfinite=3")]
    inf_gradients(monkeypatch, set(range(3, 100)))
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(lines)
    error = lines[-1]
    assert error.startswith("electra pretrain: error: the loss was NaN/Inf for 3 steps in a row (up to step 6)")
    for advice in ("lower optim.lr", "optim.warmup_steps", "train.precision=bf16 or fp32", "--resume"):
        assert advice in error
    assert sum("update skipped" in line for line in lines) == 3
    stopped = checkpoint.latest_valid(out)
    assert stopped.name == "step_0000006" and checkpoint.load_state(stopped)["nonfinite_total"] == 3

    monkeypatch.undo()  # the cause is gone: --resume continues from the stop checkpoint to the end
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "at step 6" in err
    assert checkpoint.latest_valid(out).name == "step_0000008"


def test_clipping_off_trains_normally(tmp_path, debug_overrides):
    out = tmp_path / "run"
    result = pretrain(load_pretrain_config(DEBUG, debug_overrides(out, "--train.steps=3", "--train.log_every=1",
                                                                  "--train.eval_every=0", "--optim.clip_norm=0")))
    assert result["nonfinite_steps"] == 0
    train = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in train if r["kind"] == "train"] == [1, 2, 3]
    assert all(r["grad_norm"] > 0 and math.isfinite(r["grad_norm"]) for r in train if r["kind"] == "train")


def test_resume_with_another_optimizer_is_refused(tmp_path, debug_overrides):
    """Resuming with a different optim.name would load one optimizer's state into another: refused in one line."""
    out = tmp_path / "run"
    pretrain(load_pretrain_config(DEBUG, debug_overrides(out, "--train.steps=2", "--train.eval_every=0")))
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    with pytest.raises(ElectraError, match=r"optim.name='adamw', not 'lamb'.*--optim.name=adamw"):
        pretrain(load_pretrain_config(DEBUG, debug_overrides(out, "--train.steps=4", "--train.eval_every=0",
                                                             "--optim.name=lamb")), resume=True)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before  # nothing written
