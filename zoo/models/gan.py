"""A small MLP generative adversarial network: the implicit-model baseline beside VAEs and RBMs.

A GAN has no likelihood, so it is scored by what it generates
(:mod:`inference.evaluation.samples`): the confidence and entropies a fixed MNIST classifier
assigns to its samples and a kernel MMD two-sample statistic against the test images, the
same figures computed for VAE and RBM samples. Trained by the ``gan`` method (family
``point``, non-saturating generator loss); this file holds only the two networks:

- generator ``z ~ N(0, I_latent) -> ReLU MLP -> sigmoid`` (pixel values in [0, 1]);
- discriminator ``x -> LeakyReLU(0.2) MLP with dropout -> one logit`` (dropout keeps the
  discriminator from winning outright early on, as in the usual MLP GAN recipes).

Usage::

    from zoo.fit import fit
    result, gan, data = fit("gan", "gan", data="mnist", num_steps=5000, seed=0)
    images = gan.generate(64, seed=0)            # (64, 784) in [0, 1]
    gan.evaluate(data, result)                   # mmd2, sample_label_entropy, inception_score...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from inference.methods.capabilities import ModelTraits
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.networks import mlp, out_dim, seeded
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult


def _leaky_mlp(in_dim: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


class GANNet(nn.Module):
    """Generator and discriminator; what the ``gan`` method trains.

    Example: ``net = GANNet(784, 64); net.generator(net.sample_noise(8)).shape == (8, 784)``.
    """

    def __init__(self, x_dim: int, latent_dim: int, g_hidden: Sequence[int] = (256, 512),
                 d_hidden: Sequence[int] = (512, 256), d_dropout: float = 0.3):
        super().__init__()
        if not 0.0 <= d_dropout < 1.0:
            raise ValueError(f"d_dropout must be in [0, 1), got {d_dropout!r}")
        for name, value in (("x_dim", x_dim), ("latent_dim", latent_dim)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.x_dim, self.latent_dim = int(x_dim), int(latent_dim)
        g_hidden = tuple(int(h) for h in g_hidden)
        self.generator = nn.Sequential(mlp(self.latent_dim, g_hidden, "relu"),
                                       nn.Linear(out_dim(self.latent_dim, g_hidden), self.x_dim),
                                       nn.Sigmoid())
        self.discriminator = _leaky_mlp(self.x_dim, tuple(int(h) for h in d_hidden), d_dropout)

    def sample_noise(self, n: int) -> torch.Tensor:
        """``n`` draws of the generator's input ``z ~ N(0, I)`` (torch's global generator)."""
        return torch.randn(n, self.latent_dim)


@register(
    "gan",
    description="MLP GAN (non-saturating loss), scored by a fixed MNIST classifier and a kernel "
    "MMD against test images: the implicit-model baseline",
    default_data="mnist",
    traits=ModelTraits(learned_parameters=True, minibatch=True, full_batch=False, network=True),
    methods=("gan",),
)
class GAN(ZooModel):
    """A GAN as a zoo model; configuration keywords (all optional): ``latent_dim`` (64),
    ``g_hidden`` ((256, 512)), ``d_hidden`` ((512, 256)), ``d_dropout`` (0.3), ``x_dim`` (784),
    ``image_shape``,
    ``init_seed`` (seed of the weight initialisation; the global RNG is left untouched)."""

    observed_names = ("x",)

    def __init__(self, *, latent_dim: int = 64, g_hidden: Sequence[int] = (256, 512),
                 d_hidden: Sequence[int] = (512, 256), d_dropout: float = 0.3, x_dim: int = 784,
                 image_shape: Sequence[int] | None = None, init_seed: int | None = 0):
        with seeded(init_seed):
            self.network = GANNet(x_dim, latent_dim, g_hidden, d_hidden, d_dropout)
        self.image_shape = tuple(image_shape) if image_shape else None

    @property
    def model(self) -> GANNet:  # type: ignore[override]
        """The networks (an ``nn.Module`` with generator and discriminator), not a Pyro program."""
        return self.network

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, x_dim)}`` pixel values in [0, 1] from ``dataset``'s split (flattened)."""
        x = dataset.split(split)["x"]
        x = x.reshape(len(x), -1).to(torch.get_default_dtype())
        if x.shape[-1] != self.network.x_dim:
            raise ValueError(f"this GAN was built for x_dim={self.network.x_dim}, got data of "
                             f"width {x.shape[-1]}: set --config x_dim={x.shape[-1]}")
        if float(x.min()) < 0.0 or float(x.max()) > 1.0:
            raise ValueError("GAN data must be pixel values in [0, 1]")
        if self.image_shape is None and "image_shape" in dataset.info:
            self.image_shape = tuple(dataset.info["image_shape"])
        return {"x": x}

    def generate(self, n: int, seed: int = 0, result: "InferenceResult | None" = None
                 ) -> torch.Tensor:
        """``n`` generated images in [0, 1], reproducible by ``seed`` (global RNG untouched)."""
        with seeded(seed), torch.no_grad():
            return self.network.generator(self.network.sample_noise(n))

    def evaluation_defaults(self) -> dict[str, Any]:
        """Score generated images (classifier and MMD against the test split)."""
        return {"sample_scores": True}

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path
             ) -> list[Path]:
        """64 generated images and the loss curves."""
        from zoo.viz.networks import image_grid, loss_curves

        out = Path(out_dir)
        paths = [image_grid(self.generate(64), self.image_shape, out / "gan_samples.png",
                            "GAN samples")]
        if result is not None and result.fitted.get("losses"):
            paths.append(loss_curves(result.fitted["losses"], out / "loss.png"))
        return paths
