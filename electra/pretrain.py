"""ELECTRA pretraining: the run configuration (TOML -> dataclasses) and one linear training loop.

    electra pretrain configs/debug.toml --data.dir=runs/data --train.steps=200       # CPU, seconds
    electra pretrain configs/small.toml --resume                                       # continue the newest checkpoint
    torchrun --standalone --nproc_per_node 8 -m electra pretrain configs/base.toml     # 8 GPUs (README for 2 nodes)

    from electra.pretrain import load_pretrain_config, pretrain
    result = pretrain(load_pretrain_config("configs/debug.toml", ["--data.dir=runs/data"]))   # final metrics, run dir

A run file has the sections [model] (preset + ModelConfig overrides), [objective] (ObjectiveConfig overrides),
[data], [optim], [train] and [run]; every key is checked against the dataclasses below (an unknown key or a wrong
type is one error naming it). `--section.key=value` on the command line overrides a key, typed by its field.

The loop (google-research/electra `run_pretraining.py` recipe): AdamW eps 1e-6, weight decay 0.01 except LayerNorm
and biases (or the official no-bias-correction update, optim.name = "adamw-official"), linear warm-up overlapped
with linear decay, clipping at 1.0, gradient accumulation, bf16 autocast (fp16 with a grad scaler), optional
torch.compile, DDP under torchrun. Masking, sampling and dropout draw from seeds derived from (seed, step, shard),
where shard = micro-step * world_size + rank names the slice of the global batch: a run resumes bit for bit and a
2-process run sees the same masks as 1 process with 2 accumulation steps. Metrics stay on the device and are read
once per log interval; the only per-step host read is the finite-loss check (a NaN/Inf step is skipped).

Run folder: config.json (resolved), metrics.jsonl, tb/, tokenizer/, checkpoints/step_NNNNNNN/, hf/discriminator +
hf/generator, curves.png + report.html.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from electra.config import ModelConfig, ObjectiveConfig, _Fractions, _suggest, coerce, from_dict
from electra.errors import ElectraError
from electra.readers import read_utf8

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
    name: str = "adamw"  # adamw | adamw-official (no bias correction, as the TF code) | lamb
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
    threads: int = 0  # CPU threads for torch (0 = torch's default; torchrun sets 1 per process)


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
    objective: dict = field(default_factory=dict)  # ObjectiveConfig overrides of the preset's (e.g. mask_prob)
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
MODEL_HINTS = {"preset": str, **typing.get_type_hints(ModelConfig), **typing.get_type_hints(_Fractions)}
OBJECTIVE_HINTS = typing.get_type_hints(ObjectiveConfig)
DERIVED_KEYS = ("electra", "derived")  # written into RUN/config.json for readers; ignored when read back


def _key_hint(section: str, key: str):
    """The type a key must have; ElectraError (with a suggestion) for an unknown section or key."""
    hints = {"model": MODEL_HINTS, "objective": OBJECTIVE_HINTS}.get(section)
    if hints is None:
        if section not in SECTIONS:
            known = ["model", "objective", *SECTIONS]
            raise ElectraError(f"unknown config section '[{section}]'{_suggest(section, known)}; "
                               f"sections: {', '.join(known)}")
        hints = typing.get_type_hints(SECTIONS[section])
    if key not in hints:
        raise ElectraError(f"unknown config key '{section}.{key}'{_suggest(key, hints)}")
    return hints[key]


def config_from_dict(raw: dict, where: str = "config") -> PretrainConfig:
    """A PretrainConfig from the TOML/JSON tables; strict about section names, keys and types."""
    if not isinstance(raw, dict):
        raise ElectraError(f"{where} must be a table of sections")
    raw = {k: v for k, v in raw.items() if k not in DERIVED_KEYS}
    kwargs = {}
    for section, values in raw.items():
        if section not in ("model", "objective", *SECTIONS):
            _key_hint(section, "")  # raises: unknown section, with a suggestion
        if not isinstance(values, dict):
            raise ElectraError(f"{where}: [{section}] must be a table, got {values!r}")
        if section in SECTIONS:
            kwargs[section] = from_dict(SECTIONS[section], values, where=section)
        else:
            kwargs[section] = {k: coerce(v, _key_hint(section, k), f"{section}.{k}") for k, v in values.items()}
    kwargs.setdefault("model", {"preset": "small"})
    kwargs["model"].setdefault("preset", "small")
    cfg = PretrainConfig(**kwargs)
    electra_config(cfg, vocab_size=None, pad_id=None, seq_len=None)  # fail now on a bad preset or value
    return cfg


def _parse_value(raw: str, hint, path: str):
    """A command-line string typed by the field's hint (str stays str; bools accept true/false/1/0/yes/no)."""
    if typing.get_origin(hint) is typing.Union:
        hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
    if hint is str:
        return raw
    if hint is bool:
        table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if raw.lower() in table:
            return table[raw.lower()]
        raise ElectraError(f"--{path}={raw}: expected true or false")
    try:
        return int(raw) if hint is int else float(raw) if hint is float else raw
    except ValueError:
        raise ElectraError(f"--{path}={raw}: expected {hint.__name__}") from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `--section.key=value` strings to the raw tables (a copy)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        body = item[2:] if item.startswith("--") else item
        if "=" not in body or "." not in body.split("=", 1)[0]:
            raise ElectraError(f"override '{item}' must look like --section.key=value (e.g. --train.steps=1000)")
        path, value = body.split("=", 1)
        section, key = path.split(".", 1)
        raw.setdefault(section, {})[key] = _parse_value(value, _key_hint(section, key), path)
    return raw


def load_pretrain_config(path, overrides: list[str] = ()) -> PretrainConfig:
    """Read a TOML run file (or a run's resolved config.json) and apply `--section.key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"config file {path} not found (the shipped ones are in configs/)")
    text = read_utf8(path)
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ElectraError(f"{path}: not valid JSON ({e})") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            import tomli as tomllib
        try:
            raw = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
            raise ElectraError(f"{path}: not valid TOML ({e})") from None
    if not isinstance(raw, dict):
        raise ElectraError(f"{path} must hold a table of sections ([model], [train], ...), not {type(raw).__name__}")
    return config_from_dict(apply_overrides(raw, list(overrides)), where=str(path))


def electra_config(cfg: PretrainConfig, vocab_size: int | None, pad_id: int | None, seq_len: int | None):
    """The ElectraConfig for this run: preset + [model] + [objective], vocabulary and pad id from the data."""
    from electra.config import preset

    model = dict(cfg.model)
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
    return ecfg


# ---------------------------------------------------------------------------------------------------------------
# Helpers of the loop: seeds, precision, metrics, evaluation, diagnostics


TRAIN_KEYS = ("loss", "mlm_loss", "rtd_loss", "mlm_acc", "rtd_acc", "rtd_precision", "rtd_recall", "replaced_frac")
# Dense bf16/fp16 tensor-core peak FLOP/s per GPU (NVIDIA datasheets); substring match, first hit wins.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
              "4090": 165e12, "V100": 125e12, "T4": 65e12}


def derived_seed(seed: int, step: int, shard: int, stream: int) -> int:
    """A 63-bit seed for one (step, shard of the global batch, stream); independent of world size and resumes."""
    digest = hashlib.blake2b(f"{seed}:{step}:{shard}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def resolve_precision(name: str, device) -> str:
    import torch

    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ElectraError("train.precision='fp16' needs CUDA; on CPU use fp32 or bf16")
    return name


def peak_flops(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def evaluate(objective, data_dir: str, batch_size: int, max_batches: int, device, autocast, seed: int) -> dict:
    """Held-out metrics: MLM accuracy, RTD accuracy/precision/recall and AUC over the valid split (rank 0).
    The masks come from a fixed seed, so evaluations at different steps see the same corruption."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from electra.data import PretrainLoader

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


def _rng_state() -> dict:
    import numpy as np
    import torch

    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype("uint32"), *rest))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _read_metrics(path: Path, up_to_step: int) -> list[str]:
    """The lines of metrics.jsonl at or before `up_to_step` (a line cut by a kill is dropped)."""
    keep = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= up_to_step:
                    keep.append(line)
            except ValueError:
                continue
    return keep


def _prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    looks_like_run = (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").is_dir()
    if run_dir.exists() and any(run_dir.iterdir()) and not (resume or overwrite):
        if looks_like_run:
            raise ElectraError(f"run folder {run_dir} already holds a run; pass --resume to continue it or "
                               f"--overwrite to start over")
        raise ElectraError(f"run folder {run_dir} exists and is not empty; choose another run.out")
    if overwrite and not resume and run_dir.exists():
        if any(run_dir.iterdir()) and not looks_like_run and not (run_dir / "config.json").is_file():
            raise ElectraError(f"refusing to overwrite {run_dir}: it is not a pretraining run folder")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _table_row(rec: dict, header: bool) -> str:
    cols = [("step", "{:>7d}", "step"), ("loss", "{:>8.4f}", "loss"), ("mlm_loss", "{:>8.4f}", "gen loss"),
            ("rtd_loss", "{:>8.4f}", "disc loss"), ("mlm_acc", "{:>7.1%}", "gen acc"), ("rtd_acc", "{:>8.1%}", "disc acc"),
            ("rtd_recall", "{:>7.1%}", "recall"), ("lr", "{:>9.2e}", "lr"), ("tokens_per_s", "{:>9.0f}", "tok/s")]
    cols = [c for c in cols if c[0] in rec]
    row = "  ".join(fmt.format(rec[k]) for k, fmt, _ in cols)
    if not header:
        return row
    head = "  ".join(f"{title:>{len(fmt.format(rec[k]))}}" for k, fmt, title in cols)
    return head + "\n" + row


# ---------------------------------------------------------------------------------------------------------------
# The loop


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Pretrain as `cfg` says; returns the final train/eval metrics, the run folder and the exported folders.
    Under torchrun every process calls this; only rank 0 writes files and prints."""
    import torch
    from tqdm import tqdm

    from electra import checkpoint, dist
    from electra.data import PretrainLoader
    from electra.flops import report as flop_report
    from electra.objective import build_objective
    from electra.optim import build_optimizer, clip_grad_norm, linear_schedule, param_groups, set_lr

    t, o = cfg.train, cfg.optim
    if not cfg.data.dir:
        raise ElectraError("data.dir is not set: point it at a folder written by `electra prepare`")
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts
    env = dist.init(t.device)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    try:
        device, main = env.device, env.is_main
        say = (lambda *a: tqdm.write(" ".join(str(x) for x in a), file=sys.stderr)) if main else (lambda *a: None)
        world, accum = env.world_size, t.accumulation
        if cfg.data.batch_size % (world * accum):
            raise ElectraError(f"data.batch_size={cfg.data.batch_size} is not divisible by world size {world} x "
                               f"train.accumulation {accum}")
        micro = cfg.data.batch_size // (world * accum)
        run_dir = Path(cfg.run.out)
        precision = resolve_precision(t.precision, device)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
            torch.backends.cudnn.benchmark = False
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731

        loader = PretrainLoader(cfg.data.dir, "train", batch_size=micro, rank=env.rank, world_size=world,
                                seed=t.seed, shuffle=True, drop_last=True, pad_to_multiple=cfg.data.pad_to_multiple,
                                fixed_length=cfg.data.fixed_length)
        meta = loader.meta
        seq_len = meta["seq_len"]
        special = {k: int(meta[f"{k}_id"]) for k in ("pad", "unk", "cls", "sep", "mask")}
        ecfg = electra_config(cfg, meta["vocab_size"], special["pad"], seq_len)
        if main:  # only now that the data and the settings are known to be usable
            _prepare_run_dir(run_dir, resume, overwrite)
        dist.barrier(env)

        torch.manual_seed(t.seed)  # the same initial weights on every rank
        objective = build_objective(ecfg, special).to(device)
        groups = param_groups(objective, lr=o.lr, weight_decay=o.weight_decay)
        optimizer = build_optimizer(groups, o.name, lr=o.lr, eps=o.eps, betas=(o.beta1, o.beta2))
        schedule = linear_schedule(o.warmup_steps, t.steps)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        flops = flop_report(ecfg, seq_len, cfg.data.batch_size)
        resolved = {**cfg.to_dict(), "electra": {**ecfg.to_dict(), "generator": dataclasses.asdict(ecfg.generator)},
                    "derived": {"world_size": world, "micro_batch_per_rank": micro, "accumulation": accum,
                                "seq_len": seq_len, "tokens_per_step": flops.tokens_per_step, "precision": precision,
                                "device": str(device), "disc_params": flops.disc_params,
                                "gen_params": flops.gen_params, "flops_per_token_paper": flops.paper_flops_per_token,
                                "flops_per_token_6n": flops.sixn_flops_per_token}}

        start, nonfinite_total = 0, 0
        if resume:
            ckpt = checkpoint.latest_valid(run_dir, report=say)
            if ckpt is None:
                say(f"no valid checkpoint in {run_dir}: starting from step 0")
            else:
                ck_meta = checkpoint.verify(ckpt)
                if ck_meta["model"] != ecfg.to_dict():
                    raise ElectraError(f"{ckpt} was trained with another model config; resume with the run's own "
                                       f"settings ({run_dir / 'config.json'})")
                saved_optim = ck_meta.get("config", {}).get("optim", {}).get("name", o.name)
                if saved_optim != o.name:
                    raise ElectraError(f"{ckpt} was trained with optim.name='{saved_optim}', not '{o.name}': its "
                                       f"optimizer state does not fit; resume with --optim.name={saved_optim}")
                checkpoint.load_weights(objective, ckpt)
                state = checkpoint.load_state(ckpt, optimizer)
                scaler.load_state_dict(state["scaler"])
                _set_rng_state(state["rng"])
                loader.load_state_dict(ck_meta["loader"])
                start, nonfinite_total = int(state["step"]), int(state.get("nonfinite_total", 0))
                say(f"resumed from {ckpt} at step {start:,}")

        metrics_path = run_dir / "metrics.jsonl"
        tb = None
        if main:
            (run_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
            if not (run_dir / "tokenizer").is_dir() and (Path(cfg.data.dir) / "tokenizer").is_dir():
                shutil.copytree(Path(cfg.data.dir) / "tokenizer", run_dir / "tokenizer")
            metrics_path.write_text("".join(line + "\n" for line in _read_metrics(metrics_path, start)))
            if cfg.run.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    tb = SummaryWriter(str(run_dir / "tb"), purge_step=start or None)
                except ImportError:
                    say("tensorboard is not installed: no RUN/tb (pip install tensorboard)")
            for line in flops.lines(t.steps):
                say(line)
            say(f"accumulation: {accum} micro-step(s) of {micro} sequences per rank x {world} rank(s) = "
                f"{cfg.data.batch_size} sequences per step; device {device}, precision {precision}"
                f"{', compiled' if t.compile else ''}; {len(loader.dataset):,} train examples of <= {seq_len} tokens")
        metrics_file = open(metrics_path, "a", encoding="utf-8") if main else None

        ddp = dist.wrap(objective, env)
        model = torch.compile(ddp) if t.compile else ddp
        peak = peak_flops(device)
        diagnose_after = t.diagnose_after if t.diagnose_after >= 0 else \
            max(2 * o.warmup_steps, min(t.steps // 5, 20_000))
        shown: set[str] = set()
        streak: dict[str, int] = {}  # consecutive logs showing a problem; reported at 2, once per run
        diagnoses: list[dict] = []
        last_train, last_eval, ckpt_path = {}, {}, None
        mask_gen = torch.Generator(device=device)
        batches = iter(loader)
        keys: list[str] = []
        sums, logged, nonfinite_run, tokens = None, 0, 0, 0
        clock, started = time.perf_counter(), time.perf_counter()
        bar = tqdm(total=t.steps, initial=start, desc="pretrain", unit="step", file=sys.stderr, dynamic_ncols=True,
                   disable=not (main and cfg.run.progress))

        def write(record: dict) -> None:
            if not main:
                return
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            if tb is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("step", "kind") and v is not None:
                        tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])

        def save(step_done: int) -> Path | None:
            state = {"step": step_done, "rng": _rng_state(), "scaler": scaler.state_dict(),
                     "nonfinite_total": nonfinite_total}
            path = None
            if main:
                ck_meta = {"model": ecfg.to_dict(), "special_ids": special, "loader": loader.state_dict(),
                           "seq_len": seq_len, "config": cfg.to_dict(), "train": last_train, "eval": last_eval}
                path = checkpoint.save_checkpoint(run_dir, step_done, objective, optimizer, state, ck_meta,
                                                  keep=t.keep_checkpoints)
            dist.barrier(env)
            return path

        for step in range(start, t.steps):
            lr = set_lr(optimizer, o.lr, schedule(step))
            step_sums = None
            for m in range(accum):
                batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
                tokens += batch["input_ids"].numel()
                shard = m * world + env.rank  # which slice of the global batch this is, whatever the layout
                mask_gen.manual_seed(derived_seed(t.seed, step, shard, 0))
                torch.manual_seed(derived_seed(t.seed, step, shard, 1))  # dropout
                sync = contextlib.nullcontext() if m == accum - 1 or world == 1 else ddp.no_sync()
                with sync:
                    with autocast():
                        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                                    generator=mask_gen)
                    scaler.scale(out["loss"] / accum).backward()
                if not keys:
                    keys = [k for k in TRAIN_KEYS if k in out]
                values = torch.stack([out[k].detach().float() for k in keys]) / accum
                step_sums = values if step_sums is None else step_sums + values
            scaler.unscale_(optimizer)
            grad_norm = clip_grad_norm(objective.parameters(), o.clip_norm).float()
            bad = ~torch.isfinite(step_sums[0])
            if precision != "fp16":  # with fp16, overflowing gradients are the grad scaler's business
                bad = bad | ~torch.isfinite(grad_norm)
            bad = dist.all_reduce_max(bad.float(), env)
            if bad.item():  # the one per-step host read: skip the update on a NaN/Inf step
                optimizer.zero_grad(set_to_none=True)
                scaler.update()
                nonfinite_total, nonfinite_run = nonfinite_total + 1, nonfinite_run + 1
                say(f"warning: step {step + 1}: the loss or the gradients are NaN/Inf; update skipped "
                    f"({nonfinite_run} in a row, {nonfinite_total} in all)")
                if nonfinite_run >= t.max_nonfinite:
                    path = save(step + 1)
                    raise ElectraError(
                        f"the loss was NaN/Inf for {nonfinite_run} steps in a row (up to step {step + 1}); stopped "
                        f"with a checkpoint ({path or run_dir / 'checkpoints'}) of the last good weights. Try a "
                        f"lower optim.lr or a longer optim.warmup_steps, train.precision=bf16 or fp32 instead of "
                        f"fp16, and check the data; then --resume")
            else:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                nonfinite_run = 0
                row = torch.cat([step_sums, grad_norm.reshape(1)])
                sums = row if sums is None else sums + row
                logged += 1
            bar.update(1)
            done = step + 1

            if (done % t.log_every == 0 or done == t.steps) and logged:
                values = dist.all_reduce_mean(sums / logged, env).tolist()  # host read once per log interval
                now = time.perf_counter()
                rec = {"kind": "train", "step": done, **dict(zip(keys + ["grad_norm"], values)), "lr": lr,
                       "tokens_per_s": tokens * world / max(now - clock, 1e-9), "nonfinite_steps": nonfinite_total,
                       "elapsed_s": now - started}
                if peak:
                    rec["mfu"] = flops.sixn_flops_per_token * rec["tokens_per_s"] / (peak * world)
                write(rec)
                if main:
                    bar.set_postfix_str(f"loss {rec['loss']:.3f} gen {rec['mlm_acc']:.1%} disc "
                                        f"{rec.get('rtd_acc', float('nan')):.1%} {rec['tokens_per_s']:,.0f} tok/s"
                                        + (f" MFU {rec['mfu']:.1%}" if peak else ""), refresh=False)
                    bar.write(_table_row(rec, header=not last_train), file=sys.stdout)
                last_train = rec
                sums, logged, tokens, clock = None, 0, 0, time.perf_counter()
                if done >= diagnose_after:
                    found = diagnose(rec, ecfg.objective.mask_prob)
                    streak = {kind: streak.get(kind, 0) + 1 for kind, _ in found}
                    for kind, text in found:
                        if kind not in shown and streak[kind] >= 2:
                            shown.add(kind)
                            diagnoses.append({"kind": "diagnosis", "step": done, "problem": kind, "message": text})
                            write(diagnoses[-1])
                            say(f"diagnosis at step {done}: {text}")

            if (t.eval_every and done % t.eval_every == 0) or done == t.steps:
                if main:
                    last_eval = {"kind": "eval", "step": done, **evaluate(
                        objective, cfg.data.dir, cfg.data.eval_batch_size, t.eval_batches, device, autocast,
                        t.seed + 1)}
                    write(last_eval)
                    auc = last_eval.get("eval_rtd_auc")
                    say(f"eval at step {done}: gen acc {last_eval.get('eval_mlm_acc', float('nan')):.1%}, disc acc "
                        f"{last_eval.get('eval_rtd_acc', float('nan')):.1%}, AUC "
                        f"{auc if auc is None else round(auc, 4)}")
                dist.barrier(env)
            if (t.checkpoint_every and done % t.checkpoint_every == 0) or done == t.steps:
                ckpt_path = save(done)
        bar.close()

        result = {"run_dir": str(run_dir), "step": t.steps, "train": last_train, "eval": last_eval,
                  "checkpoint": str(ckpt_path) if ckpt_path else None, "nonfinite_steps": nonfinite_total,
                  "diagnoses": diagnoses}
        if main:
            metrics_file.close()
            if tb is not None:
                tb.close()
            if cfg.run.export and ckpt_path is not None:
                loaded, ck_meta = checkpoint.load_objective(ckpt_path)
                written = checkpoint.export_hf(loaded, ck_meta, run_dir / "hf")
                result["hf"] = {k: str(v) for k, v in written.items()}
                say(f"Hugging Face folders: {', '.join(str(v) for v in written.values())}")
            if cfg.run.report:
                from electra.report import write_report

                result["report"] = str(write_report(run_dir))
                say(f"report: {result['report']}")
        return result
    finally:  # process-wide switches go back as they were (pretrain() may be one call in a longer program)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        dist.close(env)


# ---------------------------------------------------------------------------------------------------------------
# CLI: electra pretrain CONFIG.toml [--resume] [--overwrite] [--section.key=value ...]


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Pretrain an ELECTRA generator + discriminator from a TOML run file (configs/*.toml). "
                          "Any key can be overridden as --section.key=value, e.g. --train.steps=1000 "
                          "--data.dir=runs/data --run.out=runs/try. Under torchrun, every process runs this.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _keys_help()
    parser.add_argument("config", metavar="CONFIG", help="a TOML run file (or a run's config.json)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest valid checkpoint in run.out (default: refuse an existing run)")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing run.out and start over")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="--section.key=value",
                        help="overrides of the run file's keys, typed by the key's field")


def _keys_help() -> str:
    """Every overridable key with its default, from the dataclasses (their comments in electra/pretrain.py)."""
    lines = ["keys (--section.key=value; defaults are the ELECTRA-Small recipe, paper Table 6):",
             "  model.preset=small (tiny|small|base|large) and any ModelConfig field or generator_hidden_fraction,",
             "    generator_layers_fraction (electra/config.py), e.g. --model.hidden_size=128",
             "  objective.<ObjectiveConfig field>, e.g. --objective.mask_prob=0.25 (default: the preset's)"]
    for name, cls in SECTIONS.items():
        pairs = [f"{f.name}={getattr(cls(), f.name)!r}" for f in dataclasses.fields(cls)]
        lines.append(f"  {name}: " + ", ".join(pairs))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    overrides = []
    for item in args.overrides:  # argparse leaves flags given after the first override in the remainder
        if item in ("--resume", "--overwrite"):
            setattr(args, item[2:], True)
        else:
            overrides.append(item)
    cfg = load_pretrain_config(args.config, overrides)
    result = pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    from electra.dist import print0

    ev = result.get("eval") or {}
    print0(f"done: {result['step']:,} steps in {result['run_dir']}; eval gen acc "
           f"{ev.get('eval_mlm_acc', float('nan')):.1%}, disc acc {ev.get('eval_rtd_acc', float('nan')):.1%}")
    return 0
