"""MEADS (Hoffman and Sountsov 2022, "Tuning-free generalized Hamiltonian Monte Carlo"):
generalised HMC whose step size, metric and damping adapt across folds of chains.

Each transition is one step of generalised HMC (Horowitz 1991; Neal 2020) for every chain:

* the momentum persists: ``m <- sqrt(1 - alpha) m + sqrt(alpha) xi``, ``xi ~ N(0, I)``. It is
  kept standardised, the momentum proper being ``m / sigma`` under the inverse metric
  ``sigma^2``, so its stationary law N(0, I) is the same whatever ``sigma`` is in use;
* one leapfrog step of size ``eps``;
* a persistent slice variable ``u`` in [-1, 1] makes the accept test non-reversible (Neal 2020):
  ``u <- ((u + 1 + delta) mod 2) - 1``, accept iff ``|u| < exp(-dH)``, and on acceptance
  ``u <- u exp(dH)``;
* a rejection flips the momentum (``m <- -m``).

Warm-up (Algorithm 3 of the paper; ``shared/ALGORITHMS.md``, section MEADS): the chains are
dealt into K = 4 folds and at iteration t fold ``t mod K`` is frozen (does not move). From the
chains of each fold j: ``sigma_j``, the per-dimension sd; ``eps_j = min(1, 0.5 /
sqrt(lambda_max))`` of the potential's gradients times ``sigma_j``; ``gamma_j = max(1 /
sqrt(lambda_max of the centred positions / sigma_j), 1 / ((t + 1) eps_j))``; ``alpha_j = 1 -
exp(-2 eps_j gamma_j)`` and ``delta_j = alpha_j / 2``. Fold k moves with the parameters of fold
k - 1 (all four of them, as the paper's Algorithm 3; BlackJAX's ``meads_adaptation`` takes the
damping from fold k's own positions instead). As fold k's parameters depend only on fold k - 1
and fold ``t mod K`` stands still, the step is a sweep of valid updates of the joint law of
all chains. Every K iterations the chains are reshuffled across folds.

After warm-up (a choice of ours; the paper keeps adapting) the parameters are fixed, so the
draws come from a time-homogeneous, valid kernel: the same formulas applied once to all C
chains' last warm-up positions as a single fold (t = ``num_warmup``), shared by every chain.
(BlackJAX averages the folds' parameters instead.) Freezing each chain at its own fold's last
values instead was worse on the conjugate test target, 32 chains, 200 + 600 iterations, four
seeds: smallest bulk ESS 1561-2326 and R-hat up to 1.027, against 2423-3719 and 1.017 with
the pooled estimate, whose sigma rests on C chains instead of C / K. After warm-up every chain
moves at every iteration and nothing is reshuffled. ``step_size`` and ``target_accept_prob``
are not used: MEADS sets its step sizes from the gradients and has no acceptance target.

``jit_compile=True`` hands the whole generalised HMC step (:func:`ghmc_step`, potential
inlined) to ``torch.compile``; the warm-up's fold statistics stay eager.

Usage::

    run_mcmc(model, {"y": y}, kernel="meads", chain_method="vectorized", num_chains=32)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from inference.mcmc.protocol import KernelSettings
from inference.mcmc.vectorized.base import VectorizedKernel, compile_step
from inference.mcmc.vectorized.integrator import Potential, energy_error, kinetic, leapfrog
from inference.mcmc.vectorized.nuts import MAX_DELTA_ENERGY

__all__ = ["VectorizedMEADS", "GHMCState", "MEADSParameters", "fold_max_eigenvalue",
           "fold_parameters", "ghmc_step", "NUM_FOLDS"]

#: folds of chains (K in the paper)
NUM_FOLDS = 4
#: eps = min(1, STEP_SIZE_MULTIPLIER / sqrt(lambda_max)), the paper's 0.5
STEP_SIZE_MULTIPLIER = 0.5


class GHMCState(NamedTuple):
    """Positions (C, D), potential energies (C,), gradients (C, D), standardised momenta
    (C, D) and slice variables (C,) in [-1, 1]."""

    z: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor
    momentum: torch.Tensor
    slice: torch.Tensor


class MEADSParameters(NamedTuple):
    """Generalised HMC parameters, one row per fold (K, ...) or per chain (C, ...): step sizes,
    per-dimension scales (the metric is ``sigma^2``), momentum refresh ``alpha`` and slice drift
    ``delta``."""

    step_size: torch.Tensor
    sigma: torch.Tensor
    alpha: torch.Tensor
    delta: torch.Tensor


def fold_max_eigenvalue(x: torch.Tensor, fold: torch.Tensor, num_folds: int) -> torch.Tensor:
    """The paper's estimate of the largest eigenvalue of ``E[x x^T]``, per fold of rows, (K,).

    With the fold's rows stacked in X (n, D) and S = X X^T, it is ``[sum over i != j of S_ij^2
    / (n (n - 1))] / [trace(S) / n]``: unbiased estimates of ``trace(A^2)`` over ``trace(A)``
    for ``A = E[x x^T]``, which is near the largest eigenvalue when that one dominates and is
    much less noisy than the sample matrix's top eigenvalue. Every fold needs two rows or more.

    Example (rows all equal to v: ``A = v v^T``, largest eigenvalue ``|v|^2``)::

        v = torch.tensor([3.0, 4.0])
        fold_max_eigenvalue(v.expand(4, 2), torch.tensor([0, 0, 1, 1]), 2)   # tensor([25., 25.])
    """
    gram = x @ x.T
    onehot = torch.nn.functional.one_hot(fold, num_folds).T.to(x.dtype)  # (K, C)
    n = onehot.sum(1)
    off_diagonal = (fold[:, None] == fold[None, :]) & ~torch.eye(len(fold), dtype=torch.bool)
    squares = torch.where(off_diagonal, gram ** 2, 0.0).sum(1)  # (C,): same-fold pairs only
    numerator = (onehot @ squares) / (n * (n - 1))
    denominator = (onehot @ gram.diagonal()) / n
    return numerator / denominator


def fold_parameters(z: torch.Tensor, grad: torch.Tensor, fold: torch.Tensor, num_folds: int,
                    iteration: int) -> MEADSParameters:
    """Each fold's own MEADS parameters (K, ...) from its chains' positions and potential
    gradients (both (C, D)); ``fold`` (C,) gives each chain's fold, ``iteration`` is t (0-based).

    Example::

        params = fold_parameters(z, grad, torch.arange(8) % 4, 4, iteration=0)
        params.step_size.shape, params.sigma.shape   # (4,), (4, D)
    """
    onehot = torch.nn.functional.one_hot(fold, num_folds).T.to(z.dtype)  # (K, C)
    n = onehot.sum(1)[:, None]
    mean = onehot @ z / n
    centred = z - mean[fold]
    sigma = (onehot @ centred ** 2 / n).sqrt()  # sd across the fold's chains, as the paper's
    sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))  # chains that coincide
    scale = sigma[fold]
    lam_grad = fold_max_eigenvalue(grad * scale, fold, num_folds)
    step_size = (STEP_SIZE_MULTIPLIER / lam_grad.sqrt()).clamp(max=1.0)
    lam_z = fold_max_eigenvalue(centred / scale, fold, num_folds)
    gamma = torch.maximum(lam_z.rsqrt(), 1.0 / ((iteration + 1) * step_size))
    alpha = 1.0 - torch.exp(-2.0 * step_size * gamma)
    return MEADSParameters(step_size, sigma, alpha, alpha / 2)


def _for_chains(params: MEADSParameters, fold: torch.Tensor, num_folds: int
                ) -> MEADSParameters:
    """Per chain (C, ...): each chain takes the parameters of the fold before its own."""
    source = (fold - 1) % num_folds
    return MEADSParameters(*(p[source] for p in params))


def ghmc_step(potential: Potential, z: torch.Tensor, energy: torch.Tensor, grad: torch.Tensor,
              momentum: torch.Tensor, slice_: torch.Tensor, noise: torch.Tensor,
              eps: torch.Tensor, sigma: torch.Tensor, alpha: torch.Tensor, delta: torch.Tensor,
              moving: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One generalised HMC step of every chain (see the module docstring), a pure function
    that ``torch.compile`` can take whole: the state's five fields, the refresh ``noise``
    (C, D) ~ N(0, I), per-chain parameters, and ``moving`` (C,), False where a chain keeps its
    whole state. Returns the new five fields, the energy errors dH and the starting
    Hamiltonians (C,).

    Example::

        z, energy, grad, m, u, dh, h0 = ghmc_step(potential, *state, noise, *params, moving)
    """
    m = (1.0 - alpha).sqrt()[:, None] * momentum + alpha.sqrt()[:, None] * noise
    u = torch.remainder(slice_ + 1.0 + delta, 2.0) - 1.0
    inv_mass = sigma ** 2
    h0 = energy + 0.5 * (m ** 2).sum(-1)  # kinetic energy of m / sigma under sigma^2
    pz, pr, pe, pg = leapfrog(potential, z, m / sigma, grad, eps[:, None], inv_mass)
    delta_h = energy_error(pe + kinetic(pr, inv_mass), h0)  # NaN counts as +inf
    accept = (torch.log(u.abs()) < -delta_h) & moving
    new_m = torch.where(accept[:, None], pr * sigma, -m)  # GHMC: flip on rejection
    new_u = torch.where(accept, u * torch.exp(torch.where(accept, delta_h, 0.0)), u)
    return (torch.where(accept[:, None], pz, z), torch.where(accept, pe, energy),
            torch.where(accept[:, None], pg, grad),
            torch.where(moving[:, None], new_m, momentum), torch.where(moving, new_u, slice_),
            delta_h, h0)


class VectorizedMEADS(VectorizedKernel):
    """MEADS over a batch of chains; see the module docstring.

    Example::

        kernel = VectorizedMEADS(KernelSettings(target_accept_prob=0.5))
        state = kernel.init(potential, z0, num_warmup=1000, generator=generator)  # z0: (C, D)
    """

    name = "meads"
    num_folds = NUM_FOLDS

    def __init__(self, settings: KernelSettings) -> None:
        if settings.step_size is not None:
            raise ValueError("kernel 'meads' sets its step sizes from the gradients of the "
                             f"chains; leave step_size unset (got {settings.step_size!r})")
        super().__init__(settings)
        self.num_warmup = 0
        self.generator = torch.Generator()
        self.frozen: MEADSParameters | None = None

    def init(self, potential: Potential, z: torch.Tensor, num_warmup: int,
             generator: torch.Generator) -> GHMCState:
        """Evaluate the start, draw momenta and slice variables, deal the chains into folds."""
        chains, dim = z.shape
        if chains < 2 * self.num_folds:
            raise ValueError(f"kernel 'meads' splits the chains into {self.num_folds} folds of "
                             f"at least 2 chains and needs num_chains >= {2 * self.num_folds}, "
                             f"got num_chains={chains}")
        self.potential, self.generator, self.num_warmup = potential, generator, num_warmup
        step = functools.partial(ghmc_step, potential)
        if self.settings.jit_compile:  # one compiled kernel per transition, potential inlined
            step = compile_step(step)
        self.ghmc = step
        self.everyone = torch.ones(chains, dtype=torch.bool)
        energy, grad = potential(z)
        momentum = torch.randn(chains, dim, generator=generator, dtype=z.dtype)
        slice_ = 2.0 * torch.rand(chains, generator=generator, dtype=z.dtype) - 1.0
        # folds as equal as can be (sizes differ by at most one), chains dealt at random
        self.fold = (torch.arange(chains) % self.num_folds)[torch.randperm(chains,
                                                                           generator=generator)]
        state = GHMCState(z, energy, grad, momentum, slice_)
        self.frozen = None
        if num_warmup == 0:
            self._freeze(state, 0)
        return state

    def _freeze(self, state: GHMCState, iteration: int) -> None:
        """Fix the parameters of every chain for the sampling phase: the formulas of warm-up
        applied to all chains as one fold, at ``iteration`` (see the module docstring)."""
        everyone = torch.zeros_like(self.fold)
        params = fold_parameters(state.z, state.grad, everyone, 1, iteration)
        self.frozen = MEADSParameters(*(p[everyone] for p in params))

    def step(self, state: GHMCState, iteration: int) -> tuple[GHMCState, dict[str, torch.Tensor]]:
        """One generalised HMC step of every chain; during warm-up (``iteration <
        num_warmup``) with fresh fold parameters, fold ``iteration mod K`` frozen, and a
        reshuffle of the folds after every K-th iteration."""
        warming = iteration < self.num_warmup
        if warming:
            params = fold_parameters(state.z, state.grad, self.fold, self.num_folds, iteration)
            chain_params = _for_chains(params, self.fold, self.num_folds)
            moving = self.fold != iteration % self.num_folds
        else:
            assert self.frozen is not None
            chain_params, moving = self.frozen, self.everyone
        state, info = self.transition(state, chain_params, moving)
        if warming:
            if (iteration + 1) % self.num_folds == 0:
                self.fold = self.fold[torch.randperm(len(self.fold), generator=self.generator)]
            if iteration == self.num_warmup - 1:
                self._freeze(state, self.num_warmup)
        return state, info

    def transition(self, state: GHMCState, params: MEADSParameters,
                   moving: torch.Tensor) -> tuple[GHMCState, dict[str, torch.Tensor]]:
        """Generalised HMC with per-chain ``params`` (C, ...); chains where ``moving`` (C,) is
        False keep their whole state (position, momentum, slice)."""
        noise = torch.randn(state.z.shape, generator=self.generator, dtype=state.z.dtype)
        *new, delta_h, h0 = self.ghmc(*state, noise, *params, moving)
        new = GHMCState(*new)
        eps = params.step_size
        info = {"diverging": delta_h > MAX_DELTA_ENERGY,
                "acceptance_rate": torch.exp(-delta_h).clamp(max=1.0),
                "step_size": eps.clone(), "n_steps": torch.ones(eps.shape, dtype=torch.long),
                "energy": h0, "lp": -new.energy}
        return new, info

    @property
    def parameters(self) -> MEADSParameters:
        """Each chain's fixed parameters after warm-up (C, ...)."""
        if self.frozen is None:
            raise RuntimeError("MEADS parameters are fixed at the end of warm-up; "
                               "warm-up has not ended")
        return self.frozen

    @property
    def final_step_size(self) -> torch.Tensor:
        """The step sizes (C,) in use after warm-up (in units scaled by each chain's sigma)."""
        return self.parameters.step_size
