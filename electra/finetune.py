"""Fine-tuning: one linear loop (no Trainer class) over a task from the registry in `electra/tasks`.

    electra finetune --task sst2 --model hf/discriminator --data ../shared/data/glue/SST-2 --out runs/sst2
    electra finetune --config configs/finetune/glue-sst2.toml --model DIR --data DIR --out runs/sst2 --seeds 3
    python -m electra finetune --help

`--model` is a Hugging Face ELECTRA or BERT-family folder, or a pretraining run / checkpoint of ours. ELECTRA's
recipe (paper appendix, google-research/electra `run_finetuning.py`): AdamW (eps 1e-6, weight decay 0.01), layer-wise
LR decay (0.8; 0.9 for 24-layer models; `--official-depth` reproduces the official off-by-one), 10% linear warm-up
overlapped with linear decay to 0, gradient clipping at 1.0, per-task epochs, MRPC / STS-B trained on both orders of
each pair (`double_unordered`). Every epoch is scored on dev; the best epoch's weights are kept in memory. With
`--seeds N` the run repeats with seeds seed..seed+N-1 and reports each, their median and their mean.

OUT/ (written under a temporary name and renamed at the end, so an interrupted run leaves nothing half-written):
    metrics.json        {"task", "main_metric", "dev" (best seed), "seeds": [...], "median", "mean", "counts"}
    predictions.jsonl   dev predictions of the best seed, one JSON object per example (with the gold answer)
    config.json         the resolved configuration (defaults, TOML file and flags merged; derived values)
    model/              the best model as an HF ElectraFor* folder + tokenizer + electra_task.json
    submission/         GLUE test-set files (SST-2.tsv, ...) when the data has unlabeled test splits
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from electra.config import LAYERWISE_LR_DECAY, from_dict
from electra.errors import ElectraError
from electra.tasks import MissingSplit, Task, collate, get_task, registry


@dataclass
class FinetuneConfig:
    """One fine-tuning run. None = the task's or the model's default (resolved into OUT/config.json)."""

    task: str = ""
    model: str = ""
    data: str = ""
    out: str = ""
    tokenizer: str | None = None  # tokenizer folder or vocab.txt; None = the model folder's
    epochs: int | None = None  # None = the task's (3; 10 for RTE / STS-B; 2 for QA)
    lr: float | None = None  # None = by model width: 3e-4 (<= 256, Small), 1e-4 (<= 768, Base), 5e-5 (Large)
    batch_size: int = 32
    eval_batch_size: int = 64
    max_seq_len: int | None = None  # None = the task's (128; 384 for QA)
    seeds: int = 1
    seed: int = 0  # first seed; run k uses seed + k
    max_train_examples: int = 0  # 0 = all; else a fixed random subset (chosen with seed 0, same for every run seed)
    max_dev_examples: int = 0  # 0 = all; else the first N dev examples
    layer_decay: float | None = None  # None = 0.8, or 0.9 for 24+ layers (paper); 1.0 = no decay
    official_depth: bool = False  # put the head at depth L+2 as the official code does
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    clip_norm: float = 1.0
    classifier_dropout: float | None = None  # None = the model's hidden dropout (0.1)
    double_unordered: bool | None = None  # None = the task's (on for MRPC / STS-B)
    dev_fraction: float | None = None  # hold out this fraction of train as dev; None = only when there is no dev file
    text_a: str | None = None  # generic classification columns
    text_b: str | None = None
    label: str | None = None
    train_file: str | None = None  # explicit split files instead of the names inside --data
    dev_file: str | None = None
    test_file: str | None = None
    doc_stride: int = 128  # QA: token distance between window starts
    max_query_len: int = 64  # QA: question tokens kept
    max_answer_len: int = 30  # QA: longest answer span in tokens
    n_best: int = 20  # QA: start / end candidates per window
    null_threshold: float = 0.0  # SQuAD v2: answer "" when null score - best span score > this
    predict_test: bool = True  # write GLUE submission files when the data has test splits
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int | None = None  # CPU threads for torch; None = torch's default
    overwrite: bool = False
    progress: bool = True  # tqdm bars on stderr

    def __post_init__(self):
        for name in ("batch_size", "eval_batch_size", "seeds", "doc_stride", "max_query_len", "max_answer_len",
                     "n_best"):
            if getattr(self, name) < 1:
                raise ElectraError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("epochs", "max_seq_len"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ElectraError(f"{name}={getattr(self, name)} must be at least 1")
        if self.max_seq_len is not None and self.max_seq_len < 8:
            raise ElectraError(f"max_seq_len={self.max_seq_len} is too short (at least 8)")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ElectraError(f"warmup_fraction={self.warmup_fraction} must be in [0, 1]")
        if self.dev_fraction is not None and not 0.0 <= self.dev_fraction < 1.0:
            raise ElectraError(f"dev_fraction={self.dev_fraction} must be in [0, 1)")
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise ElectraError(f"layer_decay={self.layer_decay} must be in (0, 1]")


def default_lr(hidden_size: int) -> float:
    """Paper Table 7: 3e-4 for Small (hidden 256), 1e-4 for Base (768), 5e-5 for Large (1024)."""
    return 3e-4 if hidden_size <= 256 else 1e-4 if hidden_size <= 768 else 5e-5


def resolve(cfg: FinetuneConfig, task: Task, model_cfg) -> FinetuneConfig:
    """Fill every None with the task's or the model's default."""
    size = "large" if model_cfg.num_layers >= 24 else "base"
    return dataclasses.replace(
        cfg,
        epochs=cfg.epochs or task.epochs,
        lr=cfg.lr or default_lr(model_cfg.hidden_size),
        max_seq_len=min(cfg.max_seq_len or task.max_seq_len, model_cfg.max_position_embeddings),
        layer_decay=cfg.layer_decay or LAYERWISE_LR_DECAY[size],
        double_unordered=task.double_unordered if cfg.double_unordered is None else cfg.double_unordered,
    )


def resolve_model_dir(path) -> Path:
    """An HF folder as is; a pretraining run / checkpoint of ours through electra.checkpoint (exported once)."""
    try:
        from electra.checkpoint import resolve_model_dir as resolve_checkpoint
    except ImportError:
        return Path(path)
    return resolve_checkpoint(path, which="discriminator")


def load_tokenizer_for(model_dir: Path, tokenizer_path, vocab_size: int):
    """The tokenizer (--tokenizer, else the model folder's); ElectraError when its ids do not fit the model."""
    from electra.tokenizer import load_tokenizer

    source = Path(tokenizer_path) if tokenizer_path else model_dir
    tok = load_tokenizer(source)
    if tok.get_vocab_size() != vocab_size:
        raise ElectraError(f"tokenizer {source} has {tok.get_vocab_size():,} tokens but the model in {model_dir} "
                           f"has a {vocab_size:,}-token vocabulary; use the tokenizer the model was trained with")
    return tok


# ---------------------------------------------------------------------------------------------------------------
# Data: read, subset, label, encode


def read_data(task: Task, cfg: FinetuneConfig, stats: Counter) -> tuple[dict[str, list], float]:
    """({"train", "dev", extra dev splits..., test splits...}: examples, the fraction of train held out as dev)."""
    data_dir = Path(cfg.data)
    if not cfg.train_file and not data_dir.is_dir():
        raise ElectraError(f"data folder {data_dir} not found")
    splits = {"train": task.read(data_dir, "train", cfg, stats)}
    fraction = cfg.dev_fraction or 0.0
    if not fraction:
        try:
            splits["dev"] = task.read(data_dir, "dev", cfg, stats)
        except MissingSplit as e:
            if cfg.dev_fraction is not None or not task.dev_from_train:
                raise
            fraction = task.dev_from_train
            print(f"{e}; holding out {fraction:.0%} of train as dev", file=sys.stderr)
    if fraction:
        splits["train"], splits["dev"] = holdout(splits["train"], fraction)
    for prefix, split in task.extra_dev:
        try:
            splits[prefix] = task.read(data_dir, split, cfg, stats)
        except MissingSplit as e:
            print(f"{e}; skipped", file=sys.stderr)
    if cfg.predict_test:
        for split, _ in task.submission:
            try:
                splits[split] = task.read(data_dir, split, cfg, stats)
            except MissingSplit:
                pass
    if cfg.max_train_examples and len(splits["train"]) > cfg.max_train_examples:
        order = list(range(len(splits["train"])))
        random.Random(0).shuffle(order)
        splits["train"] = [splits["train"][i] for i in sorted(order[:cfg.max_train_examples])]
    if cfg.max_dev_examples:
        splits["dev"] = splits["dev"][:cfg.max_dev_examples]
    for name in ("train", "dev"):
        if not splits[name]:
            raise ElectraError(f"the {name} split of task '{task.name}' in {cfg.data} has no examples")
    if cfg.double_unordered and task.pair:
        splits["train"] = splits["train"] + [dataclasses.replace(e, text_a=e.text_b, text_b=e.text_a)
                                             for e in splits["train"]]
    return splits, fraction


def holdout(train: list, fraction: float) -> tuple[list, list]:
    """(train, dev): a fixed random `fraction` of train (chosen with seed 0) becomes dev; order kept."""
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    n_dev = max(1, round(fraction * len(order)))
    dev = set(order[:n_dev])
    return [e for i, e in enumerate(train) if i not in dev], [e for i, e in enumerate(train) if i in dev]


def label_list(task: Task, train: list) -> list | None:
    """The task's fixed labels, or the labels seen in training (sorted; "O" first for tags); None = regression."""
    if task.regression or task.kind == "span":
        return None
    if task.labels is not None:
        return list(task.labels)
    if task.kind == "token":
        seen = {tag for e in train for tag in e.tags}
        return sorted(seen, key=lambda t: (t != "O", t))
    return sorted({e.label for e in train})


def warn_counts(name: str, total: int, counts: Counter, unit: str = "examples") -> None:
    for what, n in sorted(counts.items()):
        if n:
            print(f"warning: {name}: {n:,} of {total:,} {unit} {what}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
# The model, the batches, inference


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ElectraError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


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


@torch.no_grad()
def infer(model, features: list[dict], batch_size: int, pad_id: int, device, progress: bool = False) -> list:
    """Logits per feature, as numpy arrays: (num_labels,) for sequences, (len, C) for tokens and spans. Features
    are batched by length (less padding) and returned in their original order."""
    from tqdm import tqdm

    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    outputs = [None] * len(features)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="eval", unit="batch", file=sys.stderr, disable=not progress, leave=False):
        batch = collate([features[i] for i in idx], pad_id)
        _, logits = model(batch["input_ids"].to(device), batch["token_type_ids"].to(device),
                          batch["attention_mask"].to(device))
        logits = logits.float().cpu().numpy()
        for row, i in enumerate(idx):
            outputs[i] = logits[row] if model.kind == "sequence" else logits[row, :len(features[i]["input_ids"])]
    return outputs


def evaluate_split(model, task: Task, examples, features, labels, cfg, pad_id, device) -> tuple[dict, list]:
    outputs = infer(model, features, cfg.eval_batch_size, pad_id, device, cfg.progress)
    predictions = task.decode(examples, features, outputs, labels, cfg)
    return task.metric(examples, predictions), predictions


# ---------------------------------------------------------------------------------------------------------------
# The loop


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
        scores, predictions = evaluate_split(model, task, data["dev"], data["dev_features"], labels, cfg, pad_id,
                                             device)
        for prefix, _ in task.extra_dev:
            if prefix in data:
                extra, _ = evaluate_split(model, task, data[prefix], data[f"{prefix}_features"], labels, cfg,
                                          pad_id, device)
                scores.update({f"{prefix}_{k}": v for k, v in extra.items()})
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


def finetune(cfg: FinetuneConfig, log=print) -> dict:
    """Run a fine-tuning job end to end; returns the metrics written to OUT/metrics.json. `cfg.threads` applies
    for the job only (the caller's torch thread count is restored: studies call this in-process)."""
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _finetune(cfg, log)
    finally:
        torch.set_num_threads(before)


def _finetune(cfg: FinetuneConfig, log) -> dict:
    from electra.hf import export_task_model, model_config_from_hf, read_config
    from electra.tokenizer import save_tokenizer_folder, special_ids

    task = get_task(cfg.task)
    for name in ("model", "data", "out"):
        if not getattr(cfg, name) and not (name == "data" and cfg.train_file):
            raise ElectraError(f"--{name} is required")
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise ElectraError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").is_file())):
        raise ElectraError(f"refusing to overwrite {out}: it is not a fine-tuning output folder (no metrics.json)")
    model_dir = resolve_model_dir(cfg.model)
    model_cfg = model_config_from_hf(read_config(model_dir), where=str(model_dir / "config.json"))
    cfg = resolve(cfg, task, model_cfg)
    tokenizer = load_tokenizer_for(model_dir, cfg.tokenizer, model_cfg.vocab_size)
    pad_id = special_ids(tokenizer)["pad"]
    device = pick_device(cfg.device)

    read_stats = Counter()
    data, dev_fraction = read_data(task, cfg, read_stats)
    cfg = dataclasses.replace(cfg, dev_fraction=dev_fraction)
    warn_counts(f"{task.name} data", sum(len(v) for v in data.values()), read_stats, "records")
    labels = label_list(task, data["train"])
    for split in list(data):
        try:
            features, counts = task.encode(data[split], tokenizer, labels, cfg)
        except ElectraError as e:  # say where: the example's split and the data folder
            raise ElectraError(f"{split} split of {cfg.data}: {e}") from None
        warn_counts(f"{split} split", len(data[split]), counts)
        data[f"{split}_features"] = features
    log(f"task {task.name}: {len(data['train']):,} train examples ({len(data['train_features']):,} features), "
        f"{len(data['dev']):,} dev; labels: {', '.join(map(str, labels)) if labels else task.kind}")
    steps = cfg.epochs * math.ceil(len(data["train_features"]) / cfg.batch_size)
    log(f"model {model_dir}: {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}; lr {cfg.lr:g}, layer "
        f"decay {cfg.layer_decay}{' (official depth)' if cfg.official_depth else ''}, batch {cfg.batch_size}, "
        f"{cfg.epochs} epochs = {steps:,} steps ({int(cfg.warmup_fraction * steps):,} warm-up), device {device}")

    runs, best = [], None
    for k in range(cfg.seeds):
        seed = cfg.seed + k
        model = init_model(model_dir, task, labels, cfg, seed)
        result = train_seed(model, task, data, labels, cfg, seed, pad_id, device, log)
        score = result["dev"][task.main_metric]
        log(f"seed {seed}: best epoch {result['best_epoch']}, {task.main_metric} {score:.2f} "
            f"({result['seconds']:.0f} s)")
        if best is None or result["dev"][task.main_metric] > best["dev"][task.main_metric]:
            best = result  # only the best seed's weights and predictions stay in memory
        runs.append({key: v for key, v in result.items() if key not in ("state", "predictions")})
        del model, result
    median, mean = summarize(runs)

    # Everything goes to a temporary sibling folder first, then one rename.
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model = init_model(model_dir, task, labels, cfg, best["seed"])
        model.load_state_dict(best["state"])
        tokenizer.no_truncation()
        tokenizer.no_padding()
        tok_dir = save_tokenizer_folder(tokenizer, tmp / ".tokenizer")
        meta = task_metadata(task, labels, cfg)
        export_task_model(model, tmp / "model", tokenizer_dir=tok_dir, labels=labels,
                          extra={"electra_task.json": meta})
        shutil.rmtree(tok_dir)
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as f:
            for e, p in zip(data["dev"], best["predictions"]):
                f.write(json.dumps({**task.to_output(e, p), "gold": gold_of(e)}, ensure_ascii=False) + "\n")
        submissions = write_submissions(model, task, data, labels, cfg, pad_id, device, tmp / "submission")
        metrics = {
            "task": task.name, "main_metric": task.main_metric, "dev": best["dev"], "best_seed": best["seed"],
            "seeds": runs,
            "median": median, "mean": mean,
            "counts": {"train_examples": len(data["train"]), "train_features": len(data["train_features"]),
                       "dev_examples": len(data["dev"]), "steps_per_seed": steps},
            "submission": submissions,
        }
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        resolved = {**dataclasses.asdict(cfg), "model_dir": str(model_dir), "labels": labels,
                    "train_steps": steps, "warmup_steps": int(cfg.warmup_fraction * steps)}
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{task.name} dev {task.main_metric}: median {median[task.main_metric]:.2f}, mean "
        f"{mean[task.main_metric]:.2f} over {len(runs)} seed(s); wrote {out}")
    return metrics


def task_metadata(task: Task, labels, cfg: FinetuneConfig) -> dict:
    """electra_task.json: what `electra.predict.load` needs to rebuild the task around the exported model."""
    keys = ("max_seq_len", "doc_stride", "max_query_len", "max_answer_len", "n_best", "null_threshold",
            "dev_fraction")
    return {"task": task.name, "kind": task.kind, "labels": labels, "regression": task.regression,
            **{k: getattr(cfg, k) for k in keys}}


def gold_of(example):
    for name in ("label", "tags", "answers"):
        if hasattr(example, name):
            return getattr(example, name)
    return None


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


# ---------------------------------------------------------------------------------------------------------------
# Command line and TOML run files

HELP = {
    "task": "task name: " + ", ".join(registry()),
    "model": "HF ELECTRA / BERT-family folder, or a pretraining run or checkpoint folder of ours",
    "data": "folder with the task's files (e.g. ../shared/data/glue/SST-2)",
    "out": "output folder (metrics.json, predictions.jsonl, config.json, model/)",
    "tokenizer": "tokenizer folder or vocab.txt (default: the model folder's)",
    "epochs": "training epochs (default: the task's: 3; 10 for RTE and STS-B; 2 for QA)",
    "lr": "peak learning rate (default by width: 3e-4 Small, 1e-4 Base, 5e-5 Large)",
    "batch_size": "training batch size (default 32)",
    "eval_batch_size": "evaluation batch size (default 64)",
    "max_seq_len": "tokens per input, longer ones truncated and counted (default: 128; 384 for QA)",
    "seeds": "number of seeds; reports each, the median and the mean (default 1)",
    "seed": "first seed; run k uses seed + k (default 0)",
    "max_train_examples": "train on a fixed random subset of N examples (default 0 = all)",
    "max_dev_examples": "score the first N dev examples only (default 0 = all)",
    "layer_decay": "layer-wise LR decay factor (default 0.8; 0.9 for 24-layer models; 1 = off)",
    "official_depth": "reproduce the official code's off-by-one depth (head at L+2) (default off)",
    "warmup_fraction": "fraction of steps with linear warm-up (default 0.1)",
    "weight_decay": "AdamW weight decay, not on LayerNorm and biases (default 0.01)",
    "adam_eps": "AdamW epsilon (default 1e-6)",
    "clip_norm": "global gradient-norm clipping, 0 = off (default 1.0)",
    "classifier_dropout": "dropout in the task head (default: the model's hidden dropout)",
    "double_unordered": "also train on (b, a) for each pair (default: on for MRPC and STS-B only)",
    "dev_fraction": "hold out this fraction of train as dev (default: only when the data has no dev file)",
    "text_a": "generic tasks: column / field with the text (default: text_a, text, sentence or sentence1)",
    "text_b": "generic tasks: column / field with the second text of a pair (default: text_b or sentence2)",
    "label": "generic tasks: column / field with the label (default: label)",
    "train_file": "train file instead of the task's name inside --data",
    "dev_file": "dev file instead of the task's name inside --data",
    "test_file": "test file instead of the task's name inside --data",
    "doc_stride": "QA: tokens between the starts of consecutive context windows (default 128)",
    "max_query_len": "QA: question tokens kept (default 64)",
    "max_answer_len": "QA: longest answer in tokens (default 30)",
    "n_best": "QA: start and end candidates considered per window (default 20)",
    "null_threshold": "SQuAD v2: predict no answer when null score - best span score exceeds this (default 0)",
    "predict_test": "write GLUE submission files from unlabeled test splits (default on)",
    "device": "auto, cpu, cuda or cuda:N (default auto)",
    "threads": "CPU threads for torch (default: torch's default; 1 is faster on a busy shared machine)",
    "overwrite": "replace --out if it exists",
    "progress": "progress bars on stderr (default on)",
}


def add_config_arguments(parser: argparse.ArgumentParser, fields=None) -> None:
    """One flag per FinetuneConfig field (default None: unset flags leave the TOML file's or the default value)."""
    import typing

    hints = typing.get_type_hints(FinetuneConfig)
    for f in dataclasses.fields(FinetuneConfig):
        if fields is not None and f.name not in fields:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=HELP[f.name])
        else:
            parser.add_argument(flag, type=base, default=None, metavar=f.name.upper().replace("_", "-"),
                                help=HELP[f.name])


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """Defaults <- the TOML run file (--config) <- flags given on the command line."""
    values = {}
    if getattr(args, "config", None):
        values = read_toml(Path(args.config))
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return from_dict(FinetuneConfig, values)


def read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    if not path.is_file():
        raise ElectraError(f"config file {path} not found")
    from electra.readers import read_utf8

    try:
        values = tomllib.loads(read_utf8(path))
    except (tomllib.TOMLDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
        raise ElectraError(f"{path}: not valid TOML ({e})") from None
    return values.get("finetune", values) if isinstance(values.get("finetune"), dict) else values


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML run file: keys are the long option names with underscores; flags override it")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not cfg.task:
        raise ElectraError("--task is required (or `task = ...` in the --config file); tasks: "
                           + ", ".join(registry()))
    finetune(cfg)
    return 0
