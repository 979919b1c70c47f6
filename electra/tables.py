"""Table-shaped corpora, read for electra/readers.py: Parquet and Arrow IPC files, `datasets` save_to_disk folders,
and `hf:NAME[:CONFIG][:SPLIT]` datasets streamed through `datasets`. Each row is a document: the string in the text
column, its lines the paragraphs (split and cut exactly as a text file's lines are). Files are read one record batch
at a time with pyarrow, so memory does not grow with the file.

    for doc in iter_columnar(Path("corpus.parquet"), "parquet", "text", stats, progress=lambda f=None: None): ...
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from electra.errors import ElectraError
from electra.files import read_utf8

MAX_LINE_CHARS = 1_000_000  # longer lines (text files) and cell lines are cut into pieces of this many characters
PARQUET_SUFFIXES = (".parquet",)
ARROW_SUFFIXES = (".arrow", ".feather", ".arrows")
COLUMNAR_SUFFIXES = PARQUET_SUFFIXES + ARROW_SUFFIXES
COLUMN_BATCH_ROWS = 256  # rows per record batch read from a columnar file (a few MB of Wikipedia text)
HUB_PREFIX = "hf:"
HUB_SPLITS = ("train", "validation", "test")
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line ends a text file has (TextIOWrapper newline=None), no others


@dataclass(frozen=True)
class HubDataset:
    """An `hf:NAME[:CONFIG][:SPLIT]` input: a dataset on the Hugging Face Hub, streamed through `datasets`."""

    name: str
    config: str | None = None
    split: str = "train"

    def __str__(self) -> str:
        return HUB_PREFIX + ":".join([self.name] + ([self.config] if self.config else []) + [self.split])


def parse_hub_dataset(spec: str) -> HubDataset:
    """`hf:NAME`, `hf:NAME:CONFIG`, `hf:NAME:SPLIT` (train/validation/test) or `hf:NAME:CONFIG:SPLIT`."""
    parts = spec[len(HUB_PREFIX):].split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise ElectraError(f"input '{spec}' is not hf:NAME[:CONFIG][:SPLIT] "
                           f"(e.g. hf:wikitext:wikitext-103-raw-v1:train)")
    if len(parts) == 3:
        return HubDataset(parts[0], parts[1], parts[2])
    if len(parts) == 2:
        return HubDataset(parts[0], split=parts[1]) if parts[1] in HUB_SPLITS else HubDataset(parts[0], parts[1])
    return HubDataset(parts[0])


def saved_dataset_files(state: Path) -> list[Path]:
    """The Arrow files of a `datasets` save_to_disk folder, from its state.json (`_data_files`, in order)."""
    try:
        names = [entry["filename"] for entry in json.loads(read_utf8(state))["_data_files"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ElectraError(f"{state}: not a datasets state.json (no _data_files list: {e})") from None
    files = [state.parent / name for name in names]
    for f in files:
        if not f.is_file():
            raise ElectraError(f"{f}: listed in {state} but missing; the saved dataset is incomplete")
    return files


def columnar_kind(name: str, head: bytes) -> str | None:
    """"parquet", "arrow" or None, from the suffix or the magic bytes (PAR1, ARROW1)."""
    if name.endswith(PARQUET_SUFFIXES) or head.startswith(b"PAR1"):
        return "parquet"
    if name.endswith(ARROW_SUFFIXES) or head.startswith(b"ARROW1"):
        return "arrow"
    return None


def import_pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ElectraError("reading Parquet/Arrow files needs pyarrow: pip install pyarrow") from None
    return pyarrow


def iter_columnar(path: Path, kind: str, text_field: str, stats,
                   progress: Callable) -> Iterator[list[str]]:
    """The documents of a Parquet or Arrow IPC file, one record batch of the text column at a time."""
    pa = import_pyarrow()
    stats.files += 1
    try:
        with pa.OSFile(str(path)) as source:  # not a memory map: pages read stay out of RSS
            if kind == "parquet":
                import pyarrow.parquet as pq

                # buffer_size: the column chunk is streamed page by page, not read whole (a row group can hold
                # hundreds of MB: peak RSS 423 -> 210 MiB on a 235 MB one-row-group file); pre_buffer would read
                # it whole again
                reader = pq.ParquetFile(source, buffer_size=1 << 20, pre_buffer=False)
                check_text_column(path, reader.schema_arrow, text_field)
                total = max(reader.metadata.num_rows, 1)
                batches = reader.iter_batches(batch_size=COLUMN_BATCH_ROWS, columns=[text_field],
                                              use_threads=False)
            else:
                try:
                    reader = pa.ipc.open_file(source)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                    total = max(reader.num_record_batches, 1)
                except pa.ArrowInvalid:  # not the file format: the stream format, which datasets writes
                    source.seek(0)
                    reader = pa.ipc.open_stream(source)
                    batches, total = iter(reader), None
                check_text_column(path, reader.schema, text_field)
            done = 0
            for batch in batches:
                column = batch.column(batch.schema.get_field_index(text_field))
                for doc in column_documents(column.to_pylist(), stats):
                    stats.documents += 1
                    stats.text_chars += sum(len(p) for p in doc)
                    yield doc
                done += batch.num_rows if kind == "parquet" else 1
                progress(done / total if total else source.tell() / max(path.stat().st_size, 1))
    except pa.ArrowException as e:
        raise ElectraError(f"{path}: not a readable {kind.capitalize()} file ({e})") from None
    progress(1.0)


def check_text_column(where, schema, text_field: str) -> None:
    import pyarrow as pa

    if text_field not in schema.names:
        raise ElectraError(f"{where}: no column '{text_field}'; columns: {', '.join(schema.names) or '(none)'} "
                           f"(choose one with --text-field)")
    kind = schema.field(text_field).type
    is_view = getattr(pa.types, "is_string_view", lambda t: False)  # pyarrow >= 16
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_view(kind)):
        raise ElectraError(f"{where}: column '{text_field}' holds {kind}, not text (choose another with --text-field)")


def column_documents(values: Iterable, stats) -> Iterator[list[str]]:
    """Documents from cell values: each line a paragraph, split and cut exactly as a text file's lines are."""
    for value in values:
        if not value:
            continue
        doc = []
        for line in LINE_BREAK.split(value):
            if len(line) > MAX_LINE_CHARS:
                stats.long_lines += 1
                pieces = (line[i:i + MAX_LINE_CHARS] for i in range(0, len(line), MAX_LINE_CHARS))
            else:
                pieces = (line,)
            doc += [p for p in (piece.strip() for piece in pieces) if p]
        if doc:
            yield doc


def iter_hub(source: HubDataset, text_field: str, stats) -> Iterator[list[str]]:
    """A Hugging Face Hub dataset, streamed row by row through `datasets` (nothing is downloaded whole)."""
    try:
        import datasets
    except ImportError:
        raise ElectraError(f"input '{source}' needs the datasets library: pip install 'electra[hf]' (or download "
                           f"the dataset's Parquet files and pass them)") from None

    def failed(e: Exception) -> ElectraError:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                   if os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")]
        where = (f"{' and '.join(offline)} set: unset it on a machine with a network" if offline
                 else "check the name, config and split, and the network")
        return ElectraError(f"cannot stream Hugging Face dataset '{source}' ({type(e).__name__}: {reason}); {where}, "
                            f"or fetch its Parquet files where there is one (hf download {source.name} --repo-type "
                            f"dataset --local-dir DIR) and pass them")

    stats.files += 1
    try:
        rows = iter(datasets.load_dataset(source.name, source.config, split=source.split, streaming=True))
    except Exception as e:  # datasets raises many types for a missing network, name, config or split
        raise failed(e) from None
    first = True
    while True:
        try:
            row = next(rows, None)
        except Exception as e:
            raise failed(e) from None
        if row is None:
            return
        if first:
            if text_field not in row:
                raise ElectraError(f"{source}: no column '{text_field}'; columns: {', '.join(row)} "
                                   f"(choose one with --text-field)")
            first = False
        value = row[text_field]
        if value is not None and not isinstance(value, str):
            raise ElectraError(f"{source}: column '{text_field}' holds {type(value).__name__}, not text "
                               f"(choose another with --text-field)")
        for doc in column_documents([value], stats):
            stats.documents += 1
            stats.text_chars += sum(len(p) for p in doc)
            yield doc
