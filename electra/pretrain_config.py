"""The pretraining run configuration: the run-file schema (dataclasses), its parsing, and the ElectraConfig it implies.

    from electra.pretrain_config import load_pretrain_config, electra_config
    cfg = load_pretrain_config("configs/debug.toml", ["--data.dir=runs/data", "--train.steps=200"])
    ecfg = electra_config(cfg, vocab_size=30522, pad_id=0, seq_len=128)     # preset + [model] + [objective]

A run file has the sections [model] (preset + ModelConfig overrides), [objective] (ObjectiveConfig overrides),
[data], [optim], [train] and [run]; every key is checked against the dataclasses below (an unknown key or a wrong
type is one error naming it, with the closest name). `--section.key=value` on the command line overrides a key,
typed by its field. Files are read and overrides parsed by electra.runfile, the one reader for every command.
"""
from __future__ import annotations

import dataclasses
import textwrap
import typing
from dataclasses import dataclass, field

from electra.config import ModelConfig, Fractions, coerce, from_dict, objective_keys, preset, suggest
from electra.errors import ElectraError
from electra.runfile import apply_overrides as apply_run_overrides
from electra.runfile import read_run_file
from electra.threads import HELP as THREADS_HELP

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class DataSection:
    dir: str = ""  # a folder written by `electra prepare` (meta.json, shards, tokenizer/)
    batch_size: int = 128  # global sequences per optimizer step (all ranks, all accumulation steps); paper: 128 small
    eval_batch_size: int = 64  # sequences per evaluation batch (rank 0)
    pad_to_multiple: int = 8  # pad each batch to a multiple of this length
    fixed_length: bool = False  # pad every batch to the full seq_len (static shapes, best with train.compile)


@dataclass
class OptimSection:
    name: str = "adamw-official"  # adamw-official (no bias correction, as the TF code) | adamw (torch's) | lamb
    lr: float = 5e-4  # peak learning rate; paper Table 6: 5e-4 small, 2e-4 base and large
    weight_decay: float = 0.01  # not on LayerNorm parameters and biases
    eps: float = 1e-6
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 10_000  # linear warm-up, overlapped with the linear decay to 0 at train.steps
    clip_norm: float = 1.0  # global gradient-norm clipping (0 = off)


@dataclass
class TrainSection:
    steps: int = 1_000_000  # optimizer steps; paper: 1M small, 766k base, 400k large
    accumulation: int = 1  # micro-steps per optimizer step (per-rank batch = batch_size / (world * accumulation))
    precision: str = "auto"  # auto (bf16 on CUDA if supported, else fp32) | fp32 | bf16 | fp16 (with a grad scaler)
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # auto (CUDA if available, else CPU) | cpu | cuda
    seed: int = 0  # initialisation, data order, masking, sampling and dropout
    deterministic: bool = False  # torch.use_deterministic_algorithms(True): bitwise-repeatable runs and resumes
    log_every: int = 100  # steps between metric logs (JSONL, TensorBoard, progress bar, table row)
    eval_every: int = 10_000  # steps between evaluations on the valid split (0 = only at the end)
    eval_batches: int = 50  # valid batches per evaluation (0 = the whole split)
    checkpoint_every: int = 10_000  # steps between checkpoints (a final one is always written)
    keep_checkpoints: int = 3  # newest checkpoints kept (0 = all)
    max_nonfinite: int = 20  # consecutive NaN/Inf steps after which the run stops with a checkpoint
    diagnose_after: int = -1  # first step for collapse diagnostics (-1 = max(2 x warmup, min(steps / 5, 20k)))
    threads: int = 0  # threads.HELP: CPU threads for torch, 0 = auto (fewer on a busy machine)


@dataclass
class RunSection:
    out: str = "runs/electra"  # the run folder
    tensorboard: bool = True  # write RUN/tb when tensorboard is installed
    progress: bool = True  # progress bar on stderr
    report: bool = True  # curves.png + report.html at the end
    export: bool = True  # Hugging Face folders RUN/hf/discriminator and RUN/hf/generator at the end


@dataclass
class PretrainConfig:
    model: dict = field(default_factory=lambda: {"preset": "small"})  # preset + ModelConfig / fraction overrides
    objective: dict = field(default_factory=dict)  # [objective] overrides of the preset's (e.g. mask_prob)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self):
        t = self.train
        if self.train.precision not in PRECISIONS:
            raise ElectraError(f"train.precision='{t.precision}' is not one of {', '.join(PRECISIONS)}")
        for name in ("steps", "accumulation", "log_every"):
            if getattr(t, name) < 1:
                raise ElectraError(f"train.{name}={getattr(t, name)} must be >= 1")
        for name in ("eval_every", "eval_batches", "checkpoint_every", "keep_checkpoints"):
            if getattr(t, name) < 0:
                raise ElectraError(f"train.{name}={getattr(t, name)} must be >= 0")
        if t.max_nonfinite < 1:
            raise ElectraError(f"train.max_nonfinite={t.max_nonfinite} must be >= 1")
        if self.data.batch_size < 1 or self.data.eval_batch_size < 1:
            raise ElectraError("data.batch_size and data.eval_batch_size must be >= 1")
        if self.optim.lr <= 0 or self.optim.warmup_steps < 0:
            raise ElectraError("optim.lr must be > 0 and optim.warmup_steps >= 0")

    def to_dict(self) -> dict:
        return {"model": dict(self.model), "objective": dict(self.objective),
                **{name: dataclasses.asdict(getattr(self, name)) for name in ("data", "optim", "train", "run")}}


SECTIONS = {"data": DataSection, "optim": OptimSection, "train": TrainSection, "run": RunSection}
# init_from / generator_init_from: start from pretrained folders (electra/warmstart.py); not part of the ElectraConfig
MODEL_HINTS = {"preset": str, "init_from": str, "generator_init_from": str, **typing.get_type_hints(ModelConfig),
               **typing.get_type_hints(Fractions)}
OBJECTIVE_HINTS = objective_keys()
DERIVED_KEYS = ("electra", "derived")  # written into RUN/config.json for readers; ignored when read back


def key_hint(section: str, key: str):
    """The type a key must have; ElectraError (with a suggestion) for an unknown section or key."""
    hints = {"model": MODEL_HINTS, "objective": OBJECTIVE_HINTS}.get(section)
    if hints is None:
        if section not in SECTIONS:
            known = ["model", "objective", *SECTIONS]
            raise ElectraError(f"unknown config section '[{section}]'{suggest(section, known)}; "
                               f"sections: {', '.join(known)}")
        hints = typing.get_type_hints(SECTIONS[section])
    if key not in hints:
        raise ElectraError(f"unknown config key '{section}.{key}'{suggest(key, hints)}")
    return hints[key]


def config_from_dict(raw: dict, where: str = "config") -> PretrainConfig:
    """A PretrainConfig from the TOML/JSON tables; strict about section names, keys and types."""
    if not isinstance(raw, dict):
        raise ElectraError(f"{where} must be a table of sections")
    raw = {k: v for k, v in raw.items() if k not in DERIVED_KEYS}
    kwargs = {}
    for section, values in raw.items():
        if section not in ("model", "objective", *SECTIONS):
            key_hint(section, "")  # raises: unknown section, with a suggestion
        if not isinstance(values, dict):
            raise ElectraError(f"{where}: [{section}] must be a table, got {values!r}")
        if section in SECTIONS:
            kwargs[section] = from_dict(SECTIONS[section], values, where=section)
        else:
            kwargs[section] = {k: coerce(v, key_hint(section, k), f"{section}.{k}") for k, v in values.items()}
    kwargs.setdefault("model", {"preset": "small"})
    kwargs["model"].setdefault("preset", "small")
    cfg = PretrainConfig(**kwargs)
    electra_config(cfg, vocab_size=None, pad_id=None, seq_len=None)  # fail now on a bad preset or value
    return cfg


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `--section.key=value` strings to the raw tables (a copy), each typed by its pretraining key's field."""
    return apply_run_overrides(raw, overrides, key_hint)


def load_pretrain_config(path, overrides: list[str] = ()) -> PretrainConfig:
    """Read a TOML run file (or a run's resolved config.json) and apply `--section.key=value` overrides."""
    raw = read_run_file(path)
    return config_from_dict(apply_overrides(raw, list(overrides)), where=str(path))


def electra_config(cfg: PretrainConfig, vocab_size: int | None, pad_id: int | None, seq_len: int | None):
    """The ElectraConfig for this run: preset + [model] + [objective], vocabulary and pad id from the data."""
    model = {k: v for k, v in cfg.model.items() if k not in ("init_from", "generator_init_from")}
    name = model.pop("preset", "small")
    for key, value in (("vocab_size", vocab_size), ("pad_token_id", pad_id)):
        if value is None:
            continue
        if key in model and model[key] != value:
            raise ElectraError(f"model.{key}={model[key]} but the prepared data has {value}; drop the key")
        model[key] = value
    ecfg = preset(name, **model, **cfg.objective)
    if seq_len is not None and seq_len > ecfg.discriminator.max_position_embeddings:
        raise ElectraError(f"the data's seq_len {seq_len} exceeds model.max_position_embeddings "
                           f"{ecfg.discriminator.max_position_embeddings}")
    if seq_len is not None and not ecfg.objective.max_predictions:  # official max_predictions_per_seq: from the
        ecfg.objective.max_predictions = ecfg.objective.predictions_per_seq(seq_len)  # data's length, not a batch's
    return ecfg


def resolved_config(cfg: PretrainConfig, ecfg, flops, **derived) -> dict:
    """RUN/config.json: the run file's tables, the ElectraConfig (its derived generator too) and every derived
    number (`derived` as given, plus the sizes and FLOPs of the flops.FlopReport)."""
    return {**cfg.to_dict(), "electra": {**ecfg.to_dict(), "generator": dataclasses.asdict(ecfg.generator)},
            "derived": {**derived, "tokens_per_step": flops.tokens_per_step, "disc_params": flops.disc_params,
                        "gen_params": flops.gen_params, "flops_per_token_paper": flops.paper_flops_per_token,
                        "flops_per_token_6n": flops.sixn_flops_per_token}}


def keys_help() -> str:
    """Every overridable key with its default: the sections' from the dataclasses (their comments are in this file),
    the model and objective keys with the small preset's values (electra/config.py)."""
    small = preset("small")
    fractions = {k: getattr(small, k) for k in typing.get_type_hints(Fractions)}
    model = {**dataclasses.asdict(small.discriminator), **fractions}
    listed = lambda values: textwrap.fill(", ".join(f"{k}={v!r}" for k, v in values.items()), 118,  # noqa: E731
                                          initial_indent="    ", subsequent_indent="    ")
    lines = ["keys (--section.key=value; defaults are the ELECTRA-Small recipe, paper Table 6):",
             "  model.preset=small (tiny|small|base|large); any model key changes the preset (small's values shown;",
             "    vocab_size and pad_token_id come from the data), e.g. --model.hidden_size=128:", listed(model),
             "  model.init_from=DIR: continue pretraining an HF ELECTRA or BERT-family folder, a run of ours or a Hub",
             "    id (sizes and vocabulary from it); model.generator_init_from=DIR: ElectraForMaskedLM/BertForMaskedLM",
             "  objective keys (the preset's values shown), e.g. --objective.mask_prob=0.25:",
             listed(small.objective.to_dict())]
    for name, cls in SECTIONS.items():
        lines += [f"  {name}:", listed(dataclasses.asdict(cls()))]
    lines.append(f"  train.threads: {THREADS_HELP}")
    return "\n".join(lines)
