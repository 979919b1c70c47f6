"""The study file's schema and reading: the dataclasses, command-line overrides, every check that can be made before
anything trains, and the list of runs a study asks for (its [sweep] combinations and [[run]] entries).

    cfg = load_study("configs/study/tiny-cpu.toml", ["--study.seeds=5", "--data.dir=runs/data-128"])
    runs = runs_of(cfg)          # [Run(name="electra-g0.25-m0.15", kind="electra", raw={...}), ...]: no steps yet
    tasks = study_tasks(cfg)     # [TaskSpec("sst2", "<shared data>/glue/SST-2"), ...]

The keys of each table are documented in electra/study/__init__.py.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from electra.config import OBJECTIVES, from_dict, suggest
from electra.errors import ElectraError
from electra.runfile import apply_overrides as apply_study_overrides
from electra.runfile import read_run_file

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
# Reading and checking the study file


def apply_cli(raw: dict, overrides: list[str]) -> dict:
    """--study.KEY=V / --finetune.KEY=V into their tables (values read as TOML); any other --SECTION.KEY=V into
    [pretrain], checked and typed by electra.pretrain_config.apply_overrides."""
    from electra.pretrain_config import apply_overrides

    ours = [item for item in overrides if item.lstrip("-").startswith(("study.", "finetune."))]
    pretrain_items = [item for item in overrides if item not in ours]
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if pretrain_items:
        raw["pretrain"] = apply_overrides(raw.get("pretrain", {}), pretrain_items)
    return apply_study_overrides(raw, ["--" + item.lstrip("-") for item in ours], example="--study.seeds=5")


def load_study(path, overrides: list[str] = ()) -> StudyConfig:
    """Read a study file, apply command-line overrides and check everything that can be checked before training."""
    path = Path(path)
    raw = apply_cli(read_run_file(path, what="study file", where_to_look="configs/study/"), list(overrides))
    for section in raw:
        if section not in STUDY_SECTIONS:
            raise ElectraError(f"{path}: unknown table '[{section}]'{suggest(section, STUDY_SECTIONS)}; "
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


def out_dir(cfg: StudyConfig) -> Path:
    return Path(cfg.study.out or f"runs/study/{cfg.study.name}")


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
    from electra.finetune_config import config_from_dict

    for where, values in (("finetune", cfg.finetune), (f"study.tasks {task.name if task else ''} finetune",
                                                       task.finetune if task else {})):
        fixed = [k for k in values if k in FIXED_FINETUNE_KEYS]
        if fixed:
            raise ElectraError(f"{where}.{fixed[0]} is set by the study itself (tasks: study.tasks; seeds: "
                               f"study.seeds); remove it")
    merged = {**cfg.finetune, **(task.finetune if task else {})}
    return config_from_dict(merged, where="finetune")


# ---------------------------------------------------------------------------------------------------------------
# The runs: [sweep] combinations and [[run]] entries over the base pretraining file


def base_raw(cfg: StudyConfig) -> dict:
    """The base pretraining run file's tables with [pretrain] merged in (section by section)."""
    path = Path(cfg.study.base)
    if not path.is_file():
        raise ElectraError(f"study.base={cfg.study.base}: pretraining run file not found (relative paths are from "
                           f"the current folder; the shipped ones are in configs/)")
    return merge_tables(read_run_file(path), cfg.pretrain, "pretrain")


def merge_tables(raw: dict, extra: dict, where: str) -> dict:
    """A copy of `raw` with each table of `extra` merged into the table of the same name (`where` names `extra`)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in extra.items():
        if not isinstance(values, dict):
            raise ElectraError(f"{where}.{section} must be a table of keys (e.g. [{where}.{section}])")
        out.setdefault(section, {}).update(values)
    return out


def _sweep_specs(sweep: SweepSpec | None) -> list[RunSpec]:
    """Every combination of the [sweep] lists; an MLM run has no generator, so only its mask rates vary."""
    if sweep is None:
        return []
    combos = itertools.product(sweep.kind, sweep.generator_hidden_fraction or [0.0], sweep.mask_prob or [0.0])
    return [RunSpec(kind=kind, generator_hidden_fraction=0.0 if kind == "mlm" else frac, mask_prob=mask)
            for kind, frac, mask in combos]


def runs_of(cfg: StudyConfig) -> list[Run]:
    """The [sweep] combinations, then the [[run]] entries; the same run twice is kept once."""
    from electra.pretrain_config import config_from_dict, electra_config

    base = base_raw(cfg)
    runs: dict[str, Run] = {}
    for spec in _sweep_specs(cfg.sweep) + list(cfg.run):
        if spec.kind not in OBJECTIVES:
            raise ElectraError(f"run kind='{spec.kind}'{suggest(spec.kind, OBJECTIVES)} is not an objective; "
                               f"objectives: {', '.join(OBJECTIVES)}")
        raw = merge_tables(base, spec.pretrain, f"run {spec.name or spec.kind} pretrain")
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
        if name in runs:
            if runs[name].raw != raw:
                raise ElectraError(f"two different runs are named '{name}': give one a name (name = ...)")
            continue
        runs[name] = Run(name=name, kind=spec.kind, generator_fraction=frac, mask_prob=mask, raw=raw)
    return list(runs.values())
