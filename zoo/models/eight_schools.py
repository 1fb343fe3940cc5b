"""The eight schools hierarchical model (Rubin 1981), centred and non-centred, as in posteriordb.

Both are ports of posteriordb's ``eight_schools_centered`` and ``eight_schools_noncentered``
Stan programs (see ``shared/data/posteriordb/models.md``)::

    mu ~ Normal(0, 5);  tau ~ HalfCauchy(5)
    centred:      theta[j] ~ Normal(mu, tau)
    non-centred:  theta_trans[j] ~ Normal(0, 1);  theta[j] = mu + tau * theta_trans[j]
    y[j] ~ Normal(theta[j], sigma[j])            (sigma known)

The non-centred model records ``theta`` with ``pyro.deterministic`` so its posterior draws hold
``theta``, ``mu`` and ``tau`` like posteriordb's reference draws.

Usage::

    import zoo
    from zoo.data import load
    m = zoo.get("eight_schools-eight_schools_noncentered")
    ds = load(m.default_data)
    m.model(**m.model_kwargs(ds))
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pyro
import pyro.distributions as dist
import torch

from zoo.data.dataset import Dataset
from zoo.models.posteriordb_base import ReferenceModel
from zoo.registry import register

__all__ = ["EightSchoolsCentered", "EightSchoolsNoncentered"]

_CENTERED = "eight_schools-eight_schools_centered"
_NONCENTERED = "eight_schools-eight_schools_noncentered"


class _EightSchools(ReferenceModel):
    """Shared data binding and hyper-priors of both parameterisations."""

    stan_event_dims: ClassVar[Mapping[str, int]] = {"theta": 1, "mu": 0, "tau": 0}

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"sigma": (J,), "y": (J,)}`` from the posteriordb ``eight_schools`` data."""
        data = dataset.split(split)
        sigma = self.tensor(data, "sigma", dataset)
        y = self.tensor(data, "y", dataset)
        if "J" in data and int(data["J"]) != sigma.shape[0]:
            raise ValueError(f"J = {int(data['J'])} but sigma has {sigma.shape[0]} entries")
        if y.shape != sigma.shape:
            raise ValueError(f"y has shape {tuple(y.shape)} but sigma {tuple(sigma.shape)}")
        return {"sigma": sigma, "y": y}

    @staticmethod
    def _hyper(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = pyro.sample("mu", dist.Normal(sigma.new_tensor(0.0), 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(sigma.new_tensor(5.0)))
        return mu, tau


@register(
    _CENTERED,
    description="Eight schools, centred: theta ~ Normal(mu, tau) (funnel geometry; posteriordb)",
    default_data=_CENTERED,
)
class EightSchoolsCentered(_EightSchools):
    """Centred eight schools; NUTS usually reports divergences on its funnel."""

    def model(self, sigma: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        mu, tau = self._hyper(sigma)
        with pyro.plate("schools", sigma.shape[0], dim=-1):
            theta = pyro.sample("theta", dist.Normal(mu, tau))
            return pyro.sample("y", dist.Normal(theta, sigma), obs=y)


@register(
    _NONCENTERED,
    description="Eight schools, non-centred: theta = mu + tau * theta_trans (posteriordb)",
    default_data=_NONCENTERED,
)
class EightSchoolsNoncentered(_EightSchools):
    """Non-centred eight schools; ``theta`` is a deterministic site."""

    def model(self, sigma: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        mu, tau = self._hyper(sigma)
        with pyro.plate("schools", sigma.shape[0], dim=-1):
            theta_trans = pyro.sample("theta_trans", dist.Normal(sigma.new_tensor(0.0), 1.0))
            theta = pyro.deterministic("theta", mu + tau * theta_trans)
            return pyro.sample("y", dist.Normal(theta, sigma), obs=y)
