"""Bayesian linear regression with a conjugate Normal-Inverse-Gamma prior and its exact posterior.

The model (``p`` coefficients; with ``fit_intercept=True`` a column of ones is prepended to ``x``
inside the model, so ``beta[0]`` is the intercept and ``beta[1:]`` the slopes)::

    sigma2 ~ InverseGamma(a0, b0)
    beta | sigma2 ~ MultivariateNormal(m0, sigma2 * V0)
    y[n] | beta, sigma2 ~ Normal(x[n] @ beta, sqrt(sigma2))

The posterior is again Normal-Inverse-Gamma (e.g. Murphy 2007, "Conjugate Bayesian analysis of
the Gaussian distribution", or Bishop PRML sec. 3.3)::

    V_n = (V0^-1 + X'X)^-1
    m_n = V_n (V0^-1 m0 + X'y)
    a_n = a0 + N / 2
    b_n = b0 + (y'y + m0' V0^-1 m0 - m_n' V_n^-1 m_n) / 2

with marginals ``beta ~ MultivariateStudentT(2 a_n, m_n, (b_n / a_n) V_n)`` (covariance
``b_n / (a_n - 1) V_n``) and ``sigma2 ~ InverseGamma(a_n, b_n)``. Pyro has the distributions but
no conjugate-update routine, so :func:`nig_posterior` writes the four formulas out.

Usage::

    import zoo
    from zoo.data import load
    m = zoo.get("conjugate_linear_regression", prior_scale=10.0)
    ds = load("diabetes")
    post = m.exact_posterior(ds.train["x"], ds.train["y"])
    post.beta_mean, post.beta_cov, post.sigma2_mean
    m.reference_posterior(ds)["mean"]["beta[1]"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from zoo.data.dataset import Dataset
from zoo.models.posteriordb_base import ReferenceModel, align_global
from zoo.models.stan_names import stan_name
from zoo.registry import register

__all__ = ["ConjugateLinearRegression", "NIGPosterior", "nig_posterior"]


@dataclass(frozen=True)
class NIGPosterior:
    """A Normal-Inverse-Gamma distribution ``NIG(mean, scale, a, b)`` over ``(beta, sigma2)``.

    ``sigma2 ~ InverseGamma(a, b)`` and ``beta | sigma2 ~ Normal(mean, sigma2 * scale)``. Tensors
    are float64.
    """

    mean: torch.Tensor  # (p,)
    scale: torch.Tensor  # (p, p), V_n
    a: torch.Tensor  # ()
    b: torch.Tensor  # ()

    @property
    def beta_mean(self) -> torch.Tensor:
        """Posterior mean of ``beta`` (``m_n``)."""
        return self.mean

    @property
    def beta_cov(self) -> torch.Tensor:
        """Marginal posterior covariance of ``beta``: ``b / (a - 1) * V_n`` (needs ``a > 1``)."""
        if float(self.a) <= 1.0:
            raise ValueError(f"the covariance of beta needs a > 1, got a = {float(self.a)}")
        return self.b / (self.a - 1.0) * self.scale

    def beta_marginal(self) -> dist.MultivariateStudentT:
        """Marginal of ``beta``: Student-t with ``2a`` dof, location ``m_n``, scale ``(b/a) V_n``."""
        scale_tril = torch.linalg.cholesky(self.b / self.a * self.scale)
        return dist.MultivariateStudentT(2.0 * self.a, self.mean, scale_tril)

    def sigma2_marginal(self) -> dist.InverseGamma:
        """Marginal of ``sigma2``: ``InverseGamma(a, b)``."""
        return dist.InverseGamma(self.a, self.b)

    @property
    def sigma2_mean(self) -> torch.Tensor:
        """``b / (a - 1)`` (needs ``a > 1``)."""
        return self.sigma2_marginal().mean

    @property
    def sigma2_var(self) -> torch.Tensor:
        """``b^2 / ((a - 1)^2 (a - 2))`` (needs ``a > 2``)."""
        return self.sigma2_marginal().variance


def nig_posterior(
    x: torch.Tensor,
    y: torch.Tensor,
    prior_mean: torch.Tensor,
    prior_cov: torch.Tensor,
    a0: float,
    b0: float,
) -> NIGPosterior:
    """The conjugate update of ``NIG(prior_mean, prior_cov, a0, b0)`` by data ``(x, y)``.

    ``x`` (N, p) is the full design (include any column of ones yourself). Computed in float64
    with Cholesky solves. Example: ``nig_posterior(x, y, torch.zeros(p), torch.eye(p), 2., 1.)``.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"need x (N, p) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    m0 = torch.as_tensor(prior_mean, dtype=torch.float64)
    v0 = torch.as_tensor(prior_cov, dtype=torch.float64)
    prior_precision = torch.cholesky_inverse(torch.linalg.cholesky(v0))
    precision = prior_precision + x.T @ x
    chol = torch.linalg.cholesky(precision)
    shift = prior_precision @ m0 + x.T @ y
    mean = torch.cholesky_solve(shift.unsqueeze(-1), chol).squeeze(-1)
    scale = torch.cholesky_inverse(chol)
    a = torch.tensor(float(a0) + 0.5 * x.shape[0], dtype=torch.float64)
    b = float(b0) + 0.5 * (y @ y + m0 @ prior_precision @ m0 - mean @ precision @ mean)
    return NIGPosterior(mean=mean, scale=scale, a=a, b=b)


@register(
    "conjugate_linear_regression",
    description="Bayesian linear regression with a conjugate Normal-Inverse-Gamma prior and "
    "exact posterior",
    default_data="diabetes",
)
class ConjugateLinearRegression(ReferenceModel):
    """Linear regression whose exact posterior is known, for checking inference drivers.

    Configuration (all optional): ``a0``, ``b0`` (InverseGamma shape and scale of ``sigma2``),
    ``prior_mean`` (scalar or length-p ``m0``), ``prior_scale`` (scalar or length-p, giving
    ``V0 = diag(prior_scale**2)``), ``prior_cov`` (a full (p, p) ``V0``, overriding
    ``prior_scale``), ``fit_intercept`` (prepend a column of ones), ``dtype``. ``p`` counts the
    intercept when there is one. Sites: ``beta`` (p,), ``sigma2`` (). A NaN in ``y`` marks a
    missing response: the row is left out of the likelihood.
    """

    stan_event_dims: ClassVar[Mapping[str, int]] = {"beta": 1, "sigma2": 0}
    #: a NaN in ``y`` marks a missing response: that row is left out of the likelihood
    #: (missing at random), and the exact posterior is that of the observed rows
    missing_value_names: ClassVar[tuple[str, ...]] = ("y",)

    def __init__(
        self,
        a0: float = 2.0,
        b0: float = 1.0,
        prior_mean: float | Sequence[float] = 0.0,
        prior_scale: float | Sequence[float] = 10.0,
        prior_cov: Sequence[Sequence[float]] | None = None,
        fit_intercept: bool = True,
        dtype: str | torch.dtype = "float64",
    ) -> None:
        super().__init__(dtype)
        if not (a0 > 0 and b0 > 0):
            raise ValueError(f"a0 and b0 must be positive, got a0={a0!r}, b0={b0!r}")
        self.a0, self.b0 = float(a0), float(b0)
        self.prior_mean = torch.as_tensor(prior_mean, dtype=torch.float64)
        self.prior_scale = torch.as_tensor(prior_scale, dtype=torch.float64)
        if bool((self.prior_scale <= 0).any()):
            raise ValueError(f"prior_scale must be positive, got {prior_scale!r}")
        self.prior_cov = None if prior_cov is None else torch.as_tensor(prior_cov,
                                                                         dtype=torch.float64)
        self.fit_intercept = bool(fit_intercept)

    # -- prior and design -------------------------------------------------------------------
    def design(self, x: torch.Tensor) -> torch.Tensor:
        """The design matrix: ``x`` with a leading column of ones when ``fit_intercept``."""
        if x.dim() != 2:
            raise ValueError(f"x must be a matrix (N, features), got shape {tuple(x.shape)}")
        if self.fit_intercept:
            x = torch.cat([torch.ones_like(x[:, :1]), x], dim=-1)
        return x

    def prior(self, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m0, V0)`` for ``p`` coefficients, in float64."""
        mean = self.prior_mean.expand(p) if self.prior_mean.dim() == 0 else self.prior_mean
        if mean.shape != (p,):
            raise ValueError(f"prior_mean has shape {tuple(mean.shape)}; the model has {p} "
                             "coefficients (intercept included)")
        if self.prior_cov is not None:
            cov = self.prior_cov
            if cov.shape != (p, p):
                raise ValueError(f"prior_cov has shape {tuple(cov.shape)}, expected ({p}, {p})")
        else:
            scale = self.prior_scale.expand(p) if self.prior_scale.dim() == 0 else self.prior_scale
            if scale.shape != (p,):
                raise ValueError(f"prior_scale has shape {tuple(scale.shape)}, expected ({p},)")
            cov = torch.diag(scale**2)
        return mean.clone(), cov.clone()

    # -- the Pyro model ---------------------------------------------------------------------
    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, features), "y": (N,)}`` (no column of ones: the model adds it)."""
        data = dataset.split(split)
        return {"x": self.tensor(data, "x", dataset), "y": self.tensor(data, "y", dataset)}

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        design = self.design(x)
        if y is not None and bool(torch.isnan(y).any()):  # missing responses: rows left out
            observed = ~torch.isnan(y)
            design, y = design[observed], y[observed]
        m0, v0 = self.prior(design.shape[-1])
        m0 = m0.to(design)
        sigma2 = pyro.sample("sigma2", dist.InverseGamma(design.new_tensor(self.a0),
                                                         design.new_tensor(self.b0)))
        sigma = sigma2.sqrt()
        if self.prior_cov is None:  # diagonal V0: independent normals, cheaper than the MVN
            beta_prior = dist.Normal(m0, sigma[..., None] * v0.diagonal().sqrt().to(design))
            beta = pyro.sample("beta", beta_prior.to_event(1))
        else:
            chol0 = torch.linalg.cholesky(v0).to(design)
            beta = pyro.sample(
                "beta", dist.MultivariateNormal(m0, scale_tril=sigma[..., None, None] * chol0))
        beta = align_global(beta)
        with pyro.plate("data", design.shape[0], subsample_size=subsample_size, dim=-1) as idx:
            if subsample_size is not None:
                design = design.index_select(0, idx)
                y = None if y is None else y.index_select(0, idx)
            return pyro.sample("y", dist.Normal((design * beta).sum(-1), sigma), obs=y)

    # -- exact answers ----------------------------------------------------------------------
    def exact_posterior(self, x: torch.Tensor, y: torch.Tensor) -> NIGPosterior:
        """The exact NIG posterior given features ``x`` (N, features) and ``y`` (N,)."""
        design = self.design(torch.as_tensor(x, dtype=torch.float64))
        y = torch.as_tensor(y, dtype=torch.float64)
        observed = ~torch.isnan(y)
        m0, v0 = self.prior(design.shape[-1])
        return nig_posterior(design[observed], y[observed], m0, v0, self.a0, self.b0)

    def reference_posterior(self, dataset: Dataset) -> Mapping[str, Any]:
        """Exact posterior moments on the training split, keyed like :meth:`to_stan_draws`.

        Returns ``{"mean": {"beta[1]": ..., "sigma2": ...}, "sd": {...}, "cov": {"beta": (p, p)},
        "exact": NIGPosterior}`` (``beta[1]`` is the intercept when ``fit_intercept``).
        """
        post = self.exact_posterior(dataset.train["x"], dataset.train["y"])
        beta_mean = post.beta_mean.numpy()
        beta_cov = post.beta_cov.numpy()
        mean = {stan_name("beta", (i,)): float(v) for i, v in enumerate(beta_mean)}
        sd = {stan_name("beta", (i,)): float(v) for i, v in enumerate(np.sqrt(np.diag(beta_cov)))}
        mean["sigma2"] = float(post.sigma2_mean)
        sd["sigma2"] = float(post.sigma2_var.sqrt()) if float(post.a) > 2 else float("inf")
        return {"mean": mean, "sd": sd, "cov": {"beta": beta_cov}, "exact": post}
