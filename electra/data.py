"""Corpus -> packed, memory-mapped token shards (offline), and the trivial resumable, rank-strided loader that reads them.

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

`PretrainLoader(dir, batch_size=32, rank=r, world_size=w, seed=s)` yields padded torch batches, shuffled per epoch
from `seed + epoch`, rank-strided, with `state_dict()` / `load_state_dict()` to resume at the next example.
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
from electra.readers import FORMATS, ReadStats, expand_inputs, iter_documents, make_converter, split_sentences
from electra.tokenizer import SPECIAL_TOKENS, fingerprint, load_tokenizer, save_tokenizer_folder, special_ids

FORMAT_VERSION = 1
SPLITS = ("train", "valid")
META_KEYS = ("format_version", "vocab_size", "seq_len", "pad_id", "unk_id", "cls_id", "sep_id", "mask_id",
             "num_train", "num_valid", "num_train_tokens", "tokenizer_fingerprint", "seed", "dtype", "shards")


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


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


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
        _write_json(self.root / "progress.json", self.progress)

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
    from tqdm import tqdm

    out = Path(out)
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
    _write_json(tmp / "progress.json", state)

    counts = {"documents": 0, **state["counts"]}
    done = [state["batches_done"]]  # batches written so far
    stats = ReadStats()
    writer = _ShardWriter(tmp, dtype, state)
    tok_json = tok.to_str()
    pool = None
    if workers == 0:
        _init_worker(tok_json, config, in_process=True)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(tok_json, config))
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare", file=sys.stderr, mininterval=1.0,
               disable=not progress_bar, smoothing=0.1)
    pending: deque = deque()

    def write_one() -> None:
        index, future = pending.popleft()
        writer.add(future.result() if pool else future)
        done[0] = index + 1
        if writer.shard_tokens >= config.shard_tokens:
            writer.close_shard(done[0], counts)
            writer.open()

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
                write_one()
        while pending:
            write_one()
        bar.update(stats.disk_bytes - bar.n)
    except BaseException as e:
        writer.discard_open()  # keep only finished shards: the resume point
        if isinstance(e, ElectraError):  # bad input: re-running cannot resume past it, and fixing it starts clean
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)

    for line in stats.warnings():
        print(line, file=sys.stderr)
    if counts["documents"] == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise stats.no_text_error(inputs)
    if writer.has_data or not state["shards"]["train"]:
        writer.close_shard(done[0], counts)
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
        "num_documents": counts["documents"], "input_bytes": total_bytes,
        "tokenizer_fingerprint": fingerprint(tok), "seed": config.seed, "dtype": dtype,
        "packing": {k: v for k, v in asdict(config).items() if k not in ("seq_len", "seed")},
        "format": fmt, "text_field": text_field,
        "warnings": {k: getattr(stats, k) for k in ("binary_skipped", "replaced", "long_lines", "bad_json")},
        "shards": shards,
    }
    (tmp / "progress.json").unlink()
    _write_json(tmp / "meta.json", meta)
    if out.exists():
        old = out.with_name(out.name + ".old-prepare")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return meta


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


# ---------------------------------------------------------------------------------------------------------------------
# Reading

class PretrainDataset:
    """The examples of one split of a prepared folder; `example(i)` is a 1-D int64 array of token ids."""

    def __init__(self, data_dir: str | os.PathLike, split: str = "train"):
        self.dir = Path(data_dir)
        meta_path = self.dir / "meta.json"
        if not meta_path.is_file():
            hint = " (an interrupted `electra prepare`? re-run it)" if self.dir.with_name(
                self.dir.name + ".tmp-prepare").exists() else ""
            raise ElectraError(f"{self.dir} is not a prepared data folder: no meta.json{hint}")
        try:
            self.meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise ElectraError(f"{meta_path} is not valid JSON ({e})") from None
        missing = [k for k in META_KEYS if k not in self.meta]
        if missing:
            raise ElectraError(f"{meta_path} is incomplete: missing {', '.join(missing)}")
        if self.meta["format_version"] != FORMAT_VERSION:
            raise ElectraError(f"{meta_path} has format_version {self.meta['format_version']}; this electra reads "
                               f"{FORMAT_VERSION}: re-run `electra prepare`")
        if split not in self.meta["shards"]:
            raise ElectraError(f"{self.dir} has no split '{split}' (has {', '.join(self.meta['shards'])})")
        self.split = split
        self.tokens, self.offsets = [], []
        for shard in self.meta["shards"][split]:
            if shard["num_examples"] == 0:
                continue
            paths = [self.dir / shard[k] for k in ("tokens", "index")]
            for p in paths:
                if not p.is_file():
                    raise ElectraError(f"{self.dir} is incomplete: {p.name} is missing")
            try:  # allow_pickle stays False: an index holding pickled objects is refused, never run
                offsets = np.load(paths[1])
            except (ValueError, OSError, EOFError) as e:
                raise ElectraError(f"{paths[1]} is not a valid index file ({str(e).splitlines()[0]})") from None
            tokens = np.memmap(paths[0], dtype=self.meta["dtype"], mode="r")
            if len(offsets) != shard["num_examples"] + 1 or len(tokens) != offsets[-1]:
                raise ElectraError(f"{paths[0]} does not match its index (truncated or replaced?)")
            self.tokens.append(tokens)
            self.offsets.append(offsets)
        self._starts = np.cumsum([0] + [len(o) - 1 for o in self.offsets])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def example(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} out of range for {len(self)} examples")
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        j = i - self._starts[s]
        return self.tokens[s][self.offsets[s][j]:self.offsets[s][j + 1]].astype(np.int64)

    def document(self, i: int) -> int:
        """The index (in input order) of the document example i came from."""
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        shard = [sh for sh in self.meta["shards"][self.split] if sh["num_examples"]][s]
        return int(np.load(self.dir / shard["docs"], mmap_mode="r")[i - self._starts[s]])


class PretrainLoader:
    """Padded batches of one split: shuffled per epoch from `seed + epoch`, batch k of an epoch to rank k % world_size.

    The train split (with shuffle) repeats forever, counting `epoch`; otherwise one pass per iteration. With
    drop_last, every rank gets the same number of full batches and the epoch's tail is dropped; without it, the tail
    is dealt out round-robin (the last batches may be short or missing on some ranks). `state_dict()` after a batch
    resumes at the batch after it.
    """

    def __init__(self, data_dir, split="train", batch_size=32, rank=0, world_size=1, seed=0, shuffle=True,
                 drop_last=True, pad_to_multiple=8, fixed_length=False):
        if not 0 <= rank < world_size:
            raise ElectraError(f"rank {rank} is outside world_size {world_size}")
        if batch_size < 1:
            raise ElectraError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = PretrainDataset(data_dir, split)
        self.meta = self.dataset.meta
        self.split, self.batch_size, self.rank, self.world_size = split, batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.pad_to_multiple, self.fixed_length = max(1, pad_to_multiple), fixed_length
        self.repeat = split == "train" and shuffle
        if self.repeat and len(self.dataset) < batch_size * world_size:
            raise ElectraError(f"{data_dir} has {len(self.dataset)} {split} examples, fewer than one global batch "
                               f"({batch_size} x {world_size} ranks)")
        self.epoch = 0
        self.batch_in_epoch = 0  # index of this rank's next batch within the epoch

    def _order(self, epoch: int) -> np.ndarray:
        n = len(self.dataset)
        return np.random.default_rng(self.seed + epoch).permutation(n) if self.shuffle else np.arange(n)

    def _rank_batches(self, order: np.ndarray) -> list[np.ndarray]:
        b, w = self.batch_size, self.world_size
        full = len(order) // (b * w)
        batches = [order[(j * w + self.rank) * b:(j * w + self.rank + 1) * b] for j in range(full)]
        if not self.drop_last:
            tail = order[full * b * w:]
            batches += [tail[i:i + b] for i in range(self.rank * b, len(tail), b * w)]
        return batches

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return len(self._rank_batches(np.arange(len(self.dataset))))

    def __iter__(self):
        while True:
            batches = self._rank_batches(self._order(self.epoch))
            while self.batch_in_epoch < len(batches):
                batch = batches[self.batch_in_epoch]
                self.batch_in_epoch += 1
                yield self.collate([self.dataset.example(int(i)) for i in batch])
            self.batch_in_epoch = 0
            if not self.repeat:
                return
            self.epoch += 1

    def collate(self, examples: list[np.ndarray]) -> dict:
        import torch

        seq_len, m = self.meta["seq_len"], self.pad_to_multiple
        longest = max(len(e) for e in examples)
        t = seq_len if self.fixed_length else min(-(-longest // m) * m, max(seq_len, longest))
        input_ids = np.full((len(examples), t), self.meta["pad_id"], dtype=np.int64)  # (B, T)
        token_type = np.zeros((len(examples), t), dtype=np.int64)
        mask = np.zeros((len(examples), t), dtype=np.int64)
        for row, e in enumerate(examples):
            input_ids[row, :len(e)] = e
            mask[row, :len(e)] = 1
            token_type[row, int(np.argmax(e == self.meta["sep_id"])) + 1:len(e)] = 1  # B: after the first [SEP]
        return {"input_ids": torch.from_numpy(input_ids), "token_type_ids": torch.from_numpy(token_type),
                "attention_mask": torch.from_numpy(mask)}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "examples_done": self.batch_in_epoch * self.batch_size * self.world_size,
                "seed": self.seed, "num_examples": len(self.dataset), "split": self.split}

    def load_state_dict(self, sd: dict) -> None:
        if sd["num_examples"] != len(self.dataset) or sd["split"] != self.split:
            raise ElectraError(f"loader state is for {sd['num_examples']} {sd['split']} examples, this data has "
                               f"{len(self.dataset)} {self.split}: resume with the same prepared folder")
        if sd["seed"] != self.seed:
            raise ElectraError(f"loader state was saved with seed {sd['seed']}, this loader has seed {self.seed}")
        per_step = self.batch_size * self.world_size
        if sd["examples_done"] % per_step:
            raise ElectraError(f"cannot resume at example {sd['examples_done']} of the epoch with {per_step} "
                               f"examples per step (batch size x world size changed)")
        self.epoch, self.batch_in_epoch = sd["epoch"], sd["examples_done"] // per_step
