"""Command-line interface: `electra COMMAND [options]` (also `python -m electra`, so `torchrun -m electra` works).

Each command lives in its own module, listed in `COMMANDS`. A command module provides two functions:

    def build_parser(parser: argparse.ArgumentParser) -> None   # add the command's arguments
    def run(args: argparse.Namespace) -> int | None              # do the work; return an exit code (None = 0)

Modules are imported only when their command runs, so `electra --help` is fast. User errors (`ElectraError`),
I/O failures (`OSError`: permission denied, read-only or full disk...) and device failures (CUDA missing or out of
memory) print one line and exit 2; Ctrl-C exits 130. Set ELECTRA_TRACEBACK=1 to see the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from electra.errors import ElectraError

# name -> (module, one-line help). A table, not an if/elif ladder: add a row to add a command.
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenizer": ("electra.tokenizer", "train a WordPiece tokenizer on your corpus, or import an existing vocab.txt"),
    "prepare": ("electra.data", "tokenize and pack a corpus into memory-mapped pretraining shards"),
    "pretrain": ("electra.pretrain", "pretrain an ELECTRA generator + discriminator (CPU, GPU, torchrun)"),
    "export": ("electra.export", "export a checkpoint to Hugging Face (or ONNX) format"),
    "flops": ("electra.flops", "print parameter counts and FLOPs per token for a preset or config"),
    "finetune": ("electra.finetune", "fine-tune on GLUE, classification, NER or extractive QA"),
    "evaluate": ("electra.evaluate", "evaluate a fine-tuned model on a task's dev set"),
    "predict": ("electra.predict", "batched predictions from a fine-tuned model to JSONL"),
    "fill-mask": ("electra.usage", "top-k fillers for [MASK] tokens with the generator"),
    "detect": ("electra.usage", "show which tokens the discriminator thinks were replaced"),
    "infill": ("electra.usage", "iterative mask-predict infilling with the generator"),
    "score": ("electra.score", "score texts (log p(all original), PLL) and rerank N-best lists"),
    "study": ("electra.study", "reproduce the paper's comparisons in miniature at equal compute"),
}


# errno -> what to do, appended to the one-line I/O error
IO_HINTS = {
    errno.EACCES: "check the permissions, or choose another output path",
    errno.EPERM: "check the permissions, or choose another output path",
    errno.EROFS: "the file system is read-only: choose another output path",
    errno.ENOSPC: "the disk is full: free some space or choose another output path",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another output path",
    errno.EFBIG: "the file size limit was reached (see `ulimit -f`)",
}
# phrases of torch's RuntimeError / AssertionError messages that mean "this device cannot run it", not a bug
DEVICE_ERRORS = ("CUDA out of memory", "out of memory", "no NVIDIA driver", "NVIDIA driver on your system",
                 "CUDA driver", "CUDA-capable device", "not compiled with CUDA", "CUDA is not available",
                 "no kernel image is available", "Expected one of cpu, cuda", "MPS backend out of memory")


def io_error_message(e: OSError, args: argparse.Namespace | None = None) -> str:
    """`<what>: <path> (<what to do>)` for an OSError; the command's output path when the error names none."""
    what = (e.strerror or str(e) or type(e).__name__).rstrip(".")
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    if not paths and args is not None:
        out = next((getattr(args, k) for k in ("out", "output", "html") if getattr(args, k, None)), None)
        paths = [f"while writing {out}"] if out else []
    hint = IO_HINTS.get(e.errno)
    return f"{what}{': ' + ' -> '.join(paths) if paths else ''}{f' ({hint})' if hint else ''}"


def device_error_message(e: BaseException) -> str | None:
    """The first line of a torch device failure, or None when `e` is something else (a bug: keep the traceback)."""
    text = str(e).strip()
    if not any(phrase in text for phrase in DEVICE_ERRORS):
        return None
    first = text.splitlines()[0] if text else type(e).__name__
    hint = ("lower the batch size or sequence length" if "out of memory" in text
            else "use --device cpu (or auto), or check the GPU driver")
    return f"device error: {first.rstrip('.')} ({hint})"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is an ElectraError: one line, exit 2, like every other user error."""

    def error(self, message: str):
        raise ElectraError(f"{message} (see `{self.prog} --help`)")


def _top_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: electra COMMAND [options]   (python -m electra / torchrun -m electra work too)",
        "",
        "ELECTRA pretraining on your own corpus and fine-tuning, interoperable with Hugging Face.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `electra COMMAND --help` for a command's options.",
              "CPU threads: threads = 0 (the default) means auto: one torch thread per free core, all of them on",
              "an idle machine, fewer when the load average shows other work (at least 1; OMP_NUM_THREADS caps it)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from electra import __version__

        print(f"electra {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        print(f"electra: error: unknown command '{name}'{hint}; run `electra --help` for the list", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    args = None
    try:
        module = importlib.import_module(module_name)
        parser = _Parser(prog=f"electra {name}", description=help_)
        module.build_parser(parser) if not hasattr(module, "build_parsers") else module.build_parsers(name, parser)
        args = parser.parse_args(argv[1:])
        runner = module.run if not hasattr(module, "run_command") else (lambda a: module.run_command(name, a))
        code = runner(args)
        return int(code or 0)
    except ElectraError as e:
        print(f"electra {name}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"electra {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `electra predict ... | head`: the reader has gone; stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except OSError as e:
        if os.environ.get("ELECTRA_TRACEBACK"):
            raise
        print(f"electra {name}: error: {io_error_message(e, args)}", file=sys.stderr)
        return 2
    except (RuntimeError, AssertionError) as e:
        message = device_error_message(e)
        if message is None or os.environ.get("ELECTRA_TRACEBACK"):
            raise
        print(f"electra {name}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
