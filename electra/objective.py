"""The ELECTRA idea, as a wrapper around two ordinary encoders: masking, sampling, tying and the loss mix.

    from electra.objectives import build_objective      # the registry: this module's two, plus variants.py's
    model = build_objective(cfg, special_ids={"pad": 0, "cls": 101, "sep": 102, "mask": 103})
    out = model(input_ids, token_type_ids, attention_mask)       # dict: loss, mlm_loss, rtd_loss, metrics
    out["loss"].backward()

ELECTRA (Clark et al., 2020; google-research/electra `run_pretraining.py` + `pretrain_helpers.py`):
1. Mask: in each sequence fill k = max(1, min(max_predictions, round(mask_prob * n))) prediction slots, n the
   non-pad tokens ([CLS]/[SEP] counted), each slot a position drawn uniformly with replacement from the maskable
   tokens (never [CLS]/[SEP]/[PAD]/[MASK]); of the slots, 85% ask for [MASK], the rest keep the token (0% random).
   Duplicates collapse, as in the official code (masking = "exact": k of the maskable tokens, distinct).
2. The generator (a narrow encoder sharing the embeddings) predicts the originals at the chosen positions; its MLM
   loss trains it by maximum likelihood.
3. Sample a token at each chosen position from the generator's softmax, Gumbel-max in fp32, under no_grad: no
   gradient flows from the discriminator into the generator (it is not a GAN).
4. The discriminator sees the corrupted sequence and labels each token replaced (1) or original (0). A sample equal
   to the original is labelled original. RTD loss = mean BCE over all non-pad tokens.
5. loss = gen_weight * MLM + disc_weight * RTD (1 and 50).

A position drawn by several slots is written once, as the official `scatter_update` does it: [MASK] if any of its
slots asks for [MASK]; in the corrupted input, the floor of the mean of its slots' samples (see `write_slots`).

The prediction slots are static: (B, P) with P = max_predictions, unused slots weighted 0, so shapes never depend
on the data (good for torch.compile and for no host synchronisation inside the step). The generator's vocabulary
logits are computed only at those P slots, never at every position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from electra.config import ElectraConfig, ObjectiveConfig
from electra.losses import rtd_per_token, weighted_mean
from electra.model import DiscriminatorHead, Encoder, MLMHead


@dataclass
class Masked:
    """The result of masking a batch. P = prediction slots per sequence."""

    input_ids: torch.Tensor  # (B, T) the generator's input: [MASK] at most chosen positions
    positions: torch.Tensor  # (B, P) chosen positions (distinct per row with masking "exact")
    targets: torch.Tensor  # (B, P) the original tokens at those positions
    weights: torch.Tensor  # (B, P) float, 1 for a real prediction slot, 0 for an unused one
    hidden: torch.Tensor | None = None  # (B, P, Hg) generator hidden states at the slots, once computed


@dataclass
class Noise:
    """The random numbers of one forward, drawn ahead from a torch.Generator in the order the forward draws them.
    Passed as `generator=`, it gives the same masks and samples as the generator; unlike a torch.Generator, which
    torch.compile cannot trace (a graph break), a compiled forward takes it in one graph."""

    scores: torch.Tensor  # which positions are chosen: (B, P) uniforms ("official"), (B, T) scores ("exact")
    split: torch.Tensor  # (B, P) [MASK] / random token / kept
    random_ids: torch.Tensor | None  # (B, P) random replacements; None when random_token_prob = 0
    gumbel: torch.Tensor | None  # (B, P, V) fp32 uniforms of the Gumbel-max sample; None for MLM alone

    @classmethod
    def draw(cls, batch: int, length: int, num_slots: int, vocab_size: int, cfg: ObjectiveConfig,
             generator: torch.Generator, sample: bool = True) -> "Noise":
        P, device = slot_count(num_slots, length, cfg), generator.device
        scores = torch.rand(batch, P if cfg.masking == "official" else length, device=device, generator=generator)
        split = torch.rand(batch, P, device=device, generator=generator)
        random_ids = torch.randint(0, vocab_size, (batch, P), device=device, generator=generator) \
            if cfg.random_token_prob > 0 else None
        gumbel = torch.rand((batch, P, vocab_size), device=device, generator=generator, dtype=torch.float32) \
            if sample else None
        return cls(scores, split, random_ids, gumbel)


def special_token_table(vocab_size: int, special_ids, device=None) -> torch.Tensor:
    """(V,) bool: True for ids that are never masked."""
    table = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    table[torch.tensor(sorted(set(int(i) for i in special_ids)), dtype=torch.long)] = True
    return table


def slot_count(num_slots: int, length: int, cfg: ObjectiveConfig) -> int:
    """P, the slots of a (B, length) batch: all `num_slots` ("official": positions repeat), at most `length` ("exact")."""
    return num_slots if cfg.masking == "official" else min(num_slots, length)


def mask_tokens(input_ids, attention_mask, is_special, mask_id: int, num_slots: int, cfg: ObjectiveConfig,
                vocab_size: int, generator: torch.Generator | Noise | None = None) -> Masked:
    """Dynamic masking as google-research/electra `pretrain_helpers.mask` does it, with static shapes.

    input_ids (B, T); attention_mask (B, T) 1 = real token; is_special (V,) bool table. `cfg.masking`: "official"
    (slots counted over the non-pad tokens, positions drawn with replacement) or "exact" (distinct positions,
    counted over the maskable tokens)."""
    B, T = input_ids.shape
    device = input_ids.device
    noise = generator if isinstance(generator, Noise) else None
    candidates = ~is_special[input_ids]
    if attention_mask is not None:
        candidates &= attention_mask.bool()
    num_candidates = candidates.sum(1)  # (B,)
    P = slot_count(num_slots, T, cfg)
    scores = noise.scores if noise else \
        torch.rand(B, P if cfg.masking == "official" else T, device=device, generator=generator)
    if cfg.masking == "official":
        # pretrain_helpers.mask: max(1, min(N, round(num_tokens * mask_prob))), num_tokens = sum(input_mask); each
        # slot a categorical draw over the candidates: the k-th candidate, k = floor(u * num_candidates)
        n_tokens = attention_mask.sum(1) if attention_mask is not None else torch.full_like(num_candidates, T)
        num_predict = torch.round(n_tokens.float() * cfg.mask_prob).long().clamp(max=num_slots).clamp(min=1)
        num_predict = torch.where(num_candidates > 0, num_predict, 0)  # nothing to mask (official: NaN logits)
        k = (scores * num_candidates[:, None].float()).long()  # (B, P)
        k = torch.minimum(k, (num_candidates[:, None] - 1).clamp(min=0))
        positions = torch.searchsorted(candidates.long().cumsum(1), k + 1).clamp(max=T - 1)  # (B, P), may repeat
    else:
        num_predict = torch.round(num_candidates.float() * cfg.mask_prob).long().clamp(min=1, max=num_slots)
        num_predict = torch.minimum(num_predict, num_candidates)
        # Uniform choice without replacement: random scores, non-candidates at -inf, top P.
        positions = scores.masked_fill(~candidates, -1.0).topk(P, dim=1).indices  # (B, P), distinct per row
    weights = (torch.arange(P, device=device)[None, :] < num_predict[:, None]).float()  # (B, P)
    targets = input_ids.gather(1, positions)

    # Of the chosen: mask_token_prob -> [MASK], random_token_prob -> random token, the rest kept.
    u = noise.split if noise else torch.rand(B, P, device=device, generator=generator)
    use_mask = (u < cfg.mask_token_prob) & weights.bool()
    use_random = (u >= cfg.mask_token_prob) & (u < cfg.mask_token_prob + cfg.random_token_prob) & weights.bool()
    replacement = torch.where(use_mask, torch.full_like(targets, mask_id), targets)
    if cfg.random_token_prob > 0:
        random_ids = noise.random_ids if noise else \
            torch.randint(0, vocab_size, (B, P), device=device, generator=generator)
        random_ids = torch.where(is_special[random_ids], targets, random_ids)  # never insert a special token
        replacement = torch.where(use_random, random_ids, replacement)
    masked_ids = write_slots(input_ids, positions, replacement, use_mask | use_random)
    return Masked(masked_ids, positions, targets, weights)


def write_slots(ids: torch.Tensor, positions: torch.Tensor, values: torch.Tensor, active: torch.Tensor):
    """ids (B, T) with values (B, P) written at positions (B, P) where active (B, P) bool. A position several active
    slots write gets the floor of their mean, as the official `scatter_update` (int32 scatter_nd sum // count):
    [MASK] stays [MASK], two different samples give the id between them. Deterministic (integer sums)."""
    on = active.long()
    total = torch.zeros_like(ids).scatter_add(1, positions, values * on)
    count = torch.zeros_like(ids).scatter_add(1, positions, on)
    return torch.where(count > 0, total // count.clamp(min=1), ids)


def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | Noise | None = None,
                  disallow: torch.Tensor | None = None) -> torch.Tensor:
    """argmax(logits / temperature + Gumbel noise), in fp32: one exact sample from softmax(logits / temperature)."""
    with torch.no_grad():
        logits = logits.detach().float() / temperature
        if disallow is not None:
            logits = logits.masked_fill(disallow, float("-inf"))
        u = generator.gumbel if isinstance(generator, Noise) else \
            torch.rand(logits.shape, device=logits.device, generator=generator, dtype=torch.float32)
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-9, max=1.0 - 1e-7)))
        return (logits + gumbel).argmax(-1)


def gather(h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """h (B, T, H), positions (B, P) -> (B, P, H)."""
    return h.gather(1, positions[..., None].expand(-1, -1, h.size(-1)))


def masked_lm_loss(logits: torch.Tensor, masked: Masked) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the real prediction slots, and the accuracy (no grad). logits (B, P, V)."""
    per_slot = F.cross_entropy(logits.float().flatten(0, 1), masked.targets.flatten(), reduction="none")
    loss = weighted_mean(per_slot.view_as(masked.weights), masked.weights)
    with torch.no_grad():
        acc = weighted_mean((logits.argmax(-1) == masked.targets).float(), masked.weights)
    return loss, acc


def never_mask_table(cfg: ElectraConfig, special_ids: dict) -> torch.Tensor:
    """(V,) bool: [PAD], [CLS], [SEP] and [MASK] are never chosen for prediction."""
    never_mask = [special_ids[k] for k in ("pad", "cls", "sep", "mask") if k in special_ids]
    return special_token_table(cfg.discriminator.vocab_size, never_mask)


def rtd_metrics(logits, labels, weights) -> dict:
    """Discriminator metrics over weighted tokens (no host sync: tensors). labels 1 = replaced."""
    with torch.no_grad():
        pred = (logits > 0).float()
        labels = labels.float()
        tp = (pred * labels * weights).sum()
        return {
            "rtd_acc": weighted_mean((pred == labels).float(), weights),
            "rtd_precision": tp / (pred * weights).sum().clamp(min=1.0),
            "rtd_recall": tp / (labels * weights).sum().clamp(min=1.0),
            "replaced_frac": weighted_mean(labels, weights),
        }


class Electra(nn.Module):
    """Generator + discriminator, jointly trained. The generator shares the discriminator's embeddings module
    (token, position and type embeddings and the embedding LayerNorm: one set of parameters), and its output layer
    is tied to the token embeddings. A variant with `share_embeddings = False` gives the generator its own."""

    share_embeddings = True

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        super().__init__()
        self.cfg = cfg
        self.obj = cfg.objective
        self.mask_id = int(special_ids["mask"])
        self.discriminator = Encoder(cfg.discriminator)
        self.generator = Encoder(cfg.generator,
                                 embeddings=self.discriminator.embeddings if self.share_embeddings else None)
        self.generator_head = MLMHead(cfg.generator)
        self.discriminator_head = DiscriminatorHead(cfg.discriminator)
        self.register_buffer("is_special", never_mask_table(cfg, special_ids), persistent=False)

    @property
    def embeddings(self):
        return self.discriminator.embeddings

    def export_parts(self):
        """(folder name, encoder, HF head kind, head) for each model this objective trains (see hf.export_pretraining)."""
        return [("discriminator", self.discriminator, "pretraining", self.discriminator_head),
                ("generator", self.generator, "masked-lm", self.generator_head)]

    def mask(self, input_ids, attention_mask, generator=None) -> Masked:
        slots = self.obj.predictions_per_seq(input_ids.size(1))
        return mask_tokens(input_ids, attention_mask, self.is_special, self.mask_id, slots, self.obj,
                           self.cfg.discriminator.vocab_size, generator)

    def draw_noise(self, input_ids, generator: torch.Generator) -> Noise:
        """The randomness of forward(input_ids, ..., generator=generator), drawn now: pass it as `generator=` to a
        torch.compile'd forward (same masks and samples, no graph break)."""
        B, T = input_ids.shape
        return Noise.draw(B, T, self.obj.predictions_per_seq(T), self.cfg.discriminator.vocab_size, self.obj,
                          generator)

    def generator_logits(self, masked: Masked, token_type_ids, attention_mask):
        h = self.generator(masked.input_ids, token_type_ids, attention_mask)  # (B, T, Hg)
        masked.hidden = gather(h, masked.positions)  # (B, P, Hg)
        return self.generator_head(masked.hidden, self.generator.embeddings.tok.weight)  # (B, P, V)

    def sample(self, gen_logits, masked: Masked, generator=None) -> torch.Tensor:
        """Gumbel-max sample at the prediction slots (no gradient); unused slots keep the original token."""
        disallow = F.one_hot(masked.targets, gen_logits.size(-1)).bool() if self.obj.disallow_correct else None
        sampled = gumbel_sample(gen_logits, self.obj.temperature, generator, disallow)  # (B, P)
        return torch.where(masked.weights.bool(), sampled, masked.targets)

    def discriminator_hidden(self, corrupted, token_type_ids, attention_mask):
        return self.discriminator(corrupted, token_type_ids, attention_mask)

    def rtd_weights(self, attention_mask, masked: Masked) -> torch.Tensor:
        """Tokens the RTD loss is averaged over: every non-pad token."""
        return attention_mask.float()

    def generator_loss(self, mlm_loss, gen_logits, masked, sampled, rtd_per_token):
        """The generator is trained by maximum likelihood (MLM); the adversarial variant overrides this."""
        return mlm_loss

    def corrupt(self, input_ids, token_type_ids, attention_mask, generator=None):
        """Steps 1-2, shared with the Replace-MLM variants: mask, run the generator (maximum likelihood on the chosen
        positions), sample replacements without gradient. Returns (masked, gen_logits, mlm_loss, mlm_acc, sampled,
        corrupted)."""
        masked = self.mask(input_ids, attention_mask, generator)
        gen_logits = self.generator_logits(masked, token_type_ids, attention_mask)
        mlm_loss, mlm_acc = masked_lm_loss(gen_logits, masked)
        sampled = self.sample(gen_logits, masked, generator)
        corrupted = write_slots(input_ids, masked.positions, sampled, masked.weights.bool())
        return masked, gen_logits, mlm_loss, mlm_acc, sampled, corrupted

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, generator: torch.Generator | None = None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # 1-2. Generator by maximum likelihood; sampled replacements (no gradient) make the corrupted input.
        masked, gen_logits, mlm_loss, mlm_acc, sampled, corrupted = self.corrupt(
            input_ids, token_type_ids, attention_mask, generator)
        labels = (corrupted != input_ids).long()  # a sample equal to the original is "original"

        # 3. Discriminator: replaced-token detection over every non-pad token.
        rtd_logits = self.discriminator_head(self.discriminator_hidden(corrupted, token_type_ids, attention_mask))
        weights = self.rtd_weights(attention_mask, masked)
        per_token = rtd_per_token(rtd_logits, labels)
        rtd_loss = weighted_mean(per_token, weights)

        gen_loss = self.generator_loss(mlm_loss, gen_logits, masked, sampled, per_token)
        loss = self.obj.gen_weight * gen_loss + self.obj.disc_weight * rtd_loss
        return {
            "loss": loss,
            "mlm_loss": mlm_loss.detach(),
            "rtd_loss": rtd_loss.detach(),
            "mlm_acc": mlm_acc,
            **rtd_metrics(rtd_logits.detach(), labels, attention_mask.float()),
            # for evaluation (AUC) and inspection; detached
            "rtd_logits": rtd_logits.detach(),
            "rtd_labels": labels,
            "rtd_weights": attention_mask.float(),
            "corrupted": corrupted,
        }


class MaskedLM(nn.Module):
    """The BERT baseline: one encoder (the discriminator's shape) trained with MLM alone, same masking code.
    BERT's 80/10/10 split: set mask_token_prob=0.8, random_token_prob=0.1 in the objective config."""

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        super().__init__()
        self.cfg, self.obj = cfg, cfg.objective
        self.mask_id = int(special_ids["mask"])
        self.discriminator = Encoder(cfg.discriminator)  # named so export/fine-tuning treat both objectives alike
        self.generator_head = MLMHead(cfg.discriminator)
        self.register_buffer("is_special", never_mask_table(cfg, special_ids), persistent=False)

    @property
    def embeddings(self):
        return self.discriminator.embeddings

    def export_parts(self):
        return [("mlm", self.discriminator, "masked-lm", self.generator_head)]

    def draw_noise(self, input_ids, generator: torch.Generator) -> Noise:
        """As Electra.draw_noise: the masking randomness of one forward (no sample to draw)."""
        B, T = input_ids.shape
        return Noise.draw(B, T, self.obj.predictions_per_seq(T), self.cfg.discriminator.vocab_size, self.obj,
                          generator, sample=False)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, generator: torch.Generator | None = None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        slots = self.obj.predictions_per_seq(input_ids.size(1))
        masked = mask_tokens(input_ids, attention_mask, self.is_special, self.mask_id, slots, self.obj,
                             self.cfg.discriminator.vocab_size, generator)
        h = self.discriminator(masked.input_ids, token_type_ids, attention_mask)
        logits = self.generator_head(gather(h, masked.positions), self.embeddings.tok.weight)  # (B, P, V)
        mlm_loss, mlm_acc = masked_lm_loss(logits, masked)
        return {"loss": mlm_loss, "mlm_loss": mlm_loss.detach(), "mlm_acc": mlm_acc}
