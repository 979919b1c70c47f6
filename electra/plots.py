"""Every matplotlib figure the package draws (Agg backend, PNG files written atomically): a pretraining run's training
curves and the fidelity study's score plots. Callers pass plain records (metrics.jsonl lines, study results), so
nothing here knows about configs.

    from electra.plots import plot_curves, score_vs_compute, score_vs_setting
    plot_curves(read_metrics("runs/debug"), "runs/debug/curves.png")             # electra.report draws this
    score_vs_compute(results, ["sst2", "mrpc", "average"], "paper", out / "score_vs_compute.png")
    score_vs_setting(results, names, "mask_prob", "mask rate", out / "score_vs_mask_rate.png")   # None: < 2 values

A study result (a dict of results.json's "runs") is read for: name, kind, flops[convention], average,
generator_hidden_fraction, mask_prob and tasks[name] = {median, min, max}.
"""
from __future__ import annotations

import os
from pathlib import Path


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported only when a figure is drawn (it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, dpi: int = 120) -> Path:
    """Save `fig` to `path` through a temporary file and os.replace (a reader never sees half a PNG; a failed write
    leaves no temporary), then close it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")  # .png: savefig picks the format from the name
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _pyplot().close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------------
# A pretraining run: curves.png from metrics.jsonl records

RIGHT = "right"  # a line drawn on the panel's second y axis (its own scale)
CURVE_PANELS = [  # (title, [(record kind, key, label[, RIGHT]), ...]) of the 2 x 2 grid, row by row
    ("loss (RTD loss on the right axis)", [
        ("train", "loss", "total loss"), ("eval", "eval_loss", "held-out total loss"),
        ("train", "mlm_loss", "generator MLM loss"), ("eval", "eval_mlm_loss", "held-out MLM loss"),
        ("train", "rtd_loss", "discriminator RTD loss", RIGHT), ("eval", "eval_rtd_loss", "held-out RTD loss", RIGHT)]),
    ("accuracy", [("train", "mlm_acc", "generator acc"), ("train", "rtd_acc", "discriminator acc"),
                  ("eval", "eval_mlm_acc", "held-out generator acc"),
                  ("eval", "eval_rtd_acc", "held-out discriminator acc")]),
    ("replaced-token detection", [("train", "rtd_precision", "precision"), ("train", "rtd_recall", "recall"),
                                  ("train", "replaced_frac", "replaced fraction"),
                                  ("eval", "eval_rtd_auc", "held-out AUC")]),
    ("learning rate", [("train", "lr", "lr")]),
]


def _series(records: list[dict], kind: str, key: str) -> tuple[list, list]:
    pts = [(r["step"], r[key]) for r in records if r.get("kind") == kind and r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def curve_figure(records: list[dict]):
    """The figure of plot_curves: four panels; a line marked RIGHT goes on a second y axis of its panel (the RTD
    loss is ~0.1-0.7 beside a total of ~10-40: on one axis it would look flat)."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (title, lines) in zip(axes.flat, CURVE_PANELS):
        right, colors = None, iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])  # one cycle for both axes
        for kind, key, label, *where in lines:
            x, y = _series(records, kind, key)
            if not x:
                continue
            if where and right is None:
                right = ax.twinx()
            (right if where else ax).plot(x, y, marker="o" if kind == "eval" else None, markersize=3, label=label,
                                          color=next(colors))
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        handles = ax.lines + (right.lines if right is not None else [])
        if handles:
            ax.legend(handles, [h.get_label() for h in handles], fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(records: list[dict], out_png) -> Path:
    """curves.png: losses (total and generator; the RTD loss on its own axis), generator / discriminator accuracy,
    replaced-token detection, learning rate."""
    return save_png(curve_figure(records), out_png, dpi=100)


# ---------------------------------------------------------------------------------------------------------------
# The fidelity study: one panel per task (and the average), median with a min-max bar over seeds


def _score(result: dict, name: str) -> tuple[float, float, float]:
    """(median, min, max) of one task over seeds, or the average of the medians (no spread)."""
    if name == "average":
        return result["average"], result["average"], result["average"]
    t = result["tasks"][name]
    return t["median"], t["min"], t["max"]


def _kind_colors(plt, results: list[dict]) -> tuple[list[str], dict]:
    kinds = sorted({r["kind"] for r in results})
    return kinds, {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(kinds)}


def _panels(plt, names: list[str]):
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    return fig, axes[0]


def score_vs_compute(results: list[dict], names: list[str], convention: str, path) -> Path:
    """Score against pretraining FLOPs (log x); at equal compute the points share one x, so labels are staggered."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    _, colors = _kind_colors(plt, results)
    fig, axes = _panels(plt, names)
    flops = [r["flops"][convention] for r in results]
    for ax, name in zip(axes, names):
        for i, r in enumerate(results):
            med, lo, hi = _score(r, name)
            ax.errorbar([r["flops"][convention]], [med], yerr=[[med - lo], [hi - med]], fmt="o", capsize=3,
                        color=colors[r["kind"]], label=r["kind"])
            ax.annotate(r["name"], (r["flops"][convention], med), fontsize=6, xytext=(4, 2 + 7 * (i % 4)),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlim(min(flops) / 1.5, max(flops) * 1.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"pretraining FLOPs ({convention})")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("dev score (median, min-max over seeds)")
    handles = {h.get_label(): h for h in axes[0].get_legend_handles_labels()[0]}  # one legend entry per kind
    axes[0].legend(handles.values(), handles.keys(), fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)


def score_vs_setting(results: list[dict], names: list[str], key: str, label: str, path) -> Path | None:
    """Score against a swept setting (`key` of each result), one line per objective; a run without the setting
    (MLM: no generator) is a dashed level. None (nothing drawn) when fewer than two values were swept."""
    if len({r[key] for r in results if r[key] is not None}) < 2:
        return None
    plt = _pyplot()
    kinds, colors = _kind_colors(plt, results)
    fig, axes = _panels(plt, names)
    for ax, name in zip(axes, names):
        for kind in kinds:
            pts = sorted((r[key], *_score(r, name)) for r in results if r["kind"] == kind and r[key] is not None)
            if pts:
                xs, med, lo, hi = zip(*pts)
                ax.errorbar(xs, med, yerr=[[m - a for m, a in zip(med, lo)], [b - m for m, b in zip(med, hi)]],
                            fmt="o-", capsize=3, color=colors[kind], label=kind)
            for r in (r for r in results if r["kind"] == kind and r[key] is None):
                ax.axhline(_score(r, name)[0], color=colors[kind], linestyle="--", label=kind)
        if key == "generator_hidden_fraction":
            ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("dev score (median, min-max over seeds)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)
