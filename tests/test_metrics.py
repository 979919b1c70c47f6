"""The official scorers in electra/metrics.py on their own rules: CMRC 2018 (its punctuation list, its mixed
segmentation, LCS F1), SQuAD v1.1 / v2.0 (normalisation, empty answers, HasAns / NoAns) and conlleval's chunking,
each on hand-computed cases chosen where a looser rule scores differently; then against the reference libraries
where installed: NLTK's word tokenizer on real CMRC / GLUE text, seqeval on the real CoNLL-2003 valid tags
perturbed (IOB2 and IOB1). A second or two.

    .venv/bin/pytest -q tests/test_metrics.py
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from electra import metrics
from electra.metrics import cmrc_em_f1, cmrc_segments, conll_chunks, entity_f1, squad_v1_em_f1, squad_v2_em_f1
from electra.tasks import get_task
from electra.tasks.qa import Example
from electra.tasks.tagging import read_conll


def f1_of(common: int, n_pred: int, n_gold: int) -> float:
    p, r = common / n_pred, common / n_gold
    return 2 * p * r / (p + r)


# ---------------------------------------------------------------------------------------------------------------
# CMRC 2018


def test_cmrc_only_the_official_punctuation_is_removed():
    # ASCII brackets are not in the script's list: the prediction has 4 segments ( 北 京 ), gold 2, common run 2.
    assert cmrc_em_f1("(北京)", ["北京"]) == (0.0, pytest.approx(f1_of(2, 4, 2)))  # 2/3; a strip-all rule: 1, 1
    assert cmrc_em_f1("【北京】", ["北京"]) == (0.0, pytest.approx(2 / 3))  # 【】 are not in the list either
    assert cmrc_em_f1("（北京）", ["北京"]) == (1.0, 1.0)  # full-width brackets are
    assert cmrc_em_f1("《红楼梦》。", ["红楼梦"]) == (1.0, 1.0)
    assert cmrc_em_f1("(北京)", ["北京市"])[1] == pytest.approx(4 / 7)  # 0.57: common 2 of 4 predicted, 3 gold
    # The list's '……' entry is two characters and never matches one, so '…' stays a segment.
    assert cmrc_em_f1("北京…", ["北京"]) == (0.0, pytest.approx(f1_of(2, 3, 2)))
    assert cmrc_em_f1("'北京'", ["北京"])[0] == 0.0  # ' is not in the list
    assert cmrc_em_f1("北京’", ["北京"]) == (1.0, 1.0)  # ’ is


def test_cmrc_mixed_segmentation_and_lcs_f1():
    assert cmrc_segments("2018年，Peking University！") == ["2018", "年", "peking", "university"]
    assert cmrc_segments("iOS 7系统") == ["ios", "7", "系", "统"]
    assert cmrc_segments("U.S.") == ["u.s", "."]  # NLTK's word_tokenize splits the final period
    assert cmrc_em_f1("u.s", ["U.S."]) == (0.0, pytest.approx(f1_of(1, 1, 2)))
    assert cmrc_em_f1("北 京", ["北京"]) == (0.0, 1.0)  # EM keeps inner spaces; segments do not
    em, f1 = cmrc_em_f1("北京大学", ["北京"])
    assert em == 0.0 and f1 == pytest.approx(f1_of(2, 4, 2))
    assert cmrc_em_f1("京大", ["北京大学"])[1] == pytest.approx(f1_of(2, 2, 4))
    assert cmrc_em_f1("北大学", ["北京大学"])[1] == pytest.approx(f1_of(2, 3, 4))  # the contiguous run 大学
    assert cmrc_em_f1("上海", ["北京", "上海市"])[1] == pytest.approx(f1_of(2, 2, 3))  # max over golds
    assert cmrc_em_f1("", ["北京"]) == (0.0, 0.0)


def test_word_tokens_equal_nltk_on_real_text(shared_data):
    nltk_tokenize = pytest.importorskip("nltk.tokenize").NLTKWordTokenizer().tokenize
    doc = json.loads((shared_data / "zh/cmrc2018/cmrc2018_trial.json").read_text(encoding="utf-8"))
    texts = [t for a in doc["data"] for p in a["paragraphs"]
             for t in [p["context"]] + [q["question"] for q in p["qas"]] + [x["text"] for q in p["qas"]
                                                                              for x in q["answers"]]]
    runs = set()  # the non-CJK runs the CMRC segmentation hands to the tokenizer
    for text in texts:
        run = ""
        for ch in text.lower().strip():
            if ch in metrics.CMRC_PUNCTUATION:
                continue
            if "\u4e00" <= ch <= "\u9fa5":
                runs.add(run) if run else None
                run = ""
            else:
                run += ch
        runs.add(run) if run else None
    english = [line.split("\t")[0] for line in (shared_data / "glue/SST-2/dev.tsv").read_text().splitlines()[1:]]
    english += [s for line in (shared_data / "glue/MRPC/dev.tsv").read_text().splitlines()[1:]
                for s in line.split("\t")[3:5]]
    english += ["He said \"hi\" (twice).", "'tis gonna be, can't won't", "a -- b... c?! d;e@f", "«x» „y“ ‘z’",
                "3,000 a,b :c", "i'm you're they'll we've he'd", "it's 'quoted' ok'", "wanna go. gimme", "x — y"]
    assert len(runs) > 1000 and len(english) > 1600
    for text in sorted(runs) + english + [t.lower() for t in english]:
        assert metrics.word_tokens(text) == nltk_tokenize(text), text


# ---------------------------------------------------------------------------------------------------------------
# SQuAD v1.1 / v2.0


def test_squad_normalisation_and_overlap():
    assert metrics.squad_normalize("The  Cat, sat!") == "cat sat"
    assert metrics.squad_normalize("another apple") == "another apple"  # whole-word articles only
    for rule in (squad_v1_em_f1, squad_v2_em_f1):
        assert rule("the Eiffel Tower", ["Eiffel Tower"]) == (1.0, 1.0)
        em, f1 = rule("the cat sat", ["a cat sat on the mat"])  # [cat, sat] vs [cat, sat, on, mat]
        assert em == 0.0 and f1 == pytest.approx(f1_of(2, 2, 4))
        assert rule("cat", ["dog", "a cat"]) == (1.0, 1.0)  # max over golds
        assert rule("cat cat", ["cat"])[1] == pytest.approx(f1_of(1, 2, 1))  # a bag, not a set
        assert rule("“cat”", ["cat"]) == (0.0, 0.0)  # only ASCII punctuation is dropped


def test_squad_v1_and_v2_differ_on_empty_answers():
    assert squad_v1_em_f1("", [""]) == (1.0, 0.0)  # v1.1: no overlap is F1 0, even between two empties
    assert squad_v2_em_f1("", [""]) == (1.0, 1.0)  # v2.0: the no-answer prediction of an unanswerable question
    assert squad_v2_em_f1("x", [""]) == (0.0, 0.0) and squad_v2_em_f1("", ["cat"]) == (0.0, 0.0)
    # A gold that normalises to nothing: v1.1 keeps it (EM 1 for any article), v2.0 drops it.
    assert squad_v1_em_f1("a", ["The", "cat"]) == (1.0, 0.0)
    assert squad_v2_em_f1("a", ["The", "cat"]) == (0.0, 0.0)
    assert squad_v2_em_f1("a", ["The"]) == (1.0, 1.0)  # nothing left: [""], which the empty answer matches


def test_squad2_task_scores_has_ans_and_no_ans():
    examples = [Example("1", "q", "c", [{"text": "the cat", "answer_start": 0}]),
                Example("2", "q", "c", [{"text": "big dog", "answer_start": 0}]),
                Example("3", "q", "c", [], is_impossible=True),
                Example("4", "q", "c", [], is_impossible=True)]
    predictions = [{"answer": a} for a in ("cat", "dog", "", "dog")]
    m = get_task("squad2").metric(examples, predictions)
    has_f1 = [1.0, f1_of(1, 1, 2)]
    assert m["em"] == pytest.approx(100 * 2 / 4) and m["f1"] == pytest.approx(100 * (sum(has_f1) + 1.0) / 4)
    assert m["has_ans_em"] == pytest.approx(50.0) and m["has_ans_f1"] == pytest.approx(100 * np.mean(has_f1))
    assert m["no_ans_em"] == m["no_ans_f1"] == pytest.approx(50.0)
    v1 = get_task("squad").metric(examples[:2], predictions[:2])
    assert v1 == {"em": 50.0, "f1": pytest.approx(100 * np.mean(has_f1))}


# ---------------------------------------------------------------------------------------------------------------
# conlleval


def test_conlleval_chunk_rules_iob1_iob2():
    assert conll_chunks(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]  # IOB2
    assert conll_chunks(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]
    assert conll_chunks(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]  # a type change starts one
    assert conll_chunks(["O", "I-ORG", "I-ORG"]) == [("ORG", 1, 3)]  # I- after O starts a chunk
    assert conll_chunks(["S-PER", "S-PER"]) == [("PER", 0, 2)]  # conlleval is not IOBES (seqeval: two chunks)
    assert conll_chunks(["B-a-b", "I-a-b"]) == [("a-b", 0, 2)]  # split at the first '-'
    assert conll_chunks(["O", "I", "I", "O", "B", "I"]) == [("", 1, 3), ("", 4, 6)]  # untyped: prefix rules alone


def test_conlleval_counts_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]  # 1 right, 1 wrong type, 1 cut short
    m = entity_f1(gold, pred)
    assert m["precision"] == pytest.approx(100 / 3) and m["recall"] == pytest.approx(100 / 3)
    assert m["f1"] == pytest.approx(100 / 3) and m["acc"] == pytest.approx(100 * 5 / 7)
    # Sentences are separated: an I-PER opening sentence 2 is a chunk of its own, not a continuation.
    assert entity_f1([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]])["f1"] == 100.0
    assert entity_f1([["B-PER", "I-PER"]], [["B-PER", "B-PER"]])["precision"] == 0.0
    assert entity_f1([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "acc": 100.0}
    with pytest.raises(metrics.ElectraError, match="differ in number"):
        entity_f1([["O", "O"]], [["O"]])


def to_iob1(tags: list[str]) -> list[str]:
    """IOB2 -> IOB1: B- only where a chunk follows one of the same type."""
    out, prev = [], "O"
    for t in tags:
        if t.startswith("B-") and not (prev != "O" and prev[2:] == t[2:]):
            t = "I-" + t[2:]
        out.append(t)
        prev = t
    return out


@pytest.mark.parametrize("scheme", ["iob2", "iob1"])
def test_conlleval_equals_seqeval_on_conll2003_perturbed(shared_data, scheme):
    seqeval = pytest.importorskip("seqeval.metrics")
    gold = [e.tags for e in read_conll(shared_data / "ner/conll2003/valid.txt")]
    gold = gold if scheme == "iob2" else [to_iob1(t) for t in gold]
    assert scheme == "iob2" or sum(t.startswith("B-") for s in gold for t in s) < 100  # IOB1 really is IOB1
    rng = random.Random(0)

    def perturb(tags, p):
        out = []
        for t in tags:
            r = rng.random()
            t = "O" if r < p else f"{rng.choice('BI')}-{rng.choice(['PER', 'LOC', 'ORG', 'MISC'])}" if r < 2 * p \
                else ("I" if t[0] == "B" else "B") + t[1:] if r < 3 * p and t != "O" else t
            out.append(t)
        return out

    for p in (0.02, 0.1, 0.3):
        pred = [perturb(t, p) for t in gold]
        ours = entity_f1(gold, pred)
        assert 0.0 < ours["f1"] < 100.0
        assert ours["precision"] == pytest.approx(100 * seqeval.precision_score(gold, pred), abs=1e-9)
        assert ours["recall"] == pytest.approx(100 * seqeval.recall_score(gold, pred), abs=1e-9)
        assert ours["f1"] == pytest.approx(100 * seqeval.f1_score(gold, pred), abs=1e-9)
        assert ours["acc"] == pytest.approx(100 * seqeval.accuracy_score(gold, pred), abs=1e-9)
