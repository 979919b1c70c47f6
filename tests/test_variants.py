"""Objective variants of the paper (Table 5, section 3.2, appendix F) and DeBERTa-v3's GDES: each one's defining
behaviour."""
import pytest
import torch
import torch.nn.functional as F

from electra.config import preset
from electra.errors import ElectraError
from electra.objective import Electra
from electra.objectives import build_objective

SPECIAL = dict(pad=0, cls=1, sep=2, mask=3)
V = 120


def _batch(B=6, T=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, V, (B, T), generator=g)
    am = torch.ones_like(x)
    x[:, 0] = 1
    x[1, 30:], am[1, 30:] = 0, 0
    return x, torch.zeros_like(x), am


def _build(kind, **kw):
    torch.manual_seed(0)
    return build_objective(preset("tiny", vocab_size=V, kind=kind, **kw), SPECIAL)


def _capture_mask(model):
    seen = {}
    original = model.mask

    def wrapped(*a, **k):
        seen["masked"] = original(*a, **k)
        return seen["masked"]

    model.mask = wrapped
    return seen


def test_electra15_rtd_loss_only_on_masked_positions():
    model = _build("electra-15")
    seen = _capture_mask(model)
    x, tt, am = _batch()
    out = model(x, tt, am)
    m = seen["masked"]
    logits = out["rtd_logits"].gather(1, m.positions)
    labels = out["rtd_labels"].gather(1, m.positions).float()
    expected = (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * m.weights).sum() / m.weights.sum()
    torch.testing.assert_close(out["rtd_loss"], expected)
    full = (F.binary_cross_entropy_with_logits(out["rtd_logits"], out["rtd_labels"].float(), reduction="none")
            * am).sum() / am.sum()
    assert not torch.allclose(out["rtd_loss"], full)


def test_replace_mlm_sees_samples_not_mask_tokens():
    model = _build("replace-mlm")
    inputs = []
    forward = model.discriminator.forward
    model.discriminator.forward = lambda ids, *a, **k: inputs.append(ids) or forward(ids, *a, **k)
    x, tt, am = _batch()
    out = model(x, tt, am)
    assert not (inputs[0] == SPECIAL["mask"]).any()  # [MASK] never reaches the main encoder
    torch.testing.assert_close(out["loss"], out["mlm_loss"] + out["main_mlm_loss"])
    assert {p[0] for p in model.export_parts()} == {"mlm", "generator"}


def test_all_tokens_mlm_copy_mechanism():
    model = _build("all-tokens-mlm")
    x, tt, am = _batch()
    h = model.discriminator(x, tt, am)
    with torch.no_grad():
        model.copy_head.bias.fill_(30.0)  # D ~ 1: copy the input
        model.copy_head.weight.zero_()
    loss_copy_uncorrupted, _ = model._all_tokens_loss(h, x, x, am)
    assert loss_copy_uncorrupted.item() < 1e-6  # copying an uncorrupted input is certain
    corrupted = x.clone()
    corrupted[:, 5] = (x[:, 5] + 1 - 5) % (V - 5) + 5
    loss_copy_corrupted, _ = model._all_tokens_loss(h, corrupted, x, am)
    assert loss_copy_corrupted.item() > 0.1  # a replaced token must come from the softmax, at weight 1 - D


def _generator_grads(model, x, tt, am):
    model.zero_grad()
    torch.manual_seed(123)  # same masking and sampling
    model(x, tt, am, generator=torch.Generator().manual_seed(5))["loss"].backward()
    return model.generator.layers[0].ffn_in.weight.grad.clone()


@pytest.mark.parametrize("kind,depends", [("electra", False), ("adversarial", True)])
def test_generator_gradient_depends_on_discriminator_only_when_adversarial(kind, depends):
    model = _build(kind)
    x, tt, am = _batch()
    g1 = _generator_grads(model, x, tt, am)
    with torch.no_grad():
        model.discriminator_head.out.bias.add_(3.0)  # a different discriminator
    g2 = _generator_grads(model, x, tt, am)
    assert (not torch.allclose(g1, g2)) == depends


def test_gdes_gradients_are_disentangled_and_export_merges():
    x, tt, am = _batch()
    model = _build("gdes", gen_weight=0.0)  # RTD only
    model(x, tt, am)["loss"].backward()
    assert model.embeddings.tok.weight.grad is None or model.embeddings.tok.weight.grad.abs().sum() == 0
    assert model.token_delta.grad.abs().sum() > 0
    model = _build("gdes", disc_weight=0.0)  # MLM only
    model(x, tt, am)["loss"].backward()
    assert model.embeddings.tok.weight.grad.abs().sum() > 0
    assert model.token_delta.grad is None or model.token_delta.grad.abs().sum() == 0
    with torch.no_grad():
        model.token_delta.normal_()
    (name, merged, kind, head), _ = model.export_parts()
    torch.testing.assert_close(merged.embeddings.tok.weight, model.embeddings.tok.weight + model.token_delta)


def test_two_stage_switches_and_freezes():
    with pytest.raises(ElectraError, match="generator_hidden_fraction = 1"):
        _build("two-stage", two_stage_switch=2)
    model = _build("two-stage", two_stage_switch=2, generator_hidden_fraction=1.0)
    x, tt, am = _batch()
    for _ in range(2):  # stage 1: the generator alone
        model.zero_grad()
        out = model(x, tt, am)
        out["loss"].backward()
        assert int(out["stage"]) == 1
        assert model.discriminator.layers[0].ffn_in.weight.grad is None
        assert model.generator.layers[0].ffn_in.weight.grad.abs().sum() > 0
    gen_state = {k: v.clone() for k, v in model.generator.layers.state_dict().items()}
    model.zero_grad()
    out = model(x, tt, am)  # stage 2: discriminator initialised from the generator, generator frozen
    assert int(out["stage"]) == 2
    for k, v in model.discriminator.layers.state_dict().items():
        torch.testing.assert_close(v, gen_state[k])
    out["loss"].backward()
    assert model.discriminator.layers[0].ffn_in.weight.grad.abs().sum() > 0
    assert model.generator.layers[0].ffn_in.weight.grad is None
    # the stage survives a state-dict round trip (resume)
    again = _build("two-stage", two_stage_switch=2, generator_hidden_fraction=1.0)
    again.load_state_dict(model.state_dict())
    assert bool(again.switched) and int(again(x, tt, am)["stage"]) == 2


@pytest.mark.parametrize("kind", ["electra-15", "replace-mlm", "all-tokens-mlm", "adversarial", "gdes"])
def test_variants_train(kind):
    """Every parameter of the variant gets a gradient from its loss (no head or delta left out of the graph), and a
    small step along that gradient lowers the loss on the same batch and the same random draws."""
    model = _build(kind, hidden_dropout=0.0, attention_dropout=0.0)
    assert isinstance(model, Electra)
    x, tt, am = _batch()

    def loss():
        return model(x, tt, am, generator=torch.Generator().manual_seed(0))["loss"]

    before = loss()
    before.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead
    with torch.no_grad():
        for p in model.parameters():
            p -= 1e-3 * p.grad
        after = loss()
    assert after < before - 1e-4, (before.item(), after.item())
