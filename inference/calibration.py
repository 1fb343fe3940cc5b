"""Calibration of probabilistic classifiers: ECE, reliability-diagram data, predictive entropy.

Expected calibration error follows Guo et al. (2017): the confidence ``max_k p_k`` of each
prediction is put into one of ``n_bins`` equal-width bins of ``[0, 1]`` (bin ``m`` is
``((m-1)/M, m/M]``, the first bin also holds 0), and
``ECE = sum_m |B_m| / n * |accuracy(B_m) - confidence(B_m)|``. Neither Pyro nor ArviZ offers
it (torchmetrics does, but is not a dependency), so it is written here.

Usage::

    from inference.calibration import expected_calibration_error, reliability_diagram_data
    ece = expected_calibration_error(probs, labels)          # probs (N, K), labels (N,)
    table = reliability_diagram_data(probs, labels)          # one row per bin
    h = predictive_entropy(probs)                            # (N,) in nats
    ood_auroc(h, h_shifted)     # 1.0: every shifted input is more uncertain than every test one
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

ArrayLike = np.ndarray | torch.Tensor

#: Guo et al. (2017) use 15 bins
DEFAULT_BINS = 15


def _as_numpy(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _confidence_and_correct(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = _as_numpy(probs).astype(np.float64)
    y = _as_numpy(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2:
        raise ValueError(f"probs must be (N, K) class probabilities, got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"probs has {p.shape[0]} rows but labels has {y.shape[0]}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}, got {y.min()}..{y.max()}")
    return p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    # bin m (0-based) holds (m/M, (m+1)/M]; confidence 0 goes to bin 0
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability_diagram_data(probs: ArrayLike, labels: ArrayLike,
                             n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """One row per confidence bin: ``lower``, ``upper``, ``count``, ``accuracy``,
    ``confidence`` (mean confidence in the bin; NaN for empty bins) and ``gap``."""
    conf, correct = _confidence_and_correct(probs, labels)
    idx = _bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count.astype(int),
                         "accuracy": acc, "confidence": mean_conf, "gap": acc - mean_conf})


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike,
                               n_bins: int = DEFAULT_BINS) -> float:
    """ECE of Guo et al. (2017) with ``n_bins`` equal-width bins (default 15)."""
    table = reliability_diagram_data(probs, labels, n_bins)
    n = table["count"].sum()
    if n == 0:
        raise ValueError("expected_calibration_error needs at least one prediction")
    used = table["count"] > 0
    return float((table["count"][used] / n * table["gap"][used].abs()).sum())


def predictive_entropy(probs: ArrayLike) -> np.ndarray:
    """Entropy ``-sum_k p_k log p_k`` (nats) of class probabilities over the last axis."""
    p = _as_numpy(probs).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=-1)


def mutual_information(probs_draws: ArrayLike) -> np.ndarray:
    """Epistemic part of the entropy, ``H[E_s p] - E_s H[p_s]``, for draws shaped (S, N, K)."""
    p = _as_numpy(probs_draws).astype(np.float64)
    if p.ndim != 3:
        raise ValueError(f"probs_draws must be (draws, N, K), got shape {p.shape}")
    return predictive_entropy(p.mean(0)) - predictive_entropy(p).mean(0)


def ood_auroc(in_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the ROC curve of a score (predictive entropy) for telling out-of-distribution
    inputs (positives) from in-distribution ones: 1 when every OOD score is above every
    in-distribution score, 0.5 when the two are alike, below 0.5 when OOD inputs look *more*
    certain. Ties count one half (scikit-learn's ``roc_auc_score``).

    Usage: ``ood_auroc(predictive_entropy(p_test), predictive_entropy(p_rotated))``.
    """
    from sklearn.metrics import roc_auc_score

    a = _as_numpy(in_scores).astype(np.float64).reshape(-1)
    b = _as_numpy(ood_scores).astype(np.float64).reshape(-1)
    if not a.size or not b.size:
        raise ValueError(f"ood_auroc needs scores of both kinds, got {a.size} in-distribution "
                         f"and {b.size} out-of-distribution")
    labels = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(labels, np.concatenate([a, b])))
