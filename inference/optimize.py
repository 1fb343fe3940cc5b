"""Find a mode of a model's potential by (mini-batch) gradient descent on one flat vector.

Deep ensembles train one mode per member, SWAG averages the SGD iterates around one, and the
Laplace approximation expands the potential at one. All of them minimise the per-datum
potential ``U(z) / N`` (:class:`inference.potential.Potential`: negative log joint with Pyro's
plate scaling of each mini-batch, in unconstrained space), so learning rates do not depend on
the data set's size, with a ``torch.optim`` optimiser; ``on_step`` sees each iterate.

Usage::

    from inference.optimize import minimize
    z, losses = minimize(pot, pot.initial(seed=0), optimizer="adam", lr=1e-2, num_steps=2000)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyro
import torch
from tqdm.auto import trange

from inference.potential import DivergedError, Potential

__all__ = ["minimize", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "sgd")


def minimize(potential: Potential, z0: torch.Tensor, *, optimizer: str = "adam",
             lr: float = 1e-2, momentum: float = 0.9, num_steps: int = 1000,
             lr_at: Callable[[int], float] | None = None,
             on_step: Callable[[int, torch.Tensor], None] | None = None,
             progress_bar: bool = False, desc: str = "optimise"
             ) -> tuple[torch.Tensor, np.ndarray]:
    """Minimise ``U(z) / N`` from ``z0``; returns the last iterate and the loss per step.

    ``lr_at(t)`` overrides the learning rate at step ``t`` (SWAG's constant SWA rate).
    A non-finite loss raises :class:`~inference.potential.DivergedError` naming the step.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    n = float(potential.num_data or 1)
    z = z0.detach().clone().requires_grad_(True)
    opt = (torch.optim.Adam([z], lr=lr) if optimizer == "adam"
           else torch.optim.SGD([z], lr=lr, momentum=momentum))
    losses = np.empty(num_steps)
    for t in trange(num_steps, disable=not progress_bar, desc=desc):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(t)
        opt.zero_grad()
        with pyro.validation_enabled(False):  # checked once when the potential was built
            loss = potential(z) / n
        if not torch.isfinite(loss):
            raise DivergedError(f"{desc}: the loss is not finite at step {t} ({float(loss)}); "
                                f"lower the learning rate (lr={lr})")
        loss.backward()
        opt.step()
        losses[t] = float(loss.detach())
        if on_step is not None:
            on_step(t, z.detach())
    return z.detach(), losses
