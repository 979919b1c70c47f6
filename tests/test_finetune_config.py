"""The fine-tuning config (electra/finetune_config.py): task-kind options in typed sections ([qa], [columns]) read
from the nested form and the flat form alike, flags staying flat, and electra_task.json keeping its flat keys.

    .venv/bin/pytest -q tests/test_finetune_config.py
"""
from __future__ import annotations

import argparse

import pytest

from electra.errors import ElectraError
from electra.finetune import build_parser
from electra.finetune_config import (FinetuneConfig, QAOptions, config_from_args, config_from_dict,
                                     config_from_metadata, task_metadata, updated)
from electra.tasks import get_task


def parse(*argv) -> FinetuneConfig:
    parser = argparse.ArgumentParser()
    build_parser(parser)
    return config_from_args(parser.parse_args([str(a) for a in argv]))


def test_nested_and_flat_run_files_read_the_same(tmp_path):
    nested = tmp_path / "nested.toml"
    nested.write_text('task = "squad"\n[qa]\ndoc_stride = 64\nmax_answer_len = 12\n[columns]\ntext_a = "q"\n')
    flat = tmp_path / "flat.toml"
    flat.write_text('task = "squad"\ndoc_stride = 64\nmax_answer_len = 12\ntext_a = "q"\n')
    wrapped = tmp_path / "wrapped.toml"
    wrapped.write_text('[finetune]\ntask = "squad"\n[finetune.qa]\ndoc_stride = 64\nmax_answer_len = 12\n'
                       '[finetune.columns]\ntext_a = "q"\n')
    configs = [parse("--config", path) for path in (nested, flat, wrapped)]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].qa == QAOptions(doc_stride=64, max_answer_len=12) and configs[0].columns.text_a == "q"


def test_flags_stay_flat_and_override_the_section(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('task = "squad"\n[qa]\ndoc_stride = 64\nmax_answer_len = 12\n')
    cfg = parse("--config", path, "--max-answer-len", 7, "--n-best", 5, "--text-b", "r")
    assert (cfg.qa.doc_stride, cfg.qa.max_answer_len, cfg.qa.n_best) == (64, 7, 5) and cfg.columns.text_b == "r"
    assert parse("--task", "squad", "--null-threshold", "1.5").qa.null_threshold == 1.5


def test_section_errors_are_one_line(tmp_path):
    with pytest.raises(ElectraError, match="unknown config key 'qa.doc_strid' \\(did you mean 'doc_stride'"):
        config_from_dict({"qa": {"doc_strid": 3}})
    with pytest.raises(ElectraError, match="'doc_stride' is given twice"):
        config_from_dict({"doc_stride": 3, "qa": {"doc_stride": 4}})
    with pytest.raises(ElectraError, match="qa"):
        config_from_dict({"qa": 5})
    with pytest.raises(ElectraError, match="n_best=0 must be at least 1"):
        parse("--task", "squad", "--n-best", 0)


def test_task_metadata_keeps_its_flat_keys_and_reads_back():
    cfg = updated(FinetuneConfig(task="squad", max_seq_len=256), {"doc_stride": 32, "null_threshold": 0.5})
    meta = task_metadata(get_task("squad"), None, cfg)
    assert meta["doc_stride"] == 32 and meta["null_threshold"] == 0.5 and "qa" not in meta
    back = config_from_metadata(meta)
    assert back.qa == cfg.qa and back.max_seq_len == 256


def test_learning_rate_lists_and_recipe_switches(tmp_path, capsys):
    assert parse("--lr", "1e-4,3e-4,1e-3").lr == [1e-4, 3e-4, 1e-3]
    assert parse("--lr", "3e-4").lr == 3e-4 and parse("--lr", "3e-4,3e-4").lr == 3e-4
    run_file = tmp_path / "r.toml"
    run_file.write_text('task = "sst2"\nlr = [1e-4, 2e-4]\n')
    assert parse("--config", run_file).lr == [1e-4, 2e-4]
    run_file.write_text('task = "sst2"\nlr = 2e-4\n')
    assert parse("--config", run_file).lr == 2e-4
    for bad in ("abc", [1e-4, -1.0], [], True):
        with pytest.raises(ElectraError, match="lr"):
            FinetuneConfig(lr=bad)
    with pytest.raises(SystemExit):
        parse("--lr", "1e-4,x")
    assert "lr" in capsys.readouterr().err
    cfg = FinetuneConfig()
    assert (cfg.optim, cfg.head, cfg.official_depth, cfg.batch_loss, cfg.select) == \
        ("official", "official", True, "sum", "final")
    assert parse("--head", "hf", "--optim", "adamw", "--no-official-depth", "--select", "best-epoch").head == "hf"
    with pytest.raises(ElectraError, match="select='best' is not one of: final, best-epoch"):
        config_from_dict({"select": "best"})
    from electra.config import ModelConfig
    from electra.finetune_config import resolve

    tiny = ModelConfig(vocab_size=100, embedding_size=128, hidden_size=128, num_layers=2, num_heads=4)
    assert resolve(FinetuneConfig(), get_task("stsb"), tiny).target_scale == 5.0
    assert resolve(FinetuneConfig(), get_task("sst2"), tiny).lr == 1e-3
    assert resolve(FinetuneConfig(target_scale=1.0), get_task("stsb"), tiny).target_scale == 1.0
