"""Benchmark `electra prepare` against the raw `tokenizers` encode_batch on the same text, measured in the same run.

On the English Wikipedia sample (411 MB raw, extracted once into .cache/slices) with the BERT uncased vocab:

  1. reference: `Tokenizer.encode_batch` over the same paragraphs, one thread (TOKENIZERS_PARALLELISM=false), timing
     only the encode calls (reading is not charged to it);
  2. `electra prepare --seq-len 128` for each `--workers` count, as a subprocess: MB/s of raw input per worker
     (wall clock), MB per CPU-second of the whole process tree (reader + workers; robust to a busy machine), and
     peak RSS of the process tree (sampled every 0.2 s); ratios are against the reference of step 1;
  3. the same on a `--small-mb` prefix of the corpus, to show that peak RSS does not grow with the input.

    .venv/bin/python benchmarks/prepare.py                      # full run (many minutes on 2 cores)
    .venv/bin/python benchmarks/prepare.py --max-mb 20 --small-mb 5   # a quick smoke run
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from electra.readers import iter_documents  # noqa: E402
from electra.sources import extract_corpus_slice, shared_data_dir  # noqa: E402
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab  # noqa: E402


def corpus_slice(mb: int | None) -> tuple[Path, int]:
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data is absent (set $ELECTRA_SHARED_DATA)")
    name = f"enwiki-{mb}mb" if mb else "enwiki-full"
    folder = extract_corpus_slice(data / "corpus/enwiki-2015-sample.tar.gz", REPO / ".cache/slices" / name,
                                  (mb << 20) if mb else 1 << 40)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return folder, size


def reference(folder: Path, tok_dir: Path) -> tuple[float, float]:
    """(wall, CPU) seconds spent in single-threaded encode_batch over every paragraph of the corpus."""
    from electra.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    wall = cpu = 0.0
    batch: list[str] = []
    for doc in iter_documents([folder]):
        batch += doc
        if len(batch) >= 2000:
            t, c = time.perf_counter(), time.process_time()
            tok.encode_batch(batch)
            wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
            batch = []
    t, c = time.perf_counter(), time.process_time()
    tok.encode_batch(batch)
    return wall + time.perf_counter() - t, cpu + time.process_time() - c


def run_prepare(folder: Path, tok_dir: Path, out: Path, workers: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the whole process tree, peak RSS bytes of the tree) for one prepare run."""
    cmd = [sys.executable, "-m", "electra", "prepare", "--input", str(folder), "--tokenizer", str(tok_dir),
           "--out", str(out), "--seq-len", "128", "--workers", str(workers), "--overwrite"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=REPO)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # includes the workers, reaped by prepare
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (1 2)")
    parser.add_argument("--max-mb", type=int, default=None, help="use only a prefix of the corpus (default: all)")
    parser.add_argument("--small-mb", type=int, default=40, help="the small input for the RSS comparison (40)")
    args = parser.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    big, big_bytes = corpus_slice(args.max_mb)
    small, small_bytes = corpus_slice(args.small_mb)
    tmp = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        tok_dir = save_tokenizer_folder(tokenizer_from_vocab(shared_data_dir() / "vocab/bert-base-uncased.txt"),
                                        tmp / "tok")
        print(f"input: {big} ({big_bytes / 1e6:.1f} MB raw); tokenizer: bert-base-uncased vocab; "
              f"{os.cpu_count()} CPUs", flush=True)
        ref_wall, ref_cpu = reference(big, tok_dir)
        ref, ref_per_cpu = big_bytes / 1e6 / ref_wall, big_bytes / 1e6 / ref_cpu
        print(f"reference  encode_batch, 1 thread, {big_bytes / 1e6:.1f} MB: wall {ref_wall:6.1f} s = {ref:5.2f} MB/s;"
              f" CPU {ref_cpu:6.1f} s = {ref_per_cpu:5.2f} MB per CPU-second", flush=True)
        for workers in args.workers:
            for folder, size in ((big, big_bytes), (small, small_bytes)):
                wall, cpu, peak = run_prepare(folder, tok_dir, tmp / "out", workers)
                per = size / 1e6 / wall / max(workers, 1)
                per_cpu = size / 1e6 / cpu
                print(f"prepare    workers={workers}, {size / 1e6:.1f} MB: wall {wall:6.1f} s = {per:5.2f} MB/s per worker "
                      f"({per / ref:4.0%} of reference); CPU {cpu:6.1f} s = {per_cpu:5.2f} MB per CPU-second "
                      f"({per_cpu / ref_per_cpu:4.0%} of reference); peak RSS {peak / 2**30:.2f} GiB", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
