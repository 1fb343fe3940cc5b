"""Kronecker-factored Laplace: exact on one linear-Gaussian layer with one output and known
noise; exact GGN blocks for one datum (where the Kronecker factorisation is exact) in a deeper
net and for a categorical likelihood; draws shaped like the other methods'; clear refusals."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from inference import methods
from inference.kfac import NetworkView, kron_covariance, kron_factors
from inference.methods.capabilities import ModelTraits

SIGMA = 0.5


def linear_layer(x, y=None, subsample_size=None):
    """Bayesian linear regression written as one linear layer: w0 (3, 1), b0 (1,)."""
    w = pyro.sample("w0", dist.Normal(0.0, 1.0).expand([3, 1]).to_event(2))
    b = pyro.sample("b0", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
        mean = (x[idx] @ w + b).squeeze(-1)
        pyro.sample("y", dist.Normal(mean, SIGMA), obs=None if y is None else y[idx])


def _view() -> NetworkView:
    return NetworkView(nn.Sequential(nn.Linear(3, 1)), (("w0", "b0"),), "gaussian",
                       prior_precision=1.0, noise_precision=SIGMA ** -2)


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64) + 0.3 + SIGMA * torch.randn(
        30, generator=gen, dtype=torch.float64)
    design = torch.cat([x, torch.ones(30, 1, dtype=torch.float64)], 1)
    precision = design.T @ design / SIGMA ** 2 + torch.eye(4, dtype=torch.float64)
    cov = torch.linalg.inv(precision)
    mean = cov @ design.T @ y / SIGMA ** 2
    return {"x": x.float(), "y": y.float()}, cov.numpy(), mean.numpy()


def test_kfac_covariance_is_exact_for_one_output_and_known_noise(problem):
    kwargs, cov, _ = problem
    # the curvature of a linear-Gaussian model does not depend on where it is taken
    at = {"w0": torch.randn(3, 1), "b0": torch.randn(1)}
    factors = kron_factors(_view(), at, kwargs["x"], chunk_size=7)  # several chunks
    np.testing.assert_allclose(kron_covariance(_view(), factors, 0).numpy(), cov,
                               rtol=1e-5, atol=1e-8)


def test_kfac_laplace_draws_recover_the_exact_posterior(problem):
    kwargs, cov, mean = problem
    n = 4000
    target = methods.Target(linear_layer, kwargs, traits=ModelTraits(layered_network=True),
                            network=_view(), name="linear_layer")
    result = methods.get("kfac_laplace").run(
        target, {"num_steps": 800, "lr": 0.05, "init": "median", "num_posterior_draws": n}, seed=1)
    draws = np.concatenate([result.posterior["w0"].reshape(n, 3),
                            result.posterior["b0"].reshape(n, 1)], 1)
    sd = np.sqrt(np.diag(cov))
    # the mean: Monte Carlo error sd / sqrt(n), 5 of them, plus 1e-3 for Adam's mode
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 5 * sd / np.sqrt(n) + 1e-3)
    # each entry of the sample covariance, in units of sd_i sd_j, has sd <= sqrt(2 / n) = 0.022
    err = (np.cov(draws.T) - cov) / np.outer(sd, sd)
    assert np.abs(err).max() < 5 * np.sqrt(2 / n)


def _ggn_block(view: NetworkView, values, x, layer: int, loss_hessian) -> torch.Tensor:
    """The exact GGN block of one layer's ``[W; b]`` (row-major) for the data ``x``:
    ``sum_n J_n^T Lambda_n J_n`` with the Jacobian by autograd."""
    w_site, b_site = view.sites[layer]
    mat = torch.cat([values[w_site], values[b_site][None]], 0).double()
    module = view.at(values)
    name = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)][layer]

    def output(flat):
        m = flat.reshape(mat.shape)
        params = {f"{name}.weight": m[:-1].T, f"{name}.bias": m[-1]}
        return torch.func.functional_call(module, params, (x.double(),))

    J = torch.autograd.functional.jacobian(output, mat.reshape(-1))  # (N, K, P)
    out = output(mat.reshape(-1))
    return sum(J[i].T @ loss_hessian(out[i]) @ J[i] for i in range(x.shape[0]))


def _tiny_net_values() -> dict[str, torch.Tensor]:
    """Random weights of a 3-4-1 BNN and its noise precision 3."""
    gen = torch.Generator().manual_seed(1)
    return {"w0": torch.randn(3, 4, generator=gen), "b0": torch.randn(4, generator=gen),
            "w1": torch.randn(4, 1, generator=gen), "b1": torch.randn(1, generator=gen),
            "precision": torch.tensor(3.0)}


def test_kron_factors_match_the_ggn_of_one_datum_in_a_deeper_net():
    import zoo

    net = zoo.get("bnn", hidden=(4,), activation="tanh")
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(0))
    view = net.network_view({"x": x})
    values = _tiny_net_values()
    factors = kron_factors(view, values, x)
    for layer, f in enumerate(factors):
        ggn = _ggn_block(view, values, x, layer, lambda o: 3.0 * torch.eye(1).double())
        torch.testing.assert_close(torch.kron(f.A, f.G) / f.num_data, ggn)


def test_factors_from_a_row_subset_keep_the_full_data_scale():
    """With every row the same datum, any subset of rows gives the full data's factors exactly,
    so the N / rows scaling (and nothing else) is what this checks."""
    import zoo

    net = zoo.get("bnn", hidden=(4,), activation="tanh")
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(0)).expand(40, 3)
    view = net.network_view({"x": x})
    values = _tiny_net_values()
    full = kron_factors(view, values, x)
    sub = kron_factors(view, values, x, max_rows=7, generator=torch.Generator().manual_seed(2))
    for f, g in zip(full, sub):
        assert g.num_data == f.num_data == 40
        torch.testing.assert_close(torch.kron(g.A, g.G), torch.kron(f.A, f.G))


def test_kron_factors_match_the_hessian_of_a_softmax_layer_for_one_datum():
    view = NetworkView(nn.Sequential(nn.Linear(3, 4)), (("w0", "b0"),), "categorical", 1.0)
    gen = torch.Generator().manual_seed(2)
    values = {"w0": torch.randn(3, 4, generator=gen), "b0": torch.randn(4, generator=gen)}
    x = torch.randn(1, 3, generator=gen)
    f = kron_factors(view, values, x)[0]

    def softmax_hessian(logits):
        p = torch.softmax(logits, -1)
        return torch.diag(p) - torch.outer(p, p)

    # for a linear softmax layer the GGN is the Hessian of the cross-entropy
    torch.testing.assert_close(torch.kron(f.A, f.G), _ggn_block(view, values, x, 0,
                                                                softmax_hessian))


def test_kfac_laplace_draws_are_shaped_like_the_other_methods():
    from zoo.fit import fit

    settings = {"num_steps": 50, "batch_size": 32, "num_posterior_draws": 20}
    kfac, _, _ = fit("bnn", "kfac_laplace", data="uci-yacht", config={"hidden": [5]}, seed=0,
                     **settings)
    lap, _, _ = fit("bnn", "laplace", data="uci-yacht", config={"hidden": [5]}, seed=0,
                    **settings)
    assert kfac.family == "laplace"
    assert {k: v.shape for k, v in kfac.posterior.items()} == {
        k: v.shape for k, v in lap.posterior.items()}
    assert all(np.isfinite(v).all() for v in kfac.posterior.values())


def test_kfac_laplace_refuses_a_model_without_a_network_view():
    from zoo.fit import fit

    target = methods.Target(linear_layer, {"x": torch.zeros(4, 3), "y": torch.zeros(4)},
                            name="linear_layer")
    with pytest.raises(ValueError, match="network of linear layers.*linear_layer"):
        methods.get("kfac_laplace").run(target, {"num_steps": 1})
    with pytest.raises(ValueError, match="stack of linear layers"):
        fit("bnn", "kfac_laplace", data="uci-yacht", config={"prior": "scale_mixture"},
            num_steps=1)
    with pytest.raises(ValueError, match="kfac_laplace.*eight_schools"):
        fit("eight_schools-eight_schools_noncentered", "kfac_laplace", num_steps=1)
