"""The fine-tuning protocol and recipe of google-research/electra, pinned by behaviour: the reported dev score is the
final model's (not the best epoch's), `--select best-epoch` saves the best epoch, a list of learning rates is
searched by the final-model median, collapsed predictions are reported, and our default loop (official head,
Adam without bias correction, official layer-wise depths, loss summed over the batch, fractional warm-up) equals a
hand-written reference of the official update around transformers' ElectraModel. CPU, one thread.

    .venv/bin/pytest -q tests/test_finetune_protocol.py
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model_dir
import torch

from electra.cli import main
from electra.config import ModelConfig
from electra.hf import export_task_model
from electra.model import TaskModel

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(shared_data, tmp_path_factory) -> Path:
    """A 2-layer, 64-wide ELECTRA discriminator with random weights around the BERT uncased vocab."""
    return tiny_model_dir(shared_data / "vocab/bert-base-uncased.txt", tmp_path_factory.mktemp("m") / "model",
                          max_positions=128)


def write_csv(path: Path, rows) -> None:
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))


def run(capsys, *args) -> tuple[dict, str]:
    code = main(["finetune", *map(str, args), "--no-progress", "--threads", "1", "--no-predict-test"])
    out, err = capsys.readouterr()
    assert code == 0, err
    folder = Path(args[list(args).index("--out") + 1])
    return json.loads((folder / "metrics.json").read_text()), out


def test_reported_dev_is_the_final_model_and_select_best_epoch_saves_the_best(capsys, model_dir, tmp_path):
    """Dev is train with every label flipped: the better the model fits train, the worse it scores on dev, so the
    best dev epoch is an early one and the final model scores lowest. The reported dev must be the final model's."""
    words = ["good", "great", "fine", "superb", "bad", "awful", "poor", "dull"]
    rows = [(f"a {w} film number {i}", "pos" if w in words[:4] else "neg") for i in range(12) for w in words]
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "train.csv", rows)
    write_csv(data / "dev.csv", [(t, "neg" if y == "pos" else "pos") for t, y in rows])
    common = ["--task", "classify", "--model", model_dir, "--data", data, "--epochs", 4, "--batch-size", 16,
              "--seeds", 2]
    m, out = run(capsys, *common, "--lr", "1e-5,3e-3", "--out", tmp_path / "final")
    for entry in m["lr_sweep"]:
        for s in entry["seeds"]:
            assert s["dev"] == s["epochs"][-1]  # the final model, scored once
            assert s["dev_best_epoch"]["acc"] == max(e["acc"] for e in s["epochs"])
        runs = entry["seeds"]
        assert entry["median"]["acc"] == pytest.approx(np.median([s["dev"]["acc"] for s in runs]))
        assert entry["median_best_epoch"]["acc"] == pytest.approx(np.median([s["dev_best_epoch"]["acc"] for s in runs]))
    learned = next(e for e in m["lr_sweep"] if e["lr"] == 3e-3)
    assert all(s["dev_best_epoch"]["acc"] > s["dev"]["acc"] + 5 for s in learned["seeds"]), learned["seeds"]
    assert learned["median"]["acc"] < learned["median_best_epoch"]["acc"]
    # Both learning rates trained over both seeds and reported; the final-model median picks: on this dev set the
    # lr that learns nothing (1e-5) wins, where a best-epoch protocol would not see the difference as clearly.
    assert [e["lr"] for e in m["lr_sweep"]] == [1e-5, 3e-3] and all(len(e["seeds"]) == 2 for e in m["lr_sweep"])
    chosen = max(m["lr_sweep"], key=lambda e: e["median"]["acc"])
    assert m["lr"] == chosen["lr"] == 1e-5 and m["median"] == chosen["median"] and m["seeds"] == chosen["seeds"]
    assert json.loads((tmp_path / "final/config.json").read_text())["lr"] == m["lr"]
    assert "(final model)" in out and "early-stopping view" in out and "lr 1e-05" in out and "lr 0.003" in out
    preds = [json.loads(x) for x in (tmp_path / "final/predictions.jsonl").read_text().splitlines()]
    assert 100 * np.mean([p["label"] == p["gold"] for p in preds]) == pytest.approx(m["dev"]["acc"])
    # --select best-epoch: same numbers reported, but the saved model is the best epoch's.
    b, _ = run(capsys, *common, "--lr", 3e-3, "--select", "best-epoch", "--out", tmp_path / "best")
    assert b["select"] == "best-epoch" and b["median"] == learned["median"] and b["dev"] == b["seeds"][0]["dev"] or \
        b["dev"] == b["seeds"][1]["dev"]
    assert b["dev_best_epoch"]["acc"] > b["dev"]["acc"] + 5
    preds = [json.loads(x) for x in (tmp_path / "best/predictions.jsonl").read_text().splitlines()]
    assert 100 * np.mean([p["label"] == p["gold"] for p in preds]) == pytest.approx(b["dev_best_epoch"]["acc"])
    assert main(["evaluate", "--model", str(tmp_path / "best"), "--data", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["acc"] == pytest.approx(b["dev_best_epoch"]["acc"])


def test_collapsed_predictions_are_reported_with_the_fix(capsys, model_dir, tmp_path):
    """Every text is the same: the model cannot but predict one class, and it must say so."""
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "train.csv", [("the film", "pos" if i % 4 else "neg") for i in range(40)])
    write_csv(data / "dev.csv", [("the film", "pos" if i % 4 else "neg") for i in range(20)])
    m, out = run(capsys, "--task", "classify", "--model", model_dir, "--data", data, "--epochs", 1, "--out",
                 tmp_path / "o")
    assert "warning: every dev prediction is" in out and "--lr" in out and "collapsed" in out
    assert len(m["collapsed"]) == 1 and "seed 0" in m["collapsed"][0]
    from electra.finetune_loop import collapse_note
    from electra.tasks import get_task
    from electra.tasks.classification import Example

    stsb = get_task("stsb")
    golds = [Example(id=str(i), text_a="a", label=float(i % 5)) for i in range(10)]
    assert "constant" in collapse_note(stsb, golds, [{"score": 2.0 + 1e-6 * i} for i in range(10)])
    assert collapse_note(stsb, golds, [{"score": float(i % 5)} for i in range(10)]) is None
    sst2 = get_task("sst2")
    assert collapse_note(sst2, golds, [{"label": "1"}, {"label": "0"}]) is None


def test_official_recipe_equals_a_reference_of_the_official_update(shared_data, model_dir, tmp_path):
    """Our default loop against a hand-written transcription of google-research/electra: the head is
    `tf.layers.dense` on the [CLS] state (classification_tasks.py), the loss is summed over the batch
    (run_finetuning.py), gradients are clipped to global norm 1, the update is AdamWeightDecayOptimizer's (no bias
    correction; decay added to the update, not on LayerNorm / bias) and the lrs are `_get_layer_lrs`'s:
    lr * d^(L + 2 - depth) with embeddings at depth 0, layer i at i + 1 and the head at L + 2 (optimization.py);
    warm-up is a fraction of the steps (1.2 steps here), linear decay to 0."""
    from collections import Counter

    from electra.finetune_config import FinetuneConfig, resolve
    from electra.finetune_data import label_list, read_data
    from electra.finetune_loop import batch_order, init_model, train_seed
    from electra.hf import model_config_from_hf, read_config
    from electra.inference import load_tokenizer_for
    from electra.tasks import collate, get_task

    task = get_task("sst2")
    model_cfg = model_config_from_hf(read_config(model_dir))
    cfg = resolve(FinetuneConfig(task="sst2", model=str(model_dir), data=str(shared_data / "glue/SST-2"), out="-",
                                 epochs=1, lr=2e-3, batch_size=8, max_train_examples=96, max_dev_examples=40,
                                 progress=False, predict_test=False, classifier_dropout=0.0), task, model_cfg)
    data, _ = read_data(task, cfg, Counter())
    labels = label_list(task, data["train"])
    tokenizer = load_tokenizer_for(model_dir, None, model_cfg.vocab_size)
    for split in ("train", "dev"):
        data[f"{split}_features"], _ = task.encode(data[split], tokenizer, labels, cfg)
    ours = init_model(model_dir, task, labels, cfg, seed=5)
    assert ours.head_style == "official" and not hasattr(ours.head, "dense")
    ref = transformers.ElectraModel.from_pretrained(model_dir, hidden_dropout_prob=0.0,
                                                    attention_probs_dropout_prob=0.0)
    head = torch.nn.Linear(64, 2)
    head.load_state_dict({"weight": ours.head.out.weight.detach().clone(), "bias": ours.head.out.bias.detach().clone()})
    ours.encoder.embeddings.drop.p = 0.0  # the reference runs without dropout too
    for layer in ours.encoder.layers:
        layer.drop.p, layer.attn.dropout_p = 0.0, 0.0
    result = train_seed(ours, task, data, labels, cfg, 5, 0, torch.device("cpu"), log=lambda line: None)

    named = [(f"electra/{n}", p) for n, p in ref.named_parameters()] + [(f"task_specific/{n}", p)
                                                                         for n, p in head.named_parameters()]

    def depth(name):
        if "embeddings" in name:
            return 0
        m = re.search(r"encoder\.layer\.(\d+)\.", name)
        return int(m.group(1)) + 1 if m else 2 + 2  # task_specific: n_layers + 2

    state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in named}
    total = 12
    warmup = total * 0.1
    for step, idx in enumerate(batch_order(96, 8, 5, 0)):
        b = collate([data["train_features"][i] for i in idx], 0)
        h = ref(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"],
                attention_mask=b["attention_mask"]).last_hidden_state
        logits = head(h[:, 0])
        loss = -(torch.nn.functional.log_softmax(logits, -1).gather(1, b["labels"][:, None])).sum()
        grads = torch.autograd.grad(loss, [p for _, p in named])
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        grads = [g * 1.0 / max(norm, 1.0) for g in grads]  # tf.clip_by_global_norm(clip_norm=1.0)
        lr = 2e-3 * (1 - step / total) * min(1.0, step / warmup)
        with torch.no_grad():
            for (name, p), g in zip(named, grads):
                m, v = state[name]
                m.mul_(0.9).add_(0.1 * g)
                v.mul_(0.999).add_(0.001 * g * g)
                update = m / (v.sqrt() + 1e-6)
                if not re.search("LayerNorm|layer_norm|bias", name):
                    update = update + 0.01 * p
                p.sub_(lr * 0.8 ** (2 + 2 - depth(name)) * update)
    ours.load_state_dict(result["state"])
    ours.eval()
    ref.eval()
    b = collate(data["dev_features"], 0)
    with torch.no_grad():
        _, ours_logits = ours(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        ref_logits = head(ref(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"],
                              attention_mask=b["attention_mask"]).last_hidden_state[:, 0])
        _, init_logits = init_model(model_dir, task, labels, cfg, seed=5).eval()(
            b["input_ids"], b["token_type_ids"], b["attention_mask"])
    assert (ours_logits - init_logits).abs().max() > 1e-2  # training moved the model
    assert torch.allclose(ours_logits, ref_logits, atol=1e-4), (ours_logits - ref_logits).abs().max()


def test_official_head_exports_exactly_and_round_trips(tmp_path):
    """The official head (dropout + linear) written as HF's dense + gelu + out_proj: transformers gives our logits,
    and loading the folder back restores the linear layer bit for bit."""
    from electra.hf import load_task_model

    torch.manual_seed(1)
    cfg = ModelConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_layers=2, num_heads=2,
                      intermediate_size=64, hidden_act="gelu")
    for n in (1, 3):
        model = TaskModel(cfg, "sequence", num_labels=n, head="official").eval()
        folder = export_task_model(model, tmp_path / f"m{n}")
        hf = transformers.ElectraForSequenceClassification.from_pretrained(folder).eval()
        ids = torch.randint(5, 99, (4, 11))
        with torch.no_grad():
            _, ours = model(ids)
            theirs = hf(input_ids=ids).logits
        assert torch.allclose(ours, theirs, atol=1e-6), (ours - theirs).abs().max()
        back = load_task_model(folder)
        assert back.head_style == "official"
        assert torch.equal(back.head.out.weight, model.head.out.weight)
        assert torch.equal(back.head.out.bias, model.head.out.bias)
        as_hf = load_task_model(folder, head="hf").eval()  # the same function through HF's head structure
        with torch.no_grad():
            assert torch.allclose(as_hf(ids)[1], ours, atol=1e-6)
