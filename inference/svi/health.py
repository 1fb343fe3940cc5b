"""Reads a finished SVI loss trace for the two ways a run goes wrong without diverging.

A run can end far above the best loss it reached (a learning rate too high: the iterates
jumped out of a good region and never came back) or still falling steeply (too few steps for
the problem). Neither raises; both deserve one line at the end of the run naming what happened.

The noise of a stochastic loss is measured as the spread of the loss around its running mean
over the last window (a running median, robust to single wild steps), so the thresholds scale with the estimator's own Monte Carlo error.

Usage::

    from inference.svi.health import loss_problems
    for message in loss_problems(result.loss_history):
        print("warning:", message)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: the smoothed final loss may sit this many noise units above the best before it is flagged
FAR_ABOVE_NOISE = 5.0
#: ... and this fraction of the loss's own size (a loss of 1e6 jittering by 1e3 is fine)
FAR_ABOVE_RELATIVE = 0.05
#: the last quarter of the run may lower the smoothed loss by this many noise units
STILL_FALLING_NOISE = 5.0
#: ... and by this fraction of the loss's size before the run counts as unfinished
STILL_FALLING_RELATIVE = 0.01


def _smooth(losses: np.ndarray, window: int) -> np.ndarray:
    """Running median: one wild step (a loss of 1e25 at step 2) must not move the level."""
    return np.median(np.lib.stride_tricks.sliding_window_view(losses, window), axis=-1)


def loss_problems(losses: Sequence[float], min_steps: int = 40) -> list[str]:
    """One message per problem found in ``losses`` (empty for a healthy or very short run).

    * ``ended far above its best``: the running mean at the end exceeds the best running mean
      (running medians) by more than ``FAR_ABOVE_NOISE`` noise units and ``FAR_ABOVE_RELATIVE`` of its size;
    * ``still falling``: the running mean fell over the last quarter of the run by more than
      ``STILL_FALLING_NOISE`` noise units and ``STILL_FALLING_RELATIVE`` of its size.
    """
    values = np.asarray(losses, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < min_steps:
        return []
    window = min(200, max(5, values.size // 20))
    smoothed = _smooth(values, window)
    # the level's Monte Carlo error: the spread of the last window about its median, robustly
    spread = 1.4826 * float(np.median(np.abs(values[-window:] - smoothed[-1])))
    noise = spread / np.sqrt(window) + 1e-12
    final, best = float(smoothed[-1]), float(smoothed.min())
    scale = max(abs(best), abs(final), 1e-12)
    problems = []
    gap = final - best
    if gap > FAR_ABOVE_NOISE * noise and gap > FAR_ABOVE_RELATIVE * scale:
        best_step = int(np.argmin(smoothed)) + window // 2  # the middle of the best window
        problems.append(f"the loss ended at {final:.4g}, far above its best {best:.4g} (near "
                        f"step {best_step}); the learning rate may be too high")
    else:
        quarter = smoothed[-max(2, smoothed.size // 4)]
        drop = quarter - final
        if drop > STILL_FALLING_NOISE * noise and drop > STILL_FALLING_RELATIVE * scale:
            problems.append(f"the loss was still falling at the end ({quarter:.4g} -> "
                            f"{final:.4g} over the last quarter of the run); more steps may "
                            f"change the result")
    return problems
