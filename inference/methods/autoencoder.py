"""Training a network by its own loss on mini-batches: the ``autoencoder`` method (family point).

The model is a ``torch.nn.Module`` with ``loss(x) -> scalar`` (the mean loss of a mini-batch,
penalties included: an undercomplete, sparse, denoising or contractive autoencoder states its
own objective, :mod:`zoo.models.autoencoder`); this method knows nothing else of it. Adam with
optional weight decay and gradient clipping, shuffled mini-batches of the data keyword ``x``,
a seed that fixes the run, a wall-clock budget, and a clear stop when the loss diverges.

Usage::

    from inference import methods
    result = methods.get("autoencoder").run(
        methods.Target(net, {"x": x}, traits=ModelTraits(network=True)),
        {"num_steps": 2000, "batch_size": 100, "lr": 1e-3}, seed=0)
    result.fitted["network"], result.settings["final_loss"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, flag, integer, real

__all__ = ["AutoencoderSettings", "loss_network"]


@dataclass(frozen=True)
class AutoencoderSettings(MethodSettings):
    """Settings of mini-batch training of a network's own loss."""

    num_steps: int = integer(5000, minimum=1, help="optimisation steps")
    batch_size: int = integer(100, minimum=1, help="mini-batch size")
    lr: float = real(1e-3, minimum=0.0, exclusive=True, help="Adam learning rate")
    weight_decay: float = real(0.0, minimum=0.0, help="L2 weight decay (Adam's)")
    clip_norm: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                   help="gradient-norm clipping")
    time_limit_s: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                      help="stop training after this many seconds (a budget)")
    progress_bar: bool = flag(True, help="show a progress bar")


def loss_network(target: Target) -> torch.nn.Module:
    """The target's network, checked: an ``nn.Module`` with a ``loss(x)`` method."""
    net = target.model
    if not (isinstance(net, torch.nn.Module) and callable(getattr(net, "loss", None))):
        raise TypeError(f"method 'autoencoder' trains a torch.nn.Module with a loss(x) method; "
                        f"model {target.name!r} gives {type(net).__name__}")
    if "x" not in target.model_kwargs:
        raise ValueError(f"method 'autoencoder' needs the training data as keyword 'x'; model "
                         f"{target.name!r} gives {sorted(target.model_kwargs)}")
    return net


@register("autoencoder", family="point", settings=AutoencoderSettings,
          needs=("trainable_network",),
          description="mini-batch Adam on a network's own loss (undercomplete, sparse, denoising "
                      "and contractive autoencoders)")
def run_autoencoder(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Minimise ``target.model.loss(batch)`` over mini-batches of ``x``."""
    from inference.point import point_result, train_steps

    net = loss_network(target)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    def step(batch: torch.Tensor) -> dict[str, float]:
        loss = net.loss(batch)
        opt.zero_grad()
        loss.backward()
        if settings.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip_norm)
        opt.step()
        return {"loss": float(loss.detach())}

    net.train()
    log = train_steps(step, target.model_kwargs["x"], num_steps=settings.num_steps,
                      batch_size=settings.batch_size, seed=seed,
                      time_limit_s=settings.time_limit_s, progress_bar=settings.progress_bar,
                      what=f"autoencoder training of {target.name!r}")
    net.eval()
    return point_result("autoencoder", settings, seed, log, net)
