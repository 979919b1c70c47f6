"""Masking as the official code does it (masking = "official") versus distinct positions ("exact"), on a real
prepared folder: the fraction of tokens that end up masked out, per non-pad token and per maskable token, and the
slots per sequence. The number docs/FIDELITY.md quotes.

    .venv/bin/python benchmarks/masking_fidelity.py .cache/demo/data-128 [--batches 200] [--mask-prob 0.15]
"""
from __future__ import annotations

import argparse

import torch

from electra.config import ObjectiveConfig
from electra.loader import PretrainLoader
from electra.objective import mask_tokens, special_token_table


def measure(data_dir: str, batches: int, mask_prob: float, batch_size: int = 64) -> dict:
    def batches_of():  # the same batches for each masking (a loader resumes where it stopped)
        return PretrainLoader(data_dir, "train", batch_size=batch_size, seed=0, shuffle=True, drop_last=True,
                              fixed_length=True)

    meta = batches_of().meta
    seq_len, vocab = meta["seq_len"], meta["vocab_size"]
    is_special = special_token_table(vocab, [meta[f"{k}_id"] for k in ("pad", "cls", "sep", "mask")])
    results = {}
    for masking in ("official", "exact"):
        cfg = ObjectiveConfig(mask_prob=mask_prob, masking=masking)
        slots = cfg.predictions_per_seq(seq_len)
        g = torch.Generator().manual_seed(0)
        tokens = maskable = distinct = used = sequences = 0
        for _, batch in zip(range(batches), batches_of()):
            ids, am = batch["input_ids"], batch["attention_mask"]
            m = mask_tokens(ids, am, is_special, meta["mask_id"], slots, cfg, vocab, g)
            chosen = torch.zeros_like(ids, dtype=torch.bool)
            rows = torch.arange(ids.size(0))[:, None].expand_as(m.positions)
            chosen[rows[m.weights.bool()], m.positions[m.weights.bool()]] = True
            tokens, maskable = tokens + int(am.sum()), maskable + int((~is_special[ids] & am.bool()).sum())
            distinct, used, sequences = distinct + int(chosen.sum()), used + int(m.weights.sum()), sequences + len(ids)
        results[masking] = {"distinct_per_token": distinct / tokens, "distinct_per_maskable": distinct / maskable,
                            "slots_per_seq": used / sequences, "distinct_per_seq": distinct / sequences,
                            "tokens": tokens}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--mask-prob", type=float, default=0.15)
    args = parser.parse_args()
    r = measure(args.data_dir, args.batches, args.mask_prob)
    for masking, v in r.items():
        print(f"{masking:9s} masked out: {v['distinct_per_token']:.2%} of non-pad tokens, "
              f"{v['distinct_per_maskable']:.2%} of maskable; {v['slots_per_seq']:.2f} slots, "
              f"{v['distinct_per_seq']:.2f} distinct positions per sequence ({v['tokens']:,} tokens)")
    print(f"ratio official / exact (distinct masked): "
          f"{r['official']['distinct_per_token'] / r['exact']['distinct_per_token']:.3f}")


if __name__ == "__main__":
    main()
