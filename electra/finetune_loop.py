"""The fine-tuning loop: setup, then for each seed a plain `for epoch / for batch` loop, then the outputs.

    from electra.finetune_loop import finetune
    metrics = finetune(FinetuneConfig(task="sst2", model="hf/discriminator", data="../shared/data/glue/SST-2",
                                      out="runs/sst2", seeds=3))

ELECTRA's recipe (paper appendix, google-research/electra `run_finetuning.py`): AdamW (eps 1e-6, weight decay 0.01),
layer-wise LR decay (0.8; 0.9 for 24-layer models; `official_depth` reproduces the official off-by-one), 10% linear
warm-up overlapped with linear decay to 0, gradient clipping at 1.0, per-task epochs, MRPC / STS-B trained on both
orders of each pair. Every epoch is scored on dev; the best epoch's weights are kept in memory, and only the best
seed's weights and predictions are kept across seeds. The outputs (electra/finetune.py's docstring lists them) are
written to a temporary sibling folder and renamed at the end.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from electra.checkpoint import resolve_model_dir
from electra.errors import ElectraError
from electra.finetune_config import FinetuneConfig, resolve, task_metadata
from electra.finetune_data import encode_splits, gold_of, label_list, read_data, warn_counts
from electra.inference import infer, load_tokenizer_for
from electra.tasks import Task, collate, get_task


def init_model(model_dir: Path, task: Task, labels: list | None, cfg: FinetuneConfig, seed: int):
    """The pretrained encoder with a fresh head, seeded so that the head's initial weights depend on `seed` only."""
    from electra.hf import load_task_model

    torch.manual_seed(seed)
    num_labels = 1 if task.regression else (len(labels) if labels else 2)
    return load_task_model(model_dir, kind=task.kind, num_labels=num_labels,
                           classifier_dropout=cfg.classifier_dropout, strict_head=False)


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled mini-batches of example indices for one epoch (a function of seed and epoch only)."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def evaluate_split(model, task: Task, examples, features, labels, cfg, pad_id, device) -> tuple[dict, list]:
    outputs = infer(model, features, cfg.eval_batch_size, pad_id, device, cfg.progress)
    predictions = task.decode(examples, features, outputs, labels, cfg)
    return task.metric(examples, predictions), predictions


def score_epoch(model, task: Task, data: dict, labels, cfg, pad_id, device) -> tuple[dict, list]:
    """Dev scores (plus each extra dev split's, prefixed, e.g. MNLI's mm_acc) and the dev predictions."""
    scores, predictions = evaluate_split(model, task, data["dev"], data["dev_features"], labels, cfg, pad_id, device)
    for prefix, _ in task.extra_dev:
        if prefix in data:
            extra, _ = evaluate_split(model, task, data[prefix], data[f"{prefix}_features"], labels, cfg, pad_id,
                                      device)
            scores.update({f"{prefix}_{k}": v for k, v in extra.items()})
    return scores, predictions


def train_seed(model, task: Task, data: dict, labels, cfg: FinetuneConfig, seed: int, pad_id: int, device,
               log=print) -> dict:
    """Fine-tune one seed. Returns {"seed", "best_epoch", "dev", "epochs", "seconds", "state", "predictions"}."""
    from tqdm import tqdm

    from electra.optim import build_optimizer, clip_grad_norm, linear_schedule, param_groups, set_lr

    train = data["train_features"]
    model.to(device)
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay, model.cfg.num_layers,
                          cfg.official_depth)
    optimizer = build_optimizer(groups, "adamw", lr=cfg.lr, eps=cfg.adam_eps)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    schedule = linear_schedule(warmup=int(cfg.warmup_fraction * total), total=total)
    params = [p for g in groups for p in g["params"]]
    best, history, step, start = None, [], 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        bar = tqdm(batch_order(len(train), cfg.batch_size, seed, epoch), desc=f"seed {seed} epoch {epoch + 1}",
                   unit="batch", file=sys.stderr, disable=not cfg.progress, leave=False)
        for idx in bar:
            set_lr(optimizer, cfg.lr, schedule(step))
            batch = {k: v.to(device) for k, v in collate([train[i] for i in idx], pad_id).items()}
            loss, _ = model(**batch)
            loss.backward()
            clip_grad_norm(params, cfg.clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        scores, predictions = score_epoch(model, task, data, labels, cfg, pad_id, device)
        history.append(scores)
        log(f"seed {seed} epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
        if best is None or scores[task.main_metric] > best["dev"][task.main_metric]:
            best = {"epoch": epoch + 1, "dev": scores, "predictions": predictions,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
    return {"seed": seed, "best_epoch": best["epoch"], "dev": best["dev"], "epochs": history,
            "seconds": time.perf_counter() - start, "state": best["state"], "predictions": best["predictions"]}


def summarize(runs: list[dict]) -> tuple[dict, dict]:
    """Median and mean over seeds of every dev metric."""
    keys = runs[0]["dev"].keys()
    return ({k: statistics.median(r["dev"][k] for r in runs) for k in keys},
            {k: statistics.fmean(r["dev"][k] for r in runs) for k in keys})


# ---------------------------------------------------------------------------------------------------------------
# The job: setup, seeds, outputs


@dataclasses.dataclass
class Job:
    """What the seeds of one job share (built once by `setup`)."""

    cfg: FinetuneConfig  # resolved: no None left but what the task leaves open
    task: Task
    out: Path
    model_dir: Path
    tokenizer: object  # tokenizers.Tokenizer
    device: torch.device
    pad_id: int
    data: dict  # split -> examples, and "<split>_features"
    labels: list | None
    steps: int  # optimizer steps per seed


def finetune(cfg: FinetuneConfig, log=print) -> dict:
    """Run a fine-tuning job end to end; returns the metrics written to OUT/metrics.json. `cfg.threads` applies
    for the job only (the caller's torch thread count is restored: studies call this in-process)."""
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        job = setup(cfg, log)
        runs, best = [], None
        for k in range(job.cfg.seeds):
            seed = job.cfg.seed + k
            result = train_seed(init_model(job.model_dir, job.task, job.labels, job.cfg, seed), job.task, job.data,
                                job.labels, job.cfg, seed, job.pad_id, job.device, log)
            log(f"seed {seed}: best epoch {result['best_epoch']}, {job.task.main_metric} "
                f"{result['dev'][job.task.main_metric]:.2f} ({result['seconds']:.0f} s)")
            if best is None or result["dev"][job.task.main_metric] > best["dev"][job.task.main_metric]:
                best = result  # only the best seed's weights and predictions stay in memory
            runs.append({key: v for key, v in result.items() if key not in ("state", "predictions")})
            del result
        return write_outputs(job, runs, best, log)
    finally:
        torch.set_num_threads(before)


def check_out(cfg: FinetuneConfig) -> Path:
    """OUT, after refusing to replace what is not ours (or anything, without --overwrite)."""
    for name in ("model", "data", "out"):
        if not getattr(cfg, name) and not (name == "data" and cfg.train_file):
            raise ElectraError(f"--{name} is required")
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise ElectraError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").is_file())):
        raise ElectraError(f"refusing to overwrite {out}: it is not a fine-tuning output folder (no metrics.json)")
    return out


def setup(cfg: FinetuneConfig, log=print) -> Job:
    """Everything the seeds share: task, model folder, resolved config, tokenizer, device, encoded data, labels."""
    from electra.dist import pick_device
    from electra.hf import model_config_from_hf, read_config
    from electra.tokenizer import special_ids

    task = get_task(cfg.task)
    out = check_out(cfg)
    model_dir = resolve_model_dir(cfg.model)
    model_cfg = model_config_from_hf(read_config(model_dir), where=str(model_dir / "config.json"))
    cfg = resolve(cfg, task, model_cfg)
    tokenizer = load_tokenizer_for(model_dir, cfg.tokenizer, model_cfg.vocab_size)
    device = pick_device(cfg.device)

    read_stats = Counter()
    data, dev_fraction = read_data(task, cfg, read_stats)
    cfg = dataclasses.replace(cfg, dev_fraction=dev_fraction)
    warn_counts(f"{task.name} data", sum(len(v) for v in data.values()), read_stats, "records")
    labels = label_list(task, data["train"])
    encode_splits(task, data, tokenizer, labels, cfg)
    steps = cfg.epochs * math.ceil(len(data["train_features"]) / cfg.batch_size)
    log(f"task {task.name}: {len(data['train']):,} train examples ({len(data['train_features']):,} features), "
        f"{len(data['dev']):,} dev; labels: {', '.join(map(str, labels)) if labels else task.kind}")
    log(f"model {model_dir}: {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}; lr {cfg.lr:g}, layer "
        f"decay {cfg.layer_decay}{' (official depth)' if cfg.official_depth else ''}, batch {cfg.batch_size}, "
        f"{cfg.epochs} epochs = {steps:,} steps ({int(cfg.warmup_fraction * steps):,} warm-up), device {device}")
    return Job(cfg=cfg, task=task, out=out, model_dir=model_dir, tokenizer=tokenizer, device=device,
               pad_id=special_ids(tokenizer)["pad"], data=data, labels=labels, steps=steps)


def write_outputs(job: Job, runs: list[dict], best: dict, log=print) -> dict:
    """OUT/ from the best seed: model/, predictions.jsonl, submission/, metrics.json, config.json (one rename)."""
    from electra.hf import export_task_model
    from electra.tokenizer import save_tokenizer_folder

    cfg, task, data, out = job.cfg, job.task, job.data, job.out
    median, mean = summarize(runs)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model = init_model(job.model_dir, task, job.labels, cfg, best["seed"])
        model.load_state_dict(best["state"])
        job.tokenizer.no_truncation()
        job.tokenizer.no_padding()
        tok_dir = save_tokenizer_folder(job.tokenizer, tmp / ".tokenizer")
        export_task_model(model, tmp / "model", tokenizer_dir=tok_dir, labels=job.labels,
                          extra={"electra_task.json": task_metadata(task, job.labels, cfg)})
        shutil.rmtree(tok_dir)
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as f:
            for e, p in zip(data["dev"], best["predictions"]):
                f.write(json.dumps({**task.to_output(e, p), "gold": gold_of(e)}, ensure_ascii=False) + "\n")
        submissions = write_submissions(model, task, data, job.labels, cfg, job.pad_id, job.device, tmp / "submission")
        metrics = {
            "task": task.name, "main_metric": task.main_metric, "dev": best["dev"], "best_seed": best["seed"],
            "seeds": runs,
            "median": median, "mean": mean,
            "counts": {"train_examples": len(data["train"]), "train_features": len(data["train_features"]),
                       "dev_examples": len(data["dev"]), "steps_per_seed": job.steps},
            "submission": submissions,
        }
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        resolved = {**dataclasses.asdict(cfg), "model_dir": str(job.model_dir), "labels": job.labels,
                    "train_steps": job.steps, "warmup_steps": int(cfg.warmup_fraction * job.steps)}
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{task.name} dev {task.main_metric}: median {median[task.main_metric]:.2f}, mean "
        f"{mean[task.main_metric]:.2f} over {len(runs)} seed(s); wrote {out}")
    return metrics


def write_submissions(model, task: Task, data: dict, labels, cfg, pad_id, device, folder: Path) -> list[str]:
    """GLUE test-set submission files from the unlabeled test splits present in the data."""
    from electra.tasks.classification import write_submission

    written = []
    for split, stem in task.submission:
        if split not in data:
            continue
        outputs = infer(model, data[f"{split}_features"], cfg.eval_batch_size, pad_id, device, cfg.progress)
        predictions = task.decode(data[split], data[f"{split}_features"], outputs, labels, cfg)
        folder.mkdir(exist_ok=True)
        write_submission(folder / f"{stem}.tsv", data[split], predictions)
        written.append(f"submission/{stem}.tsv")
    return written
