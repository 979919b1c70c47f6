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
