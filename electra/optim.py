"""Optimizers and schedules as google-research/electra `model/optimization.py` does them.

    groups = param_groups(model, lr=5e-4, weight_decay=0.01)                     # pretraining
    groups = param_groups(task_model, lr=1e-4, weight_decay=0.01, layer_decay=0.8, num_layers=12)  # fine-tuning
    opt = build_optimizer(groups, "adamw", lr=5e-4, eps=1e-6)          # or "adamw-official", "lamb"
    sched = LambdaLR(opt, linear_schedule(warmup=10_000, total=1_000_000))

- Weight decay 0.01 on everything but LayerNorm parameters and biases (official `exclude_from_weight_decay`).
- Schedule: linear decay from step 0 to 0 at `total`, multiplied by a linear warmup over the first `warmup` steps:
  lr(t) = lr * (1 - t / total) * min(1, t / warmup). The two overlap (the decay has started during warm-up), exactly
  as the official `polynomial_decay(power=1)` followed by the warm-up factor.
- Layer-wise LR decay for fine-tuning: the head gets lr, the top encoder layer lr*d, ..., the embeddings
  lr*d^(L+1). `official_depth=True` reproduces the official code, which puts the task head at depth L+2 (so the top
  layer gets lr*d^2, the embeddings lr*d^(L+2)).
- AdamW with eps 1e-6. `adamw-official` (`AdamWeightDecay`) gives the official `AdamWeightDecayOptimizer` update (no
  bias correction, decay added to the update before the learning rate). LAMB for very large batches.
"""
from __future__ import annotations

import math
import re

import torch

from electra.errors import ElectraError


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias") or name == "bias"


def layer_depth(name: str, num_layers: int, official_depth: bool = False) -> int:
    """Depth of a parameter for layer-wise LR decay: embeddings 0, layer i -> i + 1, head L + 1 (L + 2 official)."""
    head_depth = num_layers + 2 if official_depth else num_layers + 1
    if "embeddings." in name or ".project." in name or name.startswith("project."):
        return 0
    m = re.search(r"layers\.(\d+)\.", name)
    if m:
        return int(m.group(1)) + 1
    return head_depth


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float = 0.01, layer_decay: float | None = None,
                 num_layers: int | None = None, official_depth: bool = False) -> list[dict]:
    """Parameter groups: weight decay except LayerNorm/bias; with `layer_decay`, one LR per depth.
    Shared parameters appear once (named by their first owner)."""
    groups: dict[tuple, dict] = {}
    seen = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        wd = 0.0 if _no_decay(name, p) else weight_decay
        scale = 1.0
        if layer_decay is not None:
            if num_layers is None:
                raise ValueError("layer_decay needs num_layers")
            top = num_layers + 2 if official_depth else num_layers + 1
            scale = layer_decay ** (top - layer_depth(name, num_layers, official_depth))
        key = (wd, scale)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": wd, "lr": lr * scale, "lr_scale": scale, "names": []}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return list(groups.values())


def linear_schedule(warmup: int, total: int, power: float = 1.0, min_factor: float = 0.0):
    """The factor lr(t)/lr: (1 - t/total)^power * min(1, t/warmup), decay and warm-up overlapped (official)."""
    if total <= 0:
        raise ElectraError(f"total steps must be positive, got {total}")

    def factor(step: int) -> float:
        decay = max(0.0, 1.0 - step / total) ** power
        warm = min(1.0, step / warmup) if warmup > 0 else 1.0
        return max(min_factor, decay * warm)

    return factor


class AdamWeightDecay(torch.optim.Optimizer):
    """The official ELECTRA/BERT `AdamWeightDecayOptimizer`: Adam moments without bias correction and decoupled
    weight decay added to the update: p -= lr * (m / (sqrt(v) + eps) + wd * p). Subclasses switch on bias
    correction and LAMB's per-tensor trust ratio."""

    bias_correction = False
    trust_ratio = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                if self.bias_correction:
                    m, v = m / (1 - b1 ** state["step"]), v / (1 - b2 ** state["step"])
                update = m / (v.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                if self.trust_ratio:  # LAMB: the step's norm is lr * ||p||, whatever the gradient's scale
                    w_norm, u_norm = p.norm(), update.norm()
                    update.mul_(torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm)))
                p.add_(update, alpha=-group["lr"])
        return loss


class Lamb(AdamWeightDecay):
    """LAMB (You et al., 2020) for very large batches: the bias-corrected Adam(W) update scaled per tensor by
    ||p|| / ||update||."""

    bias_correction = True
    trust_ratio = True


OPTIMIZERS = ("adamw", "adamw-official", "lamb")


def build_optimizer(groups: list[dict], name: str = "adamw", lr: float = 1e-4, eps: float = 1e-6,
                    betas=(0.9, 0.999), fused: bool | None = None) -> torch.optim.Optimizer:
    """adamw: torch AdamW (bias-corrected; the fused kernel by default: one kernel for all parameters instead of a
    loop of small ops, on CUDA and, since torch 2.4, on CPU); adamw-official: no bias correction; lamb: LAMB.
    Group dicts carry their own lr and weight_decay."""
    clean = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    if name == "adamw":
        if fused is None:
            params = [p for g in clean for p in g["params"]]
            fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) \
                and len({p.device for p in params}) == 1
        return torch.optim.AdamW(clean, lr=lr, betas=betas, eps=eps, fused=fused)
    if name == "adamw-official":
        return AdamWeightDecay(clean, lr=lr, betas=betas, eps=eps)
    if name == "lamb":
        return Lamb(clean, lr=lr, betas=betas, eps=eps)
    raise ElectraError(f"unknown optimizer '{name}'; choose one of {', '.join(OPTIMIZERS)}")


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every group's lr to base_lr * its lr_scale * factor (schedules without LambdaLR state). Returns lr."""
    for g in optimizer.param_groups:
        g["lr"] = base_lr * g.get("lr_scale", 1.0) * factor
    return base_lr * factor


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """Global-norm clipping (1.0 in ELECTRA; max_norm <= 0: off); returns the pre-clip norm as a tensor (no host
    sync). With clipping off the norm is still computed: the loops read it to skip steps with NaN/Inf gradients."""
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)
