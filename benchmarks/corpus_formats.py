"""Peak memory of reading a corpus as Parquet next to the same text as a .txt file, measured in the same run.

The English Wikipedia sample (411 MB raw, extracted once into .cache/slices/enwiki-full) is written as one .txt
(paragraph per line, blank line between documents) and as Parquet (one row per document, column `text`, snappy):
once as a single row group (pyarrow's default for this many rows: the worst case for memory) and once with row
groups of `--row-group-rows` rows. Each file is then read in a subprocess, measured as benchmarks/prepare.py
measures (peak RSS of the process tree sampled every 0.2 s; CPU seconds from RUSAGE_CHILDREN):

  1. the reader alone: every document of `electra.readers.iter_documents` (what `tokenizer train` and `prepare`
     consume), on the whole corpus and on a `--prepare-mb` prefix (flat memory: both peaks alike);
  2. `electra prepare --workers 1 --seq-len 128` on a `--prepare-mb` prefix of the documents, as .txt and Parquet
     (prepare on the whole corpus costs about 4 CPU-minutes per run, see the prepare benchmark).

    .venv/bin/python benchmarks/corpus_formats.py                          # about 3-4 CPU-minutes on 2 cores
    .venv/bin/python benchmarks/corpus_formats.py --max-mb 20 --prepare-mb 2   # a quick smoke run
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from electra.readers import iter_documents  # noqa: E402
from electra.sources import extract_corpus_slice, shared_data_dir  # noqa: E402
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab  # noqa: E402

READ = ("from electra.readers import iter_documents\n"
        "n = c = 0\n"
        "for doc in iter_documents([{path!r}]):\n"
        "    n += 1; c += sum(map(len, doc))\n"
        "print(n, c)\n")


def measure(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the process tree, peak RSS bytes of the tree, stdout) for one subprocess."""
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True,
                        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t
    out = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, peak, out


def write_formats(folder: Path, out: Path, max_bytes: int | None, row_group_rows: int) -> dict[str, Path]:
    """The corpus as .txt, one-row-group Parquet and `row_group_rows`-row Parquet (reused when already written)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {"txt": out / "corpus.txt", "parquet, 1 row group": out / "corpus-1rg.parquet",
             f"parquet, {row_group_rows:,}-row groups": out / f"corpus-{row_group_rows}.parquet"}
    if all(p.is_file() for p in files.values()):
        return files
    out.mkdir(parents=True, exist_ok=True)
    texts, size = [], 0
    with open(files["txt"], "w", encoding="utf-8") as f:
        for doc in iter_documents([folder]):
            text = "\n".join(doc)
            f.write(text + "\n\n")
            texts.append(text)
            size += len(text.encode()) + 2
            if max_bytes and size >= max_bytes:
                break
    table = pa.table({"text": texts})
    pq.write_table(table, files["parquet, 1 row group"], row_group_size=len(texts))
    pq.write_table(table, list(files.values())[2], row_group_size=row_group_rows)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mb", type=int, default=None, help="use only a prefix of the corpus (default: all)")
    parser.add_argument("--prepare-mb", type=int, default=40, help="prefix for the prepare comparison (40)")
    parser.add_argument("--row-group-rows", type=int, default=1000, help="rows per group of the second Parquet (1000)")
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data is absent (set $ELECTRA_SHARED_DATA)")
    tarball = data / "corpus/enwiki-2015-sample.tar.gz"
    name = f"enwiki-{args.max_mb}mb" if args.max_mb else "enwiki-full"
    folder = extract_corpus_slice(tarball, REPO / ".cache/slices" / name,
                                  (args.max_mb << 20) if args.max_mb else 1 << 40)
    cache = REPO / ".cache/formats"
    big = write_formats(folder, cache / name, None, args.row_group_rows)
    small = write_formats(folder, cache / f"{name}-prefix-{args.prepare_mb}mb", args.prepare_mb << 20,
                          args.row_group_rows)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; corpus {folder}", flush=True)
    for label, path in list(big.items()) + list(small.items()):
        wall, cpu, peak, out = measure([sys.executable, "-c", READ.format(path=str(path))])
        docs, chars = out.split()
        print(f"read     {label:28s} {path.stat().st_size / 1e6:7.1f} MB: {int(docs):,} docs, {int(chars) / 1e6:.1f} M "
              f"chars; wall {wall:6.1f} s, CPU {cpu:6.1f} s, peak RSS {peak / 2**20:6.0f} MiB", flush=True)
    tok = save_tokenizer_folder(tokenizer_from_vocab(data / "vocab/bert-base-uncased.txt"), cache / "tok-bert-uncased")
    for label, path in list(small.items())[:2]:
        target = cache / "prepared"
        wall, cpu, peak, _ = measure([sys.executable, "-m", "electra", "prepare", "--input", str(path), "--tokenizer",
                                      str(tok), "--out", str(target), "--seq-len", "128", "--workers", "1",
                                      "--overwrite", "--no-progress"])
        print(f"prepare  {label:28s} {path.stat().st_size / 1e6:7.1f} MB: wall {wall:6.1f} s, CPU {cpu:6.1f} s, "
              f"peak RSS {peak / 2**20:6.0f} MiB", flush=True)
        shutil.rmtree(target, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
