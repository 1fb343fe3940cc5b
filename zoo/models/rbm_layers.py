"""Restricted Boltzmann machines as PyTorch modules: Bernoulli-Bernoulli and Gaussian-Bernoulli.

Energies (``v`` visible, ``h`` binary hidden, ``W`` of shape ``(visible, hidden)``)::

    Bernoulli-Bernoulli:  E(v, h) = -b.v - c.h - v W h
    Gaussian-Bernoulli:   E(v, h) = |v - b|^2 / 2 - c.h - v W h      (unit visible variance:
                                                                      standardise the data)

with free energy ``F(v) = -log sum_h exp(-E(v, h))`` in closed form and factorial conditionals
``p(h | v) = sigmoid(c + v W)``, ``p(v | h) = sigmoid(b + W h)`` or ``N(b + W h, I)``.

Tempered models ``p_beta`` (for parallel tempering and annealed importance sampling) follow
Salakhutdinov and Murray (2008): ``p_beta(v, h) ∝ p_A(v)^(1-beta) exp(-beta E(v, h))`` where the
base model ``A`` has no weights and visible biases ``base_bias`` set from the data's base rates
(:meth:`RBM.init_from_data`), so ``beta=0`` is a product of independent visible units with a
closed-form ``log Z``. The module implements both protocols of :mod:`inference.energy`
(training, AIS) and exact ``log Z`` by enumeration of the smaller layer (up to about 20 units).

``up_scale``/``down_scale`` double the weights of one direction of the conditionals, as in the
greedy pretraining of a deep Boltzmann machine (Salakhutdinov and Hinton 2009).

Usage::

    rbm = RBM(784, 500, seed=0)
    rbm.init_from_data(x)                  # base rates, visible biases at their log-odds
    state = rbm.gibbs_step(rbm.chain_state(x[:10]))
    rbm.free_energy(x[:10]); rbm.exact_log_z()  # exact only for small layers
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RBM", "VISIBLE_KINDS", "bernoulli_entropy", "enumerate_binary", "logit",
           "sample_bernoulli"]

VISIBLE_KINDS = ("bernoulli", "gaussian")
#: the largest layer exact log Z enumerates by default (2^20 states)
EXACT_MAX_UNITS = 20


def logit(p: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Log-odds of probabilities clamped to ``[eps, 1 - eps]`` (base rates of never-on pixels)."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def sample_bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary draws with success probabilities ``p`` (``u < p`` for uniform ``u``: the same
    distribution as ``torch.bernoulli``, about twice as fast on CPU)."""
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype) < p).to(p.dtype)


def bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of independent Bernoulli units with means ``p``, summed over the last dim."""
    return (F.binary_cross_entropy(p, p, reduction="none")).sum(-1)


def enumerate_binary(n: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Rows ``start..stop`` of all ``2^n`` binary vectors of length ``n`` (float32).

    Example: ``enumerate_binary(2)`` is ``[[0,0],[0,1],[1,0],[1,1]]``.
    """
    stop = 2 ** n if stop is None else stop
    codes = torch.arange(start, stop, dtype=torch.int64)
    bits = 2 ** torch.arange(n - 1, -1, -1, dtype=torch.int64)
    return ((codes[:, None] & bits) > 0).to(torch.float32)


class RBM(nn.Module):
    """A restricted Boltzmann machine with ``visible`` units of kind ``bernoulli`` or
    ``gaussian`` (unit variance) and binary hidden units.

    ``init_scale``: sd of the initial weights (Hinton's guide: 0.01); ``seed``: their seed.
    """

    def __init__(self, n_visible: int, n_hidden: int, *, visible: str = "bernoulli",
                 init_scale: float = 0.01, up_scale: float = 1.0, down_scale: float = 1.0,
                 seed: int = 0):
        super().__init__()
        if visible not in VISIBLE_KINDS:
            raise ValueError(f"visible must be one of {VISIBLE_KINDS}, got {visible!r}")
        for name, value in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        generator = torch.Generator().manual_seed(int(seed))
        self.visible = visible
        self.up_scale, self.down_scale = float(up_scale), float(down_scale)
        self.W = nn.Parameter(init_scale * torch.randn(n_visible, n_hidden, generator=generator))
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))
        self.register_buffer("base_bias", torch.zeros(n_visible))

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def gaussian(self) -> bool:
        return self.visible == "gaussian"

    def init_from_data(self, x: torch.Tensor) -> None:
        """Base model from the data: visible base rates (Bernoulli) or means (Gaussian); the
        visible biases start there too unless they were already trained (non-zero)."""
        with torch.no_grad():
            mean = x.float().mean(0)
            base = mean if self.gaussian else logit(mean)
            self.base_bias.copy_(base)
            if not bool(self.b.abs().sum() > 0):
                self.b.copy_(base)

    # ----------------------------------------------------------------- conditionals
    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """``c + up_scale * v W``: the hidden units' total input at ``beta = 1``."""
        return self.c + self.up_scale * (v @ self.W)

    def hidden_probs(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """``p(h = 1 | v)`` under ``p_beta``."""
        return torch.sigmoid(beta * self.hidden_input(v))

    def visible_mean(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """``E[v | h]`` under ``p_beta``: a probability (Bernoulli) or a mean (Gaussian)."""
        field = (1.0 - beta) * self.base_bias + beta * (self.b + self.down_scale * (h @ self.W.T))
        return field if self.gaussian else torch.sigmoid(field)

    def sample_visible(self, h: torch.Tensor, beta: float = 1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self.visible_mean(h, beta)
        if self.gaussian:
            return mean + torch.randn(mean.shape, generator=generator)
        return sample_bernoulli(mean, generator=generator)

    def reconstruction(self, v: torch.Tensor) -> torch.Tensor:
        """Visible means given the hidden probabilities of ``v`` (one mean-field sweep)."""
        return self.visible_mean(self.hidden_probs(v))

    # ----------------------------------------------------------------- energies
    def _visible_term(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """``-(visible part of E_beta)``: the terms that do not involve ``h``."""
        if self.gaussian:
            return (-(1.0 - beta) * 0.5 * ((v - self.base_bias) ** 2).sum(-1)
                    - beta * 0.5 * ((v - self.b) ** 2).sum(-1))
        return v @ ((1.0 - beta) * self.base_bias + beta * self.b)

    def energy(self, state: Sequence[torch.Tensor], beta: float = 1.0) -> torch.Tensor:
        """``E_beta(v, h)`` per example (see the module docstring)."""
        v, h = state[0], state[1]
        interaction = (h * self.hidden_input(v)).sum(-1)
        return -(self._visible_term(v, beta) + beta * interaction)

    def log_p_tilde(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """Unnormalised ``log p_beta(v)`` with the hidden units summed out (``-F`` at beta 1)."""
        return self._visible_term(v, beta) + F.softplus(beta * self.hidden_input(v)).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))``; ``log p(v) = -F(v) - log Z``."""
        return -self.log_p_tilde(v, 1.0)

    # ----------------------------------------------------------------- training protocol
    def positive_state(self, v: torch.Tensor, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        return v, self.hidden_probs(v)

    def chain_state(self, v: torch.Tensor, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        return v, sample_bernoulli(self.hidden_probs(v), generator=generator)

    def gibbs_step(self, state: Sequence[torch.Tensor], beta: float = 1.0,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs sweep under ``p_beta``: ``v ~ p(v | h)``, then ``h ~ p(h | v)``."""
        v = self.sample_visible(state[1], beta, generator)
        return v, sample_bernoulli(self.hidden_probs(v, beta), generator=generator)

    def negative_state(self, state: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The chain's visible sample with the hidden units' conditional probabilities."""
        return state[0], self.hidden_probs(state[0])

    def weight_parameters(self) -> list[nn.Parameter]:
        return [self.W]

    # ----------------------------------------------------------------- AIS protocol
    def ais_base_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        base = self.base_bias.expand(n, -1)
        if self.gaussian:
            return base + torch.randn(base.shape, generator=generator)
        return sample_bernoulli(torch.sigmoid(base), generator=generator)

    def ais_log_z_base(self) -> float:
        visible = (0.5 * self.n_visible * math.log(2 * math.pi) if self.gaussian
                   else float(F.softplus(self.base_bias).sum()))
        return visible + self.n_hidden * math.log(2.0)

    def ais_log_p_tilde(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        return self.log_p_tilde(v, beta)

    def ais_transition(self, v: torch.Tensor, beta: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        h = sample_bernoulli(self.hidden_probs(v, beta), generator=generator)
        return self.sample_visible(h, beta, generator)

    def ais_step(self, v: torch.Tensor, beta_prev: float, beta: float, *,
                 generator: torch.Generator | None = None, transition: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """AIS increment and transition sharing one ``v W`` (see :func:`inference.energy.run_ais`)."""
        field = self.hidden_input(v)
        increment = (self._visible_term(v, beta) - self._visible_term(v, beta_prev)
                     + (F.softplus(beta * field) - F.softplus(beta_prev * field)).sum(-1))
        if transition:
            h = sample_bernoulli(torch.sigmoid(beta * field), generator=generator)
            v = self.sample_visible(h, beta, generator)
        return increment, v

    # ----------------------------------------------------------------- exact answers
    def exact_log_z(self, max_units: int = EXACT_MAX_UNITS, chunk: int = 4096) -> float | None:
        """``log Z`` by enumerating the hidden layer (or, for binary visible units, the visible
        layer) when it has at most ``max_units`` units; ``None`` when both are larger."""
        with torch.no_grad():
            if self.n_hidden <= max_units:
                parts = []
                for start in range(0, 2 ** self.n_hidden, chunk):
                    h = enumerate_binary(self.n_hidden, start, min(start + chunk,
                                                                   2 ** self.n_hidden))
                    parts.append(torch.logsumexp(self._log_p_tilde_hidden(h).double(), 0))
                return float(torch.logsumexp(torch.stack(parts), 0))
            if not self.gaussian and self.n_visible <= max_units:
                parts = []
                for start in range(0, 2 ** self.n_visible, chunk):
                    v = enumerate_binary(self.n_visible, start, min(start + chunk,
                                                                    2 ** self.n_visible))
                    parts.append(torch.logsumexp(self.log_p_tilde(v).double(), 0))
                return float(torch.logsumexp(torch.stack(parts), 0))
        return None

    def _log_p_tilde_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p(h)`` with the visible units summed (integrated) out."""
        field = self.b + self.down_scale * (h @ self.W.T)
        if self.gaussian:
            visible = (0.5 * self.n_visible * math.log(2 * math.pi)
                       + 0.5 * (field ** 2).sum(-1) - 0.5 * (self.b ** 2).sum())
        else:
            visible = F.softplus(field).sum(-1)
        return h @ self.c + visible

    # ----------------------------------------------------------------- evaluation
    def annealable(self) -> "RBM":
        """The model whose partition function AIS estimates: the RBM itself."""
        return self

    def held_out_log_likelihood(self, v: torch.Tensor, log_z: float, *, samples: int = 1,
                                generator: torch.Generator | None = None) -> torch.Tensor:
        """``log p(v) = -F(v) - log Z`` per row (exact given ``log Z``)."""
        with torch.no_grad():
            return self.log_p_tilde(v).double() - log_z

    def first_layer_weights(self) -> torch.Tensor:
        return self.W

    def sample(self, n: int, steps: int = 1000, generator: torch.Generator | None = None,
               start: torch.Tensor | None = None) -> torch.Tensor:
        """Visible means after ``steps`` Gibbs sweeps of ``n`` chains (from ``start`` or from
        the base model)."""
        with torch.no_grad():
            v = start if start is not None else self.ais_base_sample(n, generator)
            state = self.chain_state(v, generator)
            for _ in range(steps):
                state = self.gibbs_step(state, generator=generator)
            return self.visible_mean(state[1])

    def extra_repr(self) -> str:
        return f"{self.n_visible} {self.visible} visible, {self.n_hidden} binary hidden"
