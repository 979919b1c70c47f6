"""The losses of the heads, one function per kind, shared by pretraining (objective.py) and fine-tuning (TaskModel).

    loss = rtd_loss(logits, labels, attention_mask.float())     # (B, T) logits, labels 1 = replaced
    loss = sequence_loss(logits, labels)                        # (B, C) -> CE; (B, 1) -> MSE (regression)
    loss = token_loss(logits, labels)                           # (B, T, C), labels -100 = ignored
    loss = span_loss(logits, start_positions, end_positions)    # (B, T, 2) start / end logits
    loss = choice_loss(logits, labels)                          # (B, C) one score per choice

Every loss is computed in float32 (logits may be bf16 under autocast) and returns a scalar. Nothing here imports
the model or the objective, so both can import it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / sum(weights), 0 when every weight is 0."""
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def rtd_per_token(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Replaced-token detection: binary cross-entropy per token (B, T); labels 1 = replaced, 0 = original."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")


def rtd_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The discriminator's loss: the per-token BCE averaged over the weighted tokens (None = every token)."""
    per_token = rtd_per_token(logits, labels)
    return weighted_mean(per_token, torch.ones_like(per_token) if weights is None else weights.float())


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sequence classification: cross-entropy over the labels; MSE for a single output (regression, STS-B)."""
    if logits.size(-1) == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token classification (tags, masked LM): cross-entropy over (B*T, C), ignoring labels -100."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)


def span_loss(logits: torch.Tensor, start_positions: torch.Tensor, end_positions: torch.Tensor) -> torch.Tensor:
    """Extractive QA: the mean of the start and end cross-entropies; positions past the window are clamped to it."""
    T = logits.size(1)
    start, end = logits.float().unbind(-1)  # (B, T) each
    return 0.5 * (F.cross_entropy(start, start_positions.clamp(0, T - 1))
                  + F.cross_entropy(end, end_positions.clamp(0, T - 1)))


def choice_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multiple choice: cross-entropy over the C choices of each question; logits (B, C), labels (B,)."""
    return F.cross_entropy(logits.float(), labels)
