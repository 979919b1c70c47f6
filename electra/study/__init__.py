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

The package, one job per file:
    config.py   the study file: schema, overrides, checks, tasks, the runs it asks for
    plan.py     steps per run from the budget (FLOPs or a timing probe), each run's PretrainConfig, the plan lines
    loop.py     study(): pretrain, fine-tune and score every run, resuming
    report.py   results.json, report.md and the plots (drawn by electra/plots.py)
    __init__.py this command-line interface
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from electra.study.config import StudyConfig, load_study, runs_of, study_tasks
from electra.study.loop import study
from electra.study.plan import plan, plan_lines

__all__ = ["StudyConfig", "load_study", "runs_of", "study_tasks", "plan", "plan_lines", "study", "build_parser", "run"]


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
