"""Boltzmann machines against exact answers: AIS log Z and exact enumeration, the CD-k gradient
against the exact log-likelihood gradient, Gibbs sampling and parallel tempering against the
exact distribution (chi-square), the DBM's mean-field fixed point, the DBN's lower bound, and
the `zoo fit rbm --method cd` path end to end (saved, reloaded, re-evaluated)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from inference.energy import ais_schedule, run_ais
from inference.energy.tempering import swap_step, temperature_ladder
from inference.energy.train import cd_negative_state, contrastive_loss
from zoo.models.dbm_layers import DBM
from zoo.models.dbn_layers import DBN
from zoo.models.rbm_layers import RBM, enumerate_binary


def _random_rbm(n_visible: int, n_hidden: int, scale: float, seed: int,
                visible: str = "bernoulli") -> RBM:
    rbm = RBM(n_visible, n_hidden, visible=visible, init_scale=scale, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        rbm.b.copy_(0.5 * torch.randn(n_visible, generator=g))
        rbm.c.copy_(0.5 * torch.randn(n_hidden, generator=g))
        if visible == "bernoulli":
            rbm.base_bias.copy_(0.5 * torch.randn(n_visible, generator=g))
    return rbm


def _exact_visible_distribution(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor]:
    """All visible states and their exact probabilities (binary visible units)."""
    v = enumerate_binary(rbm.n_visible)
    with torch.no_grad():
        log_p = rbm.log_p_tilde(v).double()
    return v, torch.softmax(log_p, 0)


def _state_index(v: torch.Tensor) -> torch.Tensor:
    bits = 2 ** torch.arange(v.shape[1] - 1, -1, -1)
    return (v.long() * bits).sum(-1)


# ----------------------------------------------------------------- exact log Z and AIS
def test_exact_log_z_agrees_with_brute_force_enumeration():
    """Summing out one layer in closed form equals summing every joint state."""
    rbm = _random_rbm(5, 4, 1.0, seed=0)
    v, h = enumerate_binary(5), enumerate_binary(4)
    joint = -rbm.energy((v.repeat_interleave(16, 0), h.repeat(32, 1)))
    assert rbm.exact_log_z() == pytest.approx(float(torch.logsumexp(joint.detach().double(), 0)),
                                              abs=1e-4)
    dbm = DBM(4, 3, 2, init_scale=1.0, seed=1)
    with torch.no_grad():
        dbm.b.normal_(0, 0.5), dbm.c1.normal_(0, 0.5), dbm.c2.normal_(0, 0.5)
    v, h1, h2 = enumerate_binary(4), enumerate_binary(3), enumerate_binary(2)
    grid = torch.cartesian_prod(torch.arange(16), torch.arange(8), torch.arange(4))
    energies = dbm.energy((v[grid[:, 0]], h1[grid[:, 1]], h2[grid[:, 2]])).detach()
    assert dbm.exact_log_z() == pytest.approx(float(torch.logsumexp(-energies.double(), 0)),
                                              abs=1e-4)


@pytest.mark.parametrize("kind", ["rbm", "gaussian_rbm", "dbm"])
def test_ais_log_z_within_three_standard_errors_of_exact(kind):
    """AIS's log Z is consistent: within 3 of its own (delta-method) standard errors of the
    exact value. 200 runs keep the standard error near 0.05 nats; the schedule is short
    (1000 temperatures), so the log-of-mean's downward bias (about se^2 / 2) is negligible."""
    if kind == "rbm":
        model = _random_rbm(20, 12, 1.0, seed=1)
    elif kind == "gaussian_rbm":
        model = _random_rbm(6, 8, 0.3, seed=2, visible="gaussian")
    else:
        model = DBM(12, 8, 6, init_scale=1.0, seed=3)
        with torch.no_grad():
            model.b.normal_(0, 0.5), model.c1.normal_(0, 0.5), model.c2.normal_(0, 0.5)
            model.base_bias.normal_(0, 0.5)
    exact = model.exact_log_z()
    ais = run_ais(model, ais_schedule(1000), num_runs=200, seed=0)
    assert 0 < ais.log_z_se < 0.5
    assert abs(ais.log_z - exact) < 3 * ais.log_z_se, (ais.log_z, exact, ais.log_z_se)
    assert ais.log_z_low <= exact + 3 * ais.log_z_se and ais.log_z_high >= ais.log_z


def test_ais_schedule_follows_salakhutdinov_murray():
    betas = ais_schedule(14_500)
    assert len(betas) == 14_501 and betas[0] == 0.0 and betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)
    assert np.diff(betas)[0] == pytest.approx(1e-3) and np.diff(betas)[-1] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="at least 3"):
        ais_schedule(2)


# ----------------------------------------------------------------- CD gradient
def _exact_gradient(rbm: RBM, data: torch.Tensor) -> torch.Tensor:
    """d/dW of the mean log-likelihood by enumeration: E_data[v p(h|v)'] - E_model[v h']."""
    v, p = _exact_visible_distribution(rbm)
    with torch.no_grad():
        positive = data.T @ rbm.hidden_probs(data) / len(data)
        negative = (v * p[:, None].float()).T @ rbm.hidden_probs(v)
    return positive - negative


def test_cd_k_gradient_approaches_the_exact_gradient_as_k_grows():
    """CD-k's weight gradient (minus that of the trainer's loss) against the exact one on a
    6x4 RBM with strong weights (sd 2), where CD-1 is visibly biased. 20,000 chains make each
    component's Monte Carlo sd at most 1 / sqrt(2e4) = 0.007 against an exact gradient of norm
    1.2 (0.04 over its 24 components), so the cosines carry noise below 0.01: CD-1 points the right way (cosine about 0.77),
    CD-25 is nearly exact (about 0.997) and CD-100 within Monte Carlo error of exact."""
    rbm = _random_rbm(6, 4, 2.0, seed=4)
    g = torch.Generator().manual_seed(5)
    data = torch.bernoulli(torch.full((20, 6), 0.3), generator=g)
    exact = _exact_gradient(rbm, data)
    chains = data.repeat(1000, 1)
    cosines, errors = {}, {}
    for k in (1, 25, 100):
        rbm.zero_grad()
        contrastive_loss(rbm, rbm.positive_state(chains),
                         cd_negative_state(rbm, chains, k, g)).backward()
        estimate = -rbm.W.grad
        cosines[k] = float((estimate * exact).sum() / (estimate.norm() * exact.norm()))
        errors[k] = float((estimate - exact).norm())
    assert 0.5 < cosines[1] < 0.95, cosines
    assert cosines[25] > 0.99 and errors[25] < errors[1] / 3, (cosines, errors)
    assert errors[100] < 0.1, errors


# ----------------------------------------------------------------- sampling
def _chi_square_p_value(samples: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(_state_index(samples), minlength=len(probs)).double()
    expected = probs * len(samples)
    return float(stats.chisquare(counts.numpy(), expected.numpy()).pvalue)


def test_block_gibbs_sampling_matches_exact_distribution():
    """20,000 independent chains of a 4x3 RBM after 50 sweeps: a chi-square test of the 16
    visible states against the exact p(v) (a p-value below 1e-3 fails; at 1e-3 a correct
    sampler fails one seed in a thousand)."""
    rbm = _random_rbm(4, 3, 1.0, seed=6)
    _, probs = _exact_visible_distribution(rbm)
    g = torch.Generator().manual_seed(7)
    state = rbm.chain_state(rbm.ais_base_sample(20_000, g), g)
    with torch.no_grad():
        for _ in range(50):
            state = rbm.gibbs_step(state, generator=g)
    assert _chi_square_p_value(state[0], probs) > 1e-3


def test_parallel_tempering_keeps_the_model_distribution():
    """The beta=1 replica (10,000 chains) after Gibbs sweeps and replica swaps at 4
    temperatures is still
    distributed as p(v) (chi-square as above), and swaps are accepted at a sensible rate."""
    rbm = _random_rbm(4, 3, 2.0, seed=8)
    _, probs = _exact_visible_distribution(rbm)
    g = torch.Generator().manual_seed(9)
    betas = temperature_ladder(4)
    replicas = [rbm.chain_state(rbm.ais_base_sample(10_000, g), g) for _ in betas]
    rates = []
    with torch.no_grad():
        for step in range(30):
            replicas = [rbm.gibbs_step(s, b, g) for s, b in zip(replicas, betas)]
            replicas, rate = swap_step(rbm, replicas, betas, parity=step, generator=g)
            rates.append(rate)
    assert _chi_square_p_value(replicas[0][0], probs) > 1e-3
    assert 0.05 < np.mean(rates) < 1.0


# ----------------------------------------------------------------- DBM, DBN
def test_dbm_mean_field_fixed_point_satisfies_its_equations():
    dbm = DBM(10, 6, 4, init_scale=1.0, mean_field_steps=500, mean_field_tol=1e-7, seed=10)
    v = torch.bernoulli(torch.full((8, 10), 0.4), generator=torch.Generator().manual_seed(11))
    mu1, mu2 = dbm.mean_field(v)
    with torch.no_grad():
        assert torch.allclose(mu1, torch.sigmoid(dbm.c1 + v @ dbm.W1 + mu2 @ dbm.W2.T),
                              atol=1e-5)
        assert torch.allclose(mu2, torch.sigmoid(dbm.c2 + mu1 @ dbm.W2), atol=1e-5)


def test_dbn_bound_is_below_exact_log_likelihood():
    """The DBN's variational bound (exact top log Z, 400 draws of q per image) is below the
    exact log p(v) = log sum_h1 p(v | h1) p_top(h1), and within a few nats of it; the bound's
    Monte Carlo sd per image is under 0.1 nats with 400 draws, far below the margins."""
    dbn = DBN(6, (4, 5), init_scale=1.0, seed=12)
    v = enumerate_binary(6)[::7]
    log_z_top = dbn.top.exact_log_z()
    h1 = enumerate_binary(4)
    with torch.no_grad():
        p_v = dbn.layers[0].visible_mean(h1)  # (16, 6)
        log_p_v_given_h = (v[:, None] * p_v.log() + (1 - v[:, None]) * (-p_v).log1p()).sum(-1)
        log_prior = dbn.top.log_p_tilde(h1) - log_z_top
        exact = torch.logsumexp(log_p_v_given_h + log_prior, 1).double()
    bound = dbn.held_out_log_likelihood(v, log_z_top, samples=400,
                                        generator=torch.Generator().manual_seed(13))
    assert torch.all(bound <= exact + 0.05)
    assert torch.all(bound > exact - 5.0)


# ----------------------------------------------------------------- methods and CLI
def test_energy_methods_refuse_other_models_and_bad_settings():
    from inference import methods
    from zoo.fit import fit

    with pytest.raises(ValueError, match="energy function"):
        fit("vae", "cd", num_steps=1)
    with pytest.raises(ValueError, match="only"):
        fit("rbm", "svi", num_steps=1)
    with pytest.raises(methods.SettingsError, match="k must be an integer >= 1"):
        methods.get("cd").settings_from({"k": 0})
    with pytest.raises(methods.SettingsError, match="num_temperatures"):
        methods.get("pcd").settings_from({"num_temperatures": 0})


@pytest.mark.smoke
def test_zoo_fit_rbm_cd_writes_ais_likelihood_and_figures_and_reloads(tmp_path):
    """`zoo fit rbm --method cd` on binarised MNIST (8 hidden units, 20 updates) writes the AIS
    test log-likelihood beside the exact one and the figures; `zoo evaluate` on the saved run
    gives the same numbers (parameters restored from plain tensors, fixed evaluation seed)."""
    from zoo.cli import main
    from zoo.evaluation import evaluate_fit  # noqa: F401  (the CLI's evaluate path)
    from zoo.reload import load_run

    out = tmp_path / "rbm"
    assert main(["fit", "rbm", "--method", "cd", "--config", "hidden=8", "ais_temperatures=200",
                 "ais_runs=30", "gibbs_steps=5", "eval_max_points=200", "--set", "num_steps=20",
                 "k=1", "progress_bar=false", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_ll", "log_z", "log_z_se", "log_z_exact", "test_ll_exact"} <= set(metrics)
    assert abs(metrics["log_z"] - metrics["log_z_exact"]) < max(3 * metrics["log_z_se"], 0.5)
    assert math.isfinite(metrics["test_ll"]) and metrics["test_ll"] < 0
    for figure in ("filters.png", "gibbs_samples.png", "ais_log_weights.png",
                   "recon_error.png"):
        assert (out / "plots" / figure).is_file()
    result, model, dataset = load_run(out)
    again = model.evaluate(dataset, result)
    assert again["test_ll"] == pytest.approx(metrics["test_ll"], abs=1e-6)


def test_budgets_cap_energy_training_and_ais():
    """A budget caps the energy methods' updates and time and the AIS schedule (the smoke
    size runs 3 updates per stage and 20 temperatures), as it caps SVI."""
    from benchmarks.budget import SMOKE, Budget, apply_budget
    from benchmarks.suite import load_suite

    suite = load_suite("boltzmann", validate=False)
    tiny = apply_budget(suite, SMOKE)
    energy = [c for c in tiny.cells if c.method in ("cd", "pcd")]
    assert {c.model for c in energy} == {"rbm", "dbn", "dbm"}
    assert all(c.settings["num_steps"] == 3 and c.config["ais_temperatures"] == 20
               for c in energy)
    timed = apply_budget(suite, Budget(minutes=0.5, ais_temperatures=4000))
    assert all(c.settings["time_limit_s"] == 30.0 and c.config["ais_temperatures"] == 4000
               for c in timed.cells if c.method in ("cd", "pcd"))
