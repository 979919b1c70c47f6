"""The paper presets reproduce google-research/electra by default (docs/FIDELITY.md): TF's truncated-normal init and
Glorot where the TF code uses tf.layers.dense defaults, the official masking count and its sampling with replacement
(duplicates written as `scatter_update` writes them), the Adam update without bias correction; each deviation we keep
is a named switch that still gives ours.

    .venv/bin/python -m pytest -q tests/test_fidelity.py
"""
import math

import pytest
from conftest import pair_batch
import torch
import torch.nn as nn

from electra.config import ModelConfig, ObjectiveConfig, preset
from electra.model import DiscriminatorHead, Encoder, MLMHead
from electra.objective import mask_tokens, special_token_table, write_slots
from electra.objectives import build_objective
from electra.pretrain_config import PretrainConfig, electra_config, load_pretrain_config
from electra.sources import REPO_ROOT

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = dict(pad=PAD, cls=CLS, sep=SEP, mask=MASK)
FIRST, V = 4, 300
TRUNC_STD = 0.8796256610342398  # std of N(0, 1) cut at +-2 (TF truncated_normal keeps stddev, not the spread)


def _cfg(**kw):
    return ModelConfig(vocab_size=V, embedding_size=64, hidden_size=128, num_layers=2, num_heads=2,
                       intermediate_size=256, **kw)


def _weights(module, skip=()):
    return torch.cat([m.weight.detach().flatten() for name, m in module.named_modules()
                      if isinstance(m, (nn.Linear, nn.Embedding)) and name not in skip])


# --------------------------------------------------------------------------------------------------------------------
# Initialisation (model/modeling.py create_initializer; embeddings_project and the 1-unit RTD layer: tf.layers.dense)


def test_official_init_is_tf_truncated_normal_and_glorot_where_tf_uses_dense_defaults():
    assert ModelConfig().init == "official" and preset("small").discriminator.init == "official"
    torch.manual_seed(0)
    cfg = _cfg()
    enc = Encoder(cfg)
    w = _weights(enc, skip=("project",))
    std = cfg.initializer_range
    assert w.abs().max() <= 2 * std  # cut at 2 std ...
    assert w.abs().max() > 1.95 * std  # ... and reaching it
    assert abs(w.std().item() / (std * TRUNC_STD) - 1) < 0.02, w.std().item()
    limit = math.sqrt(6 / (cfg.embedding_size + cfg.hidden_size))  # Glorot-uniform bound of the projection
    p = enc.project.weight.detach()
    assert p.abs().max() <= limit and p.abs().max() > 0.98 * limit
    assert abs(p.std().item() / (limit / math.sqrt(3)) - 1) < 0.05
    assert torch.equal(enc.project.bias, torch.zeros_like(enc.project.bias))
    head = DiscriminatorHead(cfg)
    assert head.dense.weight.abs().max() <= 2 * std  # create_initializer
    out_limit = math.sqrt(6 / (cfg.hidden_size + 1))
    assert head.out.weight.abs().max() <= out_limit and head.out.weight.abs().max() > 4 * std  # Glorot, not 0.02
    assert MLMHead(cfg).dense.weight.abs().max() <= 2 * std  # get_token_logits: create_initializer


def test_normal_init_switch_gives_hugging_face_init():
    torch.manual_seed(0)
    enc = Encoder(_cfg(init="normal"))
    w = _weights(enc)  # the projection too
    assert w.abs().max() > 3 * 0.02  # not cut
    assert abs(w.std().item() / 0.02 - 1) < 0.02
    assert DiscriminatorHead(_cfg(init="normal")).out.weight.abs().max() < 0.1
    with pytest.raises(Exception, match="init='glorot' is not one of official, normal"):
        _cfg(init="glorot")


# --------------------------------------------------------------------------------------------------------------------
# Optimizer (model/optimization.py AdamWeightDecayOptimizer: no bias correction)


def test_paper_configs_use_the_official_update_and_the_short_debug_runs_torch_adamw():
    assert PretrainConfig().optim.name == "adamw-official"
    for name in ("small", "base", "large"):
        assert load_pretrain_config(REPO_ROOT / "configs" / f"{name}.toml").optim.name == "adamw-official", name
    for name in ("debug", "demo"):  # warm-up of 10 / 60 steps: bias correction keeps their first updates sane
        assert load_pretrain_config(REPO_ROOT / "configs" / f"{name}.toml").optim.name == "adamw", name


# --------------------------------------------------------------------------------------------------------------------
# Masking (pretrain/pretrain_helpers.py mask + scatter_update; configure_pretraining.py max_predictions_per_seq)


def _batch(B=16, T=128, seed=0):
    """[CLS] a [SEP] b [SEP] [PAD]...: row i has T - 5 i real tokens."""
    return pair_batch(B, T, 5, V, seed, FIRST, PAD, CLS, SEP)


IS_SPECIAL = special_token_table(V, SPECIAL.values())


def test_official_count_is_over_non_pad_tokens_with_cls_and_sep():
    x, am = _batch()
    cfg = ObjectiveConfig()
    assert cfg.masking == "official"
    N = cfg.predictions_per_seq(128)
    m = mask_tokens(x, am, IS_SPECIAL, MASK, N, cfg, V, torch.Generator().manual_seed(0))
    assert m.positions.shape == (16, N)  # all N slots, whatever the padded length
    n_tokens = am.sum(1)
    expected = torch.round(n_tokens * 0.15).clamp(max=N).clamp(min=1)  # max(1, min(N, round(n * p)))
    assert torch.equal(m.weights.sum(1), expected.float())
    maskable = (~IS_SPECIAL[x] & am.bool()).sum(1)
    assert not torch.equal(expected, torch.round(maskable * 0.15).clamp(1, N))  # the "exact" count differs
    m = mask_tokens(x[:, :8], am[:, :8], IS_SPECIAL, MASK, N, cfg, V)  # 8 tokens, 6 maskable: round(1.2) = 1
    assert m.positions.shape == (16, N) and (m.weights.sum(1) == 1).all()


def test_official_positions_are_uniform_with_replacement_over_maskable_tokens():
    x, am = _batch(B=4, T=40)
    cfg = ObjectiveConfig(mask_prob=0.5)
    candidates = ~IS_SPECIAL[x] & am.bool()
    g = torch.Generator().manual_seed(1)
    counts = torch.zeros_like(x, dtype=torch.float)
    repeats = draws = 0
    for _ in range(400):
        m = mask_tokens(x, am, IS_SPECIAL, MASK, 20, cfg, V, g)
        for i in range(x.size(0)):
            pos = m.positions[i][m.weights[i].bool()]
            counts[i].index_add_(0, pos, torch.ones(len(pos)))
            repeats += len(pos) - len(pos.unique())
            draws += len(pos)
        rows = torch.arange(x.size(0))[:, None].expand_as(m.positions)
        assert candidates[rows, m.positions][m.weights.bool()].all()  # never a special token or padding
    assert counts[~candidates].sum() == 0
    for i in range(x.size(0)):  # each maskable position: k / n_c of the draws, k slots, n_c candidates
        per = counts[i][candidates[i]]
        expected = 400 * min(20, round(int(am[i].sum()) * 0.5)) / int(candidates[i].sum())
        sd = math.sqrt(expected)
        assert ((per - expected).abs() < 5 * sd).all(), (i, per.min().item(), per.max().item(), expected)
    assert repeats > 0.1 * draws  # with replacement: 20 draws of ~37 positions repeat often


def test_repeated_slots_are_written_as_official_scatter_update():
    ids = torch.tensor([[1, 50, 60, 70, 2]])
    positions = torch.tensor([[1, 1, 3, 2, 2]])
    values = torch.tensor([[11, 14, 30, MASK, MASK]])
    active = torch.tensor([[True, True, True, False, False]])
    # position 1 twice: floor((11 + 14) / 2) = 12; position 3 once: 30; position 2 only inactive slots: unchanged
    assert write_slots(ids, positions, values, active).tolist() == [[1, 12, 60, 30, 2]]
    # positions 1 and 2: one slot asks for [MASK], the other keeps the token (inactive): [MASK]; position 3: kept
    active = torch.tensor([[True, False, False, False, True]])
    values = torch.tensor([[MASK, 99, 30, 99, MASK]])
    assert write_slots(ids, positions, values, active).tolist() == [[1, MASK, MASK, 70, 2]]


def test_objective_corrupts_a_repeated_position_with_the_floor_mean_of_its_samples(monkeypatch):
    """The generator is certain of token FIRST + j at slot j: a position drawn by slots j1, j2 reads
    FIRST + (j1 + j2) // 2 (official scatter_update), is labelled replaced, and its MLM loss counts twice."""
    torch.manual_seed(0)
    model = build_objective(preset("tiny", vocab_size=V, mask_prob=0.5, max_predictions=30), SPECIAL)
    seen = {}

    def certain(masked, token_type_ids, attention_mask):
        seen["masked"] = masked
        slot = torch.arange(masked.positions.size(1)).expand_as(masked.positions)
        logits = torch.full((*masked.positions.shape, V), -1e4)
        return logits.scatter(-1, (FIRST + slot)[..., None], 1e4).requires_grad_()

    monkeypatch.setattr(model, "generator_logits", certain)
    x, am = _batch(B=4, T=40)
    x = torch.where(IS_SPECIAL[x], x, V - 1)  # no original equals a sample
    out = model(x, torch.zeros_like(x), am, generator=torch.Generator().manual_seed(0))
    m, c = seen["masked"], out["corrupted"]
    repeated = 0
    for i in range(x.size(0)):
        slots = {}
        for j in m.weights[i].nonzero().flatten().tolist():
            slots.setdefault(int(m.positions[i, j]), []).append(j)
        for pos, js in slots.items():
            assert int(c[i, pos]) == FIRST + sum(FIRST + j for j in js) // len(js) - FIRST
            repeated += len(js) > 1
        chosen = torch.zeros(x.size(1), dtype=torch.bool)
        chosen[list(slots)] = True
        assert torch.equal(c[i][~chosen], x[i][~chosen])
        assert torch.equal(out["rtd_labels"][i].bool(), chosen)
    assert repeated > 0


def test_distinct_masked_fraction_official_vs_exact():
    """At 15% and 128 tokens: 19 slots -> about 17.7 distinct positions officially; "exact": round(0.15 * 126)."""
    x = torch.randint(FIRST, V, (64, 128), generator=torch.Generator().manual_seed(0))
    x[:, 0], x[:, -1] = CLS, SEP
    am = torch.ones_like(x)
    distinct = {}
    for masking in ("official", "exact"):
        cfg = ObjectiveConfig(masking=masking)
        m = mask_tokens(x, am, IS_SPECIAL, MASK, 19, cfg, V, torch.Generator().manual_seed(0))
        distinct[masking] = sum(len(m.positions[i][m.weights[i].bool()].unique()) for i in range(64)) / 64
    n_c, k = 126, 19  # E[distinct] of k draws with replacement from n_c
    assert abs(distinct["official"] - n_c * (1 - (1 - 1 / n_c) ** k)) < 0.3, distinct
    assert distinct["exact"] == 19


@pytest.mark.parametrize("masking", ["official", "exact"])
def test_pre_drawn_noise_gives_the_same_draw(masking):
    torch.manual_seed(0)
    model = build_objective(preset("tiny", vocab_size=V, masking=masking, random_token_prob=0.1,
                                   mask_token_prob=0.8), SPECIAL)
    model.eval()
    x, am = _batch(B=4, T=48)
    tt = torch.zeros_like(x)
    a = model(x, tt, am, generator=torch.Generator().manual_seed(3))
    noise = model.draw_noise(x, torch.Generator().manual_seed(3))
    b = model(x, tt, am, generator=noise)
    assert torch.equal(a["corrupted"], b["corrupted"]) and torch.equal(a["loss"], b["loss"])


def test_max_predictions_come_from_the_data_length_not_the_batch():
    cfg = load_pretrain_config(REPO_ROOT / "configs" / "small.toml")
    ecfg = electra_config(cfg, vocab_size=V, pad_id=PAD, seq_len=128)
    assert ecfg.objective.max_predictions == 19  # int((0.15 + 0.005) * 128), as configure_pretraining.py
    x, am = _batch(B=2, T=24)  # a batch padded to 24 only: 24 tokens -> round(3.6) = 4 slots, not int(0.155*24) = 3
    m = mask_tokens(x, am, IS_SPECIAL, MASK, ecfg.objective.predictions_per_seq(24), ecfg.objective, V)
    assert m.weights[0].sum() == 4
