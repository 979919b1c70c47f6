"""Planning a study: how many steps each run gets for the budget, the pretraining config of each run, the printed
plan, and the fingerprint that says whether a stored result can be reused.

    runs = plan(cfg)                     # every Run with steps, FLOPs per step, tokens per step, parameter counts
    print("\n".join(plan_lines(cfg, runs)))                              # what `electra study --dry-run` prints
    pcfg = run_config(runs[0], out_dir(cfg), runs[0].steps, cfg.study.warmup_fraction)   # a PretrainConfig

A FLOP budget: FLOPs per optimizer step = FLOPs per token of the run's generator + discriminator (electra.flops, in
the study's convention) x tokens per step (batch x seq_len of the prepared data); steps = floor(budget / that).
A wall-time budget: a short pretraining (the timing probe, cached in OUT/runs/NAME/probe.json) measures seconds per
step, and steps = floor(wall_minutes x 60 / seconds per step).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from electra.errors import ElectraError
from electra.files import write_json
from electra.study.config import Run, StudyConfig, budget_flops, merge_tables, out_dir, runs_of, study_tasks


def run_config(run: Run, out: Path, steps: int, warmup_fraction: float):
    """The PretrainConfig of one run with its steps, warm-up and run folder."""
    from electra.pretrain_config import config_from_dict

    raw = merge_tables(run.raw, {"train": {"steps": steps},
                                 "optim": {"warmup_steps": int(warmup_fraction * steps)},
                                 "run": {"out": str(out / "runs" / run.name / "pretrain")}}, "run")
    return config_from_dict(raw, where=f"run {run.name}")


def plan(cfg: StudyConfig, say=print) -> list[Run]:
    """Every run with its steps, FLOPs per step and parameter counts (wall-time studies run the timing probes)."""
    from electra.loader import PretrainDataset
    from electra.flops import report as flop_report
    from electra.pretrain_config import config_from_dict, electra_config

    out = out_dir(cfg)
    runs = runs_of(cfg)
    metas = {}  # data folder -> its meta.json, read once
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
    write_json(cache, probe)
    shutil.rmtree(folder, ignore_errors=True)
    return probe


def plan_lines(cfg: StudyConfig, runs: list[Run]) -> list[str]:
    """The plan as printed: one head line, then one line per run (steps, tokens, FLOPs per step in both conventions)."""
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


def fingerprint(cfg: StudyConfig, run: Run) -> str:
    """What a run's results depend on; a stored result with another fingerprint is not reused."""
    payload = {"raw": run.raw, "steps": run.steps, "warmup_fraction": cfg.study.warmup_fraction,
               "finetune": cfg.finetune, "seeds": cfg.study.seeds,
               "tasks": [dataclasses.asdict(t) for t in study_tasks(cfg)]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
