"""The potential energy of C chains at once, built once from a Pyro model.

Used by the vectorised kernels: all chains' positions are one flat tensor of shape (C, D) in
the unconstrained space, and one call returns the potential energies (C,) and their gradients
(C, D).

How it is built. The model runs once under an outer ``pyro.plate`` of size C placed to the
left of its own plates (``dim = -(max_plate_nesting + 1)``), conditioned on the chains'
constrained values; the log densities of its sites and the log-Jacobians of the transforms are
summed per chain. That is the same vectorisation Pyro's ``Trace_ELBO(vectorize_particles=True)``
uses for particles, so models written to broadcast over leading batch dimensions (the zoo's
convention, see :mod:`zoo.models.base`) vectorise without change. The function ``z -> (U, dU/dz)``
is then traced once to a flat graph of tensor operations with ``torch.fx``'s ``make_fx`` (the
supported successor of ``torch.jit.trace``): each later call replays those operations with no
Pyro handler, trace or distribution object in the loop. Distribution argument checks are
turned off while tracing (they branch on tensor values); they run in the eager check made
before it. A model whose potential depends on values through Python control flow would be
traced wrongly, so the traced graph is compared with the eager potential at two points and
dropped (with a warning, keeping the eager, still batched, path) when they differ.

Usage::

    pot = BatchedPotential(model, {"y": y}, num_chains=4)
    z = pot.initial_positions("uniform", seeds=[1, 2, 3, 4])   # (4, D)
    energy, grad = pot(z)                                     # (4,), (4, D)
    draws = pot.constrained(z[None])                          # {"mu": array (4, 1)}, chain first
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.mcmc.util import initialize_model

from inference.mcmc.initialization import make_init_strategy
from inference.sites import model_trace, plate_nesting, site_kind

__all__ = ["BatchedPotential", "NotVectorizableError", "LatentSite"]

_CHAIN_PLATE = "_mcmc_chains"

#: the advice every "cannot vectorise" message ends with
_ADVICE = "use chain_method='sequential' (or 'parallel') for this model"


class NotVectorizableError(ValueError):
    """The model cannot run with all chains as one batch; the message says why and what to do."""


@dataclass(frozen=True)
class LatentSite:
    """One latent site: where its unconstrained values sit in the flat vector, and its shapes.

    ``shape`` is the constrained value's shape, ``unconstrained_shape`` that of the
    unconstrained value, ``pad`` the number of size-1 dimensions put between the chain dimension
    and the value so that the chain plate lies left of the model's plates.
    """

    name: str
    offset: int
    size: int
    shape: tuple[int, ...]
    unconstrained_shape: tuple[int, ...]
    pad: int
    transform: Any  # unconstrained -> constrained (torch Transform)


def _cast_kwargs(kwargs: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Floating-point tensors of ``kwargs`` in ``dtype`` (others unchanged)."""
    return {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in kwargs.items()}


class BatchedPotential:
    """Potential energy and gradient of ``num_chains`` chains from one evaluation.

    ``trace=True`` replays a graph traced once (see the module docstring); ``trace=False``
    runs the Pyro model (batched) on every call. ``compile=True`` also hands the traced graph to
    ``torch.compile``. ``dtype`` is the floating-point type of positions and data (float32 by
    default, as the models' data; float64 doubles the cost of every operation on CPU).

    Example::

        pot = BatchedPotential(model, {"y": y}, num_chains=32)
        energy, grad = pot(pot.initial_positions("uniform", seeds=list(range(32))))
    """

    def __init__(self, model: Callable[..., Any], model_kwargs: Mapping[str, Any],
                 num_chains: int, *, dtype: torch.dtype = torch.float32, trace: bool = True,
                 compile: bool = False) -> None:
        self.model = model
        self.num_chains = int(num_chains)
        self.dtype = dtype
        self.model_kwargs = _cast_kwargs(model_kwargs, dtype)
        self._prototype = model_trace(model, self.model_kwargs,
                                      init_strategy=make_init_strategy("feasible"))
        self.nesting = plate_nesting(self._prototype)
        self.sites = self._latent_sites()
        self.dim = sum(s.size for s in self.sites)
        if self.dim == 0:
            raise NotVectorizableError("the model has no latent sample sites to sample")
        self._fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self._eager
        self.traced = False
        if trace:
            self._trace(compile)

    # ------------------------------------------------------------------ layout
    def _latent_sites(self) -> list[LatentSite]:
        sites, offset = [], 0
        for name, node in self._prototype.nodes.items():
            kind = site_kind(node)
            if kind == "latent":
                fn = node["fn"]
                if fn.support.is_discrete:
                    raise NotVectorizableError(
                        f"latent site {name!r} is discrete; the vectorised kernels need "
                        f"continuous latent variables ({_ADVICE})")
                transform = torch.distributions.biject_to(fn.support)
                value = node["value"]
                unconstrained = transform.inv(value)
                batch = len(fn.batch_shape)
                if batch > self.nesting:
                    raise NotVectorizableError(
                        f"site {name!r} has batch shape {tuple(fn.batch_shape)} but the model's "
                        f"plates nest {self.nesting} deep; declare its batch dimensions with "
                        f"pyro.plate or .to_event ({_ADVICE})")
                size = int(np.prod(unconstrained.shape, dtype=np.int64))
                sites.append(LatentSite(name, offset, size, tuple(value.shape),
                                        tuple(unconstrained.shape), self.nesting - batch,
                                        transform))
                offset += size
            elif kind == "subsample":
                continue
        return sites

    def unpack(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat positions (C, D) -> unconstrained site values (C, *unconstrained_shape)."""
        return {s.name: z[:, s.offset:s.offset + s.size].reshape((z.shape[0],)
                                                                  + s.unconstrained_shape)
                for s in self.sites}

    # ------------------------------------------------------------------ the density
    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """Log density of each chain's position (C,), Jacobians included; runs the model."""
        chains = z.shape[0]
        values, log_det = {}, z.new_zeros(chains)
        for s in self.sites:
            u = z[:, s.offset:s.offset + s.size].reshape(
                (chains,) + (1,) * s.pad + s.unconstrained_shape)
            x = s.transform(u)
            values[s.name] = x
            ladj = s.transform.log_abs_det_jacobian(u, x)
            log_det = log_det + ladj.reshape(chains, -1).sum(-1)
        with poutine.block(), pyro.plate(_CHAIN_PLATE, chains, dim=-(self.nesting + 1)):
            trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(
                **self.model_kwargs)
        trace.compute_log_prob()
        total = log_det
        for name, node in trace.nodes.items():
            if site_kind(node) not in ("latent", "observed", "factor"):
                continue
            lp = node["log_prob"]
            if lp.dim() > self.nesting + 1:
                raise NotVectorizableError(
                    f"site {name!r} has log-density shape {tuple(lp.shape)} under a chain plate "
                    f"at dim {-(self.nesting + 1)}: it has batch dimensions outside its plates "
                    f"({_ADVICE})")
            lp = lp.reshape((1,) * (self.nesting + 1 - lp.dim()) + lp.shape)
            lp = lp.reshape(lp.shape[0], -1).sum(-1)
            if lp.shape[0] not in (1, chains):
                raise NotVectorizableError(f"site {name!r}: log density does not broadcast over "
                                           f"{chains} chains ({_ADVICE})")
            total = total + lp
        return total.expand(chains)

    def _eager(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            energy = -self.log_density(z)
            (grad,) = torch.autograd.grad(energy.sum(), z)
        return energy.detach(), grad

    def _trace(self, compile: bool) -> None:
        from torch.fx.experimental.proxy_tensor import make_fx

        def energy_sum(z: torch.Tensor) -> torch.Tensor:
            energy = -self.log_density(z)
            return energy.sum(), energy

        def value_and_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            grad, energy = torch.func.grad(energy_sum, has_aux=True)(z)
            return energy, grad

        probe = self._probe_points(2)
        try:
            with pyro.validation_enabled(False):
                graph = make_fx(value_and_grad)(probe[0].clone())
            graph.graph.eliminate_dead_code()
            graph.recompile()
        except Exception as error:  # noqa: BLE001 - any tracing failure: keep the eager path
            warnings.warn(f"vectorised MCMC: the potential could not be traced "
                          f"({type(error).__name__}: {error}); running the batched Pyro model "
                          "at every step instead", RuntimeWarning, stacklevel=3)
            return
        for z in probe:
            want_e, want_g = self._eager(z)
            got_e, got_g = graph(z)
            if not (torch.allclose(got_e, want_e, rtol=1e-4, atol=1e-4, equal_nan=True)
                    and torch.allclose(got_g, want_g, rtol=1e-4, atol=1e-4, equal_nan=True)):
                warnings.warn("vectorised MCMC: the traced potential disagrees with the model "
                              "(Python control flow on tensor values?); running the batched "
                              "Pyro model at every step instead", RuntimeWarning, stacklevel=3)
                return
        fn: Callable[..., Any] = graph
        if compile:
            fn = torch.compile(graph, dynamic=False, fullgraph=True)
        self._fn = fn
        self.traced = True

    def _probe_points(self, count: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(12345)
        return [(torch.rand(self.num_chains, self.dim, generator=generator) * 2 - 1)
                .to(self.dtype) for _ in range(count)]

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Potential energies (C,) and their gradients (C, D) at positions ``z`` (C, D)."""
        return self._fn(z)

    # ------------------------------------------------------------------ start and output
    def initial_positions(self, init_strategy: str | Mapping[str, Any],
                          seeds: list[int]) -> torch.Tensor:
        """One starting point per chain (C, D), chain ``c`` drawn with ``seeds[c]``.

        Uses Pyro's ``initialize_model`` (which retries until the potential is finite) with the
        zoo's init strategies, so chains start where the sequential runner's would.
        """
        rows = []
        strategy = make_init_strategy(init_strategy)
        for seed in seeds:
            pyro.set_rng_seed(seed)
            params, _, _, _ = initialize_model(self.model, model_kwargs=self.model_kwargs,
                                               init_strategy=strategy)
            rows.append(torch.cat([params[s.name].detach().reshape(-1).to(self.dtype)
                                   for s in self.sites]))
        z = torch.stack(rows)
        energy, grad = self._eager(z)
        if not bool(torch.isfinite(energy).all() & torch.isfinite(grad).all()):
            raise NotVectorizableError(
                "the batched potential is not finite at starting points where Pyro's is; the "
                f"model does not broadcast over a chain dimension ({_ADVICE})")
        self._check_against_pyro(z[:1])
        return z

    def _check_against_pyro(self, z: torch.Tensor) -> None:
        """Raise if the batched potential of one chain differs from Pyro's own potential."""
        pyro.set_rng_seed(0)
        _, potential_fn, _, _ = initialize_model(self.model, model_kwargs=self.model_kwargs)
        params = {name: value[0] for name, value in self.unpack(z).items()}
        want = float(potential_fn(params))
        got = float(self._eager(z)[0][0])
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-3):
            raise NotVectorizableError(
                f"the model evaluated under a chain plate gives potential {got:.6g}, Pyro's "
                f"potential is {want:.6g}: it does not broadcast over a leading chain "
                f"dimension ({_ADVICE})")

    def constrained(self, z: torch.Tensor) -> dict[str, np.ndarray]:
        """Flat positions (C, S, D) -> constrained draws per site, arrays (C, S, *shape)."""
        chains, draws = z.shape[0], z.shape[1]
        flat = z.reshape(chains * draws, self.dim)
        out = {}
        with torch.no_grad():
            for s in self.sites:
                u = flat[:, s.offset:s.offset + s.size].reshape((-1,) + s.unconstrained_shape)
                x = s.transform(u)
                out[s.name] = x.reshape((chains, draws) + s.shape).cpu().numpy()
        return out
