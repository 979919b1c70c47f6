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


@pytest.fixture
def one_thread():
    """torch on one thread for the test (restored after): the tiny models are no faster on more, and the box may be
    busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model_dir(vocab: Path, out: Path, max_positions: int = 512) -> Path:
    """A 2-layer, 64-wide ELECTRA discriminator with random weights (seed 0) around a real vocab, as an HF folder
    with its tokenizer (at OUT-tokenizer)."""
    import torch

    from electra.config import ModelConfig
    from electra.hf import export_task_model
    from electra.model import TaskModel
    from electra.tokenizer import tokenizer_from_vocab

    tok = tokenizer_from_vocab(vocab)
    tok_dir = save_tokenizer_folder(tok, out.parent / f"{out.name}-tokenizer")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), embedding_size=32, hidden_size=64, num_layers=2, num_heads=2,
                      intermediate_size=128, max_position_embeddings=max_positions)
    return export_task_model(TaskModel(cfg, "pretraining"), out, tokenizer_dir=tok_dir)


def curve_records(run: Path) -> list[dict]:
    """The train and eval records of RUN/metrics.jsonl without the wall-clock fields: what must be identical between
    an interrupted-and-resumed run and an uninterrupted one."""
    import json

    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    drop = ("tokens_per_s", "elapsed_s")
    return [{k: v for k, v in r.items() if k not in drop} for r in records if r["kind"] in ("train", "eval")]


def last_logged_step(metrics: Path) -> int:
    """The highest step in a metrics.jsonl being written by another process (0 if none yet; a half line is skipped)."""
    import json

    steps = [0]
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                steps.append(json.loads(line)["step"])
            except ValueError:
                pass
    return max(steps)


@pytest.fixture(scope="session")
def en_model(shared_data, tmp_path_factory) -> Path:
    """tiny_model_dir around the BERT uncased vocab (random weights, seed 0)."""
    return tiny_model_dir(shared_data / "vocab/bert-base-uncased.txt", tmp_path_factory.mktemp("en") / "model")


def pair_batch(B: int, T: int, shrink: int, vocab: int, seed: int = 0, first: int = 4, pad: int = 0, cls: int = 1,
               sep: int = 2):
    """(input_ids, attention_mask) of B rows `[CLS] a [SEP] b [SEP] [PAD]...` with random ordinary tokens in
    [first, vocab); row i has T - shrink * i real tokens, so every row but the first is padded."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(first, vocab, (B, T), generator=g)
    am = torch.ones_like(x)
    for i in range(B):
        n = T - shrink * i
        x[i, 0], x[i, n // 2], x[i, n - 1] = cls, sep, sep
        x[i, n:], am[i, n:] = pad, 0
    return x, am
