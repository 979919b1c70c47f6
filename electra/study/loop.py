"""Running a study: for each planned run, pretrain it, fine-tune it on every task over N seeds, score it, store
OUT/runs/NAME/result.json, and rewrite the report after every run (so a long study can be read while it runs).

    result = study(load_study("configs/study/tiny-cpu.toml"))     # {"out": "runs/study/tiny-cpu", "runs": [...]}

Resumable: a run whose result.json has the same fingerprint is skipped (another fingerprint is an error: the folder
was made with other settings); an interrupted pretraining resumes from its newest checkpoint; a fine-tuning job whose
metrics.json holds every seed is reused.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path

from electra.errors import ElectraError
from electra.files import write_json
from electra.study.config import Run, StudyConfig, TaskSpec, finetune_template, out_dir, study_tasks
from electra.study.plan import fingerprint, plan, plan_lines, run_config
from electra.study.report import write_outputs


def study(cfg: StudyConfig, say=print) -> dict:
    """Run the study: pretrain, fine-tune and score every run (skipping finished ones); write the report."""
    out = out_dir(cfg)
    runs = plan(cfg, say)
    for line in plan_lines(cfg, runs):
        say(line)
    results: dict[str, dict] = {}
    durations: list[float] = []  # seconds of each run trained here, for the ETA
    for i, run in enumerate(runs):
        where = f"run {i + 1}/{len(runs)} {run.name}"
        key = fingerprint(cfg, run)
        stored = _stored_result(out / "runs" / run.name, key)
        if stored is not None:
            results[run.name] = stored
            say(f"study: {where}: done before, skipped ({out / 'runs' / run.name / 'result.json'})")
            continue
        result = _run_one(cfg, run, out, key, lambda line: say(f"study: {where}: {line}"), say)
        write_json(out / "runs" / run.name / "result.json", result)
        results[run.name] = result
        durations.append(result["seconds"])
        left = len(runs) - i - 1
        eta = statistics.fmean(durations) * left
        say(f"study: {where} done in {_hms(result['seconds'])}: average {result['average']:.2f}; {left} run(s) "
            f"left, ETA {_hms(eta)}")
        write_outputs(cfg, runs, results, out)
    paths = write_outputs(cfg, runs, results, out)
    say(f"study: wrote {', '.join(str(p) for p in paths)}")
    return {"out": str(out), "runs": [results[r.name] for r in runs]}


def _stored_result(folder: Path, key: str) -> dict | None:
    """FOLDER/result.json if it exists and was made with these settings (fingerprint `key`); None if absent."""
    path = folder / "result.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    if stored.get("fingerprint") != key:
        raise ElectraError(f"{path} was made with other settings; choose another study.out or delete {folder}")
    return stored


def _run_one(cfg: StudyConfig, run: Run, out: Path, key: str, note, say) -> dict:
    """Pretrain one run (resuming from its newest checkpoint), fine-tune and score it on every task: its result."""
    from electra.pretrain import pretrain
    from electra.report import read_metrics

    started = time.perf_counter()
    note(f"pretraining {run.steps:,} steps ({run.steps * run.flops_per_step[cfg.study.convention]:.3g} FLOPs, "
         f"{cfg.study.convention})")
    pcfg = run_config(run, out, run.steps, cfg.study.warmup_fraction)
    pdir = Path(pcfg.run.out)
    resume = (pdir / "checkpoints").is_dir() and any((pdir / "checkpoints").iterdir())
    pretrain(pcfg, resume=resume, overwrite=not resume)
    records = read_metrics(pdir)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    pretrain_seconds = time.perf_counter() - started
    scores = {task.name: _task_scores(cfg, run, task, pdir, out / "runs" / run.name / "finetune" / task.name,
                                      note, say)
              for task in study_tasks(cfg)}
    return {
        "fingerprint": key, "name": run.name, "kind": run.kind, "generator_hidden_fraction": run.generator_fraction,
        "mask_prob": run.mask_prob, "steps": run.steps, "tokens": run.steps * run.tokens_per_step,
        "tokens_per_step": run.tokens_per_step, "flops_per_step": run.flops_per_step,
        "flops": {k: v * run.steps for k, v in run.flops_per_step.items()},
        "disc_params": run.disc_params, "gen_params": run.gen_params, "probe": run.probe,
        "pretrain_seconds": train[-1]["elapsed_s"] if train else None,
        "pretrain_final": train[-1] if train else {}, "pretrain_eval": evals[-1] if evals else {},
        "tasks": scores, "average": statistics.fmean(s["median"] for s in scores.values()),
        "seconds": time.perf_counter() - started, "pretrain_wall_seconds": pretrain_seconds,
    }


def _task_scores(cfg: StudyConfig, run: Run, task: TaskSpec, model: Path, ft_out: Path, note, say) -> dict:
    """Fine-tune the pretrained `model` on one task over the study's seeds (reusing a finished job in `ft_out`):
    the main metric of every seed's final model (not its best epoch), their median, min, max and mean."""
    from electra.finetune import finetune
    from electra.tasks import get_task

    spec = get_task(task.name)
    metrics = None
    if (ft_out / "metrics.json").is_file():
        metrics = json.loads((ft_out / "metrics.json").read_text())
        if len(metrics.get("seeds", [])) != cfg.study.seeds or "dev_best_epoch" not in metrics:
            metrics = None  # made with another number of seeds, or before the final-model protocol: fine-tune again
    if metrics is None:
        note(f"fine-tuning {task.name} x {cfg.study.seeds} seeds")
        ft = dataclasses.replace(finetune_template(cfg, task), task=task.name, model=str(model), data=task.data,
                                 out=str(ft_out), seeds=cfg.study.seeds, overwrite=True)
        metrics = finetune(ft, log=lambda line: say(f"  {run.name} {task.name}: {line}"))
    # The official protocol: each seed's FINAL model scored once on dev; the best epoch is kept only as a label.
    per_seed = [{"seed": r["seed"], "score": r["dev"][spec.main_metric], "dev": r["dev"],
                 "best_epoch": r["dev_best_epoch"]["epoch"],
                 "best_epoch_score": r["dev_best_epoch"][spec.main_metric]} for r in metrics["seeds"]]
    values = [r["score"] for r in per_seed]
    return {"metric": spec.main_metric, "seeds": per_seed, "median": statistics.median(values),
            "min": min(values), "max": max(values), "mean": statistics.fmean(values)}


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m{rest % 60:02d}s" if h else f"{rest // 60}m{rest % 60:02d}s"
