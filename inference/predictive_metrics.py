"""Held-out metrics of a sampled predictive: test log-likelihood, RMSE, accuracy, NLL, ECE and
the epistemic / aleatoric split of predictive uncertainty.

The inputs are per-posterior-draw predictive distributions, so each metric is computed exactly
from them: the test log-likelihood of a point is ``log (1/S) sum_s p(y | theta_s)``
(log-mean-exp over draws), averaged over points. For regression on a standardised target
``z = (y - shift) / scale`` the density on the original scale subtracts ``log scale``.

Usage::

    from inference.predictive_metrics import regression_metrics, classification_metrics
    regression_metrics(mean_draws, noise_var_draws, y_test, y_scale=scaler.std)
    classification_metrics(probs_draws, labels)
    shift_metrics(probs_draws, {"noise": noise_probs_draws})  # ood_entropy_noise, ood_auroc_noise
"""

from __future__ import annotations

import math

import numpy as np
import torch

from inference.calibration import (expected_calibration_error, mutual_information,
                                   ood_auroc, predictive_entropy)

ArrayLike = np.ndarray | torch.Tensor


def _t(a: ArrayLike) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double()


def log_mean_exp(values: ArrayLike, dim: int = 0) -> torch.Tensor:
    """``log mean exp`` along ``dim``, computed stably."""
    v = _t(values)
    return torch.logsumexp(v, dim) - math.log(v.shape[dim])


def variance_decomposition(mean_draws: ArrayLike, noise_var_draws: ArrayLike
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(epistemic, aleatoric)`` variance per point from draws shaped (S, N).

    Law of total variance: ``Var[y] = Var_s[mu_s] + E_s[sigma_s^2]``.
    """
    mu, var = _t(mean_draws), _t(noise_var_draws)
    return mu.var(0, unbiased=False), var.expand_as(mu).mean(0)


def regression_metrics(mean_draws: ArrayLike, noise_var_draws: ArrayLike, y: ArrayLike, *,
                       y_scale: float = 1.0, y_shift: float = 0.0) -> dict[str, float]:
    """Test LL, NLL, RMSE and mean variances of a Gaussian predictive sampled over draws.

    ``mean_draws`` and ``noise_var_draws`` are (S, N) on the model's scale, ``y`` (N,) on the
    same scale; ``y = z * y_scale + y_shift`` maps to the original scale on which RMSE, the
    log-likelihood (``- log y_scale``) and the variances (``* y_scale^2``) are reported.
    """
    mu, var, target = _t(mean_draws), _t(noise_var_draws), _t(y).reshape(-1)
    if mu.dim() != 2 or mu.shape[1] != target.shape[0]:
        raise ValueError(f"mean_draws must be (draws, N={target.shape[0]}), got {tuple(mu.shape)}")
    if not y_scale > 0:
        raise ValueError(f"y_scale must be positive, got {y_scale}")
    var = var.expand_as(mu)
    logp = torch.distributions.Normal(mu, var.sqrt()).log_prob(target)
    ll_point = log_mean_exp(logp, 0) - math.log(y_scale)
    pred = mu.mean(0)
    rmse = float(((pred - target).pow(2).mean()).sqrt()) * y_scale
    epi, alea = variance_decomposition(mu, var)
    s2 = y_scale**2
    return {
        "test_ll": float(ll_point.mean()),
        "nll": float(-ll_point.mean()),
        "rmse": rmse,
        "epistemic_var": float(epi.mean()) * s2,
        "aleatoric_var": float(alea.mean()) * s2,
        "predictive_sd": float((epi + alea).sqrt().mean()) * y_scale,
        "num_draws": float(mu.shape[0]),
    }


def classification_metrics(probs_draws: ArrayLike, labels: ArrayLike,
                           n_bins: int = 15) -> dict[str, float]:
    """Accuracy, error, NLL / test LL, ECE and entropies from class probabilities (S, N, K).

    The predictive is the draw average ``p = mean_s p_s``; ``nll`` is ``-mean log p[y]``
    (= ``-test_ll``); ``entropy`` the mean predictive entropy, split into the mean
    ``mutual_info`` (epistemic) and ``expected_entropy`` (aleatoric).
    """
    p = _t(probs_draws)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    y = y.long().reshape(-1)
    if p.dim() != 3 or p.shape[1] != y.shape[0]:
        raise ValueError(f"probs_draws must be (draws, N={y.shape[0]}, K), got {tuple(p.shape)}")
    mean = p.mean(0)
    ll = torch.log(mean.gather(1, y[:, None]).squeeze(1).clamp_min(1e-300))
    acc = float((mean.argmax(1) == y).double().mean())
    ent = predictive_entropy(mean)
    mi = mutual_information(p)
    return {
        "accuracy": acc,
        "error": 1.0 - acc,
        "test_ll": float(ll.mean()),
        "nll": float(-ll.mean()),
        "ece": expected_calibration_error(mean, y, n_bins),
        "entropy": float(ent.mean()),
        "mutual_info": float(mi.mean()),
        "expected_entropy": float((ent - mi).mean()),
        "num_draws": float(p.shape[0]),
    }


def shift_metrics(probs_draws: ArrayLike, shifted_probs_draws: "dict[str, ArrayLike]"
                  ) -> dict[str, float]:
    """How a classifier's predictive entropy rises on shifted inputs (out of distribution).

    ``probs_draws`` are class probabilities (S, N, K) on the test inputs and
    ``shifted_probs_draws`` maps a shift's name (``noise``, ``rotated`` ...) to those on the
    shifted inputs (S, M, K). For each shift: ``ood_entropy_<name>``, the mean entropy of the
    draw-averaged predictive, and ``ood_auroc_<name>``, the AUROC of that entropy for telling
    shifted from test inputs (:func:`inference.calibration.ood_auroc`).
    """
    h_in = predictive_entropy(_t(probs_draws).mean(0))
    out: dict[str, float] = {}
    for name, probs in shifted_probs_draws.items():
        h = predictive_entropy(_t(probs).mean(0))
        out[f"ood_entropy_{name}"] = float(h.mean())
        out[f"ood_auroc_{name}"] = ood_auroc(h_in, h)
    return out
