"""Scores of generated MNIST images for models without a likelihood (GANs) and beside those with one.

Two figures for any set of generated 28 x 28 images, so that a GAN, a VAE and an RBM can be
compared on the same footing:

- what a **fixed MNIST classifier** says of them: the mean confidence of its prediction, the
  mean entropy of its predictive distribution per image (low: the image looks like one digit),
  the entropy of its mean prediction over all images (high, up to log 10 = 2.30: every class
  is generated) and the Inception-style score ``exp(E_x KL(p(y | x) || p(y)))`` (1 to 10);
- a **kernel MMD** two-sample statistic against held-out images: the unbiased estimate of
  ``MMD^2`` with a Gaussian kernel whose bandwidth is the median pairwise distance of the
  reference images (fixed by the reference, so values for different models are comparable).

The classifier is a 784-256-10 ReLU MLP trained once on the 60,000 MNIST training images
(grey levels and a fresh binarisation of them, so that it reads binary RBM samples as well as
grey VAE means) and cached as a plain state dict loaded with ``weights_only=True``; its test
accuracy is reported with every score.

Usage::

    from inference.evaluation.samples import score_samples
    scores = score_samples(images)          # (n, 784) or (n, 28, 28), values in [0, 1]
    scores["mmd2"], scores["sample_label_entropy"], scores["inception_score"]

For an RBM pass the visible probabilities of the last Gibbs step (or binary states, with a
binary ``reference`` such as ``load("binarized_mnist").test["x"]``): the MMD compares like
with like only when samples and reference live on the same scale.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

__all__ = ["score_samples", "mmd2_unbiased", "median_bandwidth", "classifier_scores",
           "mnist_classifier", "classifier_path", "train_mnist_classifier"]

#: bump when the classifier's architecture or training changes (the cache file is named by it)
CLASSIFIER_VERSION = 1
IMAGE_DIM = 784
NUM_CLASSES = 10


def _classifier_net() -> nn.Module:
    return nn.Sequential(nn.Linear(IMAGE_DIM, 256), nn.ReLU(), nn.Linear(256, NUM_CLASSES))


def classifier_path() -> Path:
    """Where the fixed classifier is cached: ``$ZOO_CACHE`` or ``~/.cache/ppl-zoo``, under
    ``classifiers/``."""
    from zoo.data.paths import user_cache_dir

    root = os.environ.get("ZOO_CACHE")
    base = Path(root).expanduser() if root else user_cache_dir().parent
    return base / "classifiers" / f"mnist_mlp_v{CLASSIFIER_VERSION}.pt"


def train_mnist_classifier(epochs: int = 3, seed: int = 0) -> tuple[nn.Module, float]:
    """Train the fixed classifier on MNIST (grey and binarised); returns it and its test accuracy.

    About 20 s on one CPU core; reaches about 98 % test accuracy.
    """
    from zoo.data import load

    data = load("mnist")
    x, y = data.train["x"], data.train["y"]
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _classifier_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 128):
            idx = order[start:start + 128]
            xb = x[idx]
            binary = torch.rand(len(idx), 1, generator=gen) < 0.5  # half of each batch binarised
            xb = torch.where(binary, torch.bernoulli(xb, generator=gen), xb)
            loss = nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(data.test["x"]).argmax(-1) == data.test["y"]).float().mean())
    return net, accuracy


_CACHE: dict[str, tuple[nn.Module, float]] = {}


def mnist_classifier() -> tuple[nn.Module, float]:
    """The fixed MNIST classifier and its test accuracy: loaded from the cache, else trained once
    and cached (``torch.save`` of tensors only; read back with ``weights_only=True``)."""
    from inference.storage import atomic_path

    path = classifier_path()
    key = str(path)
    if key in _CACHE:
        return _CACHE[key]
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = _classifier_net()
        net.load_state_dict(state["weights"])
        net.eval()
        accuracy = float(state["test_accuracy"])
    else:
        net, accuracy = train_mnist_classifier()
        with atomic_path(path) as tmp:
            torch.save({"weights": net.state_dict(),
                        "test_accuracy": torch.tensor(accuracy)}, tmp)
    for p in net.parameters():
        p.requires_grad_(False)
    _CACHE[key] = (net, accuracy)
    return net, accuracy


def _as_images(x: torch.Tensor, what: str) -> torch.Tensor:
    """``x`` as an ``(n, 784)`` float tensor in [0, 1]; a clear error otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    x = x.detach().reshape(len(x), -1).to(torch.get_default_dtype())
    if x.shape[-1] != IMAGE_DIM or len(x) < 2:
        raise ValueError(f"{what} must be at least 2 MNIST images of 784 pixels, (n, 784) or "
                         f"(n, 28, 28); got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(f"{what} must hold finite pixel values in [0, 1]; got min "
                         f"{float(x.min()):.3g}, max {float(x.max()):.3g}")
    return x


def classifier_scores(samples: torch.Tensor, classifier: nn.Module) -> dict[str, float]:
    """What ``classifier`` (images -> 10 logits) says of ``samples``: confidence, entropies and
    the Inception-style score (see the module docstring)."""
    with torch.no_grad():
        logp = torch.log_softmax(classifier(samples), dim=-1)
    p = logp.exp()
    per_image_entropy = -(p * logp).sum(-1)
    marginal = p.mean(0)
    label_entropy = float(-(marginal * marginal.clamp_min(1e-30).log()).sum())
    mean_kl = label_entropy - float(per_image_entropy.mean())  # E KL(p(y|x) || p(y))
    return {
        "sample_confidence": float(p.max(-1).values.mean()),
        "sample_entropy": float(per_image_entropy.mean()),
        "sample_label_entropy": label_entropy,
        "inception_score": math.exp(mean_kl),
    }


def median_bandwidth(reference: torch.Tensor) -> float:
    """The median pairwise Euclidean distance of ``reference`` (the median heuristic)."""
    d = torch.cdist(reference, reference)
    upper = d[torch.triu_indices(len(d), len(d), offset=1).unbind()]
    return float(upper.median())


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased ``MMD^2`` of samples ``x`` and ``y`` with ``k(a, b) = exp(-|a-b|^2 / (2 h^2))``.

    Gretton et al. (2012), eq. (3). Written here because neither torch nor scikit-learn has a
    two-sample MMD, and the statistic is a few lines. Can be slightly negative when the two
    distributions agree.
    """
    def mean_offdiag(k: torch.Tensor) -> torch.Tensor:
        n = len(k)
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    gamma = 1.0 / (2.0 * bandwidth ** 2)
    kxx = torch.exp(-gamma * torch.cdist(x, x).square())
    kyy = torch.exp(-gamma * torch.cdist(y, y).square())
    kxy = torch.exp(-gamma * torch.cdist(x, y).square())
    return float(mean_offdiag(kxx) + mean_offdiag(kyy) - 2.0 * kxy.mean())


def _default_reference() -> torch.Tensor:
    from zoo.data import load

    return load("mnist").test["x"]


def score_samples(samples: torch.Tensor, *, reference: torch.Tensor | None = None,
                  classifier: nn.Module | None = None, max_samples: int = 1000,
                  max_reference: int = 1000) -> dict[str, float]:
    """Classifier scores and ``MMD^2`` against held-out images of generated MNIST ``samples``.

    ``samples``: ``(n, 784)`` or ``(n, 28, 28)`` pixel values in [0, 1] (the first
    ``max_samples`` are scored); ``reference``: held-out images (default: MNIST test grey
    levels; a fixed random subset of ``max_reference`` is used, since the static binarised
    test set is not in random order: its first and second thousand differ by MMD^2 0.28); ``classifier``: images -> 10 logits (default
    the cached :func:`mnist_classifier`, whose test accuracy is then reported as
    ``classifier_test_accuracy``). Deterministic: the global random state is neither used nor changed.

    Example: ``score_samples(torch.rand(500, 784))["sample_label_entropy"]``.
    """
    for name, value in (("max_samples", max_samples), ("max_reference", max_reference)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    x = _as_images(samples, "samples")[:max_samples]
    ref = _as_images(_default_reference() if reference is None else reference, "reference")
    if len(ref) > max_reference:  # a fixed random subset: stored test sets need not be shuffled
        keep = torch.randperm(len(ref), generator=torch.Generator().manual_seed(0))
        ref = ref[keep[:max_reference]]
    scores: dict[str, float] = {}
    if classifier is None:
        classifier, accuracy = mnist_classifier()
        scores["classifier_test_accuracy"] = accuracy
    scores.update(classifier_scores(x, classifier))
    bandwidth = median_bandwidth(ref)
    scores["mmd2"] = mmd2_unbiased(x, ref, bandwidth)
    scores["mmd_bandwidth"] = bandwidth
    scores["scored_samples"] = float(len(x))
    return scores


def describe(scores: Mapping[str, float]) -> str:
    """One line of the main scores, for logs."""
    return ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
