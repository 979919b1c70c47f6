"""Checkpoints: atomic save, verified load, resume, and turning a run or checkpoint into a Hugging Face folder.

    path = save_checkpoint(run_dir, step, objective, optimizer, state, meta, keep=3)   # RUN/checkpoints/step_NNNNNNN
    ckpt = latest_valid(run_dir)              # newest checkpoint whose checksums verify (older ones as fallback)
    objective, meta = load_objective(run_dir) # a run folder or one checkpoint folder -> the module, on CPU
    hf_dir = resolve_model_dir(path)          # HF folder or Hub id as is; our run/checkpoint -> RUN/hf/discriminator

A checkpoint folder holds model.safetensors (the raw objective module: shared tensors stored once), optimizer.pt,
state.pt (step, RNG states, grad scaler) and checkpoint.json (metadata and the sha256 of every other file), written
last. The folder is built under a temporary name, every file is fsynced, then one rename publishes it; a crash or a
full disk mid-write leaves the previous checkpoints as they were. Loading verifies the checksums; a truncated or
corrupted checkpoint is reported in one line and the previous valid one is used. Weights are read only through
safetensors and `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from electra.errors import ElectraError
from electra.files import usual_mode, write_json

FORMAT = 1
PREFIX = "step_"
FILES = ("model.safetensors", "optimizer.pt", "state.pt")
META = "checkpoint.json"


def step_dir_name(step: int) -> str:
    return f"{PREFIX}{step:07d}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------
# Saving


def save_checkpoint(run_dir, step: int, objective: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict, meta: dict, keep: int = 3) -> Path:
    """Write RUN/checkpoints/step_NNNNNNN atomically, point `latest` at it, keep the newest `keep` (0 = all).

    `objective` must be the raw module (not compiled, not DDP). `state` (tensors, numbers, strings) goes to state.pt;
    `meta` (JSON) to checkpoint.json with the checksums. A failed write raises ElectraError and changes nothing."""
    from safetensors.torch import save_model

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    for stale in [tmp, *root.glob(f".{PREFIX}*.tmp-*")]:  # left by a process killed mid-save (one writer per run)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.mkdir()
        save_model(objective, str(tmp / "model.safetensors"), metadata={"format": "pt", "step": str(step)})
        usual_mode(tmp / "model.safetensors")  # safetensors writes 0600; 0644 like the rest of the run
        torch.save(optimizer.state_dict() if optimizer is not None else {}, tmp / "optimizer.pt")
        torch.save(state, tmp / "state.pt")
        for name in FILES:
            _fsync(tmp / name)
        files = {name: {"sha256": sha256(tmp / name), "bytes": (tmp / name).stat().st_size} for name in FILES}
        write_json(tmp / META, {**meta, "format": FORMAT, "step": step, "files": files}, fsync=True, sort_keys=True)
        _fsync(tmp)
        if final.exists():  # the same step saved again (e.g. the final save right after a periodic one)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ElectraError(f"could not write checkpoint {final} ({e.strerror or e}); the previous checkpoints are "
                           f"intact: free disk space or change run.out, then resume with --resume") from None
    _point_latest(root, final.name)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _point_latest(root: Path, name: str) -> None:
    """RUN/checkpoints/latest -> step_NNNNNNN (a relative symlink, replaced atomically); best effort."""
    link = root / "latest"
    tmp = root / f".latest.tmp-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(name, tmp)
        os.replace(tmp, link)
    except OSError:  # file systems without symlinks: readers fall back to scanning step_* folders
        pass


# ---------------------------------------------------------------------------------------------------------------
# Finding and verifying


def list_checkpoints(run_dir) -> list[Path]:
    """Published checkpoint folders of a run, oldest first (temporary folders are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name.startswith(PREFIX)
             and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def verify(ckpt_dir) -> dict:
    """checkpoint.json of a checkpoint folder after checking every file's size and sha256; ElectraError if not."""
    ckpt_dir = Path(ckpt_dir)
    meta_path = ckpt_dir / META
    if not meta_path.is_file():
        raise ElectraError(f"checkpoint {ckpt_dir} is incomplete: no {META}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ElectraError(f"checkpoint {ckpt_dir}: {META} is not valid JSON (truncated?)") from None
    for name, want in meta.get("files", {}).items():
        path = ckpt_dir / name
        if not path.is_file():
            raise ElectraError(f"checkpoint {ckpt_dir} is incomplete: {name} is missing")
        if path.stat().st_size != want["bytes"]:
            raise ElectraError(f"checkpoint {ckpt_dir}: {name} has {path.stat().st_size} bytes, expected "
                               f"{want['bytes']} (truncated)")
        if sha256(path) != want["sha256"]:
            raise ElectraError(f"checkpoint {ckpt_dir}: {name} fails its sha256 check (corrupted)")
    if set(meta.get("files", {})) != set(FILES):
        raise ElectraError(f"checkpoint {ckpt_dir}: {META} does not list {', '.join(FILES)}")
    return meta


def latest_valid(run_dir, report=None) -> Path | None:
    """The newest checkpoint of a run that verifies; each bad one is reported in one line (to stderr, or `report`)."""
    report = report or (lambda line: print(line, file=sys.stderr, flush=True))
    for ckpt in reversed(list_checkpoints(run_dir)):
        try:
            verify(ckpt)
            return ckpt
        except ElectraError as e:
            report(f"warning: skipping {e}; trying the previous checkpoint")
    return None


def _checkpoint_of(path) -> Path:
    """A checkpoint folder from a checkpoint folder, RUN/checkpoints/latest, a run folder or RUN/checkpoints."""
    path = Path(path)
    if (path / META).is_file():
        return path.resolve()
    run = path.parent if path.name == "checkpoints" else path
    if path.name == "latest" and path.parent.name == "checkpoints":
        run = path.parent.parent
    if not (run / "checkpoints").is_dir():
        raise ElectraError(f"{path} is not a pretraining run or checkpoint folder (no checkpoints/ or {META})")
    skipped: list[str] = []
    ckpt = latest_valid(run, report=skipped.append)
    if ckpt is None:  # one line: the newest checkpoint's problem stands for all of them
        reason = skipped[0].removeprefix("warning: skipping ").removesuffix("; trying the previous checkpoint") \
            if skipped else "no step_* folder"
        raise ElectraError(f"{run} has no valid checkpoint ({len(skipped)} damaged; newest: {reason})")
    for line in skipped:
        print(line, file=sys.stderr, flush=True)
    return ckpt.resolve()


def is_ours(path) -> bool:
    """True for a run folder, RUN/checkpoints, RUN/checkpoints/latest or a checkpoint folder of ours."""
    path = Path(path)
    return (path / META).is_file() or (path / "checkpoints").is_dir() or path.name == "checkpoints" and path.is_dir()


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_weights(objective: torch.nn.Module, ckpt_dir) -> None:
    from safetensors.torch import load_model

    missing, unexpected = load_model(objective, str(Path(ckpt_dir) / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise ElectraError(f"checkpoint {ckpt_dir} does not fit the model in its {META}: "
                           f"missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}")


def load_state(ckpt_dir, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """state.pt (and the optimizer state into `optimizer`), with weights_only=True."""
    ckpt_dir = Path(ckpt_dir)
    if optimizer is not None:
        optimizer.load_state_dict(_torch_load(ckpt_dir / "optimizer.pt"))
    return _torch_load(ckpt_dir / "state.pt")


def _torch_load(path: Path):
    """torch.load with weights_only=True: tensors and plain containers only, never pickled code."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ElectraError(f"{path}: refused or unreadable with weights_only=True ({first})") from None


def load_objective(path) -> tuple[torch.nn.Module, dict]:
    """A run folder (its newest valid checkpoint) or a checkpoint folder -> (objective module in eval mode, meta).
    meta is checkpoint.json plus `checkpoint` (the folder) and `run_dir`."""
    from electra.config import electra_config_from_dict
    from electra.objectives import build_objective

    ckpt = _checkpoint_of(path)
    meta = verify(ckpt)
    if "model" not in meta or "special_ids" not in meta:
        raise ElectraError(f"checkpoint {ckpt}: {META} lacks the model config or special ids")
    cfg = electra_config_from_dict(meta["model"])
    objective = build_objective(cfg, meta["special_ids"])
    load_weights(objective, ckpt)
    objective.eval()
    return objective, {**meta, "checkpoint": str(ckpt), "run_dir": str(ckpt.parent.parent)}


def tokenizer_dir(meta: dict) -> Path | None:
    """The tokenizer folder a run recorded (RUN/tokenizer), if it still exists."""
    path = Path(meta["run_dir"]) / "tokenizer"
    return path if path.is_dir() else None


def export_hf(objective: torch.nn.Module, meta: dict, out_dir, overwrite: bool = True) -> dict[str, Path]:
    """Write the HF folders of a loaded objective (discriminator/ + generator/, or mlm/) with the run's tokenizer,
    and record which checkpoint they came from in OUT/source.json."""
    from electra.hf import export_pretraining

    out = Path(out_dir)
    written = export_pretraining(objective, out, tokenizer_dir=tokenizer_dir(meta), overwrite=overwrite)
    write_json(out / "source.json", {"checkpoint": Path(meta["checkpoint"]).name, "step": meta["step"],
                                     "tokenizer_vocab": meta.get("tokenizer_vocab")})
    return written


def resolve_model_dir(path, which: str = "discriminator") -> Path:
    """A model folder for fine-tuning and the usage commands. An HF folder is returned as is; a run folder or a
    checkpoint folder of ours is exported once to RUN/hf (the newest checkpoint) or RUN/hf/step_NNNNNNN (an older
    one) and that HF folder is returned. `which`: discriminator or generator (an MLM-only run has just `mlm`)."""
    from electra.hub import parse_hub_id, resolve_model

    if which not in ("discriminator", "generator"):
        raise ElectraError(f"which='{which}' must be discriminator or generator")
    if not Path(path).exists() and parse_hub_id(str(path)) is None:
        raise ElectraError(f"model folder not found: {path}")
    path = resolve_model(path)  # a Hub id -> its snapshot folder in the Hub cache
    if not is_ours(path):
        if not (path / "config.json").is_file():
            raise ElectraError(f"{path} is neither a Hugging Face model folder (config.json) nor a pretraining "
                               f"run or checkpoint folder")
        return path
    ckpt = _checkpoint_of(path)
    run = ckpt.parent.parent
    newest = latest_valid(run, report=lambda line: None)
    cache = run / "hf" if newest is not None and newest.resolve() == ckpt else run / "hf" / ckpt.name
    source = cache / "source.json"
    fresh = source.is_file() and json.loads(source.read_text()).get("checkpoint") == ckpt.name
    if not fresh:
        objective, meta = load_objective(ckpt)
        export_hf(objective, meta, cache)
    for name in (which, "mlm"):
        if (cache / name / "config.json").is_file():
            return cache / name
    raise ElectraError(f"{run} has no {which} (an MLM-only run has only 'mlm')")
