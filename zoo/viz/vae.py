"""VAE figures: prior samples, reconstructions, a latent interpolation and a 2-D latent map.

Every function writes one PNG with matplotlib's Agg backend and returns its path. The model
is any object with the :class:`zoo.models.vae.VAE` interface (``model``, a guide, ``x_dim``,
``image_shape``, ``likelihood_dist``, ``latent_names``).

Usage::

    from zoo.viz.vae import vae_figures
    paths = vae_figures(vae, load("digits"), Path("runs/vae_digits"))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro.poutine as poutine  # noqa: E402
import torch  # noqa: E402

from zoo.data.dataset import Dataset  # noqa: E402


def _image_shape(vae: Any) -> tuple[int, int]:
    if getattr(vae, "image_shape", None):
        return tuple(vae.image_shape)[-2:]  # type: ignore[return-value]
    side = int(round(math.sqrt(vae.x_dim)))
    if side * side != vae.x_dim:
        raise ValueError(f"cannot draw data of width {vae.x_dim} as images; set image_shape")
    return side, side


def _mean_image(vae: Any, z1: torch.Tensor) -> torch.Tensor:
    d = vae.likelihood_dist(z1)
    base = d.base_dist if hasattr(d, "base_dist") else d
    return base.mean.clamp(0, 1)


def _grid(images: np.ndarray, shape: tuple[int, int], ncol: int, path: Path, title: str) -> Path:
    n = len(images)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.8, nrow * 0.8 + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for img, ax in zip(images, axes.ravel()):
        ax.imshow(img.reshape(shape), cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _top_to_bottom(vae: Any, z_top: torch.Tensor) -> torch.Tensor:
    """Mean of z1 given the top layer (identity for one stochastic layer)."""
    if vae.num_layers == 1:
        return z_top
    loc, _ = vae.prior_head(vae.prior_net(z_top))
    return loc


def prior_samples(vae: Any, path: Path, n: int = 64, seed: int = 0) -> Path:
    """Mean images of ``n`` draws from the prior."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, vae.latent_dims[-1], generator=g)
        imgs = _mean_image(vae, _top_to_bottom(vae, z))
    return _grid(imgs.numpy(), _image_shape(vae), 8, path, "prior samples (decoder means)")


def _encode(vae: Any, guide: Callable[..., Any], x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One draw of z1 from the guide for each row of ``x``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad(), poutine.block():
            tr = poutine.trace(guide).get_trace(x=x)
    return tr.nodes[vae.latent_names[0]]["value"]


def reconstructions(vae: Any, guide: Callable[..., Any], x: torch.Tensor, path: Path) -> Path:
    """Rows alternate: data, reconstruction (decoder mean at one guide draw)."""
    x = x[:32]
    with torch.no_grad():
        rec = _mean_image(vae, _encode(vae, guide, x))
    pairs = torch.stack([x.clamp(0, 1), rec], 1).reshape(-1, x.shape[-1])
    return _grid(pairs.numpy(), _image_shape(vae), 8, path, "data (left) / reconstruction (right)")


def interpolation(vae: Any, guide: Callable[..., Any], x: torch.Tensor, path: Path,
                  steps: int = 10) -> Path:
    """Decoder means along straight lines in z1 between encodings of pairs of data points."""
    with torch.no_grad():
        z = _encode(vae, guide, x[:8])
        t = torch.linspace(0, 1, steps).reshape(1, steps, 1)
        lines = z[0::2].unsqueeze(1) * (1 - t) + z[1::2].unsqueeze(1) * t
        imgs = _mean_image(vae, lines.reshape(-1, z.shape[-1]))
    return _grid(imgs.numpy(), _image_shape(vae), steps, path, "latent interpolation")


def latent_map(vae: Any, guide: Callable[..., Any], x: torch.Tensor, labels: torch.Tensor | None,
               path: Path) -> Path:
    """Encoded z1 of the data, coloured by label (2-D latents only)."""
    with torch.no_grad():
        z = _encode(vae, guide, x).numpy()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    sc = ax.scatter(z[:, 0], z[:, 1], s=4, c=None if labels is None else labels.numpy(),
                    cmap="tab10")
    if labels is not None:
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("2-D latent map (one guide draw per point)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def vae_figures(vae: Any, dataset: Dataset, out_dir: Path,
                guide: Callable[..., Any] | None = None, split: str = "test") -> list[Path]:
    """All VAE figures for ``dataset``'s split under ``out_dir``; returns the PNG paths."""
    out_dir = Path(out_dir)
    guide = guide or vae.guide
    x = vae.evaluation_kwargs(dataset, split)["x"][:1000]
    paths = [
        prior_samples(vae, out_dir / "vae_prior_samples.png"),
        reconstructions(vae, guide, x, out_dir / "vae_reconstructions.png"),
        interpolation(vae, guide, x, out_dir / "vae_interpolation.png"),
    ]
    if vae.latent_dims[0] == 2:
        labels = dataset.split(split).get("y")
        paths.append(latent_map(vae, guide, x, None if labels is None else labels[: len(x)],
                                out_dir / "vae_latent_map.png"))
    return paths
