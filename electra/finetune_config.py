"""The fine-tuning configuration: `FinetuneConfig` (the schema), its command-line flags, run files and defaults.

    cfg = config_from_args(args)           # defaults <- --config FILE.toml <- flags given on the command line
    cfg = config_from_dict({"task": "squad", "qa": {"doc_stride": 64}})   # or the flat form: "doc_stride": 64
    cfg = resolve(cfg, task, model_cfg)    # every None filled from the task's or the model's defaults

Options that only one kind of task reads sit in typed sections: `[qa]` (QAOptions: windows and answer decoding of
extractive QA) and `[columns]` (ColumnOptions: the columns of generic classification files). Their command-line
flags stay flat (`--doc-stride`, `--max-answer-len`, `--text-a`, ...), and so may their keys in a run file
(`doc_stride = 64` at the top level is read as `[qa] doc_stride = 64`). A run file may wrap everything in a
`[finetune]` table. electra_task.json (beside an exported model) keeps its flat keys: `task_metadata` writes them,
`config_from_metadata` reads them back.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field

from electra.config import LAYERWISE_LR_DECAY, from_dict
from electra.errors import ElectraError


def _at_least_one(obj, names) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise ElectraError(f"{name}={getattr(obj, name)} must be at least 1")


@dataclass
class QAOptions:
    """Extractive QA (squad, squad2, cmrc2018, ...): context windows and answer decoding. TOML [qa]."""

    doc_stride: int = 128  # token distance between window starts
    max_query_len: int = 64  # question tokens kept
    max_answer_len: int = 30  # longest answer span in tokens
    n_best: int = 20  # start / end candidates per window
    null_threshold: float = 0.0  # SQuAD v2: answer "" when null score - best span score > this

    def __post_init__(self):
        _at_least_one(self, ("doc_stride", "max_query_len", "max_answer_len", "n_best"))


@dataclass
class ColumnOptions:
    """Generic classification files (classify, rank, ...): which column / field holds what. TOML [columns]."""

    text_a: str | None = None  # None = text_a, text, sentence or sentence1 (or the task's own default)
    text_b: str | None = None  # None = text_b or sentence2
    label: str | None = None  # None = label


@dataclass
class FinetuneConfig:
    """One fine-tuning run. None = the task's or the model's default (resolved into OUT/config.json)."""

    task: str = ""
    model: str = ""
    data: str = ""
    out: str = ""
    tokenizer: str | None = None  # tokenizer folder or vocab.txt; None = the model folder's
    epochs: int | None = None  # None = the task's (3; 10 for RTE / STS-B; 2 for QA)
    # float, or a list of floats (each trained over every seed; the final-model dev median picks one).
    # None = by model width: 1e-3 (<= 128, tiny), 3e-4 (<= 256, Small), 1e-4 (<= 768, Base), 5e-5 (Large)
    lr: typing.Any = None
    batch_size: int = 32
    eval_batch_size: int = 64
    max_seq_len: int | None = None  # None = the task's (128; 384 for QA)
    seeds: int = 1
    seed: int = 0  # first seed; run k uses seed + k
    max_train_examples: int = 0  # 0 = all; else a fixed random subset (chosen with seed 0, same for every run seed)
    keep_all: bool = False  # also save every seed's model under OUT/seeds/SEED/model (for ensembles)
    augment: int = 0  # K generator-made variants per training example (electra/augment.py); 0 = none
    augment_model: str | None = None  # the generator for --augment; None = the generator of --model's run
    max_dev_examples: int = 0  # 0 = all; else the first N dev examples
    layer_decay: float | None = None  # None = 0.8, or 0.9 for 24+ layers (paper); 1.0 = no decay
    official_depth: bool = True  # decay depths as the official code: embeddings d^(L+2), layer i d^(L+1-i), head 1
    optim: str = "official"  # official: Adam without bias correction (official AdamWeightDecay); adamw: torch AdamW
    head: str = "official"  # sequence tasks: official (dropout + linear on [CLS]) or hf (dense + gelu + out_proj)
    target_scale: float | None = None  # regression targets / this for training (None = the task's: 5 for STS-B)
    batch_loss: str = "sum"  # sum: the loss summed over the batch's examples (official; the clip sees it); mean
    select: str = "final"  # the saved model: final (official protocol) or best-epoch (the best dev epoch's weights)
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    clip_norm: float = 1.0
    classifier_dropout: float | None = None  # None = the model's hidden dropout (0.1)
    double_unordered: bool | None = None  # None = the task's (on for MRPC / STS-B)
    dev_fraction: float | None = None  # hold out this fraction of train as dev; None = only when there is no dev file
    columns: ColumnOptions = field(default_factory=ColumnOptions)
    train_file: str | None = None  # explicit split files instead of the names inside --data
    dev_file: str | None = None
    test_file: str | None = None
    qa: QAOptions = field(default_factory=QAOptions)
    predict_test: bool = True  # write GLUE submission files when the data has test splits
    device: str = "auto"  # auto, cpu, cuda or cuda:N (electra.dist.pick_device)
    threads: int | None = None  # CPU threads for torch; None or 0 = auto (electra.threads)
    overwrite: bool = False
    progress: bool = True  # tqdm bars on stderr

    def __post_init__(self):
        _at_least_one(self, ("batch_size", "eval_batch_size", "seeds"))
        for name in ("epochs", "max_seq_len"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ElectraError(f"{name}={getattr(self, name)} must be at least 1")
        if self.max_seq_len is not None and self.max_seq_len < 8:
            raise ElectraError(f"max_seq_len={self.max_seq_len} is too short (at least 8)")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ElectraError(f"warmup_fraction={self.warmup_fraction} must be in [0, 1]")
        if self.dev_fraction is not None and not 0.0 <= self.dev_fraction < 1.0:
            raise ElectraError(f"dev_fraction={self.dev_fraction} must be in [0, 1)")
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise ElectraError(f"layer_decay={self.layer_decay} must be in (0, 1]")
        if self.target_scale is not None and not self.target_scale > 0:
            raise ElectraError(f"target_scale={self.target_scale} must be positive")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ElectraError(f"{name}={getattr(self, name)!r} is not one of: {', '.join(allowed)}")
        self.lr = learning_rates(self.lr)


CHOICES = {"optim": ("official", "adamw"), "batch_loss": ("sum", "mean"), "head": ("official", "hf"),
           "select": ("final", "best-epoch")}


def learning_rates(value):
    """None, one positive float, or a list of two or more distinct positive floats (from a list, a number or a
    comma-separated string such as "1e-4,3e-4,1e-3")."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        try:
            lr = float(item.strip() if isinstance(item, str) else item)
        except (TypeError, ValueError):
            lr = None
        if isinstance(item, bool) or lr is None or not lr > 0 or lr != lr:
            raise ElectraError(f"lr: {item!r} is not a positive number (give one learning rate or a list such as "
                               "1e-4,3e-4,1e-3)")
        if lr not in out:
            out.append(lr)
    if not out:
        raise ElectraError("lr: the list of learning rates is empty")
    return out[0] if len(out) == 1 else out


# section name -> its dataclass; key -> the section that owns it (keys are unique across sections and the top level)
SECTIONS: dict[str, type] = {"qa": QAOptions, "columns": ColumnOptions}
SECTION_OF: dict[str, str] = {f.name: name for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------------------------------------------------------
# Dicts (run files, study tables, electra_task.json) -> FinetuneConfig


def nest(values: dict, where: str = "") -> dict:
    """A copy of `values` with flat section keys (`doc_stride`) moved into their section (`qa`)."""
    if not isinstance(values, dict):
        raise ElectraError(f"{where or 'finetune'} must be a table of keys, got {type(values).__name__}")
    out = {k: dict(v) if k in SECTIONS and isinstance(v, dict) else v for k, v in values.items()}
    for key in [k for k in values if k in SECTION_OF]:
        section = SECTION_OF[key]
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            raise ElectraError(f"config key '{where + '.' if where else ''}{section}' must be a table, got {table!r}")
        if key in table:
            raise ElectraError(f"config key '{key}' is given twice: at the top level and in [{section}]")
        table[key] = out.pop(key)
    return out


def merge(base: dict, extra: dict) -> dict:
    """`extra` over `base` (both nested): section tables are merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        both_tables = key in SECTIONS and isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = {**out[key], **value} if both_tables else value
    return out


def config_from_dict(values: dict, where: str = "") -> FinetuneConfig:
    """A FinetuneConfig from nested or flat keys; unknown keys and wrong types are one-line errors."""
    return from_dict(FinetuneConfig, nest(values, where), where=where)


def updated(cfg: FinetuneConfig, values: dict) -> FinetuneConfig:
    """`cfg` with `values` (nested or flat keys) set, checked again."""
    return from_dict(FinetuneConfig, merge(dataclasses.asdict(cfg), nest(values)))


def flat_value(cfg: FinetuneConfig, key: str):
    """The value of a top-level or section key by its flat name (`doc_stride` -> cfg.qa.doc_stride)."""
    return getattr(getattr(cfg, SECTION_OF[key]), key) if key in SECTION_OF else getattr(cfg, key)


METADATA_KEYS = ("max_seq_len", "doc_stride", "max_query_len", "max_answer_len", "n_best", "null_threshold",
                 "dev_fraction")


def task_metadata(task, labels, cfg: FinetuneConfig) -> dict:
    """electra_task.json: what `electra.inference.load_finetuned` needs to rebuild the task around the model."""
    return {"task": task.name, "kind": task.kind, "labels": labels, "regression": task.regression,
            **{k: flat_value(cfg, k) for k in METADATA_KEYS}}


def config_from_metadata(meta: dict) -> FinetuneConfig:
    """The FinetuneConfig of electra_task.json's lengths and QA options (other keys there describe the task)."""
    return config_from_dict({k: v for k, v in meta.items() if k in METADATA_KEYS}, where="electra_task.json")


# ---------------------------------------------------------------------------------------------------------------
# Defaults that depend on the task and the model


def default_lr(hidden_size: int) -> float:
    """Paper Table 7: 3e-4 for Small (hidden 256), 1e-4 for Base (768), 5e-5 for Large (1024). Below Small (hidden
    <= 128: tiny and demo models) 1e-3, measured (docs/FIDELITY.md): at 3e-4 such models often stay at the majority
    class within a few epochs."""
    return 1e-3 if hidden_size <= 128 else 3e-4 if hidden_size <= 256 else 1e-4 if hidden_size <= 768 else 5e-5


# Regression targets divided by this for training (predictions multiplied back): the official code normalizes
# STS-B's 0-5 scores to 0-1 (classification_tasks.py, RegressionTask: (label - min) / max).
TARGET_SCALE = {"stsb": 5.0}


def resolve(cfg: FinetuneConfig, task, model_cfg) -> FinetuneConfig:
    """Fill every None with the task's or the model's default."""
    size = "large" if model_cfg.num_layers >= 24 else "base"
    return dataclasses.replace(
        cfg,
        epochs=cfg.epochs or task.epochs,
        lr=cfg.lr or default_lr(model_cfg.hidden_size),
        target_scale=cfg.target_scale or (TARGET_SCALE.get(task.name, 1.0) if task.regression else 1.0),
        max_seq_len=min(cfg.max_seq_len or task.max_seq_len, model_cfg.max_position_embeddings),
        layer_decay=cfg.layer_decay or LAYERWISE_LR_DECAY[size],
        double_unordered=task.double_unordered if cfg.double_unordered is None else cfg.double_unordered,
    )


# ---------------------------------------------------------------------------------------------------------------
# Command line: one flag per field (section fields too, by their own names), and the run file under them

HELP = {
    "task": "task name (electra finetune --help lists them)",
    "model": "HF ELECTRA / BERT-family folder, or a pretraining run or checkpoint folder of ours",
    "data": "folder with the task's files (e.g. ../shared/data/glue/SST-2)",
    "out": "output folder (metrics.json, predictions.jsonl, config.json, model/)",
    "tokenizer": "tokenizer folder or vocab.txt (default: the model folder's)",
    "epochs": "training epochs (default: the task's: 3; 10 for RTE and STS-B; 2 for QA)",
    "lr": "peak learning rate, or a comma-separated list (each trained over all seeds; the final-model dev median "
          "picks one) (default by width: 1e-3 tiny, 3e-4 Small, 1e-4 Base, 5e-5 Large)",
    "batch_size": "training batch size (default 32)",
    "eval_batch_size": "evaluation batch size (default 64)",
    "max_seq_len": "tokens per input, longer ones truncated and counted (default: 128; 384 for QA)",
    "seeds": "number of seeds; reports each, the median and the mean (default 1)",
    "seed": "first seed; run k uses seed + k (default 0)",
    "max_train_examples": "train on a fixed random subset of N examples (default 0 = all)",
    "keep_all": "also save every seed's model under OUT/seeds/SEED/model, for ensembles (electra predict / evaluate "
                "with several --model) (default off)",
    "augment": "K generator-made variants per training example: ~15%% of tokens masked and refilled by sampling from "
               "the generator, labels kept, seeded by --seed (default 0 = none)",
    "augment_model": "generator for --augment: a pretraining run of ours or an HF masked-LM folder with the model's "
                     "vocabulary (default: the generator of --model's run)",
    "max_dev_examples": "score the first N dev examples only (default 0 = all)",
    "layer_decay": "layer-wise LR decay factor (default 0.8; 0.9 for 24-layer models; 1 = off)",
    "official_depth": "layer-wise decay depths of the official code: head lr, top layer lr*d^2, embeddings "
                      "lr*d^(L+2); --no-official-depth: head lr, top layer lr*d, embeddings lr*d^(L+1) (default on)",
    "optim": "official: Adam without bias correction, as the official code; adamw: torch AdamW (default official)",
    "head": "sequence tasks: official (dropout + one linear layer on [CLS]) or hf (Hugging Face's dense + gelu + "
            "out_proj) (default official)",
    "target_scale": "regression targets are divided by this for training, predictions scaled back (default: 5 for "
                    "STS-B as the official code, else 1)",
    "batch_loss": "sum: the loss is summed over the examples of a batch before the gradient clip, as the official "
                  "code (run_finetuning.py); mean: averaged (default sum)",
    "select": "the saved model: final (the reported dev is always the final model's) or best-epoch (the weights of "
              "the best dev epoch) (default final)",
    "warmup_fraction": "fraction of steps with linear warm-up (default 0.1)",
    "weight_decay": "AdamW weight decay, not on LayerNorm and biases (default 0.01)",
    "adam_eps": "AdamW epsilon (default 1e-6)",
    "clip_norm": "global gradient-norm clipping, 0 = off (default 1.0)",
    "classifier_dropout": "dropout in the task head (default: the model's hidden dropout)",
    "double_unordered": "also train on (b, a) for each pair (default: on for MRPC and STS-B only)",
    "dev_fraction": "hold out this fraction of train as dev (default: only when the data has no dev file)",
    "text_a": "generic tasks: column / field with the text (default: text_a, text, sentence or sentence1)",
    "text_b": "generic tasks: column / field with the second text of a pair (default: text_b or sentence2)",
    "label": "generic tasks: column / field with the label (default: label)",
    "train_file": "train file instead of the task's name inside --data",
    "dev_file": "dev file instead of the task's name inside --data",
    "test_file": "test file instead of the task's name inside --data",
    "doc_stride": "QA: tokens between the starts of consecutive context windows (default 128)",
    "max_query_len": "QA: question tokens kept (default 64)",
    "max_answer_len": "QA: longest answer in tokens (default 30)",
    "n_best": "QA: start and end candidates considered per window (default 20)",
    "null_threshold": "SQuAD v2: predict no answer when null score - best span score exceeds this (default 0)",
    "predict_test": "write GLUE submission files from unlabeled test splits (default on)",
    "device": "auto, cpu, cuda or cuda:N (default auto)",
    "threads": "CPU threads for torch; 0 or unset = auto: the free cores (fewer when the machine is busy)",
    "overwrite": "replace --out if it exists",
    "progress": "progress bars on stderr (default on)",
}


def flag_fields() -> list[tuple[str, typing.Any]]:
    """(flat name, type hint) of every option, in FinetuneConfig's order, sections expanded in place."""
    out = []
    for f in dataclasses.fields(FinetuneConfig):
        cls = SECTIONS.get(f.name, FinetuneConfig)
        hints = typing.get_type_hints(cls)
        names = [g.name for g in dataclasses.fields(cls)] if f.name in SECTIONS else [f.name]
        out += [(name, hints[name]) for name in names]
    return out


def add_config_arguments(parser: argparse.ArgumentParser, fields=None, task_help: str | None = None) -> None:
    """One flag per option (default None: unset flags leave the run file's or the default value)."""
    for name, hint in flag_fields():
        if fields is not None and name not in fields:
            continue
        flag = "--" + name.replace("_", "-")
        help_ = task_help if name == "task" and task_help else HELP[name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif name in CHOICES:
            parser.add_argument(flag, choices=CHOICES[name], default=None, help=help_)
        else:
            parser.add_argument(flag, type=FLAG_TYPES.get(name, base), default=None,
                                metavar=name.upper().replace("_", "-"), help=help_)


def _lr_flag(text: str):
    try:
        return learning_rates(text)
    except ElectraError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


FLAG_TYPES = {"lr": _lr_flag}  # flags whose value is not one plain type


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """Defaults <- the run file (--config: TOML, or JSON) <- flags given on the command line."""
    from electra.runfile import read_run_file

    raw = {}
    if getattr(args, "config", None):
        raw = read_run_file(args.config, where_to_look="configs/finetune/")
        raw = raw["finetune"] if isinstance(raw.get("finetune"), dict) else raw
    names = {name for name, _ in flag_fields()}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return from_dict(FinetuneConfig, merge(nest(raw), nest(flags)))
