"""`electra evaluate` scores any fine-tuned model on any folder with the task's dev file: a People's Daily or CMRC
2018 model fine-tuned on a dev held out of train (its electra_task.json says dev_fraction 0.1) is scored on a real
dev file where the folder has one, on the held-out part of train where it has none, and a folder with neither is a
one-line error that names only flags `evaluate` has. Tiny untrained models around the real Chinese vocab (seconds).

    .venv/bin/pytest -q tests/test_evaluate.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from electra.cli import main
from electra.config import ModelConfig
from electra.finetune_config import FinetuneConfig, task_metadata
from electra.finetune_data import holdout
from electra.hf import export_task_model
from electra.model import TaskModel
from electra.tasks import get_task
from electra.tokenizer import save_tokenizer_folder, tokenizer_from_vocab

PD_LABELS = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]


def held_out_model(shared_data: Path, out: Path, task: str, kind: str, labels) -> Path:
    """A tiny random model saved as `electra finetune` saves one tuned with a dev held out of train."""
    tok = tokenizer_from_vocab(shared_data / "vocab/bert-base-chinese.txt")
    tok_dir = save_tokenizer_folder(tok, out.parent / f"{out.name}-tokenizer")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), embedding_size=32, hidden_size=64, num_layers=1, num_heads=2,
                      intermediate_size=128, max_position_embeddings=512)
    meta = task_metadata(get_task(task), labels, FinetuneConfig(max_seq_len=128, dev_fraction=0.1))
    return export_task_model(TaskModel(cfg, kind, num_labels=len(labels or [0, 0])), out, tokenizer_dir=tok_dir,
                             labels=labels, extra={"electra_task.json": meta})


def evaluate(capsys, model: Path, data: Path, *flags) -> dict:
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--device", "cpu", *flags]) == 0
    out, err = capsys.readouterr()
    return {**json.loads(out), "stderr": err}


def test_evaluate_peopledaily_held_out_model_on_any_folder(capsys, shared_data, tmp_path):
    model = held_out_model(shared_data, tmp_path / "pd", "peopledaily", "token", PD_LABELS)
    sentences = (shared_data / "zh/peopledaily/train.txt").read_text(encoding="utf-8").split("\n\n")
    train, dev = "\n\n".join(sentences[:200]) + "\n", "\n\n".join(sentences[200:230]) + "\n"
    only_train, both, only_dev, empty = (tmp_path / name for name in ("only_train", "both", "only_dev", "empty"))
    for folder, files in ((only_train, {"train.txt": train}), (both, {"train.txt": train, "dev.txt": dev}),
                          (only_dev, {"dev.txt": dev}), (empty, {})):
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
    held = evaluate(capsys, model, only_train)  # no dev file: the 10% of train that fine-tuning held out
    assert held["examples"] == 20 and "scoring the 10% of train held out as dev" in held["stderr"]
    assert evaluate(capsys, model, both)["examples"] == 30  # a real dev file wins over the held-out part
    real = evaluate(capsys, model, only_dev)  # no train file needed
    assert real["examples"] == 30 and real["f1"] == evaluate(capsys, model, both)["f1"]
    assert evaluate(capsys, model, empty, "--dev-file", str(only_dev / "dev.txt"))["examples"] == 30
    assert main(["evaluate", "--model", str(model), "--data", str(empty), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "dev split not found" in err and "--dev-file" in err and "--train-file" not in err


def test_evaluate_cmrc_held_out_model_on_a_real_dev_file(capsys, shared_data, tmp_path):
    model = held_out_model(shared_data, tmp_path / "cmrc", "cmrc2018", "span", None)
    trial = json.loads((shared_data / "zh/cmrc2018/cmrc2018_trial.json").read_text(encoding="utf-8"))
    article = trial["data"][0]
    dev = {"version": "dev", "data": [{**article, "paragraphs": article["paragraphs"][:2]}]}
    n_dev = sum(len(p["qas"]) for p in dev["data"][0]["paragraphs"])
    folder = tmp_path / "cmrc_dev"
    folder.mkdir()
    (folder / "cmrc2018_dev.json").write_text(json.dumps(dev, ensure_ascii=False), encoding="utf-8")
    m = evaluate(capsys, model, folder, "--output", str(tmp_path / "dev.jsonl"))
    assert m["task"] == "cmrc2018" and m["examples"] == n_dev and 0.0 <= m["em"] <= m["f1"] <= 100.0
    # The held-out path is unchanged for a folder with only the trial file: 10% of its questions, rebuilt.
    folder = tmp_path / "cmrc_trial"
    folder.mkdir()
    small = {"version": "trial", "data": trial["data"][:20]}
    (folder / "cmrc2018_trial.json").write_text(json.dumps(small, ensure_ascii=False), encoding="utf-8")
    train = get_task("cmrc2018").read(folder, "train", FinetuneConfig(), __import__("collections").Counter())
    assert evaluate(capsys, model, folder)["examples"] == len(holdout(train, 0.1)[1])


@pytest.mark.parametrize("split", ["test", "train"])
def test_evaluate_split_flags_exist(capsys, shared_data, tmp_path, split):
    """The MissingSplit message names --<split>-file; evaluate accepts it."""
    model = held_out_model(shared_data, tmp_path / "pd", "peopledaily", "token", PD_LABELS)
    text = "\n\n".join((shared_data / "zh/peopledaily/train.txt").read_text(encoding="utf-8").split("\n\n")[:12])
    (tmp_path / "some.txt").write_text(text + "\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    m = evaluate(capsys, model, tmp_path / "empty", "--split", split, f"--{split}-file", str(tmp_path / "some.txt"))
    assert m["examples"] == 12
