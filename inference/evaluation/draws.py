"""Posterior draws for evaluation: the result's own draws, or fresh draws from its guide.

A result either holds draws of every latent site (MCMC; SVI with ``num_posterior_draws``) or a
fitted guide (``result.fitted["guide"]``, live or rebuilt by :func:`zoo.reload.load_run`).
Draws are flattened over chains, thinned evenly to ``num_draws``, and drawn from a guide in
chunks with a fixed seed that leaves torch's global random state alone.

Usage::

    from inference.evaluation.draws import posterior_draws
    draws = posterior_draws(result, ["w0", "b0"], num_draws=200, seed=0)   # {"w0": (200, ...)}
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["posterior_draws", "guide_draws"]


def guide_draws(guide: Callable[..., Any], kwargs: Mapping[str, Any], sites: Sequence[str],
                num_draws: int, *, chunk_size: int = 50, seed: int = 0
                ) -> dict[str, np.ndarray]:
    """``num_draws`` draws of ``sites`` from ``guide(**kwargs)``, shaped ``(num_draws, ...)``."""
    from pyro.infer import Predictive

    from inference.sites import quiet_trace

    shapes = {}
    pieces: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = quiet_trace(guide, kwargs)
        for s in sites:
            if s not in probe.nodes:
                raise ValueError(f"the guide does not sample the latent site {s!r}")
            shapes[s] = tuple(probe.nodes[s]["value"].shape)
        done = 0
        while done < num_draws:
            n = min(chunk_size, num_draws - done)
            with torch.no_grad():
                out = Predictive(guide, num_samples=n, parallel=True,
                                 return_sites=list(sites))(**kwargs)
            for s in sites:
                pieces[s].append(out[s].detach().cpu().reshape((n,) + shapes[s]).numpy())
            done += n
    return {s: np.concatenate(v) for s, v in pieces.items()}


def posterior_draws(result: Any, sites: Sequence[str], *, num_draws: int = 200, seed: int = 0,
                    guide: Callable[..., Any] | None = None,
                    guide_kwargs: Mapping[str, Any] | None = None,
                    chunk_size: int = 50) -> dict[str, np.ndarray]:
    """Draws of ``sites`` shaped ``(S, ...)`` with ``S <= num_draws``.

    From ``result.posterior`` when it holds every site (evenly thinned over chains and
    draws), else from ``guide`` (default ``result.fitted["guide"]``) run on ``guide_kwargs``.
    """
    posterior = result.posterior or {}
    if sites and all(s in posterior for s in sites):
        flat = {s: np.asarray(posterior[s]).reshape((-1,) + np.shape(posterior[s])[2:])
                for s in sites}
        total = next(iter(flat.values())).shape[0]
        index = np.unique(np.linspace(0, total - 1, min(num_draws, total)).round().astype(int))
        return {s: v[index] for s, v in flat.items()}
    guide = guide if guide is not None else (result.fitted or {}).get("guide")
    if guide is None:
        missing = [s for s in sites if s not in posterior]
        raise ValueError(f"the result has no draws of {missing} and no fitted guide to draw "
                         "them from: fit with num_posterior_draws > 0, or load the run with "
                         "zoo.reload.load_run, which rebuilds its guide")
    return guide_draws(guide, guide_kwargs or {}, sites, num_draws, chunk_size=chunk_size,
                       seed=seed)
