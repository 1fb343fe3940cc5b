"""Guides (variational families) for :class:`zoo.models.bnn.BayesianNet`, named as on the CLI.

* ``bbb`` -- :class:`BayesByBackpropGuide`: mean-field Gaussian over every weight and bias,
  ``sigma = softplus(rho)`` (Blundell et al. 2015), weights applied with the local
  reparameterisation trick or Flipout (the net's ``local_reparam``); with
  ``elbo="meanfield"`` the KL to a Normal prior is closed-form (to the scale-mixture prior it
  is a one-sample estimate, as in the paper).
* ``vd`` -- :class:`VariationalDropoutGuide`: Gaussian (multiplicative) variational dropout
  (Kingma, Salimans & Welling 2015): ``w = theta (1 + sqrt(alpha) eps)``, i.e.
  ``q(w) = N(theta, alpha theta^2)``, with alpha shared per weight, per input neuron or per
  layer (``vd_alpha``) and clipped at ``alpha <= 1`` as in the paper. Its KL to the
  log-uniform prior uses Molchanov et al.'s approximation, which is tighter than Kingma's
  polynomial and agrees with it on ``alpha <= 1`` (:mod:`zoo.models.bnn_layers`).
* ``sparse_vd`` -- :class:`SparseVariationalDropoutGuide`: sparse variational dropout
  (Molchanov, Ashukha & Vetrov 2017): per-weight alpha without a bound, additive
  reparameterisation (``theta`` and ``log sigma^2`` are the free parameters,
  ``log alpha = log sigma^2 - log theta^2``), pruning at ``log alpha > 3``
  (:meth:`~SparseVariationalDropoutGuide.sparsity_report`, :meth:`pruned_means`).
* ``mc_dropout`` -- :class:`MCDropoutGuide`: MC dropout as variational inference (Gal &
  Ghahramani 2016): ``q(W) = M diag(z)``, ``z ~ Bernoulli(1 - p)`` per input unit, so weight
  sites are Deltas at the masked means and the KL is the prior's weight decay on them; the
  masks are auxiliary guide sites, so predictions drawn from the guide are MC dropout.

All guides take the model's arguments ``(x, y=None, subsample_size=None)``; they need no
subsampling themselves (every latent is global). They are callable objects storing their
parameters in Pyro's param store under ``"<guide name>.<site>.<param>"``, and follow the zoo's
guide protocol (:class:`inference.guide_protocol.ZooGuide`): ``kind`` is the name above,
``amortised`` is false, ``median()`` gives every weight's, bias's and the precision's posterior
median, and ``report()`` the dropout guides' sparsity and compression.

Usage::

    net = zoo.get("lenet300100")
    guide = net.guides()["sparse_vd"]
    res = fit_svi(net.model, net.model_kwargs(ds), guide=guide, elbo="meanfield", ...)
    guide.sparsity_report()          # per-layer sparsity, compression ratio
    guide.report()                   # {"sparsity": ..., "compression": ...} of the whole net
    guide.median()                   # {"w0": theta_0, "b0": ..., ...}
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints

from inference.guide_protocol import ZooGuide
from zoo.models.bnn_layers import log_alpha_of, mark_local_reparam

if TYPE_CHECKING:
    from zoo.models.bnn import BayesianNet, LayerSpec

#: Molchanov et al. (2017): weights with log alpha above this are pruned
PRUNE_LOG_ALPHA = 3.0


def _inv_softplus(value: float) -> float:
    return math.log(math.expm1(value))


class _WeightGuide(ZooGuide):
    """Shared skeleton: one call samples every weight, bias and the noise precision."""

    name = ""
    amortised = False

    @property
    def kind(self) -> str:  # type: ignore[override]
        """The guide's name (``bbb``, ``vd``, ``sparse_vd``, ``mc_dropout``)."""
        return self.name

    def __init__(self, net: "BayesianNet", prefix: str | None = None,
                 init_scale: float = 1e-3) -> None:
        self.net = net
        self.prefix = prefix or self.name
        self.init_scale = float(init_scale)
        self.__name__ = f"{type(self).__name__}({self.prefix})"
        self.__qualname__ = self.__name__
        self._in_features: int | None = None

    def _p(self, site: str, what: str) -> str:
        return f"{self.prefix}.{site}.{what}"

    def _init_loc(self, spec: "LayerSpec"):
        fan_in = spec.fan_in
        return lambda: torch.randn(spec.weight_shape) / math.sqrt(fan_in)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None,
                 subsample_size: int | None = None, **_: Any) -> None:
        self._in_features = x.shape[-1]
        for spec in self.net.layers(x.shape[-1]):
            self.weight(spec)
            self.bias(spec)
        if self.net.task == "regression" and self.net.noise == "homoscedastic":
            self.precision()

    # default bias / precision: mean-field Gaussian / log-normal
    def bias(self, spec: "LayerSpec") -> torch.Tensor:
        loc = pyro.param(self._p(spec.bias, "loc"), lambda: torch.zeros(spec.bias_shape))
        rho = pyro.param(self._p(spec.bias, "rho"),
                         lambda: torch.full(spec.bias_shape, _inv_softplus(self.init_scale)))
        return pyro.sample(spec.bias, dist.Normal(loc, F.softplus(rho)).to_event(1))

    def precision(self) -> torch.Tensor:
        a, b = self.net.noise_prior
        loc = pyro.param(self._p("precision", "loc"), lambda: torch.tensor(math.log(a / b)))
        rho = pyro.param(self._p("precision", "rho"), lambda: torch.tensor(_inv_softplus(0.1)))
        return pyro.sample("precision", dist.LogNormal(loc, F.softplus(rho)))

    def weight(self, spec: "LayerSpec") -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ protocol: median
    def _stored(self, site: str, what: str) -> torch.Tensor:
        """A fitted parameter read from the param store (without creating or tracing it)."""
        name = self._p(site, what)
        store = pyro.get_param_store()
        if name not in store:
            raise RuntimeError(f"parameter {name!r} is not in the param store: run (fit) the "
                               f"{self.kind!r} guide before asking for its median")
        return store[name].detach().clone()

    def median(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
               subsample_size: int | None = None, **_: Any) -> dict[str, torch.Tensor]:
        """Posterior median of every weight, bias and (regression) the noise precision.

        Read from the fitted parameters, shaped like the sites; ``x`` (optional) only gives the
        input width, which otherwise is that of the guide's last call. No random numbers are
        drawn and the param store is left as it is.
        """
        in_features = x.shape[-1] if x is not None else self._in_features
        if in_features is None:
            raise RuntimeError("the guide has not been run yet (call it once with the data)")
        out: dict[str, torch.Tensor] = {}
        for spec in self.net.layers(in_features):
            out[spec.weight] = self.weight_median(spec)
            out[spec.bias] = self.bias_median(spec)
        if self.net.task == "regression" and self.net.noise == "homoscedastic":
            out["precision"] = self.precision_median()
        return out

    def weight_median(self, spec: "LayerSpec") -> torch.Tensor:
        """Median of ``q(w)`` for one weight tensor; the Gaussian guides' mean parameter."""
        raise NotImplementedError

    def bias_median(self, spec: "LayerSpec") -> torch.Tensor:
        """Median of the mean-field Gaussian ``q(b)``: its mean."""
        return self._stored(spec.bias, "loc")

    def precision_median(self) -> torch.Tensor:
        """Median of the log-normal ``q(precision)``: ``exp(loc)``."""
        return self._stored("precision", "loc").exp()

    def _gaussian_weight(self, spec: "LayerSpec", loc: torch.Tensor,
                         scale: torch.Tensor) -> torch.Tensor:
        d = len(spec.weight_shape)
        w = pyro.sample(spec.weight, dist.Normal(loc, scale).to_event(d))
        if self.net.local_reparam is not None:
            mode = self.net.local_reparam if spec.kind == "linear" else "lrt"
            mark_local_reparam(w, loc, scale, mode)
        return w


class BayesByBackpropGuide(_WeightGuide):
    """Bayes-by-Backprop: ``q(w) = N(mu, softplus(rho)^2)`` per weight (guide name ``bbb``)."""

    name = "bbb"

    def weight(self, spec: "LayerSpec") -> torch.Tensor:
        loc = pyro.param(self._p(spec.weight, "loc"), self._init_loc(spec))
        rho = pyro.param(self._p(spec.weight, "rho"),
                         lambda: torch.full(spec.weight_shape, _inv_softplus(self.init_scale)))
        return self._gaussian_weight(spec, loc, F.softplus(rho))

    def weight_median(self, spec: "LayerSpec") -> torch.Tensor:
        """Median of ``q(w) = N(mu, softplus(rho)^2)``: ``mu``."""
        return self._stored(spec.weight, "loc")


class DropoutGuide(_WeightGuide):
    """Shared by the two variational-dropout guides: log alpha, pruning and its report.

    Usage: ``isinstance(guide, DropoutGuide)`` tells a caller that :meth:`sparsity_report` and
    :meth:`pruned_means` are there.
    """

    def log_alpha(self, spec: "LayerSpec") -> torch.Tensor:
        raise NotImplementedError

    def _specs(self) -> list["LayerSpec"]:
        if self._in_features is None:
            raise RuntimeError("the guide has not been run yet (call it once with the data)")
        return self.net.layers(self._in_features)

    def sparsity_report(self, threshold: float = PRUNE_LOG_ALPHA) -> pd.DataFrame:
        """Per-layer weight counts, kept weights, sparsity and compression, plus a total row.

        A weight is pruned where ``log alpha > threshold`` (3 in Molchanov et al. 2017); biases
        are not counted, as in the paper. ``compression`` is weights / kept weights.
        """
        rows = []
        with torch.no_grad():
            for spec in self._specs():
                la = self.log_alpha(spec).expand(spec.weight_shape)
                n, kept = la.numel(), int((la <= threshold).sum())
                rows.append({"layer": spec.weight, "shape": tuple(spec.weight_shape),
                             "weights": n, "kept": kept})
        total = {"layer": "total", "shape": (), "weights": sum(r["weights"] for r in rows),
                 "kept": sum(r["kept"] for r in rows)}
        df = pd.DataFrame(rows + [total])
        df["sparsity"] = 1.0 - df["kept"] / df["weights"]
        df["compression"] = df["weights"] / df["kept"].clip(lower=1)
        return df

    def pruned_means(self, threshold: float = PRUNE_LOG_ALPHA) -> dict[str, torch.Tensor]:
        """The posterior means with pruned weights set to zero (the paper's test-time net)."""
        out: dict[str, torch.Tensor] = {}
        store = pyro.get_param_store()
        with torch.no_grad():
            for spec in self._specs():
                theta = store[self._p(spec.weight, "theta")]
                out[spec.weight] = theta * (self.log_alpha(spec) <= threshold)
                out[spec.bias] = store[self._p(spec.bias, "loc")].detach().clone()
            if self.net.task == "regression" and self.net.noise == "homoscedastic":
                out["precision"] = store[self._p("precision", "loc")].exp()
        return out

    def weight_median(self, spec: "LayerSpec") -> torch.Tensor:
        """Median of ``q(w) = N(theta, sigma^2)``: ``theta``, unpruned (:meth:`pruned_means`
        zeroes the weights with ``log alpha > 3``)."""
        return self._stored(spec.weight, "theta")

    def point_estimate(self, *args: Any, **model_kwargs: Any) -> dict[str, torch.Tensor]:
        """The test-time network of variational dropout: :meth:`pruned_means`."""
        return self.pruned_means()

    def report(self) -> dict[str, float]:
        """``{"sparsity", "compression"}`` of the whole net: :func:`compression_summary` of
        :meth:`sparsity_report` at the default threshold (``log alpha > 3`` pruned).

        Usage: ``guide.report()["compression"]``.
        """
        return compression_summary(self.sparsity_report())


class VariationalDropoutGuide(DropoutGuide):
    """Gaussian variational dropout, ``q(w) = N(theta, alpha theta^2)`` (guide name ``vd``)."""

    name = "vd"

    def __init__(self, net: "BayesianNet", prefix: str | None = None,
                 init_log_alpha: float = -3.0, **kwargs: Any) -> None:
        super().__init__(net, prefix, **kwargs)
        self.init_log_alpha = float(init_log_alpha)

    def _alpha_shape(self, spec: "LayerSpec") -> tuple[int, ...]:
        if self.net.vd_alpha == "weight":
            return spec.weight_shape
        if self.net.vd_alpha == "layer":
            return ()
        if spec.kind == "linear":  # one alpha per input unit (Gaussian dropout of that unit)
            return (spec.weight_shape[0], 1)
        return (1, spec.weight_shape[1], 1, 1)

    def log_alpha(self, spec: "LayerSpec") -> torch.Tensor:
        raw = pyro.param(self._p(spec.weight, "log_alpha"),
                         lambda: torch.full(self._alpha_shape(spec), self.init_log_alpha))
        return raw.clamp(max=0.0)  # alpha <= 1, where Kingma et al.'s analysis holds

    def weight(self, spec: "LayerSpec") -> torch.Tensor:
        theta = pyro.param(self._p(spec.weight, "theta"), self._init_loc(spec))
        scale = (self.log_alpha(spec).exp() * theta.pow(2) + 1e-16).sqrt()
        return self._gaussian_weight(spec, theta, scale)


class SparseVariationalDropoutGuide(DropoutGuide):
    """Sparse VD with the additive reparameterisation (guide name ``sparse_vd``)."""

    name = "sparse_vd"

    def __init__(self, net: "BayesianNet", prefix: str | None = None,
                 init_log_sigma2: float = -10.0, **kwargs: Any) -> None:
        super().__init__(net, prefix, **kwargs)
        self.init_log_sigma2 = float(init_log_sigma2)

    def _log_sigma2(self, spec: "LayerSpec") -> torch.Tensor:
        return pyro.param(self._p(spec.weight, "log_sigma2"),
                          lambda: torch.full(spec.weight_shape, self.init_log_sigma2))

    def log_alpha(self, spec: "LayerSpec") -> torch.Tensor:
        theta = pyro.param(self._p(spec.weight, "theta"), self._init_loc(spec))
        return log_alpha_of(theta, (0.5 * self._log_sigma2(spec)).exp())

    def weight(self, spec: "LayerSpec") -> torch.Tensor:
        theta = pyro.param(self._p(spec.weight, "theta"), self._init_loc(spec))
        scale = (0.5 * self._log_sigma2(spec)).exp()
        return self._gaussian_weight(spec, theta, scale)


class _DropoutMask(dist.Bernoulli):
    """Bernoulli mask with no learnable parameter, declared reparameterised so the ELBOs add no
    (identically zero) score-function term and ``TraceMeanField_ELBO`` accepts it."""

    has_rsample = True

    def rsample(self, sample_shape=torch.Size()):
        return self.sample(sample_shape)


class MCDropoutGuide(_WeightGuide):
    """MC dropout as VI: ``W = M diag(z)``, ``z ~ Bernoulli(1 - p)`` (guide name ``mc_dropout``).

    Weight, bias and precision sites are Deltas (point parameters); the dropout masks are
    auxiliary guide sites ``<weight>_mask``, one per input unit (input channel for conv).
    """

    name = "mc_dropout"

    def _mask_shape(self, spec: "LayerSpec") -> tuple[int, ...]:
        if spec.kind == "linear":
            return (spec.weight_shape[0], 1)
        return (1, spec.weight_shape[1], 1, 1)

    def weight(self, spec: "LayerSpec") -> torch.Tensor:
        mean = pyro.param(self._p(spec.weight, "loc"), self._init_loc(spec))
        keep = 1.0 - self.net.dropout_rate
        shape = self._mask_shape(spec)
        mask = pyro.sample(f"{spec.weight}_mask",
                           _DropoutMask(probs=torch.tensor(keep)).expand(shape).to_event(len(shape)),
                           infer={"is_auxiliary": True})
        return pyro.sample(spec.weight, dist.Delta(mean * mask, event_dim=len(spec.weight_shape)))

    def weight_median(self, spec: "LayerSpec") -> torch.Tensor:
        """Median of ``M z``: the kept weights ``M`` when units are kept with probability at
        least 1/2 (``dropout_rate <= 0.5``), else zeros."""
        mean = self._stored(spec.weight, "loc")
        return mean if self.net.dropout_rate <= 0.5 else torch.zeros_like(mean)

    def bias_median(self, spec: "LayerSpec") -> torch.Tensor:
        """The bias is a point mass at its parameter."""
        return self._stored(spec.bias, "loc")

    def precision_median(self) -> torch.Tensor:
        """The precision is a point mass at its (positive) parameter."""
        return self._stored("precision", "loc")

    def bias(self, spec: "LayerSpec") -> torch.Tensor:
        loc = pyro.param(self._p(spec.bias, "loc"), lambda: torch.zeros(spec.bias_shape))
        return pyro.sample(spec.bias, dist.Delta(loc, event_dim=1))

    def precision(self) -> torch.Tensor:
        a, b = self.net.noise_prior
        value = pyro.param(self._p("precision", "loc"), lambda: torch.tensor(a / b),
                           constraint=constraints.positive)
        return pyro.sample("precision", dist.Delta(value))


def compression_summary(report: pd.DataFrame) -> dict[str, float]:
    """``{"sparsity", "compression"}`` of the total row of :meth:`DropoutGuide.sparsity_report`."""
    total = report.set_index("layer").loc["total"]
    return {"sparsity": float(total["sparsity"]), "compression": float(total["compression"])}
