"""Laplace approximations of a model's posterior at a mode: diagonal or full precision.

At a mode ``z*`` of the full-data potential ``U`` (unconstrained, flat; see
:class:`inference.potential.Potential`) the posterior is approximated by
``N(z*, H^-1)`` with ``H`` the Hessian of ``U`` at ``z*`` -- all of it (``"full"``) or its
diagonal (``"diag"``). Restricting the potential to some sites (the last layer of a net) with
the others fixed at the mode gives the last-layer Laplace of Kristiadi et al. 2020.

The Hessian is computed exactly, one Hessian-vector product per row, so it costs ``dim``
backward passes of the full-data potential: fine for last layers and small nets (a UCI MLP has
a few hundred weights), too dear for MNIST-sized nets, where :func:`hessian` refuses beyond
``max_dim``. An indefinite Hessian (a mode not yet reached) has its eigenvalues (``"full"``)
or entries (``"diag"``) floored at ``min_precision``; the count floored is returned.

Why not ``laplace-torch``: it fits ``nn.Module`` networks with a built-in likelihood
(``regression``/``classification``) through backends that read layer inputs and outputs
(GGN, KFAC). The zoo's models are Pyro programs whose weights are sample sites of any
prior, with noise precisions and other latents beside them, so the curvature here is the
exact Hessian of the model's own log joint. Kronecker factors need layer structure, which a
model offers through ``ZooModel.network_view``; :mod:`inference.kfac` computes them (and says
why not with ``laplace-torch`` either).

Usage::

    from inference.laplace import hessian, laplace_draws
    H = hessian(pot, z_map)
    draws, info = laplace_draws(z_map, H, "full", 200, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import torch

from inference.potential import Potential

__all__ = ["hessian", "laplace_draws"]


def hessian(potential: Potential, z: torch.Tensor, *, diagonal_only: bool = False,
            max_dim: int = 5000) -> torch.Tensor:
    """The Hessian of the full-data potential at ``z``: ``(dim, dim)``, or ``(dim,)`` if
    ``diagonal_only`` (the same cost; only the diagonal is kept)."""
    dim = z.shape[-1]
    if dim > max_dim:
        raise ValueError(f"an exact Hessian of {dim} parameters needs {dim} backward passes; "
                         f"max_dim={max_dim}. Use a last-layer Laplace (sites=...) or raise "
                         "max_dim")
    z = z.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(potential(z, full_data=True), z, create_graph=True)
    rows = []
    eye = torch.eye(dim, dtype=z.dtype)
    for i in range(dim):
        (row,) = torch.autograd.grad(grad, z, grad_outputs=eye[i], retain_graph=True)
        rows.append(row[i:i + 1] if diagonal_only else row)
    out = torch.cat(rows) if diagonal_only else torch.stack(rows)
    return out if diagonal_only else 0.5 * (out + out.T)


def laplace_draws(z_map: torch.Tensor, precision: torch.Tensor, structure: str, num: int,
                  generator: torch.Generator, min_precision: float = 1e-6
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """Draws ``(num, dim)`` from ``N(z_map, precision^-1)``; ``precision`` is ``(dim,)`` for
    ``"diag"`` and ``(dim, dim)`` for ``"full"``. Returns the draws and
    ``{"floored": entries or eigenvalues raised to min_precision, "log_det_cov": ...}``."""
    z_map = z_map.detach().double()
    eps = torch.randn(num, z_map.shape[-1], generator=generator, dtype=torch.float64)
    if structure == "diag":
        prec = precision.double()
        floored = int((prec < min_precision).sum())
        prec = prec.clamp_min(min_precision)
        draws = z_map + eps / prec.sqrt()
        return draws, {"floored": float(floored), "log_det_cov": float(-prec.log().sum())}
    if structure != "full":
        raise ValueError(f"structure must be 'diag' or 'full', got {structure!r}")
    evals, evecs = torch.linalg.eigh(precision.double())
    floored = int((evals < min_precision).sum())
    evals = evals.clamp_min(min_precision)
    draws = z_map + (eps / evals.sqrt()) @ evecs.T
    return draws, {"floored": float(floored), "log_det_cov": float(-evals.log().sum())}
