"""Conditional-VAE figures: quadrant completions, samples per class and style transfer.

Every function writes one PNG with matplotlib's Agg backend and returns its path. Hidden input
pixels (-1) are drawn in mid grey so that what was given is visible.

Usage::

    from zoo.viz.cvae import completion_grid
    completion_grid(cvae, x_test[:10], y_test[:10], Path("runs/cvae/plots"), num_samples=5)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from zoo.data.quadrants import HIDDEN, fill_hidden  # noqa: E402


def _show(images: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str] | None,
          path: Path, title: str) -> Path:
    """Images ``(rows, cols, pixels)`` in a grid, hidden (-1) pixels in grey."""
    rows, cols = images.shape[:2]
    side = int(round(math.sqrt(images.shape[-1])))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.75 + 0.8, rows * 0.75 + 0.5),
                             squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            img = images[r, c].reshape(side, side).astype(float)
            img = np.where(img == HIDDEN, 0.5, img)
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=7)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def completion_grid(cvae: Any, x: torch.Tensor, y: torch.Tensor, out_dir: Path,
                    num_samples: int = 5, seed: int = 0) -> Path:
    """One column per test image: the input, the truth, the baseline's completion and
    ``num_samples`` CVAE completions (z drawn from the prior network)."""
    g = torch.Generator().manual_seed(seed)
    truth = fill_hidden(x, y, cvae.index.to(x.device))
    samples = cvae.complete(x, num_samples, generator=g)
    rows = [x, truth, cvae.baseline_complete(x)] + list(samples)
    images = torch.stack(rows).cpu().numpy()
    labels = ["input", "truth", "baseline"] + [f"sample {k + 1}" for k in range(num_samples)]
    title = (f"CVAE completions, {cvae.quadrants} quadrant(s) given, "
             f"generation p(y|{','.join(cvae.generation)})")
    return _show(images, labels, None, Path(out_dir) / f"completions_q{cvae.quadrants}.png",
                 title)


def class_samples_grid(model: Any, out_dir: Path, per_class: int = 8, seed: int = 0) -> Path:
    """``per_class`` samples of p(x | c) for every class c (one row per class)."""
    g = torch.Generator().manual_seed(seed)
    images = model.sample_per_class(per_class, generator=g).cpu().numpy()
    return _show(images, [str(c) for c in range(model.num_classes)], None,
                 Path(out_dir) / "samples_per_class.png", "samples of p(x | class), mean images")


def style_transfer_grid(model: Any, x: torch.Tensor, c: torch.Tensor, out_dir: Path) -> Path:
    """Each row: a test image, then its code z ~ q mean decoded with every class."""
    decoded = model.style_transfer(x, c).cpu().numpy()            # (N, classes, pixels)
    images = np.concatenate([x.cpu().numpy()[:, None], decoded], axis=1)
    cols = ["input"] + [str(k) for k in range(model.num_classes)]
    return _show(images, [f"class {int(k)}" for k in c], cols,
                 Path(out_dir) / "style_transfer.png",
                 "style transfer: q(z | x, c) mean decoded with every class")


def quadrant_table(run_dir: str | Path) -> "Any":
    """The published CVAE table's shape from a ``cvae`` suite run: rows are the baseline and
    each CVAE estimate, columns 1, 2 and 3 given quadrants; every entry a loss per image
    (lower is better), the mean over the run's cells (seeds), with its PSIS k-hat for
    importance-sampled entries. Published rows from the suite file come last.

    Usage (prints a markdown table)::

        python -m zoo.viz.cvae runs/cvae
    """
    import pandas as pd

    from benchmarks.suite import load_suite

    run = Path(run_dir)
    table = pd.read_csv(run / "results.csv")
    table = table[(table["model"] == "cvae") & (table["status"] == "ok")]
    cols = {q: f"{q} quadrant" + ("s" if q > 1 else "") for q in (1, 2, 3)}
    rows: dict[str, dict[str, str]] = {}

    def put(name: str, q: int, text: str) -> None:
        rows.setdefault(name, {c: "" for c in cols.values()})[cols[q]] = text

    for q in (1, 2, 3):
        cells = table[table["label"].isin([f"xz_q{q}", f"z_q{q}"])]
        if len(cells):
            put("deterministic baseline (masked BCE)", q, f"{cells['baseline_bce'].mean():.1f}")
        for gen, what in (("xz", "p(y|x,z)"), ("z", "p(y|z)")):
            cell = table[table["label"] == f"{gen}_q{q}"]
            if not len(cell):
                continue
            nll, khat = -cell["test_ll"].mean(), cell["test_ll_khat"].mean()
            samples = int(cell["eval_samples"].max())
            put(f"CVAE {what}: -log p(y|x), IS S={samples}", q, f"{nll:.1f} (k̂ {khat:.2f})")
            put(f"CVAE {what}: -ELBO, 10 particles", q, f"{-cell['test_elbo_k'].mean():.1f}")
    suite = load_suite(str(run / "suite.toml"), validate=False)
    names = {"baseline_bce": "baseline (masked BCE)", "test_elbo_k": "CVAE -ELBO, 10 particles",
             "test_ll": "CVAE -log p(y|x), IS"}
    for p in suite.published:
        label, metric = str(p["method"]), str(p["metric"])
        q = int(label[-1])
        value = float(p["value"]) * (1 if metric == "baseline_bce" else -1)
        put(f"published: {names.get(metric, metric)}, {p['source']}", q, f"{value:.1f}")
    return pd.DataFrame.from_dict(rows, orient="index")


if __name__ == "__main__":  # python -m zoo.viz.cvae RUN_DIR
    import sys

    from benchmarks.report import markdown_table

    frame = quadrant_table(sys.argv[1])
    print("\n".join(markdown_table(frame.rename_axis("").reset_index())))
