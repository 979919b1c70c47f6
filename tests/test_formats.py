"""Corpus formats beyond text: Parquet, Arrow IPC, `datasets` save_to_disk folders, .bz2/.xz/.zip, hf: inputs.

The same English Wikipedia text, written at test time into each format, must prepare to byte-identical shards.

    .venv/bin/pytest -q tests/test_formats.py
"""
from __future__ import annotations

import bz2
import json
import lzma
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from electra.data import PackConfig, prepare
from electra.errors import ElectraError
from electra.readers import ReadStats, iter_documents
from electra.tables import HubDataset, parse_hub_dataset
from electra.sources import REPO_ROOT

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N_DOCS = 60  # of the ~130 in the 2 MB slice: about 1 MB of text, a few seconds per prepare


@pytest.fixture(scope="module")
def wiki_docs(wiki_en_slice):
    return list(iter_documents([wiki_en_slice]))[:N_DOCS]


def _docs(paths, **kw):
    return list(iter_documents([str(p) for p in paths], **kw))


def _as_text(docs) -> str:
    return "".join("\n".join(doc) + "\n\n" for doc in docs)


def _table(docs, column="text"):
    return pa.table({"id": [str(i) for i in range(len(docs))], column: ["\n".join(doc) for doc in docs]})


def _save_to_disk(table, folder, shards=3):
    """The layout `datasets.Dataset.save_to_disk` writes: Arrow stream files + state.json + dataset_info.json."""
    folder.mkdir(parents=True)
    step = -(-table.num_rows // shards)
    names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
    for i, name in enumerate(names):
        with pa.OSFile(str(folder / name), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table.slice(i * step, step), max_chunksize=7)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names],
                                                   "_split": "train"}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"text": {"dtype": "string"}}}))
    return folder


def _shards(folder):
    """Every file of a prepared folder, and meta.json without what describes the input file itself."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != "meta.json"}
    meta = json.loads((folder / "meta.json").read_text())
    return files, {k: v for k, v in meta.items() if k != "input_bytes"}


def test_every_format_prepares_to_the_same_shards_as_text(wiki_docs, tiny_tokenizer_dir, tmp_path):
    text = _as_text(wiki_docs)
    src = tmp_path / "src"
    src.mkdir()
    (src / "wiki.txt").write_text(text)
    pq.write_table(_table(wiki_docs), src / "wiki.parquet", row_group_size=16)
    (src / "parquet_dir").mkdir()
    pq.write_table(_table(wiki_docs[:25]), src / "parquet_dir/part-0000.parquet")
    pq.write_table(_table(wiki_docs[25:]), src / "parquet_dir/part-0001.parquet")
    (src / "parquet_dir/README.md").write_text("# a dataset card, not corpus text\n")
    with pa.OSFile(str(src / "wiki.arrow"), "wb") as f, pa.ipc.new_file(f, _table(wiki_docs).schema) as w:
        w.write_table(_table(wiki_docs), max_chunksize=9)
    _save_to_disk(_table(wiki_docs), src / "saved")
    (src / "wiki.txt.bz2").write_bytes(bz2.compress(text.encode()))
    (src / "wiki.txt.xz").write_bytes(lzma.compress(text.encode()))
    cut = text.index("\n\n", len(text) // 2) + 2  # two members, each whole documents
    with zipfile.ZipFile(src / "wiki.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("wiki/a.txt", text[:cut])
        z.writestr("__MACOSX/wiki/._a.txt", "resource fork junk")
        z.writestr("wiki/b.txt.bz2", bz2.compress(text[cut:].encode()))
    config = PackConfig(seq_len=64, seed=0, valid_fraction=0.05)

    def prepared(name):
        out = tmp_path / "out" / name
        prepare([src / name], tiny_tokenizer_dir, out, config, workers=0, progress_bar=False)
        return _shards(out)

    reference = prepared("wiki.txt")
    assert reference[1]["num_documents"] == N_DOCS and reference[1]["num_train"] > 100
    for name in ("wiki.parquet", "parquet_dir", "wiki.arrow", "saved", "wiki.txt.bz2", "wiki.txt.xz", "wiki.zip"):
        files, meta = prepared(name)
        assert meta == reference[1], name
        assert files.keys() == reference[0].keys(), name
        assert files == reference[0], f"{name}: shards differ from the .txt ones"


def test_datasets_save_to_disk_folder_reads_like_the_text(wiki_docs, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"title": [d[0][:20] for d in wiki_docs], "text": ["\n".join(d) for d in wiki_docs]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "one"), num_shards=2)
    assert _docs([tmp_path / "one"]) == wiki_docs
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": rows["text"][:5]}),
                                   "validation": datasets.Dataset.from_dict({"text": rows["text"][5:7]})})
    splits.save_to_disk(str(tmp_path / "dict"))  # dataset_dict.json + one save_to_disk folder per split
    assert _docs([tmp_path / "dict"]) == wiki_docs[:7]  # splits in sorted folder order: train, validation
    assert _docs([tmp_path / "dict/validation"]) == wiki_docs[5:7]


def test_column_cells_split_into_paragraphs_like_text_lines(tmp_path):
    """Only \\n, \\r\\n and \\r end a paragraph (as in a text file); over-long lines are cut and counted the same."""
    cells = ["  One.\r\nTwo\u2028still two\x85too.\rThree. ", "", None, "\n\n  \n", "x" * 2_500_001 + "\nTail."]
    pq.write_table(pa.table({"text": cells}), tmp_path / "c.parquet")
    (tmp_path / "c.txt").write_text("\n\n".join(c for c in cells if c and c.strip()) + "\n", newline="")
    text_stats, col_stats = ReadStats(), ReadStats()
    expected = _docs([tmp_path / "c.txt"], stats=text_stats)
    assert _docs([tmp_path / "c.parquet"], stats=col_stats) == expected
    assert expected[0] == ["One.", "Two\u2028still two\x85too.", "Three."] and len(expected[1]) == 4
    assert col_stats.long_lines == text_stats.long_lines == 1
    assert (col_stats.documents, col_stats.files) == (2, 1)
    assert col_stats.disk_bytes == (tmp_path / "c.parquet").stat().st_size


def test_text_field_picks_the_column_and_a_missing_one_names_the_columns(wiki_docs, tmp_path):
    pq.write_table(_table(wiki_docs[:3], column="content"), tmp_path / "c.parquet")
    assert _docs([tmp_path / "c.parquet"], text_field="content") == wiki_docs[:3]
    with pytest.raises(ElectraError, match=r"c.parquet: no column 'text'; columns: id, content"):
        _docs([tmp_path / "c.parquet"])
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "n.parquet")
    with pytest.raises(ElectraError, match="column 'text' holds int64, not text"):
        _docs([tmp_path / "n.parquet"])
    _save_to_disk(_table(wiki_docs[:3], column="body"), tmp_path / "saved")
    with pytest.raises(ElectraError, match="no column 'text'; columns: id, body"):
        _docs([tmp_path / "saved"])


def test_broken_columnar_and_compressed_files_are_one_line_errors(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    (tmp_path / "bad.txt.bz2").write_bytes(b"BZh9 not really bz2")
    (tmp_path / "bad.txt.xz").write_bytes(b"\xfd7zXZ\x00 not really xz")
    (tmp_path / "bad.zip").write_bytes(b"PK not really a zip")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved/state.json").write_text(json.dumps({"_data_files": [{"filename": "data-0.arrow"}]}))
    (tmp_path / "saved/dataset_info.json").write_text("{}")
    for name, words in (("bad.parquet", "not a readable Parquet file"), ("bad.txt.bz2", "bad.txt.bz2"),
                        ("bad.txt.xz", "corrupt or truncated"), ("bad.zip", "not a readable zip archive"),
                        ("saved", "saved dataset is incomplete")):
        with pytest.raises(ElectraError, match=words) as e:
            _docs([tmp_path / name])
        assert "\n" not in str(e.value)


def test_compressed_tar_members_and_folder_rules(wiki_docs, tmp_path):
    (tmp_path / "a.txt.xz").write_bytes(lzma.compress(_as_text(wiki_docs[:2]).encode()))
    with tarfile.open(tmp_path / "all.tar.bz2", "w:bz2") as tar:
        tar.add(tmp_path / "a.txt.xz", "x/a.txt.xz")
    assert _docs([tmp_path / "all.tar.bz2"]) == wiki_docs[:2]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "notes.txt").write_text("only read when the folder has no Parquet or Arrow files\n")
    pq.write_table(_table(wiki_docs[2:4]), mixed / "x.parquet")
    assert _docs([mixed]) == wiki_docs[2:4]
    (tmp_path / "noext").write_bytes((mixed / "x.parquet").read_bytes())  # sniffed by its PAR1 magic
    assert _docs([tmp_path / "noext"]) == wiki_docs[2:4]


def test_hub_dataset_specs():
    assert parse_hub_dataset("hf:wikitext") == HubDataset("wikitext", None, "train")
    assert parse_hub_dataset("hf:org/corpus:validation") == HubDataset("org/corpus", None, "validation")
    assert parse_hub_dataset("hf:wikitext:wikitext-103-raw-v1") == HubDataset("wikitext", "wikitext-103-raw-v1")
    assert parse_hub_dataset("hf:c4:en:test") == HubDataset("c4", "en", "test")
    assert str(parse_hub_dataset("hf:c4:en:test")) == "hf:c4:en:test"
    for bad in ("hf:", "hf::train", "hf:a:b:c:d", "hf:a::train"):
        with pytest.raises(ElectraError, match="not hf:NAME"):
            parse_hub_dataset(bad)


def _cli(*args, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "electra", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=300)


def test_cli_parquet_text_field_missing_column_and_offline_hub_dataset(wiki_docs, tiny_tokenizer_dir, tmp_path):
    pq.write_table(_table(wiki_docs[:5], column="body"), tmp_path / "c.parquet")
    common = ["--tokenizer", tiny_tokenizer_dir, "--seq-len", "64", "--workers", "0", "--no-progress"]
    r = _cli("prepare", "--input", tmp_path / "c.parquet", "--out", tmp_path / "out", *common)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("electra") and "error" in lines[0], lines
    assert lines[0].endswith(f"{tmp_path / 'c.parquet'}: no column 'text'; columns: id, body "
                             f"(choose one with --text-field)")
    assert not (tmp_path / "out").exists()
    r = _cli("prepare", "--input", tmp_path / "c.parquet", "--out", tmp_path / "out", "--text-field", "body",
             *common)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out/meta.json").read_text())["num_documents"] == 5
    pytest.importorskip("datasets")
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    r = _cli("prepare", "--input", "hf:wikitext:wikitext-2-raw-v1:train", "--out", tmp_path / "hub", *common,
             env=offline)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'hf:wikitext:wikitext-2-raw-v1:train'" in lines[0], lines
    assert "HF_HUB_OFFLINE and HF_DATASETS_OFFLINE set" in lines[0] and "hf download wikitext" in lines[0]


def test_corpus_formats_benchmark_smoke(shared_data):
    """benchmarks/corpus_formats.py end to end on the 2 MB slice (no timing thresholds: it runs and reads alike)."""
    r = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks/corpus_formats.py"), "--max-mb", "2",
                        "--prepare-mb", "1"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    reads = [line for line in r.stdout.splitlines() if line.startswith("read")]
    assert len(reads) == 6 and len({line.split(":")[1].split(";")[0] for line in reads[:3]}) == 1, r.stdout
    assert sum(line.startswith("prepare") for line in r.stdout.splitlines()) == 2
