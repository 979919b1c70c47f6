"""Sequence classification and regression: the nine GLUE tasks, generic CSV/TSV/JSONL files, Chinese sets.

    electra finetune --task sst2 --model DIR --data ../shared/data/glue/SST-2
    electra finetune --task classify --model DIR --data my_data/ --text-a review --label stars
    electra finetune --task chnsenticorp --model DIR --data ../shared/data/zh/chnsenticorp

GLUE files are read in the layouts the GLUE release ships (tab-separated, no quoting, header row except CoLA's
train/dev). Test splits are unlabeled; their predictions become GLUE submission files (`SST-2.tsv`: index, prediction).
Generic files: `.tsv`, `.csv` (with a header row) or `.jsonl` / `.json` (JSON lines), columns chosen with
--text-a / --text-b / --label (default: the first present of text_a, text, sentence, sentence1 / text_b, sentence2 /
label). Labels of generic tasks are collected from the training split; a dev label never seen in training is an error.

Every task here also reads its splits as Parquet or Arrow files (`train.parquet`, `dev.arrow`: the file name with
the other suffix; rows as JSON lines, values turned to text, so a ClassLabel column gives its integer ids) and from
a `datasets` DatasetDict saved with save_to_disk (dataset_dict.json + train/ validation/ test/ folders; dev is
`validation`), read with pyarrow through electra/readers.py, with the same column options and errors:

    electra finetune --task sst2 --model DIR --data sst2_parquet/         # train.parquet, dev.parquet
    electra finetune --task classify --model DIR --data saved/ --text-a review --label stars   # save_to_disk folder
"""
from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from electra import metrics
from electra.errors import ElectraError
from electra.files import read_utf8
from electra.tasks.base import Task, find_split

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents in one cell


@dataclass
class Example:
    id: str
    text_a: str
    text_b: str | None = None
    label: str | float | None = None  # None on unlabeled (test) splits; float for regression


# ---------------------------------------------------------------------------------------------------------------
# Reading


def read_records(path: Path, header: bool = True) -> tuple[list, list[tuple[int, list | dict]]]:
    """(columns, [(line number, row)]) of a .tsv / .csv / .jsonl file. Rows are lists for tables (columns = the
    header names, or 0..n-1 without a header) and dicts for JSON lines (columns = keys of the first record)."""
    if path.is_dir() or path.suffix.lower() in TABLE_SUFFIXES:
        return read_table(path)
    if not path.is_file():
        raise ElectraError(f"data file {path} not found")
    suffix = path.suffix.lower()
    with io.StringIO(read_utf8(path), newline="") as f:
        if suffix in (".jsonl", ".json"):
            rows = []
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except (json.JSONDecodeError, RecursionError) as e:
                        why = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                        raise ElectraError(f"{path} line {n}: not a JSON object ({why})") from None
                    if not isinstance(record, dict):
                        raise ElectraError(f"{path} line {n}: expected a JSON object, got {type(record).__name__}")
                    rows.append((n, record))
            return (list(rows[0][1]) if rows else []), rows
        if suffix == ".csv":
            reader = csv.reader(f)
        else:  # GLUE's .tsv files are unquoted (MRPC and SST-2 have bare " characters)
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [(n, row) for n, row in enumerate(reader, 1) if row]
    if not header:
        return list(range(len(rows[0][1]) if rows else 0)), rows
    return (rows[0][1] if rows else []), rows[1:]


TABLE_SUFFIXES = (".parquet", ".arrow", ".feather")
# split -> its folder names in a DatasetDict (GLUE on the Hub: validation; MNLI: validation_matched / _mismatched).
DATASET_SPLITS = {"train": ("train",), "dev": ("validation", "validation_matched", "dev"),
                  "test": ("test", "test_matched"), "mm": ("validation_mismatched",), "test_mm": ("test_mismatched",)}


def table_names(data_dir: Path, split: str, names: tuple) -> tuple:
    """The names a split's file may have: `names`, each again as .parquet / .arrow, and the split's folder of a
    `datasets` DatasetDict (a folder with dataset_dict.json)."""
    stems = dict.fromkeys(name.rsplit(".", 1)[0] for name in names)
    found = [*names, *(f"{stem}{suffix}" for stem in stems for suffix in (".parquet", ".arrow"))]
    if (Path(data_dir) / "dataset_dict.json").is_file():
        found += DATASET_SPLITS.get(split, (split,))
    return tuple(found)


def read_table(path: Path) -> tuple[list, list[tuple[int, dict]]]:
    """(columns, [(row number, record)]) of a Parquet / Arrow file or a `datasets` save_to_disk split folder."""
    from electra.tables import columnar_kind, import_pyarrow, saved_dataset_files

    pa = import_pyarrow()
    if path.is_dir():
        files = saved_dataset_files(path / "state.json")
    elif path.is_file():
        files = [path]
    else:
        raise ElectraError(f"data file {path} not found")
    tables = []
    for f in files:
        with open(f, "rb") as raw:
            kind = columnar_kind(f.name.lower(), raw.read(8))
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                tables.append(pq.read_table(f))
                continue
            with pa.OSFile(str(f)) as source:
                try:
                    tables.append(pa.ipc.open_file(source).read_all())
                except pa.ArrowInvalid:  # the stream format, which datasets writes
                    source.seek(0)
                    tables.append(pa.ipc.open_stream(source).read_all())
        except pa.ArrowException as e:
            raise ElectraError(f"{f}: not a readable {kind or 'Arrow'} file ({e})") from None
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return table.column_names, list(enumerate(table.to_pylist(), 1))


def read_examples(path: Path, text_a, text_b, label, header: bool = True, regression: bool = False,
                  id_column=None, stats: Counter | None = None) -> list[Example]:
    """Examples from one file. Columns are names (or indices without a header); label None = unlabeled split.
    Rows too short for the header are skipped and counted in `stats["malformed rows"]`."""
    columns, rows = read_records(path, header)
    for role, col in (("text", text_a), ("second text", text_b), ("label", label)):
        if col is not None and col not in columns:
            shown = ", ".join(map(str, columns)) or "none"
            raise ElectraError(f"{path}: no {role} column '{col}' (columns: {shown}); choose one with "
                               f"--{'text-a' if role == 'text' else 'text-b' if role == 'second text' else 'label'}")
    index = {c: i for i, c in enumerate(columns)}
    examples = []
    for n, row in rows:
        def get(col):
            if isinstance(row, dict):
                value = row.get(col)
                return None if value is None else str(value)
            i = index[col]
            return row[i] if i < len(row) else None

        a = get(text_a)
        b = get(text_b) if text_b is not None else None
        y = get(label) if label is not None else None
        if a is None or (text_b is not None and b is None) or (label is not None and y is None):
            if stats is not None:
                stats["malformed rows"] += 1
            continue
        ident = get(id_column) if id_column is not None else None
        if regression and y is not None:
            try:
                y = float(y)
            except ValueError:
                raise ElectraError(f"{path} line {n}: label '{y}' is not a number (regression task)") from None
        examples.append(Example(id=str(ident if ident is not None else len(examples)), text_a=a, text_b=b,
                                label=y.strip() if isinstance(y, str) else y))
    return examples


def _first_present(columns: list, names: tuple):
    return next((c for c in names if c in columns), None)


def read_generic(data_dir: Path, split: str, cfg, stats: Counter, files: dict | None = None, text_a=None,
                 text_b=None, label=None, regression=False) -> list[Example]:
    """A generic split: `files[split]` (or --train-file / --dev-file / --test-file, or DATA/split.{tsv,csv,jsonl,json})
    with columns from the config's [columns] (--text-a/--text-b/--label), the task's defaults or the usual names."""
    names = (files[split],) if files and split in files else \
        tuple(f"{split}{ext}" for ext in (".tsv", ".csv", ".jsonl", ".json"))
    path = find_split(data_dir, split, cfg, table_names(data_dir, split, names))
    columns, _ = read_records(path)
    chosen = getattr(cfg, "columns", None)  # FinetuneConfig.columns; absent in a bare namespace
    a = getattr(chosen, "text_a", None) or text_a or _first_present(columns, ("text_a", "text", "sentence",
                                                                               "sentence1"))
    b = getattr(chosen, "text_b", None) or text_b or _first_present(columns, ("text_b", "sentence2"))
    y = getattr(chosen, "label", None) or label or "label"
    if a is None:
        raise ElectraError(f"{path}: no text column among {', '.join(map(str, columns))}; choose one with --text-a")
    labeled = split != "test" or y in columns
    return read_examples(path, a, b, y if labeled else None, regression=regression,
                         id_column="id" if "id" in columns else None, stats=stats)


# GLUE: name -> (labeled columns (text_a, text_b, label), header on train/dev, label set, files, metric, main).
# Test files always have a header whose first column is the index; their text columns share the train names,
# except CoLA whose train/dev are headerless (sentence in column 3, label in column 1).
def read_glue(data_dir: Path, split: str, cfg, stats: Counter, columns=(), header=True, files=None,
              regression=False):
    path = find_split(data_dir, split, cfg, table_names(data_dir, split, (files.get(split, f"{split}.tsv"),)))
    text_a, text_b, label = columns
    if path.is_dir() or path.suffix.lower() in TABLE_SUFFIXES:  # named columns: the TSV's, or --text-a ...
        header, chosen = True, getattr(cfg, "columns", None)
        text_a = getattr(chosen, "text_a", None) or ("sentence" if isinstance(text_a, int) else text_a)
        text_b = getattr(chosen, "text_b", None) or text_b
        label = getattr(chosen, "label", None) or ("label" if isinstance(label, int) else label)
    if split.startswith("test"):
        names, _ = read_records(path)
        a = "sentence" if isinstance(text_a, int) else text_a
        ident = "idx" if "idx" in names else names[0] if names else None  # idx: GLUE on the Hub
        return read_examples(path, a, text_b, None, id_column=ident, stats=stats)
    return read_examples(path, text_a, text_b, label, header=header, regression=regression, stats=stats)


# ---------------------------------------------------------------------------------------------------------------
# Encoding, decoding, metrics


def encode(examples: list[Example], tokenizer, labels: list | None, cfg) -> tuple[list[dict], Counter]:
    """Tokenize `[CLS] a [SEP] (b [SEP])`, truncating the longer text first to cfg.max_seq_len (counted)."""
    stats = Counter()
    tokenizer.no_padding()
    tokenizer.enable_truncation(cfg.max_seq_len, strategy="longest_first")
    inputs = [(e.text_a, e.text_b) if e.text_b is not None else e.text_a for e in examples]
    encodings = tokenizer.encode_batch(inputs)
    label_index = {name: i for i, name in enumerate(labels)} if labels else None
    features = []
    for i, (e, enc) in enumerate(zip(examples, encodings)):
        stats["truncated"] += bool(enc.overflowing)
        f = {"input_ids": enc.ids, "token_type_ids": enc.type_ids, "example": i}
        if e.label is not None:
            if label_index is None:
                f["labels"] = float(e.label)
            elif e.label in label_index:
                f["labels"] = label_index[e.label]
            else:
                shown = ", ".join(map(str, labels[:10])) + (", ..." if len(labels) > 10 else "")
                raise ElectraError(f"example {e.id}: label '{e.label}' was never seen in training (labels: {shown})")
        features.append(f)
    return features, stats


def decode(examples, features, outputs, labels, cfg) -> list[dict]:
    """Logits (num_labels,) per example -> {"label", "probabilities"} (or {"score"} for regression)."""
    predictions = []
    for f, logits in zip(features, outputs):
        logits = np.asarray(logits, dtype=np.float64)
        if not labels:
            predictions.append({"score": float(logits[0])})
            continue
        p = np.exp(logits - logits.max())
        p /= p.sum()
        predictions.append({"label": labels[int(p.argmax())],
                            "probabilities": {str(name): float(q) for name, q in zip(labels, p)}})
    return predictions


def _golds_preds(examples, predictions, key="label"):
    return [e.label for e in examples], [p[key] for p in predictions]


def metric_with(fn, key="label"):
    """A task metric from a `electra.metrics` function of (gold, predicted)."""
    return lambda examples, predictions: fn(*_golds_preds(examples, predictions, key))


def from_input(item) -> Example:
    """A text, a [text, text] pair, or a {"text"/"text_a", "text_b"} object -> Example."""
    if isinstance(item, str):
        return Example(id="", text_a=item)
    if isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(t, str) for t in item):
        return Example(id="", text_a=item[0], text_b=item[1])
    if isinstance(item, dict):
        a = next((item[k] for k in ("text_a", "text", "sentence", "sentence1") if k in item), None)
        b = next((item[k] for k in ("text_b", "sentence2") if k in item), None)
        if isinstance(a, str) and (b is None or isinstance(b, str)):
            return Example(id=str(item.get("id", "")), text_a=a, text_b=b)
    raise ElectraError(f"cannot read a classification input from {str(item)[:60]!r}: give a text, a pair of texts "
                       "or an object with 'text' (and 'text_b')")


def to_output(example: Example, prediction: dict) -> dict:
    return {"id": example.id, **prediction}


def write_submission(path: Path, examples: list[Example], predictions: list[dict]) -> None:
    """A GLUE submission file: `index<TAB>prediction`, one row per test example."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for e, p in zip(examples, predictions):
            value = f"{min(5.0, max(0.0, p['score'])):.3f}" if "score" in p else p["label"]
            f.write(f"{e.id}\t{value}\n")


# ---------------------------------------------------------------------------------------------------------------
# The table

_FAMILY = dict(encode=encode, decode=decode, from_input=from_input, to_output=to_output)
_BINARY = ("0", "1")
_NLI3 = ("contradiction", "entailment", "neutral")
_NLI2 = ("entailment", "not_entailment")


def _glue(name, description, columns, labels, metric, main, header=True, epochs=3, files=None, regression=False,
          double=False, extra_dev=(), submission=()):
    files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", **(files or {})}
    return Task(name=name, kind="sequence", description=description,
                read=partial(read_glue, columns=columns, header=header, files=files, regression=regression),
                metric=metric, main_metric=main, labels=labels, regression=regression, pair=columns[1] is not None,
                epochs=epochs, double_unordered=double, extra_dev=extra_dev, submission=submission, files=files,
                **_FAMILY)


def _generic(name, description, files=None, text_a=None, text_b=None, label=None, labels=None, main="acc",
             metric=None, pair=False, regression=False):
    return Task(name=name, kind="sequence", description=description,
                read=partial(read_generic, files=files, text_a=text_a, text_b=text_b, label=label,
                             regression=regression),
                metric=metric or metric_with(metrics.accuracy), main_metric=main, labels=labels, pair=pair,
                regression=regression, files=files or {}, **_FAMILY)


_FEWCLUE = {"train": "train_few_all.json", "dev": "dev_few_all.json", "test": "test_public.json"}

TASKS: dict[str, Task] = {t.name: t for t in [
    _glue("cola", "GLUE CoLA acceptability (Matthews corr.)", (3, None, 1), _BINARY, metric_with(metrics.mcc),
          "mcc", header=False, submission=(("test", "CoLA"),)),
    _glue("sst2", "GLUE SST-2 sentiment (accuracy)", ("sentence", None, "label"), _BINARY,
          metric_with(metrics.accuracy), "acc", submission=(("test", "SST-2"),)),
    _glue("mrpc", "GLUE MRPC paraphrase (F1 / accuracy)", ("#1 String", "#2 String", "Quality"), _BINARY,
          metric_with(metrics.f1_accuracy), "acc", double=True, submission=(("test", "MRPC"),)),
    _glue("stsb", "GLUE STS-B similarity, regression (Pearson / Spearman)", ("sentence1", "sentence2", "score"), None,
          metric_with(metrics.pearson_spearman, "score"), "spearman", epochs=10, regression=True, double=True,
          submission=(("test", "STS-B"),)),
    _glue("qqp", "GLUE QQP duplicate questions (F1 / accuracy)", ("question1", "question2", "is_duplicate"), _BINARY,
          metric_with(metrics.f1_accuracy), "acc", submission=(("test", "QQP"),)),
    _glue("mnli", "GLUE MNLI inference (matched / mismatched accuracy)", ("sentence1", "sentence2", "gold_label"),
          _NLI3, metric_with(metrics.accuracy), "acc",
          files={"dev": "dev_matched.tsv", "test": "test_matched.tsv", "mm": "dev_mismatched.tsv",
                 "test_mm": "test_mismatched.tsv"},
          extra_dev=(("mm", "mm"),), submission=(("test", "MNLI-m"), ("test_mm", "MNLI-mm"))),
    _glue("qnli", "GLUE QNLI question answering inference (accuracy)", ("question", "sentence", "label"), _NLI2,
          metric_with(metrics.accuracy), "acc", submission=(("test", "QNLI"),)),
    _glue("rte", "GLUE RTE inference (accuracy)", ("sentence1", "sentence2", "label"), _NLI2,
          metric_with(metrics.accuracy), "acc", epochs=10, submission=(("test", "RTE"),)),
    _glue("wnli", "GLUE WNLI inference (accuracy)", ("sentence1", "sentence2", "label"), _BINARY,
          metric_with(metrics.accuracy), "acc", submission=(("test", "WNLI"),)),
    _generic("classify", "generic single-sentence or pair classification from CSV / TSV / JSONL (--text-a ...)"),
    _generic("regress", "generic single-sentence or pair regression from CSV / TSV / JSONL (Pearson / Spearman)",
             metric=metric_with(metrics.pearson_spearman, "score"), main="spearman", regression=True),
    _generic("chnsenticorp", "ChnSentiCorp Chinese sentiment (accuracy)", {"train": "train.tsv", "dev": "dev.tsv"},
             text_a="text_a", label="label"),
    _generic("tnews", "FewCLUE TNEWS news topic (accuracy)", _FEWCLUE, text_a="sentence", label="label_desc"),
    _generic("iflytek", "FewCLUE IFLYTEK app description (accuracy)", _FEWCLUE, text_a="sentence", label="label"),
    _generic("eprstmt", "FewCLUE EPRSTMT e-commerce sentiment (accuracy)", _FEWCLUE, text_a="sentence",
             label="label"),
    _generic("ocnli", "FewCLUE OCNLI inference (accuracy)", _FEWCLUE, text_a="sentence1", text_b="sentence2",
             label="label", pair=True),
]}
