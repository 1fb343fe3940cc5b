"""Errors raised by the inference drivers.

Usage::

    from inference.errors import DivergenceError
    try:
        fit_svi(model, kwargs)
    except DivergenceError as err:
        print(err.step, err.loss)
"""

from __future__ import annotations


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite loss (or gradient); the last finite state was kept.

    ``step`` is the (0-based) step whose loss was not finite and ``loss`` its value. When raised
    by :func:`inference.svi.fit_svi` the Pyro parameter store holds the parameters from before
    that step (and the checkpoint, if one was configured, was written with them).
    """

    def __init__(self, step: int, loss: float, detail: str = "") -> None:
        self.step = step
        self.loss = loss
        message = f"SVI diverged at step {step}: loss = {loss}"
        if detail:
            message += f" ({detail})"
        message += "; the parameters from before this step were kept"
        super().__init__(message)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run between two steps; its state was kept.

    ``step`` steps were done of ``total``; ``checkpoint`` is the file holding the state (or
    ``None`` when the run had no checkpoint path). A ``KeyboardInterrupt``, so code that does not
    know it still sees an interrupt.
    """

    def __init__(self, step: int, total: int, checkpoint: str | None = None) -> None:
        self.step, self.total, self.checkpoint = step, total, checkpoint
        kept = f"; checkpoint kept in {checkpoint}" if checkpoint else ""
        super().__init__(f"interrupted after step {step} of {total}{kept}")
