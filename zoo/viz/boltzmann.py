"""Figures for Boltzmann machines: first-layer filters, samples from Gibbs chains, the spread of
the AIS log-weights and the training reconstruction error. Each function writes one PNG.

Usage::

    from zoo.viz.boltzmann import boltzmann_figures
    paths = boltzmann_figures(rbm_model, Path("runs/rbm/plots"), image_shape=(28, 28))
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

__all__ = ["boltzmann_figures", "image_grid", "log_weight_histogram"]


def image_grid(images: np.ndarray, shape: Sequence[int], path: str | Path, title: str,
               symmetric: bool = False) -> Path:
    """Rows of ``images`` (n, prod(shape)) tiled into one mosaic in a square grid, drawn with
    one ``imshow``; ``symmetric`` scales each tile to [-1, 1] around 0 (filters)."""
    images = np.asarray(images, dtype=float)
    n = len(images)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    height, width = int(shape[0]), int(shape[1])
    fill = 0.0 if symmetric else 1.0
    mosaic = np.full((rows * (height + 1) + 1, cols * (width + 1) + 1), fill)
    for i, image in enumerate(images):
        tile = image.reshape(height, width)
        if symmetric:
            tile = tile / (float(np.abs(tile).max()) or 1.0)
        r, c = divmod(i, cols)
        mosaic[1 + r * (height + 1):1 + r * (height + 1) + height,
               1 + c * (width + 1):1 + c * (width + 1) + width] = tile
    fig, ax = plt.subplots(figsize=(6, 6 * rows / cols + 0.4))
    if symmetric:
        ax.imshow(mosaic, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def log_weight_histogram(log_weights: np.ndarray, path: str | Path, title: str) -> Path:
    """Histogram of AIS log-weights relative to their maximum (a wide spread: few runs carry
    the estimate, so it is unreliable)."""
    w = np.asarray(log_weights, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(w - w.max(), bins=min(30, max(5, len(w) // 3)))
    ax.set_xlabel("log-weight - max (nats)")
    ax.set_ylabel("AIS runs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def boltzmann_figures(zoo_model: Any, out_dir: Path, *, image_shape: Sequence[int] | None = None,
                      recon_error: np.ndarray | None = None, num_filters: int = 100,
                      num_samples: int = 64) -> list[Path]:
    """Filters, Gibbs samples and (after an evaluation) the AIS log-weights of a zoo
    Boltzmann model; images only when ``image_shape`` matches the visible layer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    network = zoo_model.model
    paths: list[Path] = []
    weights = network.first_layer_weights().detach().cpu().numpy()
    visible = weights.shape[0]
    shape = tuple(image_shape) if image_shape and int(np.prod(image_shape)) == visible else None
    name = zoo_model.name or type(zoo_model).__name__
    if shape is not None:
        filters = weights[:, :num_filters].T
        paths.append(image_grid(filters, shape, out_dir / "filters.png",
                                f"{name}: first-layer filters (weights of {len(filters)} "
                                "hidden units)", symmetric=True))
        generator = torch.Generator().manual_seed(zoo_model.eval_seed)
        samples = network.sample(num_samples, steps=zoo_model.gibbs_steps,
                                 generator=generator).cpu().numpy()
        if getattr(network, "gaussian", False):
            samples = (samples - samples.min()) / max(float(np.ptp(samples)), 1e-6)
        paths.append(image_grid(samples, shape, out_dir / "gibbs_samples.png",
                                f"{name}: {num_samples} chains after {zoo_model.gibbs_steps} "
                                "Gibbs sweeps from the base model"))
    ais = zoo_model.last_ais
    if ais is not None:
        paths.append(log_weight_histogram(
            ais.log_weights, out_dir / "ais_log_weights.png",
            f"{name}: AIS log-weights, {ais.num_runs} runs x {ais.num_temperatures} "
            f"temperatures; log Z = {ais.log_z:.2f} +- {ais.log_z_se:.2f}"))
    if recon_error is not None and len(recon_error):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(np.arange(len(recon_error)), recon_error)
        ax.set_xlabel("update (all stages)")
        ax.set_ylabel("reconstruction error per example")
        ax.set_title(f"{name}: training reconstruction error", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / "recon_error.png", dpi=100)
        plt.close(fig)
        paths.append(out_dir / "recon_error.png")
    return paths
