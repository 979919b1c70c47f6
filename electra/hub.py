"""Model names from the Hugging Face Hub: `--model google/electra-small-discriminator` becomes a local folder.

`resolve_model(name_or_path)` returns an existing path as is. Otherwise a name that looks like a Hub id (`org/name`,
optionally `@revision`: a branch, tag or commit) is fetched through `huggingface_hub.snapshot_download` into the
usual Hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub) and the snapshot folder is
returned; a cached snapshot is used without a download. `HF_HUB_OFFLINE=1` is honoured (read at call time): only the
cache is looked at. Only the files a model folder needs are fetched (config, tokenizer, safetensors weights; the
PyTorch .bin only when the repository has no safetensors), not the TF/Flax/ONNX copies many repositories also hold.
Every failure is one ElectraError line naming the id and the command that fetches it.

    from electra.hub import resolve_model
    folder = resolve_model("google/electra-small-discriminator")   # -> .../snapshots/<commit>/
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from electra.errors import ElectraError

# org/name[@revision]: the Hub's repo-id characters; no "--" or ".." (the Hub refuses them), no leading "." or "-"
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@(?P<revision>[\w./-]+))?$")
_MODEL_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]  # configs, vocab/merges, sentencepiece, weights
_BIN_FILES = ["*.json", "*.txt", "*.model", "pytorch_model*.bin"]
_TRUE = ("1", "ON", "YES", "TRUE")


def parse_hub_id(name: str) -> tuple[str, str | None] | None:
    """(repo_id, revision) for `org/name[@revision]`, or None when `name` does not look like a Hub id."""
    m = _HUB_ID.match(name)
    if m is None or "--" in m["repo"] or ".." in m["repo"] or m["repo"].endswith((".", "-")):
        return None
    return m["repo"], m["revision"]


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a true value, read now, not when huggingface_hub was imported."""
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> Path:
    """The Hub cache folder huggingface_hub uses, from the environment as it is now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A local folder for a model path or a Hub id (see the module docstring); ElectraError if neither resolves."""
    name = str(name_or_path)
    if os.path.exists(name):
        return Path(name)
    parsed = parse_hub_id(name)
    if parsed is None:
        raise ElectraError(f"model not found: '{name}' is not a file or folder (a Hugging Face Hub id looks like "
                           f"org/name, e.g. google/electra-small-discriminator)")
    repo_id, revision = parsed
    fetch = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError:
        raise ElectraError(f"'{name}' is not a local folder, and resolving it as a Hub id needs huggingface_hub: "
                           f"pip install 'electra[hf]'") from None
    offline = hub_offline()
    cache = hub_cache_dir()

    def download(patterns: list[str]) -> Path:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=offline,
                                      allow_patterns=patterns))

    try:
        folder = download(_MODEL_FILES)
        if not offline and not any(folder.glob("*.safetensors")):
            folder = download(_BIN_FILES)
    except GatedRepoError:
        raise ElectraError(f"Hub model '{repo_id}' is gated: accept its terms on huggingface.co, then "
                           f"`hf auth login` (or set HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise ElectraError(f"model not found: '{name}' is not a local folder, nor a Hub model this machine may see "
                           f"(a private one needs `hf auth login` or HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ElectraError(f"Hub model '{repo_id}' has no revision '{revision}'") from None
    except HFValidationError as e:
        raise ElectraError(f"model not found: '{name}' is not a local folder nor a valid Hub id ({e})") from None
    except (LocalEntryNotFoundError, OSError) as e:  # offline, no network, or the cache is incomplete
        why = ("HF_HUB_OFFLINE is set, so only the cache is used: fetch it where there is a network with "
               f"`{fetch}` (or set HF_HUB_OFFLINE=0)" if offline
               else f"the Hub is unreachable ({type(e).__name__}): fetch it with `{fetch}` when it is")
        raise ElectraError(f"'{name}' is not a local folder and Hub model '{repo_id}' is not in the cache "
                           f"{cache}; {why}") from None
    if not (folder / "config.json").is_file():
        raise ElectraError(f"Hub repository '{repo_id}' has no config.json: not a model folder")
    return folder
