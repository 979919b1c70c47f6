"""The model: one transformer encoder in the layout of Hugging Face's ElectraModel, and the heads put on it.

    enc = Encoder(ModelConfig(...))
    h = enc(input_ids, token_type_ids, attention_mask)            # (B, T, H)

Encoder = embeddings (token + learned position + token type, LayerNorm, dropout), a projection when the embedding
size differs from the hidden size, then post-LN BERT blocks with attention through
`torch.nn.functional.scaled_dot_product_attention`. Heads map 1:1 to the Hugging Face classes (see `hf.py`):

    MLMHead             ElectraForMaskedLM.generator_predictions + generator_lm_head (tied to token embeddings)
    DiscriminatorHead   ElectraForPreTraining.discriminator_predictions
    ClassificationHead  ElectraForSequenceClassification.classifier
    LinearClassificationHead  the official ELECTRA head (dropout + linear), exported exactly as the row above
    TokenClassificationHead / SpanHead   ElectraForTokenClassification / ElectraForQuestionAnswering
    MultipleChoiceHead  ElectraForMultipleChoice.sequence_summary + classifier

Task models are encoder + head with one contract: `forward(...) -> (loss or None, logits)`; the head and its loss
(electra/losses.py) come from the HEADS table by kind:

    model = TaskModel(cfg, "sequence", num_labels=3)
    loss, logits = model(input_ids, token_type_ids, attention_mask, labels=labels)   # logits (B, 3)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from electra import losses
from electra.config import ModelConfig


def activation(name: str):
    if name == "gelu":
        return F.gelu
    if name == "gelu_new":
        return lambda x: F.gelu(x, approximate="tanh")
    return F.relu


class Embeddings(nn.Module):
    """Token + position + token-type embeddings, LayerNorm, dropout. Shared by generator and discriminator."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.embedding_size)
        self.pos = nn.Embedding(cfg.max_position_embeddings, cfg.embedding_size)
        self.seg = nn.Embedding(cfg.type_vocab_size, cfg.embedding_size)
        self.norm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout)

    def forward(self, input_ids, token_type_ids, token_weight=None, position_weight=None):
        """`token_weight` (V, E) and `position_weight` (max positions, E) replace the token and position tables (the
        GDES variant's stop-grad + delta)."""
        T = input_ids.size(1)
        positions = torch.arange(T, device=input_ids.device)
        tok = self.tok(input_ids) if token_weight is None else F.embedding(input_ids, token_weight)
        pos = self.pos(positions) if position_weight is None else position_weight[:T]
        x = tok + pos + self.seg(token_type_ids)  # (B, T, E)
        return self.drop(self.norm(x))


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection; output dense + residual + LayerNorm (post-LN)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_dropout

    def forward(self, x, mask):
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, H))


class Layer(nn.Module):
    """A post-LN BERT block: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = Attention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.act = activation(cfg.hidden_act)
        self.drop = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x, mask):
        x = self.attn_norm(x + self.drop(self.attn(x, mask)))
        return self.ffn_norm(x + self.drop(self.ffn_out(self.act(self.ffn_in(x)))))


class Encoder(nn.Module):
    """Embeddings (+ projection when embedding size != hidden size) and `num_layers` post-LN blocks."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.cfg = cfg
        self.embeddings = embeddings if embeddings is not None else Embeddings(cfg)
        self.project = nn.Linear(cfg.embedding_size, cfg.hidden_size) if cfg.embedding_size != cfg.hidden_size else None
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.apply(lambda m: init_weights(m, cfg.initializer_range, cfg.init))
        if self.project is not None and cfg.init == "official":
            glorot(self.project)  # official `embeddings_project`: a tf.layers.dense with default initializers

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, embeds=None):
        """input_ids (B, T) -> hidden states (B, T, H). attention_mask (B, T): 1 = real token, 0 = padding.
        `embeds` (B, T, E) replaces the embedding lookup (used by the GDES objective variant)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids) if embeds is None else embeds
        if self.project is not None:
            x = self.project(x)  # (B, T, E) -> (B, T, H)
        mask = None
        if attention_mask is not None:
            mask = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T): True = attend
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def num_parameters(self, include_embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if include_embeddings else n - sum(p.numel() for p in self.embeddings.parameters())


def init_weights(module: nn.Module, std: float, scheme: str = "normal"):
    """BERT initialisation: weights N(0, std) ("normal", Hugging Face) or, "official", TF's
    truncated_normal_initializer(stddev=std) (google-research/electra model/modeling.py create_initializer): N(0, std)
    redrawn outside 2 std. Zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        if scheme == "official":
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
        else:
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def glorot(linear: nn.Linear):
    """tf.layers.dense's default initialisation: Glorot-uniform kernel, zero bias."""
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


# ---------------------------------------------------------------------------------------------------------------
# Heads


class MLMHead(nn.Module):
    """Generator head: dense (H -> E), gelu, LayerNorm, then logits against the tied token embeddings + a bias.
    Apply it to hidden states already gathered at the positions to predict: (..., H) -> (..., V). The output weight
    is passed in (the token embedding matrix), so the tie is explicit and the head owns no copy of it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.embedding_size)
        self.norm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        init_weights(self.dense, cfg.initializer_range, cfg.init)  # official get_token_logits: create_initializer

    def forward(self, h, token_embedding_weight):
        return F.linear(self.norm(F.gelu(self.dense(h))), token_embedding_weight, self.bias)


class DiscriminatorHead(nn.Module):
    """Discriminator head: dense (H -> H), activation, dense (H -> 1): one replaced/original logit per token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, 1)
        self.act = activation(cfg.hidden_act)
        self.apply(lambda m: init_weights(m, cfg.initializer_range, cfg.init))
        if cfg.init == "official":  # run_pretraining.py: the dense has create_initializer, the 1-unit layer defaults
            glorot(self.out)

    def forward(self, h):
        return self.out(self.act(self.dense(h))).squeeze(-1)  # (B, T, H) -> (B, T)


class ClassificationHead(nn.Module):
    """Sequence classification on the first token: dropout, dense, gelu, dropout, out_proj (HF's
    ElectraClassificationHead). num_labels == 1 is regression."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, num_labels)
        self.drop = nn.Dropout(cfg.hidden_dropout if dropout is None else dropout)
        self.apply(lambda m: init_weights(m, cfg.initializer_range))

    def forward(self, h):
        x = self.drop(h[:, 0])
        return self.out(self.drop(F.gelu(self.dense(x))))  # (B, num_labels)


class LinearClassificationHead(nn.Module):
    """The official ELECTRA head (google-research/electra finetune/classification/classification_tasks.py):
    dropout, then one linear layer on the first token, Glorot-uniform init (tf.layers.dense). num_labels == 1 is
    regression. Exported to HF's ElectraForSequenceClassification exactly through `hf_layout` (see there)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.out = nn.Linear(cfg.hidden_size, num_labels)
        self.drop = nn.Dropout(cfg.hidden_dropout if dropout is None else dropout)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h):
        return self.out(self.drop(h[:, 0]))  # (B, num_labels)

    def hf_layout(self) -> dict[str, torch.Tensor]:
        """The weights of a ClassificationHead (dense, act, out) computing the same logits: dense rows 0..n-1 are
        W, b and rows n..2n-1 are -W, -b (the rest 0); out takes act(z) - act(-z), which is z for every activation
        of the form z * F(z) with F(z) + F(-z) = 1 (gelu, gelu_new, relu, silu). Needs 2 * num_labels <= hidden."""
        w, b = self.out.weight.detach(), self.out.bias.detach()  # (n, H), (n,)
        n, H = w.shape
        dense_w, dense_b = w.new_zeros(H, H), b.new_zeros(H)
        dense_w[:n], dense_w[n:2 * n], dense_b[:n], dense_b[n:2 * n] = w, -w, b, -b
        out_w = w.new_zeros(n, H)
        out_w[:, :n], out_w[:, n:2 * n] = torch.eye(n), -torch.eye(n)
        return {"dense.weight": dense_w, "dense.bias": dense_b, "out.weight": out_w, "out.bias": b.new_zeros(n)}

    @staticmethod
    def from_hf_layout(state: dict[str, torch.Tensor], num_labels: int) -> dict[str, torch.Tensor]:
        """The inverse of `hf_layout` (exact: W and b are rows 0..n-1 of the dense layer)."""
        return {"out.weight": state["dense.weight"][:num_labels], "out.bias": state["dense.bias"][:num_labels]}


class TokenClassificationHead(nn.Module):
    """Per-token labels: dropout + linear (HF's ElectraForTokenClassification.classifier)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.out = nn.Linear(cfg.hidden_size, num_labels)
        self.drop = nn.Dropout(cfg.hidden_dropout if dropout is None else dropout)
        init_weights(self.out, cfg.initializer_range)

    def forward(self, h):
        return self.out(self.drop(h))  # (B, T, num_labels)


class SpanHead(nn.Module):
    """Extractive QA: a linear layer to (start, end) logits (HF's ElectraForQuestionAnswering.qa_outputs)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.out = nn.Linear(cfg.hidden_size, 2)
        init_weights(self.out, cfg.initializer_range)

    def forward(self, h):
        return self.out(h)  # (B, T, 2): [..., 0] start, [..., 1] end


class MultipleChoiceHead(nn.Module):
    """HF's ElectraSequenceSummary (summary_type "first", use_proj, activation gelu, last dropout) + a 1-logit
    classifier (ElectraForMultipleChoice.sequence_summary + classifier): (N, T, H) -> (N,)."""

    def __init__(self, cfg: ModelConfig, dropout: float | None = None):
        super().__init__()
        self.summary = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, 1)
        self.drop = nn.Dropout(cfg.hidden_dropout if dropout is None else dropout)
        self.apply(lambda m: init_weights(m, cfg.initializer_range))

    def forward(self, h):
        return self.out(self.drop(F.gelu(self.summary(h[:, 0])))).squeeze(-1)


# ---------------------------------------------------------------------------------------------------------------
# Task models: encoder + head, forward(...) -> (loss or None, logits)


@dataclass(frozen=True)
class Head:
    """One row of HEADS: how to build the head of a kind, and its loss from the targets of a batch."""

    build: Callable[[ModelConfig, int, float | None, str], nn.Module]  # (cfg, num_labels, dropout, style) -> head
    loss: Callable[[torch.Tensor, dict], torch.Tensor]  # (logits, targets) -> scalar
    target: str = "labels"  # the forward argument whose presence turns the loss on
    tied: bool = False  # the head also takes the token embedding matrix (the generator's tied output layer)
    choices: bool = False  # inputs (B, C, T): each choice encoded alone, the C scores compared: logits (B, C)


# The head of kind "sequence": "official" (dropout + linear, google-research/electra) or "hf" (HF's dense + gelu +
# out_proj). Both export as ElectraForSequenceClassification (hf.py); config.json's "electra_head" says which.
SEQUENCE_HEADS: dict[str, type] = {"official": LinearClassificationHead, "hf": ClassificationHead}

# kind -> Head. A table, not an if/elif ladder: a new head is a class above and a row here (+ its keys in hf.py).
HEADS: dict[str, Head] = {
    "sequence": Head(lambda cfg, n, p, style: SEQUENCE_HEADS[style](cfg, n, p),
                     lambda logits, t: losses.sequence_loss(logits, t["labels"])),
    "token": Head(lambda cfg, n, p, style: TokenClassificationHead(cfg, n, p),
                  lambda logits, t: losses.token_loss(logits, t["labels"])),
    "span": Head(lambda cfg, n, p, style: SpanHead(cfg),
                 lambda logits, t: losses.span_loss(logits, t["start_positions"], t["end_positions"]),
                 target="start_positions"),
    "pretraining": Head(lambda cfg, n, p, style: DiscriminatorHead(cfg),
                        lambda logits, t: losses.rtd_loss(logits, t["labels"], t["attention_mask"])),
    "masked-lm": Head(lambda cfg, n, p, style: MLMHead(cfg), lambda logits, t: losses.token_loss(logits, t["labels"]),
                      tied=True),
    "multiple-choice": Head(lambda cfg, n, p, style: MultipleChoiceHead(cfg, p),
                            lambda logits, t: losses.choice_loss(logits, t["labels"]), choices=True),
}


class TaskModel(nn.Module):
    """An encoder with the head of `kind` (a key of HEADS); labels (start/end positions for spans), when given,
    produce the loss: sequence: CE over num_labels (MSE when num_labels == 1); token and masked-lm: CE ignoring
    -100; span: mean of start/end CE; pretraining: BCE over real tokens (labels 1 = replaced); multiple-choice:
    CE over the choices of inputs shaped (B, C, T)."""

    KINDS = tuple(HEADS)

    def __init__(self, cfg: ModelConfig, kind: str, num_labels: int = 2, classifier_dropout: float | None = None,
                 head: str = "hf"):
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"unknown task kind {kind!r}")
        if head not in SEQUENCE_HEADS:
            raise ValueError(f"unknown head style {head!r}; choose one of {', '.join(SEQUENCE_HEADS)}")
        self.cfg, self.kind, self.num_labels = cfg, kind, num_labels
        self.head_style = head if kind == "sequence" else "hf"  # only sequence classification has two styles
        self.encoder = Encoder(cfg)
        self.head = HEADS[kind].build(cfg, num_labels, classifier_dropout, self.head_style)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                start_positions=None, end_positions=None):
        spec = HEADS[self.kind]
        shape = input_ids.shape
        if spec.choices:  # (B, C, T) -> (B*C, T)
            input_ids, token_type_ids, attention_mask = (None if t is None else t.flatten(0, 1)
                                                         for t in (input_ids, token_type_ids, attention_mask))
        h = self.encoder(input_ids, token_type_ids, attention_mask)
        logits = self.head(h, self.encoder.embeddings.tok.weight) if spec.tied else self.head(h)
        if spec.choices:
            logits = logits.view(shape[:2])  # (B*C,) -> (B, C)
        targets = {"labels": labels, "start_positions": start_positions, "end_positions": end_positions,
                   "attention_mask": attention_mask}
        loss = None if targets[spec.target] is None else spec.loss(logits, targets)
        return loss, logits


class MultipleChoiceModel(TaskModel):
    """TaskModel(cfg, "multiple-choice"): forward(input_ids (B, C, T), token_type_ids, attention_mask, labels (B,))
    -> (loss or None, logits (B, C)); exports as HF's ElectraForMultipleChoice (hf.py)."""

    def __init__(self, cfg: ModelConfig, dropout: float | None = None):
        super().__init__(cfg, "multiple-choice", num_labels=1, classifier_dropout=dropout)


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters (a tied or shared tensor counts once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())

