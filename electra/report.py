"""The end-of-run report of a pretraining run: curves.png (drawn by electra.plots) and a short report.html, from
metrics.jsonl.

    from electra.report import write_report
    write_report("runs/debug")          # -> runs/debug/report.html (+ runs/debug/curves.png)

    python -m electra.report runs/debug

The PNG has four panels: losses (train and held-out), generator and discriminator accuracy (train and held-out),
discriminator precision / recall / held-out AUC, and the learning rate. The HTML page shows the figure, the final
numbers, each held-out evaluation beside its reference detectors (electra/reference.py), any collapse diagnosis in
plain words, the demo's summary.json when there is one, and where the checkpoints and exported folders are.
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


def _evals_section(evals: list[dict]) -> str:
    """Each held-out evaluation: the AUC beside the reference detectors, the hidden-state cosines, what it means
    (the same lines as the console and metrics.jsonl)."""
    cols = [("step", "step"), ("tokens seen", "tokens_seen"), ("AUC", "eval_rtd_auc"),
            ("token prior AUC", "eval_token_prior_auc"), ("bigram AUC", "eval_bigram_auc"),
            ("hidden cosine", "eval_hidden_cos"), ("random-init cosine", "eval_hidden_cos_random")]
    head = "".join(f"<th>{c}</th>" for c, _ in cols) + "<th>what it means</th>"
    rows = "".join("<tr>" + "".join(f"<td>{'-' if e.get(k) is None else _fmt(e[k])}</td>" for _, k in cols)
                   + f"<td>{html.escape(e.get('explanation', ''))}</td></tr>" for e in evals)
    warnings = "".join(f"<li>step {e['step']}: {html.escape(w)}</li>" for e in evals for w in e.get("warnings", []))
    return ("<h2>Held-out evaluations, with reference points</h2><p>The token prior knows which tokens the generator "
            "puts in and nothing of context; the bigram counts know adjacent pairs of the training text. The hidden "
            "cosine is the mean cosine between the discriminator's final states of random held-out tokens (near 1: "
            "collapsed), beside a random-init copy's.</p>"
            f"<table><tr>{head}</tr>{rows}</table>" + (f"<ul>{warnings}</ul>" if warnings else ""))


def _summary_section(s: dict) -> str:
    """The demo's summary.json: pretraining, the reference AUCs and the fine-tuning comparison."""
    p, ref, ft = s.get("pretrain", {}), s.get("reference_auc", {}), s.get("finetune") or {}
    num = lambda v, f="{:.3f}": "-" if v is None else f.format(v)  # noqa: E731
    text = (f"<h2>Demo result</h2><p>Pretraining: {p.get('steps', 0):,} steps; held-out AUC "
            f"{num(p.get('eval_auc'))} (token prior {num(ref.get('token_prior'))}, bigram {num(ref.get('bigram'))}), "
            f"generator accuracy {num(p.get('eval_gen_acc'), '{:.1%}')}.</p>")
    if ft:
        metric = html.escape(str(ft.get("metric", "")))
        text += (f"<p>Fine-tuned on {html.escape(str(ft.get('task')))} ({metric}): pretrained "
                 f"<b>{num(ft.get('pretrained'), '{:.2f}')}</b>, the same architecture from random init "
                 f"<b>{num(ft.get('scratch'), '{:.2f}')}</b>.</p>")
    return text + f"<p>{num(s.get('minutes'), '{:.1f}')} minutes in all.</p>"


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
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rec.items()
                       if k not in ("kind", "explanation", "warnings"))
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
    if evals:
        parts.append(_evals_section(evals))
    summary = run_dir / "summary.json"
    if summary.is_file():
        parts.append(_summary_section(json.loads(summary.read_text())))
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
