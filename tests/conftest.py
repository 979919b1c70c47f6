"""Shared pytest fixtures: slices of the real Wikipedia data, a tiny tokenizer trained here, a tiny prepared corpus.

Everything is session-scoped and takes a few seconds; tests that need ../shared/data skip cleanly when it is absent
(set $ELECTRA_SHARED_DATA to point elsewhere). Slices are extracted once into <repo>/.cache/slices (git-ignored).

    .venv/bin/pytest -q tests/test_data.py tests/test_tokenizer.py
"""
from __future__ import annotations

import os
from pathlib import Path

# On an oversubscribed machine (load above the core count: other jobs, parallel sessions) OpenMP's spinning
# barriers make multi-threaded torch 10-100x slower on the tiny test models. One thread is as fast for them, so pin
# it then, for this process and the CLI subprocesses the tests start. A quiet machine (CI) keeps torch's default.
if os.getloadavg()[0] > (os.cpu_count() or 1):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

import pytest

from electra.data import PackConfig, prepare
from electra.sources import REPO_ROOT, extract_corpus_slice, shared_data_dir
from electra.tokenizer import save_tokenizer_folder, train_tokenizer

SLICE_BYTES = 2 << 20  # 2 MB of text: ~140 English articles, a few hundred Chinese ones


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set $ELECTRA_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def wiki_en_slice(shared_data) -> Path:
    return extract_corpus_slice(shared_data / "corpus/enwiki-2015-sample.tar.gz",
                                REPO_ROOT / ".cache/slices/enwiki-2mb", SLICE_BYTES)


@pytest.fixture(scope="session")
def wiki_zh_slice(shared_data) -> Path:
    return extract_corpus_slice(shared_data / "corpus/zhwiki-sample.tar.gz",
                                REPO_ROOT / ".cache/slices/zhwiki-2mb", SLICE_BYTES)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(wiki_en_slice, tmp_path_factory) -> Path:
    """A 2,000-entry lowercase WordPiece vocab trained on wiki_en_slice (about a second)."""
    tok = train_tokenizer([wiki_en_slice], vocab_size=2000, limit_alphabet=300)
    return save_tokenizer_folder(tok, tmp_path_factory.mktemp("tiny_tokenizer"))


@pytest.fixture(scope="session")
def tiny_prepared_dir(wiki_en_slice, tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """wiki_en_slice packed at seq_len 64: thousands of train examples, a few hundred valid ones."""
    out = tmp_path_factory.mktemp("tiny_prepared") / "data"
    prepare([wiki_en_slice], tiny_tokenizer_dir, out, PackConfig(seq_len=64, seed=0, valid_fraction=0.05),
            workers=0, progress_bar=False)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Pretraining fixtures (owned by the pretraining engineer: tests/test_pretrain.py, test_checkpoint.py, test_dist.py)

DEBUG_TOML = REPO_ROOT / "configs" / "debug.toml"


@pytest.fixture(scope="session")
def debug_overrides(tiny_prepared_dir):
    """A function (out_dir, *overrides) -> the `--section.key=value` list for a fast, quiet configs/debug.toml run on
    tiny_prepared_dir: one CPU thread, deterministic, no progress bar, TensorBoard, report or export unless asked."""
    def make(out_dir, *overrides: str) -> list[str]:
        return [f"--data.dir={tiny_prepared_dir}", f"--run.out={out_dir}", "--train.threads=1",
                "--train.deterministic=true", "--run.progress=false", "--run.tensorboard=false",
                "--run.report=false", "--run.export=false", *overrides]
    return make
