"""Stochastic variational inference: the :func:`fit_svi` driver and the steppable engine.

* :mod:`inference.svi.fit` -- :func:`fit_svi`, settings in, :class:`InferenceResult` out;
* :mod:`inference.svi.engine` -- :class:`SVIEngine`, ``init`` / ``step`` / ``run``;
* :mod:`inference.svi.callbacks` -- early stopping, checkpoints, progress bar for ``run``;
* :mod:`inference.svi.compiled` -- the ELBO's loss and gradients traced once and compiled
  (``compile_elbo=True``);
* :mod:`inference.svi.draws` -- posterior draws from a trained guide;
* :mod:`inference.svi.inputs` -- device placement and mini-batch checks.

Usage::

    from inference.svi import SVIEngine, fit_svi
    result = fit_svi(model, {"y": y}, guide="auto_normal", num_steps=1000, lr=0.01)
    engine = SVIEngine.build(model, {"y": y}, guide="auto_normal", lr=0.01)
    for _ in range(100):
        loss = engine.step()
"""

from inference.svi.engine import SVIEngine
from inference.svi.fit import fit_svi

__all__ = ["SVIEngine", "fit_svi"]
