"""Figures of networks trained by their own objective (autoencoders, GANs): image grids,
first-layer filters and loss curves. Each function writes one PNG (matplotlib's Agg backend)
and returns its path.

Usage::

    from zoo.viz.networks import image_grid, reconstructions, filters, loss_curves
    image_grid(samples, (28, 28), Path("runs/gan/samples.png"), "GAN samples")
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["image_grid", "reconstructions", "filters", "loss_curves"]


def _shape(width: int, image_shape: Sequence[int] | None) -> tuple[int, int]:
    if image_shape:
        return tuple(image_shape)[-2:]  # type: ignore[return-value]
    side = int(round(math.sqrt(width)))
    if side * side != width:
        raise ValueError(f"cannot draw rows of width {width} as images; set image_shape")
    return side, side


def image_grid(images: torch.Tensor, image_shape: Sequence[int] | None, path: Path, title: str,
               ncol: int = 8, scale: bool = False) -> Path:
    """A grid of images (rows of ``images``); ``scale`` stretches each to its own range."""
    arr = images.detach().reshape(len(images), -1).cpu().numpy()
    shape = _shape(arr.shape[-1], image_shape)
    nrow = math.ceil(len(arr) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.8, nrow * 0.8 + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for img, ax in zip(arr, axes.ravel()):
        if scale:
            ax.imshow(img.reshape(shape), cmap="gray")
        else:
            ax.imshow(img.reshape(shape), cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def reconstructions(x: torch.Tensor, recon: torch.Tensor, image_shape: Sequence[int] | None,
                    path: Path) -> Path:
    """Pairs of data (left) and reconstruction (right)."""
    pairs = torch.stack([x.reshape(len(x), -1), recon.reshape(len(x), -1)], 1)
    return image_grid(pairs.reshape(-1, pairs.shape[-1]), image_shape, path,
                      "data (left) / reconstruction (right)")


def filters(weight: torch.Tensor, image_shape: Sequence[int] | None, path: Path,
            n: int = 64) -> Path:
    """The first ``n`` rows of a first-layer weight matrix (units x pixels) as images."""
    return image_grid(weight[:n], image_shape, path, "first-layer filters", scale=True)


def loss_curves(losses: Mapping[str, np.ndarray], path: Path) -> Path:
    """Training losses against step, one line each (smoothed over 1 % of the run)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in losses.items():
        values = np.asarray(values, dtype=float)
        w = max(1, len(values) // 100)
        smooth = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + w, smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
