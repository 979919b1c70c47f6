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
  two-stage       train the generator alone (MLM) for `two_stage_switch` optimizer steps, then initialise the
                  discriminator from it (embeddings and layers) and train only the discriminator, the generator
                  frozen with its own embeddings. The training loop calls `switch()`. Needs a generator as large as
                  the discriminator (generator_hidden_fraction = 1). One process only: refused under torchrun.
DeBERTa-v3 (He et al., 2021), "gradient-disentangled embedding sharing" (microsoft/DeBERTa
DeBERTa/apps/tasks/rtd_task.py, embedding_sharing = "gdes"):
  gdes            the generator owns the embeddings; the discriminator's word and position tables are
                  stop_grad(generator's) + a learned delta (zero at start), its embedding LayerNorm and token-type
                  table its own: the RTD loss updates only the deltas, the MLM loss only the generator's tables.
                  RTD weight 10 by default (DeBERTa's rtd_lambda).

All variants keep the objective contract: forward(...) -> dict with `loss`, metrics as tensors; `export_parts()`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from electra.config import ElectraConfig
from electra.errors import ElectraError
from electra.model import Encoder, MLMHead
from electra.losses import weighted_mean
from electra.objective import Electra, Masked, gather, masked_lm_loss


class Electra15(Electra):
    """RTD loss only over the masked-out positions (paper Table 5, "ELECTRA 15%")."""

    def rtd_weights(self, attention_mask, masked: Masked) -> torch.Tensor:
        w = torch.zeros_like(attention_mask, dtype=torch.float)
        return w.scatter_add(1, masked.positions, masked.weights).clamp(max=1.0)  # 1 at real slots (may repeat)


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
    """Gradient-disentangled embedding sharing: the discriminator's word and position tables are
    stop_grad(generator's) + delta; its own embedding LayerNorm and token-type table."""

    share_embeddings = False

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        super().__init__(cfg, special_ids)
        own = self.discriminator.embeddings
        self.token_delta = nn.Parameter(torch.zeros_like(own.tok.weight))  # DeBERTa: word_embeddings._weight
        self.position_delta = nn.Parameter(torch.zeros_like(own.pos.weight))  # position_embeddings._weight
        del own.tok, own.pos  # the discriminator reads the generator's tables through the deltas

    def discriminator_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(token (V, E), position (max positions, E)) tables the discriminator reads."""
        gen = self.generator.embeddings
        return gen.tok.weight.detach() + self.token_delta, gen.pos.weight.detach() + self.position_delta

    def discriminator_hidden(self, corrupted, token_type_ids, attention_mask):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(corrupted)
        tok, pos = self.discriminator_tables()
        embeds = self.discriminator.embeddings(corrupted, token_type_ids, token_weight=tok, position_weight=pos)
        return self.discriminator(corrupted, token_type_ids, attention_mask, embeds=embeds)

    def merged_discriminator(self) -> Encoder:
        """A standalone discriminator encoder with tables E + delta (for export/fine-tuning)."""
        merged = Encoder(self.cfg.discriminator).to(self.token_delta.device)
        tok, pos = (t.detach().clone() for t in self.discriminator_tables())
        merged.load_state_dict({**self.discriminator.state_dict(), "embeddings.tok.weight": tok,
                                "embeddings.pos.weight": pos})
        return merged

    def export_parts(self):
        return [("discriminator", self.merged_discriminator(), "pretraining", self.discriminator_head),
                ("generator", self.generator, "masked-lm", self.generator_head)]


class TwoStage(Electra):
    """Stage 1: the generator alone by MLM, with its own embeddings. Stage 2 (`switch()`, called by the training
    loop before optimizer step `switch_step`): the discriminator becomes a copy of the generator (embeddings and
    layers) and trains by RTD; the generator, its head and its embeddings (its tied output layer) are frozen, so
    nothing the discriminator learns moves them. The stage is a buffer: a checkpoint resumes in its stage."""

    share_embeddings = False

    def __init__(self, cfg: ElectraConfig, special_ids: dict):
        if cfg.generator_hidden_fraction != 1.0 or cfg.generator_layers_fraction != 1.0:
            raise ElectraError("objective 'two-stage' initialises the discriminator from the generator: set "
                               "generator_hidden_fraction = 1 and generator_layers_fraction = 1")
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise ElectraError("objective 'two-stage' runs in one process (each stage leaves half the model "
                               "without gradients, which DDP refuses): run it without torchrun")
        super().__init__(cfg, special_ids)
        self.register_buffer("stage", torch.ones((), dtype=torch.long))  # 1 or 2; saved with the weights
        self.frozen = False  # the Python-side stage: forward reads no tensor to choose its path
        self.register_load_state_dict_post_hook(TwoStage._after_load)

    @property
    def switch_step(self) -> int:
        return self.obj.two_stage.switch

    def switch(self):
        """Start stage 2: initialise the discriminator from the generator, freeze the generator (once, here)."""
        with torch.no_grad():
            self.discriminator.load_state_dict(self.generator.state_dict())
        self.stage.fill_(2)
        self._freeze()

    def _freeze(self):
        for p in [*self.generator.parameters(), *self.generator_head.parameters()]:
            p.requires_grad_(False)  # no gradient, so no optimizer update (not even weight decay)
        self.frozen = True

    @staticmethod
    def _after_load(module, incompatible_keys):
        if not module.frozen and int(module.stage) == 2:  # resuming in stage 2
            module._freeze()

    def generator_loss(self, mlm_loss, gen_logits, masked, sampled, rtd_per_token):
        return mlm_loss * 0  # stage 2: the frozen generator's MLM loss is reported, not trained

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, generator=None):
        if self.frozen:
            return {**super().forward(input_ids, token_type_ids, attention_mask, generator), "stage": self.stage.clone()}
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        masked = self.mask(input_ids, attention_mask, generator)
        mlm_loss, mlm_acc = masked_lm_loss(self.generator_logits(masked, token_type_ids, attention_mask), masked)
        return {"loss": mlm_loss, "mlm_loss": mlm_loss.detach(), "rtd_loss": mlm_loss.detach() * 0,
                "mlm_acc": mlm_acc, "stage": self.stage.clone()}


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
