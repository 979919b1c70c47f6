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
    chosen = torch.zeros_like(x, dtype=torch.bool)  # each chosen position once (official masking repeats some)
    rows = torch.arange(x.size(0))[:, None].expand_as(m.positions)
    chosen[rows[m.weights.bool()], m.positions[m.weights.bool()]] = True
    per_token = F.binary_cross_entropy_with_logits(out["rtd_logits"], out["rtd_labels"].float(), reduction="none")
    torch.testing.assert_close(out["rtd_loss"], per_token[chosen].mean())
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


def test_gdes_as_deberta_v3_word_and_position_deltas_from_zero_own_layernorm_weight_10():
    model = _build("gdes")
    gen, disc = model.generator.embeddings, model.discriminator.embeddings
    assert model.obj.disc_weight == 10.0 and _build("gdes", disc_weight=50.0).obj.disc_weight == 50.0
    assert _build("electra").obj.disc_weight == 50.0
    assert torch.equal(model.token_delta, torch.zeros_like(gen.tok.weight))  # both deltas start at zero
    assert torch.equal(model.position_delta, torch.zeros_like(gen.pos.weight))
    assert disc.norm is not gen.norm and disc.seg is not gen.seg  # not shared (DeBERTa: only word/position tables)
    assert not hasattr(disc, "tok") and not hasattr(disc, "pos")  # the discriminator has no tables of its own
    tok, pos = model.discriminator_tables()
    torch.testing.assert_close(tok, gen.tok.weight)
    torch.testing.assert_close(pos, gen.pos.weight)


def _gdes_grads(**weights):
    model = _build("gdes", **weights)
    x, tt, am = _batch()
    model(x, tt, am, generator=torch.Generator().manual_seed(0))["loss"].backward()
    gen = model.generator.embeddings
    return {name: None if p.grad is None else p.grad.abs().sum().item() for name, p in
            (("tok", gen.tok.weight), ("pos", gen.pos.weight), ("token_delta", model.token_delta),
             ("position_delta", model.position_delta))}, model


def test_gdes_gradients_are_disentangled_on_word_and_position_tables_and_export_merges():
    rtd_only, _ = _gdes_grads(gen_weight=0.0)
    assert not rtd_only["tok"] and not rtd_only["pos"]  # RTD never reaches the generator's tables ...
    assert rtd_only["token_delta"] > 0 and rtd_only["position_delta"] > 0  # ... only the deltas
    mlm_only, model = _gdes_grads(disc_weight=0.0)
    assert mlm_only["tok"] > 0 and mlm_only["pos"] > 0
    assert not mlm_only["token_delta"] and not mlm_only["position_delta"]
    with torch.no_grad():
        model.token_delta.normal_()
        model.position_delta.normal_()
    (name, merged, kind, head), _ = model.export_parts()
    gen = model.generator.embeddings
    torch.testing.assert_close(merged.embeddings.tok.weight, gen.tok.weight + model.token_delta)
    torch.testing.assert_close(merged.embeddings.pos.weight, gen.pos.weight + model.position_delta)
    torch.testing.assert_close(merged.embeddings.norm.weight, model.discriminator.embeddings.norm.weight)
    x, tt, am = _batch()
    model.eval(), merged.eval()
    torch.testing.assert_close(head(merged(x, tt, am)), head(model.discriminator_hidden(x, tt, am)))  # the same model


def _two_stage(switch=3, **kw):
    return _build("two-stage", two_stage_switch=switch, generator_hidden_fraction=1.0, **kw)


def _train_steps(model, steps, optimizer, seed=0):
    from electra.optim import clip_grad_norm

    x, tt, am = _batch()
    for i in range(steps):
        out = model(x, tt, am, generator=torch.Generator().manual_seed(seed + i))
        out["loss"].backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("optim", ["adamw-official", "adamw"])
def test_two_stage_generator_is_truly_frozen_after_the_switch(optim):
    from electra.optim import build_optimizer, param_groups

    with pytest.raises(ElectraError, match="generator_hidden_fraction = 1"):
        _build("two-stage", two_stage_switch=2)
    model = _two_stage()
    opt = build_optimizer(param_groups(model, lr=1e-2, weight_decay=0.01), optim, lr=1e-2)
    disc0 = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    out = _train_steps(model, 5, opt)  # forward never switches: the loop does
    assert int(out["stage"]) == 1 and not model.frozen
    for k, v in model.discriminator.state_dict().items():  # stage 1 trains nothing of the discriminator
        assert torch.equal(v, disc0[k]), k
    model.switch()  # what the training loop does before optimizer step `two_stage_switch`
    for k, v in model.discriminator.state_dict().items():  # initialised from the generator, embeddings included
        assert torch.equal(v, model.generator.state_dict()[k]), k
    assert model.discriminator.embeddings is not model.generator.embeddings
    frozen = {n: p.clone() for n, p in model.named_parameters() if n.startswith(("generator.", "generator_head."))}
    disc_tok = model.discriminator.embeddings.tok.weight.clone()
    out = _train_steps(model, 6, opt, seed=100)
    assert int(out["stage"]) == 2 and out["rtd_loss"] > 0
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n  # bit-identical: no gradient, no update, no weight decay
    assert not torch.equal(model.discriminator.embeddings.tok.weight, disc_tok)  # what the discriminator reads trains
    # a resume in stage 2 comes back frozen (the stage is saved with the weights)
    again = _two_stage()
    again.load_state_dict(model.state_dict())
    assert again.frozen and int(again.stage) == 2
    assert all(not p.requires_grad for p in again.generator.parameters())


def test_two_stage_switch_happens_in_the_training_loop(tmp_path, debug_overrides):
    """`electra pretrain` with objective two-stage: stage 1 for two_stage_switch steps, then stage 2, and the
    generator of the final checkpoint equals the one at the switch."""
    from electra import checkpoint
    from electra.pretrain import load_pretrain_config, pretrain
    from electra.sources import REPO_ROOT

    overrides = debug_overrides(tmp_path / "run", "--train.steps=6", "--train.log_every=1", "--train.eval_every=0",
                                "--train.checkpoint_every=3", "--train.keep_checkpoints=0",
                                "--objective.kind=two-stage", "--objective.two_stage_switch=3",
                                "--model.generator_hidden_fraction=1.0", "--data.batch_size=4")
    pretrain(load_pretrain_config(REPO_ROOT / "configs" / "debug.toml", overrides))
    at_switch, _ = checkpoint.load_objective(tmp_path / "run" / "checkpoints" / "step_0000003")
    final, _ = checkpoint.load_objective(tmp_path / "run" / "checkpoints" / "step_0000006")
    assert int(at_switch.stage) == 1 and int(final.stage) == 2 and final.frozen
    before, after = at_switch.state_dict(), final.state_dict()
    for k in after:
        if k.startswith(("generator.", "generator_head.")):
            assert torch.equal(after[k], before[k]), k
    assert not torch.equal(after["discriminator.layers.0.ffn_in.weight"], before["generator.layers.0.ffn_in.weight"])


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


@pytest.mark.slow
def test_two_stage_is_refused_under_torchrun_in_one_line(tmp_path, debug_overrides):
    import os
    import subprocess
    import sys

    from electra.sources import REPO_ROOT

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "electra",
           "pretrain", str(REPO_ROOT / "configs" / "debug.toml"),
           *debug_overrides(tmp_path / "run", "--train.steps=2", "--objective.kind=two-stage",
                            "--objective.two_stage_switch=1", "--model.generator_hidden_fraction=1.0")]
    r = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    lines = [x for x in (r.stdout + r.stderr).splitlines() if "objective 'two-stage' runs in one process" in x]
    assert lines and all(x.startswith("electra pretrain: error:") for x in lines), (r.stdout + r.stderr)[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
