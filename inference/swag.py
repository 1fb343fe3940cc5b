"""SWAG (Maddox et al. 2019): a Gaussian fitted to the SGD iterates of a flat parameter vector.

:class:`SWAGMoments` keeps the running mean and second moment of the iterates it is given and
the last ``rank`` deviations ``theta_i - mean_i`` (the running mean after adding ``theta_i``, as
in the paper), and samples ``theta = mean + sqrt(scale) (diag^1/2 z1 + D z2 / sqrt(K - 1))``,
i.e. from ``N(mean, scale (diag + D D^T / (K - 1)))``, with ``diag = E[theta^2] - mean^2``
and ``scale = 1/2`` (the paper's average of the diagonal and low-rank parts).

Why by hand: the reference implementation (``wjmaddox/swa_gaussian``) is research code over
``nn.Module`` parameters, not a maintained package; the moments are a few lines.

Usage::

    from inference.swag import SWAGMoments
    swag = SWAGMoments(dim=10, rank=20)
    for theta in iterates:
        swag.update(theta)
    draws = swag.sample(100, torch.Generator().manual_seed(0))   # (100, 10)
"""

from __future__ import annotations

import torch

__all__ = ["SWAGMoments"]


class SWAGMoments:
    """Running first and second moments and the last ``rank`` deviations of the iterates."""

    def __init__(self, dim: int, rank: int = 20, min_var: float = 1e-30) -> None:
        if dim < 1 or rank < 0:
            raise ValueError(f"dim must be >= 1 and rank >= 0, got {dim}, {rank}")
        self.dim, self.rank, self.min_var = dim, rank, min_var
        self.count = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.sq_mean = torch.zeros(dim, dtype=torch.float64)
        self._deviations: list[torch.Tensor] = []

    def update(self, theta: torch.Tensor) -> None:
        """Add one iterate ``theta`` (shape ``(dim,)``)."""
        theta = theta.detach().reshape(-1).to(torch.float64)
        if theta.shape[0] != self.dim:
            raise ValueError(f"iterate has {theta.shape[0]} entries, expected {self.dim}")
        self.count += 1
        w = 1.0 / self.count
        self.mean = (1.0 - w) * self.mean + w * theta
        self.sq_mean = (1.0 - w) * self.sq_mean + w * theta * theta
        if self.rank:
            self._deviations.append(theta - self.mean)
            self._deviations = self._deviations[-self.rank:]

    @property
    def variance(self) -> torch.Tensor:
        """The diagonal ``E[theta^2] - mean^2`` (floored at ``min_var``)."""
        return (self.sq_mean - self.mean ** 2).clamp_min(self.min_var)

    @property
    def deviations(self) -> torch.Tensor:
        """``D``: the last ``K <= rank`` deviations as columns, shape ``(dim, K)``."""
        if not self._deviations:
            return torch.zeros(self.dim, 0, dtype=torch.float64)
        return torch.stack(self._deviations, dim=1)

    def covariance(self, scale: float = 0.5, low_rank: bool = True) -> torch.Tensor:
        """The fitted covariance ``scale (diag + D D^T / (K - 1))`` (dense; for small ``dim``)."""
        cov = torch.diag(self.variance)
        dev = self.deviations
        if low_rank and dev.shape[1] > 1:
            cov = cov + dev @ dev.T / (dev.shape[1] - 1)
        return scale * cov

    def sample(self, num: int, generator: torch.Generator, scale: float = 0.5,
               low_rank: bool = True) -> torch.Tensor:
        """``num`` draws from the fitted Gaussian, shape ``(num, dim)`` (float64)."""
        if self.count < 1:
            raise ValueError("SWAG has no iterates yet; call update() first")
        z1 = torch.randn(num, self.dim, generator=generator, dtype=torch.float64)
        out = z1 * self.variance.sqrt()
        dev = self.deviations
        if low_rank and dev.shape[1] > 1:
            z2 = torch.randn(num, dev.shape[1], generator=generator, dtype=torch.float64)
            out = out + z2 @ dev.T / (dev.shape[1] - 1) ** 0.5
        return self.mean + scale ** 0.5 * out
