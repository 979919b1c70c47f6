"""Score a fine-tuned model on a task's dev (or any labeled) split: `electra evaluate`.

    electra evaluate --model runs/sst2/model --data ../shared/data/glue/SST-2            # task from the folder
    electra evaluate --model runs/sst2/model --task sst2 --data DIR --output dev.jsonl     # + predictions file
    electra evaluate --model runs/mnli/model --data DIR --split mm                         # MNLI mismatched
    electra evaluate --model runs/sst2/model --data DIR --perturb typo --rate 0.1 --seed 0  # + robustness
    electra evaluate --model runs/sst2/seeds/0/model,runs/sst2/seeds/1/model --data DIR     # ensemble (mean probs)

Prints the metrics as one JSON object on stdout. The model folder is OUT/model of `electra finetune` (or OUT); its
electra_task.json gives the task, labels and lengths. The dev split is the folder's dev file (or --dev-file) whenever
there is one, whatever fine-tuning used, so a model tuned on a dev held out of train (CMRC 2018 trial, People's
Daily) scores on a real dev set; a folder without one gets the held-out part of its train file, rebuilt exactly as
fine-tuning built it. A gold label the model never saw is an error. `--perturb KIND --rate R --seed S` (text
classification) reports {"clean", "perturbed", "perturbation"}; with `--detector DIR` also how well that
discriminator flags the perturbed words (electra/perturb.py says how).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from electra.errors import ElectraError


def evaluate(model_dir, data, task_name: str | None = None, split: str = "dev", max_examples: int = 0,
             batch_size: int | None = None, device=None, options: dict | None = None,
             perturb: dict | None = None) -> tuple:
    """(metrics, task, examples, predictions) of the model in `model_dir` (or the ensemble of a list of folders) on
    `split` of the data in `data`. `perturb` ({"kind", "rate", "seed", "detector"}: electra/perturb.py) scores the
    perturbed split too: metrics become {"clean", "perturbed", "perturbation"}."""
    from electra.ensemble import model_paths
    from electra.finetune_config import updated
    from electra.finetune_data import warn_counts
    from electra.predict import load
    from electra.tasks import get_task

    paths = model_paths(model_dir)
    predictor = load(paths, device=device)
    where = ", ".join(paths)
    task = predictor.task if task_name is None else get_task(task_name)
    if task.kind != predictor.task.kind:
        raise ElectraError(f"task '{task.name}' needs a {task.kind} model, but {where} holds a "
                           f"{predictor.task.kind} model (fine-tuned for '{predictor.task.name}')")
    cfg = updated(predictor.cfg, {"data": str(data), **(options or {})})
    stats = Counter()
    examples = read_split(task, Path(data), split, cfg, stats)
    warn_counts(f"{task.name} data", len(examples), stats, "records")
    examples = examples[:max_examples] if max_examples else examples
    if not examples:
        raise ElectraError(f"the {split} split of task '{task.name}' in {data} has no examples")
    if perturb is not None and (task.kind != "sequence" or not hasattr(examples[0], "text_a")):
        raise ElectraError(f"--perturb works on text classification tasks; '{task.name}' is a {task.kind} task")
    metrics, predictions = score(predictor, task, examples, cfg, split, data, batch_size)
    if perturb is not None:
        from electra.perturb import detection_scores, perturb_examples, summary

        changed, records = perturb_examples(examples, perturb["kind"], perturb["rate"], perturb.get("seed", 0))
        perturbed, _ = score(predictor, task, changed, cfg, split, data, batch_size)
        info = summary(perturb["kind"], perturb["rate"], perturb.get("seed", 0), records)
        if perturb.get("detector"):
            info["detection"] = None if perturb["kind"] == "delete" else detection_scores(perturb["detector"], records)
        metrics = {"clean": metrics, "perturbed": perturbed, "perturbation": info}
    return metrics, task, examples, predictions


def score(predictor, task, examples: list, cfg, split: str, data, batch_size: int | None) -> tuple[dict, list]:
    """(metrics, predictions) of the predictor on labeled examples."""
    from electra.finetune_data import warn_counts
    from electra.inference import infer

    try:
        features, counts = task.encode(examples, predictor.tokenizer, predictor.labels, cfg)
    except ElectraError as e:  # say where: the example's split and the data folder
        raise ElectraError(f"{split} split of {data}: {e}") from None
    warn_counts(f"{split} split", len(examples), counts)
    if any("labels" not in f and "start_positions" not in f for f in features) or \
            (task.kind == "span" and not any(e.answers or e.is_impossible for e in examples)):
        raise ElectraError(f"the {split} split of task '{task.name}' is unlabeled; use `electra predict` for it")
    outputs = infer(predictor.runner, features, batch_size or cfg.eval_batch_size, predictor.pad_id,
                    predictor.device, progress=True)
    predictions = task.decode(examples, features, outputs, predictor.labels, cfg)
    return task.metric(examples, predictions), predictions


def read_split(task, data: Path, split: str, cfg, stats: Counter) -> list:
    """The examples of `split` in `data`: its file (or --dev-file ...) wherever there is one, so a model fine-tuned
    on a dev held out of train scores on a real dev file. Without a dev file, the part of train that fine-tuning held
    out (the model's dev_fraction, else the task's), rebuilt exactly."""
    from electra.finetune_data import holdout
    from electra.tasks import MissingSplit

    try:
        return task.read(data, split, cfg, stats)
    except MissingSplit as missing:
        fraction = cfg.dev_fraction or task.dev_from_train
        if split != "dev" or not fraction:
            raise
        try:
            train = task.read(data, "train", cfg, stats)
        except MissingSplit:  # neither file: say which dev file is missing (evaluate has --dev-file)
            raise missing from None
        print(f"{missing}; scoring the {fraction:.0%} of train held out as dev when fine-tuning", file=sys.stderr)
    return holdout(train, fraction)[1]


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", action="append",
                        help="fine-tuned model folder (OUT/model or OUT); several (repeat the flag or comma-separate) "
                             "average their probabilities (classifiers)")
    parser.add_argument("--data", required=True, metavar="DIR", help="folder with the task's files")
    parser.add_argument("--task", default=None, help="task name (default: the one the model was fine-tuned on)")
    parser.add_argument("--split", default="dev", help="split to score: dev, or a name the task knows (default dev)")
    parser.add_argument("--max-examples", type=int, default=0, metavar="N", help="score the first N only (0 = all)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="inputs per forward pass (64)")
    parser.add_argument("--output", default=None, metavar="FILE", help="also write the predictions as JSONL")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto)")
    for flag, help_ in (("--text-a", "generic tasks: text column"), ("--text-b", "generic tasks: second text column"),
                        ("--label", "generic tasks: label column"), ("--dev-file", "dev file instead of DATA/.."),
                        ("--train-file", "train file (for a dev held out of it)"),
                        ("--test-file", "test file instead of DATA/.. (--split test)")):
        parser.add_argument(flag, default=None, help=help_)
    parser.add_argument("--perturb", default=None, choices=("typo", "swap", "delete", "substitute"),
                        help="also score the split perturbed: typo, swap, delete or substitute (electra/perturb.py)")
    parser.add_argument("--rate", type=float, default=0.1, metavar="R",
                        help="--perturb: fraction of words touched (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="--perturb: seed of the perturbation (default 0)")
    parser.add_argument("--detector", default=None, metavar="DIR",
                        help="--perturb: discriminator (pretraining run or HF ElectraForPreTraining folder) whose "
                             "flags of the perturbed words are scored: precision / recall at p(replaced) > 0.5")


def run(args: argparse.Namespace) -> int:
    from electra.finetune_data import gold_of

    keys = ("text_a", "text_b", "label", "dev_file", "train_file", "test_file")
    options = {k: getattr(args, k) for k in keys if getattr(args, k)}
    if args.output and Path(args.output).exists():
        raise ElectraError(f"{args.output} already exists; choose another --output")
    if args.detector and not args.perturb:
        raise ElectraError("--detector scores the flags of perturbed words; pass --perturb too")
    if args.perturb and not 0 < args.rate <= 1:
        raise ElectraError(f"--rate {args.rate} must be in (0, 1]: the fraction of words perturbed")
    perturb = {"kind": args.perturb, "rate": args.rate, "seed": args.seed, "detector": args.detector} \
        if args.perturb else None
    metrics, task, examples, predictions = evaluate(args.model, args.data, args.task, args.split,
                                                    args.max_examples, args.batch_size, args.device, options,
                                                    perturb)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for e, p in zip(examples, predictions):
                f.write(json.dumps({**task.to_output(e, p), "gold": gold_of(e)}, ensure_ascii=False) + "\n")
    print(json.dumps({"task": task.name, "split": args.split, "examples": len(examples), **metrics}, indent=2))
    return 0
