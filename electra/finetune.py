"""`electra finetune`: fine-tune on a task from the registry in `electra/tasks` (GLUE, classification, NER, QA, ...).

    electra finetune --task sst2 --model hf/discriminator --data ../shared/data/glue/SST-2 --out runs/sst2
    electra finetune --config configs/finetune/glue-sst2.toml --model DIR --data DIR --out runs/sst2 --seeds 3
    python -m electra finetune --help

`--model` is a Hugging Face ELECTRA or BERT-family folder, or a pretraining run / checkpoint of ours. The options are
FinetuneConfig's (electra/finetune_config.py): every field is a flag, and a TOML run file (`--config`) sets them
under the flags. With `--seeds N` the run repeats with seeds seed..seed+N-1 and reports each, their median and their
mean; `--lr 3e-4,1e-3,3e-3` trains each learning rate over every seed and keeps the one with the best final-model
dev median. `--augment K` adds K generator-made variants of each training example (electra/augment.py). The defaults
are the official recipe (docs/FIDELITY.md). The loop itself is electra/finetune_loop.py.

The reported dev score is the final model's (the official protocol), never the max over epochs; the best epoch is
reported beside it as `dev_best_epoch`, labelled as the early-stopping view. `--select best-epoch` saves the best
epoch's weights instead of the final ones.

OUT/ (written under a temporary name and renamed at the end, so an interrupted run leaves nothing half-written):
    metrics.json        {"task", "main_metric", "protocol", "select", "lr", "dev" (the saved seed's final model),
                        "dev_best_epoch" ({"epoch", ...}), "best_seed", "seeds": [...], "median", "mean" (final
                        models), "median_best_epoch", "mean_best_epoch", "collapsed", "lr_sweep", "counts", ...}
    predictions.jsonl   dev predictions of the saved model, one JSON object per example (with the gold answer)
    config.json         the resolved configuration (defaults, TOML file and flags merged; derived values)
    model/              the best model as an HF ElectraFor* folder + tokenizer + electra_task.json
    seeds/SEED/model/   with --keep-all: every seed's model, for ensembles (`electra predict --model A --model B`)
    submission/         GLUE test-set files (SST-2.tsv, ...) when the data has unlabeled test splits
"""
from __future__ import annotations

import argparse

from electra.errors import ElectraError
from electra.finetune_config import FinetuneConfig, add_config_arguments, config_from_args
from electra.finetune_loop import finetune
from electra.tasks import TASKS

__all__ = ["FinetuneConfig", "build_parser", "config_from_args", "finetune", "run"]  # re-exported: study, demo


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML run file: keys are the long option names with underscores (QA options may sit "
                             "under [qa], column names under [columns]); flags override it")
    add_config_arguments(parser, task_help="task name: " + ", ".join(TASKS))


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not cfg.task:
        raise ElectraError("--task is required (or `task = ...` in the --config file); tasks: " + ", ".join(TASKS))
    finetune(cfg)
    return 0
