"""Variational objectives for SVI by name: thin wrappers over Pyro's ELBO classes.

Usage::

    from inference.objectives import make_elbo, ELBO_NAMES
    elbo = make_elbo("trace", num_particles=8, vectorize_particles=True)
    iwae = make_elbo("iwae", num_particles=16)        # importance-weighted bound, K = 16

Names:

* ``trace``      -- ``Trace_ELBO``: the standard reparameterised / score-function ELBO;
* ``meanfield``  -- ``TraceMeanField_ELBO``: analytic KL terms where Pyro knows them;
* ``tracegraph`` -- ``TraceGraph_ELBO``: Rao-Blackwellised score-function terms (discrete latents);
* ``iwae``       -- ``RenyiELBO(alpha=0)``, which is the importance-weighted bound of Burda et al.
  with K = ``num_particles`` samples (K = 1 is the ordinary ELBO);
* ``renyi``      -- ``RenyiELBO(alpha=renyi_alpha)`` (alpha != 1).
"""

from __future__ import annotations

from typing import Any

from pyro.infer import (ELBO, RenyiELBO, Trace_ELBO, TraceGraph_ELBO,
                        TraceMeanField_ELBO)

__all__ = ["ELBO_NAMES", "make_elbo"]

ELBO_NAMES: tuple[str, ...] = ("trace", "meanfield", "tracegraph", "iwae", "renyi")


def make_elbo(name: str, *, num_particles: int = 1, vectorize_particles: bool = False,
              renyi_alpha: float = 0.0, max_plate_nesting: float = float("inf")) -> ELBO:
    """The Pyro ELBO object named ``name`` (see the module docstring).

    ``max_plate_nesting`` may be left at infinity, in which case Pyro guesses it from a trace.
    Usage: ``make_elbo("meanfield", num_particles=4)``.
    """
    if name not in ELBO_NAMES:
        raise ValueError(f"unknown elbo {name!r}; known objectives: {list(ELBO_NAMES)}")
    if int(num_particles) != num_particles or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")
    common: dict[str, Any] = dict(num_particles=int(num_particles),
                                  vectorize_particles=bool(vectorize_particles),
                                  max_plate_nesting=max_plate_nesting)
    if name == "trace":
        return Trace_ELBO(**common)
    if name == "meanfield":
        return TraceMeanField_ELBO(**common)
    if name == "tracegraph":
        return TraceGraph_ELBO(**common)
    if name == "iwae":
        return RenyiELBO(alpha=0.0, **common)
    if renyi_alpha == 1:
        raise ValueError("renyi_alpha must differ from 1 (alpha = 1 is the ordinary ELBO: "
                         "use elbo='trace')")
    return RenyiELBO(alpha=float(renyi_alpha), **common)
