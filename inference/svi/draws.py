"""Posterior draws from a trained guide, and the guide's parameters as numpy arrays.

Usage::

    from inference.svi.draws import draw_posterior, guide_params
    draws = draw_posterior(model, guide, {"y": y}, latent=["mu"], deterministic=["mu2"],
                           num_draws=1000)
    draws["mu"].shape          # (1, 1000)
    guide_params(guide)        # {"AutoNormal.locs.mu": array(...), ...}
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyro
import torch
from pyro.infer import Predictive

from inference.guides import init_to_feasible_shape
from inference.sites import model_trace

__all__ = ["draw_posterior", "guide_params", "DRAW_CHUNK"]

#: posterior draws are taken from the guide this many at a time (bounds memory)
DRAW_CHUNK = 500


def draw_posterior(model: Callable[..., Any], guide: Callable[..., Any],
                   model_kwargs: Mapping[str, Any], latent: Sequence[str],
                   deterministic: Sequence[str], num_draws: int,
                   chunk_size: int = DRAW_CHUNK) -> dict[str, np.ndarray]:
    """``num_draws`` joint draws shaped (1, draws, ...): latents from the guide, then
    deterministic sites from the model conditioned on each draw.

    Latent draws run only the *guide* under a vectorised particle plate
    (``pyro.infer.Predictive(guide, parallel=True)``, falling back to one draw at a time with
    a warning); the model is not run over all draws at once because models broadcast over
    leading batch dims by the zoo's own convention, which need not agree with Pyro's padding
    of particle dims. Deterministic sites are computed by ``Predictive(model,
    posterior_samples=...)`` one draw at a time. Every latent site must be in the guide.
    Usage: see the module docstring.
    """
    kwargs = dict(model_kwargs)
    # shapes of the latents from one guide run (cheap next to the model on large data); the
    # model is traced only when deterministic sites are asked for
    shapes: dict[str, tuple[int, ...]] = {}
    if latent:
        with torch.no_grad():
            guide_trace = model_trace(guide, kwargs)
        missing = [s for s in latent if s not in guide_trace.nodes]
        if missing:
            raise ValueError(f"the guide does not sample the model's latent site(s) {missing}; "
                             "a guide must cover every latent site of the model")
        shapes.update({s: tuple(guide_trace.nodes[s]["value"].shape) for s in latent})
    if deterministic:
        ref = model_trace(model, kwargs, init_strategy=init_to_feasible_shape)
        shapes.update({s: tuple(ref.nodes[s]["value"].shape) for s in deterministic})
    pieces: dict[str, list[torch.Tensor]] = {s: [] for s in latent}
    parallel = True
    done = 0
    while done < num_draws and latent:
        n = min(chunk_size, num_draws - done)
        try:
            with torch.no_grad():
                out = Predictive(guide, num_samples=n, parallel=parallel,
                                 return_sites=list(latent))(**kwargs)
        except (RuntimeError, ValueError, IndexError) as err:
            if not parallel:
                raise
            warnings.warn(f"vectorised guide draws failed ({type(err).__name__}: {err}); "
                          "drawing one at a time", RuntimeWarning, stacklevel=3)
            parallel = False
            continue
        missing = [s for s in latent if s not in out]
        if missing:
            raise ValueError(f"the guide does not sample the model's latent site(s) {missing}; "
                             "a guide must cover every latent site of the model")
        for s in latent:
            value = out[s].detach()
            # Predictive pads the draw dimension with singleton plate dims: drop them
            if value.numel() == n * math.prod(shapes[s]):
                value = value.reshape((n,) + shapes[s])
            pieces[s].append(value)
        done += n
    draws = {s: torch.cat(v) for s, v in pieces.items()}
    if deterministic:
        with torch.no_grad():
            det = Predictive(model, posterior_samples=draws, parallel=False,
                             return_sites=list(deterministic))(**kwargs)
        for s in deterministic:
            value = det[s].detach()
            if value.numel() == num_draws * math.prod(shapes[s]):
                value = value.reshape((num_draws,) + shapes[s])
            draws[s] = value
    return {s: v.cpu().numpy()[None] for s, v in draws.items()}


def guide_params(guide: Callable[..., Any]) -> dict[str, np.ndarray]:
    """Every parameter in Pyro's param store, plus the guide's buffers when it is a module
    (e.g. the Laplace Gaussian's), as numpy arrays by name.

    Usage: ``guide_params(result.fitted["guide"])["AutoNormal.locs.mu"]``.
    """
    store = pyro.get_param_store()
    params = {name: store[name].detach().cpu().numpy() for name in store.keys()}
    if isinstance(guide, torch.nn.Module):
        for name, buf in guide.named_buffers():
            params[f"{type(guide).__name__}.{name}"] = buf.detach().cpu().numpy()
    return params
