"""Bad input across every command, as a table: each row builds one broken input (corpus, tokenizer, config, task file,
checkpoint, HF folder, CLI argument) in tmp_path, runs the command and checks what the user sees: exit code 2, exactly
one line on stderr that says what is wrong (a phrase chosen per row) and where (the path or key), no traceback, and
nothing written: tmp_path, which holds the inputs and the output path the command names, is byte-for-byte the same
afterwards (no output, no half-written temporary folder, no changed input, a pre-existing output left unchanged).
Most rows run in-process through `electra.cli.main`; a few run as real `python -m electra` subprocesses to prove the
exit status and the stderr of the installed entry point. docs/ERRORS.md lists the same errors for users.

    .venv/bin/pytest -q tests/test_bad_input.py
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from electra.cli import main
from electra.config import preset
from electra.hf import export_pretraining, export_task_model
from electra.model import TaskModel
from electra.objectives import build_objective
from electra.pretrain import load_pretrain_config, pretrain
from electra.sources import REPO_ROOT
from electra.tokenizer import load_tokenizer, special_ids

DEBUG = str(REPO_ROOT / "configs" / "debug.toml")
GOOD_TSV = "sentence\tlabel\na fine film\t1\na dull film\t0\ngood\t1\nbad\t0\n"


@pytest.fixture(scope="module")
def fx(tiny_tokenizer_dir, tiny_prepared_dir, debug_overrides, tmp_path_factory):
    """Good inputs the rows break: a tokenizer, prepared data, a 2-step pretraining run (2 checkpoints), HF
    generator/discriminator folders and a sequence-classification folder (labels 0, 1) with the same vocab."""
    root = tmp_path_factory.mktemp("bad_input")
    run = root / "run"
    pretrain(load_pretrain_config(DEBUG, debug_overrides(run, "--train.steps=2", "--train.checkpoint_every=1",
                                                         "--train.eval_every=0", "--train.log_every=1")))
    tok = load_tokenizer(tiny_tokenizer_dir)
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=tok.get_vocab_size())
    pair = export_pretraining(build_objective(cfg, special_ids(tok)), root / "hf", tokenizer_dir=tiny_tokenizer_dir)
    clf = export_task_model(TaskModel(cfg.discriminator, "sequence", num_labels=2), root / "clf",
                            tokenizer_dir=tiny_tokenizer_dir, labels=["0", "1"])
    return SimpleNamespace(tok=tiny_tokenizer_dir, data=tiny_prepared_dir, run=run, gen=pair["generator"],
                           disc=pair["discriminator"], clf=clf)


def tree(root: Path) -> dict:
    """Every path under root with the sha256 of its content (folders: None)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def truncated_gzip() -> bytes:
    """The first half of a gzip file (the text varies, so the cut falls inside the deflate stream)."""
    data = gzip.compress("".join(f"Sentence number {i} of the corpus.\n" for i in range(5000)).encode())
    return data[:len(data) // 2]


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def toml(t: Path, text: str) -> Path:
    return write(t / "run.toml", text)


def pretrain_argv(t: Path, fx, config: Path | str, *extra) -> list:
    return ["pretrain", config, f"--data.dir={fx.data}", f"--run.out={t / 'out'}", "--run.progress=false",
            "--train.threads=1", *extra]


def finetune_argv(t: Path, model, *extra) -> list:
    return ["finetune", "--model", model, "--out", t / "out", "--no-progress", "--threads", "1", "--epochs", "1",
            *extra]


CASES = []


def case(*expect: str):
    """Register a row: the decorated function (tmp_path, fx) -> argv; `expect`: phrases stderr must contain, with
    {t} standing for tmp_path (so a phrase can name the path)."""
    def register(build):
        CASES.append(pytest.param(build, expect, id=build.__name__.replace("_", "-")))
        return build
    return register


# ---------------------------------------------------------------------------------------------------------------
# tokenizer train / import


@case("input '{t}/missing' does not exist")
def tokenizer_train_missing_input(t, fx):
    return ["tokenizer", "train", "--input", t / "missing", "--vocab-size", "100", "--out", t / "out"]


@case("input folder '{t}/corpus' contains no files")
def tokenizer_train_empty_folder(t, fx):
    (t / "corpus").mkdir()
    return ["tokenizer", "train", "--input", t / "corpus", "--vocab-size", "100", "--out", t / "out"]


@case("no text found in {t}/corpus.txt", "skipped as binary")
def tokenizer_train_binary_corpus(t, fx):
    write(t / "corpus.txt", b"\x00\x01\x02binary" * 100)
    return ["tokenizer", "train", "--input", t / "corpus.txt", "--vocab-size", "100", "--out", t / "out"]


@case("--vocab-size must be at least 6, got 3")
def tokenizer_train_vocab_too_small(t, fx):
    write(t / "corpus.txt", "some text\n")
    return ["tokenizer", "train", "--input", t / "corpus.txt", "--vocab-size", "3", "--out", t / "out"]


@case("{t}/corpus.txt.gz: corrupt or truncated compressed data")
def tokenizer_train_truncated_gzip(t, fx):
    write(t / "corpus.txt.gz", truncated_gzip())
    return ["tokenizer", "train", "--input", t / "corpus.txt.gz", "--vocab-size", "100", "--out", t / "out"]


@case("{t}/corpus.tar.gz: not a readable tar archive")
def tokenizer_train_broken_tar(t, fx):
    write(t / "corpus.tar.gz", b"this is not a tar archive at all" * 40)
    return ["tokenizer", "train", "--input", t / "corpus.tar.gz", "--vocab-size", "100", "--out", t / "out"]


@case("OpenCC cannot load conversion 'nope'")
def tokenizer_train_unknown_opencc(t, fx):
    pytest.importorskip("opencc")
    write(t / "corpus.txt", "一些文字\n")
    return ["tokenizer", "train", "--input", t / "corpus.txt", "--vocab-size", "100", "--opencc", "nope",
            "--out", t / "out"]


@case("argument --format: invalid choice: 'xml'")
def tokenizer_train_unknown_format(t, fx):
    write(t / "corpus.txt", "text\n")
    return ["tokenizer", "train", "--input", t / "corpus.txt", "--vocab-size", "100", "--format", "xml",
            "--out", t / "out"]


@case("vocab file {t}/vocab.txt: the vocab lacks the special token(s) [CLS], [SEP]")
def tokenizer_import_vocab_without_specials(t, fx):
    write(t / "vocab.txt", "[PAD]\n[UNK]\n[MASK]\nthe\nof\n")
    return ["tokenizer", "import", "--vocab", t / "vocab.txt", "--out", t / "out"]


@case("vocab file {t}/vocab.txt line 7: token 'the' already on line 6")
def tokenizer_import_duplicate_token(t, fx):
    write(t / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nthe\n")
    return ["tokenizer", "import", "--vocab", t / "vocab.txt", "--out", t / "out"]


@case("vocab file {t}/vocab.txt is not UTF-8 text")
def tokenizer_import_latin1_vocab(t, fx):
    write(t / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncaf\xe9\n".encode("latin-1"))
    return ["tokenizer", "import", "--vocab", t / "vocab.txt", "--out", t / "out"]


@case("output folder {t}/out exists; pass --overwrite")
def tokenizer_import_existing_out(t, fx):
    write(t / "out" / "notes.txt", "mine")
    return ["tokenizer", "import", "--vocab", fx.tok / "vocab.txt", "--out", t / "out"]


@case("refusing to overwrite {t}/out: it is not a tokenizer folder")
def tokenizer_import_overwrite_foreign_folder(t, fx):
    write(t / "out" / "notes.txt", "mine")
    return ["tokenizer", "import", "--vocab", fx.tok / "vocab.txt", "--out", t / "out", "--overwrite"]


# ---------------------------------------------------------------------------------------------------------------
# prepare


def prepare_argv(t, tokenizer, *extra):
    write(t / "corpus.txt", "The first sentence. The second one.\n\nAnother document here.\n")
    return ["prepare", "--input", t / "corpus.txt", "--tokenizer", tokenizer, "--out", t / "out", "--workers", "0",
            "--no-progress", *extra]


@case("tokenizer folder {t}/tok not found")
def prepare_missing_tokenizer(t, fx):
    return prepare_argv(t, t / "tok")


@case("{t}/tok/tokenizer.json is not a valid tokenizer file")
def prepare_corrupt_tokenizer_json(t, fx):
    write(t / "tok" / "tokenizer.json", '{"version": "1.0", "model": ')
    return prepare_argv(t, t / "tok")


@case("--seq-len must be at least 8, got 4")
def prepare_seq_len_too_short(t, fx):
    return prepare_argv(t, fx.tok, "--seq-len", "4")


@case("--valid-fraction must be in [0, 1), got 1.5")
def prepare_bad_valid_fraction(t, fx):
    return prepare_argv(t, fx.tok, "--valid-fraction", "1.5")


@case("refusing to overwrite {t}/out: it is not a prepared data folder")
def prepare_overwrite_foreign_folder(t, fx):
    write(t / "out" / "thesis.tex", "years of work")
    return prepare_argv(t, fx.tok, "--overwrite")


@case("no text found in {t}/empty.txt")
def prepare_blank_corpus(t, fx):
    write(t / "empty.txt", "\n\n   \n")
    argv = prepare_argv(t, fx.tok)
    argv[2] = t / "empty.txt"
    return argv


@case("{t}/corpus.txt.gz: corrupt or truncated compressed data")
def prepare_truncated_gzip(t, fx):
    write(t / "corpus.txt.gz", truncated_gzip())
    argv = prepare_argv(t, fx.tok)
    argv[2] = t / "corpus.txt.gz"
    return argv


# ---------------------------------------------------------------------------------------------------------------
# pretrain


@case("config file {t}/nope.toml not found")
def pretrain_missing_config(t, fx):
    return pretrain_argv(t, fx, t / "nope.toml")


@case("{t}/run.toml: not valid TOML")
def pretrain_toml_syntax_error(t, fx):
    return pretrain_argv(t, fx, toml(t, "[train]\nsteps = = 3\n"))


@case("unknown config key 'train.stpes' (did you mean 'steps'?)")
def pretrain_unknown_key(t, fx):
    return pretrain_argv(t, fx, toml(t, "[train]\nstpes = 3\n"))


@case("config key 'train.steps' must be int, got str 'many'")
def pretrain_wrong_type(t, fx):
    return pretrain_argv(t, fx, toml(t, "[train]\nsteps = \"many\"\n"))


@case("unknown config section '[trian]' (did you mean 'train'?)")
def pretrain_unknown_section(t, fx):
    return pretrain_argv(t, fx, toml(t, "[trian]\nsteps = 3\n"))


@case("unknown preset 'huge'")
def pretrain_unknown_preset(t, fx):
    return pretrain_argv(t, fx, DEBUG, "--model.preset=huge")


@case("--train.steps=ten: expected int")
def pretrain_override_not_a_number(t, fx):
    return pretrain_argv(t, fx, DEBUG, "--train.steps=ten")


@case("override 'train.steps' must look like --section.key=value")
def pretrain_override_without_value(t, fx):
    return pretrain_argv(t, fx, DEBUG, "train.steps")


@case("{t}/data is not a prepared data folder: no meta.json")
def pretrain_data_not_prepared(t, fx):
    write(t / "data" / "corpus.txt", "text\n")
    argv = pretrain_argv(t, fx, DEBUG)
    argv[2] = f"--data.dir={t / 'data'}"
    return argv


@case("{t}/data/train-00000.bin does not match its index (truncated or replaced?)")
def pretrain_truncated_shard(t, fx):
    data = copy(fx.data, t / "data")
    shard = data / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    argv = pretrain_argv(t, fx, DEBUG)
    argv[2] = f"--data.dir={data}"
    return argv


@case("run folder {t}/out exists and is not empty; choose another run.out")
def pretrain_run_out_is_foreign_folder(t, fx):
    write(t / "out" / "notes.txt", "mine")
    return pretrain_argv(t, fx, DEBUG)


@case("run folder {t}/out already holds a run; pass --resume to continue it or --overwrite")
def pretrain_existing_run_without_resume(t, fx):
    copy(fx.run, t / "out")
    return pretrain_argv(t, fx, DEBUG)


@case("data.batch_size=15 is not divisible by world size 1 x train.accumulation 2")
def pretrain_batch_not_divisible(t, fx):
    return pretrain_argv(t, fx, DEBUG, "--data.batch_size=15", "--train.accumulation=2")


# ---------------------------------------------------------------------------------------------------------------
# export


@case("{t}/nothing is not a pretraining run or checkpoint folder")
def export_not_a_run(t, fx):
    (t / "nothing").mkdir()
    return ["export", t / "nothing", "--out", t / "out"]


@case("{t}/run has no valid checkpoint", "model.safetensors")
def export_every_checkpoint_corrupted(t, fx):
    run = copy(fx.run, t / "run")
    for ckpt in (run / "checkpoints").glob("step_*"):
        weights = ckpt / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    return ["export", run, "--out", t / "out"]


@case("checkpoint {t}/step_0000002: checkpoint.json is not valid JSON (truncated?)")
def export_checkpoint_json_truncated(t, fx):
    ckpt = copy(fx.run / "checkpoints" / "step_0000002", t / "step_0000002")
    meta = ckpt / "checkpoint.json"
    meta.write_text(meta.read_text()[:40])
    return ["export", ckpt, "--out", t / "out"]


@case("{t}/out already exists; pass --overwrite")
def export_existing_out(t, fx):
    write(t / "out" / "notes.txt", "mine")
    return ["export", fx.run, "--out", t / "out"]


# ---------------------------------------------------------------------------------------------------------------
# finetune, evaluate, predict (task files, HF folders)


def sst2_data(t: Path, dev: str = GOOD_TSV) -> Path:
    write(t / "data" / "train.tsv", GOOD_TSV)
    write(t / "data" / "dev.tsv", dev)
    return t / "data"


@case("unknown task 'sst3' (did you mean 'sst2'?)")
def finetune_unknown_task(t, fx):
    return finetune_argv(t, fx.clf, "--task", "sst3", "--data", sst2_data(t))


@case("model folder not found: {t}/model")
def finetune_missing_model(t, fx):
    return finetune_argv(t, t / "model", "--task", "sst2", "--data", sst2_data(t))


@case("{t}/model/config.json: not valid JSON")
def finetune_hf_config_not_json(t, fx):
    model = copy(fx.clf, t / "model")
    write(model / "config.json", "{\"model_type\": \"electra\", ")
    return finetune_argv(t, model, "--task", "sst2", "--data", sst2_data(t))


@case("{t}/model/config.json: model_type 'gpt2' is not ELECTRA or BERT")
def finetune_hf_wrong_model_type(t, fx):
    model = copy(fx.clf, t / "model")
    config = json.loads((model / "config.json").read_text())
    write(model / "config.json", json.dumps({**config, "model_type": "gpt2"}))
    return finetune_argv(t, model, "--task", "sst2", "--data", sst2_data(t))


@case("{t}/model has no model.safetensors or pytorch_model.bin")
def finetune_hf_no_weights(t, fx):
    model = copy(fx.clf, t / "model")
    (model / "model.safetensors").unlink()
    return finetune_argv(t, model, "--task", "sst2", "--data", sst2_data(t))


@case("{t}/model: weights file is corrupt or truncated")
def finetune_hf_truncated_weights(t, fx):
    model = copy(fx.clf, t / "model")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    return finetune_argv(t, model, "--task", "sst2", "--data", sst2_data(t))


@case("tokenizer {t}/tok has 6 tokens but the model in")
def finetune_tokenizer_does_not_fit_model(t, fx):
    write(t / "tok" / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfilm\n")
    return finetune_argv(t, fx.clf, "--task", "sst2", "--data", sst2_data(t), "--tokenizer", t / "tok")


@case("{t}/data/train.tsv: no label column 'label' (columns: sentence, stars)")
def finetune_missing_column(t, fx):
    write(t / "data" / "train.tsv", "sentence\tstars\ngood\t5\n")
    return finetune_argv(t, fx.clf, "--task", "classify", "--data", t / "data")


@case("dev split of {t}/data: example 1: label 'meh' was never seen in training")
def finetune_dev_label_unseen(t, fx):
    data = sst2_data(t, dev="sentence\tlabel\nok\t1\nso so\tmeh\n")
    return finetune_argv(t, fx.clf, "--task", "classify", "--data", data)


@case("{t}/data/train.tsv line 2: label 'high' is not a number")
def finetune_regression_label_not_a_number(t, fx):
    write(t / "data" / "train.tsv", "sentence\tlabel\ngood\thigh\n")
    return finetune_argv(t, fx.clf, "--task", "regress", "--data", t / "data")


@case("the dev split of task 'classify' in {t}/data has no examples")
def finetune_empty_dev_split(t, fx):
    return finetune_argv(t, fx.clf, "--task", "classify", "--data", sst2_data(t, dev="sentence\tlabel\n"))


@case("{t}/data/train.txt line 2: expected 'word ... TAG', got 'Berlin'")
def finetune_conll_line_without_tag(t, fx):
    write(t / "data" / "train.txt", "EU B-ORG\nBerlin\n")
    write(t / "data" / "valid.txt", "EU B-ORG\n")
    return finetune_argv(t, fx.clf, "--task", "ner", "--data", t / "data")


@case("{t}/data/train-v1.1.json: data[0].paragraphs[0] needs 'context' as a str")
def finetune_squad_missing_context(t, fx):
    write(t / "data" / "train-v1.1.json", json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}))
    write(t / "data" / "dev-v1.1.json", json.dumps({"data": []}))
    return finetune_argv(t, fx.clf, "--task", "squad", "--data", t / "data")


@case("{t}/data/train-v1.1.json: not valid JSON (line 1, column")
def finetune_squad_not_json(t, fx):
    write(t / "data" / "train-v1.1.json", '{"data": [')
    return finetune_argv(t, fx.clf, "--task", "squad", "--data", t / "data")


@case("unknown config key 'epohcs' (did you mean 'epochs'?)")
def finetune_toml_unknown_key(t, fx):
    return finetune_argv(t, fx.clf, "--config", toml(t, "task = \"sst2\"\nepohcs = 3\n"), "--data", sst2_data(t))


@case("layer_decay=1.5 must be in (0, 1]")
def finetune_bad_layer_decay(t, fx):
    return finetune_argv(t, fx.clf, "--task", "sst2", "--data", sst2_data(t), "--layer-decay", "1.5")


@case("{t}/out already exists; pass --overwrite")
def finetune_existing_out(t, fx):
    write(t / "out" / "metrics.json", "{}")
    return finetune_argv(t, fx.clf, "--task", "sst2", "--data", sst2_data(t))


@case("architecture 'ElectraForPreTraining' is not a fine-tuned task model")
def evaluate_pretraining_folder(t, fx):
    return ["evaluate", "--model", fx.disc, "--data", sst2_data(t), "--output", t / "out.jsonl"]


@case("dev split of {t}/data: example 1: label 'meh' was never seen in training")
def evaluate_unknown_gold_label(t, fx):
    return ["evaluate", "--model", fx.clf, "--data", sst2_data(t, dev="sentence\tlabel\nok\t1\nso so\tmeh\n"),
            "--output", t / "out.jsonl"]


@case("{t}/out.jsonl already exists")
def evaluate_existing_output(t, fx):
    write(t / "out.jsonl", "earlier results\n")
    return ["evaluate", "--model", fx.clf, "--data", sst2_data(t), "--output", t / "out.jsonl"]


@case("input file {t}/texts.txt not found")
def predict_missing_input(t, fx):
    return ["predict", "--model", fx.clf, "--input", t / "texts.txt", "--output", t / "out.jsonl"]


@case("{t}/out.jsonl already exists; pass --overwrite")
def predict_existing_output(t, fx):
    write(t / "texts.txt", "a film\n")
    write(t / "out.jsonl", "earlier results\n")
    return ["predict", "--model", fx.clf, "--input", t / "texts.txt", "--output", t / "out.jsonl"]


@case("{t}/model/electra_task.json: not valid JSON")
def predict_corrupt_task_metadata(t, fx):
    model = copy(fx.clf, t / "model")
    write(model / "electra_task.json", '{"task": ')
    write(t / "texts.txt", "a film\n")
    return ["predict", "--model", model, "--input", t / "texts.txt", "--output", t / "out.jsonl"]


@case("{t}/texts.txt line 2: not UTF-8 text")
def predict_input_not_utf8(t, fx):
    write(t / "texts.txt", "a fine film\nun caf\xe9\n".encode("latin-1"))
    return ["predict", "--model", fx.clf, "--input", t / "texts.txt", "--output", t / "out.jsonl"]


@case("--batch-size 0 must be at least 1")
def predict_zero_batch_size(t, fx):
    write(t / "texts.txt", "a film\n")
    return ["predict", "--model", fx.clf, "--input", t / "texts.txt", "--output", t / "out.jsonl",
            "--batch-size", "0"]


# ---------------------------------------------------------------------------------------------------------------
# study


@case("study file {t}/nope.toml not found")
def study_missing_file(t, fx):
    return ["study", t / "nope.toml", "--dry-run"]


@case("unknown config key 'study.budgte' (did you mean 'budget'?)")
def study_unknown_key(t, fx):
    out = t / "out"
    return ["study", toml(t, f'[study]\nname = "x"\nout = "{out}"\nbudgte = "1e12"\n'), "--dry-run"]


# ---------------------------------------------------------------------------------------------------------------
# fill-mask, detect, infill, flops, the command line itself


@case("the text has no [MASK] to fill")
def fill_mask_without_mask(t, fx):
    return ["fill-mask", "--model", fx.gen, "the film was good"]


@case("holds a ElectraForPreTraining; this needs the generator")
def fill_mask_with_discriminator(t, fx):
    return ["fill-mask", "--model", fx.disc, "the [MASK] was good"]


@case("cannot write {t}/missing/page.html: folder {t}/missing does not exist")
def detect_html_into_missing_folder(t, fx):
    return ["detect", "--model", fx.disc, "the film was good", "--html", t / "missing" / "page.html"]


@case("--iterations must be >= 1, got 0")
def infill_zero_iterations(t, fx):
    return ["infill", "--model", fx.gen, "the [MASK] was good", "--iterations", "0"]


@case("unknown preset 'huge'")
def flops_unknown_preset(t, fx):
    return ["flops", "--preset", "huge"]


@case("argument --seq-len: invalid int value: 'long'")
def flops_seq_len_not_a_number(t, fx):
    return ["flops", "--seq-len", "long"]


@case("unknown command 'pretrian' (did you mean 'pretrain'?)")
def unknown_command(t, fx):
    return ["pretrian", "configs/debug.toml"]


@case("unrecognized arguments: --epochs 3", "electra export --help")
def unknown_flag(t, fx):
    return ["export", fx.run, "--out", t / "out", "--epochs", "3"]


@case("the following arguments are required: --model")
def missing_required_flag(t, fx):
    return ["detect", "a sentence"]


def _check(code: int, err: str, expect, t: Path, before: dict):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("electra"), lines[0]
    assert ": error: " in lines[0]
    for phrase in expect:
        assert phrase.format(t=t) in lines[0]
    assert tree(t) == before  # nothing written, nothing left behind, no input changed


@pytest.mark.parametrize("build, expect", CASES)
def test_bad_input_one_line_exit_2_nothing_written(build, expect, fx, tmp_path, capsys):
    argv = [str(a) for a in build(tmp_path, fx)]
    before = tree(tmp_path)
    code = main(argv)
    _, err = capsys.readouterr()
    _check(code, err, expect, tmp_path, before)


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 30
    covered = {c.id.replace("fill-mask", "fill_mask").split("-")[0].replace("_", "-") for c in CASES}
    assert {"tokenizer", "prepare", "pretrain", "export", "finetune", "evaluate", "predict", "fill-mask", "detect",
            "infill", "flops", "study", "unknown", "missing"} <= covered


SUBPROCESS_ROWS = ["unknown-command", "unknown-flag", "tokenizer-import-duplicate-token", "pretrain-unknown-key",
                   "finetune-squad-missing-context"]


@pytest.mark.parametrize("row", SUBPROCESS_ROWS)
def test_real_subprocess_exit_status_and_stderr(row, fx, tmp_path):
    build, expect = next(c.values for c in CASES if c.id == row)
    argv = [str(a) for a in build(tmp_path, fx)]
    before = tree(tmp_path)
    r = subprocess.run([sys.executable, "-m", "electra", *argv], capture_output=True, text=True, timeout=300,
                       cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    _check(r.returncode, r.stderr, expect, tmp_path, before)


def test_every_row_is_listed_in_docs_errors_md():
    doc = (REPO_ROOT / "docs" / "ERRORS.md").read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"add these rows to docs/ERRORS.md: {missing}"


# ---------------------------------------------------------------------------------------------------------------
# I/O failures: every writing command against a read-only output folder and a full disk (RLIMIT_FSIZE=0: every
# write past byte 0 fails with EFBIG, as on a full disk, and empty files or folders left behind show up in the tree)


def io_argv(t: Path, fx, command: str, folder: Path) -> list:
    """The writing command `command` writing into the existing `folder` (an output folder or file in it)."""
    out = folder / "out"
    corpus = write(t / "corpus.txt", "The first sentence. The second one.\n\nAnother document here.\n" * 20)
    texts = write(t / "texts.txt", "a fine film\na dull film\n")
    return {
        "tokenizer-train": ["tokenizer", "train", "--input", corpus, "--vocab-size", "100", "--out", out],
        "prepare": ["prepare", "--input", corpus, "--tokenizer", fx.tok, "--out", out, "--workers", "0",
                    "--no-progress"],
        "pretrain": pretrain_argv(t, fx, DEBUG, "--train.steps=2", "--train.eval_every=0", "--run.tensorboard=false",
                                  "--run.report=false", "--run.export=false", f"--run.out={out}"),
        "export": ["export", fx.run, "--out", out],
        "finetune": ["finetune", "--model", fx.clf, "--out", out, "--no-progress", "--threads", "1", "--epochs", "1",
                     "--task", "sst2", "--data", sst2_data(t)],
        "predict": ["predict", "--model", fx.clf, "--input", texts, "--output", folder / "out.jsonl"],
        "detect": ["detect", "--model", fx.disc, "the film was good", "--html", folder / "page.html"],
    }[command]


WRITING_COMMANDS = ["tokenizer-train", "prepare", "pretrain", "export", "finetune", "predict", "detect"]
# Rows whose command leaves a half-written file behind on a full disk; the owner's fix turns the xfail into a pass
# (strict: then remove the name here). Found by this test; see docs/ERRORS.md.
LEAVES_PARTIAL_FILES: dict[str, str] = {}  # none left: every writer removes its temporaries


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def read_only_folder(tmp_path):
    """tmp_path/ro, read-only: chmod 0o555, and where that does not stop us (root) the immutable attribute too."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _writable(folder):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0 \
            if shutil.which("chattr") else False
    try:
        if _writable(folder):
            pytest.skip("cannot make a read-only folder here (root without chattr)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("command", WRITING_COMMANDS)
def test_read_only_output_folder_one_line_exit_2(command, fx, tmp_path, read_only_folder, capsys):
    argv = [str(a) for a in io_argv(tmp_path, fx, command, read_only_folder)]
    before = tree(tmp_path)
    code = main(argv)
    _check(code, capsys.readouterr().err, [f"{read_only_folder}"], tmp_path, before)


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.xfail(
    strict=True, reason=LEAVES_PARTIAL_FILES[c])) if c in LEAVES_PARTIAL_FILES else c for c in WRITING_COMMANDS])
def test_full_disk_one_line_exit_2_nothing_left(command, fx, tmp_path, capsys):
    import resource

    (tmp_path / "w").mkdir()
    argv = [str(a) for a in io_argv(tmp_path, fx, command, tmp_path / "w")]
    before = tree(tmp_path)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits[1]))  # Python ignores SIGXFSZ: writes raise EFBIG
    try:
        code = main(argv)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    _check(code, capsys.readouterr().err, ["File too large"], tmp_path, before)


def test_io_failures_are_listed_in_docs_errors_md():
    doc = (REPO_ROOT / "docs" / "ERRORS.md").read_text(encoding="utf-8")
    section = doc[doc.index("## I/O and device failures"):]
    for command in WRITING_COMMANDS:
        assert f"`{command.replace('-', ' ')}" in section, command
