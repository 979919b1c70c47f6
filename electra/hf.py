"""Hugging Face interop: one key table between our parameter names and HF's, config.json, import and export.

    export_task_model(model, "out/disc", tokenizer_dir="data/tokenizer")   # -> ElectraFor* folder
    export_pretraining(electra, "out/", tokenizer_dir=...)                  # -> out/discriminator, out/generator
    model = load_task_model("google-electra-small-discriminator/", kind="sequence", num_labels=2)
    encoder = load_encoder("all-MiniLM-L6-v2/")                              # BERT-family folders too
    mc = load_task_model("hf/discriminator", kind="multiple-choice")           # fresh head -> ElectraForMultipleChoice

Folders are local only (no hub access here): `config.json` + `model.safetensors` (or sharded safetensors, or
`pytorch_model.bin` read with `torch.load(weights_only=True)`). Parity with `transformers` is tested to 1e-5.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.model import Encoder, TaskModel

# ---------------------------------------------------------------------------------------------------------------
# The key table. Left: ours (inside an Encoder / a TaskModel head). Right: HF's (inside ElectraModel / the head).
# A list on the right means our tensor is the concatenation (dim 0) of those HF tensors (fused QKV).

ENCODER_KEYS: list[tuple[str, str | list[str]]] = [
    ("embeddings.tok.weight", "embeddings.word_embeddings.weight"),
    ("embeddings.pos.weight", "embeddings.position_embeddings.weight"),
    ("embeddings.seg.weight", "embeddings.token_type_embeddings.weight"),
    ("embeddings.norm.weight", "embeddings.LayerNorm.weight"),
    ("embeddings.norm.bias", "embeddings.LayerNorm.bias"),
    ("project.weight", "embeddings_project.weight"),
    ("project.bias", "embeddings_project.bias"),
]
LAYER_KEYS: list[tuple[str, str | list[str]]] = [
    ("attn.qkv.{p}", ["attention.self.query.{p}", "attention.self.key.{p}", "attention.self.value.{p}"]),
    ("attn.out.{p}", "attention.output.dense.{p}"),
    ("attn_norm.{p}", "attention.output.LayerNorm.{p}"),
    ("ffn_in.{p}", "intermediate.dense.{p}"),
    ("ffn_out.{p}", "output.dense.{p}"),
    ("ffn_norm.{p}", "output.LayerNorm.{p}"),
]
HEAD_KEYS: dict[str, list[tuple[str, str]]] = {
    "pretraining": [("dense.{p}", "discriminator_predictions.dense.{p}"),
                    ("out.{p}", "discriminator_predictions.dense_prediction.{p}")],
    "masked-lm": [("dense.{p}", "generator_predictions.dense.{p}"),
                  ("norm.{p}", "generator_predictions.LayerNorm.{p}"),
                  ("bias", "generator_lm_head.bias")],
    "sequence": [("dense.{p}", "classifier.dense.{p}"), ("out.{p}", "classifier.out_proj.{p}")],
    "token": [("out.{p}", "classifier.{p}")],
    "span": [("out.{p}", "qa_outputs.{p}")],
    "multiple-choice": [("summary.{p}", "sequence_summary.summary.{p}"), ("out.{p}", "classifier.{p}")],
}
HF_CLASSES = {
    "pretraining": "ElectraForPreTraining",
    "masked-lm": "ElectraForMaskedLM",
    "sequence": "ElectraForSequenceClassification",
    "token": "ElectraForTokenClassification",
    "span": "ElectraForQuestionAnswering",
    "multiple-choice": "ElectraForMultipleChoice",
}
KIND_OF_CLASS = {v: k for k, v in HF_CLASSES.items()}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def expand(pairs, **fmt) -> list[tuple[str, object]]:
    """Rows with a `{p}` placeholder -> one row for `weight` and one for `bias`; other rows as they are."""
    out = []
    for ours, theirs in pairs:
        for p in ("weight", "bias"):
            o = ours.format(p=p, **fmt)
            t = [x.format(p=p, **fmt) for x in theirs] if isinstance(theirs, list) else theirs.format(p=p, **fmt)
            out.append((o, t))
            if "{p}" not in ours:
                break
    return out


def key_table(num_layers: int, kind: str | None = None, hf_prefix: str = "electra.") -> list[tuple[str, object]]:
    """Every (our key, HF key or [HF keys]) pair for an encoder of `num_layers` and optionally a head `kind`.
    Our keys are relative to a TaskModel (`encoder.`, `head.`)."""
    rows = [(f"encoder.{o}", f"{hf_prefix}{t}") for o, t in ENCODER_KEYS]
    for i in range(num_layers):
        for o, t in expand(LAYER_KEYS):
            t = [f"{hf_prefix}encoder.layer.{i}.{x}" for x in t] if isinstance(t, list) else \
                f"{hf_prefix}encoder.layer.{i}.{t}"
            rows.append((f"encoder.layers.{i}.{o}", t))
    if kind is not None:
        rows += [(f"head.{o}", t) for o, t in expand(HEAD_KEYS[kind])]
    return rows


def to_hf_state_dict(state: dict, num_layers: int, kind: str) -> dict:
    """Our TaskModel state dict -> HF state dict (keys of the HF class for `kind`)."""
    out = {}
    for ours, theirs in key_table(num_layers, kind):
        if ours not in state:
            continue  # e.g. no projection when embedding size == hidden size
        t = state[ours]
        if isinstance(theirs, list):
            for name, part in zip(theirs, t.chunk(len(theirs), dim=0)):
                out[name] = part.contiguous().clone()
        else:
            out[theirs] = t.contiguous().clone()
    return out


def from_hf_state_dict(hf: dict, num_layers: int, kind: str | None, hf_prefix: str) -> dict:
    """HF state dict -> our TaskModel state dict (only the keys present in `hf`)."""
    out = {}
    for ours, theirs in key_table(num_layers, kind, hf_prefix):
        names = theirs if isinstance(theirs, list) else [theirs]
        if all(n in hf for n in names):
            out[ours] = torch.cat([hf[n] for n in names], 0) if isinstance(theirs, list) else hf[theirs]
    return out


# ---------------------------------------------------------------------------------------------------------------
# config.json


def hf_config(cfg: ModelConfig, kind: str, labels: list[str] | None = None, regression: bool = False) -> dict:
    """The config.json `transformers` needs to build the HF class for `kind` with our weights."""
    d = {
        "architectures": [HF_CLASSES[kind]],
        "model_type": "electra",
        "vocab_size": cfg.vocab_size,
        "embedding_size": cfg.embedding_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": cfg.hidden_act,
        "hidden_dropout_prob": cfg.hidden_dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": cfg.initializer_range,
        "layer_norm_eps": cfg.layer_norm_eps,
        "pad_token_id": cfg.pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "summary_type": "first",
        "summary_use_proj": True,
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
    }
    if labels is not None:
        d["id2label"] = {str(i): str(name) for i, name in enumerate(labels)}
        d["label2id"] = {str(name): i for i, name in enumerate(labels)}
        d["num_labels"] = len(labels)
    if regression:
        d["problem_type"] = "regression"
        d["num_labels"] = 1
        d["id2label"], d["label2id"] = {"0": "LABEL_0"}, {"LABEL_0": 0}
    return d


def model_config_from_hf(d: dict, where: str = "config.json") -> ModelConfig:
    """ELECTRA or BERT-family config.json -> ModelConfig."""
    model_type = d.get("model_type", "")
    if model_type not in ("electra", "bert", ""):
        raise ElectraError(f"{where}: model_type '{model_type}' is not ELECTRA or BERT; only those layouts import")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ElectraError(f"{where}: position_embedding_type '{d['position_embedding_type']}' is not supported")
    try:
        hidden = int(d["hidden_size"])
        return ModelConfig(
            vocab_size=int(d["vocab_size"]),
            embedding_size=int(d.get("embedding_size", hidden)),
            hidden_size=hidden,
            num_layers=int(d["num_hidden_layers"]),
            num_heads=int(d["num_attention_heads"]),
            intermediate_size=int(d["intermediate_size"]),
            max_position_embeddings=int(d.get("max_position_embeddings", 512)),
            type_vocab_size=int(d.get("type_vocab_size", 2)),
            hidden_dropout=float(d.get("hidden_dropout_prob", 0.1)),
            attention_dropout=float(d.get("attention_probs_dropout_prob", 0.1)),
            layer_norm_eps=float(d.get("layer_norm_eps", 1e-12)),
            hidden_act=str(d.get("hidden_act", "gelu")),
            initializer_range=float(d.get("initializer_range", 0.02)),
            pad_token_id=int(d.get("pad_token_id") or 0),
        )
    except KeyError as e:
        raise ElectraError(f"{where}: missing key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise ElectraError(f"{where}: {e}") from None


# ---------------------------------------------------------------------------------------------------------------
# Reading and writing folders


def read_config(folder) -> dict:
    folder = Path(folder)
    path = folder / "config.json"
    if not folder.is_dir():
        raise ElectraError(f"model folder not found: {folder}")
    if not path.is_file():
        raise ElectraError(f"{folder} has no config.json: not a Hugging Face model folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ElectraError(f"{path}: not valid JSON ({e})") from None


def read_weights(folder) -> dict:
    """All tensors of a HF folder: model.safetensors, sharded safetensors, or pytorch_model.bin (weights only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        if (folder / "model.safetensors").is_file():
            return load_file(str(folder / "model.safetensors"))
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(load_file(str(folder / shard)))
            return state
        if (folder / "pytorch_model.bin").is_file():
            return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    except SafetensorError as e:
        raise ElectraError(f"{folder}: weights file is corrupt or truncated ({e})") from None
    except Exception as e:  # torch.load(weights_only=True) refuses pickled code with UnpicklingError
        if isinstance(e, ElectraError):
            raise
        raise ElectraError(f"{folder}: cannot read weights safely ({type(e).__name__}: {str(e).splitlines()[0]})") \
            from None
    raise ElectraError(f"{folder} has no model.safetensors or pytorch_model.bin")


def _normalize_legacy(state: dict) -> dict:
    """Old TF-converted BERT checkpoints name LayerNorm parameters gamma/beta."""
    return {re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k)): v
            for k, v in state.items()}


def _detect_prefix(state: dict) -> str:
    for prefix in ("electra.", "bert.", ""):
        if f"{prefix}embeddings.word_embeddings.weight" in state:
            return prefix
    raise ElectraError("weights have no embeddings.word_embeddings.weight: not an ELECTRA/BERT layout")


def copy_tokenizer(tokenizer_dir, out_dir) -> None:
    if tokenizer_dir is None:
        return
    src = Path(tokenizer_dir)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, Path(out_dir) / name)


def write_folder(out_dir, config: dict, tensors: dict, tokenizer_dir=None, extra: dict | None = None,
                  overwrite: bool = False) -> Path:
    """Write a HF folder atomically: everything goes to a temporary sibling, then one rename."""
    from safetensors.torch import save_file

    from electra.files import removed_on_failure, usual_mode

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ElectraError(f"{out} already exists; pass --overwrite to replace it")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with removed_on_failure(tmp):  # a full disk or Ctrl-C leaves no half-written folder
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        usual_mode(tmp / "model.safetensors")  # safetensors writes 0600
        copy_tokenizer(tokenizer_dir, tmp)
        for name, payload in (extra or {}).items():
            (tmp / name).write_text(json.dumps(payload, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out


def export_task_model(model: TaskModel, out_dir, tokenizer_dir=None, labels: list[str] | None = None,
                      extra: dict | None = None, overwrite: bool = False) -> Path:
    """A TaskModel -> the matching ElectraFor* folder (config.json, model.safetensors, tokenizer files).
    `extra` maps file names to JSON payloads stored beside (e.g. our task metadata)."""
    regression = model.kind == "sequence" and model.num_labels == 1
    if labels is None and model.kind in ("sequence", "token") and not regression:
        labels = [f"LABEL_{i}" for i in range(model.num_labels)]
    config = hf_config(model.cfg, model.kind, labels if model.kind in ("sequence", "token") else None, regression)
    if model.kind == "multiple-choice":  # HF's ElectraSequenceSummary takes its dropout from here
        config["summary_last_dropout"] = model.head.drop.p
    state = model.state_dict()
    if getattr(model, "head_style", "hf") == "official":  # dropout + linear, written exactly as dense + gelu + out
        state = {**{k: v for k, v in state.items() if not k.startswith("head.")},
                 **{f"head.{k}": v for k, v in model.head.hf_layout().items()}}
        config["electra_head"] = "official"
    tensors = to_hf_state_dict(state, model.cfg.num_layers, model.kind)
    return write_folder(out_dir, config, tensors, tokenizer_dir, extra, overwrite)


def export_pretraining(objective, out_dir, tokenizer_dir=None, overwrite: bool = False) -> dict[str, Path]:
    """A pretraining objective module -> one HF folder per part it declares in `export_parts()`:
    Electra: out/discriminator (ElectraForPreTraining) + out/generator (ElectraForMaskedLM); MaskedLM: out/mlm."""
    from electra.files import removed_on_failure

    out = Path(out_dir)
    written, created = {}, not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with removed_on_failure(out, when=created):  # a folder this call made is not left half-filled
        for name, encoder, kind, head in objective.export_parts():
            state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
            state.update({f"head.{k}": v for k, v in head.state_dict().items()})
            config = hf_config(encoder.cfg, kind)
            written[name] = write_folder(out / name, config, to_hf_state_dict(state, encoder.cfg.num_layers, kind),
                                          tokenizer_dir, overwrite=overwrite)
    return written


# BertForMaskedLM's head (cls.predictions.*) has ElectraForMaskedLM's shape: dense -> act -> LayerNorm -> tied decoder.
BERT_MLM_HEAD_KEYS = [("dense.{p}", "cls.predictions.transform.dense.{p}"),
                      ("norm.{p}", "cls.predictions.transform.LayerNorm.{p}"), ("bias", "cls.predictions.bias")]


def read_pretrained(folder, kind: str) -> tuple[ModelConfig, dict, dict]:
    """A local ELECTRA or BERT-family folder -> (its ModelConfig, our Encoder's state dict, our `kind` head's state
    dict, {} when the folder has no such head). kind: "pretraining" (ElectraForPreTraining) or "masked-lm"
    (ElectraForMaskedLM or BertForMaskedLM); a BertModel / sentence-transformers folder gives the encoder alone."""
    folder = Path(folder)
    cfg = model_config_from_hf(read_config(folder), where=str(folder / "config.json"))
    hf_state = _normalize_legacy(read_weights(folder))
    prefix = _detect_prefix(hf_state)
    encoder = {k.removeprefix("encoder."): v for k, v in from_hf_state_dict(hf_state, cfg.num_layers, None,
                                                                             prefix).items()}
    rows = expand(HEAD_KEYS[kind]) + (expand(BERT_MLM_HEAD_KEYS) if kind == "masked-lm" else [])
    head = {ours: hf_state[theirs] for ours, theirs in rows if theirs in hf_state}
    return cfg, encoder, head


def load_task_model(folder, kind: str | None = None, num_labels: int | None = None,
                    classifier_dropout: float | None = None, strict_head: bool | None = None,
                    head: str | None = None) -> TaskModel:
    """A local HF folder (ELECTRA or BERT family) -> TaskModel.

    kind: our head kind; None = infer from the folder's architecture. When the folder's architecture has the same
    head (a fine-tuned or pretraining folder), the head is loaded too; otherwise the head starts fresh (fine-tuning
    from a pretrained encoder). head: the sequence head's style ("official" or "hf"); None = config.json's
    "electra_head" (written by export_task_model), else "hf"."""
    folder = Path(folder)
    config = read_config(folder)
    arch = (config.get("architectures") or [""])[0]
    if kind is None:
        kind = KIND_OF_CLASS.get(arch)
        if kind is None:
            raise ElectraError(f"{folder}: architecture '{arch or '?'}' has no task head; say which kind to build")
    if num_labels is None:
        # transformers >= 5 writes id2label and no num_labels
        n = len(config["id2label"]) if isinstance(config.get("id2label"), dict) else config.get("num_labels", 2)
        num_labels = 1 if config.get("problem_type") == "regression" else int(n)
    cfg = model_config_from_hf(config, where=str(folder / "config.json"))
    style = head or config.get("electra_head", "hf")
    model = TaskModel(cfg, kind, num_labels=num_labels, classifier_dropout=classifier_dropout, head=style)
    hf_state = _normalize_legacy(read_weights(folder))
    prefix = _detect_prefix(hf_state)
    with_head = KIND_OF_CLASS.get(arch) == kind if strict_head is None else strict_head
    state = from_hf_state_dict(hf_state, cfg.num_layers, kind if with_head else None, prefix)
    if with_head and model.head_style == "official" and {"head.dense.weight", "head.dense.bias"} <= state.keys():
        layout = {k[len("head."):]: state.pop(k) for k in [k for k in state if k.startswith("head.")]}
        state.update({f"head.{k}": v for k, v in model.head.from_hf_layout(layout, num_labels).items()})
    needed = [k for k in model.state_dict() if k.startswith("encoder.") or (with_head and k.startswith("head."))]
    missing = [k for k in needed if k not in state]
    if missing:
        hf_names = dict(key_table(cfg.num_layers, kind, prefix))
        raise ElectraError(f"{folder}: weights are missing {len(missing)} tensors, e.g. "
                           f"'{hf_names.get(missing[0], missing[0])}'")
    for key, value in state.items():
        expected = model.state_dict()[key].shape
        if value.shape != expected:
            raise ElectraError(f"{folder}: tensor for '{key}' has shape {tuple(value.shape)}, "
                               f"config.json implies {tuple(expected)}")
    model.load_state_dict(state, strict=False)
    return model


def load_encoder(folder) -> Encoder:
    """Only the encoder of a local HF folder (ELECTRA or BERT family)."""
    model = load_task_model(folder, kind="sequence", num_labels=2, strict_head=False)
    return model.encoder
