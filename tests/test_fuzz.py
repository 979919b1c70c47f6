"""Fuzzing every reader with hypothesis: random bytes and near-miss structured input (text, JSONL, WikiExtractor and
compressed corpora; TSV/CSV/JSONL task files; CoNLL; SQuAD JSON; pretraining and fine-tuning TOML run files) are
written to a file and read back. The only exception allowed to escape is the project's own ElectraError (one line);
anything else is a bug. What comes back must be well formed (documents are non-empty lists of stripped paragraphs,
examples have string texts, configs are the config dataclasses). Corpora count invalid UTF-8 as a warning instead of
failing, and the count is exact. A few inputs that once broke a reader are pinned with @example.

    .venv/bin/pytest -q tests/test_fuzz.py
"""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from electra.errors import ElectraError
from electra.finetune import FinetuneConfig, config_from_args
from electra.pretrain import PretrainConfig, load_pretrain_config
from electra.readers import FORMATS, ReadStats, iter_documents
from electra.tasks import classification, qa, tagging

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP_JSON = "[" * 100_000  # nested beyond the JSON decoder's recursion limit


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def put(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


def clean_or_electra_error(read):
    """read() -> its result, or None when it raised ElectraError with a one-line message; anything else fails."""
    try:
        return read()
    except ElectraError as e:
        assert "\n" not in str(e) and str(e)
        return None


# ---------------------------------------------------------------------------------------------------------------
# Strategies: random bytes, and line soups made of the pieces each format is built from, so the fuzzer reaches the
# parsers instead of stopping at the first byte.

CORPUS_PIECES = ["", " ", "<doc id=\"1\" title=\"T\">", "</doc>", "<doc", "Title", "A sentence. Another one.",
                 '{"text": "a b"}', '{"text": 3}', '{"other": "x"}', "[1, 2]", '"str"', "null", "{", "\t", "\r",
                 "\x00", "\ufeff", "中文句子。", "\u2028"]
TABLE_PIECES = ["sentence\tlabel", "text_a,text_b,label", "a\t1", "b\t", "\t\t", '"quoted, field",0', '"open',
                "x,y", "label", "1.5", "nan", '{"text": "a", "label": "1"}', '{"label": 2}', "[]", "3", "\x00",
                "\ufeff"]
CONLL_PIECES = ["EU B-ORG", "rejects O", "-DOCSTART- -X- O O", "Berlin", "", "  ", "word POS CHUNK I-LOC", "\t",
                "中 B-LOC"]


def soup(pieces: list[str]) -> st.SearchStrategy[bytes]:
    line = st.one_of(st.sampled_from(pieces), st.text(max_size=12))
    text = st.lists(line, max_size=25).map("\n".join).map(lambda s: s.encode("utf-8", "surrogatepass"))
    return st.one_of(st.binary(max_size=400), text, st.tuples(text, st.binary(max_size=8), text).map(b"".join))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


def maybe(value_strategy):
    """A field's right value most of the time, sometimes any JSON value, sometimes absent (None = drop)."""
    return st.one_of(value_strategy, value_strategy, json_values, st.just(None))


def squad_answer():
    return st.fixed_dictionaries({"text": maybe(st.text(max_size=8)), "answer_start": maybe(st.integers(-3, 40))})


def squad_docs(answers=None):
    answers = answers or st.one_of(st.lists(squad_answer(), max_size=2), st.just(None), json_values)
    qa_ = st.fixed_dictionaries({"id": maybe(st.one_of(st.text(max_size=4), st.integers())),
                                 "question": maybe(st.text(max_size=10)), "answers": answers,
                                 "is_impossible": maybe(st.booleans())})
    paragraph = st.fixed_dictionaries({"context": maybe(st.text(max_size=40)), "qas": maybe(st.lists(qa_, max_size=3))})
    article = st.fixed_dictionaries({"paragraphs": maybe(st.lists(paragraph, max_size=2))})
    top = st.fixed_dictionaries({"data": maybe(st.lists(article, max_size=2)), "version": maybe(st.text(max_size=3))})
    drop = lambda v: {k: drop(x) for k, x in v.items() if x is not None} if isinstance(v, dict) else \
        [drop(x) for x in v] if isinstance(v, list) else v  # noqa: E731
    return st.one_of(top.map(drop), json_values).map(lambda d: json.dumps(d).encode())


# TOML: sections and keys of the real schema (plus near misses), values of every TOML type.
PRETRAIN_KEYS = {
    "model": ["preset", "hidden_size", "num_layers", "num_heads", "embedding_size", "vocab_size",
              "generator_hidden_fraction", "hidden_dropout", "hiddden_size"],
    "objective": ["mask_prob", "kind", "rtd_weight", "temperature"],
    "data": ["dir", "batch_size", "eval_batch_size", "pad_to_multiple", "fixed_length"],
    "optim": ["name", "lr", "warmup_steps", "clip_norm", "beta1"],
    "train": ["steps", "accumulation", "precision", "seed", "max_nonfinite", "checkpoint_every", "stpes"],
    "run": ["out", "tensorboard", "report"],
    "trian": ["steps"],
}
FINETUNE_KEYS = ["task", "model", "data", "out", "epochs", "lr", "batch_size", "seeds", "layer_decay",
                 "warmup_fraction", "max_seq_len", "dev_fraction", "double_unordered", "text_a", "threads", "epohcs"]
toml_scalars = st.one_of(
    st.integers(-10, 10**6).map(str), st.floats(-1e3, 1e3, allow_nan=False).map(repr),
    st.sampled_from(["true", "false", "inf", "nan", "-0.0", "1e400", "0x10", "1979-05-27", "07:32:00",
                     "1979-05-27T07:32:00Z", '"tiny"', '"small"', '"fp16"', '"adamw"', '"cpu"', "''", '"a\\tb"',
                     "99999999999999999999"]),
    st.text(max_size=10).map(json.dumps),
)
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.lists(st.tuples(st.sampled_from(["a", "b", "preset"]), inner), max_size=2, unique_by=lambda kv: kv[0])
    .map(lambda kvs: "{" + ", ".join(f"{k} = {v}" for k, v in kvs) + "}")), max_leaves=4)


@st.composite
def pretrain_toml(draw) -> bytes:
    lines = []
    for section in draw(st.lists(st.sampled_from(list(PRETRAIN_KEYS)), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(PRETRAIN_KEYS[section]), max_size=4, unique=True)):
            lines.append(f"{key} = {draw(toml_values)}")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=15)))  # noise anywhere
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def finetune_toml(draw) -> bytes:
    keys = draw(st.lists(st.sampled_from(FINETUNE_KEYS), max_size=6, unique=True))
    lines = [f"{key} = {draw(toml_values)}" for key in keys]
    if draw(st.booleans()):
        lines = ["[finetune]", *lines]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=15)))
    return "\n".join(lines).encode()


# ---------------------------------------------------------------------------------------------------------------
# Corpus readers (tokenizer train, prepare)


@FUZZ
@given(data=soup(CORPUS_PIECES), fmt=st.sampled_from(FORMATS), name=st.sampled_from(["c.txt", "c.jsonl", "c.wiki"]),
       compress=st.sampled_from(["no", "gzip", "gzip-cut", "raw-named-gz", "raw-named-tar"]))
@example(data=(DEEP_JSON + "\n" + '{"text": "fine"}').encode(), fmt="jsonl", name="c.jsonl", compress="no")
def test_corpus_readers(scratch, data, fmt, name, compress):
    if compress in ("gzip", "gzip-cut"):
        data, name = gzip.compress(data), name + ".gz"
        data = data[:len(data) // 2] if compress == "gzip-cut" else data
    elif compress != "no":
        name += ".gz" if compress == "raw-named-gz" else ".tar"
    path = put(scratch, name, data)
    stats = ReadStats()
    docs = clean_or_electra_error(lambda: list(iter_documents([path], fmt=fmt, stats=stats)))
    if docs is None:
        assert compress != "no"  # plain files never fail: bad content is counted and skipped
        return
    for doc in docs:
        assert doc and all(isinstance(p, str) and p and p == p.strip() for p in doc)
    assert stats.documents == len(docs) and all(line.startswith("warning: ") for line in stats.warnings())


@FUZZ
@given(chunks=st.lists(st.text(alphabet="abc xyz.\n", max_size=20), min_size=1, max_size=12),
       bad=st.lists(st.sampled_from([b"\xff", b"\xfe", b"\xc0", b"\x80"]), max_size=12))
def test_invalid_utf8_in_a_corpus_is_replaced_and_counted(scratch, chunks, bad):
    data = bytearray(chunks[0].encode())
    for chunk, byte in zip(chunks[1:], bad):  # an invalid byte between ASCII pieces: one replacement each
        data += byte + b"x" + chunk.encode()
    used = min(len(bad), len(chunks) - 1)
    path = put(scratch, "mixed.txt", bytes(data))
    stats = ReadStats()
    docs = list(iter_documents([path], fmt="text", stats=stats))
    assert stats.replaced == used and stats.replaced_files == (1 if used else 0)
    assert sum(p.count("\ufffd") for d in docs for p in d) == used
    warned = [w for w in stats.warnings() if "invalid UTF-8" in w]
    assert warned == ([f"warning: replaced {used} invalid UTF-8 sequence(s) with U+FFFD in 1 file(s)"] if used else [])


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning task files


@FUZZ
@given(data=soup(TABLE_PIECES), suffix=st.sampled_from([".tsv", ".csv", ".jsonl", ".json"]),
       regression=st.booleans(), columns=st.sampled_from([(None, None, None), ("text_a", "text_b", "label"),
                                                          ("sentence", None, "label")]))
@example(data=b"sentence\tlabel\n\xff\xfe bad\t1\n", suffix=".tsv", regression=False, columns=(None, None, None))
@example(data=(DEEP_JSON + "\n").encode(), suffix=".jsonl", regression=False, columns=(None, None, None))
def test_classification_readers(scratch, data, suffix, regression, columns):
    path = put(scratch, "train" + suffix, data)
    text_a, text_b, label = columns
    cfg = SimpleNamespace(train_file=str(path), text_a=text_a, text_b=text_b, label=label)
    examples = clean_or_electra_error(lambda: classification.read_generic(scratch, "train", cfg, Counter(),
                                                                          regression=regression))
    for e in examples or []:
        assert isinstance(e.text_a, str) and (e.text_b is None or isinstance(e.text_b, str))
        assert isinstance(e.label, float if regression else str)


@FUZZ
@given(data=soup(CONLL_PIECES))
@example(data=b"EU B-ORG\n\xff x\n")
def test_conll_reader(scratch, data):
    examples = clean_or_electra_error(lambda: tagging.read_conll(put(scratch, "train.txt", data), Counter()))
    for e in examples or []:
        assert e.words and len(e.words) == len(e.tags)
        assert all(isinstance(w, str) and w and not any(c.isspace() for c in w) for w in e.words + e.tags)


@FUZZ
@given(data=st.one_of(squad_docs(), soup(['{"data": [', '{"paragraphs": []}', '"context"', "]}", "{}"])),
       train=st.booleans())
@example(data=DEEP_JSON.encode(), train=False)
@example(data=b'{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", "answers": 5}]}]}]}',
         train=True)
def test_squad_reader(scratch, data, train):
    stats = Counter()
    examples = clean_or_electra_error(lambda: qa.read_squad(put(scratch, "squad.json", data), stats, train=train))
    for e in examples or []:
        assert isinstance(e.context, str) and isinstance(e.question, str) and isinstance(e.id, str)
        assert all(isinstance(a["text"], str) and isinstance(a["answer_start"], int) for a in e.answers)
        if train and e.answers:  # training answers point at their text
            a = e.answers[0]
            assert e.context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]


def test_squad_answers_not_a_list_is_a_clean_error(tmp_path):
    doc = {"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", "answers": 5}]}]}]}
    with pytest.raises(ElectraError, match=r"qas\[0\]"):
        qa.read_squad(put(tmp_path, "s.json", json.dumps(doc)))


def test_squad_deeply_nested_json_is_a_clean_error(tmp_path):
    with pytest.raises(ElectraError, match="not valid JSON"):
        qa.read_squad(put(tmp_path, "s.json", DEEP_JSON))


# ---------------------------------------------------------------------------------------------------------------
# TOML run files


@FUZZ
@given(data=st.one_of(pretrain_toml(), st.binary(max_size=200)), suffix=st.sampled_from([".toml", ".json"]))
@example(data=b"[train]\nsteps = 3 # \xff\n", suffix=".toml")
@example(data=("a = " + "[" * 5000 + "]" * 5000).encode(), suffix=".toml")
@example(data=DEEP_JSON.encode(), suffix=".json")
def test_pretrain_config_reader(scratch, data, suffix):
    cfg = clean_or_electra_error(lambda: load_pretrain_config(put(scratch, "run" + suffix, data)))
    assert cfg is None or isinstance(cfg, PretrainConfig)


def read_finetune_toml(path: Path):
    return config_from_args(argparse.Namespace(config=str(path)))


@FUZZ
@given(data=st.one_of(finetune_toml(), st.binary(max_size=200)))
@example(data=b"task = 'sst2' # \xff\n")
@example(data=("a = " + "[" * 5000 + "]" * 5000).encode())
def test_finetune_config_reader(scratch, data):
    cfg = clean_or_electra_error(lambda: read_finetune_toml(put(scratch, "ft.toml", data)))
    assert cfg is None or isinstance(cfg, FinetuneConfig)


def test_finetune_toml_not_utf8_is_a_clean_error(tmp_path):
    with pytest.raises(ElectraError, match="UTF-8"):
        read_finetune_toml(put(tmp_path, "ft.toml", b"task = 'sst2' # \xff\n"))


def test_finetune_toml_deeply_nested_is_a_clean_error(tmp_path):
    with pytest.raises(ElectraError, match="not valid TOML"):
        read_finetune_toml(put(tmp_path, "ft.toml", "a = " + "[" * 5000 + "]" * 5000))
