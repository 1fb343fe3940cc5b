"""Stan-style names for posterior draws, so Pyro ports can be checked against posteriordb.

posteriordb's reference draws name every scalar of a parameter the way Stan prints it:
``mu``, ``beta[1]``, ``beta[2]``, ``Sigma[1,2]`` (1-based, comma-separated). A Pyro posterior
keeps whole sites with trailing dimensions (``beta`` shaped ``(chain, draw, 2)``). This module
turns one into the other (ArviZ has no such helper; it is a few lines).

Usage::

    import numpy as np
    from zoo.models.stan_names import to_stan_draws
    draws = to_stan_draws({"beta": np.zeros((4, 100, 2)), "sigma": np.ones((4, 100))})
    sorted(draws)        # ['beta[1]', 'beta[2]', 'sigma'], each shaped (4, 100)
"""

from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np

__all__ = ["stan_name", "to_stan_draws"]


def stan_name(site: str, index: tuple[int, ...]) -> str:
    """Stan's name for element ``index`` (0-based) of ``site``: ``stan_name("b", (0, 2)) == "b[1,3]"``."""
    if not index:
        return site
    return f"{site}[{','.join(str(i + 1) for i in index)}]"


def _event_view(site: str, arr: np.ndarray, event_dim: int | None) -> np.ndarray:
    """``arr`` as ``(chain, draw, *event)``, dropping singleton batch dims between them."""
    if arr.ndim < 2:
        raise ValueError(f"posterior site {site!r} has shape {arr.shape}; expected (chain, draw, ...)")
    if event_dim is None:
        return arr
    if event_dim < 0:
        raise ValueError(f"event_dim for site {site!r} must be >= 0, got {event_dim}")
    extra = arr.shape[2 : arr.ndim - event_dim] if arr.ndim - 2 >= event_dim else None
    if extra is None or any(size != 1 for size in extra):
        raise ValueError(
            f"posterior site {site!r} has shape {arr.shape}; expected (chain, draw) followed by "
            f"{event_dim} event dim(s), with only singleton dims in between"
        )
    event = arr.shape[arr.ndim - event_dim :] if event_dim else ()
    return arr.reshape(arr.shape[:2] + tuple(event))


def to_stan_draws(
    posterior: Mapping[str, np.ndarray], event_dims: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Split each site ``(chain, draw, *shape)`` into Stan-named ``(chain, draw)`` arrays.

    ``event_dims`` (site -> number of trailing dims that index the parameter) selects the sites
    to convert and lets singleton dims such as a vectorised plate's ``(chain, draw, 1, 2)`` be
    dropped; without it every site is converted with all its trailing dims. A site named in
    ``event_dims`` but missing from ``posterior`` raises a ``KeyError`` listing what is there.

    Example: ``to_stan_draws({"theta": a}, {"theta": 1})`` with ``a.shape == (2, 50, 8)`` gives
    ``theta[1]`` ... ``theta[8]``, each ``(2, 50)``.
    """
    sites = list(posterior) if event_dims is None else list(event_dims)
    missing = [site for site in sites if site not in posterior]
    if missing:
        raise KeyError(f"posterior lacks site(s) {missing}; it holds {sorted(posterior)}")
    out: dict[str, np.ndarray] = {}
    for site in sites:
        dims = None if event_dims is None else event_dims[site]
        arr = _event_view(site, np.asarray(posterior[site]), dims)
        for index in itertools.product(*(range(n) for n in arr.shape[2:])):
            out[stan_name(site, index)] = arr[(slice(None), slice(None)) + index]
    return out
