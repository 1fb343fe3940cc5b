"""Diagnostics of inference results: summaries, LOO/WAIC, PSIS k-hat and sampler warnings.

Everything numerical is ArviZ (``az.summary``, ``az.loo``, ``az.waic``, ``az.rhat``, ``az.ess``)
or Pyro (``pyro.infer.importance.psis_diagnostic``); this module adds ESS per second from the
result's sampling time and turns sampler statistics into readable warnings.

Usage::

    from inference.diagnostics import summarize, loo, warnings_for
    table = summarize(result)          # pandas DataFrame: mean, sd, hdi, mcse, ess, r_hat, ess/s
    print(loo(result))                 # arviz ELPDData
    for message in warnings_for(result):
        print(message)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from inference.result import InferenceResult

__all__ = ["summarize", "loo", "waic", "psis_khat", "warnings_for", "RHAT_THRESHOLD",
           "MIN_ESS_PER_CHAIN"]

#: R-hat above this is reported (Vehtari et al. 2021 recommend 1.01)
RHAT_THRESHOLD = 1.01
#: bulk or tail ESS below this many per chain is reported (Vehtari et al. 2021: 100 per chain)
MIN_ESS_PER_CHAIN = 100


def summarize(result: "InferenceResult", var_names: Sequence[str] | None = None,
              hdi_prob: float = 0.94) -> "pd.DataFrame":
    """``az.summary`` of the posterior plus ``ess_bulk_per_s`` (bulk ESS / sampling seconds).

    Example: ``summarize(result, ["mu", "tau"]).loc["mu", "r_hat"]``.
    """
    import arviz as az

    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must lie in (0, 1), got {hdi_prob!r}")
    if var_names is not None:
        unknown = [v for v in var_names if v not in result.posterior]
        if unknown:
            raise KeyError(f"unknown variable(s) {unknown}; the posterior has "
                           f"{sorted(result.posterior)}")
    # one chain (variational draws): ArviZ logs "Shape validation failed" for the R-hat it
    # cannot compute; the NaN in the r_hat column already says so
    arviz_logger = logging.getLogger("arviz")
    level = arviz_logger.level
    if result.num_chains == 1:
        arviz_logger.setLevel(logging.ERROR)
    try:
        table = az.summary(result.to_inference_data(), var_names=list(var_names) if var_names
                           else None, hdi_prob=hdi_prob)
    finally:
        arviz_logger.setLevel(level)
    seconds = float(result.timings.get("sampling", 0.0) or 0.0)
    table["ess_bulk_per_s"] = table["ess_bulk"] / seconds if seconds > 0 else np.nan
    return table


def _check_log_likelihood(result: "InferenceResult") -> None:
    if not result.log_likelihood:
        raise ValueError("the result has no log_likelihood group; run the driver with "
                         "log_likelihood=True (and observations in model_kwargs)")


def _check_posterior_draws(result: "InferenceResult", what: str) -> None:
    """Refuse LOO/WAIC on draws that are not from the posterior (variational draws)."""
    if result.family != "mcmc":
        raise ValueError(
            f"{what} needs draws from the posterior, but these {result.method} draws come from "
            "the variational approximation q: importance ratios p(y_i | theta) computed on them "
            "estimate the leave-one-out predictive of q, not of the posterior, and their PSIS "
            "k-hat does not diagnose q's error. Use MCMC draws, or pass "
            "variational=True to accept the approximation knowingly (Magnusson et al. 2019 "
            "correct the weights by p/q first)")


def loo(result: "InferenceResult", var_name: str | None = None, pointwise: bool = True,
        variational: bool = False) -> Any:
    """PSIS-LOO (``az.loo``) from the result's pointwise log-likelihood.

    Refused for variational draws unless ``variational=True`` (see
    :func:`_check_posterior_draws`).
    """
    import arviz as az

    _check_log_likelihood(result)
    if not variational:
        _check_posterior_draws(result, "PSIS-LOO")
    return az.loo(result.to_inference_data(), var_name=var_name, pointwise=pointwise)


def waic(result: "InferenceResult", var_name: str | None = None, pointwise: bool = True,
         variational: bool = False) -> Any:
    """WAIC (``az.waic``) from the result's pointwise log-likelihood (refused for variational
    draws unless ``variational=True``)."""
    import arviz as az

    _check_log_likelihood(result)
    if not variational:
        _check_posterior_draws(result, "WAIC")
    return az.waic(result.to_inference_data(), var_name=var_name, pointwise=pointwise)


def psis_khat(model: Callable[..., Any], guide: Callable[..., Any],
              model_kwargs: Mapping[str, Any] | None = None, num_particles: int = 1000,
              max_simultaneous_particles: int | None = None) -> float:
    """Pareto k-hat of importance weights p/q (Yao et al. 2018) via Pyro's ``psis_diagnostic``.

    Below 0.5 the guide is a good fit, 0.5-0.7 usable, above 0.7 poor.
    Example: ``psis_khat(m.model, svi_result.fitted["guide"], kwargs)``.
    """
    import torch
    from pyro.infer.importance import psis_diagnostic

    if int(num_particles) < 2:
        raise ValueError(f"num_particles must be at least 2, got {num_particles!r}")
    chunk = int(max_simultaneous_particles or num_particles)
    if int(num_particles) % chunk:
        raise ValueError(f"num_particles ({num_particles}) must be a multiple of "
                         f"max_simultaneous_particles ({chunk})")
    with torch.no_grad():
        return float(psis_diagnostic(model, guide, num_particles=int(num_particles),
                                     max_simultaneous_particles=chunk,
                                     **dict(model_kwargs or {})))


def warnings_for(result: "InferenceResult") -> list[str]:
    """Readable warnings about an MCMC run: divergences, saturated tree depth, R-hat, low ESS.

    Returns an empty list for a healthy run (and for SVI results, whose draws are independent).
    Stochastic-gradient chains (family ``sgmcmc``) get the R-hat and ESS warnings.
    """
    if result.family not in ("mcmc", "sgmcmc"):
        return []
    messages = []
    stats = result.sample_stats
    total = result.num_chains * result.num_draws
    if "diverging" in stats:
        diverging = np.asarray(stats["diverging"], dtype=bool)
        count = int(diverging.sum())
        if count:
            chains = [int(c) for c in np.flatnonzero(diverging.any(axis=1))]
            messages.append(
                f"{count} of {total} post-warm-up transitions diverged (chains {chains}); the "
                "posterior may be biased: reparameterise (e.g. non-centred) or raise "
                "target_accept_prob"
            )
    max_depth = result.settings.get("max_tree_depth")
    if "tree_depth" in stats and max_depth:
        saturated = int((np.asarray(stats["tree_depth"]) >= int(max_depth)).sum())
        if saturated:
            messages.append(
                f"{saturated} of {total} transitions hit max_tree_depth={max_depth}; sampling is "
                "inefficient: raise max_tree_depth or reparameterise"
            )
    if result.num_draws >= 4:
        messages.extend(_convergence_warnings(result))
    return messages


def _convergence_warnings(result: "InferenceResult") -> list[str]:
    import arviz as az

    posterior = result.to_inference_data().posterior
    messages = []
    if result.num_chains > 1:
        rhat = az.rhat(posterior)
        worst = {name: float(np.nanmax(rhat[name].values)) for name in rhat.data_vars}
        bad = {k: round(v, 3) for k, v in worst.items() if v > RHAT_THRESHOLD}
        if bad:
            messages.append(f"R-hat above {RHAT_THRESHOLD} for {bad}; the chains have not mixed: "
                            "run longer or reparameterise")
    floor = MIN_ESS_PER_CHAIN * result.num_chains
    low = {}
    for method in ("bulk", "tail"):
        ess = az.ess(posterior, method=method)
        for name in ess.data_vars:
            value = float(np.nanmin(ess[name].values))
            if value < floor:
                low[f"{name} ({method})"] = round(value, 1)
    if low:
        messages.append(f"effective sample size below {floor} ({MIN_ESS_PER_CHAIN} per chain) for "
                        f"{low}; estimates are noisy: draw more samples")
    return messages
