"""A Pyro model's potential energy on one flat unconstrained vector, optionally on mini-batches.

The stochastic-gradient samplers, SWAG, deep ensembles and the Laplace approximations all need
the same thing of a model: ``U(z) = -log p(theta(z), data) - log |det d theta / d z|`` for a flat
vector ``z`` of every latent site in unconstrained space (Pyro's ``biject_to`` of each site's
support), and its gradient. With ``batch_size`` the model is called with
``subsample_size=batch_size``, so its data plate draws a fresh mini-batch on every call and
scales the likelihood by ``N / batch_size`` (Pyro's plate scaling): ``U`` is then an unbiased
estimate of the full-data potential, which is what SG-MCMC needs.

Why by hand: Pyro's ``initialize_model`` builds a potential over a dict of sites for its HMC;
these methods work on one flat vector (preconditioners, SWAG's moments, curvature), so this
module keeps the packing and the constraining next to the potential, in one place.

Usage::

    from inference.potential import Potential
    pot = Potential(net.model, {"x": x, "y": y}, batch_size=32)
    z = pot.initial(seed=0)                 # a prior draw, unconstrained, flat
    u, grad = pot.value_and_grad(z)         # stochastic: a new mini-batch each call
    draws = pot.constrain(torch.stack([z, z]).unsqueeze(0))   # {"w0": (1, 2, in, out), ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.transforms import biject_to

from inference.guides import robust_init_to_median
from inference.sites import data_plate_size, model_trace, site_kinds
from inference.svi.inputs import check_minibatch

__all__ = ["Potential", "SiteBlock", "DivergedError", "result_from_draws"]


class DivergedError(RuntimeError):
    """A run whose potential or parameters became NaN or infinite."""


@dataclass(frozen=True)
class SiteBlock:
    """Where one latent site lives in the flat vector: ``z[start:start + size]``."""

    name: str
    start: int
    size: int
    shape: tuple[int, ...]  # unconstrained shape
    transform: Any


class Potential:
    """``U(z)`` of ``model(**model_kwargs)`` over its latent sites, flat and unconstrained.

    ``batch_size``: pass ``subsample_size=batch_size`` to the model (mini-batches, scaled by the
    data plate); ``None``: the full data on every call. ``sites`` restricts the vector to some
    latent sites; the others are held at ``fixed`` (a dict of constrained values), as the
    last-layer Laplace does.
    """

    def __init__(self, model: Callable[..., Any], model_kwargs: Mapping[str, Any], *,
                 batch_size: int | None = None, sites: tuple[str, ...] | None = None,
                 fixed: Mapping[str, torch.Tensor] | None = None) -> None:
        self.model = model
        self.model_kwargs = dict(model_kwargs)
        self.batch_size = batch_size
        if batch_size is not None:
            check_minibatch(model, None, self.model_kwargs, batch_size)
        trace = model_trace(model, self.model_kwargs, init_strategy=robust_init_to_median)
        latent = site_kinds(trace).latent
        if not latent:
            raise ValueError("the model has no latent sample sites to infer")
        for name in latent:
            if trace.nodes[name]["fn"].support.is_discrete:
                raise ValueError(f"latent site {name!r} is discrete; these methods need "
                                 "continuous latents")
        if sites is not None:
            unknown = sorted(set(sites) - set(latent))
            if unknown:
                raise ValueError(f"sites {unknown} are not latent sites of the model; its "
                                 f"latent sites are {list(latent)}")
            missing = sorted(set(latent) - set(sites) - set(fixed or {}))
            if missing:
                raise ValueError(f"latent sites {missing} are neither inferred nor fixed")
        self.fixed = {k: torch.as_tensor(v) for k, v in (fixed or {}).items()}
        blocks, start = [], 0
        for name in (sites if sites is not None else latent):
            fn = trace.nodes[name]["fn"]
            transform = biject_to(fn.support)
            shape = tuple(transform.inv(trace.nodes[name]["value"]).shape)
            size = int(np.prod(shape)) if shape else 1
            blocks.append(SiteBlock(name, start, size, shape, transform))
            start += size
        self.blocks: tuple[SiteBlock, ...] = tuple(blocks)
        self.dim = start
        self.num_data = data_plate_size(trace)

    # ------------------------------------------------------------------ packing
    def unpack(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unconstrained site values from ``z`` shaped ``(*batch, dim)``."""
        lead = z.shape[:-1]
        return {b.name: z[..., b.start:b.start + b.size].reshape(tuple(lead) + b.shape)
                for b in self.blocks}

    def pack(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The flat vector of unconstrained ``values`` (one value per site, no batch dims)."""
        return torch.cat([values[b.name].reshape(-1) for b in self.blocks])

    def constrain(self, z: torch.Tensor) -> dict[str, np.ndarray]:
        """Constrained site values (numpy) from ``z`` shaped ``(chain, draw, dim)``."""
        with torch.no_grad():
            out = {b.name: b.transform(u).cpu().numpy() for b, u in
                   zip(self.blocks, self.unpack(z).values())}
        return out

    def unconstrain(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The flat unconstrained vector of constrained site ``values``."""
        return self.pack({b.name: b.transform.inv(torch.as_tensor(values[b.name]))
                          for b in self.blocks})

    # ------------------------------------------------------------------ values
    def initial(self, seed: int, strategy: str = "prior") -> torch.Tensor:
        """A starting point: a prior draw (``"prior"``) or the prior median (``"median"``).

        Fixed sites keep their values. Deterministic given ``seed``: it seeds Pyro's global
        RNG (``pyro.set_rng_seed``), from which the data plate then draws every mini-batch, so
        a run's mini-batch sequence follows from its seed too.
        """
        if strategy not in ("prior", "median"):
            raise ValueError(f"init strategy must be 'prior' or 'median', got {strategy!r}")
        pyro.set_rng_seed(seed)
        kwargs = self._kwargs()
        fn = poutine.condition(self.model, data=self.fixed)
        if strategy == "median":
            trace = model_trace(fn, kwargs, init_strategy=robust_init_to_median)
        else:
            trace = model_trace(fn, kwargs)
        return self.unconstrain({b.name: trace.nodes[b.name]["value"] for b in self.blocks})

    def _kwargs(self) -> dict[str, Any]:
        if self.batch_size is None:
            return self.model_kwargs
        return {**self.model_kwargs, "subsample_size": self.batch_size}

    def __call__(self, z: torch.Tensor, full_data: bool = False) -> torch.Tensor:
        """``U(z)`` for one flat vector ``z``; a fresh mini-batch unless ``full_data``."""
        values, log_det = {}, z.new_zeros(())
        for block, u in zip(self.blocks, self.unpack(z).values()):
            theta = block.transform(u)
            values[block.name] = theta
            log_det = log_det + block.transform.log_abs_det_jacobian(u, theta).sum()
        values.update(self.fixed)
        kwargs = self.model_kwargs if full_data else self._kwargs()
        with poutine.block():
            trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(**kwargs)
        return -(trace.log_prob_sum() + log_det)

    def value_and_grad(self, z: torch.Tensor, full_data: bool = False
                       ) -> tuple[float, torch.Tensor]:
        """``(U(z), grad U(z))``; raises :class:`DivergedError` when either is not finite."""
        z = z.detach().requires_grad_(True)
        value = self(z, full_data=full_data)
        (grad,) = torch.autograd.grad(value, z)
        u = float(value.detach())
        if not (np.isfinite(u) and bool(torch.isfinite(grad).all())):
            raise DivergedError(f"the potential or its gradient is not finite (U = {u}); the "
                                "step size or learning rate is probably too large")
        return u, grad


def result_from_draws(potential: Potential, z: torch.Tensor, *, method: str, family: str,
                      settings: Mapping[str, Any], seed: int, timings: Mapping[str, float],
                      log_likelihood: bool = False, sample_stats: Mapping[str, Any] | None = None,
                      loss_history: Any = None) -> Any:
    """An :class:`~inference.result.InferenceResult` of flat unconstrained draws ``z``
    shaped ``(chain, draw, dim)``, with the fixed sites (if any) repeated for every draw."""
    from inference.result import InferenceResult

    posterior = potential.constrain(z)
    for name, value in potential.fixed.items():
        arr = value.detach().cpu().numpy()
        posterior[name] = np.broadcast_to(arr, (*z.shape[:2], *arr.shape)).copy()
    ll = None
    if log_likelihood:
        from inference.log_likelihood import pointwise_log_likelihood

        ll = pointwise_log_likelihood(potential.model, posterior, potential.model_kwargs)
    return InferenceResult(method=method, family=family, posterior=posterior,
                           sample_stats=dict(sample_stats or {}), timings=dict(timings),
                           settings=dict(settings), seed=seed, log_likelihood=ll,
                           loss_history=loss_history)
