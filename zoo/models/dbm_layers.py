"""A two-layer deep Boltzmann machine (Salakhutdinov and Hinton 2009) as a PyTorch module.

Energy of binary ``v``, ``h1``, ``h2``::

    E(v, h1, h2) = -b.v - c1.h1 - c2.h2 - v W1 h1 - h1 W2 h2

The posterior over the hidden units is approximated by mean field, the fixed point of
``mu1 = sigmoid(c1 + v W1 + W2 mu2)``, ``mu2 = sigmoid(c2 + mu1 W2)``
(:meth:`DBM.mean_field`); training uses it for the data term and persistent Gibbs chains
(stochastic approximation) for the model term. Greedy pretraining (:meth:`DBM.training_stages`)
fits two RBMs with doubled weights in one direction: the bottom one sees ``2 W1`` bottom-up,
the top one ``2 W2`` top-down, making up for the input each layer of the DBM gets from both
sides; their weights then start the joint training.

For AIS the odd layer ``h1`` is summed out in closed form, so the chains run over ``(v, h2)``
(the base model: visible base rates, uniform ``h2``). The test bound::

    log p(v) >= -E(v, mu1, mu2) + H(mu1) + H(mu2) - log Z

Usage::

    dbm = DBM(784, 500, 1000, seed=0)
    mu1, mu2 = dbm.mean_field(x[:10])
    stages = dbm.training_stages()      # rbm1, rbm2 (doubled weights), then the joint DBM
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inference.energy.protocol import TrainingStage
from zoo.models.rbm_layers import (EXACT_MAX_UNITS, RBM, bernoulli_entropy, enumerate_binary,
                                   logit, sample_bernoulli)

__all__ = ["DBM"]

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DBM(nn.Module):
    """A two-layer binary DBM with ``n_visible``, ``n_hidden1`` and ``n_hidden2`` units.

    ``mean_field_steps`` and ``mean_field_tol`` bound the fixed-point iterations;
    ``pretrain`` makes :meth:`training_stages` start with the two doubled-weight RBMs.
    """

    def __init__(self, n_visible: int, n_hidden1: int, n_hidden2: int, *,
                 init_scale: float = 0.01, mean_field_steps: int = 30,
                 mean_field_tol: float = 1e-5, pretrain: bool = True, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        self.W1 = nn.Parameter(init_scale * torch.randn(n_visible, n_hidden1,
                                                        generator=generator))
        self.W2 = nn.Parameter(init_scale * torch.randn(n_hidden1, n_hidden2,
                                                        generator=generator))
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c1 = nn.Parameter(torch.zeros(n_hidden1))
        self.c2 = nn.Parameter(torch.zeros(n_hidden2))
        self.register_buffer("base_bias", torch.zeros(n_visible))
        self.mean_field_steps, self.mean_field_tol = int(mean_field_steps), float(mean_field_tol)
        self.pretrain = bool(pretrain)
        # pretraining RBMs: kept out of the module's parameters (not part of the DBM)
        self._pretrain = (RBM(n_visible, n_hidden1, up_scale=2.0, init_scale=init_scale,
                              seed=seed + 1),
                          RBM(n_hidden1, n_hidden2, down_scale=2.0, init_scale=init_scale,
                              seed=seed + 2))

    # ----------------------------------------------------------------- conditionals
    def h1_probs(self, v: torch.Tensor, h2: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        return torch.sigmoid(beta * (self.c1 + v @ self.W1 + h2 @ self.W2.T))

    def h2_probs(self, h1: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        return torch.sigmoid(beta * (self.c2 + h1 @ self.W2))

    def v_probs(self, h1: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        return torch.sigmoid((1.0 - beta) * self.base_bias + beta * (self.b + h1 @ self.W1.T))

    def mean_field(self, v: torch.Tensor, steps: int | None = None, tol: float | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean-field posterior means ``(mu1, mu2)`` of ``q(h1, h2 | v)``.

        Started bottom-up with doubled ``W1`` (the recognition pass of pretraining), then
        alternating updates until the largest change is below ``tol`` or after ``steps``.
        """
        steps = self.mean_field_steps if steps is None else steps
        tol = self.mean_field_tol if tol is None else tol
        with torch.no_grad():
            mu1 = torch.sigmoid(self.c1 + 2.0 * (v @ self.W1))
            mu2 = self.h2_probs(mu1)
            for _ in range(steps):
                new1 = self.h1_probs(v, mu2)
                new2 = self.h2_probs(new1)
                change = max(float((new1 - mu1).abs().max()), float((new2 - mu2).abs().max()))
                mu1, mu2 = new1, new2
                if change < tol:
                    break
        return mu1, mu2

    def reconstruction(self, v: torch.Tensor) -> torch.Tensor:
        mu1, _ = self.mean_field(v, steps=5)
        return self.v_probs(mu1)

    # ----------------------------------------------------------------- energies
    def energy(self, state: Sequence[torch.Tensor], beta: float = 1.0) -> torch.Tensor:
        v, h1, h2 = state
        inner = (v @ self.b + h1 @ self.c1 + h2 @ self.c2 + ((v @ self.W1) * h1).sum(-1)
                 + ((h1 @ self.W2) * h2).sum(-1))
        return -((1.0 - beta) * (v @ self.base_bias) + beta * inner)

    # ----------------------------------------------------------------- training protocol
    def init_from_data(self, x: torch.Tensor) -> None:
        """The AIS base model's visible base rates (the biases come from pretraining)."""
        with torch.no_grad():
            self.base_bias.copy_(logit(x.float().mean(0)))
            if not bool(self.b.abs().sum() > 0):
                self.b.copy_(self.base_bias)

    def positive_state(self, v: torch.Tensor, generator: torch.Generator | None = None
                       ) -> State:
        mu1, mu2 = self.mean_field(v)
        return v, mu1, mu2

    def chain_state(self, v: torch.Tensor, generator: torch.Generator | None = None) -> State:
        with torch.no_grad():
            h1 = sample_bernoulli(torch.sigmoid(self.c1 + 2.0 * (v @ self.W1)),
                                 generator=generator)
            h2 = sample_bernoulli(self.h2_probs(h1), generator=generator)
        return v, h1, h2

    def gibbs_step(self, state: Sequence[torch.Tensor], beta: float = 1.0,
                   generator: torch.Generator | None = None) -> State:
        """``h1 ~ p(h1 | v, h2)``, then ``v ~ p(v | h1)`` and ``h2 ~ p(h2 | h1)`` (a block)."""
        v, _, h2 = state
        h1 = sample_bernoulli(self.h1_probs(v, h2, beta), generator=generator)
        v = sample_bernoulli(self.v_probs(h1, beta), generator=generator)
        h2 = sample_bernoulli(self.h2_probs(h1, beta), generator=generator)
        return v, h1, h2

    def negative_state(self, state: Sequence[torch.Tensor]) -> State:
        return tuple(state)  # type: ignore[return-value]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [self.W1, self.W2]

    def training_stages(self, pretrain: bool | None = None) -> list[TrainingStage]:
        """Greedy pretraining of two doubled-weight RBMs (unless ``pretrain`` is false; default
        the module's ``pretrain``), then the joint DBM."""
        pretrain = self.pretrain if pretrain is None else pretrain
        bottom, top = self._pretrain

        def h1_samples(v: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
            return sample_bernoulli(bottom.hidden_probs(v), generator=g)

        def start_joint() -> None:
            with torch.no_grad():
                self.W1.copy_(bottom.W)
                self.W2.copy_(top.W)
                self.b.copy_(bottom.b)
                self.c1.copy_(0.5 * (bottom.c + top.b))
                self.c2.copy_(top.c)

        joint = TrainingStage("dbm", self, before=start_joint if pretrain else None)
        if not pretrain:
            return [joint]
        return [TrainingStage("rbm1", bottom), TrainingStage("rbm2", top, inputs=h1_samples),
                joint]

    # ----------------------------------------------------------------- AIS protocol
    def annealable(self) -> "DBM":
        return self

    def ais_base_sample(self, n: int, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        v = sample_bernoulli(torch.sigmoid(self.base_bias).expand(n, -1), generator=generator)
        h2 = sample_bernoulli(torch.full((n, self.c2.shape[0]), 0.5), generator=generator)
        return v, h2

    def ais_log_z_base(self) -> float:
        return float(F.softplus(self.base_bias).sum()) + (self.c1.shape[0] + self.c2.shape[0]
                                                          ) * math.log(2.0)

    def _ais_parts(self, state: tuple[torch.Tensor, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v, h2 = state
        return v @ self.base_bias, v @ self.b + h2 @ self.c2, self.c1 + v @ self.W1 + h2 @ self.W2.T

    def ais_log_p_tilde(self, state: tuple[torch.Tensor, torch.Tensor], beta: float
                        ) -> torch.Tensor:
        base, linear, field = self._ais_parts(state)
        return (1.0 - beta) * base + beta * linear + F.softplus(beta * field).sum(-1)

    def ais_transition(self, state: tuple[torch.Tensor, torch.Tensor], beta: float,
                       generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        v, h1, h2 = self.gibbs_step((state[0], None, state[1]), beta, generator)
        return v, h2

    def ais_step(self, state: tuple[torch.Tensor, torch.Tensor], beta_prev: float, beta: float,
                 *, generator: torch.Generator | None = None, transition: bool = True
                 ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        base, linear, field = self._ais_parts(state)
        increment = ((beta_prev - beta) * base + (beta - beta_prev) * linear
                     + (F.softplus(beta * field) - F.softplus(beta_prev * field)).sum(-1))
        if transition:
            h1 = sample_bernoulli(torch.sigmoid(beta * field), generator=generator)
            v = sample_bernoulli(self.v_probs(h1, beta), generator=generator)
            state = (v, sample_bernoulli(self.h2_probs(h1, beta), generator=generator))
        return increment, state

    def exact_log_z(self, max_units: int = EXACT_MAX_UNITS, chunk: int = 4096) -> float | None:
        """``log Z`` by enumerating ``h1`` (``v`` and ``h2`` summed out in closed form) when
        ``h1`` has at most ``max_units`` units, else ``None``."""
        n1 = self.c1.shape[0]
        if n1 > max_units:
            return None
        with torch.no_grad():
            parts = []
            for start in range(0, 2 ** n1, chunk):
                h1 = enumerate_binary(n1, start, min(start + chunk, 2 ** n1))
                log_p = (h1 @ self.c1 + F.softplus(self.b + h1 @ self.W1.T).sum(-1)
                         + F.softplus(self.c2 + h1 @ self.W2).sum(-1))
                parts.append(torch.logsumexp(log_p.double(), 0))
            return float(torch.logsumexp(torch.stack(parts), 0))

    # ----------------------------------------------------------------- evaluation
    def held_out_log_likelihood(self, v: torch.Tensor, log_z: float, *, samples: int = 1,
                                generator: torch.Generator | None = None) -> torch.Tensor:
        """The mean-field lower bound ``-E(v, mu1, mu2) + H(mu1) + H(mu2) - log Z`` per row."""
        with torch.no_grad():
            mu1, mu2 = self.mean_field(v)
            bound = (-self.energy((v, mu1, mu2)) + bernoulli_entropy(mu1)
                     + bernoulli_entropy(mu2))
            return bound.double() - log_z

    def sample(self, n: int, steps: int = 1000, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Visible means after ``steps`` Gibbs sweeps of ``n`` chains from the base model."""
        with torch.no_grad():
            v, h2 = self.ais_base_sample(n, generator)
            state = (v, None, h2)
            for _ in range(steps):
                state = self.gibbs_step(state, generator=generator)
            return self.v_probs(state[1])

    def first_layer_weights(self) -> torch.Tensor:
        return self.W1
