"""`make demo` (= `python -m electra.demo`): the main job end to end, about 5-10 minutes on a 2-core CPU.

    python -m electra.demo                 # data -> tokenizer -> prepare -> pretrain -> fine-tune SST-2 -> report
    python -m electra.demo --minutes 10    # pretrain for about 10 minutes (default 5)
    python -m electra.demo --steps 300     # a fixed number of steps

1. Data: the first 8 MB of the English Wikipedia sample in ../shared/data (or $ELECTRA_SHARED_DATA) and GLUE SST-2
   from the same folder. Without it, WikiText-103 and SST-2 are downloaded through `datasets` when that package and
   the network are there; otherwise the demo says exactly which files to provide.
2. A WordPiece tokenizer (8,000 entries) trained on that text and the packed data (seq 128) are cached under
   .cache/demo/, so a second run starts at pretraining.
3. Pretraining with configs/demo.toml (a tiny ELECTRA on CPU, as many steps as fit in --minutes after timing 10; on
   a CUDA machine the Small preset with batch 128, 4,000 steps), printing a table of loss, generator accuracy and
   discriminator accuracy as it goes, into runs/demo/.
4. Fine-tuning of the pretrained discriminator on 4,000 SST-2 examples (when electra.finetune is installed), then
   the dev accuracy and where the report is.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

from electra.errors import ElectraError
from electra.sources import REPO_ROOT, extract_corpus_slice, shared_data_dir

CACHE = REPO_ROOT / ".cache" / "demo"
SLICE_BYTES = 8 << 20
VOCAB_SIZE = 8000
SEQ_LEN = 128
WIKITEXT_LINES = 60_000  # about 8 MB of WikiText-103 when downloading
MIN_STEPS, MAX_STEPS = 300, 3000  # more steps give the discriminator time to leave its majority-class plateau


def _download(cache: Path) -> tuple[Path, Path]:
    """WikiText-103 (a slice) and SST-2 through `datasets`, written as a text file and GLUE-format TSVs."""
    corpus, sst2 = cache / "wikitext-103" / "wiki.txt", cache / "SST-2"
    if corpus.is_file() and (sst2 / "dev.tsv").is_file():
        return corpus.parent, sst2
    try:
        import datasets
    except ImportError:
        raise ElectraError(_MISSING + " (or `pip install datasets` on a machine with network access)") from None
    try:
        wiki = datasets.load_dataset("wikitext", "wikitext-103-raw-v1", split="train")
        glue = datasets.load_dataset("glue", "sst2")
    except Exception as e:  # no network, hub errors: all mean the same to the user here
        raise ElectraError(f"{_MISSING} (downloading through `datasets` failed: {type(e).__name__})") from None
    corpus.parent.mkdir(parents=True, exist_ok=True)
    lines = (x["text"].strip() for x in wiki.select(range(min(WIKITEXT_LINES, len(wiki)))))
    corpus.write_text("\n".join(x for x in lines if x and not x.startswith("=")) + "\n", encoding="utf-8")
    sst2.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
        rows = "".join(f"{r['sentence'].strip()}\t{r['label']}\n" for r in glue[split])
        (sst2 / name).write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return corpus.parent, sst2


_MISSING = ("no demo data: provide the shared data folder (../shared/data next to the repo, or set "
            "ELECTRA_SHARED_DATA) with corpus/enwiki-2015-sample.tar.gz and glue/SST-2/{train,dev}.tsv")


def find_data(cache: Path = CACHE) -> tuple[Path, Path | None]:
    """(corpus folder, SST-2 folder or None)."""
    shared = shared_data_dir()
    if shared is not None and (shared / "corpus/enwiki-2015-sample.tar.gz").is_file():
        corpus = extract_corpus_slice(shared / "corpus/enwiki-2015-sample.tar.gz", cache / "enwiki-8mb", SLICE_BYTES)
        sst2 = shared / "glue" / "SST-2"
        return corpus, sst2 if (sst2 / "dev.tsv").is_file() else None
    return _download(cache)


def tokenizer_and_data(corpus: Path, cache: Path = CACHE) -> Path:
    """Train (or reuse) the tokenizer and prepare (or reuse) the packed data; returns the prepared folder."""
    from electra.data import PackConfig, prepare
    from electra.tokenizer import save_tokenizer_folder, train_tokenizer

    tok_dir, data_dir = cache / "tokenizer", cache / f"data-{SEQ_LEN}"
    if not (tok_dir / "tokenizer.json").is_file():
        print(f"[demo] training a {VOCAB_SIZE:,}-entry WordPiece tokenizer on {corpus}", flush=True)
        tmp = cache / "tokenizer.tmp"
        save_tokenizer_folder(train_tokenizer([corpus], vocab_size=VOCAB_SIZE), tmp)
        tmp.rename(tok_dir)
    else:
        print(f"[demo] reusing the tokenizer in {tok_dir}", flush=True)
    if not (data_dir / "meta.json").is_file():
        print(f"[demo] packing {corpus} into {data_dir} (seq {SEQ_LEN})", flush=True)
        prepare([corpus], tok_dir, data_dir, PackConfig(seq_len=SEQ_LEN, seed=0, valid_fraction=0.02), workers=2,
                progress_bar=True)
    else:
        print(f"[demo] reusing the prepared data in {data_dir}", flush=True)
    return data_dir


def pretrain_overrides(data_dir: Path, out: Path, steps: int | None, cuda: bool) -> list[str]:
    overrides = [f"--data.dir={data_dir}", f"--run.out={out}"]
    if cuda:  # a GPU trains the paper's Small model in the same minutes
        overrides += ["--model.preset=small", "--model.hidden_size=256", "--model.num_heads=4",
                      "--model.intermediate_size=1024", "--model.embedding_size=128", "--model.num_layers=12",
                      "--model.generator_hidden_fraction=0.25", "--data.batch_size=128", "--optim.lr=5e-4",
                      "--train.device=auto", "--train.steps=4000", "--optim.warmup_steps=400",
                      "--train.eval_every=1000", "--train.checkpoint_every=1000", "--train.log_every=200"]
    if steps is not None:
        overrides += [f"--train.steps={steps}", f"--train.log_every={max(1, steps // 12)}",
                      f"--train.eval_every={max(1, steps // 3)}", f"--train.checkpoint_every={max(1, steps // 3)}",
                      f"--optim.warmup_steps={max(1, steps // 12)}"]
    return overrides


def calibrate_steps(data_dir: Path, out: Path, minutes: float) -> int:
    """Steps of configs/demo.toml that fit in `minutes` on this machine, from a 10-step run (start-up excluded)."""
    from electra.pretrain import load_pretrain_config, pretrain

    probe = out.with_name(out.name + ".calibrate")
    cfg = load_pretrain_config(REPO_ROOT / "configs" / "demo.toml", [
        f"--data.dir={data_dir}", f"--run.out={probe}", "--train.steps=12", "--train.log_every=2",
        "--train.eval_every=0", "--train.checkpoint_every=0", "--run.progress=false", "--run.report=false",
        "--run.export=false", "--run.tensorboard=false"])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        pretrain(cfg, overwrite=True)
    records = [json.loads(x) for x in (probe / "metrics.jsonl").read_text().splitlines()]
    elapsed = {r["step"]: r["elapsed_s"] for r in records if r["kind"] == "train"}
    per_step = (elapsed[12] - elapsed[2]) / 10  # the first 2 steps carry one-off costs
    shutil.rmtree(probe, ignore_errors=True)
    steps = int(min(MAX_STEPS, max(MIN_STEPS, minutes * 60 / per_step)) // 100 * 100)
    print(f"[demo] {per_step:.2f} s per step here: {steps:,} steps fit in about {minutes:g} minutes", flush=True)
    return steps


def finetune_sst2(disc_dir: Path, sst2: Path, out: Path, examples: int, epochs: int) -> dict | None:
    if importlib.util.find_spec("electra.finetune") is None:
        print("[demo] fine-tuning is skipped: electra.finetune is not installed in this checkout", flush=True)
        return None
    from electra.cli import main

    print(f"[demo] fine-tuning the discriminator on {examples:,} SST-2 examples", flush=True)
    code = main(["finetune", "--task", "sst2", "--model", str(disc_dir), "--data", str(sst2), "--out", str(out),
                 "--max-train-examples", str(examples), "--epochs", str(epochs), "--overwrite"])
    if code != 0:
        raise ElectraError(f"fine-tuning SST-2 failed (exit {code}); see the message above")
    return json.loads((out / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m electra.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="pretraining steps (default: as many as fit in --minutes, measured on 10 steps, "
                             f"between {MIN_STEPS} and {MAX_STEPS}; 4000 on CUDA)")
    parser.add_argument("--minutes", type=float, default=5.0, help="pretraining time budget on CPU (default: 5)")
    parser.add_argument("--out", default=str(REPO_ROOT / "runs" / "demo"), help="run folder (default: runs/demo)")
    parser.add_argument("--finetune-examples", type=int, default=4000, help="SST-2 training examples (4000)")
    parser.add_argument("--finetune-epochs", type=int, default=2, help="SST-2 epochs (2)")
    args = parser.parse_args(argv)
    try:
        import torch

        from electra.pretrain import load_pretrain_config, pretrain

        started = time.perf_counter()
        cores = os.cpu_count() or 1
        if hasattr(os, "getloadavg") and os.getloadavg()[0] > cores:
            # Other work already fills the cores: several torch threads would spin against it and run many times
            # slower than one.
            print(f"[demo] the machine is busy (load {os.getloadavg()[0]:.1f} on {cores} cores): using 1 thread",
                  flush=True)
            torch.set_num_threads(1)
        corpus, sst2 = find_data()
        data_dir = tokenizer_and_data(corpus)
        out = Path(args.out)
        cuda = torch.cuda.is_available()
        steps = args.steps
        if steps is None and not cuda:
            steps = calibrate_steps(data_dir, out, args.minutes)
        cfg = load_pretrain_config(REPO_ROOT / "configs" / "demo.toml",
                                   pretrain_overrides(data_dir, out, steps, cuda))
        print(f"[demo] pretraining ({cfg.model['preset']} preset, {cfg.train.steps:,} steps) into {out}", flush=True)
        result = pretrain(cfg, overwrite=True)
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in records if r["kind"] == "train"]
        first, last, ev = train[0], train[-1], result.get("eval") or {}
        print(f"[demo] pretraining: loss {first['loss']:.2f} -> {last['loss']:.2f}, generator accuracy "
              f"{first['mlm_acc']:.1%} -> {last['mlm_acc']:.1%}, discriminator accuracy {first['rtd_acc']:.1%} -> "
              f"{last['rtd_acc']:.1%}; held-out: generator {ev.get('eval_mlm_acc', float('nan')):.1%}, "
              f"discriminator {ev.get('eval_rtd_acc', float('nan')):.1%}, AUC {ev.get('eval_rtd_auc') or 0:.3f}",
              flush=True)
        if sst2 is None:
            print("[demo] fine-tuning is skipped: no SST-2 folder found", flush=True)
        else:
            metrics = finetune_sst2(out / "hf" / "discriminator", sst2, out / "finetune-sst2",
                                    args.finetune_examples, args.finetune_epochs)
            if metrics is not None:
                dev = metrics.get("dev", {})
                shown = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in dev.items())
                print(f"[demo] SST-2 dev: {shown}", flush=True)
        print(f"[demo] done in {(time.perf_counter() - started) / 60:.1f} min. Report: {result.get('report')}; "
              f"Hugging Face folders: {out / 'hf'}", flush=True)
        return 0
    except ElectraError as e:
        print(f"electra demo: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
