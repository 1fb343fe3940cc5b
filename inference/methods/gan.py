"""Adversarial training of a generator against a discriminator: the ``gan`` method (family point).

The model is a ``torch.nn.Module`` with a ``generator`` (noise -> data), a ``discriminator``
(data -> one logit per row) and ``sample_noise(n) -> Tensor`` (:mod:`zoo.models.gan`); this
method knows nothing else of it. Each step makes ``d_steps`` discriminator updates on a real
mini-batch and as many generated rows, then one generator update. The generator's loss is the
**non-saturating** one of Goodfellow et al. (2014), ``-log D(G(z))``, whose gradient stays large
while the discriminator still rejects the samples; ``loss="minimax"`` gives the original
``log(1 - D(G(z)))`` for comparison. Adam with beta1 = 0.5, as in DCGAN (Radford et al. 2016).

Usage::

    from inference import methods
    result = methods.get("gan").run(methods.Target(gan, {"x": x}, traits=ModelTraits(network=True)),
                                    {"num_steps": 5000, "batch_size": 64}, seed=0)
    result.fitted["network"].generator
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from inference.methods.registry import Target, register
from inference.methods.settings import MethodSettings, choice, flag, integer, real

__all__ = ["GANSettings", "discriminator_loss", "generator_loss", "GENERATOR_LOSSES"]

GENERATOR_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-log D(x) - log(1 - D(G(z)))`` averaged, with ``D = sigmoid(logit)`` (stable form:
    ``softplus(-real) + softplus(fake)``)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss on the discriminator's logits of generated rows.

    ``non_saturating``: ``-log D(G(z)) = softplus(-logit)``, gradient ``-(1 - D)`` in the logit,
    near -1 where the discriminator rejects the sample; ``minimax``: ``log(1 - D(G(z)))
    = -softplus(logit)``, gradient ``-D``, near 0 there (the saturation the first avoids).
    """
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    raise ValueError(f"loss must be one of {list(GENERATOR_LOSSES)}, got {kind!r}")


@dataclass(frozen=True)
class GANSettings(MethodSettings):
    """Settings of adversarial training."""

    num_steps: int = integer(10000, minimum=1, help="generator updates")
    batch_size: int = integer(64, minimum=1, help="real rows per discriminator update")
    lr: float = real(2e-4, minimum=0.0, exclusive=True, help="Adam learning rate of both nets")
    beta1: float = real(0.5, minimum=0.0, maximum=1.0, help="Adam's first-moment decay")
    d_steps: int = integer(1, minimum=1, help="discriminator updates per generator update")
    loss: str = choice("non_saturating", GENERATOR_LOSSES, help="generator loss")
    time_limit_s: float | None = real(None, minimum=0.0, exclusive=True, optional=True,
                                      help="stop training after this many seconds (a budget)")
    progress_bar: bool = flag(True, help="show a progress bar")


def adversarial_network(target: Target) -> torch.nn.Module:
    """The target's network, checked: generator, discriminator and ``sample_noise``."""
    net = target.model
    ok = (isinstance(net, torch.nn.Module)
          and isinstance(getattr(net, "generator", None), torch.nn.Module)
          and isinstance(getattr(net, "discriminator", None), torch.nn.Module)
          and callable(getattr(net, "sample_noise", None)))
    if not ok:
        raise TypeError(f"method 'gan' trains a torch.nn.Module with generator, discriminator "
                        f"and sample_noise(n); model {target.name!r} gives {type(net).__name__}")
    if "x" not in target.model_kwargs:
        raise ValueError(f"method 'gan' needs the training data as keyword 'x'; model "
                         f"{target.name!r} gives {sorted(target.model_kwargs)}")
    return net


@register("gan", family="point", settings=GANSettings, needs=("trainable_network",),
          description="generative adversarial training, non-saturating generator loss "
                      "(Goodfellow et al. 2014), Adam with beta1 0.5")
def run_gan(target: Target, settings: MethodSettings, seed: int) -> Any:
    """Alternate discriminator and generator updates on mini-batches of ``x``."""
    from inference.point import point_result, train_steps

    net = adversarial_network(target)
    betas = (settings.beta1, 0.999)
    opt_d = torch.optim.Adam(net.discriminator.parameters(), lr=settings.lr, betas=betas)
    opt_g = torch.optim.Adam(net.generator.parameters(), lr=settings.lr, betas=betas)
    data = target.model_kwargs["x"]
    # one generator step consumes d_steps real batches: draw them together
    batch = settings.batch_size * settings.d_steps

    def step(real: torch.Tensor) -> dict[str, float]:
        for chunk in real.split(len(real) // settings.d_steps or len(real)):
            with torch.no_grad():
                fake = net.generator(net.sample_noise(len(chunk)))
            real_logits = net.discriminator(chunk)
            d_loss = discriminator_loss(real_logits, net.discriminator(fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        fake_logits = net.discriminator(net.generator(net.sample_noise(settings.batch_size)))
        g_loss = generator_loss(fake_logits, settings.loss)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()  # the generator step left gradients in the discriminator
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
                # what the discriminator makes of real rows and of the generator's (0.5: fooled)
                "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
                "d_fake": float(torch.sigmoid(fake_logits.detach()).mean())}

    net.train()
    log = train_steps(step, data, num_steps=settings.num_steps, batch_size=batch, seed=seed,
                      time_limit_s=settings.time_limit_s, progress_bar=settings.progress_bar,
                      what=f"adversarial training of {target.name!r}")
    net.eval()
    return point_result("gan", settings, seed, log, net)
