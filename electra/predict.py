"""Predictions from a fine-tuned model folder: the Python API and `electra predict`.

    from electra import load
    model = load("runs/sst2/model")                       # OUT/model of `electra finetune`, or OUT itself
    model.predict(["a gripping film", "dull"])            # [{"label": "1", "probabilities": {"0": .., "1": ..}}, ..]
    model.predict([("The cat sat.", "A cat was sitting.")])             # sentence pairs
    load("runs/ner/model").predict(["EU rejects German call"])          # {"words", "tags", "entities"}
    load("runs/cmrc/model").predict([{"question": q, "context": c}])    # {"answer", "start", "score", "n_best"}

    load("runs/sst2/model", runtime="onnx", int8=True)   # onnxruntime; int8 weights (faster, lossy: opt-in)

    electra predict --model runs/sst2/model --input texts.txt --output preds.jsonl
    cat pairs.jsonl | electra predict --model runs/mrpc/model --input - --output -
    electra predict --model runs/sst2/model --input big.txt --output preds.jsonl --runtime onnx --int8
    electra predict --model runs/sst2/seeds/0/model --model runs/sst2/seeds/1/model --input texts.txt  # ensemble

Input lines for the command: a JSON value (a string, a [text, text] pair, or an object such as {"text": ..},
{"text_a": .., "text_b": ..}, {"question": .., "context": ..}, {"words": [..]}) or, when a line is not JSON, the raw
text. Output: one JSON object per input line, in order. The folder's `electra_task.json` (written by fine-tuning)
names the task, labels and lengths; a plain HF ElectraFor* task folder works too (task from its architecture).

Speed: inputs are sorted by length into batches, each padded only to its longest, and written back in input order.
`--runtime auto` (the default) uses onnxruntime on a CPU for 500 inputs or more when the `onnx` extra is installed
(same logits within 1e-4, faster: docs/PERFORMANCE.md), else PyTorch; `--int8` quantises the weights (lossy).
Several `--model` folders (repeated or comma-separated; `load([...])`) average the classifiers' probabilities
(electra/ensemble.py); an ensemble runs on PyTorch.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from pathlib import Path

from electra.errors import ElectraError
from electra.threads import HELP, torch_threads


class Predictor:
    """A fine-tuned TaskModel with its tokenizer and task: `.predict(items) -> list[dict]`, batched."""

    def __init__(self, model, tokenizer, task, labels, cfg, device):
        from electra.tokenizer import special_ids

        self.model, self.tokenizer, self.task, self.labels, self.cfg = model, tokenizer, task, labels, cfg
        self.device = device
        self.runner, self.runtime = model, "torch"  # what infer() calls: the model, or see use_runtime
        self.pad_id = special_ids(tokenizer)["pad"]
        self.counts = Counter()  # truncations and the like, over all calls

    def predict(self, items, batch_size: int | None = None) -> list[dict]:
        """Texts, text pairs, or task inputs (see the module docstring) -> one dict per item."""
        from electra.inference import infer

        if isinstance(items, (str, dict)):
            raise ElectraError("predict() takes a list of inputs; wrap a single input in a list")
        examples = [self.task.from_input(item) for item in items]
        if not examples:
            return []
        features, counts = self.task.encode(examples, self.tokenizer, self.labels, self.cfg)
        self.counts.update(counts)
        outputs = infer(self.runner, features, batch_size or self.cfg.eval_batch_size, self.pad_id, self.device)
        predictions = self.task.decode(examples, features, outputs, self.labels, self.cfg)
        return [{k: v for k, v in self.task.to_output(e, p).items() if not (k == "id" and v == "")}
                for e, p in zip(examples, predictions)]

    def use_runtime(self, runtime: str = "auto", int8: bool = False, n_inputs: int | None = None) -> str:
        """Predict with `runtime` (auto, torch, onnx; see electra.inference.runtime_model), int8 or not; returns
        the runtime chosen. The PyTorch model stays in `.model`."""
        from electra.ensemble import Averaged
        from electra.inference import pick_runtime, runtime_model

        if isinstance(self.model, Averaged):
            if runtime == "onnx" or int8:
                raise ElectraError("an ensemble of models runs on PyTorch; drop --runtime onnx and --int8")
            self.runtime = f"torch, ensemble of {len(self.model.members)}"
            return self.runtime
        self.runtime = pick_runtime(runtime, self.model, self.device, n_inputs) + (" int8" if int8 else "")
        self.runner = runtime_model(self.model, self.runtime.split()[0], int8, self.device)
        return self.runtime


def load(path, device=None, runtime: str = "torch", int8: bool = False) -> Predictor:
    """A Predictor for OUT/model (or OUT) of `electra finetune`, or an HF ElectraFor* task folder; a list of them
    (or "a,b") averages their probabilities (classifiers only). `runtime`: torch (default), onnx (onnxruntime, CPU)
    or auto; `int8`: dynamic int8 weights (faster on CPU, lossy)."""
    from electra.ensemble import load_ensemble

    predictor = Predictor(*load_ensemble(path, device))
    if runtime != "torch" or int8:
        predictor.use_runtime(runtime, int8)
    return predictor


# ---------------------------------------------------------------------------------------------------------------
# electra predict


def parse_line(line: str):
    """A JSON value, or the raw text when the line is not JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return line


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", action="append",
                        help="fine-tuned model folder (OUT/model of `electra finetune`, or OUT); several (repeat the "
                             "flag or comma-separate) average their probabilities (classifiers)")
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="one input per line: JSON (text, [a, b] pair, object) or raw text; - = stdin")
    parser.add_argument("--output", default="-", metavar="FILE", help="JSONL predictions; - = stdout (default -)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="inputs per forward pass (64)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"),
                        help="torch, onnx (onnxruntime, CPU) or auto: onnx on a CPU for 500+ inputs when installed")
    parser.add_argument("--int8", action="store_true",
                        help="dynamic int8 quantisation of the weights: faster on CPU, slightly different outputs")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help=HELP + " (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.batch_size < 1:
        raise ElectraError(f"--batch-size {args.batch_size} must be at least 1")
    if args.input != "-" and not Path(args.input).is_file():
        raise ElectraError(f"input file {args.input} not found")
    out_path = None if args.output == "-" else Path(args.output)
    if out_path is not None and out_path.exists() and not args.overwrite:
        raise ElectraError(f"{out_path} already exists; pass --overwrite to replace it")
    predictor = load(args.model, device=args.device)
    from electra.files import read_utf8

    try:  # a file that is not UTF-8 is an error naming its line (read_utf8); so is such standard input
        text = sys.stdin.read() if args.input == "-" else read_utf8(args.input)
    except UnicodeDecodeError as e:
        raise ElectraError(f"standard input is not UTF-8 text ({e.reason})") from None
    items = [parse_line(line.rstrip("\n")) for line in io.StringIO(text, newline=None) if line.strip()]
    results = []
    chunk = args.batch_size * 16  # encode and decode in chunks: bounded memory, a moving progress bar
    with torch_threads(args.threads):  # the one thread rule (electra/threads.py); also what ONNX Runtime gets
        runtime = predictor.use_runtime(args.runtime, args.int8, len(items))
        for start in tqdm(range(0, len(items), chunk), desc="predict", unit="chunk", file=sys.stderr,
                          disable=len(items) <= chunk):
            results += predictor.predict(items[start:start + chunk], batch_size=args.batch_size)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if out_path is None:
        sys.stdout.write(text)
    else:
        from electra.files import write_text

        write_text(out_path, text)  # atomic; the temporary is removed on a failure
    for what, n in sorted(predictor.counts.items()):
        if n:
            print(f"warning: {n:,} of {len(items):,} inputs {what}", file=sys.stderr)
    print(f"predicted {len(results):,} inputs with {predictor.task.name} ({runtime})"
          + (f" -> {out_path}" if out_path else ""), file=sys.stderr)
    return 0
