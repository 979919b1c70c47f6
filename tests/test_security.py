"""Security: weights and states are read only through safetensors and `torch.load(weights_only=True)` (never pickled
code), no default path touches the network, and nothing is overwritten without --overwrite.

- A checkpoint whose optimizer.pt or state.pt is a pickle with a malicious `__reduce__` (its checksums updated, as an
  attacker would) is refused with one line, through the API and through `electra pretrain --resume`, and the payload
  never runs; so is a prepared-data index (.npy) holding pickled objects. (An HF folder's pytorch_model.bin is
  covered by tests/test_hf.py::test_pickle_weights_with_code_are_refused.)
- The main commands (tokenizer train, prepare with a worker process, pretrain, export, finetune, predict, fill-mask)
  run in a subprocess whose sockets are disabled by a sitecustomize.py on PYTHONPATH, with HF_HUB_OFFLINE and
  TRANSFORMERS_OFFLINE unset so nothing hides a download attempt; every attempt is logged and the log must be empty.
- Every writing command refuses an existing output that looks like its own without --overwrite and leaves it
  byte-for-byte unchanged.

    .venv/bin/pytest -q tests/test_security.py
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from electra import checkpoint
from electra.cli import main
from electra.loader import PretrainDataset
from electra.errors import ElectraError
from electra.sources import REPO_ROOT
from test_bad_input import DEBUG, GOOD_TSV, copy, fx, tree, write  # noqa: F401 (fx is a fixture)


class Payload:
    """Unpickling this runs code: it writes the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def plant(path: Path, marker: Path, fmt: str) -> None:
    """Replace `path` with a malicious pickle: torch.save's zip format or a bare pickle stream."""
    if fmt == "torch.save":
        torch.save({"state": {}, "param_groups": [], "x": Payload(marker)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"step": 1, "x": Payload(marker)}, f)


def reseal(ckpt: Path) -> None:
    """Update checkpoint.json's sizes and sha256 so the planted file passes verification (an attacker can)."""
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    for name in meta["files"]:
        meta["files"][name] = {"sha256": checkpoint.sha256(ckpt / name), "bytes": (ckpt / name).stat().st_size}
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("fmt", ["torch.save", "pickle"])
@pytest.mark.parametrize("name", ["optimizer.pt", "state.pt"])
def test_malicious_pickle_in_a_checkpoint_is_refused(fx, tmp_path, name, fmt):
    run = copy(fx.run, tmp_path / "run")
    ckpt = checkpoint.list_checkpoints(run)[-1]
    marker = tmp_path / "pwned"
    plant(ckpt / name, marker, fmt)
    reseal(ckpt)
    assert checkpoint.latest_valid(run) == ckpt  # it verifies: only the loader stands between it and the payload
    objective, _ = checkpoint.load_objective(ckpt)  # the weights (safetensors) still load: no pickle involved
    optimizer = torch.optim.AdamW(objective.parameters()) if name == "optimizer.pt" else None
    with pytest.raises(ElectraError, match=f"{name}: refused or unreadable with weights_only=True") as e:
        checkpoint.load_state(ckpt, optimizer)
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_resume_from_a_checkpoint_with_pickled_code_is_refused(fx, tmp_path, debug_overrides, capsys):
    run = copy(fx.run, tmp_path / "run")
    ckpt = checkpoint.list_checkpoints(run)[-1]
    marker = tmp_path / "pwned"
    plant(ckpt / "state.pt", marker, "torch.save")
    reseal(ckpt)
    before = tree(run)
    code = main(["pretrain", DEBUG, *debug_overrides(run, "--train.steps=4"), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("electra pretrain: error: ") and "state.pt: refused or unreadable with weights_only" in last
    assert not marker.exists()
    after = tree(run)
    assert {k: v for k, v in after.items() if k.startswith("checkpoints")} == \
        {k: v for k, v in before.items() if k.startswith("checkpoints")}  # the checkpoints are untouched


def test_prepared_index_with_pickled_objects_is_refused(fx, tmp_path):
    data = copy(fx.data, tmp_path / "data")
    marker = tmp_path / "pwned"
    index = data / "train-00000.idx.npy"
    np.save(index, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ElectraError, match="train-00000.idx.npy is not a valid index file"):
        PretrainDataset(data)
    assert not marker.exists()


def test_the_package_reads_pickles_only_with_weights_only():
    """Every torch.load in electra/ passes weights_only=True; no pickle.load(s), no np.load(allow_pickle=True)."""
    import ast

    found = []
    for path in sorted((REPO_ROOT / "electra").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            kw = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
            name = f"{owner}.{node.func.attr}"
            if name == "torch.load" and kw.get("weights_only") is not True or name in ("pickle.load", "pickle.loads") \
                    or name == "np.load" and kw.get("allow_pickle") is True:
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}")
    assert not found
    assert any("weights_only=True" in p.read_text() for p in (REPO_ROOT / "electra").glob("*.py"))


# ---------------------------------------------------------------------------------------------------------------
# No network


SITECUSTOMIZE = '''
"""Loaded at start-up from PYTHONPATH by the test: every network attempt is logged and refused."""
import os
import socket

_LOG = os.environ["ELECTRA_TEST_NET_LOG"]
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _refuse(what, *args):
    with open(_LOG, "a") as f:
        f.write(f"{os.getpid()} {what} {args!r}\\n"[:300])
    raise OSError(f"network disabled by the test: {what}")


def connect(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):  # local pipes (multiprocessing) are not the network
        return _connect(self, address)
    _refuse("connect", address)


def connect_ex(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect_ex(self, address)
    _refuse("connect_ex", address)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.create_connection = lambda *a, **k: _refuse("create_connection", *a)
socket.getaddrinfo = lambda *a, **k: _refuse("getaddrinfo", *a)
'''

DRIVER = '''
"""Runs the main commands in one process (one torch import) and prints each exit code as JSON."""
import json
import os
import socket
import sys

from electra.cli import main

try:  # the guard is live in this process
    socket.create_connection(("example.com", 80), timeout=1)
    sys.exit("sitecustomize is not active")
except OSError as e:
    assert "network disabled by the test" in str(e), e
os.remove(os.environ["ELECTRA_TEST_NET_LOG"])  # that attempt was ours; from here on the log must stay empty

codes = {}
for argv in json.loads(sys.argv[1]):
    codes[" ".join(argv[:2])] = main(argv)
print(json.dumps(codes))
'''


def test_main_commands_never_touch_the_network(wiki_en_slice, shared_data, tmp_path):
    site = write(tmp_path / "site" / "sitecustomize.py", SITECUSTOMIZE).parent
    log = tmp_path / "net.log"
    corpus = sorted(wiki_en_slice.rglob("wiki_*"))[0]
    write(tmp_path / "sst2" / "train.tsv", GOOD_TSV + "".join(GOOD_TSV.splitlines(True)[1:]) * 7)
    write(tmp_path / "sst2" / "dev.tsv", GOOD_TSV)
    write(tmp_path / "texts.txt", "a fine film\n[\"a pair\", \"of texts\"]\n")
    t = tmp_path
    commands = [
        ["tokenizer", "train", "--input", corpus, "--vocab-size", "600", "--out", t / "tok"],
        ["prepare", "--input", corpus, "--tokenizer", t / "tok", "--out", t / "data", "--seq-len", "64",
         "--workers", "1", "--valid-fraction", "0.1", "--no-progress"],
        ["pretrain", DEBUG, f"--data.dir={t / 'data'}", f"--run.out={t / 'run'}", "--train.steps=2",
         "--train.eval_every=2", "--train.eval_batches=1", "--train.checkpoint_every=2", "--run.progress=false",
         "--train.threads=1", "--run.report=false"],
        ["export", t / "run", "--out", t / "hf"],
        ["finetune", "--task", "sst2", "--model", t / "run", "--data", t / "sst2", "--out", t / "ft", "--epochs", "1",
         "--no-progress", "--threads", "1"],
        ["predict", "--model", t / "ft", "--input", t / "texts.txt", "--output", t / "preds.jsonl"],
        ["fill-mask", "--model", t / "hf" / "generator", "the [MASK] of the city"],
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                            "HF_DATASETS_OFFLINE")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               ELECTRA_TEST_NET_LOG=str(log), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([[str(a) for a in c] for c in commands])],
                       capture_output=True, text=True, timeout=600, env=env, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    codes = json.loads(r.stdout.strip().splitlines()[-1])
    assert codes == {" ".join(map(str, c[:2])): 0 for c in commands}, r.stderr[-3000:]
    assert not log.exists(), log.read_text()
    assert len((t / "preds.jsonl").read_text().splitlines()) == 2
    assert (t / "hf" / "discriminator" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------------------------
# Nothing overwritten without --overwrite


def _existing(kind: str, t: Path, fx) -> Path:
    """An existing output that looks like the command's own."""
    if kind == "tokenizer":
        return copy(fx.tok, t / "out")
    if kind == "prepared":
        return copy(fx.data, t / "out")
    if kind == "run":
        return copy(fx.run, t / "out")
    if kind == "hf":
        out = t / "out"
        copy(fx.disc, out / "discriminator")
        copy(fx.gen, out / "generator")
        return out
    if kind == "finetune":
        out = t / "out"
        copy(fx.clf, out / "model")
        write(out / "metrics.json", "{}\n")
        return out
    return write(t / "out", "earlier results\n")


WRITERS = {  # command: (what exists at OUT, argv with OUT as the output)
    "tokenizer-train": ("tokenizer", lambda t, fx: ["tokenizer", "train", "--input", t / "c.txt", "--vocab-size", "60"]),
    "tokenizer-import": ("tokenizer", lambda t, fx: ["tokenizer", "import", "--vocab", fx.tok / "vocab.txt"]),
    "prepare": ("prepared", lambda t, fx: ["prepare", "--input", t / "c.txt", "--tokenizer", fx.tok, "--workers", "0",
                                           "--no-progress"]),
    "pretrain": ("run", lambda t, fx: ["pretrain", DEBUG, f"--data.dir={fx.data}", "--train.steps=1",
                                       "--run.progress=false"]),
    "export": ("hf", lambda t, fx: ["export", fx.run]),
    "finetune": ("finetune", lambda t, fx: ["finetune", "--task", "sst2", "--model", fx.clf, "--data", t / "sst2",
                                            "--epochs", "1", "--no-progress"]),
    "evaluate": ("file", lambda t, fx: ["evaluate", "--model", fx.clf, "--data", t / "sst2"]),
    "predict": ("file", lambda t, fx: ["predict", "--model", fx.clf, "--input", t / "c.txt"]),
    "detect": ("file", lambda t, fx: ["detect", "--model", fx.disc, "a fine film"]),
}
OUT_FLAG = {"pretrain": "--run.out={}", "evaluate": "--output", "predict": "--output", "detect": "--html"}


@pytest.mark.parametrize("command", WRITERS)
def test_existing_output_is_refused_without_overwrite_and_left_unchanged(command, fx, tmp_path, capsys):
    kind, build = WRITERS[command]
    write(tmp_path / "c.txt", "Some text for the command. Another sentence here.\n")
    write(tmp_path / "sst2" / "train.tsv", GOOD_TSV)
    write(tmp_path / "sst2" / "dev.tsv", GOOD_TSV)
    out = _existing(kind, tmp_path, fx)
    flag = OUT_FLAG.get(command, "--out")
    argv = [str(a) for a in build(tmp_path, fx)] + ([flag.format(out)] if "{}" in flag else [flag, str(out)])
    before = tree(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(out) in err and ("--overwrite" in err or "--resume" in err or "choose another" in err), err
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", ["tokenizer-import", "predict", "detect"])
def test_overwrite_flag_replaces_the_output(command, fx, tmp_path, capsys):
    kind, build = WRITERS[command]
    write(tmp_path / "c.txt", "a fine film\n")
    out = _existing(kind, tmp_path, fx)
    if kind == "tokenizer":
        (out / "vocab.txt").write_text("stale\n")
    flag = OUT_FLAG.get(command, "--out")
    assert main([str(a) for a in build(tmp_path, fx)] + [flag, str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert "earlier results" not in (out.read_text() if out.is_file() else (out / "vocab.txt").read_text())
    assert "stale" not in (out.read_text() if out.is_file() else (out / "vocab.txt").read_text())
