"""What a learned representation is worth: reconstruction error and a linear probe on its codes.

A code is judged by how well a *linear* classifier trained on the codes of labelled training
images predicts the labels of held-out images (logistic regression on standardised codes,
scikit-learn), beside the same probe on a random Gaussian projection of the pixels of the same
size (scikit-learn's ``GaussianRandomProjection``): a representation worth learning beats it.
Autoencoders, the VAE's encoder means and an RBM's hidden probabilities are all scored this way.

Usage::

    from inference.evaluation.representations import probe_metrics, reconstruction_metrics
    probe_metrics(codes_train, y_train, codes_test, y_test, x_train, x_test)
    # {"probe_accuracy": 0.95, "probe_accuracy_random": 0.86, "code_dim": 50, ...}
    reconstruction_metrics(x_test, recon_test)   # {"recon_error": ..., "recon_bce": ...}
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["linear_probe_accuracy", "random_projection", "probe_metrics",
           "reconstruction_metrics"]


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels, *,
                          max_iter: int = 500) -> float:
    """Held-out accuracy of multinomial logistic regression (L2, C = 1) on standardised codes.

    Deterministic (L-BFGS from zero). Example: ``linear_probe_accuracy(h_tr, y_tr, h_te, y_te)``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_codes, test_codes = _np(train_codes), _np(test_codes)
    train_labels, test_labels = _np(train_labels).ravel(), _np(test_labels).ravel()
    if len(train_codes) != len(train_labels) or len(test_codes) != len(test_labels):
        raise ValueError("codes and labels must have the same number of rows")
    if len(np.unique(train_labels)) < 2:
        raise ValueError("the linear probe needs at least two classes among its training labels")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():  # a probe stopped at max_iter is still a fair comparison
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train_codes, train_labels)
    return float((probe.predict(test_codes) == test_labels).mean())


def random_projection(x_train, x_test, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both sets projected by one random Gaussian matrix to ``dim`` dimensions."""
    from sklearn.random_projection import GaussianRandomProjection

    proj = GaussianRandomProjection(n_components=dim, random_state=seed).fit(_np(x_train))
    return proj.transform(_np(x_train)), proj.transform(_np(x_test))


def probe_metrics(codes_train, y_train, codes_test, y_test, x_train, x_test, *,
                  seed: int = 0) -> dict[str, float]:
    """``probe_accuracy`` of the codes, ``probe_accuracy_random`` of a random projection of the
    pixels to the same size, ``code_dim`` and ``probe_train_points``."""
    dim = int(_np(codes_train).shape[-1])
    rand_train, rand_test = random_projection(x_train, x_test, dim, seed)
    return {
        "probe_accuracy": linear_probe_accuracy(codes_train, y_train, codes_test, y_test),
        "probe_accuracy_random": linear_probe_accuracy(rand_train, y_train, rand_test, y_test),
        "code_dim": float(dim),
        "probe_train_points": float(len(_np(y_train))),
    }


def reconstruction_metrics(x: torch.Tensor, recon: torch.Tensor) -> dict[str, float]:
    """``recon_error``: mean squared error per pixel; ``recon_bce``: binary cross-entropy of the
    pixel values (targets in [0, 1]) summed over pixels, mean over images."""
    x = x.reshape(len(x), -1).double()
    recon = recon.reshape(len(recon), -1).double().clamp(1e-7, 1 - 1e-7)
    bce = -(x * recon.log() + (1 - x) * (1 - recon).log()).sum(-1).mean()
    return {"recon_error": float((x - recon).square().mean()), "recon_bce": float(bce)}
