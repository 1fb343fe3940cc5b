"""Shared pieces of the Pyro ports of posteriordb posteriors and other reference models.

What lives here: the base class :class:`ReferenceModel` (dtype handling, Stan-named draws,
posteriordb reference draws as the reference posterior), the flat-prior stand-in
:func:`flat_prior`, and :func:`align_global`, which lets a vector-valued global latent broadcast
against a data plate whichever batch layout a Pyro handler gives it.

Usage::

    import zoo
    from zoo.data import load
    m = zoo.get("kidiq-kidscore_momiq")
    ds = load(m.default_data)
    ref = m.reference_posterior(ds)           # {"draws": ..., "mean": ..., "sd": ...}
    draws = m.to_stan_draws(result.posterior)  # {"beta[1]": (chain, draw), ...}

Batch layouts of a global latent ``beta`` with event shape ``(D,)`` that the models accept:
``(D,)`` (plain trace, MCMC), ``(S, 1, D)`` (sampled or guided inside an outer ``pyro.plate`` at
dim -2, e.g. vectorised ELBO particles or ``Predictive`` with a guide) and ``(S, D)`` (the layout
``Predictive(parallel=True)`` and :mod:`inference.log_likelihood` give conditioned draws).
Scalar globals come as ``()`` or ``(S, 1)`` in every case.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.stan_names import to_stan_draws

__all__ = ["ReferenceModel", "align_global", "flat_prior", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` or a torch floating dtype -> the torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"unsupported dtype {dtype!r}; choose one of {sorted(_DTYPES)}")


def flat_prior(
    support: constraints.Constraint, event_shape: tuple[int, ...], like: torch.Tensor
) -> dist.TorchDistribution:
    """Stan's implicit flat prior on ``support``: log density 0 everywhere on the support.

    ``pyro.distributions.ImproperUniform`` has the right density but cannot ``sample()``, and
    every built-in Pyro init strategy (``init_to_median``, ``init_to_feasible``,
    ``init_to_uniform``) and the autoguides' initialisation call ``sample()``. So, as the
    ImproperUniform docstring itself suggests, this is a proper stand-in distribution with the
    same support (standard normal pushed through ``biject_to(support)``) masked with
    ``.mask(False)``: its log density contributes exactly 0 to the joint, while sampling (used
    only for initialisation and prior simulation) draws from the stand-in. Prior-predictive
    draws of a model with flat priors are therefore not meaningful. Supports: ``real``
    (stand-in ``Normal(0, 1)``) and ``positive`` (``LogNormal(0, 1)``).

    Example: ``pyro.sample("sigma", flat_prior(constraints.positive, (), like=x))``.
    """
    stand_ins = {constraints.real: dist.Normal, constraints.positive: dist.LogNormal}
    if support not in stand_ins:
        raise ValueError(f"flat_prior supports {list(stand_ins)}, got {support}")
    base: dist.TorchDistribution = stand_ins[support](like.new_zeros(event_shape), 1.0)
    if event_shape:
        base = base.to_event(len(event_shape))
    return base.mask(False)


def align_global(value: torch.Tensor, event_dim: int = 1) -> torch.Tensor:
    """A global latent with ``event_dim`` event dims, given a singleton data-plate batch dim.

    ``(S, D) -> (S, 1, D)``; ``(D,)`` and ``(S, 1, D)`` are returned unchanged, so that
    ``(x * align_global(beta)).sum(-1)`` is ``x @ beta`` with shape ``(N,)`` or ``(S, N)``.
    """
    if value.dim() > event_dim and value.shape[-event_dim - 1] != 1:
        value = value.unsqueeze(-event_dim - 1)
    return value


def _moments(draws: Mapping[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    mean = {name: float(np.mean(arr)) for name, arr in draws.items()}
    sd = {name: float(np.std(arr, ddof=1)) for name, arr in draws.items()}
    return mean, sd


class ReferenceModel(ZooModel):
    """Base class of the small reference posteriors (posteriordb ports, conjugate models).

    Subclasses set :attr:`stan_event_dims` (site -> number of trailing dims that index it, for
    the Stan names of the reported parameters) and build tensors with :meth:`tensor`.
    ``dtype`` (default ``"float64"``, as Stan computes) is the floating type of the data and
    hence of every latent.
    """

    #: parameters posteriordb reports, as site -> event dims (``{"beta": 1, "sigma": 0}``)
    stan_event_dims: ClassVar[Mapping[str, int]] = {}

    def __init__(self, dtype: str | torch.dtype = "float64") -> None:
        self.dtype = resolve_dtype(dtype)

    def tensor(self, split: Mapping[str, Any], key: str, dataset: Dataset | None = None
               ) -> torch.Tensor:
        """``split[key]`` as a tensor of the model's dtype; a missing key names what exists."""
        if key not in split:
            where = f"data set {dataset.name!r}" if dataset is not None else "the split"
            raise KeyError(f"{where} has no array {key!r}; it has {sorted(split)}")
        return torch.as_tensor(split[key]).to(self.dtype)

    @classmethod
    def stan_names(cls, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
        """Stan names of the reported parameters, given each site's event shape."""
        names = to_stan_draws({site: np.zeros((1, 1) + tuple(shapes[site]))
                               for site in cls.stan_event_dims}, cls.stan_event_dims)
        return list(names)

    def to_stan_draws(self, posterior: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The reported parameters of ``posterior`` (site -> (chain, draw, ...)) by Stan name."""
        return to_stan_draws(posterior, self.stan_event_dims)

    def reference_posterior(self, dataset: Dataset) -> Mapping[str, Any] | None:
        """posteriordb's reference draws and their means and sds, keyed by Stan name.

        Returns ``{"draws": {name: (chains, draws)}, "mean": {name: float}, "sd": {...}}`` or
        ``None`` when the data set carries no ``info["reference_draws"]``.
        """
        draws = dataset.info.get("reference_draws")
        if draws is None:
            return None
        draws = {name: np.asarray(arr) for name, arr in draws.items()}
        mean, sd = _moments(draws)
        return {"draws": draws, "mean": mean, "sd": sd}
