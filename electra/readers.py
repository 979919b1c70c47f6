"""Streaming corpus readers: paths in, documents (lists of paragraphs) out, in a fixed order, in constant memory.

Inputs may be files, directories (walked recursively in sorted order, hidden files skipped), glob patterns,
compressed files (`.gz`, `.bz2`, `.xz`), zip archives and tar archives (`.tar`, `.tar.gz`, `.tgz`, `.tar.bz2`,
`.tar.xz`; members in archive order), and `hf:NAME[:CONFIG][:SPLIT]` for a Hugging Face dataset streamed through
`datasets` (needs the network; SPLIT defaults to train, and `hf:NAME:SPLIT` works for train/validation/test).
A text file is one of three formats, picked by `--format` or sniffed (`auto`):

    text   one paragraph (or sentence) per line; a blank line ends a document, as google-research/electra's builder
    jsonl  one JSON object per line; the document is the string in `text_field` (`.jsonl`, `.json`, `.ndjson`)
    wiki   WikiExtractor output: `<doc ...>` blocks; the tags and the title line after `<doc>` are dropped

Columnar files (read by electra/tables.py) need no `--format`: in Parquet (`.parquet`) and Arrow IPC files (`.arrow`, `.feather`, `.arrows`;
file or stream format, as `datasets` writes them) each row is a document, the string in column `text_field`, its
lines the paragraphs. They are read one record batch at a time with pyarrow, so memory does not grow with the file.
A `datasets` `save_to_disk` folder (state.json + dataset_info.json + *.arrow) is read as its Arrow files in the
order state.json lists them, without importing `datasets`; a folder that holds Parquet or Arrow files yields only
those (a README.md or dataset_dict.json beside them is not text to train on). A missing column is an ElectraError
that names the columns present.

Bad input is counted, not fatal: binary files (a NUL byte in the first 8 KB) are skipped, invalid UTF-8 is replaced
by U+FFFD, lines over 1,000,000 characters are cut into pieces, broken JSON lines are skipped; `ReadStats.warnings()`
turns the counts into one line each. `split_sentences` is the regex sentence splitter used for packing and
`make_converter("t2s")` the OpenCC Traditional -> Simplified conversion for Chinese.

    for doc in iter_documents(["corpus/"], stats=ReadStats()): ...
"""
from __future__ import annotations

import bz2
import codecs
import glob
import gzip
import io
import itertools
import json
import lzma
import os
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from electra.errors import ElectraError
from electra.tables import (COLUMNAR_SUFFIXES, HUB_PREFIX, MAX_LINE_CHARS, HubDataset, columnar_kind, iter_columnar,
                            iter_hub, parse_hub_dataset, saved_dataset_files)

FORMATS = ("auto", "text", "jsonl", "wiki")
_SNIFF_BYTES = 8192
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COMPRESSED = {".gz": lambda f: gzip.GzipFile(fileobj=f), ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}

# A process-wide count of invalid UTF-8 sequences; readers take differences around each file.
_replaced = [0]


def _count_and_replace(err: UnicodeDecodeError):
    _replaced[0] += 1
    return "\ufffd", err.end


codecs.register_error("electra-count-replace", _count_and_replace)


@dataclass
class ReadStats:
    """What the readers saw; `disk_bytes` moves as input is consumed (for progress bars)."""

    files: int = 0
    disk_bytes: int = 0
    text_chars: int = 0
    documents: int = 0
    binary_skipped: int = 0
    replaced: int = 0
    replaced_files: int = 0
    long_lines: int = 0
    bad_json: int = 0

    def no_text_error(self, inputs) -> ElectraError:
        """The error for inputs that held no document at all."""
        return ElectraError(f"no text found in {' '.join(map(str, inputs))} ({self.files} file(s) read, "
                            f"{self.binary_skipped} skipped as binary)")

    def warnings(self) -> list[str]:
        out = []
        if self.binary_skipped:
            out.append(f"warning: skipped {self.binary_skipped} binary file(s) (NUL bytes in the first 8 KB)")
        if self.replaced:
            out.append(f"warning: replaced {self.replaced} invalid UTF-8 sequence(s) with U+FFFD "
                       f"in {self.replaced_files} file(s)")
        if self.long_lines:
            out.append(f"warning: cut {self.long_lines} line(s) longer than {MAX_LINE_CHARS:,} characters into pieces")
        if self.bad_json:
            out.append(f"warning: skipped {self.bad_json} JSONL line(s) that were not an object with the text field")
        return out


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Local files named by `paths` (files, directories, globs), in order; `hf:` inputs are checked, not listed.
    ElectraError if a path matches nothing."""
    return [s for s in _expand_sources(paths) if isinstance(s, Path)]


def _expand_sources(paths: Iterable[str | os.PathLike]) -> list[Path | HubDataset]:
    sources: list[Path | HubDataset] = []
    for raw in paths:
        raw = str(raw)
        if raw.startswith(HUB_PREFIX) and not os.path.exists(raw):
            sources.append(parse_hub_dataset(raw))
            continue
        if any(c in raw for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(raw, recursive=True))
            if not matches:
                raise ElectraError(f"input pattern '{raw}' matches no files")
        elif os.path.exists(raw):
            matches = [Path(raw)]
        else:
            raise ElectraError(f"input '{raw}' does not exist")
        for p in matches:
            if p.is_dir():
                sources += _folder_files(p)
            elif p.is_file():
                sources.append(p)
    if not sources:
        raise ElectraError("no input files given")
    return sources


def _folder_files(folder: Path) -> list[Path]:
    """The files of a folder in sorted order; `save_to_disk` folders as their Arrow files in state.json's order, and
    only the Parquet/Arrow files of a folder that has any."""
    found = sorted(q for q in folder.rglob("*")
                   if q.is_file() and not any(part.startswith(".") for part in q.relative_to(folder).parts))
    if not found:
        raise ElectraError(f"input folder '{folder}' contains no files")
    saved = {q.parent for q in found if q.name == "state.json" and (q.parent / "dataset_info.json").is_file()}
    columnar = any(q.name.lower().endswith(COLUMNAR_SUFFIXES) for q in found)
    files = []
    for q in found:
        if q.parent in saved:
            if q.name == "state.json":
                files += saved_dataset_files(q)
        elif not columnar or q.name.lower().endswith(COLUMNAR_SUFFIXES):
            files.append(q)
    return files


def iter_documents(paths: Iterable[str | os.PathLike], fmt: str = "auto", text_field: str = "text",
                   stats: ReadStats | None = None) -> Iterator[list[str]]:
    """Yield documents (non-empty lists of stripped, non-empty paragraphs) from all inputs, in order."""
    if fmt not in FORMATS:
        raise ElectraError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    stats = stats if stats is not None else ReadStats()
    done = 0
    for source in _expand_sources(paths):
        if isinstance(source, HubDataset):
            yield from iter_hub(source, text_field, stats)
            continue
        path = source
        size = path.stat().st_size
        name = path.name.lower()
        with open(path, "rb") as raw:
            def progress(fraction=None, raw=raw):
                stats.disk_bytes = done + (raw.tell() if fraction is None else int(size * fraction))

            try:
                kind = columnar_kind(name, raw.peek(8)[:8] if hasattr(raw, "peek") else b"")
                if kind:
                    yield from iter_columnar(path, kind, text_field, stats, progress)
                elif name.endswith(_TAR_SUFFIXES):
                    try:
                        tar = tarfile.open(fileobj=raw, mode="r|*")
                    except tarfile.TarError as e:
                        raise ElectraError(f"{path}: not a readable tar archive ({e})") from None
                    with tar:
                        for member in tar:
                            base = Path(member.name).name
                            if not member.isfile() or base.startswith("."):
                                continue
                            stream = io.BufferedReader(_Sequential(tar.extractfile(member)), 1 << 16)
                            yield from _iter_stream(*_decompressed(stream, base.lower()), fmt, text_field, stats,
                                                    progress)
                elif name.endswith(".zip"):
                    try:
                        archive = zipfile.ZipFile(raw)
                    except zipfile.BadZipFile as e:
                        raise ElectraError(f"{path}: not a readable zip archive ({e})") from None
                    with archive:
                        for member in archive.infolist():
                            parts = Path(member.filename).parts
                            if member.is_dir() or any(p.startswith((".", "__MACOSX")) for p in parts):
                                continue
                            stream = io.BufferedReader(_Sequential(archive.open(member)), 1 << 16)
                            yield from _iter_stream(*_decompressed(stream, parts[-1].lower()), fmt, text_field,
                                                    stats, progress)
                else:
                    yield from _iter_stream(*_decompressed(raw, name), fmt, text_field, stats, progress)
            except (gzip.BadGzipFile, zlib.error, EOFError, tarfile.TarError, lzma.LZMAError,
                    zipfile.BadZipFile) as e:
                raise ElectraError(f"{path}: corrupt or truncated compressed data ({e})") from None
            except OSError as e:  # bz2 reports a corrupt stream as OSError; so do failing disks
                raise ElectraError(f"{path}: cannot read ({e})") from None
        done += size
        stats.disk_bytes = done


def _decompressed(stream, name: str):
    """(stream, name) with a .gz/.bz2/.xz layer opened and its suffix dropped from the name."""
    for suffix, opener in _COMPRESSED.items():
        if name.endswith(suffix):
            return opener(stream), name[: -len(suffix)]
    return stream, name


class _Sequential(io.RawIOBase):
    """A tar member in stream mode, without the `seekable()` that TextIOWrapper probes and `r|` archives lack."""

    def __init__(self, f):
        self._f = f

    def readable(self):
        return True

    def readinto(self, b):
        return self._f.readinto(b)


def _iter_stream(stream, name: str, fmt: str, text_field: str, stats: ReadStats,
                 progress: Callable[[], None]) -> Iterator[list[str]]:
    head = stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES] if hasattr(stream, "peek") else b""
    stats.files += 1
    if b"\x00" in head:
        stats.binary_skipped += 1
        return
    before = _replaced[0]
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="electra-count-replace", newline=None)
    lines = _bounded_lines(text, stats)
    if fmt == "auto":
        if name.endswith(_JSONL_SUFFIXES):
            fmt = "jsonl"
        else:
            first = []
            for line in lines:
                first.append(line)
                if line.strip():
                    break
            fmt = "wiki" if first and first[-1].lstrip().startswith("<doc") else "text"
            lines = itertools.chain(first, lines)
    parse = {"text": _parse_text, "jsonl": _parse_jsonl, "wiki": _parse_wiki}[fmt]
    for i, doc in enumerate(parse(lines, text_field, stats)):
        stats.documents += 1
        stats.text_chars += sum(len(p) for p in doc)
        if i % 64 == 0:
            progress()
        yield doc
    text.detach()
    progress()
    replaced = _replaced[0] - before
    if replaced:
        stats.replaced += replaced
        stats.replaced_files += 1


def _bounded_lines(text: io.TextIOBase, stats: ReadStats) -> Iterator[str]:
    """Lines without their newline; a line over MAX_LINE_CHARS comes out as several lines (counted once)."""
    in_long = False
    while True:
        line = text.readline(MAX_LINE_CHARS)
        if not line:
            return
        if line.endswith("\n"):
            in_long = False
            yield line[:-1]
        else:
            if len(line) >= MAX_LINE_CHARS and not in_long:
                stats.long_lines += 1
                in_long = True
            yield line


def _parse_text(lines: Iterator[str], text_field: str, stats: ReadStats) -> Iterator[list[str]]:
    doc: list[str] = []
    for line in lines:
        line = line.strip()
        if line:
            doc.append(line)
        elif doc:
            yield doc
            doc = []
    if doc:
        yield doc


def _parse_wiki(lines: Iterator[str], text_field: str, stats: ReadStats) -> Iterator[list[str]]:
    doc: list[str] | None = None
    need_title = False
    for line in lines:
        line = line.strip()
        if line.startswith("<doc") and line.endswith(">"):
            doc, need_title = [], True
        elif line == "</doc>":
            if doc:
                yield doc
            doc = None
        elif doc is not None and line:
            if need_title:
                need_title = False
            else:
                doc.append(line)
    if doc:
        yield doc


def _parse_jsonl(lines: Iterator[str], text_field: str, stats: ReadStats) -> Iterator[list[str]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)[text_field]
            if not isinstance(value, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, IndexError, RecursionError):  # RecursionError: nested too deeply
            stats.bad_json += 1
            continue
        doc = [p.strip() for p in value.splitlines() if p.strip()]
        if doc:
            yield doc


# Sentence ends: Chinese/Japanese 。！？ (plus closing quotes) unless inside 《》/（）; Latin .!? (plus closing quotes)
# only before whitespace and a capital, digit or opening quote, and not after a single capital letter ("J. Smith",
# "U.S. Army"). Abbreviations such as "Dr." still split; that moves a segment boundary, it loses no text.
_SENTENCE_END = re.compile(
    r"[。！？]+[”’」』\"']*(?![》）)])"
    r"|[.!?]+(?<![\s.][A-Z][.!?])(?<!^[A-Z][.!?])[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])"
)


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences with a regex (no models, no downloads); whitespace at the cuts is dropped."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(paragraph):
        piece = paragraph[start:m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


def make_converter(name: str | None) -> Callable[[str], str] | None:
    """An OpenCC converter (`t2s`, `tw2s`, `hk2s`, `s2t`, ...) as a str -> str function, or None for no conversion."""
    if not name:
        return None
    try:
        import opencc
    except ImportError:
        raise ElectraError("--opencc needs the OpenCC library: pip install 'electra[zh]' (package 'opencc')") from None
    try:
        return opencc.OpenCC(name).convert
    except Exception as e:  # the C library reports an unknown config with its own exception types
        raise ElectraError(f"OpenCC cannot load conversion '{name}' ({e}); try t2s, tw2s, hk2s or s2t") from None
