"""The fidelity study command: a CPU smoke run of `electra study` (tiny encoder, real Wikipedia slice, small SST-2 and
MRPC subsets), budget matching against electra.flops, resuming, wall-time probes, and one-line config errors.

    .venv/bin/pytest -q tests/test_study.py
"""
from __future__ import annotations

import json
import re

import pytest

from electra.cli import main
from electra.config import preset
from electra.flops import paper_train_flops_per_example, sixn_train_flops_per_token
from electra.sources import REPO_ROOT
from electra.study import load_study, plan, runs_of, study_tasks

BUDGET = 1.2e10  # paper-convention FLOPs: 10-20 steps of the tiny preset at batch 16 x 64 tokens


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _write(path, tables: dict) -> str:
    """A TOML file from {table: {key: value}} ("[[run]]" entries as a list under "run")."""
    lines = []
    for name, body in tables.items():
        for entry in body if isinstance(body, list) else [body]:
            lines.append(f"[[{name}]]" if isinstance(body, list) else f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
            lines.append("")
    path.write_text("\n".join(lines))
    return str(path)


@pytest.fixture()
def study_tables(tmp_path, tiny_prepared_dir, shared_data):
    """A tiny study: configs/debug.toml on the tiny prepared slice, ELECTRA 1/8 and 1 and MLM, 2 seeds, 64 examples."""
    return {
        "study": {"name": "smoke", "out": str(tmp_path / "out"), "base": str(REPO_ROOT / "configs/debug.toml"),
                  "budget": f"{BUDGET:g}", "convention": "paper", "seeds": 2,
                  "tasks": [{"name": "sst2", "data": str(shared_data / "glue/SST-2")},
                            {"name": "mrpc", "data": str(shared_data / "glue/MRPC")}]},
        "pretrain.data": {"dir": str(tiny_prepared_dir), "batch_size": 16},
        "pretrain.train": {"threads": 1, "log_every": 5, "eval_every": 0, "eval_batches": 2, "checkpoint_every": 0},
        "pretrain.run": {"progress": False, "tensorboard": False, "report": False, "export": False},
        "finetune": {"epochs": 1, "max_train_examples": 64, "max_dev_examples": 64, "batch_size": 16,
                     "predict_test": False, "threads": 1, "progress": False},
        "sweep": {"kind": ["electra", "mlm"], "generator_hidden_fraction": [0.125, 1.0]},
    }


def test_smoke_study_writes_report_plots_json_and_resumes(tmp_path, study_tables, capsys):
    path = _write(tmp_path / "study.toml", study_tables)
    assert main(["study", path]) == 0
    err = capsys.readouterr().err
    assert "ETA" in err and "parameters:" in err  # pretraining talked (the re-run below must not)
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in results["runs"]]
    assert names == ["electra-g0.125-m0.15", "electra-g1-m0.15", "mlm-m0.15"] and results["pending"] == []

    # Every run, task and seed is in the JSON and in the report; the plots are PNG files.
    report = (out / "report.md").read_text()
    for r in results["runs"]:
        assert set(r["tasks"]) == {"sst2", "mrpc"}
        for task in r["tasks"].values():
            assert [s["seed"] for s in task["seeds"]] == [0, 1]
            assert task["min"] <= task["median"] <= task["max"]
        row = next(line for line in report.splitlines() if line.startswith(f"| {r['name']} |"))
        assert f"{r['tasks']['sst2']['median']:.2f}" in row and f"{r['average']:.2f}" in row
        assert f"{r['steps']:,}" in row
    for png in ("score_vs_compute.png", "score_vs_generator_size.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
    assert not (out / "score_vs_mask_rate.png").exists()  # one mask rate: no mask-rate plot

    # Equal budget: steps = floor(budget / FLOPs per step), FLOPs per step from electra.flops for each run's config.
    by_name = {r["name"]: r for r in results["runs"]}
    for name, r in by_name.items():
        kind = "mlm" if name.startswith("mlm") else "electra"
        frac = 0.25 if kind == "mlm" else r["generator_hidden_fraction"]
        ecfg = preset("tiny", vocab_size=2000, kind=kind, generator_hidden_fraction=frac)
        per_step = paper_train_flops_per_example(ecfg, 64) * 16
        assert r["flops_per_step"]["paper"] == pytest.approx(per_step, rel=1e-9)
        assert r["flops_per_step"]["6N"] == pytest.approx(sixn_train_flops_per_token(ecfg, 64) * 64 * 16, rel=1e-9)
        assert r["steps"] == int(BUDGET // per_step) and r["tokens"] == r["steps"] * 16 * 64
        trained = [json.loads(line) for line in (out / "runs" / name / "pretrain/metrics.jsonl").open()]
        assert max(x["step"] for x in trained if x["kind"] == "train") == r["steps"]  # pretraining ran that long
    mlm, small, full = by_name["mlm-m0.15"], by_name["electra-g0.125-m0.15"], by_name["electra-g1-m0.15"]
    assert mlm["steps"] > small["steps"] > full["steps"]  # cheaper steps, more of them
    for a, b in ((mlm, full), (small, full)):
        ratio = b["flops_per_step"]["paper"] / a["flops_per_step"]["paper"]
        assert a["steps"] / b["steps"] == pytest.approx(ratio, rel=1.5 / b["steps"])

    # A re-run skips every finished run and trains nothing.
    stamps = {n: (out / "runs" / n / "result.json").stat().st_mtime_ns for n in names}
    assert main(["study", path]) == 0
    err = capsys.readouterr().err
    assert err.count("done before, skipped") == 3 and ": pretraining " not in err and "parameters:" not in err
    assert {n: (out / "runs" / n / "result.json").stat().st_mtime_ns for n in names} == stamps
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]

    # The same folder with other settings is refused, not silently reused.
    assert main(["study", path, "--study.seeds=3"]) == 2
    assert "made with other settings" in capsys.readouterr().err


def test_wall_time_budget_runs_a_cached_timing_probe(tmp_path, study_tables, capsys):
    tables = dict(study_tables)
    tables["study"] = {**tables["study"], "wall_minutes": 0.05, "probe_steps": 6}
    del tables["study"]["budget"]
    tables["run"] = [{"kind": "electra", "name": "e"}]
    del tables["sweep"]
    path = _write(tmp_path / "wall.toml", tables)
    assert main(["study", path, "--dry-run"]) == 0
    captured = capsys.readouterr()
    probe = json.loads((tmp_path / "out/runs/e/probe.json").read_text())
    assert probe["probe_steps"] == 6 and probe["seconds_per_step"] > 0
    steps = int(re.search(r"([\d,]+) steps x", captured.out).group(1).replace(",", ""))
    assert steps == max(1, int(0.05 * 60 / probe["seconds_per_step"]))
    assert "timing probe" in captured.err and not (tmp_path / "out/runs/e/probe").exists()
    assert main(["study", path, "--dry-run"]) == 0  # the cached probe plans the same steps
    captured = capsys.readouterr()
    assert "timing probe" not in captured.err and f"{steps:,} steps x" in captured.out


def test_shipped_study_configs_load_and_name_their_launch_command(shared_data, tiny_prepared_dir, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # their paths (base file, data) are relative to the repository root
    paths = sorted((REPO_ROOT / "configs/study").glob("*.toml"))
    assert {p.stem for p in paths} >= {"tiny-cpu", "small-gpu"}
    for p in paths:
        assert re.search(rf"electra study configs/study/{p.stem}\.toml", p.read_text().split("\n[", 1)[0])
        cfg = load_study(p, [f"--data.dir={tiny_prepared_dir}"])
        runs = plan(cfg)
        assert runs and all(r.steps >= 1 for r in runs)
    gpu = load_study(REPO_ROOT / "configs/study/small-gpu.toml")
    runs = runs_of(gpu)
    assert {"mlm", "adversarial", "electra"} <= {r.kind for r in runs}
    assert {r.generator_fraction for r in runs if r.kind == "electra"} >= {0.125, 0.25, 0.5, 1.0}
    assert gpu.study.seeds == 3 and "max_train_examples" not in gpu.finetune
    assert [t.name for t in study_tasks(gpu)] == ["sst2", "mrpc"]


@pytest.mark.parametrize("change, message", [
    ({"study": {"seeds": 2, "sedes": 3}}, "unknown config key 'study.sedes' (did you mean 'seeds'?)"),
    ({"study": {"wall_minutes": 5.0}}, "exactly one of study.budget"),
    ({"study": {"budget": "lots"}}, "is not a number of FLOPs"),
    ({"study": {"convention": "6n"}}, "convention='6n' is not one of paper, 6N"),
    ({"study": {"tasks": [{"name": "sst3", "data": "."}]}}, "unknown task 'sst3' (did you mean 'sst2'?)"),
    ({"study": {"tasks": [{"name": "sst2", "data": "/nonexistent/SST-2"}]}}, "data folder /nonexistent/SST-2"),
    ({"study": {"budget": "1e3"}}, "less than one step of run electra-g0.125-m0.15"),
    ({"finetune": {"seeds": 4}}, "finetune.seeds is set by the study itself"),
    ({"finetune": {"epoch": 4}}, "unknown config key 'finetune.epoch' (did you mean 'epochs'?)"),
    ({"sweep": {"kind": ["electar"]}}, "run kind='electar' (did you mean 'electra'?)"),
    ({"pretrain.model": {"hiden_size": 32}}, "unknown config key 'model.hiden_size'"),
    ({"stduy": {"seeds": 1}}, "unknown table '[stduy]' (did you mean 'study'?)"),
    ({"pretrain.data": {"dir": "/nonexistent/data"}}, "/nonexistent/data is not a prepared data folder"),
])
def test_config_errors_are_one_line_and_write_nothing(tmp_path, study_tables, capsys, change, message):
    tables = {k: dict(v) for k, v in study_tables.items()}
    for table, values in change.items():
        tables[table] = {**tables.get(table, {}), **values}
    path = _write(tmp_path / "bad.toml", tables)
    assert main(["study", path]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_command_line_overrides_are_checked(tmp_path, study_tables, capsys):
    path = _write(tmp_path / "study.toml", study_tables)
    assert main(["study", path, "--dry-run", "--study.budget=2.4e10", "--train.seed=3"]) == 0
    out = capsys.readouterr().out
    assert "budget 2.4e+10 FLOPs per run" in out and "3 runs" in out
    assert main(["study", path, "--dry-run", "--train.sead=3"]) == 2
    assert "unknown config key 'train.sead' (did you mean 'seed'?)" in capsys.readouterr().err
    assert main(["study", path, "--dry-run", "--study.seeds=two"]) == 2
    assert "config key 'study.seeds' must be int" in capsys.readouterr().err
