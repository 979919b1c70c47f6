"""Pretraining: the shipped run files, strict config parsing, the loop end to end on real Wikipedia data, NaN skipping,
collapse diagnostics, and the HF export of a run checked against `transformers`.

    .venv/bin/pytest -q tests/test_pretrain.py
"""
from __future__ import annotations

import importlib.util
import json
import math
import re

import pytest
import torch

from electra import objectives as objective_module
from electra.diagnose import diagnose
from electra.errors import ElectraError
from electra.pretrain import pretrain
from electra.pretrain_config import electra_config, load_pretrain_config
from electra.sources import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.toml"))


def test_every_shipped_config_loads_and_names_its_launch_command():
    names = {p.stem for p in CONFIGS}
    assert {"debug", "small", "base", "large"} <= names
    for path in CONFIGS:
        cfg = load_pretrain_config(path)
        header = path.read_text().split("\n[", 1)[0]
        assert re.search(rf"electra pretrain configs/{path.stem}\.toml", header), f"{path.name}: no launch command"
        ecfg = electra_config(cfg, vocab_size=30522, pad_id=0, seq_len=128)
        assert ecfg.discriminator.vocab_size == 30522
    # Paper Table 6 recipes (small are the defaults; base and large override them).
    small, base, large = (load_pretrain_config(REPO_ROOT / f"configs/{n}.toml") for n in ("small", "base", "large"))
    assert (small.data.batch_size, small.optim.lr, small.train.steps, small.optim.warmup_steps) == \
        (128, 5e-4, 1_000_000, 10_000)
    assert (base.data.batch_size, base.optim.lr, base.train.steps, base.optim.warmup_steps) == \
        (256, 2e-4, 766_000, 10_000)
    assert (large.data.batch_size, large.optim.lr, large.train.steps) == (2048, 2e-4, 400_000)
    assert small.optim.eps == 1e-6 and small.optim.weight_decay == 0.01 and small.optim.clip_norm == 1.0
    assert electra_config(large, 30522, 0, 512).objective.mask_prob == 0.25


def test_overrides_are_typed_and_unknown_keys_suggest():
    cfg = load_pretrain_config(REPO_ROOT / "configs/debug.toml",
                               ["--train.compile=true", "--optim.lr=3e-4", "--model.hidden_size=128",
                                "--objective.mask_prob=0.25", "--run.out=runs/7"])
    assert cfg.train.compile is True and cfg.optim.lr == 3e-4 and cfg.run.out == "runs/7"
    ecfg = electra_config(cfg, 2000, 0, 64)
    assert ecfg.discriminator.hidden_size == 128 and ecfg.objective.mask_prob == 0.25
    with pytest.raises(ElectraError, match="did you mean 'steps'"):
        load_pretrain_config(REPO_ROOT / "configs/debug.toml", ["--train.stepz=5"])
    with pytest.raises(ElectraError, match="expected int"):
        load_pretrain_config(REPO_ROOT / "configs/debug.toml", ["--train.steps=many"])
    with pytest.raises(ElectraError, match="did you mean 'optim'"):
        load_pretrain_config(REPO_ROOT / "configs/debug.toml", ["--optimizer.lr=1"])
    with pytest.raises(ElectraError, match="did you mean 'hidden_size'"):
        load_pretrain_config(REPO_ROOT / "configs/debug.toml", ["--model.hiden_size=1"])
    with pytest.raises(ElectraError, match="unknown preset"):
        load_pretrain_config(REPO_ROOT / "configs/debug.toml", ["--model.preset=huge"])


def test_bad_toml_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsteps = = 3\n")
    with pytest.raises(ElectraError, match="not valid TOML"):
        load_pretrain_config(bad)
    bad.write_text("[train]\nsteps = '3'\n")
    with pytest.raises(ElectraError, match="train.steps"):
        load_pretrain_config(bad)


@pytest.mark.slow
def test_debug_run_end_to_end_learns_and_exports(tmp_path, debug_overrides):
    """configs/debug.toml on real Wikipedia text: loss falls, the discriminator beats chance (AUC), the resolved config,
    metrics, report and HF folders are written, and the exported discriminator gives our logits in transformers."""
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "run"
    cfg = load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
        out, "--train.steps=40", "--train.log_every=5", "--train.eval_every=40", "--run.report=true",
        "--run.export=true", "--run.tensorboard=true"))
    result = pretrain(cfg)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(5, 45, 5))
    assert train[-1]["loss"] < train[0]["loss"] - 3.0  # 50 x RTD + MLM falls on real text
    assert result["eval"]["eval_rtd_auc"] > 0.6 and result["eval"]["eval_batches"] == 4
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["train"]["steps"] == 40 and resolved["derived"]["tokens_per_step"] == 16 * 64
    assert resolved["electra"]["generator"]["hidden_size"] == 16  # tiny preset: 64 x 1/4
    assert (out / "curves.png").stat().st_size > 1000 and "curves.png" in (out / "report.html").read_text()
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((out / "tb").glob("events.out.tfevents.*"))
    # Diagnostics are wired to the logged numbers: a problem seen in two consecutive logs after warm-up is reported.
    after = [r for r in train if r["step"] >= max(2 * cfg.optim.warmup_steps, min(40 // 5, 20_000))]
    expected = set()
    for prev, cur in zip(after, after[1:]):
        expected |= {k for k, _ in diagnose(prev, 0.15)} & {k for k, _ in diagnose(cur, 0.15)}
    assert {d["problem"] for d in result["diagnoses"]} == expected
    if "majority-class" in expected:
        assert "majority class" in (out / "report.html").read_text()

    disc_dir = out / "hf" / "discriminator"
    hf = transformers.ElectraForPreTraining.from_pretrained(disc_dir).eval()
    from electra.checkpoint import load_objective

    ours, _ = load_objective(out)
    ids = torch.tensor([[2, 50, 60, 70, 4, 80, 3, 90, 100, 3]])
    tt = torch.tensor([[0] * 7 + [1] * 3])
    am = torch.ones_like(ids)
    with torch.no_grad():
        want = ours.discriminator_head(ours.discriminator(ids, tt, am))
        got = hf(input_ids=ids, token_type_ids=tt, attention_mask=am).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_existing_run_is_refused_without_resume(tmp_path, debug_overrides):
    out = tmp_path / "run"
    args = debug_overrides(out, "--train.steps=2", "--train.log_every=1")
    pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml", args))
    with pytest.raises(ElectraError, match="--resume"):
        pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml", args))
    pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml", args), overwrite=True)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3  # 2 train lines + 1 eval, not appended


def _inject_nan(monkeypatch, bad_calls: set[int]):
    """Build the real objective, but make its loss NaN on the given forward calls (0-based)."""
    real_build = objective_module.build_objective

    def build(cfg, special_ids):
        module = real_build(cfg, special_ids)
        real_forward = module.forward
        calls = [0]

        def forward(*args, **kwargs):
            out = real_forward(*args, **kwargs)
            if calls[0] in bad_calls:
                out["loss"] = out["loss"] * float("nan")
            calls[0] += 1
            return out

        module.forward = forward
        return module

    monkeypatch.setattr(objective_module, "build_objective", build)


def test_nan_steps_are_skipped_and_counted(tmp_path, debug_overrides, monkeypatch, capsys):
    _inject_nan(monkeypatch, {2, 3})
    out = tmp_path / "run"
    cfg = load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
        out, "--train.steps=6", "--train.log_every=1", "--train.eval_every=0"))
    result = pretrain(cfg)
    assert result["nonfinite_steps"] == 2
    train = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 5, 6]  # skipped steps are not logged as losses
    assert all(math.isfinite(r["loss"]) for r in train) and train[-1]["nonfinite_steps"] == 2
    assert "step 3: the loss or the gradients are NaN/Inf; update skipped" in capsys.readouterr().err


def test_persistent_nan_stops_with_a_checkpoint_of_the_last_good_weights(tmp_path, debug_overrides, monkeypatch):
    _inject_nan(monkeypatch, set(range(3, 100)))
    out = tmp_path / "run"
    cfg = load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
        out, "--train.steps=20", "--train.log_every=1", "--train.max_nonfinite=3", "--train.checkpoint_every=3"))
    with pytest.raises(ElectraError, match="NaN/Inf for 3 steps in a row.*lower optim.lr"):
        pretrain(cfg)
    from electra.checkpoint import latest_valid, load_state
    from safetensors.torch import load_file

    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    assert ckpts == ["step_0000003", "step_0000006"]
    good = load_file(str(out / "checkpoints/step_0000003/model.safetensors"))
    stopped = load_file(str(latest_valid(out) / "model.safetensors"))
    assert all(torch.equal(good[k], stopped[k]) for k in good)  # no update from a NaN step
    assert load_state(latest_valid(out))["nonfinite_total"] == 3


def test_diagnose_names_the_collapse_and_the_fix():
    healthy = {"rtd_recall": 0.45, "replaced_frac": 0.12, "mlm_acc": 0.35, "rtd_loss": 0.25}
    assert diagnose(healthy, 0.15) == []
    stuck = diagnose({"rtd_recall": 0.0, "replaced_frac": 0.14, "mlm_acc": 0.02, "rtd_loss": 0.40}, 0.15)
    assert [k for k, _ in stuck] == ["majority-class"]
    assert "majority class" in stuck[0][1] and "generator_hidden_fraction" in stuck[0][1]
    strong = diagnose({"eval_rtd_recall": 0.1, "eval_replaced_frac": 0.03, "eval_mlm_acc": 0.8}, 0.15)
    assert [k for k, _ in strong] == ["generator-too-strong"]
    assert "smaller generator" in strong[0][1] and "mask_prob" in strong[0][1] and "learning rate" in strong[0][1]


def test_bf16_autocast_and_accumulation_on_cpu(tmp_path, debug_overrides):
    """The bf16 path runs on CPU (autocast) with accumulation; its losses track fp32's within bf16 precision."""
    curves = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
            out, "--train.steps=3", "--train.log_every=1", "--train.eval_every=0", "--train.accumulation=2",
            f"--train.precision={precision}")))
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        curves[precision] = [r["loss"] for r in records if r["kind"] == "train"]
    assert len(curves["bf16"]) == 3 and all(math.isfinite(x) for x in curves["bf16"])
    assert curves["bf16"] != curves["fp32"]  # autocast really ran in bf16
    assert all(abs(a - b) / b < 0.02 for a, b in zip(curves["bf16"], curves["fp32"]))
    with pytest.raises(ElectraError, match="fp16' needs CUDA"):
        pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
            tmp_path / "fp16", "--train.precision=fp16")))
    assert not (tmp_path / "fp16").exists()  # a refused run writes nothing
