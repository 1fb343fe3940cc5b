"""Label-conditioned VAE (Kingma et al. 2014's M2 with the label always observed; Sohn et al.
2015): a digit x generated from a style code z and its class c::

    z ~ N(0, I),   x | z, c ~ Bernoulli(logits = decoder(z, onehot(c)))
    q(z | x, c) = N(encoder(x, onehot(c)))                          (the guide)

The class is a conditioning input, not a random variable, so ``log p(x | c)`` is estimated by
importance sampling with q(z | x, c) exactly as a VAE's ``log p(x)``. Targets are MNIST grey
levels under the Bernoulli cross-entropy (as in Pyro's VAE and CVAE examples; not a density of
grey levels). Uses: a grid of samples per class (:meth:`LabelCVAE.sample_per_class`) and style
transfer (:meth:`LabelCVAE.style_transfer`: encode an image with its class, decode the code
with every class). Early stopping uses a validation split cut from the training set, as for
:class:`zoo.models.cvae.QuadrantCVAE`.

Usage::

    from zoo.fit import fit
    result, m, data = fit("label_cvae", "svi", num_steps=2000)
    m.sample_per_class(8)                 # (10, 8, 784) mean images
    m.style_transfer(x[:5], c[:5])        # (5, 10, 784)
    m.evaluate(data, result)              # test_ll = log p(x | c) per image, k-hat, test_elbo_k
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from inference.methods.capabilities import ModelTraits
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.cvae import ConditionalFitMixin, RecognitionGuide, check_config
from zoo.models.networks import GaussianHead, mlp, out_dim, seeded
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult


@register(
    "label_cvae",
    description="Label-conditioned VAE on MNIST: q(z|x,c), p(x|z,c) with c the digit class; "
    "samples per class and style transfer",
    default_data="mnist",
    traits=ModelTraits(learned_parameters=True, local_latents=True, minibatch=True),
)
class LabelCVAE(ConditionalFitMixin, ZooModel, nn.Module):
    """Configuration keywords (all optional): ``latent_dim`` (20), ``hidden`` ((500, 500)),
    ``activation`` (``relu``), ``num_classes`` (10), ``x_dim`` (784), ``validation_size``
    (10,000 training images held out for early stopping), ``patience`` (3), ``eval_samples``
    (100), ``eval_elbo_particles`` (10), ``eval_max_points``, ``eval_particle_batch``,
    ``eval_data_batch``, ``eval_seed``, ``init_seed`` (0)."""

    observed_names = ("x",)
    guide_name = "recognition"

    def __init__(
        self,
        *,
        latent_dim: int = 20,
        hidden: Sequence[int] = (500, 500),
        activation: str = "relu",
        num_classes: int = 10,
        x_dim: int = 784,
        validation_size: int = 10_000,
        patience: int = 3,
        eval_samples: int = 100,
        eval_elbo_particles: int = 10,
        eval_max_points: int | None = None,
        eval_particle_batch: int = 100,
        eval_data_batch: int = 100,
        eval_seed: int = 0,
        init_seed: int | None = 0,
    ):
        nn.Module.__init__(self)
        hidden = tuple(hidden) if isinstance(hidden, (tuple, list)) else hidden
        check_config(latent_dim=latent_dim, hidden=hidden, activation=activation,
                     validation_size=validation_size, patience=patience,
                     eval_samples=eval_samples, eval_elbo_particles=eval_elbo_particles,
                     eval_particle_batch=eval_particle_batch, eval_data_batch=eval_data_batch)
        for name, v in (("num_classes", num_classes), ("x_dim", x_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.latent_dim, self.hidden, self.activation_name = int(latent_dim), hidden, activation
        self.num_classes, self.x_dim = int(num_classes), int(x_dim)
        self.validation_size, self.patience = int(validation_size), int(patience)
        self.eval_samples, self.eval_elbo_particles = int(eval_samples), int(eval_elbo_particles)
        self.eval_max_points = eval_max_points
        self.eval_particle_batch, self.eval_data_batch = eval_particle_batch, eval_data_batch
        self.eval_seed, self.init_seed = int(eval_seed), init_seed
        k = self.num_classes
        with seeded(self.init_seed):
            self.encoder_net = mlp(self.x_dim + k, hidden, activation)
            self.encoder_head = GaussianHead(out_dim(self.x_dim + k, hidden), self.latent_dim)
            self.decoder_net = mlp(self.latent_dim + k, hidden, activation)
            self.decoder_out = nn.Linear(out_dim(self.latent_dim + k, hidden), self.x_dim)

    # ------------------------------------------------------------------ networks
    def _onehot(self, c: torch.Tensor) -> torch.Tensor:
        if (c.dtype not in (torch.int64, torch.int32) or (c < 0).any()
                or (c >= self.num_classes).any()):
            raise ValueError(f"c must hold integer classes in 0..{self.num_classes - 1}")
        return F.one_hot(c.long(), self.num_classes).to(torch.get_default_dtype())

    def decoder_logits(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Logits of p(x | z, c); the one-hot class broadcasts over ``z``'s particle dims."""
        h = self._onehot(c)
        shape = torch.broadcast_shapes(h.shape[:-1], z.shape[:-1])
        inp = torch.cat([z.expand(shape + z.shape[-1:]), h.expand(shape + h.shape[-1:])], -1)
        return self.decoder_out(self.decoder_net(inp))

    def recognition(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of q(z | x, c)."""
        return self.encoder_head(self.encoder_net(torch.cat([x, self._onehot(c)], -1)))

    def _check(self, x: torch.Tensor | None, c: torch.Tensor) -> None:
        if c.dim() != 1:
            raise ValueError(f"c must be a vector of classes, got shape {tuple(c.shape)}")
        if x is not None and (x.dim() != 2 or x.shape != (len(c), self.x_dim)):
            raise ValueError(f"x must be (N, {self.x_dim}) with N = len(c) = {len(c)}, got "
                             f"{tuple(x.shape)}")
        self._follow(c)

    # ------------------------------------------------------------------ data
    def split_kwargs(self, dataset: Dataset, split: str, rows: slice) -> dict[str, Any]:
        part = dataset.split(split)
        if "y" not in part:
            raise ValueError(f"data set {dataset.name!r} has no labels 'y' to condition on")
        x = part["x"][rows]
        x = x.reshape(len(x), -1).to(torch.get_default_dtype())
        return {"x": x, "c": part["y"][rows].long()}

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``x`` (N, 784) grey levels and ``c`` (N,) classes; ``train`` and ``valid`` are cut
        from the training split."""
        source, rows = self._rows(dataset, split)
        return self.split_kwargs(dataset, source, rows)

    def evaluation_kwargs(self, dataset: Dataset, split: str = "test") -> dict[str, Any]:
        return self.model_kwargs(dataset, split)

    # ------------------------------------------------------------------ model and guide
    def model(self, c: torch.Tensor, x: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        """``p(x, z | c)``; with ``x=None`` draws one image per entry of ``c``."""
        self._check(x, c)
        pyro.module("label_cvae", self)
        with pyro.plate("data", len(c), subsample_size=subsample_size, dim=-1) as idx:
            cb = c[idx]
            zeros = torch.zeros(self.latent_dim, device=c.device)
            z = pyro.sample("z", dist.Normal(zeros, 1.0 + zeros).to_event(1))
            return pyro.sample("x", dist.Bernoulli(logits=self.decoder_logits(z, cb),
                                                   validate_args=False).to_event(1),
                               obs=None if x is None else x[idx])

    def _guide(self, c: torch.Tensor, x: torch.Tensor | None = None,
               subsample_size: int | None = None) -> None:
        if x is None:
            raise ValueError("q(z | x, c) needs the images x")
        self._check(x, c)
        pyro.module("label_cvae", self)
        with pyro.plate("data", len(c), subsample_size=subsample_size, dim=-1) as idx:
            loc, scale = self.recognition(x[idx], c[idx])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    @property
    def guide(self) -> RecognitionGuide:  # type: ignore[override]
        """q(z | x, c) as a zoo guide."""
        return RecognitionGuide(self)

    def guides(self) -> Mapping[str, RecognitionGuide]:
        return {"model": self.guide, "recognition": self.guide}

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample_per_class(self, per_class: int, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
        """Mean images of p(x | z, c) for z ~ N(0, I): ``(num_classes, per_class, x_dim)``."""
        device = next(self.parameters()).device
        z = torch.randn(self.num_classes, per_class, self.latent_dim, generator=generator)
        c = torch.arange(self.num_classes)[:, None].expand(-1, per_class)
        return torch.sigmoid(self.decoder_logits(z.to(device), c.to(device)))

    @torch.no_grad()
    def style_transfer(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Each image's code (the mean of q(z | x, c)) decoded with every class:
        ``(N, num_classes, x_dim)`` mean images."""
        self._check(x, c)
        loc, _ = self.recognition(x, c)
        classes = torch.arange(self.num_classes, device=x.device)
        return torch.sigmoid(self.decoder_logits(loc[:, None, :], classes[None, :]))

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path
             ) -> list[Path]:
        """Samples per class and style transfer of ten test images."""
        from zoo.viz.cvae import class_samples_grid, style_transfer_grid

        kwargs = self.evaluation_kwargs(dataset, "test")
        return [class_samples_grid(self, Path(out_dir), seed=self.eval_seed),
                style_transfer_grid(self, kwargs["x"][:10], kwargs["c"][:10], Path(out_dir))]
