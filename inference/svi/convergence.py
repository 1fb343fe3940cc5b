"""Convergence detection for stochastic optimisation: R-hat across windows of the iterates.

With a constant step size, SGD iterates reach a stationary distribution around the optimum
instead of the optimum itself. Following Dhaka et al. (2020, "Robust, accurate stochastic
optimization for variational inference") and Welandawe et al. (2022), the last ``window``
iterates are cut into ``num_splits`` consecutive pieces treated as chains; when the largest
R-hat over all parameters is below ``threshold`` the iterates no longer drift, and their mean
over the window (iterate averaging, Polyak and Juditsky 1992) is the estimate to keep.

On ill-conditioned objectives at small step sizes the iterates along flat directions move so
slowly that R-hat stays high long after the objective has stopped improving. When losses are
given, the window is also stationary when the mean loss of its second half is not lower than
that of its first half by more than ``z`` standard errors (a relative-ELBO-change test in the
spirit of Stan's ADVI, with the tolerance set by the Monte Carlo noise of the ELBO rather than
a fixed 1 %). ``reason`` says which test fired.

Why by hand: ``arviz.rhat`` handles one variable per call (a Python loop over thousands of
flow weights at every check); this is the classic split R-hat (Gelman et al., BDA3 11.4),
vectorised over parameters, in a few lines.

Usage::

    from inference.svi.convergence import StationarityDetector
    detector = StationarityDetector(window=400)
    for step in range(10_000):
        params = sgd_step()                       # a flat numpy vector
        if detector.update(params):
            break
    detector.converged, detector.rhat, detector.average()   # True, ~1.0, the averaged iterate
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

__all__ = ["StationarityDetector", "split_rhat"]


def split_rhat(draws: np.ndarray) -> np.ndarray:
    """Classic R-hat of ``draws`` shaped ``(chains, draws, params)``, one per parameter.

    A parameter that does not vary at all within or between chains gets R-hat 1.

    Usage: ``split_rhat(np.random.randn(4, 100, 3))`` is close to 1 everywhere.
    """
    draws = np.asarray(draws, dtype=float)
    m, n = draws.shape[0], draws.shape[1]
    chain_means = draws.mean(axis=1)
    within = draws.var(axis=1, ddof=1).mean(axis=0)
    between = n * chain_means.var(axis=0, ddof=1) if m > 1 else np.zeros_like(within)
    var_plus = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        rhat = np.sqrt(var_plus / within)
    return np.where(within > 0, rhat, np.where(between > 0, np.inf, 1.0))


class StationarityDetector:
    """Says when a stream of parameter vectors has become stationary (see module docstring).

    ``window`` iterates are kept; after each ``check_every`` updates (once the window is
    full) the largest split R-hat over the parameters is compared with ``threshold``.
    """

    def __init__(self, window: int = 400, num_splits: int = 4, threshold: float = 1.1,
                 check_every: int = 100, z: float = 2.0) -> None:
        if window < 2 * num_splits or num_splits < 2:
            raise ValueError(f"window ({window}) must hold at least 2 iterates per split and "
                             f"num_splits ({num_splits}) must be at least 2")
        if not threshold > 1.0:
            raise ValueError(f"threshold must be > 1, got {threshold!r}")
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every!r}")
        self.window, self.num_splits = int(window), int(num_splits)
        self.threshold, self.check_every = float(threshold), int(check_every)
        self.z = float(z)
        self._iterates: deque[np.ndarray] = deque(maxlen=self.window)
        self._losses: deque[float] = deque(maxlen=self.window)
        #: which test found the window stationary: "rhat" or "loss" (``None`` before)
        self.reason: str | None = None
        #: (first-half mean - second-half mean) / its standard error at the last check
        self.loss_z: float | None = None
        self.seen = 0
        #: the largest R-hat at the last check (``None`` before the first)
        self.rhat: float | None = None
        self.converged = False
        #: (iterate count, largest R-hat) at every check
        self.history: list[tuple[int, float]] = []

    def update(self, params: np.ndarray, loss: float | None = None) -> bool:
        """Add one iterate (and its loss); True once the window is stationary (then it
        stays True)."""
        self._iterates.append(np.asarray(params, dtype=float).ravel().copy())
        if loss is not None:
            self._losses.append(float(loss))
        self.seen += 1
        if self.converged:
            return True
        if len(self._iterates) == self.window and self.seen % self.check_every == 0:
            per = self.window // self.num_splits
            block = np.stack(list(self._iterates)[-per * self.num_splits:])
            chains = block.reshape(self.num_splits, per, -1)
            self.rhat = float(np.max(split_rhat(chains)))
            self.history.append((self.seen, self.rhat))
            if self.rhat < self.threshold:
                self.converged, self.reason = True, "rhat"
            elif len(self._losses) == self.window:
                losses = np.asarray(self._losses)
                first, second = losses[: self.window // 2], losses[self.window // 2:]
                se = math.sqrt(first.var(ddof=1) / len(first) + second.var(ddof=1) / len(second))
                gain = float(first.mean() - second.mean())
                self.loss_z = gain / se if se > 0 else (math.inf if gain > 0 else 0.0)
                if self.loss_z < self.z:
                    self.converged, self.reason = True, "loss"
        return self.converged

    def average(self) -> np.ndarray:
        """The mean of the iterates in the window (the averaged iterate)."""
        if not self._iterates:
            raise ValueError("no iterates yet")
        return np.mean(np.stack(list(self._iterates)), axis=0)
