"""Figures of a fitted deep exponential family: bottom-layer weights as faces, held-out
reconstructions and the training ELBO trace.

Each function writes one PNG with matplotlib's Agg backend and returns its path. Pixel rows of
the faces data are column-major (``row.reshape(64, 64).T`` is upright, see
:mod:`zoo.data.faces`); the data set's ``pixel_order`` says so and the images are turned upright.

Usage::

    from zoo.viz.deep_exponential import def_figures
    paths = def_figures(def_model, load("faces"), result, state, Path("runs/def/plots"))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zoo.data.dataset import Dataset  # noqa: E402

__all__ = ["def_figures", "weight_images", "reconstructions", "elbo_trace"]


def _to_image(row: np.ndarray, shape: tuple[int, int], column_major: bool) -> np.ndarray:
    img = row.reshape(shape)
    return img.T if column_major else img


def _shape(m: Any) -> tuple[int, int]:
    if getattr(m, "image_shape", None):
        return tuple(m.image_shape)[-2:]  # type: ignore[return-value]
    side = int(round(math.sqrt(m.x_dim)))
    if side * side != m.x_dim:
        raise ValueError(f"cannot draw rows of width {m.x_dim} as images; set image_shape")
    return side, side


def weight_images(w1: np.ndarray, shape: tuple[int, int], column_major: bool, path: Path,
                  ncol: int = 10) -> Path:
    """Every row of the bottom weights ``(K, D)`` as an image, each scaled to its own range."""
    n = len(w1)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.9, nrow * 0.9 + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, ax in zip(w1, axes.ravel()):
        ax.imshow(_to_image(row, shape, column_major), cmap="gray")
    fig.suptitle(f"posterior mean of the {n} bottom-layer weight vectors", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def reconstructions(x: np.ndarray, recon: np.ndarray, shape: tuple[int, int],
                    column_major: bool, path: Path, n: int = 8) -> Path:
    """Held-out faces (top row) and their reconstructions ``E[x | E[z1], E[W]]`` (bottom)."""
    n = min(n, len(x))
    fig, axes = plt.subplots(2, n, figsize=(n * 1.0, 2.3), squeeze=False)
    for i in range(n):
        vmax = float(max(x[i].max(), 1e-9))
        for r, data in enumerate((x[i], recon[i])):
            axes[r, i].imshow(_to_image(data, shape, column_major), cmap="gray", vmin=0,
                              vmax=vmax)
            axes[r, i].axis("off")
    fig.suptitle("held-out faces (top) and reconstructions (bottom)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def elbo_trace(trace: Mapping[str, Any], path: Path) -> Path:
    """The many-particle training ELBO against the step."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(trace["steps"], trace["elbo"], marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("training ELBO")
    ax.set_yscale("symlog")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def def_figures(m: Any, dataset: Dataset, result: Any, state: Mapping[str, Any],
                out_dir: Path) -> list[Path]:
    """``def_weights.png``, ``def_reconstructions.png`` and (when measured)
    ``def_elbo_trace.png`` under ``out_dir``; ``state`` is what :meth:`DEF.evaluate` kept."""
    shape = _shape(m)
    column_major = str(dataset.info.get("pixel_order", "")).startswith("column-major")
    w1 = state["weights"]["w1"].detach().cpu().numpy()
    paths = [weight_images(w1, shape, column_major, out_dir / "def_weights.png")]
    paths.append(reconstructions(state["x"].cpu().numpy(), state["recon"].cpu().numpy(), shape,
                                 column_major, out_dir / "def_reconstructions.png"))
    trace = (getattr(result, "settings", None) or {}).get("elbo_trace")
    if trace and trace.get("steps"):
        paths.append(elbo_trace(trace, out_dir / "def_elbo_trace.png"))
    return paths
