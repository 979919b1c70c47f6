"""FLOP accounting (paper convention reproduces the official script's ELECTRA-Small figure), the official schedule,
weight-decay groups, layer-wise LR decay and the official AdamW update."""
import math

import pytest
import torch

from electra.config import preset
from electra.flops import paper_train_flops_per_example, report, sixn_train_flops_per_token
from electra.model import TaskModel
from electra.optim import AdamWeightDecay, Lamb, build_optimizer, linear_schedule, param_groups


def test_electra_small_paper_flops():
    # Paper Table 1: ELECTRA-Small, 1M steps, batch 128, length 128 -> 1.4e18 train FLOPs.
    # google-research/electra flops_computation.py gives 1.294e18 for the same run; both within 10%.
    total = paper_train_flops_per_example(preset("small"), 128) * 128 * 1_000_000
    assert abs(total - 1.4e18) / 1.4e18 < 0.10
    assert total == pytest.approx(1.2937e18, rel=1e-3)


def test_sixn_counts_match_parameter_arithmetic():
    cfg = preset("base")
    # 6N dominated by 6 x matmul params: discriminator 85M + generator ~9.4M non-embedding matmul params
    per_token = sixn_train_flops_per_token(cfg, 128)
    n_matmul = 12 * (4 * 768 ** 2 + 2 * 768 * 3072) + 12 * (4 * 256 ** 2 + 2 * 256 * 1024) + 768 * 256
    assert per_token > 6 * n_matmul
    assert per_token < 6 * n_matmul * 1.3
    r = report(preset("small"), 128, 128)
    assert r.tokens_per_step == 16384 and 13.4e6 < r.disc_params < 13.7e6


def test_schedule_overlaps_warmup_and_decay():
    f = linear_schedule(warmup=10_000, total=1_000_000)
    assert f(0) == 0.0
    assert f(5_000) == pytest.approx(0.5 * (1 - 5_000 / 1_000_000))  # decay already running during warm-up
    assert f(10_000) == pytest.approx(0.99)
    assert f(500_000) == pytest.approx(0.5)
    assert f(1_000_000) == 0.0 and f(2_000_000) == 0.0


def test_weight_decay_excludes_layernorm_and_bias():
    model = TaskModel(preset("tiny", vocab_size=50).discriminator, "sequence")
    groups = param_groups(model, lr=1e-3, weight_decay=0.01)
    for g in groups:
        for name in g["names"]:
            no_decay = "norm" in name or name.endswith("bias")
            assert g["weight_decay"] == (0.0 if no_decay else 0.01), name


def test_layerwise_lr_decay_and_official_off_by_one():
    cfg = preset("tiny", vocab_size=50).discriminator  # 2 layers
    model = TaskModel(cfg, "sequence")
    lr_of = lambda groups: {n: g["lr"] for g in groups for n in g["names"]}  # noqa: E731
    lrs = lr_of(param_groups(model, lr=1.0, layer_decay=0.8, num_layers=2))
    assert lrs["head.out.weight"] == 1.0
    assert lrs["encoder.layers.1.ffn_in.weight"] == pytest.approx(0.8)
    assert lrs["encoder.layers.0.ffn_in.weight"] == pytest.approx(0.64)
    assert lrs["encoder.embeddings.tok.weight"] == pytest.approx(0.8 ** 3)
    assert lrs["encoder.project.weight"] == pytest.approx(0.8 ** 3)
    official = lr_of(param_groups(model, lr=1.0, layer_decay=0.8, num_layers=2, official_depth=True))
    assert official["head.out.weight"] == 1.0
    assert official["encoder.layers.1.ffn_in.weight"] == pytest.approx(0.64)  # top layer at d^2 (official)
    assert official["encoder.embeddings.tok.weight"] == pytest.approx(0.8 ** 4)


def test_official_adamw_has_no_bias_correction():
    p = torch.nn.Parameter(torch.ones(3))
    opt = AdamWeightDecay([p], lr=0.1, eps=1e-6, weight_decay=0.01)
    p.grad = torch.full((3,), 2.0)
    opt.step()
    m, v = 0.1 * 2.0, 0.001 * 4.0
    expected = 1.0 - 0.1 * (m / (math.sqrt(v) + 1e-6) + 0.01 * 1.0)
    torch.testing.assert_close(p.data, torch.full((3,), expected))
    # torch's bias-corrected AdamW takes a different first step
    q = torch.nn.Parameter(torch.ones(3))
    ref = build_optimizer([{"params": [q], "weight_decay": 0.01}], "adamw", lr=0.1)
    q.grad = torch.full((3,), 2.0)
    ref.step()
    assert not torch.allclose(q.data, p.data)


def test_lamb_trust_ratio_bounds_update():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(100))
    before = p.detach().clone()
    opt = Lamb([p], lr=0.01)
    p.grad = torch.randn(100) * 1000
    opt.step()
    # the step's norm is lr * ||p|| regardless of the gradient scale
    assert (p.detach() - before).norm() == pytest.approx(0.01 * before.norm().item(), rel=1e-3)
