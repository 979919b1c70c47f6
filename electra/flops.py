"""FLOP accounting for a generator/discriminator pair, in two conventions.

    electra flops --preset small --seq-len 128 --batch-size 128 --steps 1000000

"paper": the convention of google-research/electra `flops_computation.py`, used for the paper's compute axis:
    every operation counts (matmuls as 2*m*n, plus softmax, LayerNorm, GELU, dropout at fixed per-element costs),
    dense one-hot embedding lookups, the generator's softmax on a fixed fraction (0.15625) of positions, and
    training = 2 x forward (their stated assumption). ELECTRA-Small, 1M steps at batch 128, length 128: 1.4e18.
"6N": the matmul-only count used for MFU: 6 FLOPs per matmul parameter per token (2 forward + 4 backward) plus
    attention's two T x T matmuls (12 * T * H per layer per token), vocabulary logits only at the predicted slots.
"""
from __future__ import annotations

from dataclasses import dataclass

from electra.config import ElectraConfig, ModelConfig

# Per-element costs of the "paper" convention (google-research/electra flops_computation.py).
DROPOUT, LAYER_NORM, ACT, SOFTMAX = 4, 5, 8, 5
PAPER_OUTPUT_FRAC = 0.15625


def _paper_block(c: ModelConfig, s: int) -> float:
    """Forward FLOPs of one transformer block for a sequence of length s (paper convention)."""
    h, i, n = c.hidden_size, c.intermediate_size, c.num_heads
    per_position = (
        6 * h * h + 3 * h  # q, k, v projections and biases
        + 2 * h * s + 2 * h * s  # scores and weighted values
        + (SOFTMAX + DROPOUT + 1) * s * n  # softmax, dropout and scaling of the scores
        + 2 * h * h + h + DROPOUT * h + h + LAYER_NORM  # attention output, bias, dropout, residual, LN (sic: not *h)
        + 2 * h * i + ACT * i + i  # FFN in, activation, bias
        + 2 * h * i + h + DROPOUT * h + h + LAYER_NORM * h  # FFN out, bias, dropout, residual, LN
    )
    return per_position * s


def _paper_input_embedding(c: ModelConfig, s: int, vocab: int) -> float:
    e, h = c.embedding_size, c.hidden_size
    per_position = 2 * e * vocab + 2 * e * (s + 2) + 2 * e + LAYER_NORM * e + DROPOUT * e
    if e != h:
        per_position += 2 * h * e + h  # embedding projection
    return per_position * s


def _paper_mlm_output(c: ModelConfig, s: int, vocab: int, frac: float) -> float:
    e, h = c.embedding_size, c.hidden_size
    per_position = 2 * e * vocab + 2 * h * e + e + ACT * e + LAYER_NORM * e + SOFTMAX * vocab + 2 * vocab
    return frac * per_position * s


def _paper_binary_head(c: ModelConfig, s: int) -> float:
    h = c.hidden_size
    return (2 * h * h + h + ACT * h + 2 * h) * s


def paper_train_flops_per_example(cfg: ElectraConfig, seq_len: int, output_frac: float = PAPER_OUTPUT_FRAC) -> float:
    """Training FLOPs per example (sequence), paper convention: 2 x forward of generator + discriminator."""
    d, g, v = cfg.discriminator, cfg.generator, cfg.discriminator.vocab_size
    disc = d.num_layers * _paper_block(d, seq_len) + _paper_input_embedding(d, seq_len, v) + _paper_binary_head(d, seq_len)
    if cfg.objective.kind == "mlm":
        return 2 * (d.num_layers * _paper_block(d, seq_len) + _paper_input_embedding(d, seq_len, v)
                    + _paper_mlm_output(d, seq_len, v, output_frac))
    gen = g.num_layers * _paper_block(g, seq_len) + _paper_input_embedding(g, seq_len, v) \
        + _paper_mlm_output(g, seq_len, v, output_frac)
    return 2 * (disc + gen)


def _matmul_params(c: ModelConfig) -> int:
    """Parameters that take part in a matmul for every token (embedding lookups excluded)."""
    h, i = c.hidden_size, c.intermediate_size
    n = c.num_layers * (4 * h * h + 2 * h * i)
    if c.embedding_size != h:
        n += c.embedding_size * h
    return n


def sixn_train_flops_per_token(cfg: ElectraConfig, seq_len: int, num_predictions: int | None = None) -> float:
    """Training FLOPs per token, matmul-only: 6 per matmul parameter + attention; vocab logits at the P slots."""
    d, g, v = cfg.discriminator, cfg.generator, cfg.discriminator.vocab_size
    if num_predictions is None:
        num_predictions = cfg.objective.predictions_per_seq(seq_len)
    frac = num_predictions / seq_len

    def encoder(c: ModelConfig) -> float:
        return 6 * _matmul_params(c) + 12 * c.num_layers * seq_len * c.hidden_size

    def mlm_head(c: ModelConfig) -> float:
        return 6 * frac * (c.hidden_size * c.embedding_size + c.embedding_size * v)

    if cfg.objective.kind == "mlm":
        return encoder(d) + mlm_head(d)
    return encoder(d) + 6 * d.hidden_size * (d.hidden_size + 1) + encoder(g) + mlm_head(g)


@dataclass
class FlopReport:
    disc_params: int
    gen_params: int
    tokens_per_step: int
    paper_flops_per_token: float
    sixn_flops_per_token: float

    def lines(self, steps: int | None = None) -> list[str]:
        out = [
            f"parameters: discriminator {self.disc_params / 1e6:.2f}M, generator {self.gen_params / 1e6:.2f}M "
            f"(embeddings shared, counted in both)",
            f"tokens per step: {self.tokens_per_step:,}",
            f"train FLOPs per token: {self.paper_flops_per_token:.4g} (paper convention), "
            f"{self.sixn_flops_per_token:.4g} (6N matmul-only)",
        ]
        if steps:
            total = steps * self.tokens_per_step
            out.append(f"for {steps:,} steps: {total * self.paper_flops_per_token:.3g} FLOPs (paper), "
                       f"{total * self.sixn_flops_per_token:.3g} FLOPs (6N)")
        return out


def report(cfg: ElectraConfig, seq_len: int, batch_size: int) -> FlopReport:
    from electra.model import Encoder, count_parameters

    import torch

    with torch.device("meta"):
        disc = count_parameters(Encoder(cfg.discriminator)) + cfg.discriminator.hidden_size * (cfg.discriminator.hidden_size + 2) + 1
        gen = count_parameters(Encoder(cfg.generator))
    g = cfg.generator
    gen += g.hidden_size * g.embedding_size + g.embedding_size * 3 + g.vocab_size  # MLM head (output tied)
    return FlopReport(
        disc_params=disc,
        gen_params=gen if cfg.objective.kind != "mlm" else 0,
        tokens_per_step=seq_len * batch_size,
        paper_flops_per_token=paper_train_flops_per_example(cfg, seq_len) / seq_len,
        sixn_flops_per_token=sixn_train_flops_per_token(cfg, seq_len),
    )


# ---------------------------------------------------------------------------------------------------------------
# CLI: electra flops


def build_parser(parser):
    parser.add_argument("--preset", default="small", help="tiny | small | base | large (default: small)")
    parser.add_argument("--vocab-size", type=int, default=30522, help="vocabulary size (default: 30522)")
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length (default: 128)")
    parser.add_argument("--batch-size", type=int, default=128, help="sequences per optimizer step (default: 128)")
    parser.add_argument("--steps", type=float, default=1e6, help="training steps for the total (default: 1e6)")
    parser.add_argument("--generator-fraction", type=float, default=None,
                        help="generator width as a fraction of the discriminator (default: the preset's)")


def run(args):
    from electra.config import preset

    overrides = {"vocab_size": args.vocab_size}
    if args.generator_fraction is not None:
        overrides["generator_hidden_fraction"] = args.generator_fraction
    cfg = preset(args.preset, **overrides)
    for line in report(cfg, args.seq_len, args.batch_size).lines(int(args.steps)):
        print(line)
    return 0
