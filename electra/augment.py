"""Data augmentation with a generator: K label-preserving variants of every training example.

    electra finetune --task sst2 --model runs/pretrain --data DIR --out runs/sst2-aug --augment 2
    electra finetune --task sst2 --model hf/discriminator --augment-model hf/generator --augment 2 ...

    from electra.augment import augment_features
    variants = augment_features(features, load_model("hf/generator", "generator"), k=2, seed=0)

The generator is a conditional masked LM: in each variant ~15% of an example's tokens ([CLS] / [SEP] / padding
never) are replaced by [MASK], all of them predicted in one generator pass, and each is refilled by a sample from the
generator's distribution (special tokens excluded). Every other token, the token types and the label stay as they
are; a sampled token may equal the original. Works on the encoded features (sequence and token tasks), so the
generator must share the fine-tuned model's vocabulary: our run's generator (the default: `--model`'s run), or any HF
ElectraForMaskedLM / BERT-family masked-LM folder with the same vocab. One torch.Generator seeded with `seed` draws
the positions and the samples: the same seed gives the same variants.
"""
from __future__ import annotations

import torch

from electra.errors import ElectraError

MASK_RATE = 0.15


@torch.no_grad()
def masked_variants(features: list[dict], gen, k: int, seed: int = 0, rate: float = MASK_RATE,
                    batch_size: int = 64) -> tuple[list[dict], list[list[int]]]:
    """(K variants of each feature, in order feature 0's K, feature 1's K, ...; the masked positions of each)."""
    rng = torch.Generator().manual_seed(seed)
    special = {gen.special[n] for n in ("pad", "cls", "sep", "mask", "unk") if gen.special.get(n) is not None}
    vocab_n = gen.tokenizer.get_vocab_size()
    banned = torch.zeros(gen.model.cfg.vocab_size, dtype=torch.bool)
    banned[vocab_n:] = True  # ids without text (a model vocab padded past the tokenizer's)
    banned[list(special)] = True
    device = next(gen.model.parameters()).device
    jobs = [(i, r) for i in range(len(features)) for r in range(k)]
    variants, positions = [None] * len(jobs), [None] * len(jobs)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        rows, masks = [], []
        for i, _ in chunk:
            ids = list(features[i]["input_ids"])
            candidates = [j for j, t in enumerate(ids) if t not in special]
            n = max(1, round(rate * len(candidates))) if candidates else 0
            order = torch.randperm(len(candidates), generator=rng)[:n].tolist()
            masks.append(sorted(candidates[j] for j in order))
            rows.append(ids)
        T = max(len(r) for r in rows)
        x = torch.full((len(rows), T), gen.special["pad"], dtype=torch.long)  # (B, T)
        tt, am = torch.zeros_like(x), torch.zeros_like(x)
        for b, ((i, _), r, m) in enumerate(zip(chunk, rows, masks)):
            x[b, :len(r)] = torch.tensor(r)
            tt[b, :len(r)] = torch.tensor(features[i].get("token_type_ids") or [0] * len(r))
            am[b, :len(r)] = 1
            x[b, m] = gen.special["mask"]
        _, logits = gen.model(x.to(device), tt.to(device), am.to(device))  # (B, T, V)
        logits = logits.float().cpu().masked_fill(banned, float("-inf"))
        for b, ((i, _), r, m) in enumerate(zip(chunk, rows, masks)):
            new = list(r)
            if m:
                drawn = torch.multinomial(logits[b, m].softmax(-1), 1, generator=rng)[:, 0].tolist()  # (M,)
                for pos, tok in zip(m, drawn):
                    new[pos] = tok
            variants[start + b], positions[start + b] = {**features[i], "input_ids": new}, m
    return variants, positions


def augment_features(features: list[dict], gen, k: int, seed: int = 0, rate: float = MASK_RATE) -> list[dict]:
    """The features followed by K generator-made variants of each (labels kept)."""
    return features + masked_variants(features, gen, k, seed, rate)[0]


def augment_train(features: list[dict], cfg, tokenizer, task, device, log=print) -> list[dict]:
    """The training features of a fine-tuning job with cfg.augment variants each, from cfg.augment_model (default:
    the generator of cfg.model's run)."""
    from electra.tokenizer import vocab_hash
    from electra.usage import load_model

    if cfg.augment < 0:
        raise ElectraError(f"--augment {cfg.augment} must be 0 or more")
    if task.kind not in ("sequence", "token"):
        raise ElectraError(f"--augment works on sequence and token tasks; '{task.name}' is a {task.kind} task")
    source = cfg.augment_model or cfg.model
    gen = load_model(source, "generator")
    if vocab_hash(gen.tokenizer) != vocab_hash(tokenizer):
        raise ElectraError(f"--augment-model {source} has another vocabulary than the model being fine-tuned; "
                           "augmentation replaces token ids, so it needs the same vocabulary")
    gen.model.to(device)
    out = augment_features(features, gen, cfg.augment, seed=cfg.seed)
    log(f"augment: {len(features):,} train features + {len(out) - len(features):,} variants from {gen.path} "
        f"({MASK_RATE:.0%} of tokens masked and sampled, seed {cfg.seed})")
    return out
