"""Building blocks of Bayesian neural nets: weight priors, their KL terms, and layer functions.

What is here and why:

* :class:`ScaleMixtureNormal` -- the scale-mixture prior of Bayes-by-Backprop (Blundell et al.
  2015), ``pi N(0, s1^2) + (1 - pi) N(0, s2^2)`` per weight. It has no closed-form KL from a
  Normal, so :class:`~pyro.infer.TraceMeanField_ELBO` falls back to a Monte Carlo estimate.
* :class:`LogUniform` -- the improper log-uniform prior ``p(|w|) ∝ 1/|w|`` of (sparse)
  variational dropout. How it is represented: ``log_prob`` is ``-log|w|`` (the normalising
  constant does not exist and is dropped); ``kl_divergence(Normal, LogUniform)`` is registered and
  returns Molchanov et al.'s (2017) approximation of the KL *up to that same constant*, so
  :class:`~pyro.infer.TraceMeanField_ELBO` uses it in closed form and :class:`~pyro.infer.Trace_ELBO`
  gets an unbiased estimate of the same quantity; ``sample()`` draws from the proper truncation
  ``|w| ∈ [1e-6, 1]`` with a random sign, only so the model can be run forward without a guide
  (smoke runs, shapes): it is not a prior draw in any meaningful sense, and the prior should not
  be used with NUTS or with autoguides initialised from the prior.
* :func:`linear` / :func:`conv2d` -- the layer computations shared by model and guide. A guide
  can tag a sampled weight tensor with its Gaussian moments (:func:`mark_local_reparam`); when
  the model, replayed against that guide trace (Pyro's ELBOs hand the model the *same* tensor
  object), meets a tagged weight it computes the layer with the local reparameterisation trick
  (Kingma et al. 2015: sample the pre-activations ``N(x mu, x^2 sigma^2)`` instead of one weight
  matrix per minibatch) or with Flipout (Wen et al. 2018). Untagged weights (NUTS draws,
  autoguides, posterior arrays, detached copies) give the ordinary forward pass. This is the idea
  of TyXe's ``LocalReparameterizationMessenger`` made local to the layer function, with no
  global state: the tag lives on the tensor and disappears with it.

Batch convention: a weight of event shape ``(in, out)`` may carry leading batch dimensions
``(*B, 1)`` where the trailing ``1`` is the slot of the data plate (``dim=-1``), which is how
Pyro shapes a global site sampled under an outer vectorising plate at ``dim=-2``, or ``(S,)``,
which is how ``Predictive(parallel=True)`` and the vectorised log-likelihood pass conditioned
draws of a site with two or more event dims (see ``align_global`` in
``zoo.models.posteriordb_base``). Layer outputs are ``(*B, N, out)``: the data sit at
``dim=-2`` of the activations and at ``dim=-1`` of the likelihood's batch shape.

Usage::

    import pyro, pyro.distributions as dist
    from zoo.models.bnn_layers import linear, ScaleMixtureNormal
    w = pyro.sample("w0", ScaleMixtureNormal(0.5, 1.0, 2.5e-3).expand([3, 50]).to_event(2))
    h = linear(x, w, b)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pyro.distributions import Normal, TorchDistribution, constraints
from torch.distributions import kl_divergence, register_kl  # noqa: F401  (re-exported)

#: Molchanov et al. (2017), eq. 14: -KL(N(w|theta, alpha theta^2) || LogU) ≈ k1 sigmoid(k2 + k3 log
#: alpha) - 0.5 log(1 + 1/alpha) + C, with C = -k1.
K1, K2, K3 = 0.63576, 1.87320, 1.48695
#: Kingma, Salimans & Welling (2015), eq. 16 (valid for alpha <= 1):
#: -KL ≈ const + 0.5 log alpha + c1 alpha + c2 alpha^2 + c3 alpha^3.
C1, C2, C3 = 1.16145124, -1.50204118, 0.58629921

_LRT_ATTR = "_zoo_local_reparam"
LocalReparam = Literal["lrt", "flipout"]


# ----------------------------------------------------------------------------- priors
class ScaleMixtureNormal(TorchDistribution):
    """Zero-mean scale mixture of two Normals, the Bayes-by-Backprop prior (Blundell et al. 2015).

    Usage::

        prior = ScaleMixtureNormal(pi=0.5, sigma1=1.0, sigma2=math.exp(-6)).expand([784, 400])
    """

    arg_constraints = {
        "pi": constraints.unit_interval,
        "sigma1": constraints.positive,
        "sigma2": constraints.positive,
    }
    support = constraints.real
    has_rsample = False

    def __init__(self, pi, sigma1, sigma2, validate_args=None):
        self.pi, self.sigma1, self.sigma2 = (torch.as_tensor(v, dtype=torch.get_default_dtype())
                                             for v in (pi, sigma1, sigma2))
        self.pi, self.sigma1, self.sigma2 = torch.broadcast_tensors(self.pi, self.sigma1,
                                                                   self.sigma2)
        super().__init__(self.pi.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ScaleMixtureNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.pi = self.pi.expand(batch_shape)
        new.sigma1 = self.sigma1.expand(batch_shape)
        new.sigma2 = self.sigma2.expand(batch_shape)
        super(ScaleMixtureNormal, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        lp1 = Normal(0.0, self.sigma1).log_prob(value) + torch.log(self.pi)
        lp2 = Normal(0.0, self.sigma2).log_prob(value) + torch.log1p(-self.pi)
        return torch.logaddexp(lp1, lp2)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            first = torch.rand(shape) < self.pi.expand(shape)
            scale = torch.where(first, self.sigma1.expand(shape), self.sigma2.expand(shape))
            return torch.randn(shape) * scale

    @property
    def mean(self):
        return torch.zeros_like(self.pi)

    @property
    def variance(self):
        return self.pi * self.sigma1**2 + (1 - self.pi) * self.sigma2**2


class LogUniform(TorchDistribution):
    """The improper log-uniform weight prior ``p(|w|) ∝ 1/|w|`` of (sparse) variational dropout.

    ``log_prob(w) = -log|w|`` (no normalising constant exists); see the module docstring for how
    the KL from a Normal guide and ``sample`` are represented.

    Usage::

        w = pyro.sample("w0", LogUniform().expand([784, 300]).to_event(2))
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False
    #: range of |w| for the stand-in sampler (not part of the prior)
    sample_range = (1e-6, 1.0)

    def __init__(self, batch_shape=torch.Size(), validate_args=None):
        super().__init__(torch.Size(batch_shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LogUniform, _instance)
        super(LogUniform, new).__init__(torch.Size(batch_shape), validate_args=False)
        return new

    def log_prob(self, value):
        # |w| is floored at the smallest normal float so an exact zero gives a large finite
        # value rather than +inf (the density itself is unbounded at 0)
        return -torch.log(value.abs().clamp_min(torch.finfo(value.dtype).tiny))

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        lo, hi = (math.log(v) for v in self.sample_range)
        with torch.no_grad():
            magnitude = torch.exp(lo + (hi - lo) * torch.rand(shape))
            sign = torch.where(torch.rand(shape) < 0.5, -1.0, 1.0)
            return sign * magnitude


# ----------------------------------------------------------------------------- KL terms
def log_alpha_of(loc: torch.Tensor, scale: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Dropout rate parameter ``log alpha = log sigma^2 - log theta^2`` of ``N(theta, sigma^2)``."""
    return 2.0 * torch.log(scale) - torch.log(loc.pow(2) + eps)


def neg_kl_log_uniform_molchanov(log_alpha: torch.Tensor) -> torch.Tensor:
    """Molchanov et al. (2017) eq. 14: ``-KL(N(theta, alpha theta^2) || LogUniform)`` up to a constant.

    The constant ``C = -k1`` is included, so the value tends to 0 as ``alpha -> inf``.
    """
    return K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1


def neg_kl_log_uniform_kingma(log_alpha: torch.Tensor) -> torch.Tensor:
    """Kingma et al. (2015) eq. 16 without its constant; valid for ``alpha <= 1`` only."""
    alpha = torch.exp(log_alpha)
    return 0.5 * log_alpha + C1 * alpha + C2 * alpha**2 + C3 * alpha**3


@register_kl(Normal, LogUniform)
def _kl_normal_log_uniform(q: Normal, p: LogUniform) -> torch.Tensor:
    # Up to the (infinite) constant of the improper prior; see the module docstring.
    kl = -neg_kl_log_uniform_molchanov(log_alpha_of(q.loc, q.scale))
    return kl.expand(torch.broadcast_shapes(q.batch_shape, p.batch_shape))


# ----------------------------------------------------------------------------- layers
def mark_local_reparam(
    value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, mode: LocalReparam = "lrt"
) -> torch.Tensor:
    """Tag a weight drawn from ``N(loc, scale^2)`` so :func:`linear` uses LRT or Flipout on it.

    Called by guides right after ``pyro.sample``; returns ``value`` itself.
    """
    if mode not in ("lrt", "flipout"):
        raise ValueError(f"local reparameterisation mode {mode!r}; allowed: 'lrt', 'flipout'")
    setattr(value, _LRT_ATTR, (mode, loc, scale))
    return value


def local_reparam_of(value: torch.Tensor):
    """The ``(mode, loc, scale)`` tag set by :func:`mark_local_reparam`, or ``None``."""
    return getattr(value, _LRT_ATTR, None)


def _squeeze_data_slot(w: torch.Tensor, event_dim: int) -> torch.Tensor:
    """Drop the data-plate slot of a batched weight: ``(*B, 1, *event) -> (*B, *event)``.

    A weight batched as ``(S, *event)`` (the layout of Pyro's ``Predictive`` and of vectorised
    log-likelihoods for sites with enough event dims) already has its draws left of the data.
    """
    if w.dim() > event_dim and w.shape[-event_dim - 1] == 1:
        return w.squeeze(-event_dim - 1)
    return w


def _rademacher(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype) * 2 - 1


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w + b`` for a weight of shape ``(*B, 1, in, out)`` or ``(in, out)``.

    ``x`` is ``(N, in)`` or ``(*B, N, in)``; the result is ``(*B, N, out)``. A weight tagged by
    :func:`mark_local_reparam` is applied with the local reparameterisation trick or Flipout.
    """
    tag = local_reparam_of(w)
    batch = _squeeze_data_slot(w, 2).shape[:-2]
    if tag is None:
        out = x @ _squeeze_data_slot(w, 2)
    else:
        mode, loc, scale = tag
        mean = x @ loc
        shape = torch.broadcast_shapes(batch + mean.shape[-2:], mean.shape)
        if mode == "lrt":
            std = (x.pow(2) @ scale.pow(2)).clamp_min(1e-16).sqrt()
            out = mean + std * torch.randn(shape, dtype=mean.dtype, device=mean.device)
        else:  # flipout: perturbation (w - loc) with per-example random signs
            delta = _squeeze_data_slot(w, 2) - loc
            s_in = _rademacher(torch.broadcast_shapes(batch + x.shape[-2:], x.shape), x)
            s_out = _rademacher(shape, x)
            out = mean + ((x * s_in) @ delta) * s_out
    if b is not None:
        out = out + _squeeze_data_slot(b, 1).unsqueeze(-2)
    return out


def conv2d(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **conv_kwargs
) -> torch.Tensor:
    """2-D convolution of images ``(N, C, H, W)`` with a weight ``(*B, 1, out, in, k, k)``.

    The result is ``(*B, N, out, H', W')``. Batched weights are applied one draw at a time
    (``F.conv2d`` has no weight batch); a tagged weight uses the local reparameterisation trick
    (``mean = conv(x, mu)``, ``var = conv(x^2, sigma^2)``); Flipout falls back to LRT here.
    """
    tag = local_reparam_of(w)
    if tag is not None:
        _, loc, scale = tag
        flat_x = x.reshape(-1, *x.shape[-3:])
        mean = F.conv2d(flat_x, loc, **conv_kwargs)
        var = F.conv2d(flat_x.pow(2), scale.pow(2), **conv_kwargs)
        mean, var = mean.reshape(*x.shape[:-3], *mean.shape[1:]), var.reshape(
            *x.shape[:-3], *var.shape[1:])
        batch = _squeeze_data_slot(w, 4).shape[:-4]
        shape = torch.broadcast_shapes(batch + mean.shape[-4:], mean.shape)
        out = mean + var.clamp_min(1e-16).sqrt() * torch.randn(shape, dtype=mean.dtype)
    else:
        w_ = _squeeze_data_slot(w, 4)
        if w_.dim() == 4:
            flat = x.reshape(-1, *x.shape[-3:])
            out = F.conv2d(flat, w_, **conv_kwargs)
            out = out.reshape(*x.shape[:-3], *out.shape[1:])
        else:
            batch = w_.shape[:-4]
            xs = x.expand(*torch.broadcast_shapes(batch, x.shape[:-4]), *x.shape[-4:]) \
                if x.dim() > 4 else x
            ws = w_.reshape(-1, *w_.shape[-4:])
            if x.dim() > 4:
                xs = xs.reshape(-1, *x.shape[-4:])
                outs = [F.conv2d(xs[i], ws[i], **conv_kwargs) for i in range(ws.shape[0])]
            else:
                outs = [F.conv2d(x, ws[i], **conv_kwargs) for i in range(ws.shape[0])]
            out = torch.stack(outs).reshape(*batch, *outs[0].shape)
    if b is not None:
        bb = _squeeze_data_slot(b, 1)
        out = out + bb.unsqueeze(-1).unsqueeze(-1).unsqueeze(-2 - 2)
    return out
