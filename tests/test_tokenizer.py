"""Tokenizer training, vocab import, loading, and parity with transformers' Bert/Electra fast tokenizers.

    .venv/bin/pytest -q tests/test_tokenizer.py
"""
from __future__ import annotations

import json

import pytest

from electra.cli import main
from electra.charmap import opencc_charmap
from electra.errors import ElectraError
from electra.readers import iter_documents, make_converter
from electra.tokenizer import (FILES, auto_alphabet, check_vocab, load_tokenizer, save_tokenizer_folder,
                               special_ids, tokenizer_from_vocab, train_tokenizer, unk_rate, vocab_hash)


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


# ---------------------------------------------------------------------------------------------------------------
# Chinese: the alphabet chosen from the data, the OpenCC conversion built into the folder, vocabulary identity

TRADITIONAL, SIMPLIFIED = "還不錯，性價比很高", "还不错，性价比很高"


def _chnsenticorp_dev(shared_data, n=400) -> list[str]:
    lines = (shared_data / "zh/chnsenticorp/dev.tsv").read_text(encoding="utf-8").splitlines()[1:n + 1]
    return [line.split("\t", 1)[1] for line in lines]


@pytest.fixture(scope="module")
def zh_tokenizer_dir(wiki_zh_slice, tmp_path_factory):
    """An 8,000-entry tokenizer trained by the CLI with the default alphabet and --opencc t2s (a few seconds)."""
    out = tmp_path_factory.mktemp("zh") / "tok"
    assert main(["tokenizer", "train", "--input", str(wiki_zh_slice), "--vocab-size", "8000", "--opencc", "t2s",
                 "--out", str(out)]) == 0
    return out


def test_default_alphabet_keeps_the_chinese_characters(zh_tokenizer_dir, wiki_zh_slice, shared_data, capsys):
    texts = _chnsenticorp_dev(shared_data)
    unk, total = unk_rate(load_tokenizer(zh_tokenizer_dir), texts)
    assert unk / total < 0.01  # 0.7%; the old --limit-alphabet 1000 default: 14%
    old = train_tokenizer([wiki_zh_slice], 8000, limit_alphabet=1000, opencc="t2s")
    unk_old, total_old = unk_rate(old, texts)
    assert unk_old / total_old > 0.05
    capsys.readouterr()
    assert main(["tokenizer", "train", "--input", str(wiki_zh_slice), "--vocab-size", "8000", "--limit-alphabet",
                 "1000", "--out", str(zh_tokenizer_dir.parent / "old")]) == 0
    out, err = capsys.readouterr()
    assert "coverage: alphabet 1,000 of " in out and "held-out paragraphs" in out
    assert "warning:" in err and "of held-out tokens are [UNK]" in err


def test_auto_alphabet_rule():
    counts = {"a": 5, "b": 2, "c": 1, "d": 9}
    assert auto_alphabet(counts, vocab_size=100, min_frequency=2)[0] == 3  # every character seen twice or more
    assert auto_alphabet(counts, vocab_size=100, min_frequency=1)[0] == 4
    assert auto_alphabet(counts, vocab_size=4, min_frequency=1)[0] == 2  # at most half the vocab


def test_opencc_conversion_lives_in_the_tokenizer_folder(zh_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = load_tokenizer(zh_tokenizer_dir)
    assert tok.encode(TRADITIONAL).ids == tok.encode(SIMPLIFIED).ids
    assert special_ids(tok)["unk"] not in tok.encode(SIMPLIFIED).ids
    assert json.loads((zh_tokenizer_dir / "tokenizer_config.json").read_text())["electra_opencc"] == "t2s"
    # a folder reduced to vocab.txt + tokenizer_config.json rebuilds the conversion from the config
    slim = tmp_path / "slim"
    slim.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        (slim / name).write_text((zh_tokenizer_dir / name).read_text(encoding="utf-8"), encoding="utf-8")
    assert load_tokenizer(slim).encode(TRADITIONAL).ids == tok.encode(SIMPLIFIED).ids
    # transformers loads tokenizer.json as it is, conversion included
    theirs = AutoTokenizer.from_pretrained(str(zh_tokenizer_dir))
    assert theirs(TRADITIONAL)["input_ids"] == theirs(SIMPLIFIED)["input_ids"] == tok.encode(SIMPLIFIED).ids
    assert theirs(TRADITIONAL, SIMPLIFIED)["token_type_ids"] == tok.encode(TRADITIONAL, SIMPLIFIED).type_ids
    # the same vocab without the conversion tells the two apart
    plain = tokenizer_from_vocab(zh_tokenizer_dir / "vocab.txt")
    assert plain.encode(TRADITIONAL).ids != plain.encode(SIMPLIFIED).ids


def test_opencc_character_map_matches_opencc_char_by_char():
    from tokenizers import normalizers

    from electra.charmap import precompiled_charsmap

    table = opencc_charmap("t2s")
    assert len(table) > 4000 and table["還"] == "还"
    keys = "".join(table)
    assert normalizers.Precompiled(precompiled_charsmap(table)).normalize_str(keys + " abc Café 电影") == \
        "".join(table.values()) + " abc Café 电影"
    assert make_converter("t2s")(TRADITIONAL) == SIMPLIFIED


def test_import_with_opencc(shared_data, tmp_path):
    assert main(["tokenizer", "import", "--vocab", str(shared_data / "vocab/bert-base-chinese.txt"), "--opencc", "t2s",
                 "--out", str(tmp_path / "zh")]) == 0
    tok = load_tokenizer(tmp_path / "zh")
    assert tok.encode(TRADITIONAL).ids == tok.encode(SIMPLIFIED).ids
    assert vocab_hash(tok) == vocab_hash(tokenizer_from_vocab(shared_data / "vocab/bert-base-chinese.txt"))


def test_vocab_hash_is_identity_not_size(shared_data, zh_tokenizer_dir, tmp_path):
    bert = tokenizer_from_vocab(shared_data / "vocab/bert-base-chinese.txt")
    lines = (shared_data / "vocab/bert-base-chinese.txt").read_text(encoding="utf-8").split("\n")
    lines[2000], lines[2001] = lines[2001], lines[2000]  # same size, same tokens, two ids swapped
    (tmp_path / "swapped.txt").write_text("\n".join(lines), encoding="utf-8")
    swapped = tokenizer_from_vocab(tmp_path / "swapped.txt")
    assert swapped.get_vocab_size() == bert.get_vocab_size() and vocab_hash(swapped) != vocab_hash(bert)
    ours = load_tokenizer(zh_tokenizer_dir)
    assert vocab_hash(ours) == vocab_hash(load_tokenizer(zh_tokenizer_dir / "vocab.txt"))  # conversion aside
    check_vocab(ours, vocab_hash(ours), zh_tokenizer_dir, "runs/x")
    check_vocab(ours, None, zh_tokenizer_dir, "runs/x")  # nothing recorded: nothing to compare
    with pytest.raises(ElectraError, match=f"tokenizer .*{vocab_hash(bert)}.* is not the vocabulary of runs/x "
                                           f"\\(vocab {vocab_hash(ours)}\\)"):
        check_vocab(bert, vocab_hash(ours), shared_data / "vocab/bert-base-chinese.txt", "runs/x")
