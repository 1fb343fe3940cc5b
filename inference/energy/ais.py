"""Annealed importance sampling (Neal 2001) of a partition function, as Salakhutdinov and
Murray (2008) used it for RBMs: from a base model with known ``log Z`` to the trained model.

Each of ``num_runs`` independent runs draws a state from the base model and, for every
inverse temperature ``beta_k`` of the schedule, adds ``log p*_k(x) - log p*_{k-1}(x)`` to its
log-weight and then makes one transition that leaves ``p_k`` invariant. With ``w`` the final
log-weights, ``log Z = log Z_0 + log mean exp(w)``. Its standard error is the delta-method
one, ``sd(exp(w)) / (sqrt(R) mean(exp(w)))``; Salakhutdinov and Murray report
``log(mean(exp(w)) +- 3 sd(exp(w)) / sqrt(R))``, given here as ``log_z_low``/``log_z_high``.

Why by hand: no maintained PyTorch or Pyro library provides AIS between Boltzmann machines
(Pyro's importance sampling has no annealing path or transition operators); the loop is a few
lines over the model's :class:`~inference.energy.protocol.Annealable` methods.

Usage::

    from inference.energy import ais_schedule, run_ais
    ais = run_ais(rbm, ais_schedule(14_500), num_runs=100, seed=0)
    print(ais.log_z, ais.log_z_se, ais.log_weights.std())
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["AISResult", "ais_schedule", "run_ais", "SALAKHUTDINOV_MURRAY_TEMPERATURES"]

#: the number of intermediate distributions of Salakhutdinov and Murray (2008)
SALAKHUTDINOV_MURRAY_TEMPERATURES = 14_500


def ais_schedule(num_temperatures: int = SALAKHUTDINOV_MURRAY_TEMPERATURES) -> np.ndarray:
    """Inverse temperatures from 0 to 1 spaced as Salakhutdinov and Murray's schedule.

    Theirs has 500 steps of 1e-3 on [0, 0.5], 4000 of 1e-4 on [0.5, 0.9] and 10,000 of 1e-5 on
    [0.9, 1] (14,500 in all). Other counts keep those proportions of the steps in each segment.

    Example: ``ais_schedule(14_500)`` has 14,501 values, ``[0, 0.001, ..., 1]``.
    """
    if isinstance(num_temperatures, bool) or int(num_temperatures) < 3:
        raise ValueError(f"AIS needs at least 3 intermediate temperatures, got "
                         f"{num_temperatures!r}")
    total = int(num_temperatures)
    counts = [max(1, round(total * share)) for share in (500 / 14_500, 4000 / 14_500)]
    counts.append(max(1, total - sum(counts)))
    pieces = [np.linspace(lo, hi, n, endpoint=False)
              for (lo, hi), n in zip(((0.0, 0.5), (0.5, 0.9), (0.9, 1.0)), counts)]
    return np.concatenate(pieces + [np.array([1.0])])


@dataclass(frozen=True)
class AISResult:
    """One AIS estimate: ``log_z`` with its delta-method standard error ``log_z_se``, the
    +-3 sd interval of Salakhutdinov and Murray (``log_z_low`` is ``-inf`` when the lower end
    is not positive), the per-run ``log_weights`` and the schedule size."""

    log_z: float
    log_z_se: float
    log_z_low: float
    log_z_high: float
    log_weights: np.ndarray
    log_z_base: float
    num_temperatures: int

    @property
    def num_runs(self) -> int:
        return int(len(self.log_weights))


def summarize_log_weights(log_weights: np.ndarray, log_z_base: float, num_temperatures: int
                          ) -> AISResult:
    """``log Z`` and its errors from the final AIS log-weights (see the module docstring)."""
    w = np.asarray(log_weights, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise RuntimeError("AIS produced non-finite log-weights; the model's parameters are "
                           "probably not finite (a diverged training run)")
    top = w.max()
    ratio = np.exp(w - top)
    mean = ratio.mean()
    sd = ratio.std(ddof=1) if len(w) > 1 else 0.0
    spread = 3.0 * sd / math.sqrt(len(w))
    log_mean = top + math.log(mean)
    se = sd / (math.sqrt(len(w)) * mean)
    low = top + math.log(mean - spread) if mean > spread else -math.inf
    return AISResult(log_z=log_z_base + log_mean, log_z_se=float(se),
                     log_z_low=log_z_base + low, log_z_high=log_z_base + top
                     + math.log(mean + spread), log_weights=w, log_z_base=log_z_base,
                     num_temperatures=num_temperatures)


def run_ais(model: Any, betas: Sequence[float] | np.ndarray, num_runs: int = 100,
            seed: int = 0) -> AISResult:
    """Estimate the log partition function of ``model`` (an
    :class:`~inference.energy.protocol.Annealable`) along ``betas`` (0 first, 1 last).

    Deterministic for a given ``seed`` (its own ``torch.Generator``; the global RNG is left
    alone). Log-weights accumulate in float64.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or len(betas) < 2 or betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError("betas must be a 1-D schedule from 0 to 1 (see ais_schedule)")
    if np.any(np.diff(betas) <= 0):
        raise ValueError("betas must increase strictly")
    if isinstance(num_runs, bool) or int(num_runs) < 2:
        raise ValueError(f"num_runs must be an integer >= 2, got {num_runs!r}")
    generator = torch.Generator().manual_seed(int(seed))
    step = getattr(model, "ais_step", None) or (lambda *a, **k: _generic_step(model, *a, **k))
    with torch.no_grad():
        state = model.ais_base_sample(int(num_runs), generator=generator)
        log_w = torch.zeros(int(num_runs), dtype=torch.float64)
        for k in range(1, len(betas)):
            increment, state = step(state, float(betas[k - 1]), float(betas[k]),
                                    generator=generator, transition=k < len(betas) - 1)
            log_w += increment.double()
    return summarize_log_weights(log_w.numpy(), float(model.ais_log_z_base()), len(betas) - 1)


def _generic_step(model: Any, state: Any, beta_prev: float, beta: float, *,
                  generator: torch.Generator | None, transition: bool) -> tuple[torch.Tensor, Any]:
    """One AIS step from the protocol's pieces: the weight increment ``log p*_k(x) -
    log p*_{k-1}(x)``, then (unless it is the last) a transition under ``p_k``.

    A model may define ``ais_step`` with the same signature to share work between the two
    (an RBM computes ``v W`` once for both densities and the hidden units' conditional).
    """
    increment = model.ais_log_p_tilde(state, beta) - model.ais_log_p_tilde(state, beta_prev)
    if transition:
        state = model.ais_transition(state, beta, generator=generator)
    return increment, state
