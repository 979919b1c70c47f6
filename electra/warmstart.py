"""Continue pretraining from released weights: `model.init_from` and `model.generator_init_from`.

    electra prepare --input corpus/ --tokenizer google/electra-small-discriminator --out runs/data   # its vocabulary
    electra pretrain configs/small.toml --data.dir=runs/data --optim.lr=1e-4 \\
        --model.init_from=google/electra-small-discriminator --model.generator_init_from=google/electra-small-generator

init_from (the discriminator): an ElectraForPreTraining folder (encoder and RTD head), a BERT-family folder
(BertModel, BertForMaskedLM, a sentence-transformers folder: the encoder, with a new RTD head), one of our runs or
checkpoints (its discriminator, and its generator unless generator_init_from says otherwise), or a Hub id.
generator_init_from: an ElectraForMaskedLM or BertForMaskedLM folder (encoder and MLM head). The generator always
shares the discriminator's embeddings, so a generator folder's own embeddings are not used, and its embedding width
and vocabulary must be the discriminator's. Without a generator folder, a new generator of
`generator_hidden_fraction` of the discriminator's width (same depth) is built around the pretrained embeddings.

The sizes come from the folders (a preset's are overridden; a conflicting explicit model.* size is an error), and
the vocabulary is the folder's: data prepared with another one is refused, by vocabulary hash (tokenizer.vocab_hash,
recorded by `electra prepare` in meta.json) or, for data without one, by size. The optimizer and the schedule start
fresh (a new warm-up and decay); `--resume` continues a continued run like any other. Weights are read through
safetensors or torch.load(weights_only=True) only (hf.read_weights).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from electra.config import ElectraConfig, ModelConfig
from electra.errors import ElectraError

# What a folder decides (the shape of its tensors and how they compute); dropout and init stay overridable.
SHAPE_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps")
FRACTION_KEYS = ("generator_hidden_fraction", "generator_layers_fraction")
INIT_KEYS = ("init_from", "generator_init_from")


@dataclass
class Source:
    """One pretrained folder: what the user named, the HF folder it resolved to, its config and vocabulary hash."""

    given: str
    folder: Path
    cfg: ModelConfig
    vocab: str | None  # tokenizer.vocab_hash of the folder's tokenizer; None when it has no tokenizer files


@dataclass
class WarmStart:
    disc: Source
    gen: Source | None  # None: a new generator around the pretrained embeddings


def folder_vocab(folder: Path) -> str | None:
    """The vocabulary hash of a model folder's tokenizer (None without tokenizer files)."""
    from electra.tokenizer import load_tokenizer, vocab_hash

    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        return None
    return vocab_hash(load_tokenizer(folder))


def read_source(given: str, which: str) -> Source:
    """A folder, run, checkpoint or Hub id -> its HF folder (ours exported once: checkpoint.resolve_model_dir)."""
    from electra.checkpoint import resolve_model_dir
    from electra.hf import model_config_from_hf, read_config

    folder = resolve_model_dir(given, which)
    cfg = model_config_from_hf(read_config(folder), where=str(folder / "config.json"))
    return Source(given, folder, cfg, folder_vocab(folder))


def check_data_vocab(expected: str | None, what: str, meta: dict, data_dir, hint: str = "") -> None:
    """One line naming both sides when the data's recorded vocabulary hash is not `expected` (either unknown: pass)."""
    recorded = meta.get("tokenizer_vocab")
    if expected and recorded and expected != recorded:
        raise ElectraError(f"data {data_dir} was prepared with vocabulary {recorded}, but {what} has vocabulary "
                           f"{expected}{hint}")


def plan(model: dict, meta: dict, data_dir, say: Callable[..., None]) -> WarmStart | None:
    """The pretrained folders [model] names, checked against each other and against the prepared data."""
    from electra.checkpoint import is_ours

    init, gen_init = model.get("init_from", ""), model.get("generator_init_from", "")
    if not init:
        if gen_init:
            raise ElectraError("model.generator_init_from needs model.init_from: the generator shares the "
                               "discriminator's embeddings")
        return None
    disc = read_source(init, "discriminator")
    if not gen_init and Path(init).exists() and is_ours(init) and (disc.folder.parent / "generator").is_dir():
        gen_init = init  # one of our runs: continue its generator too
    gen = read_source(gen_init, "generator") if gen_init else None
    hint = f"; prepare it with `electra prepare --tokenizer {init} ...`"
    check_data_vocab(disc.vocab, f"model.init_from {init}", meta, data_dir, hint)
    if meta["vocab_size"] > disc.cfg.vocab_size or (meta["vocab_size"] != disc.cfg.vocab_size and not (
            disc.vocab and meta.get("tokenizer_vocab"))):
        raise ElectraError(f"data {data_dir} has a {meta['vocab_size']:,}-token vocabulary, model.init_from {init} "
                           f"a {disc.cfg.vocab_size:,}-token one{hint}")
    if gen is not None:
        d, g = disc.cfg, gen.cfg
        mismatch = [f"{k} {getattr(g, k)} vs {getattr(d, k)}" for k in
                    ("embedding_size", "vocab_size", "max_position_embeddings", "type_vocab_size")
                    if getattr(g, k) != getattr(d, k)]
        if disc.vocab and gen.vocab and disc.vocab != gen.vocab:
            mismatch.append(f"vocabulary {gen.vocab} vs {disc.vocab}")
        if mismatch:
            raise ElectraError(f"model.generator_init_from {gen_init} cannot share the embeddings of model.init_from "
                               f"{init}: {', '.join(mismatch)}")
    return WarmStart(disc, gen)


def model_table(ws: WarmStart, model: dict) -> dict:
    """The [model] table with the folders' sizes in place of the preset's (and the generator's as fractions)."""
    d, given = ws.disc.cfg, ws.disc.given
    table = {k: v for k, v in model.items() if k not in INIT_KEYS}
    sizes = {k: getattr(d, k) for k in SHAPE_KEYS}
    if ws.gen is not None:
        g = ws.gen.cfg
        sizes.update(generator_hidden_fraction=g.hidden_size / d.hidden_size,
                     generator_layers_fraction=g.num_layers / d.num_layers)
    for key, value in sizes.items():
        if key in table and table[key] != value:
            fraction = key in FRACTION_KEYS
            source, shown = (ws.gen.given, f"{value:g}") if fraction else (given, value)
            raise ElectraError(f"model.{key}={table[key]} conflicts with {source} ({shown}): the sizes come from the "
                               f"folder; drop the key")
    for key in ("hidden_dropout", "attention_dropout", "initializer_range"):
        table.setdefault(key, getattr(d, key))
    return {**table, **sizes}


def check_generator(ws: WarmStart, ecfg: ElectraConfig) -> None:
    """The generator ElectraConfig derives from the fractions must be the generator folder's shape."""
    if ws.gen is None:
        return
    keys = ("hidden_size", "num_heads", "intermediate_size", "num_layers")
    built, folder = [getattr(ecfg.generator, k) for k in keys], [getattr(ws.gen.cfg, k) for k in keys]
    if built != folder:
        raise ElectraError(f"model.generator_init_from {ws.gen.given} (hidden, heads, FFN, layers = {folder}) is not "
                           f"a fraction of the discriminator's shape (that fraction gives {built})")


def describe(ws: WarmStart, ecfg: ElectraConfig, preset: str) -> str:
    """The start-up line: where the sizes came from."""
    d, g = ecfg.discriminator, ecfg.generator
    gen = f"from {ws.gen.given}" if ws.gen else f"new, {ecfg.generator_hidden_fraction:g} of the width"
    return (f"model sizes from {ws.disc.given} (preset '{preset}' sizes overridden): {d.num_layers} layers, hidden "
            f"{d.hidden_size}, {d.num_heads} heads, FFN {d.intermediate_size}, embedding {d.embedding_size}, vocab "
            f"{d.vocab_size:,}; generator {gen}: hidden {g.hidden_size}, {g.num_layers} layers")


def _load_part(src: Source, encoder: torch.nn.Module, kind: str, head: torch.nn.Module, shared: bool) -> str:
    """Load one folder's encoder (without the embeddings when `shared`) and head (if it has one) into the modules."""
    from electra.hf import read_pretrained

    _, state, head_state = read_pretrained(src.folder, kind)
    own = encoder.state_dict()
    note = ""
    if shared:
        differ = any(k.startswith("embeddings.") and not torch.equal(v.to(own[k].dtype), own[k])
                     for k, v in state.items())
        note = "; its own embeddings differ and are not used (shared with the discriminator)" if differ else ""
        state = {k: v for k, v in state.items() if not k.startswith("embeddings.")}
        own = {k: v for k, v in own.items() if not k.startswith("embeddings.")}
    for module, tensors, what, keys in ((encoder, state, "encoder", list(own)),
                                        (head, head_state, f"{kind} head", list(head.state_dict()))):
        if module is head and not tensors:
            note = f"; new {kind} head{note}"
            continue
        missing = [k for k in keys if k not in tensors]
        if missing:
            raise ElectraError(f"{src.given}: its {what} lacks {len(missing)} tensors, e.g. '{missing[0]}'")
        shapes = module.state_dict()
        bad = next((k for k in keys if tensors[k].shape != shapes[k].shape), None)
        if bad:
            raise ElectraError(f"{src.given}: '{bad}' has shape {tuple(tensors[bad].shape)}, the model needs "
                               f"{tuple(shapes[bad].shape)}")
        module.load_state_dict({k: tensors[k] for k in keys}, strict=False)
    where = src.given if Path(src.given) == src.folder else f"{src.given} ({src.folder})"
    return f"{where}: encoder{'' if note.startswith('; new') else ' and head'} loaded{note}"


def load(objective: torch.nn.Module, ws: WarmStart | None, say: Callable[..., None]) -> torch.nn.Module:
    """Copy the folders' weights into a freshly built objective (what they lack keeps its fresh initialisation);
    returns it. Nothing to do without model.init_from (ws None)."""
    if ws is None:
        return objective
    parts = {name: (encoder, kind, head) for name, encoder, kind, head in objective.export_parts()}
    disc = parts.get("discriminator") or parts.get("mlm")
    say(f"discriminator from {_load_part(ws.disc, *disc, shared=False)}")
    if ws.gen is not None and "generator" in parts:
        say(f"generator from {_load_part(ws.gen, *parts['generator'], shared=True)}")
    return objective


def electra_config(cfg, meta: dict, say: Callable[..., None]) -> tuple[ElectraConfig, WarmStart | None]:
    """The run's ElectraConfig and its warm start: with model.init_from, the folders' sizes and the data's pad id;
    without, pretrain_config.electra_config (preset + [model] + [objective], vocabulary from the data) and None."""
    from electra.pretrain_config import electra_config as from_run_file

    ws = plan(cfg.model, meta, cfg.data.dir, say)
    if ws is None:
        return from_run_file(cfg, meta["vocab_size"], int(meta["pad_id"]), meta["seq_len"]), None
    ecfg = from_run_file(dataclasses.replace(cfg, model=model_table(ws, cfg.model)), None, int(meta["pad_id"]),
                         meta["seq_len"])
    check_generator(ws, ecfg)
    say(describe(ws, ecfg, cfg.model.get("preset", "small")))
    return ecfg, ws
