"""Probabilistic PCA: the linear-Gaussian deep latent Gaussian model with an exact likelihood.

    z_i ~ N(0, I_k),    x_i | z_i ~ N(W z_i + b, sigma^2 I_d)   =>   x_i ~ N(b, W W^T + sigma^2 I)

(Tipping & Bishop 1999). ``W``, ``b`` and ``sigma`` are point-estimated parameters (an
``nn.Module`` registered with ``pyro.module``), ``z`` is local to the plate ``data``. Because
``log p(x)`` and ``p(z | x)`` are known in closed form it is the zoo's exactness check for
importance-sampled likelihoods (:mod:`inference.marginal_likelihood`) and for amortised
encoders. Guides: ``encoder`` (an amortised *linear* Gaussian encoder ``N(A x + c, diag s^2)``,
the same family a VAE encoder would learn here) and ``exact`` (the true posterior
``N(M^-1 W^T (x - b), sigma^2 M^-1)``, ``M = W^T W + sigma^2 I``; importance weights are then
constant and ``log p(x)`` is recovered with zero variance). Both are :class:`PPCAGuide` objects,
the zoo's guide protocol (:class:`inference.guide_protocol.ZooGuide`) with that ``kind``.

Usage::

    import zoo
    from zoo.data import load
    m = zoo.get("ppca", latent_dim=5)
    data = load("digits")
    kw = m.model_kwargs(data)
    m.fit_closed_form(kw["x"])          # maximum-likelihood W, b, sigma (Tipping & Bishop)
    m.exact_log_likelihood(kw["x"])     # (N,) exact log p(x_i)
    m.exact_guide.median(**kw)["z"]     # (N, 5) posterior means E[z_i | x_i]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from inference.guide_protocol import ZooGuide
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.networks import LazyInputDim
from inference.methods.capabilities import ModelTraits
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult

PPCA_GUIDES = ("encoder", "exact")


@register(
    "ppca",
    description="Probabilistic PCA, the linear-Gaussian DLGM with closed-form log p(x) and "
    "posterior (exactness check for importance-sampled likelihoods)",
    default_data="digits",
    traits=ModelTraits(learned_parameters=True, local_latents=True, minibatch=True),
)
class PPCA(LazyInputDim, ZooModel, nn.Module):
    """PPCA with ``latent_dim`` factors; ``x_dim`` is inferred from the data when ``None``.

    Keywords: ``latent_dim`` (default 5), ``x_dim``, ``guide`` (``encoder`` or ``exact``),
    ``init_sigma`` (initial noise scale, default 1.0), ``init_seed`` (weight initialisation),
    ``eval_samples`` (importance samples used by :meth:`evaluate`, default 1000).
    """

    observed_names = ("x",)

    def __init__(
        self,
        *,
        latent_dim: int = 5,
        x_dim: int | None = None,
        guide: str = "encoder",
        init_sigma: float = 1.0,
        init_seed: int = 0,
        eval_samples: int = 1000,
    ):
        nn.Module.__init__(self)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if guide not in PPCA_GUIDES:
            raise ValueError(f"unknown PPCA guide {guide!r}; choose one of {PPCA_GUIDES}")
        if init_sigma <= 0:
            raise ValueError(f"init_sigma must be positive, got {init_sigma!r}")
        self.latent_dim = int(latent_dim)
        self.guide_name = guide
        self.init_sigma = float(init_sigma)
        self.init_seed = int(init_seed)
        self.eval_samples = int(eval_samples)
        self.x_dim: int | None = None
        #: the amortised linear Gaussian encoder q(z | x) (guide kind ``encoder``)
        self.encoder_guide = PPCAGuide(self, "encoder")
        #: the exact posterior p(z | x) under the current parameters (guide kind ``exact``)
        self.exact_guide = PPCAGuide(self, "exact")
        if x_dim is not None:
            self.build(int(x_dim))

    def build(self, x_dim: int) -> None:
        """Create ``W`` (d, k), ``b`` (d,), ``sigma`` and the linear encoder for width ``x_dim``."""
        if self.x_dim is not None:
            if x_dim != self.x_dim:
                raise ValueError(f"this PPCA was built for x_dim={self.x_dim}, got {x_dim}")
            return
        self.x_dim = int(x_dim)
        d, k = self.x_dim, self.latent_dim
        g = torch.Generator().manual_seed(self.init_seed)
        self.W = nn.Parameter(torch.randn(d, k, generator=g) / math.sqrt(k))
        self.b = nn.Parameter(torch.zeros(d))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(self.init_sigma)))
        self.enc_A = nn.Parameter(torch.zeros(k, d))
        self.enc_c = nn.Parameter(torch.zeros(k))
        self.enc_log_s = nn.Parameter(torch.zeros(k))

    # ------------------------------------------------------------------ closed forms
    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def marginal(self) -> dist.MultivariateNormal:
        """``p(x) = N(b, W W^T + sigma^2 I)``."""
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(self.x_dim)
        return dist.MultivariateNormal(self.b, covariance_matrix=cov)

    def exact_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x_i)`` for each row of ``x``: shape (N,)."""
        self._check_x(x)
        with torch.no_grad():
            return self.marginal().log_prob(x)

    def posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """The exact ``p(z | x)``: ``N(M^-1 W^T (x - b), sigma^2 M^-1)``, batched over rows."""
        s2 = self.sigma**2
        m = self.W.T @ self.W + s2 * torch.eye(self.latent_dim)
        m_inv = torch.linalg.inv(m)
        loc = (x - self.b) @ self.W @ m_inv.T
        return dist.MultivariateNormal(loc, covariance_matrix=s2 * m_inv)

    def fit_closed_form(self, x: torch.Tensor) -> None:
        """Set ``W``, ``b``, ``sigma`` to the maximum-likelihood solution (Tipping & Bishop)."""
        self._check_x(x)
        k = self.latent_dim
        with torch.no_grad():
            mean = x.mean(0)
            cov = torch.cov((x - mean).T, correction=0)
            evals, evecs = torch.linalg.eigh(cov)
            evals, evecs = evals.flip(0), evecs.flip(1)
            s2 = evals[k:].mean().clamp_min(1e-6)
            w = evecs[:, :k] * (evals[:k] - s2).clamp_min(0).sqrt()
            self.W.copy_(w)
            self.b.copy_(mean)
            self.log_sigma.copy_(0.5 * s2.log())

    # ------------------------------------------------------------------ data, model, guides
    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, d)}`` from the split (images flattened)."""
        x = dataset.split(split)["x"]
        x = x.reshape(len(x), -1).to(torch.get_default_dtype())
        self.build(x.shape[-1])
        return {"x": x}

    def _params(self) -> nn.ParameterList:
        return nn.ParameterList([self.W, self.b, self.log_sigma])

    def model(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x ~ N(W z + b, sigma^2 I)`` for each row."""
        self._check_x(x)
        pyro.module("ppca", self._params())
        n = len(x) if x is not None else int(num_data)
        with pyro.plate("data", n, subsample_size=subsample_size, dim=-1) as idx:
            zeros = torch.zeros(self.latent_dim)
            z = pyro.sample("z", dist.Normal(zeros, 1.0 + zeros).to_event(1))
            loc = z @ self.W.T + self.b
            scale = self.sigma.expand(self.x_dim)
            return pyro.sample("x", dist.Normal(loc, scale).to_event(1),
                               obs=None if x is None else x[idx])

    def _encoder_guide(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> None:
        """Amortised linear Gaussian encoder ``q(z | x) = N(A x + c, diag exp(2 log_s))``."""
        if x is None:
            raise ValueError("the PPCA encoder guide needs the data x")
        self._check_x(x)
        pyro.module("ppca_encoder", nn.ParameterList([self.enc_A, self.enc_c, self.enc_log_s]))
        with pyro.plate("data", len(x), subsample_size=subsample_size, dim=-1) as idx:
            loc = x[idx] @ self.enc_A.T + self.enc_c
            pyro.sample("z", dist.Normal(loc, self.enc_log_s.exp().expand_as(loc)).to_event(1))

    def _exact_guide(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> None:
        """The exact posterior ``p(z | x)`` under the current ``W, b, sigma`` (no parameters)."""
        if x is None:
            raise ValueError("the PPCA exact guide needs the data x")
        self._check_x(x)
        with pyro.plate("data", len(x), subsample_size=subsample_size, dim=-1) as idx:
            with torch.no_grad():
                post = self.posterior(x[idx])
            pyro.sample("z", post)

    def set_encoder_to_posterior(self, noise: float = 0.0, seed: int = 0) -> None:
        """Set the linear encoder to the exact posterior's mean map and marginal scales.

        ``noise > 0`` perturbs it (relative Gaussian noise on ``A`` and ``log s``), giving a
        slightly-off guide for importance-sampling checks.
        """
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            s2 = self.sigma**2
            m_inv = torch.linalg.inv(self.W.T @ self.W + s2 * torch.eye(self.latent_dim))
            a = m_inv @ self.W.T
            self.enc_A.copy_(a * (1 + noise * torch.randn(a.shape, generator=g)))
            self.enc_c.copy_(-(a @ self.b))
            log_s = 0.5 * (s2 * m_inv).diagonal().log()
            self.enc_log_s.copy_(log_s + noise * torch.randn(log_s.shape, generator=g))

    def _guide_median(self, kind: str, x: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """:meth:`PPCAGuide.median`: the mean of ``q(z | x)`` (Gaussian: median and mode)."""
        if x is None:
            raise ValueError(f"the median of the PPCA {kind} guide needs the data x")
        self._check_x(x)
        with torch.no_grad():
            if kind == "exact":
                return {"z": self.posterior(x).loc}
            return {"z": x @ self.enc_A.T + self.enc_c}

    @property
    def guide(self) -> "PPCAGuide":  # type: ignore[override]
        """The configured guide (``guide=``): :attr:`encoder_guide` or :attr:`exact_guide`."""
        return self.exact_guide if self.guide_name == "exact" else self.encoder_guide

    def driver_defaults(self, family: str) -> dict[str, Any]:
        """No draws of the per-data-point latents by default: held-out figures come from
        :meth:`evaluate` (importance sampling), and MNIST-sized draws would not fit in memory."""
        return {"num_posterior_draws": 0, "log_likelihood": False} if family == "vi" else {}

    def guides(self) -> Mapping[str, "PPCAGuide"]:
        """``model`` (the configured guide), ``encoder`` and ``exact``."""
        return {"model": self.guide, "encoder": self.encoder_guide, "exact": self.exact_guide}

    def evaluation_defaults(self) -> dict[str, Any]:
        """``eval_samples`` importance samples per held-out point."""
        return {"is_samples": self.eval_samples}

    def exact_log_likelihood_of(self, kwargs: Mapping[str, Any]) -> torch.Tensor:
        """The closed-form ``log p(x_i)`` of the held-out points (see :meth:`marginal`)."""
        return self.exact_log_likelihood(kwargs["x"])


class PPCAGuide(ZooGuide):
    """One of PPCA's amortised guides ``q(z | x)``: ``encoder`` or ``exact``.

    ``encoder`` is the linear Gaussian encoder ``N(A x + c, diag exp(2 log_s))`` (parameters
    registered as ``ppca_encoder``); ``exact`` is the true posterior under the current ``W, b,
    sigma`` (no parameters of its own). Each PPCA holds one of each, as ``m.encoder_guide`` and
    ``m.exact_guide``; they take the model's arguments.

    Usage::

        m = zoo.get("ppca", latent_dim=2)
        kw = m.model_kwargs(data)
        pyro.poutine.trace(m.encoder_guide).get_trace(**kw)   # one draw of z per row
        m.exact_guide.median(**kw)["z"]                       # E[z_i | x_i], shape (N, 2)
    """

    amortised = True

    def __init__(self, ppca: PPCA, kind: str) -> None:
        if kind not in PPCA_GUIDES:
            raise ValueError(f"unknown PPCA guide {kind!r}; choose one of {PPCA_GUIDES}")
        self.ppca = ppca
        self.kind = kind
        self.__name__ = f"{kind}_guide"
        self.__qualname__ = f"PPCA.{kind}_guide"
        self.__doc__ = (ppca._exact_guide if kind == "exact" else ppca._encoder_guide).__doc__

    def __call__(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> None:
        if self.kind == "exact":
            self.ppca._exact_guide(x, subsample_size, num_data)
        else:
            self.ppca._encoder_guide(x, subsample_size, num_data)

    def median(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> dict[str, torch.Tensor]:
        """``{"z": (N, latent_dim)}``: the mean of ``q(z_i | x_i)`` for every row of ``x``.

        Both guides are Gaussian, so this is each coordinate's median and the joint mode;
        ``subsample_size`` is ignored and no random numbers are drawn.
        """
        return self.ppca._guide_median(self.kind, x)
