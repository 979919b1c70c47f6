"""The GPU code paths that a CPU can check: the training step under torch.compile(fullgraph=True), bf16 autocast,
the fp16 GradScaler (an overflowing step is skipped and the scale halves; the scale survives a checkpoint), and the
real loop compiled. Inductor's code generation takes minutes per graph on 2 cores, so only the fp32 step goes through
inductor (numerics); the bf16 step and the loop compile with the `aot_eager` backend: the same Dynamo capture
(fullgraph raises on any graph break) and AOT autograd graphs, without C++ code generation.

    .venv/bin/pytest -q -k compile tests/test_compile.py          # the fullgraph test (issue 17)
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from electra.config import preset
from electra.objective import Noise
from electra.objectives import build_objective
from electra.optim import build_optimizer, clip_grad_norm, param_groups

SPECIAL = dict(pad=0, unk=1, cls=2, sep=3, mask=4)
V, B, T = 500, 4, 32


def _objective(seed=0, **overrides):
    torch.manual_seed(seed)
    return build_objective(preset("tiny", vocab_size=V, **overrides), SPECIAL).train()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    ids[:, 0], ids[:, T // 2], ids[:, -1] = SPECIAL["cls"], SPECIAL["sep"], SPECIAL["sep"]
    tt = torch.zeros_like(ids)
    tt[:, T // 2 + 1:] = 1
    am = torch.ones_like(ids)
    am[1, T - 8:] = 0  # one padded row
    ids[1, T - 8:] = SPECIAL["pad"]
    return ids, tt, am


def _step(model, objective, batch, generator, dropout_seed=1):
    """One forward + backward as the loop does it; returns (loss, outputs, {name: grad})."""
    objective.zero_grad(set_to_none=True)
    torch.manual_seed(dropout_seed)
    out = model(*batch, generator=generator)
    out["loss"].backward()
    return out["loss"].detach(), out, {n: p.grad.clone() for n, p in objective.named_parameters() if p.grad is not None}


def test_predrawn_noise_gives_the_generator_s_masks_and_samples():
    """Noise drawn ahead (what a compiled step takes) is bit-identical to drawing inside the forward."""
    obj = _objective(random_token_prob=0.1)  # the randint draw too
    batch = _batch()
    loss_g, out_g, grads_g = _step(obj, obj, batch, torch.Generator().manual_seed(7))
    loss_n, out_n, grads_n = _step(obj, obj, batch, obj.draw_noise(batch[0], torch.Generator().manual_seed(7)))
    assert torch.equal(out_g["corrupted"], out_n["corrupted"]) and torch.equal(loss_g, loss_n)
    assert all(torch.equal(grads_g[k], grads_n[k]) for k in grads_g)
    other = obj.draw_noise(batch[0], torch.Generator().manual_seed(8))
    assert not torch.equal(other.scores, obj.draw_noise(batch[0], torch.Generator().manual_seed(7)).scores)


@pytest.mark.slow
@pytest.mark.parametrize("dtype,backend", [(torch.float32, "inductor"), (torch.bfloat16, "aot_eager")],
                         ids=["fp32-inductor", "bf16-aot_eager"])
def test_compile_fullgraph_training_step_matches_eager(dtype, backend):
    """objective forward + loss + backward compiled in ONE graph (fullgraph=True raises on any graph break; a
    torch.Generator argument is one, so the randomness is drawn ahead as Noise), same loss and gradients as eager."""
    import torch._dynamo
    import torch._inductor.config

    torch._dynamo.reset()
    eager = _objective()
    compiled_obj = copy.deepcopy(eager)
    compiled = torch.compile(compiled_obj, fullgraph=True, backend=backend)
    amp = dict(device_type="cpu", dtype=dtype, enabled=dtype != torch.float32)
    with torch._inductor.config.patch(fallback_random=True):  # dropout from the eager RNG stream, for comparison
        for step, seed in enumerate((3, 4)):  # the second step reuses the graph (same shapes, new noise)
            batch = _batch(seed)
            with torch.autocast(**amp):
                loss_e, out_e, grads_e = _step(eager, eager, batch, torch.Generator().manual_seed(seed))
                noise = compiled_obj.draw_noise(batch[0], torch.Generator().manual_seed(seed))
                loss_c, out_c, grads_c = _step(compiled, compiled_obj, batch, noise)
            assert torch.equal(out_e["corrupted"], out_c["corrupted"]), step
            assert math.isfinite(loss_c.item())
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            assert loss_c.item() == pytest.approx(loss_e.item(), rel=tol), step
            assert grads_c.keys() == grads_e.keys()
            for k in grads_e:
                scale = grads_e[k].abs().max().item() + 1e-6
                assert (grads_c[k] - grads_e[k]).abs().max().item() <= 10 * tol * scale, k
    if dtype == torch.bfloat16:  # autocast really ran the matmuls in bf16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = eager.discriminator(*_batch())
        assert h.dtype == torch.bfloat16


def test_bf16_autocast_step_is_close_to_fp32_and_learns():
    """The loop's bf16 path on CPU: autocast around the forward, fp32 losses, every parameter gets a finite grad."""
    fp32, bf16 = _objective(), _objective()
    batch = _batch()
    loss32, _, _ = _step(fp32, fp32, batch, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, out, grads = _step(bf16, bf16, batch, torch.Generator().manual_seed(0))
    assert out["loss"].dtype == torch.float32  # the losses are computed in fp32 (logits.float())
    assert loss16.item() == pytest.approx(loss32.item(), rel=3e-2)
    params = dict(bf16.named_parameters())
    assert set(grads) == set(params) and all(torch.isfinite(g).all() for g in grads.values())
    assert all(grads[k].dtype == params[k].dtype == torch.float32 for k in grads)  # fp32 master weights


# ---------------------------------------------------------------------------------------------------------------
# fp16 + GradScaler, the loop's sequence (scale -> backward -> unscale_ -> clip -> step -> update) on CPU


def _scaler_step(obj, optimizer, scaler, batch, seed=0):
    """The loop's optimizer step for precision fp16 (the loss is finite; overflow is the scaler's business)."""
    torch.manual_seed(seed + 1000)  # dropout
    with torch.autocast("cpu", dtype=torch.float16):
        out = obj(*batch, generator=torch.Generator().manual_seed(seed))
    assert math.isfinite(out["loss"].item())
    scaler.scale(out["loss"]).backward()
    scaler.unscale_(optimizer)
    clip_grad_norm(obj.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def _optimizer(obj):
    return build_optimizer(param_groups(obj, lr=1e-3, weight_decay=0.01), "adamw", lr=1e-3, eps=1e-6)


def test_fp16_grad_scaler_skips_an_overflowing_step_and_halves_the_scale():
    obj = _objective()
    optimizer = _optimizer(obj)
    before = {k: v.clone() for k, v in obj.state_dict().items()}
    # loss ~40 x 2^127 overflows fp32: every scaled gradient is inf, as an fp16 overflow makes them
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)
    _scaler_step(obj, optimizer, scaler, _batch())
    assert scaler.get_scale() == 2.0 ** 126  # backoff factor 0.5
    assert all(torch.equal(before[k], v) for k, v in obj.state_dict().items())  # the update was skipped
    steps = [float(st["step"]) for st in optimizer.state.values()]  # fused AdamW gets found_inf and skips itself
    assert all(x == 0 for x in steps)

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    _scaler_step(obj, optimizer, scaler, _batch())
    assert scaler.get_scale() == 2.0 ** 10  # a finite step keeps the scale (growth only every 2000 good steps)
    assert not torch.equal(before["discriminator.embeddings.tok.weight"],
                           obj.state_dict()["discriminator.embeddings.tok.weight"])


def test_fp16_grad_scaler_state_resumes_through_a_checkpoint(tmp_path):
    from electra import checkpoint

    obj = _objective()
    optimizer = _optimizer(obj)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    for seed in range(2):  # two good steps toward the next growth of the scale
        _scaler_step(obj, optimizer, scaler, _batch(seed), seed)
    saved = scaler.state_dict()
    assert saved["scale"] == 2.0 ** 10 and saved["_growth_tracker"] == 2
    state = {"step": 2, "rng": {}, "scaler": saved, "nonfinite_total": 0}  # what the loop's save() writes
    path = checkpoint.save_checkpoint(tmp_path, 2, obj, optimizer, state, {"model": {}})

    resumed = torch.amp.GradScaler("cpu")  # the loop builds a default scaler (scale 2^16), then loads the state
    resumed.load_state_dict(checkpoint.load_state(path)["scaler"])
    assert resumed.get_scale() == 2.0 ** 10 and resumed.state_dict()["_growth_tracker"] == 2
    obj2 = _objective(seed=1)
    checkpoint.load_weights(obj2, path)
    opt2 = _optimizer(obj2)
    checkpoint.load_state(path, opt2)
    _scaler_step(obj, optimizer, scaler, _batch(2), 2)
    _scaler_step(obj2, opt2, resumed, _batch(2), 2)
    assert resumed.get_scale() == scaler.get_scale() == 2.0 ** 11  # the third good step grew both alike
    assert all(torch.equal(a, b) for a, b in zip(obj.state_dict().values(), obj2.state_dict().values()))


# ---------------------------------------------------------------------------------------------------------------
# The real loop


@pytest.mark.slow
def test_pretrain_loop_runs_compiled(tmp_path, debug_overrides, monkeypatch):
    """`pretrain()` with train.compile = true (static shapes, no dropout so that compiled and eager agree) trains
    a few steps and logs the same losses as the eager loop. The loop's torch.compile call is given the aot_eager
    backend (Dynamo capture + AOT autograd, no C++ code generation) to keep this test in seconds."""
    import functools
    from electra.pretrain import load_pretrain_config, pretrain
    from electra.sources import REPO_ROOT

    import torch._dynamo

    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    common = ("--train.steps=3", "--train.log_every=1", "--train.eval_every=0", "--train.eval_batches=1",
              "--data.fixed_length=true", "--model.hidden_dropout=0", "--model.attention_dropout=0")
    losses = {}
    for compile_ in (False, True):
        out = tmp_path / f"compile-{compile_}"
        cfg = load_pretrain_config(REPO_ROOT / "configs/debug.toml", debug_overrides(
            out, *common, f"--train.compile={str(compile_).lower()}"))
        result = pretrain(cfg)
        assert result["step"] == 3 and result["checkpoint"] and result["nonfinite_steps"] == 0
        rows = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
        losses[compile_] = [r["loss"] for r in rows]
    assert len(losses[True]) == 3 and all(math.isfinite(x) for x in losses[True])
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pretrain_loop_fp16_and_bf16_compiled_on_cuda(tmp_path, debug_overrides):
    """On a GPU: the loop in fp16 (GradScaler) and bf16, compiled, trains and resumes with its scaler state."""
    from electra import checkpoint
    from electra.pretrain import load_pretrain_config, pretrain
    from electra.sources import REPO_ROOT

    for precision in ("fp16", "bf16"):
        out = tmp_path / precision
        args = ("--train.device=cuda", f"--train.precision={precision}", "--train.compile=true",
                "--data.fixed_length=true", "--train.deterministic=false", "--train.eval_every=0",
                "--train.eval_batches=1", "--train.checkpoint_every=4")
        result = pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml",
                                               debug_overrides(out, "--train.steps=4", *args)))
        assert result["nonfinite_steps"] == 0
        state = checkpoint.load_state(result["checkpoint"])
        if precision == "fp16":
            assert state["scaler"]["scale"] > 0
        resumed = pretrain(load_pretrain_config(REPO_ROOT / "configs/debug.toml",
                                                debug_overrides(out, "--train.steps=8", *args)), resume=True)
        assert resumed["step"] == 8 and math.isfinite(resumed["train"]["loss"])
