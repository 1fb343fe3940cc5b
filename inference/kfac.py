"""Kronecker-factored (KFAC) Laplace curvature of a network of linear layers, and draws from it.

A model that is a stack of linear layers offers a :class:`NetworkView`: a deterministic
``nn.Module`` of the network (its ``nn.Linear`` layers, in forward order, are the model's weight
and bias sites), the kind of its likelihood and the precision of its Gaussian weight prior.
For each linear layer ``l`` with inputs ``a`` (a 1 appended for the bias) and output ``s``, the
generalised Gauss-Newton (GGN) block of the negative log-likelihood is approximated by

    sum_n (a_n a_n^T) x (J_n^T Lambda_n J_n)  ~=  A_l x G_l / N,
    A_l = sum_n a_n a_n^T,    G_l = sum_n sum_c g_nc g_nc^T,   g_nc = J_n^T L_n[:, c]

(Martens and Grosse 2015; Ritter, Botev and Barber 2018), with ``Lambda_n = L_n L_n^T`` the
Hessian of the per-datum loss in the network output: ``tau I`` for a Gaussian likelihood of
noise precision ``tau``, ``diag(p) - p p^T`` (``L = diag(sqrt p) - p sqrt(p)^T``) for a
categorical one. ``G_l`` is exact (one backward pass per output unit, no label sampling), so
for one linear layer with one output and known noise the approximation *is* the Hessian. The
posterior precision of layer ``l`` is ``A_l x G_l / N + prior_precision I``; with the eigen-
decompositions ``A = U diag(lam) U^T`` and ``G = V diag(mu) V^T`` a draw of the layer's
``(in + 1, out)`` weight matrix ``[W; b]`` is ``mode + U (E / sqrt(lam mu^T / N + delta)) V^T``
with ``E`` standard normal. Layers are independent (block-diagonal), as in the papers.

Why by hand and not ``laplace-torch``: its ``KronLaplace`` is what this module would wrap, but
``laplace-torch`` requires ``torchvision`` (through ``torchmetrics``), and the only
``torchvision`` wheels for torch 2.13 are CUDA builds whose compiled operators do not load
next to the CPU torch (``import laplace`` fails with ``operator torchvision::nms does not
exist``); without a constraint pip upgrades torch to 2.14 with its CUDA libraries. The few
lines below (forward hooks on ``nn.Linear``, one ``autograd.grad`` per output unit) need
nothing beyond torch.

Usage::

    from inference.kfac import NetworkView, kron_factors, kron_draws
    view = NetworkView(module, sites=(("w0", "b0"), ("w1", "b1")), likelihood="gaussian",
                       prior_precision=1.0, noise_precision="precision")
    factors = kron_factors(view, {"w0": ..., "b0": ..., "precision": ...}, x)
    draws = kron_draws(view, mode, factors, num_data=len(x), num=200,
                       generator=torch.Generator().manual_seed(0))   # {"w0": (200, in, out)...}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

__all__ = ["NetworkView", "KronFactors", "kron_factors", "kron_draws", "kron_covariance"]

_LIKELIHOODS = ("gaussian", "categorical")


@dataclass(frozen=True)
class NetworkView:
    """A model's network as a deterministic ``nn.Module``, for curvature methods (KFAC).

    ``module`` maps inputs ``(N, in)`` to outputs ``(N, K)`` (regression means or class
    logits); its ``nn.Linear`` layers, in the order ``module.modules()`` yields them (forward
    order), hold the model's sites ``sites[l] = (weight_site, bias_site)``: a weight site is
    shaped ``(in, out)`` (the transpose of ``nn.Linear.weight``), a bias site ``(out,)`` or
    ``None``. ``likelihood``: ``"gaussian"`` (``y ~ N(output, 1 / noise_precision)``) or
    ``"categorical"`` (``y ~ Categorical(logits=output)``). ``noise_precision``: a site name
    or a fixed value (Gaussian only). ``prior_precision``: the precision of the zero-mean
    Gaussian prior of every weight and bias. ``inputs``: the model keyword holding ``x``.

    Example: ``NetworkView(nn.Sequential(nn.Linear(3, 1)), (("w0", "b0"),), "gaussian", 1.0,
    noise_precision=4.0)`` is a Bayesian linear regression with known noise sd 0.5.
    """

    module: nn.Module
    sites: tuple[tuple[str, str | None], ...]
    likelihood: str
    prior_precision: float
    noise_precision: float | str | None = None
    inputs: str = "x"

    def __post_init__(self) -> None:
        if self.likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r}; allowed: {_LIKELIHOODS}")
        if self.likelihood == "gaussian" and self.noise_precision is None:
            raise ValueError("a Gaussian likelihood needs noise_precision (a site or a value)")
        if not self.prior_precision > 0:
            raise ValueError(f"prior_precision must be positive, got {self.prior_precision}")
        if len(self.linear_layers()) != len(self.sites):
            raise ValueError(f"the module has {len(self.linear_layers())} nn.Linear layers but "
                             f"{len(self.sites)} (weight, bias) site pairs are named")

    def linear_layers(self) -> list[nn.Linear]:
        """The module's ``nn.Linear`` layers in forward order."""
        return [m for m in self.module.modules() if isinstance(m, nn.Linear)]

    @property
    def site_names(self) -> list[str]:
        """Every weight and bias site of the network."""
        return [s for pair in self.sites for s in pair if s is not None]

    def at(self, values: Mapping[str, torch.Tensor],
           dtype: torch.dtype = torch.float64) -> nn.Module:
        """A copy of the module in ``dtype`` with its weights set to the site ``values``."""
        module = copy.deepcopy(self.module).to(dtype)
        layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer, (w, b) in zip(layers, self.sites):
                layer.weight.copy_(torch.as_tensor(values[w]).T)
                if b is not None:
                    layer.bias.copy_(torch.as_tensor(values[b]))
        return module.requires_grad_(False)


@dataclass(frozen=True)
class KronFactors:
    """The Kronecker factors of one layer: ``A`` over its inputs (with a trailing 1 if it has
    a bias), ``G`` over its outputs; the layer's GGN is ``A x G / num_data``."""

    A: torch.Tensor
    G: torch.Tensor
    num_data: int


def _noise_precision(view: NetworkView, values: Mapping[str, torch.Tensor]) -> float:
    tau = view.noise_precision
    return float(torch.as_tensor(values[tau]) if isinstance(tau, str) else tau)


def kron_factors(view: NetworkView, values: Mapping[str, torch.Tensor], x: torch.Tensor, *,
                 chunk_size: int = 1024, max_rows: int | None = None,
                 generator: torch.Generator | None = None) -> list[KronFactors]:
    """The exact-GGN Kronecker factors of every linear layer at weights ``values`` over the
    inputs ``x`` (``(N, in)``), accumulated in float64 over chunks of ``chunk_size`` rows.

    ``max_rows``: estimate the factors from that many rows drawn without replacement (by
    ``generator``), each factor's sum scaled by N / rows, so the precision
    ``A G / N`` keeps the full data's scale; the cost falls in proportion (one backward pass
    per output unit and row). Example: ``kron_factors(view, mode, x, max_rows=5000)``.
    """
    num_data = int(x.shape[0])
    if max_rows is not None and max_rows < num_data:
        rows = torch.randperm(num_data, generator=generator)[:max_rows]
        factors = kron_factors(view, values, x[rows], chunk_size=chunk_size)
        scale = num_data / max_rows
        return [KronFactors(f.A * scale, f.G * scale, num_data) for f in factors]
    module = view.at(values)
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(index: int):
        def hook(_, args, output):
            if not output.requires_grad:  # the first layer: the graph starts at its output
                output.requires_grad_(True)
            seen[index] = (args[0], output)
        return hook

    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
    A = [None] * len(layers)
    G = [None] * len(layers)
    tau = _noise_precision(view, values) if view.likelihood == "gaussian" else None
    try:
        for xb in x.reshape(x.shape[0], -1).to(torch.float64).split(chunk_size):
            seen.clear()
            with torch.enable_grad():
                out = module(xb)
                if view.likelihood == "gaussian":  # L = sqrt(tau) I
                    columns = [torch.zeros_like(out).index_fill_(1, torch.tensor([c]),
                                                                 tau ** 0.5)
                               for c in range(out.shape[-1])]
                else:  # column c of L = diag(sqrt p) - p sqrt(p)^T: sqrt(p_c) (e_c - p)
                    p = torch.softmax(out.detach(), -1)
                    eye = torch.eye(out.shape[-1], dtype=out.dtype)
                    columns = [p[:, c:c + 1].sqrt() * (eye[c] - p) for c in range(out.shape[-1])]
                outputs = [seen[i][1] for i in range(len(layers))]
                for c, column in enumerate(columns):
                    grads = torch.autograd.grad(out, outputs, grad_outputs=column,
                                                retain_graph=c + 1 < len(columns))
                    for i, g in enumerate(grads):
                        G[i] = g.T @ g if G[i] is None else G[i] + g.T @ g
            for i, layer in enumerate(layers):
                a = seen[i][0].detach()
                if layer.bias is not None:
                    a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
                A[i] = a.T @ a if A[i] is None else A[i] + a.T @ a
    finally:
        for h in handles:
            h.remove()
    return [KronFactors(a, g, int(x.shape[0])) for a, g in zip(A, G)]


def _layer_matrix(view: NetworkView, values: Mapping[str, torch.Tensor], l: int
                  ) -> torch.Tensor:
    """Layer ``l``'s ``(in [+1], out)`` matrix ``[W; b]`` from site values."""
    w, b = view.sites[l]
    mat = torch.as_tensor(values[w], dtype=torch.float64)
    if b is not None:
        mat = torch.cat([mat, torch.as_tensor(values[b], dtype=torch.float64)[None]], 0)
    return mat


def _eig(f: KronFactors, prior_precision: float) -> tuple[torch.Tensor, torch.Tensor,
                                                          torch.Tensor]:
    lam, U = torch.linalg.eigh(f.A)
    mu, V = torch.linalg.eigh(f.G)
    # both factors are PSD; round-off can leave eigenvalues at -1e-16
    prec = lam.clamp_min(0)[:, None] * mu.clamp_min(0)[None] / f.num_data + prior_precision
    return U, V, prec


def kron_draws(view: NetworkView, mode: Mapping[str, torch.Tensor],
               factors: list[KronFactors], num: int, generator: torch.Generator
               ) -> tuple[dict[str, torch.Tensor], float]:
    """``num`` draws (float64) of every weight and bias site from the KFAC Laplace
    approximation at ``mode``, and the log-determinant of its covariance."""
    draws: dict[str, torch.Tensor] = {}
    log_det_cov = 0.0
    for l, f in enumerate(factors):
        U, V, prec = _eig(f, view.prior_precision)
        eps = torch.randn(num, *prec.shape, generator=generator, dtype=torch.float64)
        mat = _layer_matrix(view, mode, l) + U @ (eps / prec.sqrt()) @ V.T
        log_det_cov -= float(prec.log().sum())
        w, b = view.sites[l]
        if b is None:
            draws[w] = mat
        else:
            draws[w], draws[b] = mat[:, :-1], mat[:, -1]
    return draws, log_det_cov


def kron_covariance(view: NetworkView, factors: list[KronFactors], layer: int
                    ) -> torch.Tensor:
    """The dense covariance of one layer's ``[W; b]`` flattened row-major (weights then
    bias): ``(A x G / N + delta I)^-1``. For checks on small layers."""
    U, V, prec = _eig(factors[layer], view.prior_precision)
    Q = torch.kron(U, V)
    return Q @ torch.diag((1.0 / prec).reshape(-1)) @ Q.T
