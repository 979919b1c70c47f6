"""The fidelity study: pretrain several objectives at equal compute on the same encoder and data, fine-tune each on
the same tasks over N seeds, and write one report (paper Table 1 / Fig. 3 / section 3.2 in miniature).

    electra study configs/study/tiny-cpu.toml                                   # CPU miniature, minutes
    electra study configs/study/small-gpu.toml --data.dir=runs/data-128          # the GPU study (one H100)
    electra study configs/study/small-gpu.toml --dry-run                         # the plan: runs, steps, FLOPs
    electra study STUDY.toml --study.seeds=5 --finetune.epochs=2 --train.device=cuda   # overrides

A study file (strict: an unknown key or a wrong type is one error naming it) has these tables:
    [study]     name, out (default runs/study/NAME), base (a pretraining run file, e.g. configs/small.toml),
                budget = "1e15" FLOPs in `convention` "paper" (google-research/electra flops_computation.py) or "6N",
                or wall_minutes = 10 (pretraining time per run); seeds (fine-tuning seeds per task),
                warmup_fraction (of each run's steps), probe_steps, tasks = [{name, data}, ...] (default: SST-2 and
                MRPC from the shared data folder)
    [pretrain]  overrides of the base run file, by section: [pretrain.data] dir = ..., [pretrain.train] ...
    [finetune]  FinetuneConfig overrides for every fine-tuning job (epochs, lr, batch_size, max_train_examples, ...)
    [[run]]     one run: kind (objective), generator_hidden_fraction, mask_prob, name, and `pretrain` overrides
    [sweep]     kind, generator_hidden_fraction and mask_prob lists; every combination becomes a run (an MLM run
                has no generator, so it appears once per mask rate)
On the command line, --study.KEY=V and --finetune.KEY=V override those tables; any other --SECTION.KEY=V is a
pretraining override applied to every run (as `electra pretrain` takes it).

How the budget is matched: for each run, FLOPs per optimizer step = FLOPs per token of that run's generator +
discriminator (electra.flops, in the named convention) x tokens per step (batch x seq_len of the prepared data);
steps = floor(budget / FLOPs per step). So MLM (no generator) gets more steps than ELECTRA, a 1/8 generator more
than a full-size one. With wall_minutes, a short timing probe (probe_steps, timed between log records so start-up
is excluded) measures seconds per step for each run, and steps = floor(wall_minutes x 60 / seconds per step); the
probe result is cached in OUT/runs/NAME/probe.json so a re-run plans the same steps. The warm-up of every run is
warmup_fraction of its own steps (the base file's optim.warmup_steps is replaced), so short and long runs warm up
alike.

OUT/ holds runs/NAME/{pretrain/, finetune/TASK/, result.json}, results.json (every run, task and seed), report.md
(the table: median and min-max over seeds per task, their average), score_vs_compute.png, and, when swept,
score_vs_generator_size.png and score_vs_mask_rate.png. Resumable: a run whose result.json exists is skipped (an
error if it was made with other settings); an interrupted pretraining resumes from its newest checkpoint, and a
finished fine-tuning job is reused.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from electra.config import OBJECTIVES, _suggest, from_dict
from electra.errors import ElectraError

CONVENTIONS = ("paper", "6N")
DEFAULT_TASK_DATA = {"sst2": "glue/SST-2", "mrpc": "glue/MRPC"}  # inside the shared data folder
STUDY_SECTIONS = ("study", "pretrain", "finetune", "run", "sweep")
FIXED_FINETUNE_KEYS = ("task", "model", "data", "out", "seeds", "overwrite")  # the study sets these itself


@dataclass
class TaskSpec:
    name: str = ""  # a task of the registry (electra finetune --help lists them)
    data: str = ""  # the task's data folder; "" = the shared data folder's copy (SST-2, MRPC)
    finetune: dict = field(default_factory=dict)  # this task's own fine-tuning options, over [finetune]


@dataclass
class StudySection:
    name: str = "study"
    out: str = ""  # "" = runs/study/<name>
    base: str = "configs/small.toml"  # the pretraining run file every run starts from
    budget: Any = None  # FLOPs per run, a number or a string such as "1e15"
    convention: str = "paper"  # paper | 6N: how FLOPs are counted (electra/flops.py)
    wall_minutes: float = 0.0  # instead of `budget`: pretraining minutes per run
    probe_steps: int = 30  # wall_minutes: steps of the timing probe per run
    warmup_fraction: float = 0.1  # warm-up steps of each run = this fraction of its steps
    seeds: int = 3  # fine-tuning seeds per (run, task)
    tasks: list[TaskSpec] = field(default_factory=list)  # [] = SST-2 and MRPC from the shared data folder


@dataclass
class RunSpec:
    kind: str = "electra"  # an objective: electra, mlm, electra-15, replace-mlm, all-tokens-mlm, adversarial, ...
    generator_hidden_fraction: float = 0.0  # 0 = the base config's
    mask_prob: float = 0.0  # 0 = the base config's
    name: str = ""  # "" = derived: kind-gFRACTION-mMASK
    pretrain: dict = field(default_factory=dict)  # this run's own pretraining overrides, by section


@dataclass
class SweepSpec:
    kind: list[str] = field(default_factory=lambda: ["electra"])
    generator_hidden_fraction: list[float] = field(default_factory=list)  # [] = the base config's
    mask_prob: list[float] = field(default_factory=list)  # [] = the base config's


@dataclass
class StudyConfig:
    study: StudySection = field(default_factory=StudySection)
    pretrain: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    run: list[RunSpec] = field(default_factory=list)
    sweep: Optional[SweepSpec] = None  # typing.Optional: electra.config.coerce reads typing.Union
    source: str = field(default="", init=False)  # the study file (for messages)


@dataclass
class Run:
    """One planned run: its name, what it varies, its resolved pretraining config (raw tables) and its budget."""

    name: str
    kind: str
    generator_fraction: float | None  # None for MLM (no generator)
    mask_prob: float
    raw: dict  # pretraining tables before steps / warm-up / run folder are set
    steps: int = 0
    flops_per_step: dict = field(default_factory=dict)  # convention -> FLOPs
    tokens_per_step: int = 0
    disc_params: int = 0
    gen_params: int = 0
    probe: dict | None = None


# ---------------------------------------------------------------------------------------------------------------
# Reading the study file


def _tomllib():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    return tomllib


def _read_toml(path: Path) -> dict:
    if not path.is_file():
        raise ElectraError(f"study file {path} not found (the shipped ones are in configs/study/)")
    toml = _tomllib()
    try:
        return toml.loads(path.read_text(encoding="utf-8"))
    except toml.TOMLDecodeError as e:
        raise ElectraError(f"{path}: not valid TOML ({e})") from None


def _cli_value(text: str):
    """A command-line value read as a TOML value (numbers, booleans, lists, quoted strings), else a bare string."""
    toml = _tomllib()
    try:
        return toml.loads(f"v = {text}")["v"]
    except toml.TOMLDecodeError:
        return text


def apply_cli(raw: dict, overrides: list[str]) -> dict:
    """--study.KEY=V / --finetune.KEY=V into their tables; any other --SECTION.KEY=V into [pretrain], checked and
    typed by electra.pretrain.apply_overrides."""
    from electra.pretrain import apply_overrides

    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    ours = [item for item in overrides if item.lstrip("-").startswith(("study.", "finetune."))]
    pretrain_items = [item for item in overrides if item not in ours]
    if pretrain_items:
        raw["pretrain"] = apply_overrides(raw.get("pretrain", {}), pretrain_items)
    for item in ours:
        path, sep, value = item.lstrip("-").partition("=")
        if not sep:
            raise ElectraError(f"override '{item}' must look like --section.key=value (e.g. --study.seeds=5)")
        section, key = path.split(".", 1)
        raw.setdefault(section, {})[key] = _cli_value(value)
    return raw


def load_study(path, overrides: list[str] = ()) -> StudyConfig:
    """Read a study file, apply command-line overrides and check everything that can be checked before training."""
    path = Path(path)
    raw = apply_cli(_read_toml(path), list(overrides))
    for section in raw:
        if section not in STUDY_SECTIONS:
            raise ElectraError(f"{path}: unknown table '[{section}]'{_suggest(section, STUDY_SECTIONS)}; "
                               f"tables: {', '.join(STUDY_SECTIONS)}")
    cfg = from_dict(StudyConfig, raw)
    cfg.source = str(path)
    check(cfg)
    return cfg


def check(cfg: StudyConfig) -> None:
    """Refuse a study that cannot run (before anything is trained or written)."""
    from electra.tasks import get_task

    s = cfg.study
    if (s.budget is None) == (not s.wall_minutes):
        raise ElectraError(f"{cfg.source}: give exactly one of study.budget (FLOPs, e.g. \"1e15\") and "
                           f"study.wall_minutes")
    if s.budget is not None:
        flops = budget_flops(s.budget)
        if not math.isfinite(flops) or flops <= 0:
            raise ElectraError(f"study.budget={s.budget!r} must be a finite number of FLOPs > 0")
    if s.wall_minutes < 0:
        raise ElectraError(f"study.wall_minutes={s.wall_minutes} must be > 0")
    if s.convention not in CONVENTIONS:
        raise ElectraError(f"study.convention='{s.convention}' is not one of {', '.join(CONVENTIONS)}")
    if s.seeds < 1:
        raise ElectraError(f"study.seeds={s.seeds} must be >= 1")
    if s.probe_steps < 3:
        raise ElectraError(f"study.probe_steps={s.probe_steps} must be >= 3")
    if not 0.0 <= s.warmup_fraction < 1.0:
        raise ElectraError(f"study.warmup_fraction={s.warmup_fraction} must be in [0, 1)")
    if not s.name or "/" in s.name:
        raise ElectraError(f"study.name={s.name!r} must be a non-empty name without '/'")
    finetune_template(cfg)  # checks [finetune]
    for task in study_tasks(cfg):
        get_task(task.name)
        finetune_template(cfg, task)
        if not Path(task.data).is_dir():
            raise ElectraError(f"data folder {task.data} of task '{task.name}' not found")
    if not runs_of(cfg):
        raise ElectraError(f"{cfg.source}: no runs: add [[run]] entries or a [sweep] table")


def budget_flops(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ElectraError(f"study.budget={value!r} is not a number of FLOPs (e.g. \"1e15\")") from None


def study_tasks(cfg: StudyConfig) -> list[TaskSpec]:
    """The tasks as given (default: SST-2 and MRPC); an empty data folder means the shared data folder's copy."""
    from electra.sources import shared_data_dir

    tasks = cfg.study.tasks or [TaskSpec(name) for name in DEFAULT_TASK_DATA]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ElectraError(f"study.tasks names a task twice: {', '.join(names)}")
    resolved = []
    for t in tasks:
        if not t.name:
            raise ElectraError("every study.tasks entry needs a name, e.g. {name = \"sst2\"}")
        data = t.data
        if not data:
            shared = shared_data_dir()
            if t.name not in DEFAULT_TASK_DATA or shared is None:
                raise ElectraError(f"study.tasks: task '{t.name}' needs a data folder (data = ...); only "
                                   f"{', '.join(DEFAULT_TASK_DATA)} default to the shared data folder "
                                   f"(../shared/data or $ELECTRA_SHARED_DATA)")
            data = str(shared / DEFAULT_TASK_DATA[t.name])
        resolved.append(TaskSpec(t.name, data, dict(t.finetune)))
    return resolved


def finetune_template(cfg: StudyConfig, task: TaskSpec | None = None):
    """The FinetuneConfig of a task's jobs: the defaults <- [finetune] <- the task's own `finetune` options."""
    from electra.finetune import FinetuneConfig

    for where, values in (("finetune", cfg.finetune), (f"study.tasks {task.name if task else ''} finetune",
                                                       task.finetune if task else {})):
        fixed = [k for k in values if k in FIXED_FINETUNE_KEYS]
        if fixed:
            raise ElectraError(f"{where}.{fixed[0]} is set by the study itself (tasks: study.tasks; seeds: "
                               f"study.seeds); remove it")
    merged = {**cfg.finetune, **(task.finetune if task else {})}
    return from_dict(FinetuneConfig, merged, where="finetune")


def base_raw(cfg: StudyConfig) -> dict:
    """The base pretraining run file's tables with [pretrain] merged in (section by section)."""
    path = Path(cfg.study.base)
    if not path.is_file():
        raise ElectraError(f"study.base={cfg.study.base}: pretraining run file not found (relative paths are from "
                           f"the current folder; the shipped ones are in configs/)")
    raw = _read_toml(path)
    return _merge(raw, cfg.pretrain, "pretrain")


def _merge(raw: dict, extra: dict, where: str) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in extra.items():
        if not isinstance(values, dict):
            raise ElectraError(f"{where}.{section} must be a table of keys (e.g. [{where}.{section}])")
        out.setdefault(section, {}).update(values)
    return out


def runs_of(cfg: StudyConfig) -> list[Run]:
    """The [sweep] combinations, then the [[run]] entries; the same run twice is kept once."""
    from electra.pretrain import config_from_dict, electra_config

    base = base_raw(cfg)
    specs = []
    if cfg.sweep is not None:
        sw = cfg.sweep
        for kind, frac, mask in itertools.product(sw.kind, sw.generator_hidden_fraction or [0.0],
                                                  sw.mask_prob or [0.0]):
            specs.append(RunSpec(kind=kind, generator_hidden_fraction=0.0 if kind == "mlm" else frac,
                                 mask_prob=mask))
    runs: dict[str, Run] = {}
    for spec in specs + list(cfg.run):
        if spec.kind not in OBJECTIVES:
            raise ElectraError(f"run kind='{spec.kind}'{_suggest(spec.kind, OBJECTIVES)} is not an objective; "
                               f"objectives: {', '.join(OBJECTIVES)}")
        raw = _merge(base, spec.pretrain, f"run {spec.name or spec.kind} pretrain")
        raw.setdefault("objective", {})["kind"] = spec.kind
        if spec.generator_hidden_fraction and spec.kind != "mlm":
            raw.setdefault("model", {})["generator_hidden_fraction"] = spec.generator_hidden_fraction
        if spec.mask_prob:
            raw["objective"]["mask_prob"] = spec.mask_prob
        pcfg = config_from_dict(raw, where=f"run {spec.name or spec.kind}")
        ecfg = electra_config(pcfg, vocab_size=None, pad_id=None, seq_len=None)
        frac = None if spec.kind == "mlm" else ecfg.generator_hidden_fraction
        mask = ecfg.objective.mask_prob
        name = spec.name or f"{spec.kind}" + (f"-g{frac:g}" if frac is not None else "") + f"-m{mask:g}"
        run = Run(name=name, kind=spec.kind, generator_fraction=frac, mask_prob=mask, raw=raw)
        if name in runs:
            if runs[name].raw != raw:
                raise ElectraError(f"two different runs are named '{name}': give one a name (name = ...)")
            continue
        runs[name] = run
    return list(runs.values())


# ---------------------------------------------------------------------------------------------------------------
# Planning: steps per run from the budget


def out_dir(cfg: StudyConfig) -> Path:
    return Path(cfg.study.out or f"runs/study/{cfg.study.name}")


def run_config(run: Run, out: Path, steps: int, warmup_fraction: float):
    """The PretrainConfig of one run with its steps, warm-up and run folder."""
    from electra.pretrain import config_from_dict

    raw = _merge(run.raw, {"train": {"steps": steps},
                           "optim": {"warmup_steps": int(warmup_fraction * steps)},
                           "run": {"out": str(out / "runs" / run.name / "pretrain")}}, "run")
    return config_from_dict(raw, where=f"run {run.name}")


def plan(cfg: StudyConfig, say=print) -> list[Run]:
    """Every run with its steps, FLOPs per step and parameter counts (wall-time studies run the timing probes)."""
    from electra.data import PretrainDataset
    from electra.flops import report as flop_report
    from electra.pretrain import config_from_dict, electra_config

    out = out_dir(cfg)
    runs = runs_of(cfg)
    metas = {}
    for run in runs:
        pcfg = config_from_dict(run.raw, where=f"run {run.name}")
        if not pcfg.data.dir:
            raise ElectraError(f"run {run.name}: data.dir is not set: pass --data.dir=FOLDER (from `electra "
                               f"prepare`) or set it in [pretrain.data]")
        if pcfg.data.dir not in metas:
            metas[pcfg.data.dir] = PretrainDataset(pcfg.data.dir, "train").meta
        meta = metas[pcfg.data.dir]
        ecfg = electra_config(pcfg, meta["vocab_size"], meta["pad_id"], meta["seq_len"])
        rep = flop_report(ecfg, meta["seq_len"], pcfg.data.batch_size)
        run.tokens_per_step = rep.tokens_per_step
        run.flops_per_step = {"paper": rep.paper_flops_per_token * rep.tokens_per_step,
                              "6N": rep.sixn_flops_per_token * rep.tokens_per_step}
        run.disc_params, run.gen_params = rep.disc_params, rep.gen_params
        if cfg.study.budget is not None:
            budget = budget_flops(cfg.study.budget)
            run.steps = int(budget // run.flops_per_step[cfg.study.convention])
            if run.steps < 1:
                raise ElectraError(f"study.budget={cfg.study.budget} is less than one step of run {run.name} "
                                   f"({run.flops_per_step[cfg.study.convention]:.3g} FLOPs, "
                                   f"{cfg.study.convention} convention)")
        else:
            run.probe = timing_probe(cfg, run, out, say)
            run.steps = max(1, int(cfg.study.wall_minutes * 60 / run.probe["seconds_per_step"]))
    return runs


def timing_probe(cfg: StudyConfig, run: Run, out: Path, say=print) -> dict:
    """Seconds per step of a run, from a short pretraining (cached in OUT/runs/NAME/probe.json)."""
    from electra.pretrain import pretrain
    from electra.report import read_metrics

    cache = out / "runs" / run.name / "probe.json"
    n = cfg.study.probe_steps
    if cache.is_file():
        probe = json.loads(cache.read_text())
        if probe.get("probe_steps") == n:
            return probe
    say(f"study: timing probe for {run.name}: {n} steps")
    folder = out / "runs" / run.name / "probe"
    every = max(1, n // 3)
    pcfg = run_config(run, out, n, 0.0)
    pcfg = dataclasses.replace(
        pcfg, run=dataclasses.replace(pcfg.run, out=str(folder), tensorboard=False, report=False, export=False,
                                      progress=False),
        train=dataclasses.replace(pcfg.train, log_every=every, eval_every=0, eval_batches=1, checkpoint_every=0,
                                  keep_checkpoints=1))
    pretrain(pcfg, overwrite=True)
    train = [r for r in read_metrics(folder) if r.get("kind") == "train"]
    first, last = train[0], train[-1]  # the first interval holds start-up costs; time from its end
    if last["step"] <= first["step"]:
        raise ElectraError(f"timing probe of {run.name} logged too few steps; raise study.probe_steps")
    probe = {"probe_steps": n, "seconds_per_step": (last["elapsed_s"] - first["elapsed_s"]) /
             (last["step"] - first["step"])}
    cache.parent.mkdir(parents=True, exist_ok=True)
    _write_json(cache, probe)
    shutil.rmtree(folder, ignore_errors=True)
    return probe


def plan_lines(cfg: StudyConfig, runs: list[Run]) -> list[str]:
    s = cfg.study
    head = (f"budget {budget_flops(s.budget):.3g} FLOPs per run ({s.convention} convention)" if s.budget is not None
            else f"budget {s.wall_minutes:g} minutes of pretraining per run (steps from timing probes)")
    lines = [f"study {s.name}: {len(runs)} runs, {head}; base {s.base}; fine-tuning "
             f"{', '.join(t.name for t in study_tasks(cfg))} x {s.seeds} seed(s); out {out_dir(cfg)}"]
    for r in runs:
        frac = "-" if r.generator_fraction is None else f"{r.generator_fraction:g}"
        lines.append(f"  {r.name:<28} {r.kind:<14} generator {frac:<6} mask {r.mask_prob:<5g} {r.steps:>9,} steps x "
                     f"{r.tokens_per_step:,} tokens, {r.flops_per_step['paper']:.3g} FLOPs/step (paper), "
                     f"{r.flops_per_step['6N']:.3g} (6N)")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# The loop


def fingerprint(cfg: StudyConfig, run: Run) -> str:
    """What a run's results depend on; a stored result with another fingerprint is not reused."""
    payload = {"raw": run.raw, "steps": run.steps, "warmup_fraction": cfg.study.warmup_fraction,
               "finetune": cfg.finetune, "seeds": cfg.study.seeds,
               "tasks": [dataclasses.asdict(t) for t in study_tasks(cfg)]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def study(cfg: StudyConfig, say=print) -> dict:
    """Run the study: pretrain, fine-tune and score every run (skipping finished ones); write the report."""
    from electra.finetune import finetune
    from electra.pretrain import pretrain
    from electra.report import read_metrics
    from electra.tasks import get_task

    out = out_dir(cfg)
    runs = plan(cfg, say)
    for line in plan_lines(cfg, runs):
        say(line)
    tasks = study_tasks(cfg)
    results: dict[str, dict] = {}
    durations: list[float] = []
    for i, run in enumerate(runs):
        folder = out / "runs" / run.name
        result_path = folder / "result.json"
        key = fingerprint(cfg, run)
        if result_path.is_file():
            stored = json.loads(result_path.read_text())
            if stored.get("fingerprint") != key:
                raise ElectraError(f"{result_path} was made with other settings; choose another study.out or "
                                   f"delete {folder}")
            results[run.name] = stored
            say(f"study: run {i + 1}/{len(runs)} {run.name}: done before, skipped ({result_path})")
            continue
        started = time.perf_counter()
        say(f"study: run {i + 1}/{len(runs)} {run.name}: pretraining {run.steps:,} steps "
            f"({run.steps * run.flops_per_step[cfg.study.convention]:.3g} FLOPs, {cfg.study.convention})")
        pcfg = run_config(run, out, run.steps, cfg.study.warmup_fraction)
        pdir = Path(pcfg.run.out)
        resume = (pdir / "checkpoints").is_dir() and any((pdir / "checkpoints").iterdir())
        pretrain(pcfg, resume=resume, overwrite=not resume)
        records = read_metrics(pdir)
        train = [r for r in records if r.get("kind") == "train"]
        evals = [r for r in records if r.get("kind") == "eval"]
        pretrain_seconds = time.perf_counter() - started

        scores = {}
        for task in tasks:
            spec = get_task(task.name)
            ft_out = folder / "finetune" / task.name
            metrics = None
            if (ft_out / "metrics.json").is_file():
                metrics = json.loads((ft_out / "metrics.json").read_text())
                if len(metrics.get("seeds", [])) != cfg.study.seeds:
                    metrics = None
            if metrics is None:
                say(f"study: run {i + 1}/{len(runs)} {run.name}: fine-tuning {task.name} x {cfg.study.seeds} seeds")
                ft = dataclasses.replace(finetune_template(cfg, task), task=task.name, model=str(pdir), data=task.data,
                                         out=str(ft_out), seeds=cfg.study.seeds, overwrite=True)
                metrics = finetune(ft, log=lambda line: say(f"  {run.name} {task.name}: {line}"))
            per_seed = [{"seed": r["seed"], "score": r["dev"][spec.main_metric], "dev": r["dev"],
                         "best_epoch": r["best_epoch"]} for r in metrics["seeds"]]
            values = [r["score"] for r in per_seed]
            scores[task.name] = {"metric": spec.main_metric, "seeds": per_seed, "median": statistics.median(values),
                                 "min": min(values), "max": max(values), "mean": statistics.fmean(values)}
        result = {
            "fingerprint": key, "name": run.name, "kind": run.kind, "generator_hidden_fraction":
                run.generator_fraction, "mask_prob": run.mask_prob, "steps": run.steps,
            "tokens": run.steps * run.tokens_per_step, "tokens_per_step": run.tokens_per_step,
            "flops_per_step": run.flops_per_step, "flops": {k: v * run.steps for k, v in run.flops_per_step.items()},
            "disc_params": run.disc_params, "gen_params": run.gen_params, "probe": run.probe,
            "pretrain_seconds": train[-1]["elapsed_s"] if train else None,
            "pretrain_final": train[-1] if train else {}, "pretrain_eval": evals[-1] if evals else {},
            "tasks": scores, "average": statistics.fmean(s["median"] for s in scores.values()),
            "seconds": time.perf_counter() - started, "pretrain_wall_seconds": pretrain_seconds,
        }
        _write_json(result_path, result)
        results[run.name] = result
        durations.append(result["seconds"])
        left = len(runs) - i - 1
        eta = statistics.fmean(durations) * left
        say(f"study: run {i + 1}/{len(runs)} {run.name} done in {_hms(result['seconds'])}: average "
            f"{result['average']:.2f}; {left} run(s) left, ETA {_hms(eta)}")
        write_outputs(cfg, runs, results, out)
    paths = write_outputs(cfg, runs, results, out)
    say(f"study: wrote {', '.join(str(p) for p in paths)}")
    return {"out": str(out), "runs": [results[r.name] for r in runs]}


# ---------------------------------------------------------------------------------------------------------------
# Outputs: results.json, report.md, plots


def write_outputs(cfg: StudyConfig, runs: list[Run], results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = [results[r.name] for r in runs if r.name in results]
    payload = {"study": dataclasses.asdict(cfg), "tasks": [dataclasses.asdict(t) for t in study_tasks(cfg)],
               "pending": [r.name for r in runs if r.name not in results], "runs": done}
    _write_json(out / "results.json", payload)
    plots = write_plots(cfg, done, out)
    report = out / "report.md"
    tmp = report.with_name(report.name + ".tmp")
    tmp.write_text(report_markdown(cfg, runs, results, plots), encoding="utf-8")
    os.replace(tmp, report)
    return [out / "results.json", report, *plots]


def report_markdown(cfg: StudyConfig, runs: list[Run], results: dict, plots: list[Path]) -> str:
    s, conv = cfg.study, cfg.study.convention
    tasks = study_tasks(cfg)
    budget = (f"{budget_flops(s.budget):.3g} FLOPs per run ({conv} convention, electra/flops.py)"
              if s.budget is not None else f"{s.wall_minutes:g} minutes of pretraining per run (steps from a "
                                             f"{s.probe_steps}-step timing probe)")
    lines = [f"# Fidelity study: {s.name}", "",
             f"Budget: {budget}. Base pretraining config: `{s.base}`. Fine-tuning: "
             + ", ".join(f"{t.name} (`{t.data}`" + (f", {json.dumps(t.finetune)}" if t.finetune else "") + ")"
                         for t in tasks) + f", {s.seeds} seed(s) each"
             + (f", overrides {json.dumps(cfg.finetune)}" if cfg.finetune else "") + ".",
             f"Study file: `{cfg.source}`. Scores are dev-set metrics in points: the median over fine-tuning seeds "
             f"and, in brackets, the min-max. The average is the mean of the per-task medians.", ""]
    head = ["run", "objective", "generator", "mask", "steps", f"FLOPs ({conv})", "tokens"]
    head += [f"{t.name} ({results[next(iter(results))]['tasks'][t.name]['metric']})" if results else t.name
             for t in tasks]
    head += ["average", "pretrain s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        r = results.get(run.name)
        frac = "-" if run.generator_fraction is None else f"{run.generator_fraction:g}"
        row = [run.name, run.kind, frac, f"{run.mask_prob:g}", f"{run.steps:,}",
               f"{run.steps * run.flops_per_step[conv]:.3g}", f"{run.steps * run.tokens_per_step:,}"]
        if r is None:
            row += ["pending"] * len(tasks) + ["pending", ""]
        else:
            for t in tasks:
                sc = r["tasks"][t.name]
                row.append(f"{sc['median']:.2f} ({sc['min']:.2f}-{sc['max']:.2f})")
            row += [f"{r['average']:.2f}", f"{r['pretrain_seconds']:.0f}" if r["pretrain_seconds"] else ""]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Pretraining at the end of each run (held-out split): generator MLM accuracy, discriminator "
              "accuracy and AUC of replaced-token detection.", "",
              "| run | gen acc | disc acc | RTD AUC | final loss |", "|---|---|---|---|---|"]
    for run in runs:
        r = results.get(run.name)
        if r is None:
            continue
        ev, tr = r["pretrain_eval"], r["pretrain_final"]
        cells = [_pct(ev.get("eval_mlm_acc")), _pct(ev.get("eval_rtd_acc")),
                 "-" if ev.get("eval_rtd_auc") is None else f"{ev['eval_rtd_auc']:.3f}",
                 "-" if tr.get("loss") is None else f"{tr['loss']:.3f}"]
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    lines += ["", "Every seed of every task: `results.json`."]
    if plots:
        lines += [""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_plots(cfg: StudyConfig, done: list[dict], out: Path) -> list[Path]:
    """score_vs_compute.png (always), score_vs_generator_size.png and score_vs_mask_rate.png when swept."""
    if not done:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    conv = cfg.study.convention
    names = [t.name for t in study_tasks(cfg)] + ["average"]
    kinds = sorted({r["kind"] for r in done})
    colors = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(kinds)}

    def score(r, name):  # (median, min, max) of one task, or the average of the medians
        if name == "average":
            return r["average"], r["average"], r["average"]
        t = r["tasks"][name]
        return t["median"], t["min"], t["max"]

    written = []
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    flops = [r["flops"][conv] for r in done]
    for ax, name in zip(axes[0], names):
        for i, r in enumerate(done):
            med, lo, hi = score(r, name)
            ax.errorbar([r["flops"][conv]], [med], yerr=[[med - lo], [hi - med]], fmt="o", capsize=3,
                        color=colors[r["kind"]], label=r["kind"])
            ax.annotate(r["name"], (r["flops"][conv], med), fontsize=6, xytext=(4, 2 + 7 * (i % 4)),
                        textcoords="offset points")  # staggered: at equal compute the points share one x
        ax.set_xscale("log")
        ax.set_xlim(min(flops) / 1.5, max(flops) * 1.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"pretraining FLOPs ({conv})")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev score (median, min-max over seeds)")
    handles = {h.get_label(): h for h in axes[0][0].get_legend_handles_labels()[0]}
    axes[0][0].legend(handles.values(), handles.keys(), fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "score_vs_compute.png"))
    plt.close(fig)

    for key, label, stem in (("generator_hidden_fraction", "generator size (fraction of discriminator width)",
                              "score_vs_generator_size"), ("mask_prob", "mask rate", "score_vs_mask_rate")):
        values = {r[key] for r in done if r[key] is not None}
        if len(values) < 2:
            continue
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
        for ax, name in zip(axes[0], names):
            for kind in kinds:
                pts = sorted((r[key], *score(r, name)) for r in done if r["kind"] == kind and r[key] is not None)
                if pts:
                    xs, med, lo, hi = zip(*pts)
                    ax.errorbar(xs, med, yerr=[[m - a for m, a in zip(med, lo)], [b - m for m, b in zip(med, hi)]],
                                fmt="o-", capsize=3, color=colors[kind], label=kind)
                for r in (r for r in done if r["kind"] == kind and r[key] is None):  # MLM: no generator
                    ax.axhline(score(r, name)[0], color=colors[kind], linestyle="--", label=kind)
            if key == "generator_hidden_fraction":
                ax.set_xscale("log", base=2)
            ax.set_xlabel(label)
            ax.set_title(name)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("dev score (median, min-max over seeds)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out / f"{stem}.png"))
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m{rest % 60:02d}s" if h else f"{rest // 60}m{rest % 60:02d}s"


# ---------------------------------------------------------------------------------------------------------------
# CLI: electra study STUDY.toml [--dry-run] [--section.key=value ...]


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Pretrain several objectives at equal compute (FLOPs in the paper's or the 6N convention, or wall time) "
        "on the same encoder and data, fine-tune each on the same tasks over N seeds, and write OUT/report.md "
        "(table), OUT/score_vs_compute.png (and generator-size / mask-rate plots when swept) and "
        "OUT/results.json. Re-running skips finished runs.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "study file tables (see configs/study/*.toml and docs/STUDY.md):\n"
        "  [study]    name, out (default runs/study/NAME), base (default configs/small.toml), budget (FLOPs, e.g.\n"
        "             \"1e15\") with convention (paper | 6N, default paper) or wall_minutes; seeds (default 3),\n"
        "             warmup_fraction (default 0.1), probe_steps (default 30), tasks: a list of {name, data,\n"
        "             finetune} (default SST-2 + MRPC from ../shared/data; finetune = that task's own options)\n"
        "  [pretrain] overrides of the base run file by section: [pretrain.data] dir = ..., [pretrain.train] ...\n"
        "  [finetune] fine-tuning options for every job: epochs, lr, batch_size, max_train_examples, ...\n"
        "  [[run]]    kind, generator_hidden_fraction, mask_prob, name, pretrain (per-run overrides)\n"
        "  [sweep]    kind, generator_hidden_fraction, mask_prob: lists; every combination is a run\n"
        "overrides: --study.KEY=V, --finetune.KEY=V; any other --SECTION.KEY=V goes to every run's pretraining\n"
        "  config, e.g. --data.dir=runs/data-128 --train.device=cuda")
    parser.add_argument("config", metavar="STUDY.toml", help="the study file (configs/study/*.toml)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the runs, their steps and FLOPs, and stop (wall-time studies run the probes)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="--section.key=value",
                        help="overrides of the study file's keys (default: none)")


def run(args: argparse.Namespace) -> int:
    overrides = []
    for item in args.overrides:  # argparse leaves flags given after the first override in the remainder
        if item == "--dry-run":
            args.dry_run = True
        else:
            overrides.append(item)
    cfg = load_study(args.config, overrides)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.dry_run:
        for line in plan_lines(cfg, plan(cfg, say)):
            print(line)
        return 0
    result = study(cfg, say)
    print(f"study done: {Path(result['out']) / 'report.md'}")
    return 0
