"""L-BFGS on a flat log density, keeping the whole optimisation path.

The MAP initialisation of the converging SVI path and Pathfinder both maximise
``log p(x)`` over the flat unconstrained vector of :class:`inference.flat.FlatDensity` with
SciPy's L-BFGS-B (gradients from torch autograd). ``torch.optim.LBFGS`` was tried first: its
line search gives up on the badly scaled posteriordb regressions (earnings: gradients of 1e4
left at the "optimum"), where SciPy's converges. Pathfinder needs every iterate with its
gradient; :func:`lbfgs_path` records them in SciPy's per-iteration callback from a cache of
the objective's evaluations (the line search evaluates the point it accepts, so nothing is
computed twice).

Usage::

    from inference.flat import FlatDensity
    from inference.lbfgs import lbfgs_path
    density = FlatDensity.build(model, {"y": y})
    path = lbfgs_path(density, density.initial_point())
    path.xs[-1], path.converged, path.grad_evals     # the MAP, whether it got there, its cost
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize

from inference.flat import FlatDensity

__all__ = ["LBFGSPath", "lbfgs_path"]


@dataclass(frozen=True)
class LBFGSPath:
    """The iterates of one L-BFGS run: ``xs`` ``(L+1, d)`` (the start first), their log
    densities ``log_probs`` ``(L+1,)`` and gradients of the log density ``grads`` ``(L+1, d)``;
    ``converged`` says a tolerance (not the iteration cap) stopped it, ``message`` which one;
    ``grad_evals`` counts every evaluation of the density with its gradient."""

    xs: torch.Tensor
    log_probs: torch.Tensor
    grads: torch.Tensor
    converged: bool
    message: str
    grad_evals: int

    @property
    def num_iters(self) -> int:
        """L-BFGS iterations taken."""
        return int(self.xs.shape[0]) - 1


def lbfgs_path(density: FlatDensity, x0: torch.Tensor, *, history_size: int = 6,
               max_iters: int = 1000, tol_rel_obj: float = 1e-12, tol_grad: float = 1e-8
               ) -> LBFGSPath:
    """Maximise ``density.log_prob`` from ``x0`` with L-BFGS; return the whole path.

    Stops when the relative change of the objective falls below ``tol_rel_obj`` or the largest
    projected gradient component below ``tol_grad`` (``converged``), or after ``max_iters``
    iterations or at a failed line search (not converged). A non-finite density at the start
    is a ``ValueError``; non-finite values met by the line search are treated as +inf loss.

    Usage: ``path = lbfgs_path(density, density.initial_point(), max_iters=200)``.
    """
    cache: dict[bytes, tuple[float, np.ndarray]] = {}
    dtype = density.dtype

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        lp, grad = density.value_and_grad(torch.as_tensor(x, dtype=dtype))
        value, g = float(lp), grad.numpy().astype(np.float64)
        cache[np.asarray(x, dtype=np.float64).tobytes()] = (value, g)
        if not (math.isfinite(value) and np.isfinite(g).all()):
            return math.inf, np.zeros_like(g)
        return -value, -g

    start = np.asarray(x0.detach().numpy(), dtype=np.float64)
    lp0, g0 = objective(start)
    if not math.isfinite(lp0):
        raise ValueError("the log density or its gradient is not finite at the initial point")
    xs, lps, grads = [start.copy()], [-lp0], [-g0]

    def record(x: np.ndarray) -> None:
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key not in cache:  # not expected: L-BFGS-B accepts a point it evaluated
            objective(x)
        value, g = cache[key]
        xs.append(np.array(x, dtype=np.float64))
        lps.append(value)
        grads.append(g)
        cache.clear()

    before = density.grad_evals - 1
    out = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", callback=record,
                            options={"maxcor": history_size, "maxiter": max_iters,
                                     "ftol": tol_rel_obj, "gtol": tol_grad})
    message = str(out.message)
    converged = bool(out.success) and "ABNORMAL" not in message.upper()
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    return LBFGSPath(as_tensor(xs), as_tensor(lps), as_tensor(grads), converged, message,
                     density.grad_evals - before)
