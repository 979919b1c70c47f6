"""The command-line entry points: `electra --help`, `python -m electra`, unknown commands, one-line errors."""
import subprocess
import sys

from electra.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "electra", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "pretrain" in r.stdout


def test_unknown_command_suggests(capsys):
    assert main(["pretrian"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'pretrain'" in err and "Traceback" not in err


def test_flops_command(capsys):
    assert main(["flops", "--preset", "small"]) == 0
    assert "1.29e+18 FLOPs (paper)" in capsys.readouterr().out


def test_user_error_is_one_line_exit_2(capsys):
    assert main(["flops", "--preset", "huge"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown preset 'huge'" in err
