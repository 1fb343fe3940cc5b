"""A Pyro model's log density as a function of one flat unconstrained vector, and back.

Optimisers (L-BFGS for the MAP, Pathfinder) and whitened variational fits work on a single
vector ``x`` in the unconstrained space. :class:`FlatDensity` builds that view with Pyro's own
``initialize_model`` (the potential energy with every Jacobian term, as NUTS uses it) and adds
only the flattening: ``log_prob(x)``, its gradient, the map from ``x`` to constrained site
values, and :meth:`FlatDensity.guide`, a Pyro guide for the *original* model from any
distribution over ``x``, so that PSIS diagnostics and predictive code read it like an autoguide.

Usage::

    from inference.flat import FlatDensity
    density = FlatDensity.build(model, {"y": y}, seed=0)
    x = density.initial_point()                    # (d,) unconstrained
    lp, grad = density.value_and_grad(x)           # log density and its gradient
    draws = density.constrain(torch.randn(100, density.dim))   # {site: (100, *shape)}
    guide = density.guide(torch.distributions.MultivariateNormal(x, torch.eye(density.dim)))
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from pyro.distributions.util import sum_rightmost
import torch
from pyro.infer.mcmc.util import initialize_model

__all__ = ["FlatDensity", "posterior_from_flat"]


@dataclass
class FlatDensity:
    """The unconstrained log density of a model over one flat vector (see module docstring).

    ``names``, ``shapes`` and ``sizes`` give each latent site's slice of the vector (sites in
    sorted order); ``transforms`` map constrained site values to unconstrained ones (Pyro's
    ``initialize_model`` convention; their ``.inv`` constrains).
    ``grad_evals`` counts evaluations of the gradient (and of the density with its gradient),
    ``density_evals`` those of the density alone (:meth:`log_prob_batch`).
    """

    model: Callable[..., Any]
    model_kwargs: Mapping[str, Any]
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    sizes: tuple[int, ...]
    transforms: Mapping[str, Any]
    potential_fn: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
    init_params: Mapping[str, torch.Tensor]
    dtype: torch.dtype
    event_dims: tuple[int, ...] = ()
    value_dims: tuple[int, ...] = ()
    plates: tuple[tuple[tuple[str, int, int], ...], ...] = ()
    max_plate_nesting: int = 0
    grad_evals: int = 0
    density_evals: int = 0

    @classmethod
    def build(cls, model: Callable[..., Any], model_kwargs: Mapping[str, Any] | None = None,
              *, seed: int | None = 0) -> "FlatDensity":
        """The flat density of ``model(**model_kwargs)`` (continuous latents only).

        Usage: ``FlatDensity.build(model, {"y": y})``.
        """
        kwargs = dict(model_kwargs or {})
        if seed is not None:
            pyro.set_rng_seed(seed)
        init, potential_fn, transforms, _ = initialize_model(model, model_kwargs=kwargs,
                                                             num_chains=1)
        if not init:
            raise ValueError("the model has no continuous latent sites to infer")
        names = tuple(sorted(init))
        shapes = tuple(init[n].shape for n in names)
        sizes = tuple(int(math.prod(s)) for s in shapes)
        dtypes = {init[n].dtype for n in names}
        dtype = torch.float64 if torch.float64 in dtypes else next(iter(dtypes))
        with torch.no_grad():
            trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(**kwargs)
        event_dims = tuple(int(trace.nodes[n]["fn"].event_dim) for n in names)
        value_dims = tuple(trace.nodes[n]["value"].dim() for n in names)
        plates = tuple(tuple((f.name, int(f.size), int(f.dim))
                             for f in trace.nodes[n]["cond_indep_stack"] if f.vectorized)
                       for n in names)
        nesting = max([-f.dim for node in trace.nodes.values() if node["type"] == "sample"
                       for f in node["cond_indep_stack"] if f.vectorized and f.dim is not None],
                      default=0)
        return cls(model, kwargs, names, shapes, sizes, transforms, potential_fn,
                   {n: init[n].detach() for n in names}, dtype, event_dims, value_dims,
                   plates, int(nesting))

    @property
    def dim(self) -> int:
        """Length of the flat unconstrained vector."""
        return int(sum(self.sizes))

    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Site values (unconstrained) from ``x`` of shape ``(*batch, dim)``."""
        out, start = {}, 0
        batch = x.shape[:-1]
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            out[name] = x[..., start:start + size].reshape(tuple(batch) + tuple(shape))
            start += size
        return out

    def flatten(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The flat vector from unconstrained site values (no batch dimensions)."""
        return torch.cat([values[n].reshape(-1).to(self.dtype) for n in self.names])

    def initial_point(self) -> torch.Tensor:
        """The flat vector of Pyro's initial point (``init_to_uniform`` in (-2, 2))."""
        return self.flatten(self.init_params)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Unconstrained log density (up to a constant) at ``x`` of shape ``(dim,)``.

        The model's own sites are hidden from any enclosing Pyro handler, so the density can
        be a ``pyro.factor`` of another model.
        """
        with poutine.block():
            return -self.potential_fn(self.unflatten(x))

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p(x), grad log p(x))``, both detached; counts one gradient evaluation."""
        x = x.detach().clone().requires_grad_(True)
        lp = self.log_prob(x)
        (grad,) = torch.autograd.grad(lp, x)
        self.grad_evals += 1
        return lp.detach(), grad.detach()

    def log_prob_batch(self, xs: torch.Tensor, chunk_size: int = 500) -> torch.Tensor:
        """Log density at each row of ``xs`` (shape ``(n, dim)``), without gradients.

        Vectorised over the rows with Pyro's ``vectorized_importance_weights`` (the model run
        once under a particle plate, conditioned on the rows through :meth:`guide`), which is
        tens of times faster than a loop over :meth:`log_prob`; a model that does not
        broadcast over particles falls back to the loop. Non-finite values (draws where the
        model's density is undefined) become ``-inf``.
        """
        from pyro.infer.importance import vectorized_importance_weights

        xs = xs.detach().to(self.dtype)
        pieces = []
        with torch.no_grad():
            for chunk in xs.split(chunk_size):
                n = chunk.shape[0]
                base = dist.Normal(torch.zeros(self.dim, dtype=self.dtype),
                                   torch.ones(self.dim, dtype=self.dtype)).to_event(1)
                padded = chunk.reshape((n,) + (1,) * self.max_plate_nesting + (self.dim,))
                guide = poutine.condition(self.guide(base), data={"_flat_latent": padded})
                try:
                    log_w, _, _ = vectorized_importance_weights(
                        self.model, guide, num_samples=n,
                        max_plate_nesting=self.max_plate_nesting, normalized=False,
                        **self.model_kwargs)
                    pieces.append(log_w.reshape(n) + base.log_prob(chunk))
                except (RuntimeError, ValueError):
                    pieces.append(torch.stack([self.log_prob(x) for x in chunk]))
        out = torch.cat(pieces)
        self.density_evals += int(xs.shape[0])
        return torch.where(torch.isfinite(out), out, torch.full_like(out, -math.inf))

    def hessian(self, x: torch.Tensor) -> torch.Tensor:
        """Hessian of the log density at ``x`` (``(dim, dim)``), by autograd; counted as
        ``dim`` gradient evaluations (one Hessian-vector product per column)."""
        h = torch.autograd.functional.hessian(self.log_prob, x.detach().clone())
        self.grad_evals += self.dim
        return 0.5 * (h + h.T)

    def constrain(self, xs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Constrained site values from flat unconstrained ``xs`` of shape ``(*batch, dim)``."""
        values = self.unflatten(xs)
        return {n: (self.transforms[n].inv(v) if n in self.transforms else v)
                for n, v in values.items()}

    def guide(self, q: torch.distributions.Distribution) -> Callable[..., None]:
        """A Pyro guide for the model whose latents are the pushforward of ``q`` over ``x``.

        ``q`` is a distribution with event shape ``(dim,)`` (a Normal, a mixture, a flow).
        The guide samples the flat vector as an auxiliary site and each latent site as a
        ``Delta`` carrying the log-Jacobian of its constraining transform, exactly as Pyro's
        ``AutoContinuous`` does, so ``log q`` of the constrained values is correct for PSIS.

        Usage: ``psis_diagnostic(model, density.guide(q), **model_kwargs)``.
        """
        density = self

        def flat_guide(*args: Any, **kwargs: Any) -> None:
            x = pyro.sample("_flat_latent", q, infer={"is_auxiliary": True})
            batch = tuple(x.shape[:-1])
            pos = 0
            plates = {}
            for name, shape, size, event_dim, value_dim, frames in zip(
                    density.names, density.shapes, density.sizes, density.event_dims,
                    density.value_dims, density.plates):
                # as AutoContinuous._unpack_latent: the site's own plate dims overlap the
                # trailing (size-1) batch dims that particle plates give the flat latent
                u_event = event_dim + len(shape) - value_dim
                try:
                    full = torch.broadcast_shapes(tuple(shape), batch + (1,) * u_event)
                except RuntimeError:
                    full = batch + tuple(shape)
                u = x[..., pos:pos + size].reshape(full)
                pos += size
                to_unconstrained = density.transforms.get(name)
                if to_unconstrained is None:
                    value, log_density = u, torch.zeros(u.shape[:u.dim() - event_dim],
                                                        dtype=u.dtype)
                else:
                    value = to_unconstrained.inv(u)
                    # as pyro's AutoContinuous: log q(value) = log q(u) - log|d value / d u|
                    log_density = to_unconstrained.log_abs_det_jacobian(value, u)
                    log_density = sum_rightmost(log_density,
                                                log_density.dim() - value.dim() + event_dim)
                with contextlib.ExitStack() as stack:  # the model's plates, as AutoContinuous
                    for frame in frames:
                        if frame not in plates:
                            plates[frame] = pyro.plate(frame[0], frame[1], dim=frame[2])
                        stack.enter_context(plates[frame])
                    pyro.sample(name, dist.Delta(value, log_density=log_density,
                                                 event_dim=event_dim))

        flat_guide.__qualname__ = f"flat_guide({type(q).__name__})"
        return flat_guide


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Any:
    """Torch's default dtype set to ``dtype`` inside the block (restored after)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class InDefaultDtype(dist.TorchDistribution):
    """``base`` with every sample and log density computed under torch's default ``dtype``.

    Pyro's AffineAutoregressive inverts itself with tensors made in the default dtype
    (float32), which fails for a float64 flow; this wrapper lets a float64 IAF be scored
    wherever Pyro scores it (PSIS, traces). Usage: ``InDefaultDtype(q, torch.float64)``.
    """

    arg_constraints: dict = {}

    def __init__(self, base: Any, dtype: torch.dtype) -> None:
        self.base, self.dtype = base, dtype
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self) -> Any:
        return self.base.support

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with default_dtype(self.dtype):
            return self.base.sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        with default_dtype(self.dtype):
            return self.base.log_prob(value)

    def expand(self, batch_shape: Any, _instance: Any = None) -> "InDefaultDtype":
        return InDefaultDtype(self.base.expand(batch_shape), self.dtype)


def posterior_from_flat(density: FlatDensity, xs: torch.Tensor, *, log_likelihood: bool = True
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None,
                                   dict[str, np.ndarray] | None]:
    """``(posterior, log_likelihood, observed_data)`` of a result from flat draws ``(n, d)``.

    The posterior holds every latent site constrained and every deterministic site, shaped
    ``(1, n, ...)`` as the other variational methods' draws are; the pointwise
    log-likelihood and the observed data are computed as the MCMC driver computes them.

    Usage: ``posterior, loglik, observed = posterior_from_flat(density, fit.draws)``.
    """
    from inference.log_likelihood import observed_data, pointwise_log_likelihood
    from inference.predictive import posterior_predictive, site_names

    with torch.no_grad():
        constrained = density.constrain(xs.detach())
    posterior = {k: v.numpy()[None] for k, v in constrained.items()}
    kinds = site_names(density.model, density.model_kwargs)
    if kinds["deterministic"]:
        posterior.update(posterior_predictive(density.model, posterior, density.model_kwargs,
                                              return_sites=kinds["deterministic"],
                                              chunk_size=1000, resample_observed=False))
    loglik, observed = None, None
    if log_likelihood and kinds["observed"]:
        latent = {k: posterior[k] for k in kinds["latent"] if k in posterior}
        loglik = pointwise_log_likelihood(density.model, latent, density.model_kwargs)
        observed = observed_data(density.model, density.model_kwargs) or None
    return posterior, loglik, observed
