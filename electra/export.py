"""`electra export`: a pretraining run or checkpoint -> Hugging Face folders (or ONNX).

    electra export runs/small --out hf/                                   # newest valid checkpoint of the run
    electra export runs/small/checkpoints/step_0100000 --out hf-100k/     # one checkpoint
    electra export runs/small --out onnx/ --format onnx                   # HF folders + discriminator.onnx

hf writes OUT/discriminator (ElectraForPreTraining) and OUT/generator (ElectraForMaskedLM), each with the run's
tokenizer files, loadable with `transformers` `from_pretrained`. An MLM-only run writes OUT/mlm. onnx writes the HF
folders and then OUT/discriminator.onnx through `electra.onnx.export_onnx`.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from electra.errors import ElectraError

FORMATS = ("hf", "onnx")


def export(source, out, fmt: str = "hf", overwrite: bool = False) -> dict[str, Path]:
    """Export a run folder or checkpoint folder; returns the written paths by name."""
    from electra.checkpoint import export_hf, load_objective

    if fmt not in FORMATS:
        raise ElectraError(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ElectraError(f"{out} already exists; pass --overwrite to replace it")
    onnx = None
    if fmt == "onnx":
        try:
            onnx = importlib.import_module("electra.onnx")
        except ModuleNotFoundError as e:
            if e.name != "electra.onnx":
                raise ElectraError(f"ONNX export needs the package '{e.name}' (pip install 'electra[onnx]')") \
                    from None
            raise ElectraError("ONNX export needs electra/onnx.py (electra.onnx.export_onnx), which this install "
                               "lacks; use --format hf") from None
    objective, meta = load_objective(source)
    written = export_hf(objective, meta, out, overwrite=True)
    if onnx is not None:
        name = "discriminator" if "discriminator" in written else "mlm"
        written[f"{name}.onnx"] = Path(onnx.export_onnx(written[name], out / f"{name}.onnx"))
    return written


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="CKPT_OR_RUN_DIR",
                        help="a pretraining run folder (its newest valid checkpoint) or one checkpoint folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for discriminator/ + generator/")
    parser.add_argument("--format", choices=FORMATS, default="hf",
                        help="hf: Hugging Face folders; onnx: those plus discriminator.onnx (default: hf)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")


def run(args: argparse.Namespace) -> int:
    written = export(args.source, args.out, args.format, args.overwrite)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
