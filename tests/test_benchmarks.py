"""The performance benchmarks run end to end in CI-size smoke mode (tiny shapes, a few steps). No timing
thresholds: the point is that the scripts, and both sides of each comparison, keep working."""
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script, argv, capsys):
    old = sys.argv
    sys.argv = [str(BENCH / script), *argv]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(BENCH / script), run_name="__main__")
    finally:
        sys.argv = old
    assert e.value.code == 0
    return capsys.readouterr().out


def test_pretrain_step_smoke(capsys):
    pytest.importorskip("transformers")
    out = _run("pretrain_step.py", ["--smoke"], capsys)
    assert "ours" in out and "transformers" in out and "ratio ours/transformers" in out


def test_pretrain_step_smoke_variable_length(capsys):
    pytest.importorskip("transformers")
    out = _run("pretrain_step.py", ["--smoke", "--variable-length"], capsys)
    assert "variable length" in out


def test_inference_smoke(capsys):
    pytest.importorskip("transformers")
    out = _run("inference.py", ["--smoke"], capsys)
    for row in ("transformers fp32", "ours fp32", "ours bf16"):
        assert row in out
    # ours fp32 and transformers fp32 agree (same weights): the logit-difference column of the reference row
    line = next(l for l in out.splitlines() if l.startswith("transformers fp32"))
    assert float(line.split()[-1]) < 1e-4


def test_inference_real_text_smoke(capsys, tmp_path, shared_data):
    """`--real-text` on 48 SST-2 dev sentences with a tiny classifier (BERT vocab, random weights): every row runs
    and the last line is the ratio line."""
    pytest.importorskip("transformers")
    import torch

    from electra.config import preset
    from electra.hf import export_task_model
    from electra.model import TaskModel
    from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab

    tok = tokenizer_from_vocab(shared_data / "vocab/bert-base-uncased.txt")
    torch.manual_seed(0)
    model = TaskModel(preset("tiny", vocab_size=tok.get_vocab_size()).discriminator, "sequence", num_labels=2)
    folder = export_task_model(model.eval(), tmp_path / "model", labels=["0", "1"],
                               tokenizer_dir=save_tokenizer_folder(tok, tmp_path / "tok"),
                               extra={"electra_task.json": {"task": "sst2", "kind": "sequence", "labels": ["0", "1"]}})
    out = _run("inference.py", ["--real-text", "--model", str(folder), "--limit", "48", "--rounds", "1",
                                "--data", str(shared_data / "glue/SST-2")], capsys)
    for row in ("transformers fp32", "ours torch fp32", "ours torch int8"):
        assert row in out
    line = next(l for l in out.splitlines() if l.startswith("ours torch fp32"))
    assert line.split()[-3] == "100.00%"  # the same labels as the transformers pipeline
    assert out.strip().splitlines()[-1].startswith("ratio ours/transformers fp32 real-text: ")


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_part(tmp_path, shared_data):
    """`benchmarks/gpu_check.py --dry-run`: the whole GPU plan on CPU (tiny, fp32, gloo), each part in its own
    process; results.json and summary.md hold every part, and every part succeeds."""
    import json
    import subprocess

    pytest.importorskip("transformers")
    out = tmp_path / "gc"
    run = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--dry-run", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    parts = results["parts"]
    assert list(parts) == ["env", "step", "fp16", "torchrun", "pretrain"]
    assert {name: p["status"] for name, p in parts.items()} == dict.fromkeys(parts, "ok"), \
        {name: p.get("log_tail") for name, p in parts.items()}
    assert parts["env"]["torch"] and parts["step"]["presets"]["tiny"]["ratio_ours_over_transformers"] > 0
    assert parts["fp16"]["steps"] == 20 and parts["torchrun"]["steps"] == 20
    assert '"all_reduce_ok": true' in parts["torchrun"]["collective"]["output"]
    curve = parts["pretrain"]["auc_curve"]
    assert len(curve) >= 4 and all(0.0 <= r["auc"] <= 1.0 for r in curve)
    summary = (out / "summary.md").read_text()
    for heading in ("## Environment", "## Training step", "## fp16", "## torchrun", "## Pretraining"):
        assert heading in summary
