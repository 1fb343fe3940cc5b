"""Amortised normalising-flow posteriors: K conditional transforms stacked on a Gaussian.

The flow parameters are outputs of networks fed with a *context* (for a VAE, the encoder's last
hidden state), so one set of weights serves every data point, as in Rezende & Mohamed (2015)
and Kingma et al. (2016). The transforms themselves are Pyro's
(:class:`~pyro.distributions.transforms.ConditionalPlanar`, ``ConditionalRadial``,
``ConditionalAffineAutoregressive``); this module only stacks and conditions them.

Usage::

    flow = AmortizedFlow("planar", dim=2, context_dim=16, num_flows=10)
    q = flow.distribution(loc, scale, context)     # a TransformedDistribution, event dim 1
    z = q.rsample(); q.log_prob(z)                  # scoring works for samples just drawn
"""

from __future__ import annotations

from typing import Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import (
    ConditionalPlanar,
    ConditionalRadial,
    conditional_affine_autoregressive,
)
from pyro.nn import DenseNN
from torch import nn

from zoo.models.networks import ParamHead

#: flow kinds understood by :class:`AmortizedFlow`
FLOW_KINDS = ("planar", "radial", "iaf")


def _hypernet(context_dim: int, hidden: Sequence[int], param_dims: Sequence[int]) -> nn.Module:
    if len(hidden):
        return DenseNN(context_dim, list(hidden), param_dims=list(param_dims))
    return ParamHead(context_dim, param_dims)


class AmortizedFlow(nn.Module):
    """A stack of ``num_flows`` conditional transforms of one kind on a diagonal Gaussian.

    ``kind`` is ``"planar"``, ``"radial"`` or ``"iaf"``; ``hidden`` gives the hidden widths of
    each transform's hypernetwork (planar/radial; empty = one linear map from the context) or of
    each IAF's masked autoregressive network (default ``(3 * dim + 1,)``, conditioned on the
    context). With ``num_flows=0`` the distribution is the plain diagonal Gaussian.
    """

    def __init__(
        self,
        kind: str,
        dim: int,
        context_dim: int,
        num_flows: int,
        hidden: Sequence[int] | None = None,
    ):
        super().__init__()
        if kind not in FLOW_KINDS:
            raise ValueError(f"unknown flow {kind!r}; choose one of {FLOW_KINDS}")
        if num_flows < 0:
            raise ValueError(f"num_flows must be >= 0, got {num_flows}")
        self.kind, self.dim, self.context_dim = kind, dim, context_dim
        layers: list[nn.Module] = []
        for _ in range(num_flows):
            if kind == "planar":
                layers.append(ConditionalPlanar(_hypernet(context_dim, hidden or (), (1, dim, dim))))
            elif kind == "radial":
                layers.append(ConditionalRadial(_hypernet(context_dim, hidden or (), (dim, 1, 1))))
            else:
                layers.append(
                    conditional_affine_autoregressive(
                        dim, context_dim, hidden_dims=list(hidden or (3 * dim + 1,))
                    )
                )
        self.layers = nn.ModuleList(layers)

    @property
    def num_flows(self) -> int:
        return len(self.layers)

    def transforms(self, context: torch.Tensor) -> list:
        """The stack conditioned on ``context`` (shape ``(..., context_dim)``)."""
        return [layer.condition(context) for layer in self.layers]

    def distribution(
        self, loc: torch.Tensor, scale: torch.Tensor, context: torch.Tensor
    ) -> dist.TorchDistribution:
        """``q(z | context)``: ``Normal(loc, scale)`` pushed through the conditioned stack."""
        base = dist.Normal(loc, scale).to_event(1)
        if not self.layers:
            return base
        return dist.TransformedDistribution(base, self.transforms(context))
