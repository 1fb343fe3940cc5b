"""Importance-sampled marginal likelihoods log p(x_i) per data point, with honest error bars.

For a model whose latent variables are all *local* (inside the data plate at ``dim=-1``) and a
guide ``q(z | x)`` over the same sites, the estimator (Burda et al. 2015, eq. 13) is::

    log p(x_i) ~= log (1/K) sum_k w_ik,    w_ik = p(x_i, z_ik) / q(z_ik | x_i),  z_ik ~ q(. | x_i)

computed in log space. The K samples are drawn ``particle_batch`` at a time in a vectorised
particle plate outside the model's plates, and the data are split into ``data_batch`` rows,
so memory stays bounded; particle batches are combined with ``logsumexp``. From the same
weights come the per-point ELBO (mean log weight), the gap, a within-point Monte Carlo error
(delta method: ``Var[log p_hat] ~= Var[w] / (K E[w]^2) = sum_k wbar_k^2 - 1/K`` with normalised
weights ``wbar``), the effective sample size and the PSIS Pareto k-hat of the weights
(``arviz.psislw``; k-hat > 0.7 means the guide is too narrow for the estimate to be trusted).

Nothing here is specific to a model family: any Pyro model/guide pair with local latents works.
Pyro's own :class:`pyro.infer.importance.Importance` treats the whole data set as one
importance-sampling problem (no per-data-point estimates, no batching), hence this module.

Usage::

    from inference.marginal_likelihood import importance_log_likelihood
    est = importance_log_likelihood(model, guide, {"x": x_test}, num_samples=5000,
                                    particle_batch=500, data_batch=100, seed=0)
    est.mean, est.se          # mean log p(x) over data points and its standard error
    est.elbo_mean, est.gap_mean, est.khat_mean, est.mc_se
    est.log_likelihood        # (n,) per-data-point estimates
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from inference.sites import data_plate, data_plate_size, plate_nesting, site_kind

__all__ = ["ImportanceEstimate", "importance_log_likelihood", "log_importance_weights",
           "split_batches"]

_PARTICLE_PLATE = "_importance_particles"


@dataclass(frozen=True)
class ImportanceEstimate:
    """Per-data-point importance-sampling results and their summaries (all in nats).

    ``log_likelihood``, ``elbo``, ``mc_se``, ``ess`` and ``khat`` are 1-D numpy arrays over the
    data points. ``se`` is the standard error of ``mean`` across data points (sd / sqrt(n));
    ``mc_se`` (scalar property ``mc_se_of_mean``) is the Monte Carlo error of the estimator
    itself, which shrinks with ``num_samples``.
    """

    log_likelihood: np.ndarray
    elbo: np.ndarray
    mc_se_points: np.ndarray
    ess: np.ndarray
    khat: np.ndarray
    num_samples: int

    @property
    def num_data(self) -> int:
        return int(self.log_likelihood.shape[0])

    @property
    def mean(self) -> float:
        return float(self.log_likelihood.mean())

    @property
    def se(self) -> float:
        n = self.num_data
        return float(self.log_likelihood.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def elbo_mean(self) -> float:
        return float(self.elbo.mean())

    @property
    def elbo_se(self) -> float:
        n = self.num_data
        return float(self.elbo.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def gap(self) -> np.ndarray:
        """``log p_hat(x_i) - ELBO_i`` per point (>= 0 up to Monte Carlo error)."""
        return self.log_likelihood - self.elbo

    @property
    def gap_mean(self) -> float:
        return float(self.gap.mean())

    @property
    def mc_se(self) -> float:
        """Monte Carlo (delta-method) standard error of :attr:`mean`."""
        return float(np.sqrt(np.sum(self.mc_se_points**2)) / self.num_data)

    @property
    def khat_mean(self) -> float:
        return float(np.nanmean(self.khat)) if np.isfinite(self.khat).any() else float("nan")

    @property
    def khat_max(self) -> float:
        return float(np.nanmax(self.khat)) if np.isfinite(self.khat).any() else float("nan")

    def summary(self) -> dict[str, float]:
        """The scalar summaries as a flat dict (for tables)."""
        return {
            "ll_mean": self.mean, "ll_se": self.se, "ll_mc_se": self.mc_se,
            "elbo_mean": self.elbo_mean, "elbo_se": self.elbo_se, "gap_mean": self.gap_mean,
            "khat_mean": self.khat_mean, "khat_max": self.khat_max,
            "ess_mean": float(self.ess.mean()), "num_samples": float(self.num_samples),
            "num_data": float(self.num_data),
        }


# ----------------------------------------------------------------------------- batching
def split_batches(
    model_kwargs: Mapping[str, Any], data_batch: int | None, batch_keys: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Split ``model_kwargs`` into keyword dicts of at most ``data_batch`` rows.

    ``batch_keys`` names the tensors sliced along dim 0 (default: every tensor of at least one
    dimension whose length equals that of the first such tensor); other values are shared.
    """
    if batch_keys is None:
        tensors = [(k, v) for k, v in model_kwargs.items()
                   if isinstance(v, torch.Tensor) and v.dim() >= 1]
        if not tensors:
            raise ValueError("model_kwargs hold no data tensor to split into batches")
        n = len(tensors[0][1])
        batch_keys = [k for k, v in tensors if len(v) == n]
    else:
        missing = [k for k in batch_keys if k not in model_kwargs]
        if missing:
            raise KeyError(f"batch_keys {missing} are not in model_kwargs ({sorted(model_kwargs)})")
    sizes = {k: len(model_kwargs[k]) for k in batch_keys}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"batch_keys have different lengths: {sizes}")
    n = next(iter(sizes.values()))
    step = n if data_batch is None else int(data_batch)
    if step < 1:
        raise ValueError(f"data_batch must be a positive integer or None, got {data_batch!r}")
    out = []
    for start in range(0, n, step):
        kw = dict(model_kwargs)
        for k in batch_keys:
            kw[k] = model_kwargs[k][start:start + step]
        out.append(kw)
    return out


# ----------------------------------------------------------------------------- weights
#: the sample sites with a density in log p(x, z) or log q(z | x)
_DENSITY_KINDS = ("latent", "observed", "factor")


def _check_local(trace: Any, role: str, n: int) -> None:
    for name, site in trace.nodes.items():
        if site_kind(site) not in _DENSITY_KINDS:
            continue
        frame = data_plate(site, exclude=(_PARTICLE_PLATE,))
        if frame is None or frame.size != n:
            raise ValueError(
                f"importance_log_likelihood needs every sample site inside the data plate "
                f"(dim=-1, size {n}); {role} site {name!r} is not (global latent variables "
                "make log p(x) not factorise over data points)"
            )


def _site_terms(trace: Any, num_particles: int, n: int, nesting: int) -> torch.Tensor:
    """Sum of the log densities of the latent, observed and factor sites, shape (particles, n)."""
    total = torch.zeros(num_particles, n)
    for site in trace.nodes.values():
        if site_kind(site) not in _DENSITY_KINDS:
            continue
        lp = site["log_prob"]
        lp = lp.reshape((1,) * (nesting + 1 - lp.dim()) + lp.shape)
        if nesting > 1:  # plates between the particle and data dims are summed out
            lp = lp.sum(dim=tuple(range(1, nesting)))
        total = total + lp.expand(num_particles, n)
    return total


def log_importance_weights(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    model_kwargs: Mapping[str, Any],
    num_particles: int,
    max_plate_nesting: int,
    n: int,
) -> torch.Tensor:
    """``log p(x_i, z_ik) - log q(z_ik | x_i)`` for ``num_particles`` guide draws: (K, n).

    The draws are vectorised in a plate at ``dim = -(max_plate_nesting + 1)``.
    """
    with torch.no_grad(), poutine.block(), pyro.plate(
        _PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1)
    ):
        guide_trace = poutine.trace(guide).get_trace(**model_kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            **model_kwargs
        )
        guide_trace.compute_log_prob()
        model_trace.compute_log_prob()
        log_p = _site_terms(model_trace, num_particles, n, max_plate_nesting)
        log_q = _site_terms(guide_trace, num_particles, n, max_plate_nesting)
    return (log_p - log_q).detach()


def _khat(log_w: torch.Tensor) -> np.ndarray:
    """PSIS k-hat per data point of (K, n) log weights (NaN when K is too small)."""
    if log_w.shape[0] < 20:
        return np.full(log_w.shape[1], np.nan)
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, khat = az.psislw(log_w.T.double().numpy().copy(), reff=1.0)
    return np.asarray(khat, dtype=float)


def importance_log_likelihood(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    model_kwargs: Mapping[str, Any] | Iterable[Mapping[str, Any]],
    *,
    num_samples: int = 5000,
    particle_batch: int = 500,
    data_batch: int | None = 100,
    batch_keys: Sequence[str] | None = None,
    seed: int | None = None,
    max_plate_nesting: int | None = None,
) -> ImportanceEstimate:
    """Importance-sampled ``log p(x_i)`` for each data point, with ELBO, errors and k-hat.

    ``model_kwargs`` is one keyword dict (split into ``data_batch`` rows along dim 0 of
    ``batch_keys``, see :func:`split_batches`) or an iterable of already batched dicts. Every
    latent site must be local to the data plate (``dim=-1``). ``seed`` fixes the draws without
    touching torch's global RNG state. Runs under ``torch.no_grad``.
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if int(particle_batch) < 1:
        raise ValueError(f"particle_batch must be a positive integer, got {particle_batch!r}")
    num_samples, particle_batch = int(num_samples), int(particle_batch)
    if isinstance(model_kwargs, Mapping):
        batches: Iterable[Mapping[str, Any]] = split_batches(model_kwargs, data_batch, batch_keys)
    else:
        batches = model_kwargs

    fork = torch.random.fork_rng(devices=[]) if seed is not None else None
    if fork is not None:
        fork.__enter__()
        torch.manual_seed(seed)
    try:
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ll", "elbo", "mc", "ess", "khat")}
        for kwargs in batches:
            with torch.no_grad(), poutine.block():
                probe_g = poutine.trace(guide).get_trace(**kwargs)
                probe_m = poutine.trace(poutine.replay(model, trace=probe_g)).get_trace(**kwargs)
            n = data_plate_size(probe_m, exclude=(_PARTICLE_PLATE,))
            if n is None:
                raise ValueError("the model has no plate at dim=-1 (the data plate)")
            _check_local(probe_g, "guide", n)
            _check_local(probe_m, "model", n)
            nesting = max_plate_nesting
            if nesting is None:
                nesting = max(plate_nesting(probe_m, probe_g), 1)
            chunks = []
            done = 0
            while done < num_samples:
                k = min(particle_batch, num_samples - done)
                chunks.append(log_importance_weights(model, guide, kwargs, k, nesting, n))
                done += k
            log_w = torch.cat(chunks).double()  # (K, n)
            if not torch.isfinite(log_w).all():
                bad = int((~torch.isfinite(log_w)).any(0).sum())
                warnings.warn(f"{bad} data points have non-finite log weights", RuntimeWarning,
                              stacklevel=2)
            ll = torch.logsumexp(log_w, 0) - math.log(num_samples)
            wbar = torch.softmax(log_w, 0)
            sum_sq = (wbar**2).sum(0)
            parts["ll"].append(ll.numpy())
            parts["elbo"].append(log_w.mean(0).numpy())
            parts["mc"].append(torch.clamp(sum_sq - 1.0 / num_samples, min=0.0).sqrt().numpy())
            parts["ess"].append((1.0 / sum_sq).numpy())
            parts["khat"].append(_khat(log_w))
    finally:
        if fork is not None:
            fork.__exit__(None, None, None)
    if not parts["ll"]:
        raise ValueError("model_kwargs gave no data batches")
    return ImportanceEstimate(
        log_likelihood=np.concatenate(parts["ll"]),
        elbo=np.concatenate(parts["elbo"]),
        mc_se_points=np.concatenate(parts["mc"]),
        ess=np.concatenate(parts["ess"]),
        khat=np.concatenate(parts["khat"]),
        num_samples=num_samples,
    )
