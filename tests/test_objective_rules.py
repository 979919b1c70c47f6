"""ELECTRA's rules, pinned by behaviour: each test fails for an implementation that breaks its rule.

The objective is observed from outside: what the generator and the discriminator encoders receive (forward pre-hooks),
what the generator head outputs (a forward hook, which may also replace it with chosen logits), and the masking draw
(`mask_tokens` wrapped where the objective calls it). Rules (google-research/electra, the paper, README "What is
faithful"): the generator reads the masked sequence; RTD is the mean BCE over non-pad tokens; MLM the mean over real
prediction slots; samples follow softmax(logits / temperature), drawn in fp32, never the original under
disallow_correct; a sample equal to the original is labelled original; no gradient from RTD reaches the generator;
masking statistics; loss = gen_weight * MLM + disc_weight * RTD; REINFORCE moves the generator toward fooling the
discriminator; GDES starts as plain ELECTRA.

    .venv/bin/python -m pytest -q tests/test_objective_rules.py
"""
import dataclasses
import math

import pytest
from conftest import pair_batch
import torch
import torch.nn.functional as F

import electra.objective as objective
from electra.config import ObjectiveConfig, preset
from electra.objective import gumbel_sample, mask_tokens, masked_lm_loss

try:
    from electra.objectives import build_objective
except ImportError:  # the registry lived in objective.py before
    from electra.objective import build_objective

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = dict(pad=PAD, cls=CLS, sep=SEP, mask=MASK)
FIRST, V = 4, 64  # ordinary tokens: FIRST .. V - 1
Z = 5.0  # statistical checks: within Z binomial standard deviations (two-sided p ~ 6e-7 each; the seeds are fixed)


def _batch(B=8, T=48, seed=0):
    """[CLS] a [SEP] b [SEP] [PAD]...: lengths T, T - 4, ...; every row but the first is padded."""
    x, am = pair_batch(B, T, 4, V, seed, FIRST, PAD, CLS, SEP)
    return x, torch.zeros_like(x), am


def _model(kind="electra", **overrides):
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=V, kind=kind, hidden_dropout=0.0, attention_dropout=0.0, **overrides)
    return build_objective(cfg, SPECIAL)


def _seed(n=0):
    return torch.Generator().manual_seed(n)


def _inputs_of(module) -> list:
    """Records the input_ids each call of `module` (an Encoder) receives."""
    seen = []

    def hook(mod, args, kwargs):
        seen.append((args[0] if args else kwargs["input_ids"]).clone())

    module.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


@pytest.fixture
def draws(monkeypatch) -> list:
    """Records every masking draw (the `Masked` result) the objective makes."""
    seen = []

    def recording(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    real = objective.mask_tokens
    monkeypatch.setattr(objective, "mask_tokens", recording)
    return seen


def _force_generator_logits(model, make):
    """Replaces the generator head's (B, P, V) output by make(out) (kept in the graph, in the output's dtype)."""
    def hook(mod, args, out):
        return out * 0 + make(out).to(out.dtype)

    model.generator_head.register_forward_hook(hook)


def _slots(m):
    """(rows, positions, targets) of the real prediction slots of a masking draw."""
    real = m.weights.bool()
    rows = torch.arange(m.positions.size(0))[:, None].expand_as(m.positions)
    return rows[real], m.positions[real], m.targets[real]


def _within(count, n, p, what):
    sd = math.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= Z * sd, f"{what}: {count} of {n}, expected {n * p:.1f} +- {Z * sd:.1f}"


# --------------------------------------------------------------------------------------------------------------------
# What the generator reads


def test_generator_reads_the_masked_sequence(draws):
    model = _model()
    gen_in, disc_in = _inputs_of(model.generator), _inputs_of(model.discriminator)
    x, tt, am = _batch()
    model(x, tt, am, generator=_seed())
    (m,), (g,), (c,) = draws, gen_in, disc_in
    rows, pos, targets = _slots(m)
    masked_here = torch.zeros_like(x, dtype=torch.bool)
    masked_here[rows, pos] = True
    assert torch.equal(g, m.input_ids)  # the generator's input is the masking draw's sequence ...
    assert torch.equal(g[~masked_here], x[~masked_here])  # ... equal to the original away from the chosen slots ...
    assert ((g[rows, pos] == MASK) | (g[rows, pos] == targets)).all()  # ... [MASK] or kept at them ...
    assert int((g[rows, pos] == MASK).sum()) > 0.5 * len(pos)  # ... mostly [MASK] (85%)
    assert not torch.equal(g, c)  # and not the discriminator's (corrupted) input


def test_generator_predictions_do_not_depend_on_the_masked_originals():
    """With every chosen token turned into [MASK], changing the original tokens at those slots cannot change what the
    generator predicts there: it never sees them."""
    seen = []
    model = _model(mask_token_prob=1.0)
    model.generator_head.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    gen_in = _inputs_of(model.generator)
    x, tt, am = _batch()
    model(x, tt, am, generator=_seed(3))
    chosen = gen_in[0] == MASK
    assert chosen.any()
    y = torch.where(chosen, FIRST + (x - FIRST + 7) % (V - FIRST), x)  # other ordinary tokens at the chosen slots
    model(y, tt, am, generator=_seed(3))  # the same draw: masking depends on which tokens are special, not which ids
    assert torch.equal(gen_in[1], gen_in[0])
    torch.testing.assert_close(seen[1], seen[0])


# --------------------------------------------------------------------------------------------------------------------
# The two losses


def test_rtd_loss_is_the_mean_bce_over_non_pad_tokens():
    model = _model()
    disc_in = _inputs_of(model.discriminator)
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    corrupted = disc_in[0]
    labels = (corrupted != x).float()
    torch.testing.assert_close(out["rtd_labels"].float(), labels)
    with torch.no_grad():  # recompute the discriminator on what it was given
        logits = model.discriminator_head(model.discriminator(corrupted, tt, am))
    per_token = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    expected = per_token[am.bool()].mean()
    torch.testing.assert_close(out["rtd_loss"], expected)
    # a hand-written check of the same number over the non-pad tokens only, row by row
    total = sum(per_token[i, : int(am[i].sum())].sum() for i in range(x.size(0)))
    torch.testing.assert_close(out["rtd_loss"], total / am.sum())


def _rtd_loss_with_discriminator_logits(edit):
    model = _model()
    model.discriminator_head.register_forward_hook(lambda mod, args, out: edit(out))
    x, tt, am = _batch()
    return model(x, tt, am, generator=_seed())["rtd_loss"], am


def test_rtd_loss_ignores_pad_tokens_and_counts_every_other_token():
    base, am = _rtd_loss_with_discriminator_logits(lambda out: out)
    pad = ~am.bool()
    assert pad.any()
    noisy = torch.randn(am.shape, generator=_seed(9)) * 30
    for pad_logits in (noisy, torch.full(am.shape, 40.0), torch.full(am.shape, -40.0)):
        at_pad, _ = _rtd_loss_with_discriminator_logits(lambda out: torch.where(pad, pad_logits, out))
        torch.testing.assert_close(at_pad, base)
    # [CLS] (never masked, never replaced) is a non-pad token: it counts, as does an unchosen ordinary token
    for position in (0, 3):
        nudged = torch.zeros(am.shape)
        nudged[0, position] = 10.0
        changed, _ = _rtd_loss_with_discriminator_logits(lambda out: out + nudged)
        assert not torch.allclose(changed, base)


def test_rtd_loss_does_not_depend_on_padding_length():
    """The same sequences with 16 more [PAD] columns give the same loss, given the same masking draw (replayed: its
    random shapes depend on the padded length) and the same slots (so the same sampling draw)."""
    x, tt, am = _batch()
    extra = 16
    is_special = torch.zeros(V, dtype=torch.bool)
    is_special[[PAD, CLS, SEP, MASK]] = True
    draw = mask_tokens(x, am, is_special, MASK, 7, ObjectiveConfig(), V, _seed(5))

    def replay(input_ids, *args, **kwargs):
        return dataclasses.replace(draw, input_ids=F.pad(draw.input_ids, (0, input_ids.size(1) - x.size(1)), value=PAD))

    losses = []
    for ids, mask in ((x, am), (F.pad(x, (0, extra), value=PAD), F.pad(am, (0, extra), value=0))):
        model = _model(max_predictions=7)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(objective, "mask_tokens", replay)
            losses.append(model(ids, torch.zeros_like(ids), mask, generator=_seed())["rtd_loss"])
    torch.testing.assert_close(losses[1], losses[0])


def test_mlm_loss_is_the_mean_over_real_slots_only(draws):
    seen = []
    model = _model()
    model.generator_head.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    (m,), (logits,) = draws, seen
    real = m.weights.bool()
    assert (~real).any()  # the padded rows leave slots unused
    per_slot = F.cross_entropy(logits.flatten(0, 1), m.targets.flatten(), reduction="none").view_as(m.weights)
    torch.testing.assert_close(out["mlm_loss"], per_slot[real].mean())


def test_mlm_loss_ignores_unused_slots():
    x, tt, am = _batch()
    is_special = torch.zeros(V, dtype=torch.bool)
    is_special[[PAD, CLS, SEP, MASK]] = True
    m = mask_tokens(x, am, is_special, MASK, 7, ObjectiveConfig(), V, _seed())
    real = m.weights.bool()
    assert (~real).any() and real.any()
    logits = torch.randn(*m.positions.shape, V, generator=_seed(1))
    loss, _ = masked_lm_loss(logits, m)
    by_hand = -sum(F.log_softmax(logits[b, p], -1)[m.targets[b, p]] for b, p in real.nonzero().tolist()) / real.sum()
    torch.testing.assert_close(loss, by_hand)
    scrambled = torch.where(real[..., None], logits, torch.randn(logits.shape, generator=_seed(2)) * 50)
    torch.testing.assert_close(masked_lm_loss(scrambled, m)[0], loss)


def test_unused_slots_are_never_corrupted(draws):
    model = _model(mask_prob=0.5, max_predictions=40)  # short rows leave many slots unused, some at [PAD]/[SEP]
    disc_in = _inputs_of(model.discriminator)
    x, tt, am = _batch()
    _force_generator_logits(model, lambda out: torch.zeros_like(out))  # uniform: almost every sample is a change
    model(x, tt, am, generator=_seed())
    (m,), (c,) = draws, disc_in
    rows, pos, _ = _slots(m)
    allowed = torch.zeros_like(x, dtype=torch.bool)
    allowed[rows, pos] = True
    assert (~m.weights.bool()).any()
    assert torch.equal(c[~allowed], x[~allowed])


@pytest.mark.parametrize("gen_weight,disc_weight", [(None, None), (0.5, 7.0), (2.0, 0.0)])
def test_loss_is_gen_weight_mlm_plus_disc_weight_rtd(gen_weight, disc_weight):
    weights = {} if gen_weight is None else dict(gen_weight=gen_weight, disc_weight=disc_weight)
    model = _model(**weights)
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    lam_g, lam_d = (1.0, 50.0) if gen_weight is None else (gen_weight, disc_weight)
    torch.testing.assert_close(out["loss"], lam_g * out["mlm_loss"] + lam_d * out["rtd_loss"])


def test_paper_loss_weights_are_the_defaults():
    for name in ("tiny", "small", "base", "large"):
        obj = preset(name).objective
        assert (obj.gen_weight, obj.disc_weight) == (1.0, 50.0), name


# --------------------------------------------------------------------------------------------------------------------
# Sampling


def test_gumbel_sample_at_a_vanishing_temperature_is_the_argmax():
    rows = torch.stack([torch.randperm(50, generator=_seed(i)) for i in range(2000)]).float() * 0.1  # gaps >= 0.1
    s = gumbel_sample(rows, 1e-3, _seed())
    assert torch.equal(s, rows.argmax(-1))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0, 1000.0])
def test_gumbel_sample_follows_softmax_of_logits_over_temperature(temperature):
    base = torch.tensor([2.0, 1.0, 0.0, -1.0])
    N = 40000
    s = gumbel_sample(base.expand(N, 4), temperature, _seed())
    counts = torch.bincount(s, minlength=4)
    p = torch.softmax(base / temperature, 0)
    for k in range(4):
        _within(int(counts[k]), N, float(p[k]), f"class {k} at temperature {temperature}")


def test_gumbel_sample_draws_in_fp32_from_bf16_logits():
    """At logits ~256, bf16 holds only even numbers: noise added in bf16 rounds and ties, and the argmax then prefers
    the first class. In fp32 the frequencies are softmax([256, 258])."""
    logits = torch.tensor([256.0, 258.0], dtype=torch.bfloat16).expand(40000, 2)
    s = gumbel_sample(logits, 1.0, _seed())
    p1 = float(torch.sigmoid(torch.tensor(2.0)))
    _within(int(s.sum()), s.numel(), p1, "class 1")


def _two_token_logits(log_odds):
    """Generator logits that put all mass on tokens A, B with log P(B)/P(A) = log_odds at temperature 1."""
    def make(out):
        z = torch.full(out.shape, -1e4)
        z[..., A] = 0.0
        z[..., B] = log_odds
        return z

    return make


A, B = FIRST + 6, FIRST + 7


def _sample_counts(model, draws, passes=30, autocast=False):
    disc_in = _inputs_of(model.discriminator)
    x, tt, am = _batch()
    g = _seed()
    n = n_b = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for _ in range(passes):
            model(x, tt, am, generator=g)
            rows, pos, _ = _slots(draws[-1])
            sampled = disc_in[-1][rows, pos]
            assert ((sampled == A) | (sampled == B)).all()
            n, n_b = n + len(sampled), n_b + int((sampled == B).sum())
    return n, n_b


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_objective_samples_at_its_configured_temperature(draws, temperature):
    model = _model(temperature=temperature)
    _force_generator_logits(model, _two_token_logits(math.log(3.0)))
    n, n_b = _sample_counts(model, draws)
    p_b = 3 ** (1 / temperature) / (1 + 3 ** (1 / temperature))  # 0.9, 0.75, 0.634
    _within(n_b, n, p_b, f"token B at temperature {temperature}")


def test_objective_samples_in_fp32_under_bf16_autocast(draws):
    model = _model()
    _force_generator_logits(model, lambda out: _two_token_logits(2.0)(out) + 256.0)  # bf16: 256 and 258 exactly
    n, n_b = _sample_counts(model, draws, autocast=True)
    _within(n_b, n, float(torch.sigmoid(torch.tensor(2.0))), "token B under autocast")


def _logits_favouring_the_original(draws, boost):
    """Uniform generator logits plus `boost` on the original token of each slot."""
    def make(out):
        m = draws[-1]
        return F.one_hot(m.targets, out.size(-1)).float() * boost

    return make


def test_disallow_correct_never_samples_the_original(draws):
    model = _model(disallow_correct=True)
    _force_generator_logits(model, _logits_favouring_the_original(draws, 30.0))  # e^30: the original, unless forbidden
    disc_in = _inputs_of(model.discriminator)
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    rows, pos, targets = _slots(draws[-1])
    assert (disc_in[0][rows, pos] != targets).all()
    assert (out["rtd_labels"][rows, pos] == 1).all()


def test_a_sample_equal_to_the_original_is_labelled_original(draws):
    model = _model()
    _force_generator_logits(model, _logits_favouring_the_original(draws, math.log(V - 1)))  # P(original) = 1/2
    disc_in = _inputs_of(model.discriminator)
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    rows, pos, targets = _slots(draws[-1])
    same = disc_in[0][rows, pos] == targets
    assert same.any() and (~same).any()
    assert torch.equal(out["rtd_labels"][rows, pos], (~same).long())
    assert torch.equal(out["rtd_labels"].bool(), disc_in[0] != x)  # and nothing but a changed token is "replaced"


def test_the_original_sampled_everywhere_means_nothing_is_replaced(draws):
    model = _model()  # disallow_correct off: the generator's certain original is what it samples
    _force_generator_logits(model, _logits_favouring_the_original(draws, 30.0))
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    assert int(out["rtd_labels"].sum()) == 0
    with torch.no_grad():
        logits = model.discriminator_head(model.discriminator(x, tt, am))
    expected = F.binary_cross_entropy_with_logits(logits[am.bool()], torch.zeros(int(am.sum())))
    torch.testing.assert_close(out["rtd_loss"], expected)


# --------------------------------------------------------------------------------------------------------------------
# Masking statistics (through the objective, so its never-mask table is the one used)


def _masking_statistics(draws, mask_prob, passes=200):
    model = _model(mask_prob=mask_prob, masking="exact")  # official masking's statistics: tests/test_fidelity.py
    x, tt, am = _batch(B=8, T=64)
    x[2, 5] = MASK  # a literal [MASK] in the text is never chosen either
    am[3, 40:] = 0  # padding by the attention mask alone (ordinary ids under it) is never chosen
    is_special = torch.zeros(V, dtype=torch.bool)
    is_special[[PAD, CLS, SEP, MASK]] = True
    candidates = ~is_special[x] & am.bool()
    n = candidates.sum(1)  # (B,)
    chosen_count = torch.zeros_like(x, dtype=torch.float)
    slots = masked = kept = 0
    g = _seed()
    with torch.no_grad():
        for _ in range(passes):
            model(x, tt, am, generator=g)
            m = draws[-1]
            rows, pos, targets = _slots(m)
            counts = torch.bincount(rows, minlength=x.size(0))
            limit = model.cfg.objective.predictions_per_seq(x.size(1))
            assert (counts == torch.round(n * mask_prob).clamp(1, limit)).all()
            chosen_count[rows, pos] += 1
            at = m.input_ids[rows, pos]
            slots, masked, kept = slots + len(pos), masked + int((at == MASK).sum()), kept + int((at == targets).sum())
    return x, am, candidates, n, chosen_count, slots, masked, kept, passes


@pytest.mark.parametrize("size", ["small", "large"])
def test_masking_rate_split_and_never_masked_tokens(draws, size):
    mask_prob = preset(size).objective.mask_prob
    assert mask_prob == {"small": 0.15, "large": 0.25}[size]
    x, am, candidates, n, chosen_count, slots, masked, kept, passes = _masking_statistics(draws, mask_prob)
    # specials, a literal [MASK] and padding: never chosen, in any draw
    assert chosen_count[~candidates].sum() == 0
    # each candidate of row i is chosen with probability k_i / n_i, k_i = round(p * n_i) (|k_i - p n_i| <= 1/2):
    # uniform over positions, no position favoured
    k = torch.round(n * mask_prob)
    assert ((k - n * mask_prob).abs() <= 0.5).all()
    for i in range(x.size(0)):
        q = float(k[i] / n[i])
        for t in candidates[i].nonzero().flatten().tolist():
            _within(int(chosen_count[i, t]), passes, q, f"row {i} position {t}")
    # of the chosen: 85% [MASK], 15% kept, 0% random
    _within(masked, slots, 0.85, "[MASK] among chosen")
    _within(kept, slots, 0.15, "kept among chosen")
    assert masked + kept == slots


# --------------------------------------------------------------------------------------------------------------------
# Gradients: the generator learns from MLM only (not a GAN)


def _generator_only(model):
    return {n: p for n, p in model.named_parameters()
            if n.startswith(("generator.", "generator_head.")) and not n.startswith("generator.embeddings.")}


def _grads(model, autocast):
    x, tt, am = _batch()
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x, tt, am, generator=_seed())
    out["loss"].backward()
    return {n: (torch.zeros_like(p) if p.grad is None else p.grad.clone()) for n, p in _generator_only(model).items()}


def test_generator_gradient_comes_from_the_mlm_loss_alone(autocast=False):
    """(the bf16-autocast case: tests/test_objective.py::test_no_gradient_through_sample_even_with_autocast)"""
    rtd_only = _grads(_model(gen_weight=0.0), autocast)
    assert rtd_only and all(g.abs().sum() == 0 for g in rtd_only.values()), \
        [n for n, g in rtd_only.items() if g.abs().sum() > 0]
    mlm_only = _grads(_model(disc_weight=0.0), autocast)
    both = _grads(_model(), autocast)
    assert all(g.abs().sum() > 0 for g in mlm_only.values()), [n for n, g in mlm_only.items() if g.abs().sum() == 0]
    for n in both:  # the RTD term adds nothing to the generator's gradient
        torch.testing.assert_close(both[n], mlm_only[n], msg=n)


# --------------------------------------------------------------------------------------------------------------------
# Variants: REINFORCE's direction, GDES's start


def test_reinforce_moves_the_generator_toward_samples_the_discriminator_calls_original(draws):
    """The discriminator is fixed to call even tokens original (logit -5) and odd ones replaced (+5). A sampled even
    token is then a replacement it misses: a high reward. Training the generator by the adversarial loss alone must
    move its probability mass onto even tokens."""
    model = _model("adversarial", disc_weight=0.0)  # the loss is the generator's REINFORCE loss alone
    disc_in = _inputs_of(model.discriminator)
    model.discriminator_head.register_forward_hook(
        lambda mod, args, out: out * 0 + torch.where(disc_in[-1] % 2 == 0, -5.0, 5.0))
    probs = []
    model.generator_head.register_forward_hook(lambda mod, args, out: probs.append(out.detach().float().softmax(-1)))
    even = torch.arange(V) % 2 == 0
    even[:FIRST] = False
    x, tt, am = _batch()
    params = list(_generator_only(model).values())
    opt = torch.optim.Adam(params, lr=3e-2)
    g = _seed()
    mass = []
    for _ in range(25):
        out = model(x, tt, am, generator=g)
        real = draws[-1].weights.bool()
        mass.append(float(probs[-1][..., even].sum(-1)[real].mean()))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert mass[-1] > mass[0] + 0.15, mass  # 0.46 -> 0.69 here; with the sign flipped it falls


def test_gdes_starts_as_plain_electra():
    """The delta starts at zero: a fresh GDES objective with ELECTRA's weights computes what ELECTRA computes."""
    electra, gdes = _model("electra"), _model("gdes")
    gdes.load_state_dict(electra.state_dict(), strict=False)  # GDES's own extra parameters keep their initial values
    x, tt, am = _batch()
    a, b = electra(x, tt, am, generator=_seed()), gdes(x, tt, am, generator=_seed())
    for key in ("rtd_logits", "rtd_loss", "mlm_loss"):
        torch.testing.assert_close(b[key], a[key], msg=key)


# --------------------------------------------------------------------------------------------------------------------
# Edges found by mutation testing (mutmut on objective.py): each test kills mutants the rules above let live


def test_a_row_with_few_candidates_still_gets_one_prediction_and_one_slot_is_its_own_mean(draws):
    """round(0.15 * 2) = 0, but every row predicts at least one token (official max(1, ...)); with one real slot in the
    batch the MLM loss is that slot's cross-entropy (no floor on the divisor above 1)."""
    seen = []
    model = _model()
    model.generator_head.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    x = torch.tensor([[CLS, 10, 11, SEP, PAD, PAD]])
    am = (x != PAD).long()
    out = model(x, torch.zeros_like(x), am, generator=_seed())
    m = draws[-1]
    assert int(m.weights.sum()) == 1
    (b, p), = m.weights.nonzero().tolist()
    torch.testing.assert_close(out["mlm_loss"], F.cross_entropy(seen[0][b, p][None], m.targets[b, p][None]))


def test_mlm_accuracy_is_over_real_slots(draws):
    seen = []
    model = _model()

    def half_right(out):  # the original is the argmax at every other slot, noise elsewhere
        hit = torch.arange(out.size(1))[None, :, None] % 2 == 0
        noise = torch.randn(out.shape, generator=_seed(6))
        return torch.where(hit, noise + 20 * F.one_hot(draws[-1].targets, out.size(-1)), noise)

    _force_generator_logits(model, half_right)
    model.generator_head.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    m, logits = draws[-1], seen[0]
    real = m.weights.bool()
    hits = (logits.argmax(-1) == m.targets)[real].float()
    assert 0 < hits.mean() < 1
    torch.testing.assert_close(out["mlm_acc"], hits.mean())


def test_rtd_metrics_are_over_non_pad_tokens():
    model = _model()
    x, tt, am = _batch()
    shift = torch.randn(am.shape, generator=_seed(4)) * 3  # mixed predictions, some right and some wrong
    model.discriminator_head.register_forward_hook(lambda mod, args, out: out + shift)
    out = model(x, tt, am, generator=_seed())
    real = am.bool()
    pred, lab = out["rtd_logits"][real] > 0, out["rtd_labels"][real].bool()
    assert (pred & lab).any() and (pred & ~lab).any() and (~pred & lab).any()
    torch.testing.assert_close(out["rtd_acc"], (pred == lab).float().mean())
    torch.testing.assert_close(out["rtd_precision"], (pred & lab).sum() / pred.sum())
    torch.testing.assert_close(out["rtd_recall"], (pred & lab).sum() / lab.sum())
    torch.testing.assert_close(out["replaced_frac"], lab.float().mean())
    torch.testing.assert_close(out["rtd_weights"], am.float())


def test_token_types_reach_both_encoders(draws):
    x, tt, am = _batch()
    tt = (torch.arange(x.size(1))[None, :] >= x.size(1) // 2).long().expand_as(x) * am  # a second segment
    gen_out, outs = [], []
    for types in (tt, torch.zeros_like(tt)):
        model = _model()
        model.generator_head.register_forward_hook(lambda mod, args, out: gen_out.append(out.detach()))
        outs.append(model(x, types, am, generator=_seed()))
    assert not torch.allclose(gen_out[0], gen_out[1])
    # the discriminator alone: with the original always sampled, both runs corrupt nothing
    outs = []
    for types in (tt, torch.zeros_like(tt)):
        model = _model()
        _force_generator_logits(model, _logits_favouring_the_original(draws, 30.0))
        outs.append(model(x, types, am, generator=_seed()))
    assert torch.equal(outs[0]["rtd_labels"], outs[1]["rtd_labels"]) and int(outs[0]["rtd_labels"].sum()) == 0
    assert not torch.allclose(outs[0]["rtd_logits"], outs[1]["rtd_logits"])


def test_padding_content_is_invisible_to_both_encoders():
    """Ids under attention_mask = 0 change nothing: both encoders get the attention mask."""
    x, tt, am = _batch()
    y = torch.where(am.bool(), x, FIRST + 1)  # ordinary tokens under the padding
    gen_out, outs = [], []
    for ids in (x, y):
        model = _model()
        model.generator_head.register_forward_hook(lambda mod, args, out: gen_out.append(out.detach()))
        outs.append(model(ids, tt, am, generator=_seed()))
    torch.testing.assert_close(gen_out[1], gen_out[0])
    real = am.bool()
    torch.testing.assert_close(outs[1]["rtd_logits"][real], outs[0]["rtd_logits"][real])
    torch.testing.assert_close(outs[1]["rtd_loss"], outs[0]["rtd_loss"])


def test_no_attention_mask_means_all_real_and_pad_ids_are_still_never_masked(draws):
    model = _model()
    x, tt, _ = _batch()
    full = torch.ones_like(x)
    a, b = model(x, tt, None, generator=_seed()), model(x, tt, full, generator=_seed())
    for key in ("loss", "rtd_logits", "rtd_labels"):
        torch.testing.assert_close(a[key], b[key], msg=key)
    for _ in range(20):
        model(x, tt, None, generator=_seed(_ + 1))
        rows, pos, _t = _slots(draws[-1])
        assert (x[rows, pos] != PAD).all()


def test_bert_style_random_tokens_are_reproducible_from_the_generator(draws):
    model = _model(mask_token_prob=0.8, random_token_prob=0.1)
    x, tt, am = _batch()
    a, b = model(x, tt, am, generator=_seed()), model(x, tt, am, generator=_seed())
    torch.testing.assert_close(a["loss"], b["loss"])
    assert torch.equal(draws[0].input_ids, draws[1].input_ids)
    rows, pos, targets = _slots(draws[0])
    at = draws[0].input_ids[rows, pos]
    assert ((at != MASK) & (at != targets)).any()  # some random replacements were made


def test_disallow_correct_with_low_token_ids(draws):
    """The forbidden-token table has the vocabulary's width even when the batch's largest id is small."""
    model = _model(disallow_correct=True)
    _force_generator_logits(model, _logits_favouring_the_original(draws, 30.0))
    disc_in = _inputs_of(model.discriminator)
    x, tt, am = _batch()
    x = torch.where(x >= FIRST, FIRST + (x - FIRST) % 8, x)  # ids FIRST .. FIRST + 7 only
    model(x, tt, am, generator=_seed())
    rows, pos, targets = _slots(draws[-1])
    assert (disc_in[0][rows, pos] != targets).all()


def test_mlm_baseline_reads_the_masked_sequence_and_averages_over_real_slots(draws):
    seen = []
    model = _model("mlm")
    enc_in = _inputs_of(model.discriminator)
    model.generator_head.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    x, tt, am = _batch()
    out = model(x, tt, am, generator=_seed())
    m = draws[-1]
    assert torch.equal(enc_in[0], m.input_ids) and (enc_in[0] == MASK).any()
    real = m.weights.bool()
    assert (~real).any()
    per_slot = F.cross_entropy(seen[0].flatten(0, 1), m.targets.flatten(), reduction="none").view_as(m.weights)
    torch.testing.assert_close(out["loss"], per_slot[real].mean())
    torch.testing.assert_close(out["mlm_acc"], (seen[0].argmax(-1) == m.targets)[real].float().mean())
    rows, pos, _ = _slots(m)
    assert am[rows, pos].all()
    none = model(x, tt, None, generator=_seed())  # no attention mask: every token real
    torch.testing.assert_close(none["loss"], model(x, tt, torch.ones_like(x), generator=_seed())["loss"])
