"""Configuration schema: dataclasses for the encoder, the generator and the pretraining objective, plus the presets.

    from electra.config import preset
    cfg = preset("small", vocab_size=30522)       # ElectraConfig: .discriminator, .generator, .objective
    cfg.generator.hidden_size                      # 64: derived from the discriminator and the fractions

Presets are a literal table. Sources: Clark et al., "ELECTRA: Pre-training Text Encoders as Discriminators Rather
Than Generators" (ICLR 2020), Table 6 ("Pre-train hyperparameters"), and google-research/electra
`configure_pretraining.py` (model_hparam_overrides, generator_hidden_size, mask_prob, max_predictions_per_seq).

Every dataclass here is built with `from_dict`, which refuses unknown keys (suggesting the closest name) and wrong
types with one `ElectraError` that names the field.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from electra.errors import ElectraError

ACTIVATIONS = ("gelu", "gelu_new", "relu")  # gelu = exact erf (HF "gelu"); gelu_new = tanh approximation (TF code)
OBJECTIVES = ("electra", "mlm", "electra-15", "replace-mlm", "all-tokens-mlm", "adversarial", "gdes", "two-stage")
INITS = ("official", "normal")  # ModelConfig.init (model.init_weights); docs/FIDELITY.md
MASKINGS = ("official", "exact")  # ObjectiveConfig.masking (objective.mask_tokens); docs/FIDELITY.md


@dataclass
class ModelConfig:
    """One transformer encoder, in the layout of Hugging Face's ElectraModel (post-LN BERT blocks)."""

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    pad_token_id: int = 0
    # official: TF's truncated normal (stddev initializer_range, cut at 2 std) and Glorot-uniform where the TF code
    # uses tf.layers.dense defaults (embedding projection, the discriminator's output layer); normal: N(0, range)
    init: str = "official"

    def __post_init__(self):
        if self.init not in INITS:
            raise ElectraError(f"init='{self.init}' is not one of {', '.join(INITS)}")
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            _check_positive(self, name)
        if self.hidden_size % self.num_heads:
            raise ElectraError(f"num_heads={self.num_heads} does not divide hidden_size={self.hidden_size}")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ElectraError(f"{name}={getattr(self, name)} must be in [0, 1)")
        if self.hidden_act not in ACTIVATIONS:
            raise ElectraError(f"hidden_act='{self.hidden_act}' is not one of {', '.join(ACTIVATIONS)}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ElectraError(f"pad_token_id={self.pad_token_id} is outside the vocabulary (size {self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass
class TwoStageOptions:
    """Knobs only objective 'two-stage' reads (variants.TwoStage); `[objective] two_stage_<knob>` in a run file."""

    switch: int = 0  # optimizer steps of stage 1 (the generator alone); the training loop switches


@dataclass
class AdversarialOptions:
    """Knobs only objective 'adversarial' reads (variants.Adversarial); `[objective] adversarial_<knob>`."""

    mle_weight: float = 0.0  # weight of an MLE term added to the REINFORCE loss


# A variant's own section of ObjectiveConfig: attribute -> options. Run files, checkpoints and `preset()` keep one flat
# [objective] table, where knob `k` of section `s` is the key `s_k` (two_stage_switch); objective_keys() lists them.
VARIANT_SECTIONS: dict[str, type] = {"two_stage": TwoStageOptions, "adversarial": AdversarialOptions}


@dataclass
class ObjectiveConfig:
    """The pretraining objective: masking, sampling and the loss mix (google-research/electra defaults), plus one
    typed section per variant that has knobs of its own (VARIANT_SECTIONS)."""

    kind: str = "electra"  # electra | mlm | electra-15 | replace-mlm | all-tokens-mlm | adversarial | gdes | two-stage
    mask_prob: float = 0.15  # fraction of tokens selected for prediction (0.25 for large); see `masking`
    # official: round(mask_prob * non-pad tokens, [CLS]/[SEP] counted) slots, positions drawn with replacement
    # (pretrain_helpers.mask; duplicates collapse: ~14.1% distinct at 15%); exact: round(mask_prob * maskable
    # tokens) distinct positions (15.0%)
    masking: str = "official"
    mask_token_prob: float = 0.85  # of the selected: replaced by [MASK] (the rest kept as is)
    random_token_prob: float = 0.0  # of the selected: replaced by a random token (BERT uses 0.1; ELECTRA 0)
    max_predictions: int = 0  # slots per sequence; 0 = int((mask_prob + 0.005) * seq_len) as the official code
    gen_weight: float = 1.0  # weight of the generator's MLM loss
    # weight of the replaced-token-detection loss (lambda); unset: the objective's own, 50 (ELECTRA paper), 10 (gdes:
    # DeBERTa-v3's rtd_lambda)
    disc_weight: float | None = None
    temperature: float = 1.0  # sampling temperature for the generator's Gumbel-max sample
    disallow_correct: bool = False  # official `disallow_correct`: never sample the original token
    two_stage: TwoStageOptions = field(default_factory=TwoStageOptions)
    adversarial: AdversarialOptions = field(default_factory=AdversarialOptions)

    def __post_init__(self):
        if self.kind not in OBJECTIVES:
            raise ElectraError(f"objective kind='{self.kind}' is not one of {', '.join(OBJECTIVES)}")
        if self.masking not in MASKINGS:
            raise ElectraError(f"masking='{self.masking}' is not one of {', '.join(MASKINGS)}")
        if self.disc_weight is None:
            self.disc_weight = 10.0 if self.kind == "gdes" else 50.0
        if not 0.0 < self.mask_prob < 1.0:
            raise ElectraError(f"mask_prob={self.mask_prob} must be in (0, 1)")
        for name in ("mask_token_prob", "random_token_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ElectraError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9:
            raise ElectraError("mask_token_prob + random_token_prob must not exceed 1")
        if self.max_predictions < 0:
            raise ElectraError(f"max_predictions={self.max_predictions} must be >= 0 (0 = automatic)")
        if self.temperature <= 0:
            raise ElectraError(f"temperature={self.temperature} must be > 0")
        if self.kind == "two-stage" and self.two_stage.switch <= 0:
            raise ElectraError("objective kind='two-stage' needs two_stage_switch > 0 (optimizer steps of stage 1)")
        if self.gen_weight < 0 or self.disc_weight < 0:
            raise ElectraError("gen_weight and disc_weight must be >= 0")

    def predictions_per_seq(self, seq_len: int) -> int:
        """The static number of prediction slots per sequence (official `max_predictions_per_seq`)."""
        return self.max_predictions or max(1, int((self.mask_prob + 0.005) * seq_len))

    def to_dict(self) -> dict:
        """The flat [objective] table, as run files and checkpoints hold it (a variant's knob as `section_knob`)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in VARIANT_SECTIONS}
        for section in VARIANT_SECTIONS:
            flat.update({f"{section}_{k}": v for k, v in dataclasses.asdict(getattr(self, section)).items()})
        return flat


def objective_keys() -> dict[str, Any]:
    """Every key of the flat [objective] table -> its type: the shared fields, then each variant's `section_knob`."""
    hints = {k: v for k, v in typing.get_type_hints(ObjectiveConfig).items() if k not in VARIANT_SECTIONS}
    for section, cls in VARIANT_SECTIONS.items():
        hints.update({f"{section}_{k}": v for k, v in typing.get_type_hints(cls).items()})
    return hints


def objective_from_dict(values: dict, where: str = "objective") -> ObjectiveConfig:
    """An ObjectiveConfig from the flat [objective] table (inverse of ObjectiveConfig.to_dict); strict, as from_dict."""
    typed = typed_table(values, objective_keys(), where, what="objective")
    sections = {}
    for section, cls in VARIANT_SECTIONS.items():
        prefix = f"{section}_"
        sections[section] = cls(**{k[len(prefix):]: typed.pop(k) for k in list(typed) if k.startswith(prefix)})
    return ObjectiveConfig(**typed, **sections)


@dataclass
class ElectraConfig:
    """Discriminator + generator + objective. The generator is derived: same embeddings, narrower (and optionally
    shallower) encoder. `generator_hidden_fraction` scales hidden size, heads and FFN (paper Table 6)."""

    discriminator: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    generator_hidden_fraction: float = 0.25
    generator_layers_fraction: float = 1.0

    def __post_init__(self):
        for name in ("generator_hidden_fraction", "generator_layers_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ElectraError(f"{name}={value} must be in (0, 1]")
        self.generator = self._derive_generator()

    def _derive_generator(self) -> ModelConfig:
        d, f = self.discriminator, self.generator_hidden_fraction
        heads = max(1, round(d.num_heads * f))
        hidden = max(heads, round(d.hidden_size * f))
        hidden -= hidden % heads  # keep heads dividing hidden
        return dataclasses.replace(
            d,
            hidden_size=hidden,
            num_heads=heads,
            intermediate_size=max(1, round(d.intermediate_size * f)),
            num_layers=max(1, round(d.num_layers * self.generator_layers_fraction)),
        )

    def to_dict(self) -> dict:
        return {
            "discriminator": dataclasses.asdict(self.discriminator),
            "objective": self.objective.to_dict(),
            "generator_hidden_fraction": self.generator_hidden_fraction,
            "generator_layers_fraction": self.generator_layers_fraction,
        }


# The presets. Columns: embedding, hidden, layers, heads, FFN, generator fraction, mask rate.
# small: paper Table 6 (Small: 12 layers, hidden 256, embedding 128, 4 heads, FFN 1024, generator 1/4, mask 15%);
# base:  Table 6 (Base: 12 / 768 / 768 / 12 heads / 3072, generator 1/3, mask 15%);
# large: Table 6 (Large: 24 / 1024 / 1024 / 16 heads / 4096, generator 1/4, mask 25%);
# tiny:  ours, for tests and CPU demos (not in the paper).
# google-research/electra configure_pretraining.py agrees: model_size small -> hidden 256, embedding 128, 4 heads,
# intermediate 1024, generator_hidden_size 0.25; base -> generator 1/3; large -> generator 0.25, mask_prob 0.25.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(embedding_size=32, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256,
                 generator_hidden_fraction=0.25, mask_prob=0.15),
    "small": dict(embedding_size=128, hidden_size=256, num_layers=12, num_heads=4, intermediate_size=1024,
                  generator_hidden_fraction=0.25, mask_prob=0.15),
    "base": dict(embedding_size=768, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 generator_hidden_fraction=1 / 3, mask_prob=0.15),
    "large": dict(embedding_size=1024, hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096,
                  generator_hidden_fraction=0.25, mask_prob=0.25),
}

# Fine-tuning layer-wise LR decay (paper Table 7 / appendix): 0.8 for Small and Base, 0.9 for Large.
LAYERWISE_LR_DECAY = {"tiny": 0.8, "small": 0.8, "base": 0.8, "large": 0.9}


def preset(name: str, **overrides: Any) -> ElectraConfig:
    """An ElectraConfig for a preset; `overrides` may name ModelConfig fields, [objective] keys or the fractions."""
    if name not in PRESETS:
        raise ElectraError(f"unknown preset '{name}'{suggest(name, PRESETS)}; presets: {', '.join(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
    objective = set(objective_keys())
    top_keys = {f.name for f in dataclasses.fields(Fractions)}
    known = model_keys | objective | top_keys
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ElectraError(f"unknown config key '{unknown[0]}'{suggest(unknown[0], known)}")
    return ElectraConfig(
        discriminator=from_dict(ModelConfig, {k: v for k, v in values.items() if k in model_keys}),
        objective=objective_from_dict({k: v for k, v in values.items() if k in objective}, where=""),
        **{k: v for k, v in values.items() if k in top_keys},
    )


def electra_config_from_dict(d: dict) -> ElectraConfig:
    """Inverse of ElectraConfig.to_dict (used by checkpoints); strict."""
    d = dict(d)
    disc = from_dict(ModelConfig, d.pop("discriminator", {}), where="discriminator")
    obj = objective_from_dict(d.pop("objective", {}), where="objective")
    d.pop("generator", None)  # derived, written for readers only
    top = from_dict(Fractions, d)
    return ElectraConfig(discriminator=disc, objective=obj, **dataclasses.asdict(top))


@dataclass
class Fractions:
    """The generator's size relative to the discriminator (ElectraConfig's keys besides its parts)."""

    generator_hidden_fraction: float = 0.25
    generator_layers_fraction: float = 1.0


# ---------------------------------------------------------------------------------------------------------------
# Strict construction of dataclasses from dicts (TOML sections, JSON metadata, CLI overrides).


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass `cls` from `values`, refusing unknown keys (with a suggestion) and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    return cls(**typed_table(values, fields, where, what=cls.__name__))


def typed_table(values: dict, hints: dict, where: str = "", what: str = "config") -> dict:
    """`values` with every key checked against `hints` (key -> type): an unknown key is an error suggesting the
    closest one, a value of the wrong type an error naming `where.key`."""
    if not isinstance(values, dict):
        raise ElectraError(f"{where or what} must be a table of keys, got {type(values).__name__}")
    typed = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in hints:
            raise ElectraError(f"unknown config key '{path}'{suggest(key, hints)}")
        typed[key] = coerce(value, hints[key], path)
    return typed


_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))  # types.UnionType: `X | None` (Python 3.10+)


def coerce(value: Any, hint: Any, path: str) -> Any:
    """Check `value` against the type hint `hint`; ints are accepted for floats. Raises ElectraError naming `path`."""
    origin = typing.get_origin(hint)
    if origin in _UNIONS:  # Optional[X] and X | None
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return coerce(value, args[0], path)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ElectraError(f"config key '{path}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ElectraError(f"config key '{path}' must be a table, got {value!r}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ElectraError(f"config key '{path}' must be {hint.__name__}, got {type(value).__name__} {value!r}")


def _check_positive(obj, name):
    value = getattr(obj, name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ElectraError(f"{name}={value!r} must be a positive integer")


def suggest(key: str, known) -> str:
    """" (did you mean 'x'?)" for the closest known name, or "" when none is close."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""



