"""Autoencoders as representation baselines: undercomplete, sparse (L1 or KL), denoising, contractive.

Not a Pyro program: an autoencoder is a network with its own objective, trained by the
``autoencoder`` method (family ``point``), and judged by what its code is worth: the
reconstruction error of held-out images and the accuracy of a linear classifier trained on the
codes of labelled images, beside a random projection of the same size and the VAE's codes
(:mod:`inference.evaluation.representations`). One class, five kinds; every kind minimises the
reconstruction loss (binary cross-entropy of the pixel values, summed over pixels, or squared
error) of ``decoder(encoder(x))`` plus its own term:

- ``undercomplete``: nothing more; the code is narrower than the image.
- ``sparse_l1``: ``penalty * sum_j |h_j|`` (Ng's lecture notes; codes are sigmoids, so |h| = h).
- ``sparse_kl``: ``penalty * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the mini-batch mean
  activation of code unit j and ``rho = sparsity_target`` (Ng, "Sparse autoencoder", 2011).
- ``denoising``: the encoder sees ``x`` with a fraction ``noise`` of pixels set to 0 (masking
  noise) and the loss scores the clean ``x`` (Vincent et al. 2008).
- ``contractive``: ``penalty * ||d h / d x||_F^2`` (Rifai et al. 2011), in closed form for a
  one-layer sigmoid encoder and by automatic differentiation otherwise.

The code is a sigmoid layer of width ``code_dim`` on top of an optional ReLU MLP (``hidden``);
the decoder mirrors it and ends in a sigmoid (images in [0, 1]).

Usage::

    import zoo
    from zoo.fit import fit
    result, ae, data = fit("autoencoder", "autoencoder", config={"kind": "denoising"},
                           data="mnist", num_steps=2000, batch_size=100, seed=0)
    ae.evaluate(data, result)    # recon_error, recon_bce, probe_accuracy, probe_accuracy_random
    ae.encode(data.test["x"][:10]).shape     # (10, 50)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inference.methods.capabilities import ModelTraits
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.networks import mlp, out_dim, seeded
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult

KINDS = ("undercomplete", "sparse_l1", "sparse_kl", "denoising", "contractive")
RECONSTRUCTIONS = ("bce", "mse")
#: penalty weights used when none is given (orders of magnitude that work on MNIST codes of 50)
DEFAULT_PENALTY = {"sparse_l1": 0.1, "sparse_kl": 3.0, "contractive": 0.1}


def kl_sparsity(rho_hat: torch.Tensor, rho: float) -> torch.Tensor:
    """``sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j))``, 0 exactly when every ``rho_hat_j
    == rho``."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / rho_hat)
            + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


class AutoencoderNet(nn.Module):
    """The network and its loss; ``loss(x)`` is what the ``autoencoder`` method minimises.

    Example: ``net = AutoencoderNet(784, 50, kind="sparse_kl"); net.loss(x).backward()``.
    """

    def __init__(self, x_dim: int, code_dim: int, *, kind: str = "undercomplete",
                 hidden: Sequence[int] = (), penalty: float | None = None,
                 sparsity_target: float = 0.05, noise: float = 0.3,
                 reconstruction: str = "bce"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction must be one of {list(RECONSTRUCTIONS)}, got "
                             f"{reconstruction!r}")
        if not (isinstance(code_dim, int) and code_dim >= 1):
            raise ValueError(f"code_dim must be a positive integer, got {code_dim!r}")
        if not 0.0 < sparsity_target < 1.0:
            raise ValueError(f"sparsity_target must be in (0, 1), got {sparsity_target!r}")
        if not 0.0 <= noise < 1.0:
            raise ValueError(f"noise (the share of pixels masked) must be in [0, 1), got {noise!r}")
        if penalty is not None and penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty!r}")
        self.kind, self.code_dim, self.x_dim = kind, int(code_dim), int(x_dim)
        self.penalty = float(DEFAULT_PENALTY.get(kind, 0.0) if penalty is None else penalty)
        self.sparsity_target, self.noise, self.reconstruction = sparsity_target, noise, reconstruction
        hidden = tuple(int(h) for h in hidden)
        self.enc_net = mlp(self.x_dim, hidden, "relu")
        self.enc_out = nn.Linear(out_dim(self.x_dim, hidden), self.code_dim)
        self.dec_net = mlp(self.code_dim, tuple(reversed(hidden)), "relu")
        self.dec_out = nn.Linear(out_dim(self.code_dim, tuple(reversed(hidden))), self.x_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``h = sigmoid(W enc_net(x) + b)`` of clean inputs."""
        return torch.sigmoid(self.enc_out(self.enc_net(x)))

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.dec_out(self.dec_net(h))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decoder(encoder(x))`` in [0, 1]."""
        return torch.sigmoid(self.decode_logits(self.encode(x)))

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-image loss summed over pixels: binary cross-entropy of the pixel values in
        [0, 1] (grey levels as soft targets), or squared error."""
        if self.reconstruction == "bce":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return (torch.sigmoid(logits) - x).square().sum(-1)

    def contraction(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``||d h / d x||_F^2`` per row. One sigmoid layer: ``sum_j (h_j (1 - h_j))^2 sum_i
        W_ji^2`` (Rifai et al. 2011, eq. 6); deeper encoders: the Jacobian by ``torch.func``."""
        if len(self.enc_net) == 0:
            w2 = self.enc_out.weight.square().sum(-1)  # (code_dim,)
            return ((h * (1 - h)).square() * w2).sum(-1)
        jac = torch.func.vmap(torch.func.jacrev(self.encode))(x)  # (n, code_dim, x_dim)
        return jac.square().sum((-2, -1))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the mini-batch of the reconstruction loss plus the kind's penalty."""
        inputs = x
        if self.kind == "denoising" and self.noise > 0:
            inputs = x * (torch.rand_like(x) >= self.noise)
        h = self.encode(inputs)
        loss = self.reconstruction_loss(self.decode_logits(h), x).mean()
        if self.kind == "sparse_l1":
            loss = loss + self.penalty * h.abs().sum(-1).mean()
        elif self.kind == "sparse_kl":
            loss = loss + self.penalty * kl_sparsity(h.mean(0), self.sparsity_target)
        elif self.kind == "contractive":
            loss = loss + self.penalty * self.contraction(inputs, h).mean()
        return loss


@register(
    "autoencoder",
    description="Autoencoder baselines (undercomplete, sparse L1/KL, denoising, contractive), "
    "scored by reconstruction error and a linear probe on their codes",
    default_data="mnist",
    traits=ModelTraits(learned_parameters=True, minibatch=True, full_batch=False, network=True),
    methods=("autoencoder",),
)
class Autoencoder(ZooModel):
    """An autoencoder as a zoo model; configuration keywords (all optional):

    - ``kind``: ``undercomplete`` (default), ``sparse_l1``, ``sparse_kl``, ``denoising``,
      ``contractive``; ``penalty`` (weight of the sparsity / contraction term; defaults in
      :data:`DEFAULT_PENALTY`), ``sparsity_target`` (rho, 0.05), ``noise`` (share of pixels
      masked, 0.3).
    - ``code_dim`` (50), ``hidden`` (ReLU widths below the code, default none),
      ``reconstruction`` (``bce`` or ``mse``), ``x_dim`` (784), ``image_shape`` (figures).
    - ``init_seed``: seed of the weight initialisation (the global RNG is left untouched).
    """

    observed_names = ("x",)

    def __init__(self, *, kind: str = "undercomplete", code_dim: int = 50,
                 hidden: Sequence[int] = (), penalty: float | None = None,
                 sparsity_target: float = 0.05, noise: float = 0.3, reconstruction: str = "bce",
                 x_dim: int = 784, image_shape: Sequence[int] | None = None,
                 init_seed: int | None = 0):
        with seeded(init_seed):
            self.network = AutoencoderNet(x_dim, code_dim, kind=kind, hidden=hidden,
                                          penalty=penalty, sparsity_target=sparsity_target,
                                          noise=noise, reconstruction=reconstruction)
        self.image_shape = tuple(image_shape) if image_shape else None

    @property
    def model(self) -> AutoencoderNet:  # type: ignore[override]
        """The network (an ``nn.Module`` with ``loss(x)``), not a Pyro program."""
        return self.network

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, x_dim)}`` pixel values in [0, 1] from ``dataset``'s split (flattened)."""
        x = dataset.split(split)["x"]
        x = x.reshape(len(x), -1).to(torch.get_default_dtype())
        if x.shape[-1] != self.network.x_dim:
            raise ValueError(f"this autoencoder was built for x_dim={self.network.x_dim}, got "
                             f"data of width {x.shape[-1]}: set --config x_dim={x.shape[-1]}")
        if float(x.min()) < 0.0 or float(x.max()) > 1.0:
            raise ValueError("autoencoder data must be pixel values in [0, 1]")
        if self.image_shape is None and "image_shape" in dataset.info:
            self.image_shape = tuple(dataset.info["image_shape"])
        return {"x": x}

    # ------------------------------------------------------------ what evaluation reads
    def encode(self, x: torch.Tensor, result: "InferenceResult | None" = None) -> torch.Tensor:
        """Codes of ``x`` (no corruption, no gradients)."""
        with torch.no_grad():
            return self.network.encode(x)

    def reconstruct(self, x: torch.Tensor, result: "InferenceResult | None" = None
                    ) -> torch.Tensor:
        """Reconstructions of ``x`` in [0, 1]."""
        with torch.no_grad():
            return self.network.reconstruct(x)

    def evaluation_defaults(self) -> dict[str, Any]:
        """Reconstruction error and the linear probe (on labelled data)."""
        return {"linear_probe": True}

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path
             ) -> list[Path]:
        """Reconstructions of test images, the first layer's filters and the loss curve."""
        from zoo.viz.networks import filters, loss_curves, reconstructions

        x = self.model_kwargs(dataset, "test")["x"][:16]
        out = Path(out_dir)
        paths = [reconstructions(x, self.reconstruct(x), self.image_shape,
                                 out / "reconstructions.png"),
                 filters(self.network.enc_net[0].weight if len(self.network.enc_net)
                         else self.network.enc_out.weight, self.image_shape,
                         out / "filters.png")]
        if result is not None and result.fitted.get("losses"):
            paths.append(loss_curves(result.fitted["losses"], out / "loss.png"))
        return paths
