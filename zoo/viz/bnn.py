"""Figures for Bayesian neural nets: reliability diagram, in- vs out-of-distribution predictive
entropy, regression predictive bands. Each function writes one PNG and returns its path.

Usage::

    from zoo.viz.bnn import reliability_diagram, entropy_histograms
    reliability_diagram(probs, labels, "out/reliability.png")
    entropy_histograms(h_test, {"noise": h_noise, "inverted": h_inv}, "out/ood.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from inference.calibration import (DEFAULT_BINS, expected_calibration_error,  # noqa: E402
                                   reliability_diagram_data)


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def reliability_diagram(probs, labels, path: str | Path, n_bins: int = DEFAULT_BINS,
                        title: str | None = None) -> Path:
    """Accuracy against confidence per bin, with the diagonal and the ECE in the title."""
    table = reliability_diagram_data(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(4.5, 5.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    width = 1.0 / n_bins
    ax.bar(table["lower"], table["accuracy"].fillna(0), width=width, align="edge",
           edgecolor="k", label="accuracy")
    ax.bar(table["lower"], table["gap"].fillna(0).abs(), bottom=np.minimum(
        table["accuracy"].fillna(0), table["confidence"].fillna(0)), width=width, align="edge",
        color="tab:red", alpha=0.35, label="gap")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_ylabel("accuracy")
    ax.set_title(title or f"reliability (ECE {ece:.3f}, {n_bins} bins)")
    ax.legend(loc="upper left")
    axc.bar(table["lower"], table["count"], width=width, align="edge", edgecolor="k")
    axc.set_xlabel("confidence")
    axc.set_ylabel("count")
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def entropy_histograms(in_entropy, ood_entropy: Mapping[str, object], path: str | Path,
                       bins: int = 30) -> Path:
    """Histograms of predictive entropy on test data and on each out-of-distribution set."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    all_h = [_np(in_entropy)] + [_np(v) for v in ood_entropy.values()]
    hi = max(float(np.max(h)) for h in all_h) or 1.0
    edges = np.linspace(0.0, hi, bins + 1)
    ax.hist(_np(in_entropy), bins=edges, density=True, alpha=0.6, label="test (in-dist.)")
    for name, h in ood_entropy.items():
        ax.hist(_np(h), bins=edges, density=True, histtype="step", lw=2, label=name)
    ax.set_xlabel("predictive entropy (nats)")
    ax.set_ylabel("density")
    ax.legend()
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def regression_bands(mean_draws, noise_var_draws, y, path: str | Path) -> Path:
    """Predictive mean +- 2 sd (epistemic and total) against the targets, sorted by the mean."""
    mu, var, y = _np(mean_draws), _np(noise_var_draws), _np(y).reshape(-1)
    m = mu.mean(0)
    epi = mu.var(0)
    tot = epi + np.broadcast_to(var, mu.shape).mean(0)
    order = np.argsort(m)
    idx = np.arange(len(m))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(idx, (m - 2 * np.sqrt(tot))[order], (m + 2 * np.sqrt(tot))[order],
                    alpha=0.25, label="total +-2 sd")
    ax.fill_between(idx, (m - 2 * np.sqrt(epi))[order], (m + 2 * np.sqrt(epi))[order],
                    alpha=0.5, label="epistemic +-2 sd")
    ax.plot(idx, m[order], "k-", lw=1, label="predictive mean")
    ax.plot(idx, y[order], "r.", ms=3, label="target")
    ax.set_xlabel("test point (sorted by predicted mean)")
    ax.set_ylabel("target (model scale)")
    ax.legend(fontsize=8)
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
