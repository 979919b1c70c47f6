"""Fine-tuning end to end on real data with tiny randomly initialised models (English: the BERT uncased vocab;
Chinese: the bert-base-chinese vocab): `electra finetune` outputs, seeds with median / mean, a model that learns,
HF export with logit parity, `electra evaluate` / `electra predict` / `load(dir).predict`, TOML run files, and the
bad-input errors (one line, exit 2, nothing written). CPU, one torch thread (faster on a busy 2-core box).

    .venv/bin/pytest -q tests/test_finetune.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model_dir
import torch

from electra.cli import main
from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.finetune import FinetuneConfig, config_from_args
from electra.finetune_config import resolve
from electra.hf import export_task_model
from electra.model import TaskModel
from electra.tasks import get_task
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab

transformers = pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def zh_model(shared_data, tmp_path_factory) -> Path:
    return tiny_model_dir(shared_data / "vocab/bert-base-chinese.txt", tmp_path_factory.mktemp("zh") / "model")


def finetune(capsys, *args) -> tuple[int, str, str]:
    code = main(["finetune", *map(str, args), "--no-progress", "--threads", "1"])
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_ft_sst2_seeds_outputs_evaluate_predict_and_hf_parity(capsys, shared_data, en_model, tmp_path):
    out = tmp_path / "sst2"
    code, _, err = finetune(capsys, "--task", "sst2", "--model", en_model, "--data", shared_data / "glue/SST-2",
                            "--out", out, "--max-train-examples", 256, "--max-dev-examples", 120, "--epochs", 2,
                            "--seeds", 2, "--lr", 1e-3)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "sst2" and len(m["seeds"]) == 2 and [s["seed"] for s in m["seeds"]] == [0, 1]
    accs = [s["dev"]["acc"] for s in m["seeds"]]
    assert m["median"]["acc"] == pytest.approx(np.median(accs)) and m["mean"]["acc"] == pytest.approx(np.mean(accs))
    # The official protocol: a seed's dev is its final model's; the best epoch is kept beside it, labelled.
    assert all(len(s["epochs"]) == 2 and s["dev"] == s["epochs"][-1] for s in m["seeds"])
    assert all(s["dev_best_epoch"]["acc"] == max(e["acc"] for e in s["epochs"])
               and s["epochs"][s["dev_best_epoch"]["epoch"] - 1]["acc"] == s["dev_best_epoch"]["acc"]
               for s in m["seeds"])
    assert m["dev"]["acc"] == max(accs) and m["counts"]["steps_per_seed"] == 2 * 8
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["layer_decay"] == 0.8 and cfg["warmup_steps"] == 1 and cfg["lr"] == 1e-3 and cfg["epochs"] == 2
    assert (cfg["optim"], cfg["head"], cfg["official_depth"], cfg["select"]) == ("official", "official", True, "final")
    # The predictions file is the best seed's dev predictions; its accuracy is the reported one.
    preds = jsonl(out / "predictions.jsonl")
    assert len(preds) == 120 and set(preds[0]) == {"id", "label", "probabilities", "gold"}
    assert 100 * np.mean([p["label"] == p["gold"] for p in preds]) == pytest.approx(m["dev"]["acc"])
    assert len((out / "submission/SST-2.tsv").read_text().splitlines()) == 1821 + 1
    # The exported folder is an HF ElectraForSequenceClassification with the same logits as our model (the official
    # head, dropout + linear, is written exactly as HF's dense + gelu + out_proj: see LinearClassificationHead).
    meta = json.loads((out / "model/electra_task.json").read_text())
    assert meta == {**meta, "task": "sst2", "kind": "sequence", "labels": ["0", "1"], "max_seq_len": 128}
    hf = transformers.ElectraForSequenceClassification.from_pretrained(out / "model").eval()
    tok = transformers.AutoTokenizer.from_pretrained(out / "model")
    texts = ["a gripping , funny film", "dull and far too long"]
    with torch.no_grad():
        hf_probs = hf(**tok(texts, return_tensors="pt", padding=True)).logits.softmax(-1).numpy()
    from electra import load

    ours = load(out).predict(texts)
    assert np.allclose([[p["probabilities"]["0"], p["probabilities"]["1"]] for p in ours], hf_probs, atol=1e-5)
    assert hf.config.id2label == {0: "0", 1: "1"}
    # electra evaluate reproduces the dev score; electra predict reproduces the predictions file.
    assert main(["evaluate", "--model", str(out / "model"), "--data", str(shared_data / "glue/SST-2"),
                 "--max-examples", "120"]) == 0
    assert json.loads(capsys.readouterr().out)["acc"] == pytest.approx(m["dev"]["acc"])
    dev_lines = (shared_data / "glue/SST-2/dev.tsv").read_text().splitlines()[1:121]
    (tmp_path / "in.txt").write_text("".join(json.dumps(line.split("\t")[0]) + "\n" for line in dev_lines))
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "pred.jsonl")]) == 0
    predicted = jsonl(tmp_path / "pred.jsonl")
    assert [p["label"] for p in predicted] == [p["label"] for p in preds]
    assert np.allclose([p["probabilities"]["1"] for p in predicted], [p["probabilities"]["1"] for p in preds],
                       atol=1e-5)


@pytest.mark.slow
def test_ft_tiny_model_learns_sst2(capsys, shared_data, en_model, tmp_path):
    """From random weights a 2-layer model still beats the majority class (~51%) clearly after 3 short epochs."""
    code, _, err = finetune(capsys, "--task", "sst2", "--model", en_model, "--data", shared_data / "glue/SST-2",
                            "--out", tmp_path / "o", "--max-train-examples", 2000, "--epochs", 3, "--lr", 2e-3,
                            "--no-predict-test")
    assert code == 0, err
    m = json.loads((tmp_path / "o/metrics.json").read_text())
    assert m["dev"]["acc"] > 60.0, m["seeds"][0]["epochs"]


def test_ft_mrpc_double_unordered_and_submission(capsys, shared_data, en_model, tmp_path):
    torch.set_num_threads(2)  # --threads 1 applies to the job only
    code, _, err = finetune(capsys, "--task", "mrpc", "--model", en_model, "--data", shared_data / "glue/MRPC",
                            "--out", tmp_path / "o", "--max-train-examples", 64, "--max-dev-examples", 50,
                            "--epochs", 1, "--max-seq-len", 64)
    assert code == 0, err
    assert torch.get_num_threads() == 2
    m = json.loads((tmp_path / "o/metrics.json").read_text())
    assert m["counts"]["train_examples"] == 128  # 64 pairs + their (b, a) copies
    assert set(m["dev"]) == {"f1", "acc", "acc_and_f1"}
    rows = (tmp_path / "o/submission/MRPC.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1725 + 1 and rows[1].split("\t")[1] in ("0", "1")
    assert "truncated" in err  # some MRPC pairs exceed 64 tokens: truncated and counted
    code, _, _ = finetune(capsys, "--task", "mrpc", "--model", en_model, "--data", shared_data / "glue/MRPC",
                          "--out", tmp_path / "p", "--max-train-examples", 64, "--max-dev-examples", 50,
                          "--epochs", 1, "--max-seq-len", 64, "--no-double-unordered", "--no-predict-test")
    assert json.loads((tmp_path / "p/metrics.json").read_text())["counts"]["train_examples"] == 64


def test_ft_chinese_sentiment_end_to_end(capsys, shared_data, zh_model, tmp_path):
    out = tmp_path / "chn"
    code, _, err = finetune(capsys, "--config", REPO / "configs/finetune/chnsenticorp.toml", "--model", zh_model,
                            "--data", shared_data / "zh/chnsenticorp", "--out", out, "--max-train-examples", 300,
                            "--max-dev-examples", 100, "--epochs", 1, "--max-seq-len", 128)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    preds = jsonl(out / "predictions.jsonl")
    assert len(preds) == 100
    assert 100 * np.mean([p["label"] == p["gold"] for p in preds]) == pytest.approx(m["dev"]["acc"])
    assert json.loads((out / "config.json").read_text())["max_seq_len"] == 128  # the flag beats the TOML file
    from electra import load

    (result,) = load(out).predict(["这家酒店的服务很好，房间也很干净"])
    assert result["label"] in ("0", "1") and sum(result["probabilities"].values()) == pytest.approx(1.0)


def test_ft_peopledaily_ner_end_to_end(capsys, shared_data, zh_model, tmp_path):
    from seqeval.metrics import f1_score

    train = tmp_path / "pd"
    train.mkdir()
    text = (shared_data / "zh/peopledaily/train.txt").read_text(encoding="utf-8")
    (train / "train.txt").write_text("\n\n".join(text.split("\n\n")[:400]) + "\n", encoding="utf-8")
    out = tmp_path / "ner"
    code, _, err = finetune(capsys, "--task", "peopledaily", "--model", zh_model, "--data", train, "--out", out,
                            "--epochs", 2, "--lr", 2e-3, "--max-seq-len", 128)
    assert code == 0, err
    assert "holding out 10% of train as dev" in err
    m = json.loads((out / "metrics.json").read_text())
    preds = jsonl(out / "predictions.jsonl")
    assert len(preds) == 40 and m["counts"]["train_examples"] == 360
    assert all(len(p["tags"]) == len(p["gold"]) == len(p["words"]) for p in preds)
    assert m["dev"]["f1"] == pytest.approx(100 * f1_score([p["gold"] for p in preds], [p["tags"] for p in preds]))
    assert m["dev"]["acc"] > 80.0  # most characters are O; a model that learns nothing about O scores far lower
    assert main(["evaluate", "--model", str(out), "--data", str(train)]) == 0  # rebuilds the held-out dev
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(m["dev"]["f1"])
    hf = transformers.ElectraForTokenClassification.from_pretrained(out / "model").eval()
    from electra import load

    predictor = load(out / "model")
    feats, _ = predictor.task.encode([predictor.task.from_input("中国人民银行在北京")], predictor.tokenizer,
                                     predictor.labels, predictor.cfg)
    ids = torch.tensor([feats[0]["input_ids"]])
    with torch.no_grad():
        _, ours = predictor.model(ids, torch.zeros_like(ids), torch.ones_like(ids))
        theirs = hf(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    (result,) = predictor.predict(["中国人民银行在北京"])
    assert len(result["tags"]) == 9 and isinstance(result["entities"], list)


@pytest.mark.slow
def test_ft_cmrc2018_qa_end_to_end(capsys, shared_data, zh_model, tmp_path):
    from electra.tasks.qa import cmrc_em_f1

    out = tmp_path / "cmrc"
    code, _, err = finetune(capsys, "--config", REPO / "configs/finetune/cmrc2018.toml", "--model", zh_model,
                            "--data", shared_data / "zh/cmrc2018", "--out", out, "--max-train-examples", 100,
                            "--max-dev-examples", 40, "--epochs", 1, "--max-seq-len", 256, "--batch-size", 16)
    assert code == 0, err
    assert "answer_start corrected" in err
    m = json.loads((out / "metrics.json").read_text())
    preds = jsonl(out / "predictions.jsonl")
    assert len(preds) == 40
    f1 = np.mean([cmrc_em_f1(p["answer"], [a["text"] for a in p["gold"]])[1] for p in preds])
    assert m["dev"]["f1"] == pytest.approx(100 * f1) and 0.0 <= m["dev"]["em"] <= m["dev"]["f1"]
    hf = transformers.ElectraForQuestionAnswering.from_pretrained(out / "model").eval()
    assert hf.config.architectures == ["ElectraForQuestionAnswering"]
    from electra import load

    context = "北京大学创建于1898年，初名京师大学堂，是中国近代第一所国立综合性大学。"
    (result,) = load(out).predict([{"question": "北京大学创建于哪一年？", "context": context}])
    assert result["answer"] == context[result["start"]:result["start"] + len(result["answer"])]
    assert result["answer"]  # a span of the context, mapped back through the character offsets


def test_ft_toml_files_parse_and_flags_override(tmp_path):
    import argparse

    from electra.finetune import build_parser

    for path in sorted((REPO / "configs/finetune").glob("*.toml")):
        parser = argparse.ArgumentParser()
        build_parser(parser)
        cfg = config_from_args(parser.parse_args(["--config", str(path)]))
        get_task(cfg.task)
    parser = argparse.ArgumentParser()
    build_parser(parser)
    cfg = config_from_args(parser.parse_args(["--config", str(REPO / "configs/finetune/glue-rte.toml"), "--lr",
                                              "1e-4"]))
    assert (cfg.task, cfg.epochs, cfg.lr, cfg.layer_decay) == ("rte", 10, 1e-4, 0.8)
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "sst2"\nlearning_rate = 1e-4\n')
    with pytest.raises(ElectraError, match="unknown config key 'learning_rate'"):
        config_from_args(parser.parse_args(["--config", str(bad)]))
    large = ModelConfig(vocab_size=100, embedding_size=1024, hidden_size=1024, num_layers=24, num_heads=16,
                        intermediate_size=4096)
    small = ModelConfig(vocab_size=100, embedding_size=128, hidden_size=256, num_layers=12, num_heads=4)
    r_large = resolve(FinetuneConfig(), get_task("rte"), large)
    r_small = resolve(FinetuneConfig(), get_task("squad"), small)
    assert (r_large.layer_decay, r_large.lr, r_large.epochs) == (0.9, 5e-5, 10)
    assert (r_small.layer_decay, r_small.lr, r_small.epochs, r_small.max_seq_len) == (0.8, 3e-4, 2, 384)


def _one_line_error(capsys, argv, out: Path, match: str):
    code = main(argv + ["--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and match in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_ft_bad_input_is_a_one_line_error(capsys, shared_data, en_model, zh_model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\nfine film,pos\n")
    (data / "dev.csv").write_text("text,label\nokay film,neutral\n")
    base = ["finetune", "--task", "classify", "--model", str(en_model), "--data", str(data), "--epochs", "1"]
    _one_line_error(capsys, base, tmp_path / "o1", "label 'neutral' was never seen in training")
    _one_line_error(capsys, base + ["--label", "stars"], tmp_path / "o2", "no label column 'stars'")
    (data / "dev.csv").write_text("text,label\n")
    _one_line_error(capsys, base, tmp_path / "o3", "the dev split of task 'classify'")
    _one_line_error(capsys, base + ["--tokenizer", str(zh_model)], tmp_path / "o4",
                    "has 21,128 tokens but the model")
    (data / "train.json").write_text('{"data": [{"paragraphs": [{"context": "x"}]}]}')
    _one_line_error(capsys, ["finetune", "--task", "squad", "--model", str(en_model), "--data", str(data),
                             "--train-file", str(data / "train.json")], tmp_path / "o5", "needs 'qas' as a list")
    _one_line_error(capsys, ["finetune", "--task", "sst2", "--model", str(tmp_path / "nope"), "--data", str(data)],
                    tmp_path / "o6", "not found")
    (tmp_path / "exists").mkdir()
    code = main(base + ["--out", str(tmp_path / "exists")])
    assert code == 2 and "already exists" in capsys.readouterr().err
    (tmp_path / "exists/notes.txt").write_text("keep me")
    code = main(base + ["--out", str(tmp_path / "exists"), "--overwrite"])
    assert code == 2 and "not a fine-tuning output folder" in capsys.readouterr().err
    assert (tmp_path / "exists/notes.txt").read_text() == "keep me"


def test_ft_stsb_regression_and_mnli_matched_mismatched_glue_layouts(capsys, en_model, tmp_path):
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    words = ["cat", "dog", "car", "tree", "house", "river", "music", "bread", "city", "light"]
    stsb, mnli = tmp_path / "STS-B", tmp_path / "MNLI"
    stsb.mkdir()
    mnli.mkdir()
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    for split, n in (("train", 80), ("dev", 30), ("test", 12)):
        rows = []
        for i in range(n):
            a = " ".join(rng.choice(words, 4))
            b = " ".join(rng.choice(words, 4))
            score = "" if split == "test" else f"\t{rng.uniform(0, 5):.3f}"
            rows.append(f"{i}\tmain\tx\t2012\t{i}\tnone\tnone\ta {a}\tthe {b}{score}")
        (stsb / f"{split}.tsv").write_text(head + ("\tscore" if split != "test" else "") + "\n"
                                           + "\n".join(rows) + "\n")
    mhead = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
             "sentence2_parse\tsentence1\tsentence2")
    for split, n in (("train", 90), ("dev_matched", 20), ("dev_mismatched", 25), ("test_matched", 7),
                     ("test_mismatched", 9)):
        labelled = not split.startswith("test")
        rows = [f"{i}\t1\t1\tgov\t(\t(\t(\t(\t{' '.join(rng.choice(words, 5))}\t{' '.join(rng.choice(words, 3))}"
                + (f"\tx\t{['entailment', 'neutral', 'contradiction'][i % 3]}" if labelled else "")
                for i in range(n)]
        (mnli / f"{split}.tsv").write_text(mhead + ("\tlabel1\tgold_label" if labelled else "") + "\n"
                                           + "\n".join(rows) + "\n")
    code, _, err = finetune(capsys, "--task", "stsb", "--model", en_model, "--data", stsb, "--out", tmp_path / "s",
                            "--epochs", 2)
    assert code == 0, err
    m = json.loads((tmp_path / "s/metrics.json").read_text())
    preds = jsonl(tmp_path / "s/predictions.jsonl")
    assert m["counts"]["train_examples"] == 160 and set(m["dev"]) == {"pearson", "spearman", "corr"}
    assert m["dev"]["spearman"] == pytest.approx(100 * spearmanr([p["gold"] for p in preds],
                                                                  [p["score"] for p in preds])[0])
    assert len((tmp_path / "s/submission/STS-B.tsv").read_text().splitlines()) == 13
    hf = transformers.ElectraForSequenceClassification.from_pretrained(tmp_path / "s/model")
    assert hf.config.problem_type == "regression" and hf.config.num_labels == 1
    from electra import load

    (result,) = load(tmp_path / "s").predict([("a cat dog car tree", "the cat dog car tree")])
    assert set(result) == {"score"}
    # Trained on score / 5 (official); the saved model has the x5 folded in: it predicts what predictions.jsonl says.
    assert json.loads((tmp_path / "s/config.json").read_text())["target_scale"] == 5.0
    dev = [line.split("\t") for line in (stsb / "dev.tsv").read_text().splitlines()[1:4]]
    again = load(tmp_path / "s").predict([(row[7], row[8]) for row in dev])
    assert np.allclose([r["score"] for r in again], [p["score"] for p in preds[:3]], atol=1e-4)
    code, _, err = finetune(capsys, "--task", "mnli", "--model", en_model, "--data", mnli, "--out", tmp_path / "m",
                            "--epochs", 1)
    assert code == 0, err
    m = json.loads((tmp_path / "m/metrics.json").read_text())
    assert set(m["dev"]) == {"acc", "mm_acc"} and m["counts"]["dev_examples"] == 20
    assert len((tmp_path / "m/submission/MNLI-m.tsv").read_text().splitlines()) == 8
    assert len((tmp_path / "m/submission/MNLI-mm.tsv").read_text().splitlines()) == 10
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(mnli), "--split", "mm"]) == 0
    assert json.loads(capsys.readouterr().out)["acc"] == pytest.approx(m["dev"]["mm_acc"])


def test_ft_loop_matches_a_transformers_loop_without_dropout(shared_data, tmp_path):
    """Same initial weights, batches and recipe, dropout off: our loop (train_seed) with the HF-style switches (--head
    hf --optim adamw --no-official-depth) and a plain loop around transformers' ElectraForSequenceClassification end
    with the same weights and dev logits."""
    import re
    from collections import Counter

    from electra.finetune_data import label_list, read_data
    from electra.finetune_loop import init_model, train_seed
    from electra.inference import load_tokenizer_for
    from electra.tasks import collate

    tok = tokenizer_from_vocab(shared_data / "vocab/bert-base-uncased.txt")
    tok_dir = save_tokenizer_folder(tok, tmp_path / "tok")
    torch.manual_seed(0)
    cfg_model = ModelConfig(vocab_size=tok.get_vocab_size(), embedding_size=32, hidden_size=64, num_layers=2,
                            num_heads=2, intermediate_size=128, hidden_dropout=0.0, attention_dropout=0.0)
    base = export_task_model(TaskModel(cfg_model, "pretraining"), tmp_path / "base", tokenizer_dir=tok_dir)
    task = get_task("sst2")
    cfg = resolve(FinetuneConfig(task="sst2", model=str(base), data=str(shared_data / "glue/SST-2"), out="-",
                                 epochs=1, lr=1e-3, batch_size=8, max_train_examples=96, max_dev_examples=40,
                                 progress=False, predict_test=False, classifier_dropout=0.0, head="hf", optim="adamw",
                                 official_depth=False, batch_loss="mean"), task, cfg_model)
    data, _ = read_data(task, cfg, Counter())
    labels = label_list(task, data["train"])
    tokenizer = load_tokenizer_for(base, None, cfg_model.vocab_size)
    for split in ("train", "dev"):
        data[f"{split}_features"], _ = task.encode(data[split], tokenizer, labels, cfg)
    ours = init_model(base, task, labels, cfg, seed=3)
    export_task_model(ours, tmp_path / "init", labels=labels)
    hf = transformers.ElectraForSequenceClassification.from_pretrained(tmp_path / "init")
    result = train_seed(ours, task, data, labels, cfg, 3, 0, torch.device("cpu"), log=lambda line: None)
    # The reference loop: its own parameter groups over HF names, torch AdamW, a LambdaLR schedule.
    groups = {}
    for name, p in hf.named_parameters():
        m = re.search(r"encoder\.layer\.(\d+)\.", name)
        depth = 0 if "embeddings" in name else int(m.group(1)) + 1 if m else 3
        wd = 0.0 if name.endswith("bias") or "LayerNorm" in name else 0.01
        groups.setdefault((wd, depth), {"params": [], "weight_decay": wd, "lr": 1e-3 * 0.8 ** (3 - depth)})
        groups[(wd, depth)]["params"].append(p)
    optimizer = torch.optim.AdamW(list(groups.values()), lr=1e-3, eps=1e-6)
    total, warmup = 12, 1.2  # one epoch of 96 / 8 steps, 10% warm-up (a fraction of a step, as the official code)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / total) * min(1.0, s / warmup))
    from electra.finetune_loop import batch_order

    hf.train()
    for epoch in range(1):
        for idx in batch_order(96, 8, 3, epoch):
            b = collate([data["train_features"][i] for i in idx], 0)
            hf(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"], attention_mask=b["attention_mask"],
               labels=b["labels"]).loss.backward()
            torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    ours.load_state_dict(result["state"])
    ours.eval()
    hf.eval()
    b = collate(data["dev_features"], 0)
    with torch.no_grad():
        _, ours_logits = ours(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        hf_logits = hf(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"],
                       attention_mask=b["attention_mask"]).logits
        _, init_logits = init_model(base, task, labels, cfg, seed=3).eval()(b["input_ids"], b["token_type_ids"],
                                                                           b["attention_mask"])
    assert (ours_logits - init_logits).abs().max() > 1e-2  # training moved the model
    assert torch.allclose(ours_logits, hf_logits, atol=1e-4), (ours_logits - hf_logits).abs().max()
