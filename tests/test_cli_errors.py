"""What the CLI does with failures that are not ElectraError: I/O (OSError) and torch device errors become one line,
exit 2; any other exception keeps its traceback (a bug). The read-only / full-disk rows per command are in
tests/test_bad_input.py.

    .venv/bin/pytest -q tests/test_cli_errors.py
"""
from __future__ import annotations

import errno
import sys

import pytest
import torch

from electra.cli import COMMANDS, device_error_message, io_error_message, main

COMMAND_MODULE = '''
import torch

def build_parser(parser):
    parser.add_argument("what")

def run(args):
    if args.what == "no-cuda":
        torch.zeros(1, device="cuda")  # a CPU-only torch: AssertionError / RuntimeError
    if args.what == "bad-device":
        torch.device("gpu")
    if args.what == "bug":
        torch.zeros(2) + torch.zeros(3)
    if args.what == "disk-full":
        raise OSError(28, "No space left on device", "/data/out/shard-00001.bin")
'''


@pytest.fixture
def boom(tmp_path, monkeypatch):
    """A real command module `boom` in the COMMANDS table, whose run() raises what its argument names."""
    (tmp_path / "boom_command.py").write_text(COMMAND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "boom", ("boom_command", "raise things"))
    yield
    sys.modules.pop("boom_command", None)


def test_torch_device_errors_are_one_line(boom, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: no device error to provoke")
    for what in ("no-cuda", "bad-device"):
        assert main(["boom", what]) == 2
        err = capsys.readouterr().err
        assert err.startswith("electra boom: error: device error: ") and err.count("\n") == 1, err


def test_disk_full_is_one_line_with_path_and_hint(boom, capsys):
    assert main(["boom", "disk-full"]) == 2
    err = capsys.readouterr().err
    assert err == ("electra boom: error: No space left on device: /data/out/shard-00001.bin (the disk is full: free "
                   "some space or choose another output path)\n")


def test_other_errors_keep_their_traceback(boom):
    with pytest.raises(RuntimeError, match="size of tensor"):
        main(["boom", "bug"])


def test_messages():
    assert io_error_message(PermissionError(errno.EACCES, "Permission denied", "/ro/out")) == \
        "Permission denied: /ro/out (check the permissions, or choose another output path)"
    assert io_error_message(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")) == \
        "Invalid cross-device link: /a -> /b"
    assert device_error_message(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")) == \
        "device error: CUDA out of memory. Tried to allocate 2.00 GiB (lower the batch size or sequence length)"
    assert device_error_message(RuntimeError("Expected all tensors to be on the same device")) is None
