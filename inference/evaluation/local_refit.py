"""Held-out evaluation by refitting local latents: fit a guide over the local latents of
held-out data (global latents fixed by the caller), then importance-sample ``log p(x_i)``.

For models whose guide is not amortised (one free variational factor per training point, as
in deep exponential families), held-out data have no posterior until one is fitted. The
caller fixes the global latents (e.g. at their posterior mean) in the model it passes, so every
remaining latent is local; this module fits ``guide`` to that model by SVI and uses it as the
proposal of :func:`inference.evaluation.importance.heldout_importance` (per-point log-likelihood,
held-out ELBO, PSIS k-hat). Pyro's param store is left as it was
(:func:`preserved_param_store`), and the global RNG too.

Usage::

    from inference.evaluation.local_refit import heldout_local_fit, preserved_param_store
    with preserved_param_store():
        metrics, engine = heldout_local_fit(local_model, local_guide, {"x": x_test},
                                            num_steps=1500, is_samples=1000)
    metrics["test_ll"], metrics["test_elbo"], metrics["test_ll_khat"]
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Mapping

import pyro

__all__ = ["heldout_local_fit", "preserved_param_store"]

#: objectives the local fit may reuse from training; others (iwae, renyi) fall back to trace
_LOCAL_ELBOS = ("trace", "meanfield", "tracegraph")


@contextlib.contextmanager
def preserved_param_store() -> Iterator[None]:
    """Run the body on an empty param store and put the previous one back afterwards.

    Usage: ``with preserved_param_store(): fit something else``.
    """
    store = pyro.get_param_store()
    saved = store.get_state()
    store.clear()
    try:
        yield
    finally:
        store.clear()
        store.set_state(saved)


def heldout_local_fit(
    model: Callable[..., Any], guide: Callable[..., Any], kwargs: Mapping[str, Any], *,
    num_steps: int, optimizer: str = "adam", lr: float = 1e-2, elbo: str = "trace",
    is_samples: int = 1000, particle_batch: int = 500, seed: int = 0,
) -> tuple[dict[str, float], Any]:
    """Fit ``guide`` to ``model(**kwargs)`` for ``num_steps`` and importance-sample
    ``log p(x_i)`` with it; returns the metrics (:mod:`inference.evaluation.metrics` names,
    with ``eval_fit_steps``) and the SVI engine.

    Every sample site of ``model`` must be local (inside the data plate at ``dim=-1``). The
    RNG is seeded with ``seed`` for the fit and restored afterwards.
    Usage: see the module docstring.
    """
    import torch

    from inference.checkpoint import get_rng, set_rng
    from inference.evaluation.importance import heldout_importance
    from inference.objectives import make_elbo
    from inference.schedules import make_optimizer
    from inference.svi.engine import SVIEngine

    if int(num_steps) < 1:
        raise ValueError(f"num_steps of the held-out local fit must be >= 1, got {num_steps}")
    sizes = [len(v) for v in kwargs.values() if isinstance(v, torch.Tensor) and v.dim()]
    if not sizes:
        raise ValueError("heldout_local_fit needs a data tensor in kwargs")
    n = max(sizes)
    rng = get_rng()
    try:
        pyro.set_rng_seed(seed)
        objective = make_elbo(elbo if elbo in _LOCAL_ELBOS else "trace")
        engine = SVIEngine(model, guide, objective, make_optimizer(optimizer, lr=lr),
                           kwargs).init()
        engine.run(int(num_steps))
        metrics = heldout_importance(model, guide, kwargs, is_samples=is_samples,
                                     particle_batch=particle_batch, data_batch=n, seed=seed)
    finally:
        set_rng(rng)
    metrics["eval_fit_steps"] = float(engine.step_count)
    return metrics, engine
