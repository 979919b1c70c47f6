"""The end-of-run report of a pretraining run: curves.png (drawn by electra.plots) and a short report.html, from
metrics.jsonl.

    from electra.report import write_report
    write_report("runs/debug")          # -> runs/debug/report.html (+ runs/debug/curves.png)

    python -m electra.report runs/debug

The PNG has four panels: losses (train and held-out), generator and discriminator accuracy (train and held-out),
discriminator precision / recall / held-out AUC, and the learning rate. The HTML page shows the figure, the final
numbers, any collapse diagnosis in plain words, and where the checkpoints and exported folders are.
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from electra.errors import ElectraError
from electra.plots import plot_curves


def read_metrics(run_dir) -> list[dict]:
    """The records of RUN/metrics.jsonl (a line cut short by a crash is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ElectraError(f"{path} not found: not a pretraining run folder")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def write_report(run_dir) -> Path:
    """Write RUN/curves.png and RUN/report.html; returns the HTML path."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    plot_curves(records, run_dir / "curves.png")
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    diagnoses = [r for r in records if r.get("kind") == "diagnosis"]
    config = {}
    if (run_dir / "config.json").is_file():
        config = json.loads((run_dir / "config.json").read_text())

    def table(rec: dict) -> str:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rec.items() if k != "kind")
        return f"<table>{rows}</table>"

    parts = [f"<h1>ELECTRA pretraining: {html.escape(run_dir.name)}</h1>"]
    if train:
        first, last = train[0], train[-1]
        parts.append(f"<p>{last['step']:,} steps. Loss {first['loss']:.4g} (step {first['step']}) &rarr; "
                     f"{last['loss']:.4g}; generator accuracy {first.get('mlm_acc', 0):.1%} &rarr; "
                     f"{last.get('mlm_acc', 0):.1%}; discriminator accuracy {first.get('rtd_acc', 0):.1%} &rarr; "
                     f"{last.get('rtd_acc', 0):.1%}.</p>")
    parts.append('<img src="curves.png" alt="training curves" style="max-width:100%">')
    if diagnoses:
        parts.append("<h2>Diagnoses</h2><ul>" + "".join(
            f"<li>step {d['step']}: {html.escape(d['message'])}</li>" for d in diagnoses) + "</ul>")
    else:
        parts.append("<h2>Diagnoses</h2><p>No collapse detected (discriminator recall on replaced tokens and the "
                     "generator/discriminator balance stayed in range).</p>")
    if train:
        parts.append("<h2>Last training log</h2>" + table(train[-1]))
    if evals:
        parts.append("<h2>Last held-out evaluation</h2>" + table(evals[-1]))
    derived = config.get("derived")
    if derived:
        parts.append("<h2>Set-up</h2>" + table(derived))
    outputs = [p for p in ("checkpoints", "hf/discriminator", "hf/generator", "hf/mlm", "metrics.jsonl", "tb")
               if (run_dir / p).exists()]
    parts.append("<h2>Files</h2><ul>" + "".join(f"<li><code>{html.escape(str(run_dir / p))}</code></li>"
                                                 for p in outputs) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td{border:1px solid #ccc;padding:2px 8px}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run_dir.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m electra.report RUN_DIR", file=sys.stderr)
        raise SystemExit(2)
    print(write_report(sys.argv[1]))
