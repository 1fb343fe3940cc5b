"""What a model is, and what an inference method needs of it: the vocabulary both sides share.

A model declares :class:`ModelTraits` (does it have discrete latents, parameters learned by
optimisation, local latents, a mini-batchable data plate ...); a method declares the
capabilities it needs by name (keys of :data:`CAPABILITIES`). :func:`missing_capabilities`
compares the two, so a method that cannot work on a model is refused in one line, before
anything runs, naming what is missing.

Usage::

    from inference.methods.capabilities import ModelTraits, missing_capabilities
    vae = ModelTraits(learned_parameters=True, local_latents=True, minibatch=True)
    missing_capabilities({"no_learned_parameters", "full_batch"}, vae)
    # -> ["no_learned_parameters"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

__all__ = ["CAPABILITIES", "ModelTraits", "missing_capabilities", "describe_missing"]

#: every capability a method may need, with what it means for the model
CAPABILITIES: dict[str, str] = {
    "continuous_latents": "every latent site is continuous (no discrete latent variables)",
    "differentiable_density": "a log density differentiable in the latents",
    "no_learned_parameters": "no parameters fitted by optimisation (every unknown is a latent "
                             "sample site, so a sampler can explore it)",
    "full_batch": "a full-data log density cheap enough to evaluate at every step",
    "minibatch": "a data plate that takes subsample_size (mini-batches)",
    "local_latents": "one latent variable per data point (an amortised posterior)",
    "trainable_network": "a network that states its own training objective (an autoencoder's "
                         "loss, a GAN's generator and discriminator) instead of a Pyro density",
    "energy_function": "an energy function with Gibbs conditionals (a Boltzmann machine, "
                       "inference.energy.EnergyModel)",
    "layered_network": "a network of linear layers with a Gaussian weight prior and a Gaussian "
                       "or categorical likelihood, offered as ZooModel.network_view() "
                       "(inference.kfac.NetworkView)",
}

#: why a model lacks a capability, in words that follow the model's name
_WHY_NOT: dict[str, str] = {
    "continuous_latents": "has discrete latent variables",
    "differentiable_density": "has a log density that is not differentiable in its latents",
    "no_learned_parameters": "has parameters learned by optimisation (network weights)",
    "full_batch": "is too large for a full-data density at every step",
    "minibatch": "has no data plate that takes subsample_size",
    "local_latents": "has no per-data-point latent variables",
    "trainable_network": "is a Pyro program, not a network with its own training objective",
    "energy_function": "is not an energy-based model",
    "layered_network": "offers no view of its network as a stack of linear layers",
}


@dataclass(frozen=True)
class ModelTraits:
    """What a model is, declared once where it is registered.

    ``discrete_latents``: some latent sites are discrete. ``learned_parameters``: the model
    has ``pyro.param`` / ``nn.Module`` weights fitted by optimisation (VAE decoders), which no
    sampler can explore. ``local_latents``: one latent per data point (amortised guides apply).
    ``minibatch``: the data plate takes ``subsample_size``. ``full_batch``: a full-data log
    density per step is affordable (false for nets trained on all of MNIST).
    ``differentiable``: the log density is differentiable in the latents.
    ``network``: the model is a network trained by its own objective (autoencoders, GANs),
    not a Pyro density; point-estimate methods (``autoencoder``, ``gan``) train it.
    ``energy_based``: the model is an energy function with Gibbs conditionals (a Boltzmann
    machine), trained by the ``energy`` family of methods rather than as a Pyro program.
    ``layered_network``: the model can offer its network as a stack of linear layers
    (``ZooModel.network_view``), which Kronecker-factored curvature (``kfac_laplace``) needs.

    Example: ``ModelTraits(minibatch=True).provides()`` contains ``"minibatch"``.
    """

    discrete_latents: bool = False
    learned_parameters: bool = False
    local_latents: bool = False
    minibatch: bool = False
    full_batch: bool = True
    differentiable: bool = True
    network: bool = False
    energy_based: bool = False
    layered_network: bool = False

    def provides(self) -> frozenset[str]:
        """The capabilities (keys of :data:`CAPABILITIES`) a model with these traits offers."""
        offered = {
            "continuous_latents": not self.discrete_latents,
            "differentiable_density": self.differentiable and not self.discrete_latents,
            "no_learned_parameters": not self.learned_parameters,
            "full_batch": self.full_batch,
            "minibatch": self.minibatch,
            "local_latents": self.local_latents,
            "trainable_network": self.network,
            "energy_function": self.energy_based,
            "layered_network": self.layered_network,
        }
        return frozenset(name for name, ok in offered.items() if ok)

    def as_dict(self) -> dict[str, bool]:
        """The traits as a plain dict (for tables and JSON)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def missing_capabilities(needs: Iterable[str], traits: ModelTraits) -> list[str]:
    """The capabilities in ``needs`` that a model with ``traits`` does not offer, sorted."""
    unknown = sorted(set(needs) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}")
    return sorted(set(needs) - traits.provides())


def describe_missing(method: str, model: str, missing: Iterable[str]) -> str:
    """One line saying why ``method`` cannot run ``model``.

    Example: ``method 'nuts' cannot run model 'vae': it needs no parameters fitted by
    optimisation (...), and 'vae' has parameters learned by optimisation (network weights)``.
    """
    parts = [f"{CAPABILITIES[c]}, and {model!r} {_WHY_NOT[c]}" for c in missing]
    return f"method {method!r} cannot run model {model!r}: it needs " + "; it needs ".join(parts)
