"""Pyro ports of posteriordb's regression posteriors, named exactly as posteriordb names them.

Each follows the plain-English model description in ``shared/data/posteriordb/models.md``
(written from the Stan programs); Stan's implicit flat priors use :func:`flat_prior`:

* ``kidiq-kidscore_momiq``: ``kid_score ~ Normal(beta[1] + beta[2] * mom_iq, sigma)``, beta flat,
  ``sigma ~ HalfCauchy(2.5)``.
* ``earnings-logearn_height``: ``log(earn) ~ Normal(beta[1] + beta[2] * height, sigma)``, all flat.
* ``mesquite-logmesquite_logvolume``: ``log(weight) ~ Normal(beta[1] + beta[2] *
  log(diam1 * diam2 * canopy_height), sigma)``, all flat.
* ``sblrc-blr``: ``y ~ Normal(X @ beta, sigma)``, ``beta[d] ~ Normal(0, 10)``,
  ``sigma ~ HalfNormal(10)``.
* ``arK-arK``: ``y[t] ~ Normal(alpha + sum_k beta[k] * y[t-k], sigma)`` for ``t = K+1..T``,
  ``alpha, beta[k] ~ Normal(0, 10)``, ``sigma ~ HalfCauchy(2.5)``. The model receives the lag
  matrix ``x[t, k] = y[t-k]`` and the responses ``y[K+1..T]``, i.e. it conditions on the first K
  values like the Stan program, and its data plate runs over ``t = K+1..T``.

Every model is ``model(x, y=None, subsample_size=None)`` with design ``x`` (N, D) (a column of
ones for the intercept where Stan has one) and the data plate at dim -1. Site names match Stan's
parameter names (``beta``, ``sigma``, ``alpha``), so ``m.to_stan_draws(posterior)`` gives
``beta[1]``, ``beta[2]``, ``sigma`` ... for comparison with ``m.reference_posterior(ds)``.

Usage::

    import zoo
    from zoo.data import load
    m = zoo.get("kidiq-kidscore_momiq")
    kwargs = m.model_kwargs(load("kidiq-kidscore_momiq"))   # {"x": (434, 2), "y": (434,)}
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from zoo.data.dataset import Dataset
from zoo.models.posteriordb_base import ReferenceModel, align_global, flat_prior
from zoo.registry import register

__all__ = ["ArK", "EarningsLogearnHeight", "KidiqKidscoreMomiq", "MesquiteLogvolume", "SblrcBlr"]

def gaussian_likelihood(
    x: torch.Tensor,
    y: torch.Tensor | None,
    beta: torch.Tensor,
    sigma: torch.Tensor,
    alpha: torch.Tensor | None = None,
    subsample_size: int | None = None,
) -> torch.Tensor:
    """``y ~ Normal(alpha + x @ beta, sigma)`` in a data plate (dim -1) named ``"data"``.

    ``beta`` may carry leading batch dims in any layout :func:`align_global` accepts.
    """
    beta = align_global(beta)
    with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as idx:
        if subsample_size is not None:
            x = x.index_select(0, idx)
            y = None if y is None else y.index_select(0, idx)
        mean = (x * beta).sum(-1)
        if alpha is not None:
            mean = alpha + mean
        return pyro.sample("y", dist.Normal(mean, sigma), obs=y)


def _with_intercept(covariate: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.ones_like(covariate), covariate], dim=-1)


class _Regression(ReferenceModel):
    """A Gaussian linear regression port: subclasses give priors and the design."""

    stan_event_dims: ClassVar[Mapping[str, int]] = {"beta": 1, "sigma": 0}

    def design(self, data: Mapping[str, Any], dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The design ``x`` (N, D) and response ``y`` (N,) from one split."""
        raise NotImplementedError

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, D), "y": (N,)}`` built from one split of the posteriordb data."""
        x, y = self.design(dataset.split(split), dataset)
        return {"x": x, "y": y}

    def beta_prior(self, x: torch.Tensor) -> dist.TorchDistribution:
        return flat_prior(constraints.real, (x.shape[-1],), like=x)

    def sigma_prior(self, x: torch.Tensor) -> dist.TorchDistribution:
        return flat_prior(constraints.positive, (), like=x)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        beta = pyro.sample("beta", self.beta_prior(x))
        sigma = pyro.sample("sigma", self.sigma_prior(x))
        return gaussian_likelihood(x, y, beta, sigma, subsample_size=subsample_size)


@register(
    "kidiq-kidscore_momiq",
    description="Kid's IQ score on mother's IQ: linear regression, flat beta, "
    "HalfCauchy(2.5) sigma (posteriordb)",
    default_data="kidiq-kidscore_momiq",
)
class KidiqKidscoreMomiq(_Regression):
    """``kid_score ~ Normal(beta[1] + beta[2] * mom_iq, sigma)``."""

    def design(self, data, dataset):
        return _with_intercept(self.tensor(data, "mom_iq", dataset)), self.tensor(
            data, "kid_score", dataset)

    def sigma_prior(self, x):
        return dist.HalfCauchy(x.new_tensor(2.5))


@register(
    "earnings-logearn_height",
    description="Log earnings on height: linear regression with flat priors (posteriordb)",
    default_data="earnings-logearn_height",
)
class EarningsLogearnHeight(_Regression):
    """``log(earn) ~ Normal(beta[1] + beta[2] * height, sigma)``."""

    def design(self, data, dataset):
        earn = self.tensor(data, "earn", dataset)
        if not bool((earn > 0).all()):
            raise ValueError("earnings-logearn_height needs positive 'earn' to take its log")
        return _with_intercept(self.tensor(data, "height", dataset)), earn.log()


@register(
    "mesquite-logmesquite_logvolume",
    description="Log mesquite weight on log canopy volume: linear regression with flat priors "
    "(posteriordb)",
    default_data="mesquite-logmesquite_logvolume",
)
class MesquiteLogvolume(_Regression):
    """``log(weight) ~ Normal(beta[1] + beta[2] * log(diam1 * diam2 * canopy_height), sigma)``."""

    def design(self, data, dataset):
        volume = (self.tensor(data, "diam1", dataset) * self.tensor(data, "diam2", dataset)
                  * self.tensor(data, "canopy_height", dataset))
        return _with_intercept(volume.log()), self.tensor(data, "weight", dataset).log()


@register(
    "sblrc-blr",
    description="Bayesian linear regression, 5 strongly correlated coefficients, "
    "Normal(0, 10) beta, HalfNormal(10) sigma (posteriordb)",
    default_data="sblrc-blr",
)
class SblrcBlr(_Regression):
    """``y ~ Normal(X @ beta, sigma)`` without intercept."""

    def design(self, data, dataset):
        x = self.tensor(data, "X", dataset)
        if x.dim() != 2:
            raise ValueError(f"sblrc-blr needs a matrix X, got shape {tuple(x.shape)}")
        return x, self.tensor(data, "y", dataset)

    def beta_prior(self, x):
        return dist.Normal(x.new_zeros(x.shape[-1]), 10.0).to_event(1)

    def sigma_prior(self, x):
        return dist.HalfNormal(x.new_tensor(10.0))


def lag_matrix(y: torch.Tensor, order: int) -> torch.Tensor:
    """Lagged values ``x[i, k] = y[K + i - k - 1]`` (0-based), shape ``(T - K, K)``.

    Row ``i`` holds ``y[t-1], ..., y[t-K]`` for ``t = K + i``, the regressors of ``y[t]``.
    """
    if not 0 < order < y.shape[-1]:
        raise ValueError(f"lag order K must be in 1..{y.shape[-1] - 1}, got {order}")
    n = y.shape[-1]
    return torch.stack([y[order - k - 1 : n - k - 1] for k in range(order)], dim=-1)


@register(
    "arK-arK",
    description="Autoregressive AR(K=5) model of a time series, conditional on the first K "
    "values (posteriordb)",
    default_data="arK-arK",
)
class ArK(_Regression):
    """``y[t] ~ Normal(alpha + sum_k beta[k] y[t-k], sigma)``, ``t = K+1..T``; ``x`` is the lag matrix."""

    stan_event_dims: ClassVar[Mapping[str, int]] = {"alpha": 0, "beta": 1, "sigma": 0}

    def design(self, data, dataset):
        y = self.tensor(data, "y", dataset)
        order = int(data["K"]) if "K" in data else None
        if order is None:
            raise KeyError(f"data set {dataset.name!r} has no lag order 'K'; it has {sorted(data)}")
        return lag_matrix(y, order), y[order:]

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        alpha = pyro.sample("alpha", dist.Normal(x.new_tensor(0.0), 10.0))
        beta = pyro.sample("beta", dist.Normal(x.new_zeros(x.shape[-1]), 10.0).to_event(1))
        sigma = pyro.sample("sigma", dist.HalfCauchy(x.new_tensor(2.5)))
        return gaussian_likelihood(x, y, beta, sigma, alpha=alpha, subsample_size=subsample_size)
