"""How a result is evaluated on held-out data: sample sizes, data caps and the seed.

Usage::

    from inference.evaluation.settings import EvalSettings
    EvalSettings(is_samples=5000, max_points=200)
    EvalSettings.from_mapping({"num_draws": 50})
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.methods.settings import MethodSettings, flag, integer

__all__ = ["EvalSettings"]


@dataclass(frozen=True)
class EvalSettings(MethodSettings):
    """Settings of held-out evaluation (checked like a method's settings).

    ``is_samples``: importance samples per data point (models with local latents);
    ``elbo_particles``: with local latents, a second, independent ELBO estimate from this few
    draws per point (``test_elbo_k``; Pyro's CVAE tutorial reports a 10-particle ELBO);
    ``num_draws``: posterior draws for predictive metrics; ``max_points``: evaluate on the
    first n held-out points only; ``particle_batch``/``data_batch``/``chunk_size`` bound
    memory; ``seed`` fixes the evaluation's random numbers (the global RNG is left alone).
    ``linear_probe``: for a model with ``encode`` (autoencoders, the VAE) and labelled data,
    the linear-probe accuracy of its codes and of a random projection, fitted on the first
    ``probe_points`` training images, and the reconstruction error where it has
    ``reconstruct``; ``sample_scores``: for a model with ``generate`` (GAN, VAE), the scores
    of ``scored_samples`` generated images (:mod:`inference.evaluation.samples`). With
    ``max_points`` set (budgets, smoke runs) both sizes are capped at ``10 * max_points``.
    """

    is_samples: int = integer(1000, minimum=1, help="importance samples per data point")
    num_draws: int = integer(200, minimum=1, help="posterior draws for predictive metrics")
    max_points: int | None = integer(None, minimum=1, optional=True,
                                     help="evaluate on the first n held-out points only")
    elbo_particles: int | None = integer(None, minimum=1, optional=True,
                                         help="also estimate the held-out ELBO from this many "
                                              "guide draws per point (test_elbo_k)")
    particle_batch: int = integer(500, minimum=1, help="importance samples drawn at once")
    data_batch: int = integer(100, minimum=1, help="held-out points evaluated at once")
    chunk_size: int = integer(50, minimum=1, help="posterior draws evaluated at once")
    seed: int = integer(0, minimum=0, help="seed of the evaluation's random numbers")
    linear_probe: bool = flag(False, help="linear probe on the model's codes (needs encode)")
    probe_points: int = integer(10000, minimum=2, help="labelled training images of the probe")
    sample_scores: bool = flag(False, help="score generated images (needs generate)")
    scored_samples: int = integer(1000, minimum=2, help="generated images scored")
