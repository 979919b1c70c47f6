"""Held-out evaluation of a pretraining objective and plain-words collapse diagnosis from its metrics.

    from electra.diagnose import diagnose, evaluate
    metrics = evaluate(objective, "runs/data", batch_size=64, max_batches=50, device=device, autocast=autocast, seed=1)
    for kind, text in diagnose(metrics, mask_prob=0.15):      # ("majority-class", "the discriminator calls ...")
        print(text)

The loop (electra.pretrain) evaluates every `train.eval_every` steps on rank 0 and diagnoses every log; a problem
is reported once it shows at two logs in a row (`persistent`), once per run.
"""
from __future__ import annotations

# The metrics an objective's forward returns that are logged (those present); evaluation averages the same ones.
TRAIN_KEYS = ("loss", "mlm_loss", "rtd_loss", "mlm_acc", "rtd_acc", "rtd_precision", "rtd_recall", "replaced_frac")


def evaluate(objective, data_dir: str, batch_size: int, max_batches: int, device, autocast, seed: int) -> dict:
    """Held-out metrics: MLM accuracy, RTD accuracy/precision/recall and AUC over the valid split (rank 0).
    The masks come from a fixed seed, so evaluations at different steps see the same corruption."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from electra.loader import PretrainLoader

    loader = PretrainLoader(data_dir, "valid", batch_size=batch_size, shuffle=False, drop_last=False,
                            pad_to_multiple=8)
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = objective.training
    objective.eval()
    sums, batches, logits, labels = {}, 0, [], []
    with torch.no_grad():
        for batch in loader:
            if max_batches and batches >= max_batches:
                break
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                out = objective(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], generator=gen)
            for k in TRAIN_KEYS:
                if k in out:
                    sums[k] = sums.get(k, 0.0) + float(out[k].float())
            if "rtd_logits" in out:
                keep = out["rtd_weights"] > 0
                logits.append(out["rtd_logits"].float()[keep].cpu().numpy())
                labels.append(out["rtd_labels"][keep].cpu().numpy())
            batches += 1
    objective.train(was_training)
    if batches == 0:
        return {}
    result = {f"eval_{k}": v / batches for k, v in sums.items()}
    if logits:
        y, s = np.concatenate(labels), np.concatenate(logits)
        result["eval_rtd_auc"] = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None
    result["eval_batches"] = batches
    return result


def diagnose(m: dict, mask_prob: float) -> list[tuple[str, str]]:
    """Plain-words collapse diagnostics from train or eval metrics (keys with or without the eval_ prefix).

    1. The discriminator stays at the majority class ('original'): recall on replaced tokens ~0.
    2. The generator is too strong: it recovers most masked tokens, so few are replaced and the discriminator
       finds few of them (paper Sec. 3.2 and Fig. 3: generators 1/4-1/2 the discriminator's size work best)."""
    get = lambda k: m.get(k, m.get(f"eval_{k}"))  # noqa: E731
    recall, replaced, gen_acc = get("rtd_recall"), get("replaced_frac"), get("mlm_acc")
    found = []
    if recall is None or replaced is None or gen_acc is None:
        return found
    if replaced > 0 and recall < 0.05:
        found.append(("majority-class", (
            f"the discriminator calls almost every token 'original' (it finds {recall:.1%} of the replaced "
            f"tokens, which are {replaced:.1%} of all tokens): it is stuck at the majority class. Early in a short "
            f"run this can be a plateau that more steps end; if it persists, the likely fixes are: a "
            f"smaller generator (model.generator_hidden_fraction=0.25; the paper finds 1/4-1/2 of the "
            f"discriminator best), a lower learning rate or a longer warm-up (optim.lr, optim.warmup_steps), and "
            f"the paper's mask rate (objective.mask_prob=0.15, 0.25 for large).")))
    if gen_acc > 0.6 and recall < 0.2:
        found.append(("generator-too-strong", (
            f"the generator is too strong for the discriminator: it recovers {gen_acc:.0%} of the masked tokens, "
            f"so only {replaced:.1%} of tokens are replaced (mask rate {mask_prob:.0%}) and the discriminator "
            f"finds just {recall:.0%} of them. Likely fixes: a smaller generator (model.generator_hidden_fraction "
            f"0.25-0.5, or fewer generator layers), a higher mask rate (objective.mask_prob), or a lower "
            f"learning rate.")))
    return found


def persistent(found: list[tuple[str, str]], streak: dict[str, int], shown: set[str]) -> tuple[dict, list]:
    """(new streak, problems to report now): a problem is reported when it shows at two logs in a row, once per run.
    `streak` counts consecutive logs per problem; `shown` (updated) holds the problems reported already."""
    streak = {kind: streak.get(kind, 0) + 1 for kind, _ in found}
    report = [(kind, text) for kind, text in found if kind not in shown and streak[kind] >= 2]
    shown.update(kind for kind, _ in report)
    return streak, report


def diagnose_after(diagnose_after: int, warmup_steps: int, steps: int) -> int:
    """The first step diagnosed: train.diagnose_after, or by default past the warm-up and the early plateau."""
    return diagnose_after if diagnose_after >= 0 else max(2 * warmup_steps, min(steps // 5, 20_000))
