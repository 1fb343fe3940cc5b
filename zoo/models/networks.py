"""Small neural-network building blocks shared by the deep latent-variable models.

Usage::

    from zoo.models.networks import mlp
    net = mlp(784, (200, 200), activation="tanh")     # 784 -> 200 -> 200, activation after each
    head = GaussianHead(200, 50)                      # hidden -> (loc, scale)
    loc, scale = head(net(x))
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block (a network's weight initialisation) with torch's global generator seeded,
    restoring its state afterwards; ``None`` leaves the generator as it is.

    Usage: ``with seeded(0): net = mlp(784, (200, 200))``.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def activation(name: str) -> nn.Module:
    """The activation module called ``name``; an unknown name raises ``ValueError``."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def mlp(in_dim: int, hidden: Sequence[int], activation_name: str = "tanh") -> nn.Sequential:
    """A multilayer perceptron ``in_dim -> hidden[0] -> ... -> hidden[-1]``.

    Every linear layer is followed by the activation, so the output is the last hidden state
    (an empty ``hidden`` gives the identity). Works on any leading batch shape.
    """
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        if h <= 0:
            raise ValueError(f"hidden widths must be positive, got {tuple(hidden)}")
        layers += [nn.Linear(width, h), activation(activation_name)]
        width = h
    return nn.Sequential(*layers)


def out_dim(in_dim: int, hidden: Sequence[int]) -> int:
    """Width of :func:`mlp`'s output."""
    return hidden[-1] if len(hidden) else in_dim


class GaussianHead(nn.Module):
    """Maps a hidden state to the ``(loc, scale)`` of a diagonal Gaussian (softplus scale).

    The initial scale is about ``init_scale`` so that early samples are not swamped by noise.
    """

    def __init__(self, in_dim: int, dim: int, min_scale: float = 1e-4, init_scale: float = 1.0):
        super().__init__()
        self.loc = nn.Linear(in_dim, dim)
        self.raw_scale = nn.Linear(in_dim, dim)
        self.min_scale = min_scale
        with torch.no_grad():
            self.raw_scale.weight.mul_(0.01)
            # softplus(b) = init_scale
            self.raw_scale.bias.fill_(float(torch.log(torch.expm1(torch.tensor(init_scale)))))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc(h), F.softplus(self.raw_scale(h)) + self.min_scale


class ParamHead(nn.Module):
    """A linear map from a context vector to a tuple of parameter tensors of given widths.

    Used as the hypernetwork of Pyro's conditional planar / radial transforms when no hidden
    layer is wanted (Pyro's ``DenseNN`` needs at least one hidden layer).
    """

    def __init__(self, in_dim: int, param_dims: Sequence[int], init_std: float = 0.01):
        super().__init__()
        self.param_dims = tuple(int(d) for d in param_dims)
        self.linear = nn.Linear(in_dim, sum(self.param_dims))
        with torch.no_grad():
            self.linear.weight.normal_(0.0, init_std)
            self.linear.bias.normal_(0.0, init_std)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.linear(context).split(self.param_dims, dim=-1))


class LazyInputDim:
    """Mixin for models whose networks are built once the data width is known.

    The class provides ``x_dim`` (``None`` until known) and ``build(x_dim)``; ``_check_x``
    validates a data matrix and builds the networks on first sight of it.
    """

    x_dim: int | None

    def build(self, x_dim: int) -> None:  # pragma: no cover - defined by the model
        raise NotImplementedError

    def _check_x(self, x: torch.Tensor | None) -> None:
        if x is None:
            if self.x_dim is None:
                raise ValueError("x_dim is unknown: pass x, x_dim=..., or call model_kwargs first")
            return
        if x.dim() != 2:
            raise ValueError(f"x must be (N, x_dim), got shape {tuple(x.shape)}")
        self.build(x.shape[-1])
