"""A study's outputs, rewritten after every run: OUT/results.json (every run, task and seed), OUT/report.md (the
table: median and min-max over seeds per task, their average; then the pretraining diagnostics) and the plots
(score_vs_compute.png, and score_vs_generator_size.png / score_vs_mask_rate.png when those were swept).

    paths = write_outputs(cfg, runs, results, out_dir(cfg))    # [results.json, report.md, *plots]

`results` maps a run's name to its result (electra.study.loop); a planned run without one is shown as pending.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from electra.files import write_json
from electra.plots import score_vs_compute, score_vs_setting
from electra.study.config import Run, StudyConfig, budget_flops, study_tasks

SWEPT_PLOTS = [  # (result key, axis label, file stem): drawn when the finished runs hold two values or more
    ("generator_hidden_fraction", "generator size (fraction of discriminator width)", "score_vs_generator_size"),
    ("mask_prob", "mask rate", "score_vs_mask_rate"),
]


def write_outputs(cfg: StudyConfig, runs: list[Run], results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = [results[r.name] for r in runs if r.name in results]
    payload = {"study": dataclasses.asdict(cfg), "tasks": [dataclasses.asdict(t) for t in study_tasks(cfg)],
               "pending": [r.name for r in runs if r.name not in results], "runs": done}
    write_json(out / "results.json", payload)
    plots = write_plots(cfg, done, out)
    report = out / "report.md"
    tmp = report.with_name(report.name + ".tmp")
    tmp.write_text(report_markdown(cfg, runs, results, plots), encoding="utf-8")
    os.replace(tmp, report)
    return [out / "results.json", report, *plots]


def write_plots(cfg: StudyConfig, done: list[dict], out: Path) -> list[Path]:
    """score_vs_compute.png (always), score_vs_generator_size.png and score_vs_mask_rate.png when swept."""
    if not done:
        return []
    names = [t.name for t in study_tasks(cfg)] + ["average"]
    written = [score_vs_compute(done, names, cfg.study.convention, out / "score_vs_compute.png")]
    for key, label, stem in SWEPT_PLOTS:
        path = score_vs_setting(done, names, key, label, out / f"{stem}.png")
        if path is not None:
            written.append(path)
    return written


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
             f"Study file: `{cfg.source}`. Scores are dev-set metrics in points of the final model of "
             f"each fine-tuning seed (the official protocol; not the best epoch): the median over seeds and, in "
             f"brackets, the min-max. The average is the mean of the per-task medians.", ""]
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


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"
