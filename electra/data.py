"""Corpus -> packed, memory-mapped token shards, offline; electra/loader.py reads them back.

`electra prepare` streams documents from `electra.readers`, splits paragraphs into sentences, tokenizes them in
batches across `--workers` processes and packs them as google-research/electra's `build_pretraining_dataset.py`
does: consecutive sentences of one document fill `[CLS] A [SEP] B [SEP]` up to the target length; 10% of examples
have a single segment, 5% get a random shorter target length; an example never spans two documents. Whole
documents go to the held-out `valid` split with probability `--valid-fraction`.

    electra prepare --input corpus/ --tokenizer runs/tok --out runs/data --seq-len 128 --workers 2

Output folder (examples unpadded; segment A is everything up to and including the first [SEP]):

    meta.json                       written last: sizes, special ids, counts, tokenizer fingerprint, seed, shard list
    tokenizer/                      a copy of the tokenizer folder (vocab.txt, tokenizer.json, ...)
    {train,valid}-NNNNN.bin         flat token ids, uint16 (uint32 when the vocab has more than 65,536 entries)
    {train,valid}-NNNNN.idx.npy     int64 offsets into the .bin, one more than the examples
    {train,valid}-NNNNN.doc.npy     int64 index of the source document of each example

The run writes into `DIR.tmp-prepare` and renames it to DIR at the end, so an interrupted run never leaves a folder
that looks complete; re-running with the same settings continues after the last finished shard, with other settings
it starts clean. Batches of documents are fixed by the input alone and each has its own random stream
(`seed`, batch number), so the bytes do not depend on the worker count. Memory is bounded by a few batches in flight.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from electra.errors import ElectraError
from electra.files import removed_on_failure, write_json
from electra.loader import FORMAT_VERSION
from electra.readers import FORMATS, ReadStats, expand_inputs, iter_documents, make_converter, split_sentences
from electra.tokenizer import SPECIAL_TOKENS, fingerprint, load_tokenizer, save_tokenizer_folder, special_ids
from electra.tokenizer import vocab_hash

SPLITS = ("train", "valid")


@dataclass(frozen=True)
class PackConfig:
    """Everything that decides the output bytes besides the input and the tokenizer."""

    seq_len: int = 128
    seed: int = 0
    valid_fraction: float = 0.01
    single_segment_prob: float = 0.1  # build_pretraining_dataset.py: "small chance to only have one segment"
    short_target_prob: float = 0.05  # ... "small chance for random-length instead of max_length-length example"
    batch_chars: int = 1 << 20  # documents are grouped into batches of about this many characters
    shard_tokens: int = 1 << 25  # a shard (and a resume point) closes after this many train tokens
    opencc: str | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Packing (runs in the worker processes)

_worker: dict = {}


def _init_worker(tokenizer_json: str, config: PackConfig, in_process: bool = False) -> None:
    from tokenizers import Tokenizer

    if not in_process:  # one thread per worker process: --workers decides the parallelism
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    tok = Tokenizer.from_str(tokenizer_json)
    tok.add_special_tokens([SPECIAL_TOKENS["sep"]])  # the sentence marker below; already in our tokenizers' vocab
    continuation = np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=bool)
    for token, i in tok.get_vocab(with_added_tokens=True).items():
        continuation[i] = token.startswith("##")
    _worker.update(tok=tok, cfg=config, ids=special_ids(tok), convert=make_converter(config.opencc),
                   continuation=continuation)


def _pack_batch(batch_index: int, first_doc: int, docs: list[list[str]]) -> dict:
    """Tokenize one batch of documents and pack it; returns per split flat tokens, example lengths and doc ids."""
    tok, cfg, ids, convert = _worker["tok"], _worker["cfg"], _worker["ids"], _worker["convert"]
    # One sequence per paragraph with " [SEP] " between its sentences, split back on the [SEP] id: the same tokens
    # as encoding each sentence alone (sentences end at punctuation or whitespace, where BERT splits anyway), but
    # far fewer, longer sequences, which the tokenizer encodes faster.
    marker = f" {SPECIAL_TOKENS['sep']} "
    texts = [marker.join(split_sentences(convert(p) if convert else p)) for doc in docs for p in doc]
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False) if texts else []
    sentences, doc_ends, k = [], [], 0
    for doc in docs:
        for e in encodings[k:k + len(doc)]:
            sentences += _split_sentences_on_sep(e.ids, ids)
        k += len(doc)
        doc_ends.append(len(sentences))

    rng = random.Random(f"{cfg.seed}-{batch_index}")  # str seeds hash the same on every platform and run
    piece = cfg.seq_len - 2
    out = {s: ([], [], []) for s in SPLITS}  # tokens, lengths, doc ids
    target = cfg.seq_len
    start = 0
    for d, end in enumerate(doc_ends):
        split = "valid" if rng.random() < cfg.valid_fraction else "train"
        tokens, lengths, doc_ids = out[split]
        current, current_len = [], 0
        for sent in sentences[start:end]:
            for part in _cut(sent, piece) if len(sent) > piece else (sent,):
                current.append(part)
                current_len += len(part)
                if current_len >= target:
                    target = _emit(current, target, cfg, ids, rng, tokens, lengths)
                    doc_ids.append(first_doc + d)
                    current, current_len = [], 0
        if current:  # the end of a document closes the example being built
            target = _emit(current, target, cfg, ids, rng, tokens, lengths)
            doc_ids.append(first_doc + d)
        start = end
    return {split: tuple(np.array(column, dtype=np.int64) for column in columns) for split, columns in out.items()}


def _split_sentences_on_sep(token_ids: list[int], ids: dict) -> list[list[int]]:
    """A paragraph's ids split at [SEP] markers; other special tokens typed literally in the text are dropped."""
    if ids["cls"] in token_ids or ids["mask"] in token_ids or ids["pad"] in token_ids:
        drop = (ids["cls"], ids["mask"], ids["pad"])
        token_ids = [t for t in token_ids if t not in drop]
    sep, out, start = ids["sep"], [], 0
    while True:
        try:
            end = token_ids.index(sep, start)
        except ValueError:
            break
        if end > start:
            out.append(token_ids[start:end])
        start = end + 1
    if start < len(token_ids):
        out.append(token_ids[start:])
    return out


def _cut(sent: list[int], piece: int) -> list[list[int]]:
    """A sentence longer than an example, cut into pieces of at most `piece` tokens at word starts where possible."""
    continuation = _worker["continuation"]
    parts, i = [], 0
    while i < len(sent):
        j = min(i + piece, len(sent))
        if j < len(sent):
            k = j
            while k > i + 1 and continuation[sent[k]]:  # move the cut back to the start of a word
                k -= 1
            j = k if k > i + 1 else j
        parts.append(sent[i:j])
        i = j
    return parts


def _emit(sentences: list[list[int]], target: int, cfg: PackConfig, ids: dict, rng: random.Random,
          tokens: list[int], lengths: list[int]) -> int:
    """`ExampleBuilder._create_example` from build_pretraining_dataset.py; appends one example, returns next target."""
    max_len = cfg.seq_len
    first_target = 100000 if rng.random() < cfg.single_segment_prob else (target - 3) // 2
    first: list[int] = []
    second: list[int] = []
    for sent in sentences:
        # A takes the sentence if A is empty, if it fits, or half the time when it overflows A. Unlike the official
        # loop, once B has started every later sentence goes to B: there, a later short sentence could jump back
        # into A, so a segment's text would skip the sentences between.
        if not second and (not first or len(first) + len(sent) < first_target
                           or (len(first) < first_target and rng.random() < 0.5)):
            first += sent
        else:
            second += sent
    first = first[:max_len - 2]
    second = second[:max(0, max_len - len(first) - 3)]
    example = [ids["cls"], *first, ids["sep"], *second, ids["sep"]] if second else [ids["cls"], *first, ids["sep"]]
    tokens += example
    lengths.append(len(example))
    return rng.randint(5, max_len) if rng.random() < cfg.short_target_prob else max_len


# ---------------------------------------------------------------------------------------------------------------------
# Writing (main process)

def _batches(docs: Iterator[list[str]], batch_chars: int) -> Iterator[tuple[int, int, list[list[str]]]]:
    """(batch index, index of its first document, documents): a fixed grouping that depends on the input only."""
    batch, chars, index, first = [], 0, 0, 0
    for doc in docs:
        batch.append(doc)
        chars += sum(len(p) for p in doc)
        if chars >= batch_chars:
            yield index, first, batch
            index, first, batch, chars = index + 1, first + len(batch), [], 0
    if batch:
        yield index, first, batch


class _ShardWriter:
    """Appends packed batches to the current shard of each split; `close_shard` makes a resume point."""

    def __init__(self, root: Path, dtype: str, progress: dict):
        self.root, self.dtype, self.progress = root, np.dtype(dtype), progress
        self.files = {}
        self.open()

    def _name(self, split: str, suffix: str) -> Path:
        return self.root / f"{split}-{self.shard_no:05d}{suffix}"

    def open(self) -> None:
        self.shard_no = len(self.progress["shards"]["train"])
        for split in SPLITS:
            self.files[split] = (open(self._name(split, ".bin"), "wb"), [np.zeros(1, np.int64)], [])
        self.shard_tokens, self.has_data = 0, False
        self.written = {split: 0 for split in SPLITS}  # tokens in the open shard

    def add(self, packed: dict) -> None:
        for split, (tokens, lengths, doc_ids) in packed.items():
            f, offsets, docs = self.files[split]
            f.write(tokens.astype(self.dtype).tobytes())
            offsets.append(self.written[split] + np.cumsum(lengths))
            self.written[split] += int(lengths.sum())
            docs.append(doc_ids)
            self.has_data |= len(lengths) > 0
            if split == "train":
                self.shard_tokens += len(tokens)

    def close_shard(self, batches_done: int, counts: dict) -> None:
        for split in SPLITS:
            f, offsets, docs = self.files[split]
            f.flush()
            os.fsync(f.fileno())
            f.close()
            offsets = np.concatenate(offsets)
            np.save(self._name(split, ".idx.npy"), offsets)
            np.save(self._name(split, ".doc.npy"), np.concatenate(docs) if docs else np.zeros(0, np.int64))
            self.progress["shards"][split].append({
                "tokens": self._name(split, ".bin").name, "index": self._name(split, ".idx.npy").name,
                "docs": self._name(split, ".doc.npy").name,
                "num_examples": len(offsets) - 1, "num_tokens": int(offsets[-1]),
            })
        self.progress.update(batches_done=batches_done, counts=dict(counts))
        write_json(self.root / "progress.json", self.progress, fsync=True)

    def discard_open(self) -> None:
        for split in SPLITS:
            self.files[split][0].close()
            for suffix in (".bin", ".idx.npy", ".doc.npy"):
                self._name(split, suffix).unlink(missing_ok=True)


def _input_signature(inputs: list[str]) -> list[list]:
    return [[str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)] for p in expand_inputs(inputs)]


def prepare(inputs: list[str], tokenizer: str | os.PathLike, out: str | os.PathLike, config: PackConfig = PackConfig(),
            workers: int = 1, fmt: str = "auto", text_field: str = "text", overwrite: bool = False,
            progress_bar: bool = True) -> dict:
    """Tokenize and pack `inputs` into `out` (see the module docstring); returns meta.json's contents.

    workers > 0 starts processes with "spawn", which re-imports the calling script: call this from under
    `if __name__ == "__main__":` in scripts (the CLI and `python -m` modules are fine).
    """
    out = Path(out)
    _check_request(out, overwrite, config, workers)
    tok = load_tokenizer(tokenizer)
    ids = special_ids(tok)
    make_converter(config.opencc)  # fail now, not in a worker
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    dtype = "uint16" if vocab_size <= 1 << 16 else "uint32"
    signature = {
        "format_version": FORMAT_VERSION, "inputs": _input_signature(inputs), "tokenizer": fingerprint(tok),
        "config": asdict(config), "format": fmt, "text_field": text_field, "dtype": dtype,
    }
    total_bytes = sum(size for _, size, _ in signature["inputs"])

    tmp = out.with_name(out.name + ".tmp-prepare")
    state = _start_tmp(tmp, signature)
    writer = _ShardWriter(tmp, dtype, state)
    counts, done, stats = _pack_all(inputs, tok.to_str(), config, workers, fmt, text_field, writer, total_bytes,
                                    progress_bar)
    for line in stats.warnings():
        print(line, file=sys.stderr)
    if counts["documents"] == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise stats.no_text_error(inputs)
    if writer.has_data or not state["shards"]["train"]:
        writer.close_shard(done, counts)
    else:
        writer.discard_open()

    save_tokenizer_folder(tok, tmp / "tokenizer")
    shards = state["shards"]
    meta = {
        "format_version": FORMAT_VERSION, "vocab_size": vocab_size, "seq_len": config.seq_len,
        **{f"{k}_id": v for k, v in ids.items()},
        "num_train": sum(s["num_examples"] for s in shards["train"]),
        "num_valid": sum(s["num_examples"] for s in shards["valid"]),
        "num_train_tokens": sum(s["num_tokens"] for s in shards["train"]),
        "num_valid_tokens": sum(s["num_tokens"] for s in shards["valid"]),
        "num_documents": counts["documents"], "input_bytes": total_bytes, "seed": config.seed, "dtype": dtype,
        "tokenizer_fingerprint": fingerprint(tok), "tokenizer_vocab": vocab_hash(tok),  # vocab identity (not size)
        "packing": {k: v for k, v in asdict(config).items() if k not in ("seq_len", "seed")},
        "format": fmt, "text_field": text_field,
        "warnings": {k: getattr(stats, k) for k in ("binary_skipped", "replaced", "long_lines", "bad_json")},
        "shards": shards,
    }
    (tmp / "progress.json").unlink()
    write_json(tmp / "meta.json", meta, fsync=True)
    _publish(tmp, out)
    return meta


def _check_request(out: Path, overwrite: bool, config: PackConfig, workers: int) -> None:
    """Refuse a bad request before any work: an existing (or foreign) output folder, a bad length or fraction."""
    if out.exists() and not overwrite:
        raise ElectraError(f"output folder {out} exists; pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())):
        raise ElectraError(f"refusing to overwrite {out}: it is not a prepared data folder (no meta.json)")
    if config.seq_len < 8:
        raise ElectraError(f"--seq-len must be at least 8, got {config.seq_len}")
    if not 0 <= config.valid_fraction < 1:
        raise ElectraError(f"--valid-fraction must be in [0, 1), got {config.valid_fraction}")
    if workers < 0:
        raise ElectraError(f"--workers must be >= 0, got {workers}")


def _start_tmp(tmp: Path, signature: dict) -> dict:
    """The progress of OUT.tmp-prepare: an interrupted run's when its signature (inputs, tokenizer, settings) is
    this one's, else a fresh start in an emptied folder."""
    state = {"signature": signature, "shards": {s: [] for s in SPLITS}, "batches_done": 0, "counts": {}}
    if (tmp / "progress.json").is_file():
        previous = json.loads((tmp / "progress.json").read_text())
        if previous.get("signature") == signature:
            state = previous
            print(f"resuming {tmp}: {len(state['shards']['train'])} shard(s), {state['batches_done']} batches done",
                  file=sys.stderr)
        else:
            print(f"{tmp} holds an interrupted run with other settings; starting clean", file=sys.stderr)
    if state["batches_done"] == 0 and tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    with removed_on_failure(tmp, when=state["batches_done"] == 0):  # a fresh one is not kept on a full disk
        write_json(tmp / "progress.json", state, fsync=True)
    return state


def _pack_all(inputs: list[str], tok_json: str, config: PackConfig, workers: int, fmt: str, text_field: str,
              writer: _ShardWriter, total_bytes: int, progress_bar: bool) -> tuple[dict, int, ReadStats]:
    """Stream the documents in fixed batches, pack each (in `workers` processes, or here with 0) and write them in
    input order, a few batches in flight. Returns the counts, the batches done and the reading stats.
    On any failure the open shard is dropped (finished shards are the resume point); bad input drops all."""
    from tqdm import tqdm

    state = writer.progress
    counts, done, stats = {"documents": 0, **state["counts"]}, state["batches_done"], ReadStats()
    pool = _start_pool(tok_json, config, workers)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare", file=sys.stderr, mininterval=1.0,
               disable=not progress_bar, smoothing=0.1)
    pending: deque = deque()  # (batch index, future or packed batch), in input order
    try:
        docs = iter_documents(inputs, fmt=fmt, text_field=text_field, stats=stats)
        for index, first_doc, batch in _batches(docs, config.batch_chars):
            counts["documents"] = first_doc + len(batch)
            bar.update(stats.disk_bytes - bar.n)
            if index < state["batches_done"]:
                continue
            pending.append((index, pool.submit(_pack_batch, index, first_doc, batch) if pool
                            else _pack_batch(index, first_doc, batch)))
            while len(pending) > 2 * max(workers, 1) or (not pool and pending):
                done = _write_next(pending, writer, pool is not None, counts, config.shard_tokens)
        while pending:
            done = _write_next(pending, writer, pool is not None, counts, config.shard_tokens)
        bar.update(stats.disk_bytes - bar.n)
    except BaseException as e:
        writer.discard_open()  # keep only finished shards: the resume point
        if isinstance(e, ElectraError):  # bad input: re-running cannot resume past it, and fixing it starts clean
            shutil.rmtree(writer.root, ignore_errors=True)
        raise
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    return counts, done, stats


def _start_pool(tok_json: str, config: PackConfig, workers: int):
    """A "spawn" process pool of packing workers, or None with the packer set up in this process (workers=0)."""
    if workers == 0:
        _init_worker(tok_json, config, in_process=True)
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(tok_json, config))


def _write_next(pending: deque, writer: _ShardWriter, pooled: bool, counts: dict, shard_tokens: int) -> int:
    """Write the oldest batch in flight; once the shard holds `shard_tokens` train tokens, close it (a resume
    point). Returns the batches done."""
    index, packed = pending.popleft()
    writer.add(packed.result() if pooled else packed)
    if writer.shard_tokens >= shard_tokens:
        writer.close_shard(index + 1, counts)
        writer.open()
    return index + 1


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished OUT.tmp-prepare to OUT (replacing an old prepared folder only once the new one is whole)."""
    if out.exists():
        old = out.with_name(out.name + ".old-prepare")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Tokenize a corpus and pack it into memory-mapped pretraining shards, as "
                          "google-research/electra's build_pretraining_dataset.py packs examples.")
    parser.add_argument("--input", nargs="+", required=True, metavar="PATH",
                        help="text/JSONL/WikiExtractor files, .gz, folders, globs or tar archives")
    parser.add_argument("--tokenizer", required=True, metavar="DIR", help="tokenizer folder or vocab.txt")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (refused if it exists)")
    parser.add_argument("--seq-len", type=int, default=128, metavar="N", help="tokens per example incl. specials (128)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                        help="tokenizer processes; 0 tokenizes in the main process (default: min(4, CPUs))")
    parser.add_argument("--seed", type=int, default=0, help="packing and valid-split randomness (0)")
    parser.add_argument("--valid-fraction", type=float, default=0.01, metavar="F",
                        help="fraction of documents held out for the valid split (0.01)")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="input format (auto: sniff each file)")
    parser.add_argument("--text-field", default="text", help="JSONL field holding the text (text)")
    parser.add_argument("--opencc", metavar="CONFIG", help="OpenCC conversion applied first, e.g. t2s for Chinese")
    parser.add_argument("--shard-tokens", type=int, default=PackConfig.shard_tokens, metavar="N",
                        help=f"train tokens per shard, also the resume granularity ({PackConfig.shard_tokens:,})")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it is a prepared folder")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = PackConfig(seq_len=args.seq_len, seed=args.seed, valid_fraction=args.valid_fraction,
                        shard_tokens=args.shard_tokens, opencc=args.opencc)
    meta = prepare(args.input, args.tokenizer, args.out, config, workers=args.workers, fmt=args.format,
                   text_field=args.text_field, overwrite=args.overwrite, progress_bar=args.progress)
    print(f"wrote {args.out}: {meta['num_train']:,} train / {meta['num_valid']:,} valid examples, "
          f"{meta['num_train_tokens']:,} train tokens from {meta['num_documents']:,} documents")
    return 0
