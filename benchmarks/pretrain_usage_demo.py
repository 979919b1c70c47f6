"""Pretrain a small ELECTRA on a Wikipedia slice for a fixed number of minutes, for the `fill-mask` / `detect` /
`infill` demonstrations in docs/USAGE.md and for `benchmarks/infill_eval.py`. No pretrained ELECTRA is available
offline here, so the usage docs need a model trained on this machine; on CPU it will be weak, and the docs say so.

    .venv/bin/python benchmarks/pretrain_usage_demo.py --minutes 25 --out runs/usage-demo

The data pipeline is the project's own (`electra tokenizer import` of the BERT uncased vocab, `electra prepare` on
the first 8 MB of the English Wikipedia sample); the objective is `electra.objectives.build_objective`; the loop is a
plain AdamW loop with the official warm-up + linear decay (`electra.optim`). The model: discriminator 4 layers,
hidden 128, 4 heads, FFN 512, embedding 128; generator at 1/2 width (the paper finds 1/4-1/2 best). Output:
`OUT/hf/discriminator` and `OUT/hf/generator` (HF folders with the tokenizer). Articles past the first 8 MB of the
sample are never seen in training; `infill_eval.py` takes its held-out sentences from there.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from electra.config import preset
from electra.data import PackConfig, prepare
from electra.hf import export_pretraining, load_task_model
from electra.loader import PretrainLoader
from electra.objectives import build_objective
from electra.optim import build_optimizer, clip_grad_norm, linear_schedule, param_groups, set_lr
from electra.sources import REPO_ROOT, extract_corpus_slice, shared_data_dir
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab

TRAIN_SLICE_BYTES = 8 << 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/usage-demo", help="output folder (runs/usage-demo)")
    ap.add_argument("--minutes", type=float, default=25.0, help="wall-clock training budget in minutes (25)")
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per step (32)")
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (128)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (1e-3)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the dev box is shared)")
    ap.add_argument("--init", metavar="HF_DIR", help="continue from an earlier run's export (HF_DIR/discriminator "
                    "and HF_DIR/generator); the optimizer and schedule start afresh (default: random init)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    data_root = shared_data_dir()
    if data_root is None:
        raise SystemExit("../shared/data is absent (set $ELECTRA_SHARED_DATA)")

    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        save_tokenizer_folder(tokenizer_from_vocab(data_root / "vocab/bert-base-uncased.txt"), tok_dir)
    data_dir = out / "data"
    if not (data_dir / "meta.json").is_file():
        corpus = extract_corpus_slice(data_root / "corpus/enwiki-2015-sample.tar.gz",
                                      REPO_ROOT / ".cache/slices/enwiki-8mb", TRAIN_SLICE_BYTES)
        prepare([str(corpus)], tok_dir, data_dir, PackConfig(seq_len=args.seq_len, seed=0, valid_fraction=0.01),
                workers=0, progress_bar=False)
    loader = PretrainLoader(data_dir, batch_size=args.batch_size, seed=0, fixed_length=True)
    meta = loader.meta
    specials = {"pad": meta["pad_id"], "cls": meta["cls_id"], "sep": meta["sep_id"], "mask": meta["mask_id"]}

    cfg = preset("small", vocab_size=meta["vocab_size"], num_layers=4, hidden_size=128, embedding_size=128,
                 num_heads=4, intermediate_size=512, generator_hidden_fraction=0.5,
                 max_position_embeddings=max(128, args.seq_len))
    model = build_objective(cfg, specials)
    if args.init:
        init_from_export(model, Path(args.init))
    model.train()
    budget = args.minutes * 60
    # The official schedule (linear warm-up over the first 10% overlapped with linear decay to 0), on wall-clock
    # progress instead of steps, since the run stops on the clock.
    schedule = linear_schedule(warmup=100, total=1000)
    opt = build_optimizer(param_groups(model, lr=args.lr, weight_decay=0.01), lr=args.lr, eps=1e-6)
    start, step, log = time.time(), 0, []
    for batch in loader:
        set_lr(opt, args.lr, schedule(min(999, int(1000 * (time.time() - start) / budget)) + 1))
        outputs = model(**batch)
        opt.zero_grad(set_to_none=True)
        outputs["loss"].backward()
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            row = {"step": step, "minutes": round((time.time() - start) / 60, 2),
                   **{k: round(float(outputs[k].detach()), 4) for k in ("loss", "mlm_loss", "rtd_loss", "mlm_acc", "rtd_acc",
                                                                "rtd_precision", "rtd_recall")}}
            log.append(row)
            print(json.dumps(row), flush=True)
        if time.time() - start > budget:
            break
    model.eval()
    folders = export_pretraining(model, out / "hf", tokenizer_dir=tok_dir, overwrite=True)
    (out / "train_log.json").write_text(json.dumps({"steps": step, "minutes": round((time.time() - start) / 60, 2),
                                                    "config": cfg.to_dict(), "log": log}, indent=1) + "\n")
    written = ", ".join(map(str, folders.values()))
    print(f"trained {step} steps in {(time.time() - start) / 60:.1f} min; wrote {written}")


def init_from_export(model, hf_dir: Path) -> None:
    """Copy an exported discriminator + generator pair back into an Electra objective (embeddings are one tensor,
    taken from the discriminator folder)."""
    disc = load_task_model(hf_dir / "discriminator", kind="pretraining")
    gen = load_task_model(hf_dir / "generator", kind="masked-lm")
    model.discriminator.load_state_dict(disc.encoder.state_dict())
    model.discriminator_head.load_state_dict(disc.head.state_dict())
    model.generator.load_state_dict({k: v for k, v in gen.encoder.state_dict().items()
                                     if not k.startswith("embeddings.")}, strict=False)
    model.generator_head.load_state_dict(gen.head.state_dict())


if __name__ == "__main__":
    main()
