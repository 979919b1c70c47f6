"""Readers, `electra prepare` (packing, determinism, resume, bad input) and the rank-strided, resumable loader.

Packing is checked on real English and Chinese Wikipedia slices from ../shared/data.

    .venv/bin/pytest -q tests/test_data.py
"""
from __future__ import annotations

import collections
import gzip
import io
import json
import re
import tarfile

import numpy as np
import pytest

from electra.cli import main
from electra.data import PackConfig, _ShardWriter, prepare
from electra.errors import ElectraError
from electra.loader import PretrainDataset, PretrainLoader
from electra.readers import ReadStats, iter_documents, make_converter, split_sentences
from electra.sources import extract_corpus_slice
from electra.tokenizer import load_tokenizer, special_ids

WIKI = ('<doc id="1" url="u" title="First">\nFirst\n\nAlpha one. Alpha two.\nAlpha three.\n</doc>\n'
        '<doc id="2" url="u" title="Second">\nSecond\n\nBeta one!\n</doc>\n')
WIKI_DOCS = [["Alpha one. Alpha two.", "Alpha three."], ["Beta one!"]]


def _docs(paths, **kw):
    return list(iter_documents([str(p) for p in paths], **kw))


def _prepare_cli(inputs, tokenizer, out, *extra):
    return main(["prepare", "--input", *map(str, inputs), "--tokenizer", str(tokenizer), "--out", str(out),
                 "--seq-len", "64", "--workers", "0", "--no-progress", *extra])


def _folder_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- readers -----------------------------------------------------------------------------------------------------

def test_plain_text_blank_line_separates_documents(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\n\nthree\n  \nfour\r\nfive")
    assert _docs([tmp_path / "a.txt"]) == [["one", "two"], ["three"], ["four", "five"]]


def test_wiki_tags_and_titles_are_stripped(tmp_path):
    (tmp_path / "wiki_00").write_text(WIKI)
    assert _docs([tmp_path / "wiki_00"]) == WIKI_DOCS


def test_jsonl_text_field_and_bad_lines_counted(tmp_path):
    lines = [json.dumps({"body": "Para one.\n\nPara two."}), "{not json", json.dumps({"other": "x"}),
             json.dumps({"body": "Second doc."})]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    stats = ReadStats()
    assert _docs([tmp_path / "c.jsonl"], text_field="body", stats=stats) == [["Para one.", "Para two."],
                                                                              ["Second doc."]]
    assert stats.bad_json == 2 and "skipped 2 JSONL line(s)" in stats.warnings()[0]


def test_gz_folders_globs_and_tar_archives_read_the_same(tmp_path):
    (tmp_path / "src/sub").mkdir(parents=True)
    (tmp_path / "src/sub/wiki_00").write_text(WIKI)
    (tmp_path / "src/b.txt.gz").write_bytes(gzip.compress(b"Gamma one.\n\nDelta one.\n"))
    (tmp_path / "src/.hidden").write_text("never read\n")
    expected = [["Gamma one."], ["Delta one."]] + WIKI_DOCS  # sorted walk: b.txt.gz, then sub/wiki_00
    assert _docs([tmp_path / "src"]) == expected
    assert _docs([tmp_path / "src" / "*" / "wiki_*"]) == WIKI_DOCS
    with tarfile.open(tmp_path / "all.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src/b.txt.gz", "x/b.txt.gz")
        tar.add(tmp_path / "src/sub/wiki_00", "x/sub/wiki_00")
    assert _docs([tmp_path / "all.tar.gz"]) == expected


def test_binary_files_skipped_and_invalid_utf8_replaced(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"caf\xe9 ok\n\nbad \xff\xfe bytes\n")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 10)
    stats = ReadStats()
    assert _docs([tmp_path], stats=stats) == [["caf\ufffd ok"], ["bad \ufffd\ufffd bytes"]]
    assert (stats.replaced, stats.replaced_files, stats.binary_skipped) == (3, 1, 1)
    assert len(stats.warnings()) == 2


def test_missing_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ElectraError, match="does not exist"):
        _docs([tmp_path / "nope.txt"])
    with pytest.raises(ElectraError, match="matches no files"):
        _docs([tmp_path / "*.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ElectraError, match="contains no files"):
        _docs([tmp_path / "empty"])


def test_wiki_slice_reader_finds_documents_without_titles(wiki_en_slice):
    docs = _docs([wiki_en_slice])
    assert len(docs) > 100
    raw = "".join(p.read_text() for p in sorted(wiki_en_slice.rglob("wiki_*")))
    assert len(docs) == len(re.findall(r"^</doc>", raw, flags=re.M))  # every article has a body here
    titles = re.findall(r'^<doc [^>]*title="([^"]*)">\n\1\n', raw, flags=re.M)
    assert len(titles) == len(docs)
    assert all(not p.startswith("<doc") and p != "</doc>" for d in docs for p in d)
    assert docs[0][0] != titles[0]


def test_sentence_splitter_english_and_chinese():
    assert split_sentences("It rains. J. R. Smith met the U.S. Army! Was it 1990? \"Yes.\" Done") == [
        "It rains.", "J. R. Smith met the U.S. Army!", "Was it 1990?", "\"Yes.\"", "Done"]
    assert split_sentences("e.g. lower case stays. The end.") == ["e.g. lower case stays.", "The end."]
    assert split_sentences("他说：「好！」我们走吧。《你的名字。》是电影？是的") == [
        "他说：「好！」", "我们走吧。", "《你的名字。》是电影？", "是的"]
    assert split_sentences("   ") == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_paragraph_with_sep_markers_encodes_like_separate_sentences(lang, shared_data, wiki_en_slice, wiki_zh_slice):
    from electra import data

    folder, vocab = {"en": (wiki_en_slice, "bert-base-uncased"), "zh": (wiki_zh_slice, "bert-base-chinese")}[lang]
    tok = load_tokenizer(shared_data / f"vocab/{vocab}.txt")
    data._init_worker(tok.to_str(), PackConfig(), in_process=True)
    ids = special_ids(tok)
    paragraphs = [p for doc in _docs([folder])[:40] for p in doc]
    for p in paragraphs:
        sentences = split_sentences(p)
        marked = data._worker["tok"].encode(" [SEP] ".join(sentences), add_special_tokens=False).ids
        alone = [tok.encode(s, add_special_tokens=False).ids for s in sentences]
        assert data._split_sentences_on_sep(marked, ids) == [a for a in alone if a]
    assert len(paragraphs) > 100


# --- packing on real data ------------------------------------------------------------------------------------------

def _join_pieces(tok, ids):
    """Decode wordpieces to text without spaces; [UNK] splits the result into pieces that must each be found."""
    text = "".join(t[2:] if t.startswith("##") else t for t in (tok.id_to_token(int(i)) for i in ids))
    return [p for p in text.split("[UNK]") if p]


def _check_examples_come_from_their_documents(data_dir, docs, convert=None, limit=400):
    tok = load_tokenizer(data_dir / "tokenizer")
    ids = special_ids(tok)
    ds = PretrainDataset(data_dir)
    normalized = {}
    step = max(1, len(ds) // limit)
    seen_docs = []
    for i in range(0, len(ds), step):
        e = ds.example(i)
        assert e[0] == ids["cls"] and e[-1] == ids["sep"] and len(e) <= ds.meta["seq_len"]
        seps = np.flatnonzero(e == ids["sep"])
        assert len(seps) in (1, 2) and ids["cls"] not in e[1:] and ids["pad"] not in e
        d = ds.document(i)
        seen_docs.append(d)
        if d not in normalized:
            text = " ".join(docs[d])
            text = convert(text) if convert else text
            normalized[d] = re.sub(r"\s+", "", tok.normalizer.normalize_str(text))
        for segment in (e[1:seps[0]], e[seps[0] + 1:-1]):
            for piece in _join_pieces(tok, segment):
                assert piece in normalized[d], f"example {i}: {piece[:80]!r} not in document {d}"
    assert seen_docs == sorted(seen_docs)  # documents are packed in input order
    return ds


def test_packed_english_examples_decode_to_their_document(tiny_prepared_dir, wiki_en_slice):
    ds = _check_examples_come_from_their_documents(tiny_prepared_dir, _docs([wiki_en_slice]))
    meta = ds.meta
    assert meta["num_train"] >= 300 and meta["num_valid"] > 0
    lengths = np.array([len(ds.example(i)) for i in range(len(ds))])
    assert lengths.sum() == meta["num_train_tokens"] and lengths.max() == meta["seq_len"]
    assert (lengths == meta["seq_len"]).mean() > 0.6  # most examples fill the target length
    sep = meta["sep_id"]
    pairs = np.mean([np.count_nonzero(ds.example(i) == sep) == 2 for i in range(len(ds))])
    assert 0.6 < pairs < 0.95  # ~10% single-segment by design, plus document ends


def test_packed_chinese_examples_with_opencc(shared_data, wiki_zh_slice, tmp_path):
    out = tmp_path / "zh"
    assert _prepare_cli([wiki_zh_slice], shared_data / "vocab/bert-base-chinese.txt", out, "--opencc", "t2s",
                        "--valid-fraction", "0.1") == 0
    docs = _docs([wiki_zh_slice])
    ds = _check_examples_come_from_their_documents(out, docs, convert=make_converter("t2s"))
    tok = load_tokenizer(out / "tokenizer")
    text = "".join(tok.id_to_token(int(t)) for i in range(0, len(ds), 7) for t in ds.example(i))
    assert "電" not in text and "电" in text  # Traditional converted to Simplified before tokenizing
    assert PretrainDataset(out, "valid").meta["num_valid"] > 0


def test_examples_never_span_documents(tiny_tokenizer_dir, tmp_path):
    # Documents of distinct words; a long sentence, short documents, and a one-word document.
    words = ["city", "river", "music", "war", "king"]
    docs = [" ".join([w] * n) + "." for w, n in zip(words, (300, 3, 40, 1, 90))]
    (tmp_path / "docs.txt").write_text("\n\n".join(docs) + "\n")
    out = tmp_path / "out"
    assert _prepare_cli([tmp_path / "docs.txt"], tiny_tokenizer_dir, out, "--valid-fraction", "0") == 0
    tok = load_tokenizer(out / "tokenizer")
    ds = PretrainDataset(out)
    found = []
    for i in range(len(ds)):
        content = set(tok.decode(ds.example(i).tolist()).replace(".", " ").split())
        assert len(content) == 1, content
        found.append(words.index(content.pop()))
        assert found[-1] == ds.document(i)
    assert sorted(set(found)) == [0, 1, 2, 3, 4] and found == sorted(found)


def test_same_seed_same_bytes_any_worker_count(tiny_prepared_dir, tiny_tokenizer_dir, wiki_en_slice, tmp_path):
    config = PackConfig(seq_len=64, seed=0, valid_fraction=0.05)
    prepare([wiki_en_slice], tiny_tokenizer_dir, tmp_path / "w2", config, workers=2, progress_bar=False)
    assert _folder_bytes(tmp_path / "w2") == _folder_bytes(tiny_prepared_dir)
    other = PackConfig(seq_len=64, seed=1, valid_fraction=0.05)
    prepare([wiki_en_slice], tiny_tokenizer_dir, tmp_path / "s1", other, workers=0, progress_bar=False)
    assert (tmp_path / "s1/train-00000.bin").read_bytes() != (tiny_prepared_dir / "train-00000.bin").read_bytes()


def test_meta_json_contract(tiny_prepared_dir, tiny_tokenizer_dir):
    meta = json.loads((tiny_prepared_dir / "meta.json").read_text())
    tok = load_tokenizer(tiny_tokenizer_dir)
    assert meta["vocab_size"] == tok.get_vocab_size() == 2000 and meta["dtype"] == "uint16"
    assert {k: meta[f"{k}_id"] for k in ("pad", "unk", "cls", "sep", "mask")} == special_ids(tok)
    assert meta["seq_len"] == 64 and meta["seed"] == 0 and meta["format_version"] == 1
    assert meta["num_valid"] == len(PretrainDataset(tiny_prepared_dir, "valid"))
    assert (tiny_prepared_dir / "tokenizer/vocab.txt").read_bytes() == (tiny_tokenizer_dir / "vocab.txt").read_bytes()
    assert len(meta["tokenizer_fingerprint"]) == 16


def test_interrupted_run_looks_incomplete_and_resumes_to_same_bytes(tiny_tokenizer_dir, wiki_en_slice, tmp_path,
                                                                    monkeypatch, capsys):
    config = PackConfig(seq_len=64, seed=3, valid_fraction=0.05, batch_chars=100_000, shard_tokens=40_000)
    prepare([wiki_en_slice], tiny_tokenizer_dir, tmp_path / "clean", config, workers=0, progress_bar=False)
    assert len(json.loads((tmp_path / "clean/meta.json").read_text())["shards"]["train"]) > 3

    real_close, calls = _ShardWriter.close_shard, []

    def close_then_die(self, *a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_close(self, *a, **kw)

    monkeypatch.setattr(_ShardWriter, "close_shard", close_then_die)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        prepare([wiki_en_slice], tiny_tokenizer_dir, out, config, workers=0, progress_bar=False)
    assert not out.exists()
    with pytest.raises(ElectraError, match="no meta.json"):
        PretrainDataset(out)
    partial = out.with_name("resumed.tmp-prepare")
    assert sorted(p.name for p in partial.glob("train-*.bin")) == ["train-00000.bin", "train-00001.bin"]
    monkeypatch.setattr(_ShardWriter, "close_shard", real_close)
    capsys.readouterr()
    prepare([wiki_en_slice], tiny_tokenizer_dir, out, config, workers=2, progress_bar=False)
    assert "resuming" in capsys.readouterr().err
    assert _folder_bytes(out) == _folder_bytes(tmp_path / "clean") and not partial.exists()


def test_interrupted_run_with_other_settings_starts_clean(tiny_tokenizer_dir, wiki_en_slice, tmp_path, capsys):
    partial = tmp_path / "out.tmp-prepare"
    partial.mkdir()
    (partial / "progress.json").write_text(json.dumps({"signature": {"seed": 99}}))
    (partial / "train-00000.bin").write_bytes(b"junk")
    prepare([wiki_en_slice], tiny_tokenizer_dir, tmp_path / "out", PackConfig(seq_len=64), workers=0,
            progress_bar=False)
    assert "starting clean" in capsys.readouterr().err
    assert len(PretrainDataset(tmp_path / "out")) > 0 and not partial.exists()


# --- bad input through the CLI ---------------------------------------------------------------------------------------

def _fails_with(capsys, code, message):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and "Traceback" not in captured.err
    assert message in lines[-1] and lines[-1].startswith("electra prepare: error:"), captured.err


def test_bad_inputs_fail_with_one_line_and_write_nothing(tiny_tokenizer_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty.txt").write_text("")
    _fails_with(capsys, _prepare_cli([tmp_path / "empty.txt"], tiny_tokenizer_dir, out), "no text found")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    _fails_with(capsys, _prepare_cli([tmp_path / "blank.txt"], tiny_tokenizer_dir, out), "no text found")
    (tmp_path / "bins").mkdir()
    (tmp_path / "bins/x.bin").write_bytes(b"\x00\x01" * 5000)
    _fails_with(capsys, _prepare_cli([tmp_path / "bins"], tiny_tokenizer_dir, out), "1 skipped as binary")
    (tmp_path / "nothing").mkdir()
    _fails_with(capsys, _prepare_cli([tmp_path / "nothing"], tiny_tokenizer_dir, out), "contains no files")
    (tmp_path / "ok.txt").write_text("Some text here.\n")
    _fails_with(capsys, _prepare_cli([tmp_path / "ok.txt"], tmp_path / "no_tok", out), "tokenizer folder")
    _fails_with(capsys, _prepare_cli([tmp_path / "ok.txt"], tiny_tokenizer_dir, out, "--seq-len", "4"), "--seq-len")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bins", "blank.txt", "empty.txt", "nothing", "ok.txt"]


def test_output_folder_needs_overwrite(tiny_tokenizer_dir, tmp_path, capsys):
    (tmp_path / "a.txt").write_text("First text. Second sentence here.\n\nAnother document.\n")
    out = tmp_path / "out"
    assert _prepare_cli([tmp_path / "a.txt"], tiny_tokenizer_dir, out) == 0
    before = _folder_bytes(out)
    _fails_with(capsys, _prepare_cli([tmp_path / "a.txt"], tiny_tokenizer_dir, out), "pass --overwrite")
    assert _folder_bytes(out) == before
    assert _prepare_cli([tmp_path / "a.txt"], tiny_tokenizer_dir, out, "--overwrite", "--seed", "5") == 0
    assert json.loads((out / "meta.json").read_text())["seed"] == 5
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious/notes.txt").write_text("keep me")
    _fails_with(capsys, _prepare_cli([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "precious", "--overwrite"),
                "not a prepared data folder")
    assert (tmp_path / "precious/notes.txt").read_text() == "keep me"


def test_warnings_are_counted_and_run_continues(tiny_tokenizer_dir, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in/utf8.txt").write_bytes(b"The city \xff\xfe is large. It has a river.\n\nThe king \xc3 ruled.\n")
    (tmp_path / "in/image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(1000))
    (tmp_path / "in/long.txt").write_text("the city river " * 700_000 + "\n")  # one 10.5 MB line
    out = tmp_path / "out"
    assert _prepare_cli([tmp_path / "in"], tiny_tokenizer_dir, out) == 0
    err = capsys.readouterr().err
    assert "warning: skipped 1 binary file(s)" in err
    assert "warning: replaced 3 invalid UTF-8 sequence(s) with U+FFFD in 1 file(s)" in err
    assert "warning: cut 1 line(s) longer than 1,000,000 characters" in err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["warnings"] == {"binary_skipped": 1, "replaced": 3, "long_lines": 1, "bad_json": 0}
    assert meta["num_train_tokens"] > 1_000_000  # the long line is packed into many examples, not truncated to one


def test_extract_corpus_slice_cuts_at_document_end(shared_data, tmp_path):
    out = extract_corpus_slice(shared_data / "corpus/zhwiki-sample.tar.gz", tmp_path / "s", 300_000)
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert sum(p.stat().st_size for p in files) <= 300_000
    assert all(p.read_text().endswith("</doc>\n") for p in files)
    assert extract_corpus_slice(shared_data / "corpus/zhwiki-sample.tar.gz", tmp_path / "s", 300_000) == out


# --- loader ----------------------------------------------------------------------------------------------------------

def _example_keys(batch):
    lengths = batch["attention_mask"].sum(1).tolist()
    return [tuple(row[:n]) for row, n in zip(batch["input_ids"].tolist(), lengths)]


def _all_keys(ds):
    return collections.Counter(tuple(ds.example(i).tolist()) for i in range(len(ds)))


def test_batches_segments_and_padding(tiny_prepared_dir):
    loader = PretrainLoader(tiny_prepared_dir, batch_size=8, seed=0)
    meta = loader.meta
    batch = next(iter(loader))
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    assert ids.shape == types.shape == mask.shape and ids.shape[0] == 8 and ids.shape[1] % 8 == 0
    assert ids.dtype == types.dtype == mask.dtype == __import__("torch").int64
    for row in range(8):
        n = int(mask[row].sum())
        assert mask[row, :n].all() and not mask[row, n:].any()
        assert (ids[row, n:] == meta["pad_id"]).all() and ids[row, 0] == meta["cls_id"]
        seps = (ids[row, :n] == meta["sep_id"]).nonzero().flatten().tolist()
        assert seps[-1] == n - 1
        expected = [0] * (seps[0] + 1) + [1] * (n - seps[0] - 1) + [0] * (ids.shape[1] - n)
        assert types[row].tolist() == expected
    fixed = next(iter(PretrainLoader(tiny_prepared_dir, batch_size=4, fixed_length=True)))
    assert fixed["input_ids"].shape == (4, meta["seq_len"])


def test_two_ranks_are_disjoint_and_cover_the_epoch(tiny_prepared_dir):
    ds = PretrainDataset(tiny_prepared_dir)
    per_rank = []
    for rank in (0, 1):
        loader = PretrainLoader(tiny_prepared_dir, batch_size=16, rank=rank, world_size=2, seed=7)
        it = iter(loader)
        per_rank.append(collections.Counter(k for _ in range(len(loader)) for k in _example_keys(next(it))))
        assert loader.epoch == 0 and len(loader) == len(ds) // 32
    assert sum(per_rank[0].values()) == sum(per_rank[1].values()) == len(ds) // 32 * 16
    together = per_rank[0] + per_rank[1]
    everything = _all_keys(ds)
    assert not (together - everything)  # only real examples, none on both ranks (more often than it exists)
    assert sum((everything - together).values()) == len(ds) % 32  # only the uneven tail is dropped


def test_epochs_reshuffle_and_each_covers_the_data(tiny_prepared_dir):
    loader = PretrainLoader(tiny_prepared_dir, batch_size=64, seed=1)
    it = iter(loader)
    epochs = []
    for _ in range(3):
        epochs.append([k for _ in range(len(loader)) for k in _example_keys(next(it))])
    assert loader.epoch == 2
    assert epochs[0] != epochs[1] and collections.Counter(epochs[0]) != collections.Counter()
    full = _all_keys(loader.dataset)
    for e in epochs:
        assert not collections.Counter(e) - full
    next(it)
    assert loader.epoch == 3


def test_resume_continues_at_the_same_example(tiny_prepared_dir):
    loader = PretrainLoader(tiny_prepared_dir, batch_size=8, rank=1, world_size=2, seed=5)
    n = len(loader)
    it = iter(loader)
    for _ in range(n + 2):  # into the second epoch
        next(it)
    state = json.loads(json.dumps(loader.state_dict()))
    expected = [next(it)["input_ids"] for _ in range(3)]
    resumed = PretrainLoader(tiny_prepared_dir, batch_size=8, rank=1, world_size=2, seed=5)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    it2 = iter(resumed)
    for want in expected:
        assert (next(it2)["input_ids"] == want).all()
    with pytest.raises(ElectraError, match="seed"):
        PretrainLoader(tiny_prepared_dir, batch_size=8, rank=1, world_size=2, seed=6).load_state_dict(state)
    with pytest.raises(ElectraError, match="batch size x world size"):
        PretrainLoader(tiny_prepared_dir, batch_size=3, seed=5).load_state_dict(state)


def test_valid_split_is_one_ordered_pass(tiny_prepared_dir):
    loader = PretrainLoader(tiny_prepared_dir, split="valid", batch_size=10, shuffle=False, drop_last=False)
    keys = [k for b in loader for k in _example_keys(b)]
    ds = loader.dataset
    assert keys == [tuple(ds.example(i).tolist()) for i in range(len(ds))]
    assert [k for b in loader for k in _example_keys(b)] == keys  # a second pass starts over


def test_loader_errors(tiny_prepared_dir, tmp_path):
    with pytest.raises(ElectraError, match="no meta.json"):
        PretrainLoader(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ElectraError, match="incomplete: missing vocab_size"):
        PretrainDataset(tmp_path)
    with pytest.raises(ElectraError, match="rank 2"):
        PretrainLoader(tiny_prepared_dir, rank=2, world_size=2)
    with pytest.raises(ElectraError, match="fewer than one global batch"):
        PretrainLoader(tiny_prepared_dir, batch_size=10**6)


def test_truncated_shard_is_detected(tiny_prepared_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_prepared_dir, copy)
    with open(copy / "train-00000.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ElectraError, match="does not match its index"):
        PretrainDataset(copy)


def test_large_vocab_is_stored_as_uint32(tmp_path):
    words = ["hello", "world", "."]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"filler{i}" for i in range(70_000)] + words
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tmp_path / "a.txt").write_text("Hello world. Hello world.\n\nWorld hello.\n")
    out = tmp_path / "out"
    assert _prepare_cli([tmp_path / "a.txt"], tmp_path / "vocab.txt", out, "--valid-fraction", "0") == 0
    ds = PretrainDataset(out)
    assert ds.meta["dtype"] == "uint32" and ds.meta["vocab_size"] == len(vocab)
    hello, world, dot = (vocab.index(w) for w in words)
    assert sorted(tuple(ds.example(i)[1:-1][:3].tolist()) for i in range(len(ds))) == [(hello, world, dot),
                                                                                        (world, hello, dot)]
