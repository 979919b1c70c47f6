"""The paper's objective variants, beside `electra` and `mlm` (objective.py), for the fidelity study.

    cfg = preset("small", kind="electra-15")      # or replace-mlm, all-tokens-mlm, adversarial, gdes, two-stage
    model = build_objective(cfg, special_ids)      # electra.objectives: the registry of every objective

Paper section 3.2 / Table 5 ("Efficiency analysis"):
  electra-15      ELECTRA, but the discriminator loss only over the ~15% of tokens that were masked out.
  replace-mlm     MLM, but masked-out tokens are replaced by generator samples instead of [MASK]; the main encoder
                  predicts the originals at those positions.
  all-tokens-mlm  as replace-mlm, but the main encoder predicts the identity of every token, with the paper's copy
                  mechanism: p(x_t) = D_t * 1[x_t = input_t] + (1 - D_t) * softmax(...)_t, D_t a per-token sigmoid.
Paper section 3.2 and appendix F:
  adversarial     the generator is trained to fool the discriminator with REINFORCE: reward = the discriminator's
                  loss on the sampled token, a learned baseline; no maximum likelihood unless adversarial_mle_weight.
  two-stage       train the generator alone (MLM) for `two_stage_switch` forward passes, then initialise the
                  discriminator from it and train only the discriminator, generator frozen. Needs a generator as
                  large as the discriminator (generator_hidden_fraction = 1).
DeBERTa-v3 (He et al., 2021), "gradient-disentangled embedding sharing":
  gdes            the discriminator's token embeddings are stop_grad(generator's) + a learned delta (zero at start):
                  the RTD loss updates only the delta, the MLM loss only the shared table.

All variants keep the objective contract: forward(...) -> dict with `loss`, metrics as tensors; `export_parts()`.
Variants in which some parameters receive no gradient at some steps (two-stage) run in one process, not DDP.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from electra.config import ElectraConfig
from electra.errors import ElectraError
from electra.model import Encoder, MLMHead
from electra.objective import Electra, Masked, gather, masked_lm_loss, weighted_mean


class Electra15(Electra):
    """RTD loss only over the masked-out positions (paper Table 5, "ELECTRA 15%")."""

    def rtd_weights(self, attention_mask, masked: Masked) -> torch.Tensor:
        w = torch.zeros_like(attention_mask, dtype=torch.float)
        return w.scatter(1, masked.positions, masked.weights)  # 1 at real prediction slots only


class Adversarial(Electra):
    """The generator maximises the discriminator's loss with REINFORCE and a learned baseline (appendix F)."""

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        super().__init__(cfg, special_ids)
        self.baseline = nn.Linear(cfg.generator.hidden_size, 1)

    def generator_loss(self, mlm_loss, gen_logits, masked, sampled, rtd_per_token):
        reward = rtd_per_token.detach().gather(1, masked.positions)  # (B, P): how much the sample fooled D
        log_p = F.log_softmax(gen_logits.float(), -1).gather(-1, sampled[..., None]).squeeze(-1)  # (B, P)
        baseline = self.baseline(masked.hidden.detach()).squeeze(-1).float()  # (B, P)
        advantage = (reward - baseline).detach()
        reinforce = -weighted_mean(advantage * log_p, masked.weights)
        baseline_loss = weighted_mean((baseline - reward) ** 2, masked.weights)
        return reinforce + baseline_loss + self.obj.adversarial.mle_weight * mlm_loss


class GDES(Electra):
    """Gradient-disentangled embedding sharing: discriminator token embeddings = stop_grad(E) + delta."""

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        super().__init__(cfg, special_ids)
        self.token_delta = nn.Parameter(torch.zeros_like(self.embeddings.tok.weight))

    def discriminator_token_weight(self) -> torch.Tensor:
        return self.embeddings.tok.weight.detach() + self.token_delta

    def discriminator_hidden(self, corrupted, token_type_ids, attention_mask):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(corrupted)
        embeds = self.embeddings(corrupted, token_type_ids, token_weight=self.discriminator_token_weight())
        return self.discriminator(corrupted, token_type_ids, attention_mask, embeds=embeds)

    def merged_discriminator(self) -> Encoder:
        """A standalone discriminator encoder whose token embeddings are E + delta (for export/fine-tuning)."""
        merged = Encoder(self.cfg.discriminator).to(self.token_delta.device)
        state = self.discriminator.state_dict()
        state["embeddings.tok.weight"] = self.discriminator_token_weight().detach().clone()
        merged.load_state_dict(state)
        return merged

    def export_parts(self):
        return [("discriminator", self.merged_discriminator(), "pretraining", self.discriminator_head),
                ("generator", self.generator, "masked-lm", self.generator_head)]


class TwoStage(Electra):
    """Stage 1: generator alone by MLM. Stage 2: discriminator initialised from the generator, trained by RTD with
    the generator frozen. The stage is kept in buffers, so a resumed run continues in the right one."""

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        if cfg.generator_hidden_fraction != 1.0 or cfg.generator_layers_fraction != 1.0:
            raise ElectraError("objective 'two-stage' initialises the discriminator from the generator: set "
                               "generator_hidden_fraction = 1 and generator_layers_fraction = 1")
        super().__init__(cfg, special_ids)
        self.register_buffer("micro_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("switched", torch.zeros((), dtype=torch.bool))

    def _switch(self):
        state = {k: v for k, v in self.generator.state_dict().items() if not k.startswith("embeddings.")}
        self.discriminator.load_state_dict(state, strict=False)  # embeddings are shared already
        self.switched.fill_(True)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, generator=None):
        if self.training:
            self.micro_steps += 1
        stage_two = bool(self.switched) or int(self.micro_steps) > self.obj.two_stage.switch
        if stage_two and not bool(self.switched):
            self._switch()
        generator_only = [p for n, p in self.named_parameters()
                          if n.startswith(("generator.layers", "generator.project", "generator_head."))]
        for p in generator_only:
            p.requires_grad_(not stage_two)
        if not stage_two:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            masked = self.mask(input_ids, attention_mask, generator)
            gen_logits = self.generator_logits(masked, token_type_ids, attention_mask)
            mlm_loss, mlm_acc = masked_lm_loss(gen_logits, masked)
            zero = mlm_loss.detach() * 0
            return {"loss": mlm_loss, "mlm_loss": mlm_loss.detach(), "rtd_loss": zero, "mlm_acc": mlm_acc,
                    "stage": torch.tensor(1)}
        out = super().forward(input_ids, token_type_ids, attention_mask, generator)
        out["stage"] = torch.tensor(2)
        return out

    def generator_logits(self, masked, token_type_ids, attention_mask):
        if not bool(self.switched):
            return super().generator_logits(masked, token_type_ids, attention_mask)
        with torch.no_grad():  # frozen: its MLM loss is a constant and must not train the shared embeddings
            return super().generator_logits(masked, token_type_ids, attention_mask)


class ReplaceMLM(Electra):
    """MLM on generator-corrupted input: the main encoder predicts the originals at the replaced positions."""

    all_tokens = False

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        super().__init__(cfg, special_ids)
        del self.discriminator_head
        self.main_head = MLMHead(cfg.discriminator)
        if self.all_tokens:
            self.copy_head = nn.Linear(cfg.discriminator.hidden_size, 1)

    def export_parts(self):
        return [("mlm", self.discriminator, "masked-lm", self.main_head),
                ("generator", self.generator, "masked-lm", self.generator_head)]

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, generator=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        masked, _, gen_mlm, gen_acc, _, corrupted = self.corrupt(input_ids, token_type_ids, attention_mask, generator)
        h = self.discriminator(corrupted, token_type_ids, attention_mask)  # (B, T, H)
        if self.all_tokens:
            main_loss, acc = self._all_tokens_loss(h, corrupted, input_ids, attention_mask)
        else:
            logits = self.main_head(gather(h, masked.positions), self.embeddings.tok.weight)  # (B, P, V)
            main_loss, acc = masked_lm_loss(logits, masked)
        labels = (corrupted != input_ids).long()
        return {"loss": self.obj.gen_weight * gen_mlm + main_loss, "mlm_loss": gen_mlm.detach(),
                "main_mlm_loss": main_loss.detach(), "main_mlm_acc": acc, "mlm_acc": gen_acc,
                "replaced_frac": weighted_mean(labels.float(), attention_mask.float())}

    def _all_tokens_loss(self, h, corrupted, original, attention_mask):
        """-log p(original_t) for every real token, p = D * copy(input) + (1 - D) * softmax (the copy mechanism)."""
        logits = self.main_head(h, self.embeddings.tok.weight).float()  # (B, T, V)
        log_sm = F.log_softmax(logits, -1).gather(-1, original[..., None]).squeeze(-1)  # (B, T)
        d_logit = self.copy_head(h).squeeze(-1).float()
        log_d, log_not_d = F.logsigmoid(d_logit), F.logsigmoid(-d_logit)
        same = corrupted == original
        log_p = torch.where(same, torch.logaddexp(log_d, log_not_d + log_sm), log_not_d + log_sm)
        weights = attention_mask.float()
        with torch.no_grad():
            p_copy = torch.sigmoid(d_logit)
            predicted = torch.where(p_copy > 0.5, corrupted, logits.argmax(-1))
            acc = weighted_mean((predicted == original).float(), weights)
        return weighted_mean(-log_p, weights), acc


class AllTokensMLM(ReplaceMLM):
    """Replace MLM predicting every token, with the copy mechanism (paper Table 5, "All-Tokens MLM")."""

    all_tokens = True
