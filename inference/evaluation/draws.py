"""Posterior draws for evaluation: the result's own draws, or fresh draws from its guide.

A result either holds draws of every latent site (MCMC; SVI with ``num_posterior_draws``) or a
fitted guide (``result.fitted["guide"]``, live or rebuilt by :func:`zoo.reload.load_run`).
Draws are flattened over chains, thinned evenly to ``num_draws``, and drawn from a guide in
chunks with a fixed seed that leaves torch's global random state alone.

Usage::

    from inference.evaluation.draws import posterior_draws
    draws = posterior_draws(result, net.model, test_kwargs, ["w0", "b0"], num_draws=200)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["posterior_draws"]


def posterior_draws(result: Any, model: Callable[..., Any], kwargs: Mapping[str, Any],
                    sites: Sequence[str], *, num_draws: int = 200, seed: int = 0,
                    guide: Callable[..., Any] | None = None, chunk_size: int = 50
                    ) -> dict[str, np.ndarray]:
    """Draws of ``sites`` shaped ``(S, ...)`` with ``S <= num_draws``.

    From ``result.posterior`` when it holds every site (evenly thinned over chains and
    draws), else from ``guide`` (default ``result.fitted["guide"]``) run on ``kwargs``
    (:func:`inference.svi.draws.draw_posterior`, seeded without touching the global state).
    """
    posterior = (result.posterior if result is not None else None) or {}
    if sites and all(s in posterior for s in sites):
        flat = {s: np.asarray(posterior[s]).reshape((-1,) + np.shape(posterior[s])[2:])
                for s in sites}
        total = next(iter(flat.values())).shape[0]
        index = np.unique(np.linspace(0, total - 1, min(num_draws, total)).round().astype(int))
        return {s: v[index] for s, v in flat.items()}
    fitted = (result.fitted if result is not None else None) or {}
    guide = guide if guide is not None else fitted.get("guide")
    if guide is None:
        missing = [s for s in sites if s not in posterior]
        raise ValueError(f"the result has no draws of {missing} and no fitted guide to draw "
                         "them from: fit with num_posterior_draws > 0, or load the run with "
                         "zoo.reload.load_run, which rebuilds its guide")
    from inference.svi.draws import draw_posterior

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        draws = draw_posterior(model, guide, kwargs, list(sites), [], num_draws,
                               chunk_size=chunk_size)
    return {s: v[0] for s, v in draws.items()}
