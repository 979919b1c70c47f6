"""The demo's pipeline in miniature (electra/demo.py): tiny sizes and a few steps through the options of demo.main;
summary.json agrees with the run's own metrics and the fine-tuning outputs, and report.html shows the comparison.

    .venv/bin/python -m pytest -q tests/test_demo.py
"""
from __future__ import annotations

import json

import pytest

from electra import demo
from electra.report import read_metrics
from electra.sources import REPO_ROOT


def _miniature(tmp_path, *extra: str) -> list[str]:
    return ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--slice-bytes", "400000",
            "--vocab-size", "2000", "--seq-len", "64", "--config", str(REPO_ROOT / "configs/debug.toml"),
            "--steps", "6", *extra]


def test_demo_in_miniature_writes_a_summary_that_matches_the_run(tmp_path, shared_data, capsys):
    code = demo.main(_miniature(tmp_path, "--init-from", "scratch", "--finetune-examples", "64",
                                "--finetune-epochs", "1", "--finetune-lr", "1e-3", "--max-dev-examples", "64"))
    printed = capsys.readouterr().out
    assert code == 0, printed
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"pretrain", "reference_auc", "finetune", "minutes"}
    assert set(summary["pretrain"]) >= {"steps", "eval_auc", "eval_gen_acc"}
    assert set(summary["reference_auc"]) == {"token_prior", "bigram"}
    assert set(summary["finetune"]) >= {"task", "metric", "pretrained", "scratch"}

    records = read_metrics(run)
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    assert summary["pretrain"]["steps"] == 6 == last_eval["step"]
    assert summary["pretrain"]["eval_auc"] == last_eval["eval_rtd_auc"]
    assert summary["pretrain"]["eval_gen_acc"] == last_eval["eval_mlm_acc"]
    assert summary["reference_auc"] == {"token_prior": last_eval["eval_token_prior_auc"],
                                        "bigram": last_eval["eval_bigram_auc"]}
    assert all(0 <= v <= 1 for v in summary["reference_auc"].values())
    ft = summary["finetune"]
    assert ft["task"] == "sst2" and ft["metric"] == "acc"
    for arm in ("pretrained", "scratch"):  # the numbers are those of the fine-tuning runs' own metrics.json
        metrics = json.loads((run / f"finetune-{arm}" / "metrics.json").read_text())
        assert ft[arm] == pytest.approx((metrics.get("median") or metrics["dev"])["acc"])
        assert 0 <= ft[arm] <= 100
    # the random-init arm has the pretrained model's architecture and not its weights
    pre = json.loads((run / "hf/discriminator/config.json").read_text())
    fresh = json.loads((run / "random-init/discriminator/config.json").read_text())
    assert {k: pre[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")} == {
        k: fresh[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")}
    assert (run / "hf/discriminator/model.safetensors").read_bytes() != (
        run / "random-init/discriminator/model.safetensors").read_bytes()
    assert 0 < summary["minutes"] < 60
    # the console: every eval beside its references, and the comparison at the end
    assert "token prior" in printed and "bigram" in printed
    assert f"from random init {ft['scratch']:.2f}" in printed and f"{ft['pretrained']:.2f} vs" in printed
    page = (run / "report.html").read_text()
    assert "Demo result" in page and f"{ft['pretrained']:.2f}" in page and f"{ft['scratch']:.2f}" in page
    assert "with reference points" in page and last_eval["explanation"] in page


def test_chinese_demo_in_miniature_uses_its_own_folder_and_the_character_vocabulary(tmp_path, shared_data, capsys):
    code = demo.main(_miniature(tmp_path, "--lang", "zh", "--no-finetune"))
    assert code == 0, capsys.readouterr()
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["lang"] == "zh" and summary["finetune"] is None and summary["pretrain"]["steps"] == 6
    meta = json.loads((tmp_path / "cache/data-bert-base-chinese-64/meta.json").read_text())
    assert meta["vocab_size"] == 21128  # bert-base-chinese: one token per character


def test_demo_user_errors_are_one_line(tmp_path, capsys):
    assert demo.main(["--lang", "zh", "--init-from", "minilm", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("electra demo: error: ") and "\n" not in err
