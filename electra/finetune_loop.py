"""The fine-tuning loop: setup, then for each seed a plain `for epoch / for batch` loop, then the outputs.

    from electra.finetune_loop import finetune
    metrics = finetune(FinetuneConfig(task="sst2", model="hf/discriminator", data="../shared/data/glue/SST-2",
                                      out="runs/sst2", seeds=3))

ELECTRA's recipe by default, as google-research/electra does it (docs/FIDELITY.md lists each switch): Adam without
bias correction (`optim`, eps 1e-6, weight decay 0.01), layer-wise LR decay with the official depths (0.8; 0.9 for
24-layer models), 10% linear warm-up overlapped with linear decay to 0, gradient clipping at 1.0, per-task epochs,
MRPC / STS-B trained on both orders of each pair, STS-B targets / 5, dropout + one linear layer on [CLS] (`head`).

Evaluation protocol (official run_finetuning.py): the reported dev score of a seed is its FINAL model's; the median
and mean over seeds are reported. Every epoch is also scored on dev: the best one is kept as `dev_best_epoch` (the
early-stopping view, labelled so), and `select = "best-epoch"` saves its weights instead of the final ones. With a
list of learning rates each is trained over every seed and the final-model dev median picks one. Only one seed's
weights (the best seed of the best learning rate so far) stay in memory. A seed whose dev predictions collapse to one
class (or a constant) is reported in plain words with the fix. The outputs (electra/finetune.py's docstring lists
them) are written to a temporary sibling folder and renamed at the end.
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
from electra.threads import torch_threads


def init_model(model_dir: Path, task: Task, labels: list | None, cfg: FinetuneConfig, seed: int):
    """The pretrained encoder with a fresh head, seeded so that the head's initial weights depend on `seed` only."""
    from electra.hf import load_task_model

    torch.manual_seed(seed)
    num_labels = 1 if task.regression else (len(labels) if labels else 2)
    return load_task_model(model_dir, kind=task.kind, num_labels=num_labels,
                           classifier_dropout=cfg.classifier_dropout, strict_head=False, head=cfg.head)


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled mini-batches of example indices for one epoch (a function of seed and epoch only)."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def evaluate_split(model, task: Task, examples, features, labels, cfg, pad_id, device) -> tuple[dict, list]:
    outputs = infer(model, features, cfg.eval_batch_size, pad_id, device, cfg.progress)
    if task.regression and cfg.target_scale not in (None, 1.0):  # trained on targets / scale (STS-B: / 5)
        outputs = [o * cfg.target_scale for o in outputs]
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
    """Fine-tune one seed at cfg.lr (one number). Returns {"seed", "lr", "dev": the FINAL model's dev scores,
    "dev_best_epoch": {"epoch", scores...} (the early-stopping view), "epochs": every epoch's dev scores, "seconds",
    "collapsed": a plain-words note when the final dev predictions are one class or a constant (else None),
    "state" and "predictions": of the saved model (final; the best epoch's with cfg.select == "best-epoch")}."""
    from tqdm import tqdm

    from electra.optim import build_optimizer, clip_grad_norm, linear_schedule, param_groups, set_lr

    train = data["train_features"]
    model.to(device)
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay, model.cfg.num_layers,
                          cfg.official_depth)
    optimizer = build_optimizer(groups, OPTIMIZERS[cfg.optim], lr=cfg.lr, eps=cfg.adam_eps)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    schedule = linear_schedule(warmup=cfg.warmup_fraction * total, total=total)  # fractional, as the official
    params = [p for g in groups for p in g["params"]]
    scale = cfg.target_scale if task.regression and cfg.target_scale else 1.0
    best, history, note, step, start = None, [], None, 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        bar = tqdm(batch_order(len(train), cfg.batch_size, seed, epoch), desc=f"seed {seed} epoch {epoch + 1}",
                   unit="batch", file=sys.stderr, disable=not cfg.progress, leave=False)
        for idx in bar:
            set_lr(optimizer, cfg.lr, schedule(step))
            batch = {k: v.to(device) for k, v in collate([train[i] for i in idx], pad_id).items()}
            if scale != 1.0:
                batch["labels"] = batch["labels"] / scale
            loss, _ = model(**batch)
            (loss * len(idx) if cfg.batch_loss == "sum" else loss).backward()
            clip_grad_norm(params, cfg.clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        scores, predictions = score_epoch(model, task, data, labels, cfg, pad_id, device)
        history.append(scores)
        log(f"seed {seed} lr {cfg.lr:g} epoch {epoch + 1}/{cfg.epochs}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
        note = collapse_note(task, data["dev"], predictions)
        if note:
            log(f"seed {seed} lr {cfg.lr:g} epoch {epoch + 1}: warning: {note}")
        if best is None or scores[task.main_metric] > best["scores"][task.main_metric]:
            best = {"epoch": epoch + 1, "scores": scores}
            if cfg.select == "best-epoch":
                best.update(predictions=predictions, state=_cpu_state(model))
    saved = best if cfg.select == "best-epoch" else {"predictions": predictions, "state": _cpu_state(model)}
    return {"seed": seed, "lr": cfg.lr, "dev": history[-1],
            "dev_best_epoch": {"epoch": best["epoch"], **best["scores"]}, "epochs": history,
            "seconds": time.perf_counter() - start, "collapsed": note, "state": saved["state"],
            "predictions": saved["predictions"]}


OPTIMIZERS = {"official": "adamw-official", "adamw": "adamw"}  # FinetuneConfig.optim -> electra.optim's name

FIX = ("Try another --lr (several at once: --lr 3e-4,1e-3,3e-3; too low learns nothing yet, too high can fall back "
       "to the prior) or more --epochs; if a randomly initialised model of the same size does better, the pretrained "
       "model itself may be collapsed (see its pretraining diagnosis)")


def collapse_note(task: Task, examples: list, predictions: list) -> str | None:
    """Plain words when every dev prediction is the same class (tags: the same tag), or the regression scores are
    (nearly) constant; None when the predictions vary."""
    if len(predictions) < 2 or task.kind not in ("sequence", "token"):
        return None
    if task.regression:
        scores = [p["score"] for p in predictions]
        golds = [float(e.label) for e in examples if e.label is not None]
        spread, gold_spread = statistics.pstdev(scores), statistics.pstdev(golds) if len(golds) > 1 else 1.0
        if spread > 0.01 * gold_spread:
            return None
        return (f"the dev predictions are (nearly) constant ({statistics.fmean(scores):.3f}, spread {spread:.2g} "
                f"against {gold_spread:.2g} for the gold scores): the model ignores its input. {FIX}")
    key = "label" if task.kind == "sequence" else "tags"
    values = {v for p in predictions for v in ([p[key]] if key == "label" else p[key])}
    if len(values) != 1:
        return None
    (value,) = values
    golds = [g for e in examples for g in ([e.label] if key == "label" else e.tags)]
    share = 100 * sum(g == value for g in golds) / max(1, len(golds))
    what = "dev prediction" if key == "label" else "predicted dev tag"
    return (f"every {what} is '{value}' ({share:.1f}% of the gold {key}s): the model has learned the majority "
            f"class, nothing from the text. {FIX}")


def _cpu_state(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def summarize(runs: list[dict], key: str = "dev") -> tuple[dict, dict]:
    """Median and mean over seeds of every metric of `key` ("dev": the final models'; "dev_best_epoch")."""
    keys = [k for k in runs[0][key] if k != "epoch"]
    return ({k: statistics.median(r[key][k] for r in runs) for k in keys},
            {k: statistics.fmean(r[key][k] for r in runs) for k in keys})


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
    lrs: list[float]  # the learning rates to train (cfg.lr when it is one number)


def finetune(cfg: FinetuneConfig, log=print) -> dict:
    """Run a fine-tuning job end to end; returns the metrics written to OUT/metrics.json. `cfg.threads` applies
    for the job only (the caller's torch thread count is restored: studies call this in-process)."""
    with torch_threads(cfg.threads):  # None or 0: auto (electra/threads.py), restored after
        job = setup(cfg, log)
        return write_outputs(job, *train_lrs(job, log), log)


def train_lrs(job: Job, log=print) -> tuple[list[dict], dict, dict]:
    """Every learning rate of the job over every seed: (one entry per lr {"lr", "median", "mean",
    "median_best_epoch", "mean_best_epoch", "seeds"}, the chosen entry (highest final-model dev median of the main
    metric; the first on ties), the saved seed's result of the chosen lr (the best seed: by its final dev, or by its
    best epoch with select = "best-epoch"))."""
    main = job.task.main_metric
    pick = "dev_best_epoch" if job.cfg.select == "best-epoch" else "dev"
    sweep, chosen, kept = [], None, None
    for lr in job.lrs:
        cfg = dataclasses.replace(job.cfg, lr=lr)
        runs, best, states = [], None, {}
        for seed in range(cfg.seed, cfg.seed + cfg.seeds):
            result = train_seed(init_model(job.model_dir, job.task, job.labels, cfg, seed), job.task, job.data,
                                job.labels, cfg, seed, job.pad_id, job.device, log)
            view = result["dev_best_epoch"]
            log(f"seed {seed} lr {lr:g}: dev {main} {result['dev'][main]:.2f} (final model); best epoch "
                f"{view['epoch']}: {view[main]:.2f} (early-stopping view) ({result['seconds']:.0f} s)")
            if best is None or result[pick][main] > best[pick][main]:
                best = result  # only one seed's weights and predictions stay in memory (all with keep_all)
            if cfg.keep_all:
                states[seed] = result["state"]
            runs.append({key: v for key, v in result.items() if key not in ("state", "predictions")})
            del result
        (median, mean), (median_be, mean_be) = summarize(runs), summarize(runs, "dev_best_epoch")
        entry = {"lr": lr, "median": median, "mean": mean, "median_best_epoch": median_be,
                 "mean_best_epoch": mean_be, "seeds": runs}
        sweep.append(entry)
        if len(job.lrs) > 1:
            log(f"lr {lr:g}: dev {main} median {median[main]:.2f}, mean {mean[main]:.2f} over {len(runs)} seed(s) "
                f"(final models)")
        if chosen is None or median[main] > chosen["median"][main]:
            chosen, kept = entry, {**best, "all_states": states}
        del best, states
    return sweep, chosen, kept


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
    if task.kind == "sequence" and cfg.head == "official" and labels and 2 * len(labels) > model_cfg.hidden_size:
        raise ElectraError(f"--head official exports to Hugging Face's ElectraForSequenceClassification only with at "
                           f"most hidden/2 = {model_cfg.hidden_size // 2} labels ({len(labels)} here); use --head hf")
    encode_splits(task, data, tokenizer, labels, cfg)
    if cfg.augment:  # K generator-made variants of every training feature (electra/augment.py)
        from electra.augment import augment_train

        data["train_features"] = augment_train(data["train_features"], cfg, tokenizer, task, device, log)
    steps = cfg.epochs * math.ceil(len(data["train_features"]) / cfg.batch_size)
    log(f"task {task.name}: {len(data['train']):,} train examples ({len(data['train_features']):,} features), "
        f"{len(data['dev']):,} dev; labels: {', '.join(map(str, labels)) if labels else task.kind}")
    lrs = cfg.lr if isinstance(cfg.lr, list) else [cfg.lr]
    log(f"model {model_dir}: {model_cfg.num_layers} layers, hidden {model_cfg.hidden_size}; lr "
        f"{', '.join(f'{lr:g}' for lr in lrs)}, layer decay {cfg.layer_decay} "
        f"({'official' if cfg.official_depth else 'ours: head at L+1'} depth), optimizer {cfg.optim}, head "
        f"{cfg.head if task.kind == 'sequence' else task.kind}, batch {cfg.batch_size}, {cfg.epochs} epochs = "
        f"{steps:,} steps ({int(cfg.warmup_fraction * steps):,} warm-up), device {device}")
    return Job(cfg=cfg, task=task, out=out, model_dir=model_dir, tokenizer=tokenizer, device=device,
               pad_id=special_ids(tokenizer)["pad"], data=data, labels=labels, steps=steps, lrs=lrs)


def write_outputs(job: Job, sweep: list[dict], chosen: dict, kept: dict, log=print) -> dict:
    """OUT/ from the saved seed of the chosen lr: model/, predictions.jsonl, submission/, metrics.json, config.json
    (one rename)."""
    from electra.tokenizer import save_tokenizer_folder

    task, data, out = job.task, job.data, job.out
    cfg = dataclasses.replace(job.cfg, lr=chosen["lr"])
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        job.tokenizer.no_truncation()
        job.tokenizer.no_padding()
        tok_dir = save_tokenizer_folder(job.tokenizer, tmp / ".tokenizer")
        model = export_state(job, cfg, kept["seed"], kept["state"], tmp / "model", tok_dir)
        for seed, state in kept["all_states"].items():  # --keep-all: every seed's final (or best-epoch) model
            export_state(job, cfg, seed, state, tmp / "seeds" / str(seed) / "model", tok_dir)
        shutil.rmtree(tok_dir)
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as f:
            for e, p in zip(data["dev"], kept["predictions"]):
                f.write(json.dumps({**task.to_output(e, p), "gold": gold_of(e)}, ensure_ascii=False) + "\n")
        submissions = write_submissions(model, task, data, job.labels, cfg, job.pad_id, job.device, tmp / "submission")
        metrics = {
            "task": task.name, "main_metric": task.main_metric, "protocol": PROTOCOL, "select": cfg.select,
            "lr": chosen["lr"], "dev": kept["dev"], "dev_best_epoch": kept["dev_best_epoch"], "best_seed": kept["seed"],
            **{k: chosen[k] for k in ("median", "mean", "median_best_epoch", "mean_best_epoch", "seeds")},
            "collapsed": [f"seed {r['seed']}: {r['collapsed']}" for r in chosen["seeds"] if r["collapsed"]],
            "lr_sweep": sweep,  # every learning rate tried, with its seeds (one entry without a list)
            "counts": {"train_examples": len(data["train"]), "train_features": len(data["train_features"]),
                       "dev_examples": len(data["dev"]), "steps_per_seed": job.steps},
            "submission": submissions,
            "seed_models": [f"seeds/{seed}/model" for seed in kept["all_states"]],
        }
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        resolved = {**dataclasses.asdict(cfg), "model_dir": str(job.model_dir), "labels": job.labels,
                    "lr_candidates": job.lrs, "train_steps": job.steps,
                    "warmup_steps": int(cfg.warmup_fraction * job.steps)}
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in summary_lines(task.main_metric, sweep, chosen, metrics["collapsed"]):
        log(line)
    log(f"wrote {out} (saved model: seed {kept['seed']}, lr {chosen['lr']:g}, "
        f"{'best dev epoch' if cfg.select == 'best-epoch' else 'final'} weights)")
    return metrics


def export_state(job: Job, cfg: FinetuneConfig, seed: int, state: dict, folder: Path, tok_dir: Path):
    """The TaskModel with `state`, exported to `folder` as an HF ElectraFor* folder + tokenizer + electra_task.json."""
    from electra.hf import export_task_model

    model = init_model(job.model_dir, job.task, job.labels, cfg, seed)
    model.load_state_dict(state)
    if job.task.regression and cfg.target_scale not in (None, 1.0):
        with torch.no_grad():  # trained on targets / scale: the saved model predicts on the task's own scale
            model.head.out.weight.mul_(cfg.target_scale)
            model.head.out.bias.mul_(cfg.target_scale)
    export_task_model(model, folder, tokenizer_dir=tok_dir, labels=job.labels,
                      extra={"electra_task.json": task_metadata(job.task, job.labels, cfg)})
    return model


PROTOCOL = ("dev, median, mean: the final model of each seed, scored once on dev (google-research/electra "
            "run_finetuning.py); dev_best_epoch, median_best_epoch, mean_best_epoch: the best of the per-epoch dev "
            "scores (early-stopping view: a max over epochs, biased up)")


def summary_lines(main: str, sweep: list[dict], chosen: dict, collapsed: list[str]) -> list[str]:
    """The closing lines: every lr's final-model median / mean (the chosen one marked), the early-stopping view
    labelled as such, and the collapse warnings of the chosen lr."""
    lines = []
    for e in sweep:
        mark = " <- chosen (highest final-model dev median)" if e is chosen and len(sweep) > 1 else ""
        lines.append(f"dev {main} (final model): median {e['median'][main]:.2f}, mean {e['mean'][main]:.2f} over "
                     f"{len(e['seeds'])} seed(s) at lr {e['lr']:g}; best epoch (early-stopping view, biased up): "
                     f"median {e['median_best_epoch'][main]:.2f}{mark}")
    lines += [f"warning: {note}" for note in collapsed]
    return lines


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
