"""Checkpoints: atomic writes with checksums, fallback from a corrupted or truncated checkpoint, a full disk, weights-only
loading, resolving runs to HF folders (checked in `transformers`), `electra export`, and SIGKILL fault injection: a
run killed at random steps and resumed gives exactly the uninterrupted run's loss curve.

    .venv/bin/pytest -q tests/test_checkpoint.py
"""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import curve_records, last_logged_step
import torch

from electra import checkpoint
from electra.cli import main
from electra.config import preset
from electra.errors import ElectraError
from electra.objectives import build_objective
from electra.pretrain import load_pretrain_config, pretrain
from electra.sources import REPO_ROOT

SPECIAL = dict(pad=0, unk=1, cls=2, sep=3, mask=4)
DEBUG = str(REPO_ROOT / "configs" / "debug.toml")


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    cfg = preset("tiny", vocab_size=200)
    obj = build_objective(cfg, SPECIAL)
    opt = torch.optim.AdamW(obj.parameters(), lr=1e-3)
    return cfg, obj, opt


def _save(run, step, obj, opt, cfg):
    meta = {"model": cfg.to_dict(), "special_ids": SPECIAL, "loader": {}}
    return checkpoint.save_checkpoint(run, step, obj, opt, {"step": step}, meta, keep=3)


def test_checkpoint_round_trip_and_checksums(tmp_path):
    cfg, obj, opt = _tiny()
    obj(torch.randint(5, 200, (2, 16)))["loss"].backward()
    opt.step()
    path = _save(tmp_path, 7, obj, opt, cfg)
    meta = checkpoint.verify(path)
    assert path.name == "step_0000007" and set(meta["files"]) == {"model.safetensors", "optimizer.pt", "state.pt"}
    assert meta["files"]["optimizer.pt"]["sha256"] == checkpoint.sha256(path / "optimizer.pt")
    assert (tmp_path / "checkpoints" / "latest").resolve() == path.resolve()
    loaded, lmeta = checkpoint.load_objective(tmp_path)
    for (k, a), b in zip(obj.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert loaded.generator.embeddings is loaded.discriminator.embeddings  # the shared module survives
    _, _, opt2 = _tiny(1)
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    assert checkpoint.load_state(path, opt2)["step"] == 7
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert lmeta["step"] == 7 and lmeta["run_dir"] == str(tmp_path.resolve())


def test_keep_last_k(tmp_path):
    cfg, obj, opt = _tiny()
    for step in range(1, 6):
        _save(tmp_path, step, obj, opt, cfg)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step_0000003", "step_0000004", "step_0000005"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-meta"])
def test_damaged_latest_falls_back_to_previous_with_one_line(tmp_path, damage):
    cfg, obj, opt = _tiny()
    _save(tmp_path, 1, obj, opt, cfg)
    latest = _save(tmp_path, 2, obj, opt, cfg)
    target = latest / "model.safetensors"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-5] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        (latest / "checkpoint.json").unlink()
    lines = []
    assert checkpoint.latest_valid(tmp_path, report=lines.append).name == "step_0000001"
    assert len(lines) == 1 and "\n" not in lines[0] and "step_0000002" in lines[0]
    with pytest.raises(ElectraError):
        checkpoint.verify(latest)


def test_disk_full_during_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    cfg, obj, opt = _tiny()
    good = _save(tmp_path, 1, obj, opt, cfg)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)  # model.safetensors is written, then the disk fills
    with pytest.raises(ElectraError, match="No space left on device.*previous checkpoints are intact"):
        _save(tmp_path, 2, obj, opt, cfg)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name != "latest"] == ["step_0000001"]
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert checkpoint.latest_valid(tmp_path) == good


def test_pickled_code_is_refused(tmp_path):
    cfg, obj, opt = _tiny()
    path = _save(tmp_path, 1, obj, opt, cfg)
    torch.save({"step": 1, "payload": ElectraError("not a tensor")}, path / "state.pt")  # an arbitrary object
    with pytest.raises(ElectraError, match="weights_only"):
        checkpoint.load_state(path)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, debug_overrides):
    out = tmp_path_factory.mktemp("ckrun") / "run"
    pretrain(load_pretrain_config(DEBUG, debug_overrides(out, "--train.steps=4", "--train.log_every=2",
                                                         "--train.checkpoint_every=2", "--train.eval_every=0")))
    return out


def test_resolve_model_dir_exports_once_and_matches_transformers(short_run):
    transformers = pytest.importorskip("transformers")
    disc = checkpoint.resolve_model_dir(short_run)
    assert disc == short_run / "hf" / "discriminator"
    stamp = (disc / "model.safetensors").stat().st_mtime_ns
    assert checkpoint.resolve_model_dir(short_run / "checkpoints" / "latest") == disc
    assert (disc / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not re-exported
    assert checkpoint.resolve_model_dir(disc) == disc  # an HF folder is returned as is
    older = checkpoint.resolve_model_dir(short_run / "checkpoints" / "step_0000002", which="generator")
    assert older == short_run / "hf" / "step_0000002" / "generator"

    ours, _ = checkpoint.load_objective(short_run / "checkpoints" / "step_0000002")
    gen = transformers.ElectraForMaskedLM.from_pretrained(older).eval()
    ids = torch.tensor([[2, 40, 4, 77, 3, 90, 4, 3]])
    with torch.no_grad():
        want = ours.generator_head(ours.generator(ids), ours.embeddings.tok.weight)
        got = gen(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert (older / "vocab.txt").is_file()
    with pytest.raises(ElectraError, match="neither"):
        checkpoint.resolve_model_dir(short_run / "tokenizer")


def test_export_command(short_run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(short_run), "--out", str(out)]) == 0
    assert json.loads((out / "discriminator" / "config.json").read_text())["architectures"] == ["ElectraForPreTraining"]
    assert json.loads((out / "generator" / "config.json").read_text())["architectures"] == ["ElectraForMaskedLM"]
    assert main(["export", str(short_run), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    if importlib.util.find_spec("electra.onnx") is None:
        assert main(["export", str(short_run), "--out", str(tmp_path / "o"), "--format", "onnx"]) == 2
        assert "ONNX export needs electra/onnx.py" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2


# ---------------------------------------------------------------------------------------------------------------
# SIGKILL fault injection


@pytest.mark.slow
def test_sigkill_at_random_steps_then_resume_gives_the_same_curve(tmp_path, debug_overrides):
    steps = 20
    args = ["--train.steps=20", "--train.log_every=1", "--train.checkpoint_every=2", "--train.eval_every=10",
            "--train.keep_checkpoints=2"]
    reference = tmp_path / "reference"
    pretrain(load_pretrain_config(DEBUG, debug_overrides(reference, *args)))

    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "electra", "pretrain", DEBUG, *debug_overrides(run, *args), "--resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Random steps at least 3 apart, so each kill lands in training that the previous resume has started (the metrics
    # file still ends below the next target when the resumed process begins).
    rng = random.Random(1234)
    kill_at = [2 + 3 * i + rng.randrange(2) for i in range(5)]
    assert kill_at[-1] < steps
    kills, landed = 0, []
    for target in kill_at:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and last_logged_step(run / "metrics.jsonl") < target and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += proc.wait() == -signal.SIGKILL
            landed.append(last_logged_step(run / "metrics.jsonl"))
        else:
            pytest.fail(f"the run ended before step {target}: {proc.stderr.read()[-2000:]}")
        proc.stderr.close()
    assert kills == 5 and all(t <= k < steps for t, k in zip(kill_at, landed)), (kill_at, landed)

    # Damage the newest checkpoint as a crash of the storage would: the resume reports it and uses the previous one.
    newest = checkpoint.list_checkpoints(run)[-1]
    (newest / "model.safetensors").write_bytes((newest / "model.safetensors").read_bytes()[:64])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"skipping checkpoint {newest}" in done.stderr
    assert curve_records(run) == curve_records(reference)  # bitwise: deterministic CPU mode
