"""Guides of the deep exponential family (:mod:`zoo.models.deep_exponential`), by name.

* ``mean_field`` -- :class:`DEFMeanField`, the hand-built mean-field guide of Pyro's sparse
  gamma DEF example: every gamma site (gamma layers, non-negative weights) gets
  ``Gamma(a, a / mu)`` with ``a = softplus(a_raw)`` and ``mu = softplus(mu_raw)``, and the raw
  parameters are clamped from below (``a_raw >= -2.5``, ``mu_raw >= -4.5``, as the example does
  after every step) so that gamma means and shapes stay away from 0; Normal factors for real
  weights and Gaussian layers, Bernoulli and Poisson factors (with decaying-average baselines
  for the score-function terms of ``TraceGraph_ELBO``) for discrete layers. Gamma draws are
  reparameterised (torch's implicit reparameterisation of the gamma sampler).
* ``auto_normal``, ``auto_diagonal_normal`` -- Pyro's autoguides: a diagonal Normal in the
  unconstrained space, i.e. log space for the positive sites; started at the prior mean.
* ``grouped`` -- :class:`DEFGroupedNormal`, Pyro's EasyGuide with two groups: all weights in
  one diagonal Normal, all local latents of a data point in another (log space).
* ``auto_planar``, ``auto_radial`` -- the SVI driver's flow guides
  (:func:`inference.guides.make_guide`), started at the prior mean.

Autoguides and ``grouped`` need continuous latents; for a DEF with Poisson or Bernoulli layers
they are replaced by a guide that refuses to run, saying so.

Usage::

    from zoo.models.def_guides import make_def_guide
    guide = make_def_guide("mean_field", def_model)
    fit_svi(def_model.model, kwargs, guide=guide, optimizer="adagrad_rmsprop", lr=4.5)
    guide.mean()["w1"]            # posterior mean of the bottom weights, (100, 4096)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.contrib.easyguide import EasyGuide

from inference.guide_protocol import ZooGuide

if TYPE_CHECKING:
    from zoo.models.deep_exponential import DEF

__all__ = ["GUIDE_NAMES", "DEFMeanField", "DEFGroupedNormal", "DEFAutoGuide", "make_def_guide",
           "SHAPE_CLAMP", "MEAN_CLAMP"]

GUIDE_NAMES = ("mean_field", "auto_normal", "auto_diagonal_normal", "grouped", "auto_planar",
               "auto_radial")
#: lower clamps of the raw (pre-softplus) gamma shape and mean, Pyro's example's values
SHAPE_CLAMP, MEAN_CLAMP = -2.5, -4.5
#: Pyro's example: raw shapes start near 0.5, raw means near 0, both with sd 0.1
_SHAPE_INIT, _MEAN_INIT, _INIT_SD = 0.5, 0.0, 0.1
_BASELINE = {"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}}


def _randn(shape: tuple[int, ...], mean: float, sd: float) -> Callable[[], torch.Tensor]:
    return lambda: mean + sd * torch.randn(shape)


class DEFMeanField(ZooGuide):
    """Mean-field guide with one factor per latent scalar, of the family its prior has.

    Called like the model (``x``, ``num_data``, ``weights``): with ``weights`` given only the
    local latents are sampled (held-out fits). Parameters live in Pyro's param store under
    ``{prefix}.{site}.{name}``; local ones are sized for the data they first see.

    Usage::

        guide = DEFMeanField(def_model)
        pyro.poutine.trace(guide).get_trace(x=x)      # one draw of every latent
        guide.mean()["z1"]                           # (N, 100) posterior means
    """

    kind = "mean_field"
    amortised = False
    local_factors = True

    def __init__(self, def_model: "DEF", prefix: str = "def_q") -> None:
        self.def_model = def_model
        self.prefix = prefix
        self.__name__ = self.__qualname__ = "def_mean_field"

    # -------------------------------------------------------------- parameters
    def _gamma_params(self, site: str, shape: tuple[int, ...]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shape, mean)`` of a gamma factor, after the in-place lower clamps."""
        raw_a = pyro.param(f"{self.prefix}.{site}.shape_raw", _randn(shape, _SHAPE_INIT,
                                                                    _INIT_SD))
        raw_m = pyro.param(f"{self.prefix}.{site}.mean_raw", _randn(shape, _MEAN_INIT, _INIT_SD))
        with torch.no_grad():  # Pyro's example clamps after each step; here before each use
            raw_a.clamp_(min=SHAPE_CLAMP)
            raw_m.clamp_(min=MEAN_CLAMP)
        return F.softplus(raw_a), F.softplus(raw_m)

    def _factor(self, site: str, kind: str, shape: tuple[int, ...]) -> dist.TorchDistribution:
        if kind == "gamma":
            a, mean = self._gamma_params(site, shape)
            return dist.Gamma(a, a / mean)
        if kind in ("normal", "gaussian"):
            loc = pyro.param(f"{self.prefix}.{site}.loc", _randn(shape, 0.0, _INIT_SD))
            raw = pyro.param(f"{self.prefix}.{site}.scale_raw", _randn(shape, -2.0, 0.0))
            return dist.Normal(loc, F.softplus(raw))
        if kind == "bernoulli":
            return dist.Bernoulli(logits=pyro.param(f"{self.prefix}.{site}.logits",
                                                    _randn(shape, 0.0, _INIT_SD)))
        if kind == "poisson":
            raw = pyro.param(f"{self.prefix}.{site}.rate_raw", _randn(shape, 0.0, _INIT_SD))
            return dist.Poisson(F.softplus(raw) + 1e-6)
        raise AssertionError(kind)

    def _num_data(self, x: torch.Tensor | None, num_data: int) -> int:
        return len(x) if x is not None else int(num_data)

    # -------------------------------------------------------------- the guide
    def __call__(self, x: torch.Tensor | None = None, num_data: int = 1,
                 weights: Any = None) -> None:
        m = self.def_model
        if x is not None and m.x_dim is None:
            m.x_dim = int(x.shape[-1])
        if weights is None:
            for layer, name in enumerate(m.weight_names):
                shape = m.weight_shape(layer)
                pyro.sample(name, self._factor(name, m.weight_kind(layer), shape).to_event(2))
        n = self._num_data(x, num_data)
        with pyro.plate("data", n, dim=-1):
            for layer in reversed(range(m.depth)):
                kind, name = m.layers[layer], m.latent_names[layer]
                q = self._factor(name, kind, (n, m.widths[layer])).to_event(1)
                pyro.sample(name, q, infer=dict(_BASELINE) if kind in ("poisson", "bernoulli")
                            else {})

    def mean(self) -> dict[str, torch.Tensor]:
        """Posterior means of every site this guide has parameters for, detached.

        Exact: the gamma factors' ``mu``, Normal ``loc``, Bernoulli ``sigmoid(logits)``,
        Poisson rate. Usage: ``guide.mean()["w1"]``.
        """
        store = pyro.get_param_store()
        out: dict[str, torch.Tensor] = {}
        sites = {key[len(self.prefix) + 1:].rsplit(".", 1)[0] for key in store.keys()
                 if key.startswith(self.prefix + ".")}
        with torch.no_grad():
            for site in sorted(sites):
                base = f"{self.prefix}.{site}."
                if base + "mean_raw" in store:
                    out[site] = F.softplus(store[base + "mean_raw"].clamp(min=MEAN_CLAMP))
                elif base + "loc" in store:
                    out[site] = store[base + "loc"].detach().clone()
                elif base + "logits" in store:
                    out[site] = torch.sigmoid(store[base + "logits"])
                elif base + "rate_raw" in store:
                    out[site] = F.softplus(store[base + "rate_raw"]) + 1e-6
        return out

    def median(self, *args: Any, **model_kwargs: Any) -> dict[str, torch.Tensor]:
        """The posterior means (:meth:`mean`): gamma factors have no closed-form median."""
        return self.mean()


class _GroupedEasyGuide(EasyGuide):
    """The EasyGuide behind :class:`DEFGroupedNormal` (Pyro's example's ``MyEasyGuide``)."""

    def __init__(self, def_model: "DEF") -> None:
        super().__init__(def_model.model)
        self.def_model = def_model

    def guide(self, x: torch.Tensor | None = None, num_data: int = 1, weights: Any = None
              ) -> None:
        m = self.def_model
        if x is not None and m.x_dim is None:
            m.x_dim = int(x.shape[-1])
        if weights is None:
            group = self.group(match=r"w\d+$")
            size = group.event_shape
            loc = pyro.param("grouped.w_loc", _randn(tuple(size), 0.5, _INIT_SD))
            scale = F.softplus(pyro.param("grouped.w_scale_raw", _randn(tuple(size), 0.0,
                                                                         _INIT_SD)))
            group.sample("grouped_w", dist.Normal(loc, scale).to_event(1))
        local = self.group(match=r"z\d+$")
        n = len(x) if x is not None else int(num_data)
        with self.plate("data", n, dim=-1):
            shape = (n,) + tuple(local.event_shape)
            loc = pyro.param("grouped.z_loc", _randn(shape, 0.5, _INIT_SD))
            scale = F.softplus(pyro.param("grouped.z_scale_raw", _randn(shape, 0.0, _INIT_SD)))
            local.sample("grouped_z", dist.Normal(loc, scale).to_event(1))


class DEFGroupedNormal(ZooGuide):
    """Grouped mean-field Normal in log space: one group for all weights, one for the local
    latents of each data point (Pyro's EasyGuide; the initial values of Pyro's example).

    Usage: ``guide = DEFGroupedNormal(def_model); fit_svi(def_model.model, kw, guide=guide)``.
    """

    kind = "grouped"
    amortised = False
    local_factors = True

    def __init__(self, def_model: "DEF") -> None:
        self.easy = _GroupedEasyGuide(def_model)
        self.__name__ = self.__qualname__ = "def_grouped"

    def __call__(self, x: torch.Tensor | None = None, num_data: int = 1,
                 weights: Any = None) -> Any:
        return self.easy(x=x, num_data=num_data, weights=weights)

    def median(self, x: torch.Tensor | None = None, num_data: int = 1,
               weights: Any = None) -> dict[str, torch.Tensor]:
        """Each group's Normal median (its ``loc``) unpacked and mapped to each site's
        support, as EasyGuide's ``Group.sample`` unpacks a draw (no random numbers drawn)."""
        from pyro.distributions.util import broadcast_shape
        from torch.distributions import biject_to

        from inference.checkpoint import get_rng, set_rng

        if getattr(self.easy, "prototype_trace", None) is None:
            rng = get_rng()  # tracing the model draws from its prior
            try:
                self.easy._setup_prototype(x=x, num_data=num_data, weights=weights)
            finally:
                set_rng(rng)
        store = pyro.get_param_store()
        pairs = [(r"z\d+$", "grouped.z_loc")]
        if weights is None:
            pairs.insert(0, (r"w\d+$", "grouped.w_loc"))
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for match, loc_name in pairs:
                group, loc = self.easy.group(match=match), store[loc_name].detach()
                pos = 0
                for site in group.prototype_sites:
                    fn, size = site["fn"], group._site_sizes[site["name"]]
                    shape = broadcast_shape(loc.shape[:-1],
                                            group._site_batch_shapes[site["name"]])
                    value = loc[..., pos:pos + size].reshape(shape + fn.event_shape)
                    pos += size
                    out[site["name"]] = biject_to(fn.support)(value)
        return out


class DEFAutoGuide(ZooGuide):
    """One of the SVI driver's autoguides (:func:`inference.guides.make_guide`) for a DEF,
    started at the prior mean, behind the zoo's guide protocol.

    Calling it runs the autoguide; :meth:`median` is the autoguide's median, and for the flow
    guides the base distribution's median pushed through the flows (the image of the median,
    a point estimate but not in general the flow distribution's median).
    Usage: ``guide = DEFAutoGuide("auto_normal", def_model); guide.median(x=x)["w1"]``.
    """

    amortised = False
    local_factors = True

    def __init__(self, name: str, def_model: "DEF", model: Callable[..., Any] | None = None
                 ) -> None:
        from pyro.infer.autoguide.initialization import init_to_mean

        from inference.guides import make_guide

        self.kind = name
        self.auto = make_guide(name, model or def_model.model, init_loc_fn=init_to_mean)
        self.__name__ = self.__qualname__ = f"def_{name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.auto(*args, **kwargs)

    def median(self, *args: Any, **model_kwargs: Any) -> dict[str, torch.Tensor]:
        from pyro.infer.autoguide import AutoNormalizingFlow
        from torch.distributions import biject_to

        auto = self.auto
        with torch.no_grad():
            if not isinstance(auto, AutoNormalizingFlow):
                return {k: v.detach() for k, v in auto.median(*args, **model_kwargs).items()}
            posterior = auto.get_posterior(*args, **model_kwargs)
            latent = posterior.base_dist.mean
            for transform in posterior.transforms:
                latent = transform(latent)
            return {site["name"]: biject_to(site["fn"].support)(value).detach()
                    for site, value in auto._unpack_latent(latent)}


class _Unavailable(ZooGuide):
    """A guide that cannot run on this model: calling it raises a ValueError saying why."""

    amortised = False
    local_factors = True

    def __init__(self, name: str, reason: str) -> None:
        self.kind = name
        self.name, self.reason = name, reason
        self.__name__ = self.__qualname__ = f"unavailable_{name}"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError(f"guide {self.name!r} cannot fit this DEF: {self.reason}")


def make_def_guide(name: str, def_model: "DEF", model: Callable[..., Any] | None = None
                   ) -> Any:
    """A fresh guide called ``name`` (one of :data:`GUIDE_NAMES`) for ``def_model``.

    ``model`` is the Pyro model the autoguides trace (default ``def_model.model``; a model with
    the weights fixed for held-out fits). Usage: ``make_def_guide("auto_normal", m)``.
    """
    if name not in GUIDE_NAMES:
        raise ValueError(f"unknown DEF guide {name!r}; choose from {GUIDE_NAMES}")
    if name == "mean_field":
        return DEFMeanField(def_model)
    if def_model.has_discrete_layers:
        return _Unavailable(name, f"it needs continuous latents and layers "
                                  f"{def_model.layers} include discrete ones; use mean_field")
    if name == "grouped":
        return DEFGroupedNormal(def_model)
    return DEFAutoGuide(name, def_model, model)


def is_weight_site(name: str) -> bool:
    """Whether ``name`` is a DEF weight site (``w1``, ``w2``, ...)."""
    return re.fullmatch(r"w\d+", name) is not None
