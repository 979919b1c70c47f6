"""Token classification (NER) from CoNLL-style files: one word (or one Chinese character) per line, the tag in the
last column, a blank line between sentences, `-DOCSTART-` lines skipped. IOB2 (BIO) or IOB1 tags, scored at the
entity level as conlleval scores them (precision / recall / F1: `electra.metrics.entity_f1`).

    electra finetune --task ner --model DIR --data ../shared/data/ner/conll2003          # train.txt, valid.txt
    electra finetune --task peopledaily --model DIR --data ../shared/data/zh/peopledaily  # 字 TAG per line

Subword alignment: a word's label goes on its first subword; the other subwords get -100 (no loss), and a word's
prediction is read from its first subword. Words cut off by --max-seq-len, or that tokenize to nothing, are
predicted `O` and counted. The tag set is collected from the training split; a dev tag never seen in training is an
error.
"""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from electra import metrics
from electra.errors import ElectraError
from electra.files import read_utf8
from electra.tasks.base import Task, find_split


@dataclass
class Example:
    id: str
    words: list[str]
    tags: list[str] | None = None  # None on unlabeled input


def read_conll(path: Path, stats: Counter | None = None) -> list[Example]:
    """Sentences of a CoNLL file: `word ... TAG` per line (whitespace-separated), blank lines between sentences."""
    if not path.is_file():
        raise ElectraError(f"data file {path} not found")
    examples, words, tags = [], [], []

    def flush():
        if words:
            examples.append(Example(id=str(len(examples)), words=list(words), tags=list(tags)))
        words.clear()
        tags.clear()

    with io.StringIO(read_utf8(path), newline=None) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                flush()
            elif parts[0] == "-DOCSTART-":
                flush()
            elif len(parts) < 2:
                raise ElectraError(f"{path} line {n}: expected 'word ... TAG', got {line.strip()!r}")
            else:
                words.append(parts[0])
                tags.append(parts[-1])
    flush()
    return examples


def read_split(data_dir: Path, split: str, cfg, stats: Counter, files: dict | None = None) -> list[Example]:
    """DATA/<files[split]>, or --train-file / --dev-file / --test-file."""
    return read_conll(find_split(data_dir, split, cfg, (files or {}).get(split, ())), stats)


def encode(examples: list[Example], tokenizer, labels: list | None, cfg) -> tuple[list[dict], Counter]:
    """Words -> subwords with word ids; the first subword of each word carries its tag (others -100)."""
    stats = Counter()
    tokenizer.no_padding()
    tokenizer.enable_truncation(cfg.max_seq_len)
    encodings = tokenizer.encode_batch([e.words for e in examples], is_pretokenized=True)
    label_index = {name: i for i, name in enumerate(labels or [])}
    features = []
    for i, (e, enc) in enumerate(zip(examples, encodings)):
        word_ids = enc.word_ids
        first = {}  # word -> position of its first subword
        for pos, w in enumerate(word_ids):
            if w is not None and w not in first:
                first[w] = pos
        stats["truncated"] += bool(enc.overflowing)
        stats["words without a token"] += sum(1 for w in range(len(e.words)) if w not in first) \
            if not enc.overflowing else 0
        f = {"input_ids": enc.ids, "token_type_ids": enc.type_ids, "example": i, "first_subword": first}
        if e.tags is not None:
            targets = [-100] * len(enc.ids)
            for w, pos in first.items():
                tag = e.tags[w]
                if tag not in label_index:
                    raise ElectraError(f"sentence {e.id}: tag '{tag}' was never seen in training "
                                       f"(tags: {', '.join(labels)})")
                targets[pos] = label_index[tag]
            f["labels"] = targets
        features.append(f)
    return features, stats


def decode(examples, features, outputs, labels, cfg) -> list[dict]:
    """(T, num_labels) logits per sentence -> {"tags": one tag per word} (uncovered words: "O")."""
    predictions = []
    for e, f, logits in zip(examples, features, outputs):
        best = np.asarray(logits).argmax(-1)
        first = f["first_subword"]
        predictions.append({"tags": [labels[int(best[first[w]])] if w in first else "O"
                                     for w in range(len(e.words))]})
    return predictions


def metric(examples: list[Example], predictions: list[dict]) -> dict:
    return metrics.entity_f1([e.tags for e in examples], [p["tags"] for p in predictions])


def from_input(item) -> Example:
    """A list of words, or a text: split on whitespace, or into characters when it has no spaces (Chinese)."""
    if isinstance(item, str):
        return Example(id="", words=item.split() if " " in item.strip() else [c for c in item if not c.isspace()])
    if isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item):
        return Example(id="", words=list(item))
    if isinstance(item, dict) and ("words" in item or "text" in item):
        example = from_input(item.get("words", item.get("text")))
        example.id = str(item.get("id", ""))
        return example
    raise ElectraError(f"cannot read a tagging input from {str(item)[:60]!r}: give a text or a list of words")


def entities(words: list[str], tags: list[str]) -> list[dict]:
    """BIO tags -> [{"type", "start", "end" (exclusive word index), "text"}], chunked by conlleval's rules."""
    joiner = "" if all(len(w) == 1 for w in words) else " "
    return [{"type": t, "start": s, "end": e, "text": joiner.join(words[s:e])}
            for t, s, e in metrics.conll_chunks(list(tags))]


def to_output(example: Example, prediction: dict) -> dict:
    return {"id": example.id, "words": example.words, "tags": prediction["tags"],
            "entities": entities(example.words, prediction["tags"])}


_FAMILY = dict(kind="token", read=read_split, encode=encode, decode=decode, metric=metric, from_input=from_input,
               to_output=to_output, main_metric="f1")


def _task(name, description, files, dev_from_train=0.0):
    return Task(name=name, description=description, files=files, dev_from_train=dev_from_train,
                **{**_FAMILY, "read": partial(read_split, files=files)})


TASKS: dict[str, Task] = {t.name: t for t in [
    _task("ner", "NER from CoNLL files (CoNLL-2003: train.txt, valid.txt, test.txt; entity F1)",
          {"train": ("train.txt",), "dev": ("valid.txt", "dev.txt"), "test": ("test.txt",)}),
    _task("peopledaily", "People's Daily Chinese NER, one character per line (entity F1); without a dev file 10% "
          "of train is held out",
          {"train": ("train.txt", "example.train"), "dev": ("dev.txt", "example.dev"),
           "test": ("test.txt", "example.test")}, dev_from_train=0.1),
]}
