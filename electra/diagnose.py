"""Held-out evaluation of a pretraining objective with reference points, and the plain-words diagnosis.

    from electra.diagnose import diagnose, evaluate, explain
    metrics = evaluate(objective, "runs/data", batch_size=64, max_batches=50, device=device, autocast=autocast, seed=1)
    metrics["tokens_seen"] = step * tokens_per_step
    explain(metrics, mask_prob=0.15)   # + "explanation": "AUC 0.54 (token prior 0.53, bigram 0.79): ...", "warnings"
    for kind, text in diagnose(metrics, mask_prob=0.15):      # ("majority-class", "the discriminator says ...")
        print(text)

An RTD AUC means little alone: evaluate() scores two cheap reference detectors on the same corrupted tokens
(electra/reference.py: a context-free per-token prior and a bigram count detector) and measures representation
collapse (mean cosine between hidden states of random tokens, beside a random-init copy). The loop
(electra.pretrain) evaluates every `train.eval_every` steps on rank 0 and diagnoses every log; a problem in the
training logs is reported once it shows at two logs in a row (`persistent`), once per run.
"""
from __future__ import annotations

import math

# The metrics an objective's forward returns that are logged (those present); evaluation averages the same ones.
TRAIN_KEYS = ("loss", "mlm_loss", "rtd_loss", "mlm_acc", "rtd_acc", "rtd_precision", "rtd_recall", "replaced_frac")
LATE_TOKENS = 100_000_000  # past this many training tokens a plateau is no longer "early" (a judgment, not a law)
MARGIN = 0.02  # AUC differences smaller than this are "about the same"
# Representation collapse: mean hidden-state cosine of random token pairs at least COLLAPSED_COS and COLLAPSE_GAP
# above a random-init copy's. Measured (2026-12-01): fine-tuned worse than random init at 0.99 (random 0.34, the
# issue-15 English demo) and 0.90 (random 0.18, the Chinese demo, 810 steps); better at 0.65 (random 0.21, MiniLM
# continued). Three points, so a judgment: "likely", not certain.
COLLAPSED_COS, COLLAPSE_GAP = 0.85, 0.5
PRIOR_BATCHES, COSINE_BATCHES = 4, 2  # training batches the token prior is counted on; held-out batches for cosines


def evaluate(objective, data_dir: str, batch_size: int, max_batches: int, device, autocast, seed: int,
             references: bool = True) -> dict:
    """Held-out metrics over the valid split (rank 0): the objective's metrics averaged, RTD AUC, and with
    `references` the token-prior and bigram AUCs on the same corruptions, the label entropy and the hidden-state
    cosines (trained and random-init). The masks come from a fixed seed, so evaluations at different steps see the
    same corruption (drawn by each step's generator)."""
    from electra import reference

    outs = reference.run_batches(objective, data_dir, "valid", batch_size, max_batches, device, autocast, seed)
    if not outs:
        return {}
    result = {f"eval_{k}": sum(float(o[k].float()) for o in outs) / len(outs) for k in TRAIN_KEYS if k in outs[0]}
    held = reference.Corruptions.from_outputs(outs)
    if held is not None:
        result["eval_rtd_auc"] = reference.auc(held.labels[held.keep], held.logits[held.keep])
        result["eval_label_entropy"] = binary_entropy(float(held.labels[held.keep].mean()))
        if references:
            train = reference.Corruptions.from_outputs(reference.run_batches(
                objective, data_dir, "train", batch_size, PRIOR_BATCHES, device, autocast, seed + 7919))
            prior = reference.fit_token_prior(train, objective.cfg.discriminator.vocab_size)
            aucs = reference.reference_aucs(held, prior, reference.fit_bigram(data_dir))
            result.update({f"eval_{k}": v for k, v in aucs.items() if k != "rtd_auc"})
    if references:
        cos = reference.hidden_cosines(objective, data_dir, batch_size, COSINE_BATCHES, device, seed)
        result.update({f"eval_{k}": v for k, v in cos.items()})
    result["eval_batches"] = len(outs)
    return result


def binary_entropy(p: float) -> float:
    """Nats: the RTD loss of a discriminator that answers the replaced rate p for every token."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _get(m: dict, key: str):
    return m.get(key, m.get(f"eval_{key}"))


def _tokens(n) -> str:
    return f"{n / 1e6:,.1f}M" if n >= 1e6 else f"{n:,.0f}"


def plateau_cause(m: dict) -> str | None:
    """'generator' (too strong), 'late' (many tokens seen), 'early' (expected), or None (tokens seen unknown)."""
    gen_acc, tokens = _get(m, "mlm_acc"), m.get("tokens_seen")
    if gen_acc is not None and gen_acc > 0.6:
        return "generator"
    if tokens is None:
        return None
    return "late" if tokens >= LATE_TOKENS else "early"


def explanation(m: dict) -> str | None:
    """One line: the held-out AUC beside the references and what the comparison means; None without an AUC."""
    a, prior, bigram = _get(m, "rtd_auc"), _get(m, "token_prior_auc"), _get(m, "bigram_auc")
    if a is None:
        return None
    if prior is None or bigram is None:
        return f"AUC {a:.2f}"
    cause = plateau_cause(m)
    if a >= bigram + MARGIN:
        what = "it reads context beyond adjacent words (above the bigram counts)"
    elif a >= bigram - MARGIN:
        what = "it reads about as much context as adjacent-word counts give"
    elif a >= prior + 0.05:
        what = "it has learned which tokens get replaced and some context, less than adjacent-word counts give"
    else:
        what = ("it has learned which tokens get replaced, not yet context" if a >= prior - MARGIN else
                "it is below the context-free prior: it has not yet learned which tokens get replaced")
        what += {"early": "; normal this early at this size", None: ""}.get(
            cause, f"; not expected {'after this many tokens' if cause == 'late' else 'with this generator'}: "
                   f"see the warnings")
    return f"AUC {a:.2f} (token prior {prior:.2f}, bigram {bigram:.2f}): {what}"


def diagnose(m: dict, mask_prob: float) -> list[tuple[str, str]]:
    """Plain-words collapse diagnostics from train or eval metrics (keys with or without the eval_ prefix; an
    optional `tokens_seen` says whether a plateau is early).

    1. Majority class: the RTD loss is still (almost) the label entropy, what a discriminator that answers the
       replaced rate for every token gets, and the AUC (when measured) is near 0.5.
    2. Representation collapse: the discriminator's hidden states of random tokens point the same way (mean cosine
       >= 0.85 and 0.5 above a random-init copy's): fine-tuning it is likely worse than fine-tuning random weights.
    3. The generator is too strong: it recovers most masked tokens, so few are replaced and the discriminator
       learns little (paper Sec. 3.2 and Fig. 3: generators 1/4-1/2 the discriminator's size work best)."""
    found = []
    rtd_loss, replaced, gen_acc, a = (_get(m, k) for k in ("rtd_loss", "replaced_frac", "mlm_acc", "rtd_auc"))
    fixes = ("a smaller generator (model.generator_hidden_fraction=0.25; the paper finds 1/4-1/2 of the "
             "discriminator best), a lower learning rate or a longer warm-up (optim.lr, optim.warmup_steps), and the "
             "paper's mask rate (objective.mask_prob=0.15, 0.25 for large)")
    if rtd_loss is not None and replaced:
        entropy = binary_entropy(replaced)
        gain = 1 - rtd_loss / entropy if entropy else 0.0
        if -0.1 < gain < 0.05 and (a is None or a < 0.6):  # far above the entropy is miscalibration, not this
            cause = plateau_cause(m)
            head = (f"majority class: the discriminator's RTD loss {rtd_loss:.3f} is {1 - gain:.0%} of the label "
                    f"entropy {entropy:.3f} (what answering the replaced rate, {replaced:.1%}, for every token gets)"
                    + (f" and its AUC is {a:.2f}" if a is not None else "") + ": it calls almost every token 'original'. ")
            if cause == "early":
                tail = (f"Expected this early: {_tokens(m['tokens_seen'])} training tokens is few for a small model "
                        f"trained from scratch (a tiny model on CPU sits here for thousands of steps). To see ELECTRA "
                        f"learn in minutes, continue from pretrained weights (model.init_from) or train "
                        f"character-level Chinese; otherwise train longer. If it persists late in a long run, try "
                        f"{fixes}.")
            elif cause == "late":
                tail = (f"After {_tokens(m['tokens_seen'])} training tokens this is a real collapse, not a warm-up. "
                        f"Likely fixes: {fixes}.")
            elif cause == "generator":
                tail = (f"A real collapse: the generator is too strong (it recovers {gen_acc:.0%} of the masked "
                        f"tokens). Likely fixes: {fixes}.")
            else:
                tail = (f"Early in a short run of a small model this is the normal plateau that more steps end; if "
                        f"it persists late in a long run, the likely fixes are: {fixes}.")
            found.append(("majority-class", head + tail))
    cos, cos_random = _get(m, "hidden_cos"), _get(m, "hidden_cos_random")
    if cos is not None and cos_random is not None and cos >= COLLAPSED_COS and cos - cos_random >= COLLAPSE_GAP:
        found.append(("representation-collapse", (
            f"representation collapse: the discriminator's hidden states of random held-out tokens have mean cosine "
            f"{cos:.2f} (a random-init copy: {cos_random:.2f}), so nearly every token looks alike to a classifier "
            f"head. This checkpoint is likely to fine-tune WORSE than random init; pretrain further (until the "
            f"held-out AUC clears the token prior clearly) or fine-tune with a higher learning rate.")))
    if gen_acc is not None and replaced is not None and gen_acc > 0.6 and (a is None or a < 0.7):
        found.append(("generator-too-strong", (
            f"the generator is too strong for the discriminator: it recovers {gen_acc:.0%} of the masked tokens, "
            f"so only {replaced:.1%} of tokens are replaced (mask rate {mask_prob:.0%}) and the discriminator "
            f"learns little from them. Likely fixes: a smaller generator (model.generator_hidden_fraction "
            f"0.25-0.5, or fewer generator layers), a higher mask rate (objective.mask_prob), or a lower "
            f"learning rate.")))
    return found


def explain(m: dict, mask_prob: float) -> dict:
    """An eval record with what run_eval adds (and prints): "explanation" (one line) and "warnings" (texts)."""
    line = explanation(m)
    return {**m, "warnings": [text for _, text in diagnose(m, mask_prob)], **({"explanation": line} if line else {})}


def eval_lines(record: dict) -> list[str]:
    """The console lines of an eval record: the numbers with the explanation, then each warning."""
    auc = record.get("eval_rtd_auc")
    said = record.get("explanation") or f"AUC {auc if auc is None else round(auc, 4)}"
    cos = "" if record.get("eval_hidden_cos") is None else (
        f"; hidden-state cosine {record['eval_hidden_cos']:.2f} (random init {record['eval_hidden_cos_random']:.2f})")
    lines = [f"eval at step {record['step']}: gen acc {record.get('eval_mlm_acc', float('nan')):.1%}, disc acc "
             f"{record.get('eval_rtd_acc', float('nan')):.1%}, {said}{cos}"]
    return lines + [f"warning at step {record['step']}: {w}" for w in record.get("warnings", [])]


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
