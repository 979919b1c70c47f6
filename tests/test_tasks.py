"""The task registry: readers on the real files in ../shared/data and on the standard GLUE layouts, subword label
alignment, QA windows and offsets, metrics against scikit-learn / scipy (the official SQuAD / CMRC / conlleval
scorers: tests/test_metrics.py), and the one-line errors for bad input. No model is trained here (a few seconds).

    .venv/bin/pytest -q tests/test_tasks.py
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from electra import metrics
from electra.errors import ElectraError
from electra.finetune_config import ColumnOptions, FinetuneConfig, QAOptions
from electra.finetune_data import holdout, label_list
from electra.tasks import MissingSplit, collate, get_task, registry
from electra.tasks import qa
from electra.tokenizer import load_tokenizer, tokenizer_from_vocab

CFG = FinetuneConfig(max_seq_len=64, qa=QAOptions(doc_stride=8, max_query_len=16, max_answer_len=30, n_best=20))


def read(name, data_dir, split, cfg=CFG):
    stats = Counter()
    return get_task(name).read(Path(data_dir), split, cfg, stats), stats


@pytest.fixture(scope="module")
def zh_tokenizer(shared_data):
    return tokenizer_from_vocab(shared_data / "vocab/bert-base-chinese.txt")


def test_tasks_registry_has_every_named_task_with_a_valid_spec():
    names = {"sst2", "mrpc", "cola", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "classify", "chnsenticorp",
             "tnews", "iflytek", "eprstmt", "ocnli", "ner", "peopledaily", "squad", "squad2", "cmrc2018"}
    tasks = registry()
    assert names <= set(tasks)
    for name, task in tasks.items():
        assert task.name == name and task.kind in ("sequence", "token", "span")
        assert task.epochs >= 1 and task.main_metric
    assert tasks["rte"].epochs == tasks["stsb"].epochs == 10 and tasks["sst2"].epochs == 3
    assert tasks["mrpc"].double_unordered and tasks["stsb"].double_unordered and not tasks["qqp"].double_unordered
    with pytest.raises(ElectraError, match="did you mean 'sst2'"):
        get_task("sst-2")


def test_tasks_glue_sst2_and_mrpc_real_files(shared_data):
    train, stats = read("sst2", shared_data / "glue/SST-2", "train")
    dev, _ = read("sst2", shared_data / "glue/SST-2", "dev")
    test, _ = read("sst2", shared_data / "glue/SST-2", "test")
    assert (len(train), len(dev), len(test)) == (67349, 872, 1821) and not stats
    assert {e.label for e in train} == {"0", "1"} and all(e.label is None for e in test)
    assert dev[0].text_a.startswith("it 's a charming") and dev[0].label == "1" and test[0].id == "0"
    mrpc, stats = read("mrpc", shared_data / "glue/MRPC", "train")
    assert len(mrpc) == 3667 and not stats  # BOM header, bare quotes inside the sentences
    assert mrpc[0].text_a.startswith("Amrozi accused") and mrpc[0].text_b.startswith("Referring to him")
    assert mrpc[0].label == "1"


GLUE_LAYOUTS = {  # the GLUE release's tsv layouts, a row each
    "cola": ("gj04\t1\t\tOur friends won't buy this analysis.\n", None, "0\tThe book was read."),
    "stsb": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
             "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking "
             "off.\t5.000\n", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n",
             "0\tmain-news\tx\t2016\t1\tnone\tnone\tA girl.\tA boy."),
    "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tHow old are you?\tWhat is your age?\t1\n"
            "2\t4\t5\tbroken row\n", "id\tquestion1\tquestion2\n", "0\tWhy?\tHow?"),
    "mnli": ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
             "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n0\t1\t1n\tgov\t(\t(\t(\t(\tThe cat sat.\t"
             "A cat sits.\tentailment\tentailment\n", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
             "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\n",
             "0\t1\t1\tgov\t(\t(\t(\t(\tA.\tB."),
    "qnli": ("index\tquestion\tsentence\tlabel\n0\tWho?\tHe did.\tentailment\n", "index\tquestion\tsentence\n",
             "0\tWhen?\tNow."),
    "rte": ("index\tsentence1\tsentence2\tlabel\n0\tA dog barks.\tAn animal makes noise.\tnot_entailment\n",
            "index\tsentence1\tsentence2\n", "0\tX.\tY."),
    "wnli": ("index\tsentence1\tsentence2\tlabel\n0\tI saw it.\tIt was seen.\t1\n", "index\tsentence1\tsentence2\n",
             "0\tX.\tY."),
}


@pytest.mark.parametrize("name", sorted(GLUE_LAYOUTS))
def test_tasks_glue_layouts(tmp_path, name):
    train_text, test_header, test_row = GLUE_LAYOUTS[name]
    task = get_task(name)
    files = task.files
    (tmp_path / files["train"]).write_text(train_text)
    (tmp_path / files["dev"]).write_text(train_text)
    (tmp_path / files["test"]).write_text((test_header or "index\tsentence\n") + test_row + "\n")
    train, stats = read(name, tmp_path, "train")
    expected = {
        "cola": ("Our friends won't buy this analysis.", None, "1"),
        "stsb": ("A plane is taking off.", "An air plane is taking off.", 5.0),
        "qqp": ("How old are you?", "What is your age?", "1"),
        "mnli": ("The cat sat.", "A cat sits.", "entailment"),
        "qnli": ("Who?", "He did.", "entailment"),
        "rte": ("A dog barks.", "An animal makes noise.", "not_entailment"),
        "wnli": ("I saw it.", "It was seen.", "1"),
    }[name]
    assert (train[0].text_a, train[0].text_b, train[0].label) == expected
    assert stats["malformed rows"] == (1 if name == "qqp" else 0)
    assert task.labels is None or train[0].label in task.labels
    test, _ = read(name, tmp_path, "test")
    assert test[0].id == "0" and test[0].label is None and test[0].text_a


def test_tasks_generic_columns_formats_and_missing_column(tmp_path):
    (tmp_path / "train.csv").write_text('review,stars\n"good, really",pos\nbad,neg\n')
    (tmp_path / "train.jsonl").write_text('{"q": "a", "r": "b", "y": 1}\n')
    cfg = FinetuneConfig(columns=ColumnOptions(text_a="review", label="stars"), train_file=str(tmp_path / "train.csv"))
    train, _ = read("classify", tmp_path, "train", cfg)
    assert [(e.text_a, e.label) for e in train] == [("good, really", "pos"), ("bad", "neg")]
    cfg = FinetuneConfig(columns=ColumnOptions(text_a="q", text_b="r", label="y"),
                         train_file=str(tmp_path / "train.jsonl"))
    (e,), _ = read("classify", tmp_path, "train", cfg)
    assert (e.text_a, e.text_b, e.label) == ("a", "b", "1")
    with pytest.raises(ElectraError, match=r"no label column 'rating' \(columns: review, stars\)"):
        read("classify", tmp_path, "train", FinetuneConfig(columns=ColumnOptions(text_a="review", label="rating"),
                                                             train_file=str(tmp_path / "train.csv")))
    with pytest.raises(MissingSplit):
        read("classify", tmp_path, "dev")


def test_tasks_chinese_classification_real_files(shared_data):
    train, _ = read("chnsenticorp", shared_data / "zh/chnsenticorp", "train")
    assert len(train) == 9600 and {e.label for e in train} == {"0", "1"}
    for name, n_train, n_labels in (("tnews", 1185, 15), ("eprstmt", 160, 2), ("ocnli", 160, 3)):
        train, _ = read(name, shared_data / f"zh/fewclue/{name}", "train")
        assert len(train) == n_train and len(label_list(get_task(name), train)) == n_labels
    ocnli, _ = read("ocnli", shared_data / "zh/fewclue/ocnli", "dev")
    assert ocnli[0].text_b and get_task("ocnli").pair


def test_tasks_unseen_dev_label_is_an_error(tiny_tokenizer_dir):
    task = get_task("classify")
    tok = load_tokenizer(tiny_tokenizer_dir)
    Example = type(task.from_input("x"))
    train = [Example("0", "good", None, "pos"), Example("1", "bad", None, "neg")]
    labels = label_list(task, train)
    with pytest.raises(ElectraError, match="label 'neutral' was never seen in training"):
        task.encode([Example("7", "meh", None, "neutral")], tok, labels, CFG)


def test_tasks_classification_truncation_is_counted(tiny_tokenizer_dir):
    task = get_task("mrpc")
    tok = load_tokenizer(tiny_tokenizer_dir)
    Example = type(task.from_input("x"))
    long = " ".join(["history"] * 200)
    examples = [Example("0", long, "short one", "1"), Example("1", "a cat", "a dog", "0")]
    features, counts = task.encode(examples, tok, ["0", "1"], CFG)
    assert counts["truncated"] == 1
    assert len(features[0]["input_ids"]) == CFG.max_seq_len and features[0]["labels"] == 1
    assert features[0]["token_type_ids"][-1] == 1  # the short second text survives longest-first truncation
    batch = collate(features, pad_id=0)
    assert batch["input_ids"].shape == (2, CFG.max_seq_len) and batch["attention_mask"][1].sum() < CFG.max_seq_len


def test_tasks_conll_reading_and_first_subword_alignment(shared_data, tiny_tokenizer_dir):
    train, _ = read("ner", shared_data / "ner/conll2003", "train")
    dev, _ = read("ner", shared_data / "ner/conll2003", "dev")
    assert (len(train), len(dev)) == (14041, 3250)
    assert train[0].words[:3] == ["EU", "rejects", "German"] and train[0].tags[:3] == ["B-ORG", "O", "B-MISC"]
    task = get_task("ner")
    labels = label_list(task, train)
    assert labels[0] == "O" and len(labels) == 9
    tok = load_tokenizer(tiny_tokenizer_dir)
    cfg = FinetuneConfig(max_seq_len=256)
    features, counts = task.encode(train[:200], tok, labels, cfg)
    assert not counts["truncated"] and not counts["words without a token"]
    for e, f in zip(train[:200], features):
        first = f["first_subword"]
        labelled = [i for i, y in enumerate(f["labels"]) if y != -100]
        assert labelled == sorted(first.values())  # exactly one labelled subword per word (its first)
        assert [labels[f["labels"][first[w]]] for w in sorted(first)] == [e.tags[w] for w in sorted(first)]
    multi = next(f for e, f in zip(train[:200], features) if len(f["input_ids"]) > len(e.words) + 2)
    assert multi  # some words are split into several subwords, so the -100 positions matter
    # Perfect logits decode back to the gold tags, and seqeval scores them 100.
    outputs = [np.eye(len(labels))[[max(y, 0) for y in f["labels"]]] for f in features]
    predictions = task.decode(train[:200], features, outputs, labels, cfg)
    assert task.metric(train[:200], predictions)["f1"] == 100.0
    features, counts = task.encode(train[:200], tok, labels, CFG)  # 64 tokens: long sentences cut and counted
    assert counts["truncated"] > 0
    outputs = [np.eye(len(labels))[[max(y, 0) for y in f["labels"]]] for f in features]
    predictions = task.decode(train[:200], features, outputs, labels, CFG)
    assert all(len(p["tags"]) == len(e.words) for e, p in zip(train[:200], predictions))  # cut words: "O"
    assert task.metric(train[:200], predictions)["recall"] < 100.0


def test_tasks_peopledaily_characters(shared_data, zh_tokenizer):
    train, _ = read("peopledaily", shared_data / "zh/peopledaily", "train")
    assert len(train) == 50658 and all(len(w) == 1 for w in train[0].words)
    with pytest.raises(MissingSplit):
        read("peopledaily", shared_data / "zh/peopledaily", "dev")
    rest, dev = holdout(train, 0.1)
    assert len(dev) == 5066 and len(rest) + len(dev) == len(train)
    task = get_task("peopledaily")
    labels = label_list(task, train)
    assert set(labels) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    features, counts = task.encode(train[:300], zh_tokenizer, labels, CFG)
    assert counts["truncated"] > 0  # some sentences exceed 64 characters: truncated and counted
    assert sum(f["labels"][1] != -100 for f in features) == 300  # each first character is labelled


def test_tasks_metrics_match_library_and_hand_computation():
    gold, pred = ["1", "0", "1", "1", "0"], ["1", "1", "1", "0", "0"]
    m = metrics.f1_accuracy(gold, pred)
    assert m["acc"] == pytest.approx(60.0) and m["f1"] == pytest.approx(100 * 2 * (2 / 3) * (2 / 3) / (4 / 3))
    tp, tn, fp, fn = 2, 1, 1, 1
    expected_mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.mcc(gold, pred)["mcc"] == pytest.approx(100 * expected_mcc)
    x, y = [0.0, 1.0, 2.5, 4.0, 5.0], [0.5, 0.7, 3.0, 3.5, 4.9]
    assert metrics.pearson_spearman(x, y)["pearson"] == pytest.approx(100 * np.corrcoef(x, y)[0, 1])
    assert metrics.pearson_spearman(x, y)["spearman"] == pytest.approx(100.0)
    assert metrics.pearson_spearman(x, [1.0] * 5)["pearson"] == 0.0
    gold_tags = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred_tags = [["B-PER", "I-PER", "O", "B-ORG"]]  # one entity right, one wrong type
    assert metrics.entity_f1(gold_tags, pred_tags)["f1"] == pytest.approx(50.0)


def test_tasks_qa_windows_offsets_and_decoding(tiny_tokenizer_dir):
    tok = load_tokenizer(tiny_tokenizer_dir)
    words = [f"word{i % 7}" for i in range(120)]
    context = " ".join(words[:90]) + " the treaty of paris ended the war. " + " ".join(words[90:])
    start = context.index("treaty of paris")
    e = qa.Example(id="q1", question="what ended the war?", context=context,
                   answers=[{"text": "treaty of paris", "answer_start": start}])
    features, counts = get_task("squad").encode([e], tok, None, CFG)
    assert len(features) > 3 and counts["contexts split into windows"] == 1
    with_answer = [f for f in features if f["start_positions"] > 0]
    assert len(with_answer) >= 1 and len(with_answer) < len(features)  # other windows target [CLS]
    for f in features:
        assert len(f["input_ids"]) <= CFG.max_seq_len
        covered = [o for o in f["offsets"] if o is not None]
        assert covered == sorted(covered)
    f = with_answer[0]
    a, b = f["offsets"][f["start_positions"]][0], f["offsets"][f["end_positions"]][1]
    assert context[a:b] == "treaty of paris"
    # Logits that point at the gold span in one window decode to the exact answer text.
    outputs = []
    for g in features:
        logits = np.zeros((len(g["input_ids"]), 2))
        if g is f:
            logits[g["start_positions"], 0] = logits[g["end_positions"], 1] = 10.0
        outputs.append(logits)
    (pred,) = get_task("squad").decode([e], features, outputs, None, CFG)
    assert pred["answer"] == "treaty of paris" and pred["start"] == start
    assert get_task("squad").metric([e], [pred]) == {"em": 100.0, "f1": 100.0}
    # SQuAD v2: a [CLS] score above the best span predicts no answer.
    for g, logits in zip(features, outputs):
        logits[0] = 20.0
    (pred,) = get_task("squad2").decode([e], features, outputs, None, CFG)
    assert pred["answer"] == ""


def test_tasks_cmrc_trial_reading_and_chinese_offsets(shared_data, zh_tokenizer):
    train, stats = read("cmrc2018", shared_data / "zh/cmrc2018", "train")
    assert len(train) + stats["answers not found in context (skipped)"] == 1002
    assert stats["answer_start corrected"] > 0  # the trial file has a few wrong answer_start values
    for e in train:
        a = e.answers[0]
        assert e.context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
    cfg = FinetuneConfig(max_seq_len=256, qa=QAOptions(doc_stride=128, max_query_len=32))
    features, _ = get_task("cmrc2018").encode(train[:100], zh_tokenizer, None, cfg)
    hits = 0
    for f in features:
        if f["start_positions"]:
            e = train[f["example"]]
            a, b = f["offsets"][f["start_positions"]][0], f["offsets"][f["end_positions"]][1]
            assert e.context[a:b].lower() == e.answers[0]["text"].strip().lower()
            hits += 1
    assert hits >= 90


@pytest.mark.parametrize("text,message", [
    ("{not json", r"not valid JSON \(line 1"),
    ('{"version": "1"}', "the top level needs 'data' as a list"),
    ('{"data": [{"paragraphs": [{"context": "abc"}]}]}', r"data\[0\].paragraphs\[0\] needs 'qas'"),
    ('{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", "answers": '
     '[{"text": "b"}]}]}]}]}', r"answers\[0\] needs 'answer_start'"),
    ('{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", "answers": []}]}]}]}',
     "has no answers and is not marked is_impossible"),
])
def test_tasks_malformed_squad_json_is_one_line_error(tmp_path, text, message):
    path = tmp_path / "train.json"
    path.write_text(text)
    with pytest.raises(ElectraError, match=message) as info:
        qa.read_squad(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_tasks_predict_inputs_are_parsed_or_refused():
    assert get_task("sst2").from_input("hi").text_a == "hi"
    assert get_task("mrpc").from_input(["a", "b"]).text_b == "b"
    assert get_task("ner").from_input("中国人").words == ["中", "国", "人"]
    assert get_task("ner").from_input("New York").words == ["New", "York"]
    assert get_task("squad").from_input({"question": "q", "context": "c"}).context == "c"
    with pytest.raises(ElectraError, match="cannot read a QA input"):
        get_task("squad").from_input(3)
    assert json.loads(json.dumps(get_task("ner").to_output(get_task("ner").from_input("EU rejects"),
                                                           {"tags": ["B-ORG", "O"]})))["entities"] == \
        [{"type": "ORG", "start": 0, "end": 1, "text": "EU"}]
