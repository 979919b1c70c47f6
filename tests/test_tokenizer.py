"""Tokenizer training, vocab import, loading, and parity with transformers' Bert/Electra fast tokenizers.

    .venv/bin/pytest -q tests/test_tokenizer.py
"""
from __future__ import annotations

import json

import pytest

from electra.cli import main
from electra.errors import ElectraError
from electra.readers import iter_documents, make_converter
from electra.tokenizer import (FILES, load_tokenizer, save_tokenizer_folder, special_ids, tokenizer_from_vocab,
                               train_tokenizer)


def _wiki_paragraphs(folder, n=40):
    out = []
    for doc in iter_documents([folder]):
        out += doc[:3]
        if len(out) >= n:
            return out[:n]
    return out


@pytest.mark.parametrize("cls_name", ["BertTokenizerFast", "ElectraTokenizerFast"])
def test_trained_tokenizer_matches_transformers(tiny_tokenizer_dir, wiki_en_slice, cls_name):
    import transformers

    ours = load_tokenizer(tiny_tokenizer_dir)
    theirs = getattr(transformers, cls_name).from_pretrained(str(tiny_tokenizer_dir))
    texts = _wiki_paragraphs(wiki_en_slice) + ["Héllo WÖRLD, naïve café 東京 don't!", "a [MASK] b [SEP] [cls]"]
    for a, b in zip(texts, texts[1:]):
        single, pair = ours.encode(a), ours.encode(a, b)
        assert theirs(a)["input_ids"] == single.ids
        got = theirs(a, b)
        assert got["input_ids"] == pair.ids and got["token_type_ids"] == pair.type_ids
    assert theirs.pad_token_id == special_ids(ours)["pad"] and theirs.mask_token_id == special_ids(ours)["mask"]


def test_trained_tokenizer_splits_cjk_and_lowercases(tiny_tokenizer_dir):
    tok = load_tokenizer(tiny_tokenizer_dir)
    assert tok.encode("THE City").ids == tok.encode("the city").ids
    assert tok.encode("café").ids == tok.encode("cafe").ids  # accents stripped with lowercase, as BERT uncased
    assert tok.encode("東京", add_special_tokens=False).tokens == ["[UNK]", "[UNK]"]  # one token per CJK character


def test_import_bert_uncased_matches_transformers(shared_data, wiki_en_slice):
    from transformers import BertTokenizerFast

    vocab = shared_data / "vocab/bert-base-uncased.txt"
    ours = tokenizer_from_vocab(vocab)
    reference = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    for text in _wiki_paragraphs(wiki_en_slice) + ["Héllo Wörld 東京 don't", "a [MASK] b [SEP] [cls]"]:
        assert ours.encode(text).ids == reference(text)["input_ids"]
    assert ours.get_vocab_size() == 30522
    assert special_ids(ours) == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}


def test_import_bert_chinese_with_opencc(shared_data, wiki_zh_slice, tmp_path):
    from transformers import BertTokenizerFast

    assert main(["tokenizer", "import", "--vocab", str(shared_data / "vocab/bert-base-chinese.txt"),
                 "--out", str(tmp_path / "zh")]) == 0
    ours = load_tokenizer(tmp_path / "zh")
    theirs = BertTokenizerFast.from_pretrained(str(tmp_path / "zh"))
    t2s = make_converter("t2s")
    assert t2s("該專輯收錄的電影配樂") == "该专辑收录的电影配乐"
    for text in _wiki_paragraphs(wiki_zh_slice):
        assert ours.encode(t2s(text)).ids == theirs(t2s(text))["input_ids"]
    assert ours.encode("电影ABC", add_special_tokens=False).tokens == ["电", "影", "abc"]


def test_cli_train_refuses_existing_output_and_overwrites(wiki_en_slice, tmp_path, capsys):
    out = tmp_path / "tok"
    args = ["tokenizer", "train", "--input", str(wiki_en_slice), "--vocab-size", "600", "--limit-alphabet", "200",
            "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert load_tokenizer(out).get_vocab_size() == 600
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is True
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "exists; pass --overwrite" in err and err.count("\n") == 1
    assert main(args + ["--overwrite", "--no-lowercase", "--vocab-size", "700"]) == 0
    tok = load_tokenizer(out)
    assert tok.get_vocab_size() == 700 and tok.encode("The").ids != tok.encode("the").ids
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is False
    assert not list(tmp_path.glob("tok.tmp-*"))


def test_cli_train_on_empty_input_fails_cleanly(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    code = main(["tokenizer", "train", "--input", str(tmp_path / "empty.txt"), "--vocab-size", "100",
                 "--out", str(tmp_path / "tok")])
    assert code == 2 and "no text found" in capsys.readouterr().err
    assert not (tmp_path / "tok").exists()


def test_load_tokenizer_from_vocab_only_folder_respects_config(tiny_tokenizer_dir, tmp_path):
    folder = tmp_path / "vocab_only"
    folder.mkdir()
    (folder / "vocab.txt").write_text((tiny_tokenizer_dir / "vocab.txt").read_text())
    full = load_tokenizer(tiny_tokenizer_dir)
    assert load_tokenizer(folder).encode("The City of Manchester").ids == full.encode("The City of Manchester").ids
    assert load_tokenizer(folder / "vocab.txt").get_vocab() == full.get_vocab()
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert load_tokenizer(folder).encode("The").ids != load_tokenizer(folder).encode("the").ids


def test_save_roundtrip_keeps_ids(tiny_tokenizer_dir, tmp_path):
    tok = load_tokenizer(tiny_tokenizer_dir)
    save_tokenizer_folder(tok, tmp_path / "copy")
    again = load_tokenizer(tmp_path / "copy")
    assert again.to_str() == tok.to_str()
    lines = (tmp_path / "copy/vocab.txt").read_text().split("\n")[:-1]
    assert [again.token_to_id(t) for t in lines] == list(range(len(lines)))


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(ElectraError, match="not found"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ElectraError, match="neither tokenizer.json nor vocab.txt"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    with pytest.raises(ElectraError, match=r"lacks the special token\(s\) \[MASK\]"):
        load_tokenizer(tmp_path / "vocab.txt")
    (tmp_path / "dup.txt").write_text("[PAD]\n[UNK]\n[PAD]\n")
    with pytest.raises(ElectraError, match="line 3"):
        load_tokenizer(tmp_path / "dup.txt")


def test_train_tokenizer_rejects_tiny_vocab(wiki_en_slice):
    with pytest.raises(ElectraError, match="--vocab-size"):
        train_tokenizer([wiki_en_slice], vocab_size=3)


def test_case_and_accent_options(shared_data, tmp_path):
    vocab = shared_data / "vocab/bert-base-uncased.txt"
    default = tokenizer_from_vocab(vocab)
    keep = tokenizer_from_vocab(vocab, strip_accents=False)
    cased = tokenizer_from_vocab(vocab, lowercase=False)
    assert default.encode("Café").ids == default.encode("cafe").ids
    assert keep.encode("Café").ids == keep.encode("café").ids != keep.encode("cafe").ids
    assert cased.encode("Cafe").ids != cased.encode("cafe").ids
    assert main(["tokenizer", "import", "--vocab", str(vocab), "--keep-accents", "--out", str(tmp_path / "k")]) == 0
    config = json.loads((tmp_path / "k/tokenizer_config.json").read_text())
    assert config["do_lower_case"] is True and config["strip_accents"] is False
    assert load_tokenizer(tmp_path / "k").encode("café").ids == keep.encode("café").ids
