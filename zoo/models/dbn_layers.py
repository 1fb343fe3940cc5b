"""Deep belief networks as PyTorch modules: a stack of RBMs trained greedily, layer by layer.

A DBN with hidden layers ``h1 .. hL`` is a directed sigmoid belief net ``h_{L-1} -> ... -> v``
with an RBM over ``(h_{L-1}, h_L)`` at the top (Hinton, Osindero and Teh 2006). Layer ``l`` is
an :class:`~zoo.models.rbm_layers.RBM` fit by CD to samples of ``h_{l-1} ~ q(h_{l-1} | below)``
(:meth:`DBN.training_stages`); its recognition weights are reused as the approximate posterior
``q(h_1, .., h_{L-1} | v) = prod_l q(h_l | h_{l-1})``.

The variational lower bound on ``log p(v)`` (Salakhutdinov and Murray 2008)::

    log p(v) >= E_q[ sum_{l<L-1} log p(h_l | h_{l+1}) + log p*_top(h_{L-1}) ] + H(q) - log Z_top

(``h_0 = v``) is estimated with ``samples`` draws of ``q`` per image; ``log Z_top`` is the top
RBM's partition function from AIS (:meth:`DBN.annealable` is the top RBM).

Usage::

    dbn = DBN(784, (500, 2000), seed=0)
    stages = dbn.training_stages()          # for inference.energy.train_stages
    x_new = dbn.sample(16, steps=1000)      # Gibbs at the top, then a down-pass
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from inference.energy.protocol import TrainingStage
from zoo.models.rbm_layers import RBM, bernoulli_entropy, sample_bernoulli

__all__ = ["DBN"]


class DBN(nn.Module):
    """A DBN of binary units: ``hidden`` widths bottom first (at least two layers)."""

    def __init__(self, n_visible: int, hidden: Sequence[int] = (500, 2000), *,
                 init_scale: float = 0.01, seed: int = 0):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if len(hidden) < 2:
            raise ValueError(f"a DBN needs at least two hidden layers (one RBM is 'rbm'), got "
                             f"hidden={hidden}")
        widths = [int(n_visible)] + hidden
        self.layers = nn.ModuleList(RBM(a, b, init_scale=init_scale, seed=seed + i)
                                    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))

    @property
    def top(self) -> RBM:
        return self.layers[-1]

    def up(self, v: torch.Tensor, layers: int, generator: torch.Generator | None = None
           ) -> torch.Tensor:
        """Binary samples of ``h_layers`` drawn up through the recognition weights."""
        x = v
        for rbm in self.layers[:layers]:
            x = sample_bernoulli(rbm.hidden_probs(x), generator=generator)
        return x

    def training_stages(self) -> list[TrainingStage]:
        """One stage per RBM; stage ``l`` sees samples of the layer below from the data."""
        return [TrainingStage(f"rbm{l + 1}", rbm,
                              inputs=None if l == 0 else
                              (lambda v, g, l=l: self.up(v, l, g)))
                for l, rbm in enumerate(self.layers)]

    def annealable(self) -> RBM:
        """The model whose partition function the bound needs: the top RBM."""
        return self.top

    def held_out_log_likelihood(self, v: torch.Tensor, log_z: float, *, samples: int = 10,
                                generator: torch.Generator | None = None) -> torch.Tensor:
        """The variational lower bound on ``log p(v)`` per row (see the module docstring)."""
        with torch.no_grad():
            total = torch.zeros(len(v), dtype=torch.float64)
            for _ in range(samples):
                below, bound = v, torch.zeros(len(v), dtype=torch.float64)
                for l, rbm in enumerate(self.layers[:-1]):
                    q = rbm.hidden_probs(below)
                    h = sample_bernoulli(q, generator=generator)
                    p_below = rbm.visible_mean(h).clamp(1e-7, 1 - 1e-7)
                    bound += (below * p_below.log() + (1 - below) * (-p_below).log1p()
                              ).sum(-1).double()
                    bound += bernoulli_entropy(q).double()
                    below = h
                bound += self.top.log_p_tilde(below).double()
                total += bound
            return total / samples - log_z

    def sample(self, n: int, steps: int = 1000, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Visible means of ``n`` draws: ``steps`` Gibbs sweeps in the top RBM, then a
        down-pass of samples through the directed layers (means at the visible layer)."""
        with torch.no_grad():
            state = self.top.chain_state(self.top.ais_base_sample(n, generator), generator)
            for _ in range(steps):
                state = self.top.gibbs_step(state, generator=generator)
            h = state[0]
            for rbm in reversed(self.layers[1:-1]):
                h = sample_bernoulli(rbm.visible_mean(h), generator=generator)
            return self.layers[0].visible_mean(h)

    def reconstruction(self, v: torch.Tensor) -> torch.Tensor:
        """The bottom RBM's one-sweep reconstruction of ``v``."""
        return self.layers[0].reconstruction(v)

    def first_layer_weights(self) -> torch.Tensor:
        return self.layers[0].W
