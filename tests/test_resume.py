"""Stopping and resuming `electra pretrain` as a user does: Ctrl-C (SIGINT) and SIGTERM save a checkpoint of the step
in progress and exit 130 / 143 with the command that continues, which ends on exactly the uninterrupted run's curve;
another train.steps on resume is a one-line warning naming the learning-rate jump; resuming a finished run says so;
eval lines go to stdout (so `> log.txt` keeps them).

    .venv/bin/pytest -q tests/test_resume.py
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from conftest import curve_records, last_logged_step

from electra.cli import main
from electra.pretrain import load_pretrain_config, pretrain
from electra.sources import REPO_ROOT

DEBUG = str(REPO_ROOT / "configs" / "debug.toml")


def _interrupt(cmd: list[str], run, at_step: int, sig: int) -> subprocess.CompletedProcess:
    """Start `cmd`, send `sig` once metrics.jsonl shows `at_step`, and wait for it to end."""
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while proc.poll() is None and last_logged_step(run / "metrics.jsonl") < at_step and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before step {at_step}: {proc.stderr.read()[-2000:]}")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.slow
def test_sigint_and_sigterm_checkpoint_the_step_then_resume_gives_the_same_curve(tmp_path, debug_overrides, capsys):
    # checkpoint_every past the end: the only checkpoints before the last step are the ones the signals write
    args = ["--train.steps=14", "--train.log_every=1", "--train.eval_every=6", "--train.checkpoint_every=1000"]
    reference = tmp_path / "reference"
    pretrain(load_pretrain_config(DEBUG, debug_overrides(reference, *args)))

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "electra", "pretrain", DEBUG, *debug_overrides(run, *args)]
    stopped = []
    for sig, at_step, code in ((signal.SIGINT, 4, 130), (signal.SIGTERM, 9, 143)):
        r = _interrupt(cmd, run, at_step, sig)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        m = re.fullmatch(rf"electra pretrain: error: stopped by {sig.name} after step (\d+), checkpoint (\S+); "
                         rf"continue with: (electra pretrain \S+ --resume)", lines[-1])
        assert m, lines[-1]
        step = int(m[1])
        assert at_step <= step < 14
        assert m[2] == str(run / "checkpoints" / f"step_{step:07d}") and os.path.isdir(m[2])
        assert last_logged_step(run / "metrics.jsonl") == step  # the step it stopped after is logged and saved
        stopped.append(step)
        cmd = [sys.executable, "-m", *shlex.split(m[3])]  # the command the line gives, as the user would run it
    assert stopped[0] < stopped[1]

    capsys.readouterr()
    assert main(cmd[3:]) == 0  # the last leg in-process: same code, one interpreter start less
    out, err = capsys.readouterr()
    assert f"resumed from {run / 'checkpoints' / f'step_{stopped[1]:07d}'}" in err
    assert curve_records(run) == curve_records(reference)  # bitwise: deterministic CPU mode
    # eval lines on stdout (with the table), warnings and progress on stderr
    assert "eval at step 14:" in out and "eval at step" not in err


def test_other_train_steps_on_resume_warns_how_the_schedule_changes(tmp_path, debug_overrides, capsys):
    run = tmp_path / "run"
    base = ["--train.log_every=2", "--train.eval_every=0", "--train.checkpoint_every=2", "--optim.warmup_steps=10"]
    pretrain(load_pretrain_config(DEBUG, debug_overrides(run, "--train.steps=4", *base)))
    capsys.readouterr()
    result = pretrain(load_pretrain_config(DEBUG, debug_overrides(run, "--train.steps=8", *base)), resume=True)
    out, err = capsys.readouterr()
    assert "eval at step 8:" in out and "eval at step" not in err  # eval lines on stdout: `> log.txt` keeps them
    warnings = [line for line in err.splitlines() if line.startswith("warning: resuming with")]
    # old schedule at step 4: decay over 4 steps is at 0; new: 1e-3 x (1 - 4/8) x warm-up 4/10 = 2e-4
    assert warnings == ["warning: resuming with train.steps 4 -> 8: warm-up (10 steps) and linear decay to 0 are now "
                        "computed over 8 steps; the lr at step 4 jumps from 0 to 0.0002"], err
    assert result["step"] == 8 and last_logged_step(run / "metrics.jsonl") == 8  # and the run goes on

    capsys.readouterr()
    pretrain(load_pretrain_config(DEBUG, debug_overrides(tmp_path / "same", "--train.steps=2", *base)))
    pretrain(load_pretrain_config(DEBUG, debug_overrides(tmp_path / "same", "--train.steps=2", *base)), resume=True)
    assert "warning: resuming with" not in capsys.readouterr().err  # the same settings: no warning


def test_resuming_a_finished_run_says_it_is_finished(tmp_path, debug_overrides, capsys):
    run = tmp_path / "run"
    argv = ["pretrain", DEBUG, *debug_overrides(run, "--train.steps=3", "--train.eval_every=0")]
    assert main(argv) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = (run / "metrics.jsonl").read_bytes()
    assert main([*argv, "--resume"]) == 0
    out, err = capsys.readouterr()
    assert f"{run} is finished: its newest checkpoint is at step 3 (train.steps=3); nothing to train" in err
    assert out.strip().splitlines()[-1] == first  # the same "done: ..." line with the checkpoint's eval numbers
    assert "nan" not in out and "eval gen acc" in out
    assert (run / "metrics.jsonl").read_bytes() == metrics  # nothing rewritten
