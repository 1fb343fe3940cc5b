"""The report's figures across methods of a classifier's calibration and its uncertainty on
shifted inputs, drawn from the numbers each cell saved beside its plots.

A cell whose model wrote ``plots/reliability.json`` or ``plots/ood_entropy.json``
(:mod:`inference.calibration_records`; the BNN classifiers do) contributes to two figures per
model and data set: the methods' reliability curves overlaid (accuracy against mean confidence
per bin, with the diagonal), and box plots of predictive entropy per method on the test inputs
and on each shift. Nothing here knows a model or data set by name: the files alone decide.

Usage::

    from benchmarks.report_calibration import calibration_figures
    made = calibration_figures(run, cells_by_key, run / "report_figures", title)
    made[("bnn_classifier", "mnist")]     # [(path, caption), (path, caption)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from benchmarks.cells import CELLS_DIR
from inference.calibration_records import (IN_DISTRIBUTION, load_ood_entropy,
                                           load_reliability)

__all__ = ["calibration_figures", "reliability_overlay", "entropy_boxes"]

Figures = dict[tuple[str, str], list[tuple[Path, str]]]


def _safe(value: Any) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(value))


def reliability_overlay(records: Mapping[str, Mapping[str, Any]], path: Path, title: str
                        ) -> Path:
    """One reliability curve per method (``records``: label -> ``reliability.json``), with
    the bin counts below on a log scale; the legend gives each method's ECE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for label, record in records.items():
        bins = [b for b in record["bins"] if b["count"] > 0 and b["accuracy"] is not None]
        conf = [b["confidence"] for b in bins]
        line, = ax.plot(conf, [b["accuracy"] for b in bins], "o-", ms=3, lw=1.2,
                        label=f"{label} (ECE {record['ece']:.3f})")
        axc.plot(conf, [b["count"] for b in bins], "o-", ms=3, lw=1, color=line.get_color())
    ax.set(ylabel="accuracy", title=title, xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="upper left")
    axc.set(xlabel="mean confidence in the bin", ylabel="points", yscale="log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def entropy_boxes(records: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path,
                  title: str) -> Path:
    """Box plots of predictive entropy grouped by input set (test first, then each shift),
    one box per method (``records``: label -> ``ood_entropy.json``); boxes span the quartiles,
    whiskers 5 to 95 %, the dot is the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(records)
    sets = list(dict.fromkeys([IN_DISTRIBUTION] + [s for r in records.values() for s in r]))
    width = 0.8 / max(len(labels), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(1.2 + 1.4 * len(sets) + 0.2 * len(labels) * len(sets), 4))
    for m, label in enumerate(labels):
        stats, positions = [], []
        for s, name in enumerate(sets):
            if name in records[label]:
                stats.append({**records[label][name], "label": ""})
                positions.append(s - 0.4 + width * (m + 0.5))
        colour = colours[m % len(colours)]
        ax.bxp(stats, positions=positions, widths=width * 0.85, showfliers=False,
               showmeans=True, patch_artist=True,
               boxprops={"facecolor": colour, "alpha": 0.6},
               meanprops={"marker": "o", "markerfacecolor": "k", "markeredgecolor": "k",
                          "markersize": 3},
               medianprops={"color": "k"})
        ax.plot([], [], "s", color=colour, alpha=0.6, label=label)
    ax.set_xticks(np.arange(len(sets)), [f"{s} (in-dist.)" if s == IN_DISTRIBUTION else s
                                         for s in sets])
    ax.set(ylabel="predictive entropy (nats)", title=title, xlim=(-0.6, len(sets) - 0.4))
    ax.legend(fontsize=7, ncol=min(len(labels), 6), loc="upper center",
              bbox_to_anchor=(0.5, -0.1))  # below the axes, clear of the boxes
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def calibration_figures(run: Path, cells: Mapping[tuple[str, str], Sequence[Any]],
                        figures: Path, title: Callable[[Any, Any], str]) -> Figures:
    """The two figures of each model and data set whose cells saved calibration numbers.

    ``cells`` maps ``(model, data)`` to one results row per method (with ``cell_id`` and
    ``label``; the report's first-seed cells); ``title(model, data)`` names the figure. A
    figure needs one method with its file: with one, it still shows that method alone.
    """
    made: Figures = {}
    for (model, data), rows in cells.items():
        reliability, entropy = {}, {}
        for row in rows:
            folder = run / CELLS_DIR / str(row["cell_id"]) / "plots"
            if (record := load_reliability(folder)) is not None:
                reliability[str(row["label"])] = record
            if (record := load_ood_entropy(folder)) is not None:
                entropy[str(row["label"])] = record
        name = f"{_safe(model)}__{_safe(data)}"
        heading = title(model, data)
        if reliability:
            path = reliability_overlay(reliability, figures / f"reliability__{name}.png",
                                       f"{heading}: reliability")
            made.setdefault((model, data), []).append((path, (
                f"{heading}, reliability of each method (first seed): accuracy against mean "
                "confidence per bin, ECE in the legend; below, points per bin")))
        if entropy:
            path = entropy_boxes(entropy, figures / f"ood_entropy__{name}.png",
                                 f"{heading}: predictive entropy")
            made.setdefault((model, data), []).append((path, (
                f"{heading}, predictive entropy of each method (first seed) on test inputs "
                "and on shifted inputs: quartile boxes, 5-95 % whiskers, mean as a dot")))
    return made
