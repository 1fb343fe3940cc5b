"""The reference models: exact log joints, broadcasting, Stan names, the conjugate posterior.

Every log joint is recomputed independently with scipy.stats from the raw data arrays; flat
(improper) priors contribute 0 and densities are in the constrained space (no Jacobian), as in
posteriordb's Stan programs up to Stan's dropped constants.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import pytest
import torch
from scipy import stats
from sklearn.linear_model import Ridge

import zoo
from zoo.data import load
from zoo.data.posteriordb import POSTERIORS
from zoo.models.linear_regression import nig_posterior
from zoo.models.posteriordb_base import align_global, flat_prior
from zoo.models.posteriordb_models import lag_matrix
from zoo.models.stan_names import to_stan_draws

POSTERIORDB = POSTERIORS  # every shared posterior has a port under the same name
ALL = POSTERIORDB + ("conjugate_linear_regression",)

F64 = torch.float64


def _t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=F64)


def _np(dataset, key) -> np.ndarray:
    return np.asarray(dataset.train[key], dtype=np.float64)


def _log_joint(model, kwargs, params) -> float:
    trace = poutine.trace(poutine.condition(model.model, data=params)).get_trace(**kwargs)
    return float(trace.log_prob_sum())


# -- each model's parameters at a fixed point and scipy's log joint there -------------------
def _case(name: str, ds) -> tuple[dict[str, torch.Tensor], float]:
    norm, halfcauchy = stats.norm, stats.halfcauchy
    if name.startswith("eight_schools"):
        y, sigma = _np(ds, "y"), _np(ds, "sigma")
        mu, tau = 1.5, 2.5
        prior = norm.logpdf(mu, 0, 5) + halfcauchy.logpdf(tau, scale=5)
        if name.endswith("noncentered"):
            trans = np.linspace(-1.2, 1.5, 8)
            theta = mu + tau * trans
            params = {"mu": _t(mu), "tau": _t(tau), "theta_trans": _t(trans)}
            prior += norm.logpdf(trans).sum()
        else:
            theta = np.linspace(-2.0, 9.0, 8)
            params = {"mu": _t(mu), "tau": _t(tau), "theta": _t(theta)}
            prior += norm.logpdf(theta, mu, tau).sum()
        return params, prior + norm.logpdf(y, theta, sigma).sum()
    if name == "kidiq-kidscore_momiq":
        beta, sigma = np.array([26.0, 0.6]), 18.0
        mean = beta[0] + beta[1] * _np(ds, "mom_iq")
        expected = halfcauchy.logpdf(sigma, scale=2.5) + norm.logpdf(
            _np(ds, "kid_score"), mean, sigma).sum()
        return {"beta": _t(beta), "sigma": _t(sigma)}, expected
    if name == "earnings-logearn_height":
        beta, sigma = np.array([5.8, 0.06]), 0.9
        mean = beta[0] + beta[1] * _np(ds, "height")
        expected = norm.logpdf(np.log(_np(ds, "earn")), mean, sigma).sum()  # flat priors
        return {"beta": _t(beta), "sigma": _t(sigma)}, expected
    if name == "mesquite-logmesquite_logvolume":
        beta, sigma = np.array([5.2, 0.72]), 0.41
        volume = _np(ds, "diam1") * _np(ds, "diam2") * _np(ds, "canopy_height")
        mean = beta[0] + beta[1] * np.log(volume)
        expected = norm.logpdf(np.log(_np(ds, "weight")), mean, sigma).sum()  # flat priors
        return {"beta": _t(beta), "sigma": _t(sigma)}, expected
    if name == "sblrc-blr":
        beta, sigma = np.array([1.1, 0.9, 1.0, 1.05, 0.95]), 2.0
        expected = (norm.logpdf(beta, 0, 10).sum() + stats.halfnorm.logpdf(sigma, scale=10)
                    + norm.logpdf(_np(ds, "y"), _np(ds, "X") @ beta, sigma).sum())
        return {"beta": _t(beta), "sigma": _t(sigma)}, expected
    if name == "arK-arK":
        y, order = _np(ds, "y"), int(ds.train["K"])
        alpha, beta, sigma = 0.05, np.array([0.7, 0.4, 0.1, -0.1, 0.05]), 0.15
        expected = (norm.logpdf(alpha, 0, 10) + norm.logpdf(beta, 0, 10).sum()
                    + halfcauchy.logpdf(sigma, scale=2.5))
        for t in range(order, len(y)):  # y[t] given y[t-1], ..., y[t-K] (0-based)
            mean = alpha + sum(beta[k] * y[t - k - 1] for k in range(order))
            expected += norm.logpdf(y[t], mean, sigma)
        return {"alpha": _t(alpha), "beta": _t(beta), "sigma": _t(sigma)}, expected
    if name == "conjugate_linear_regression":  # registry defaults: a0=2, b0=1, m0=0, V0=100 I
        x, y = _np(ds, "x"), _np(ds, "y")
        design = np.column_stack([np.ones(len(y)), x])
        beta = np.linspace(-0.3, 0.4, design.shape[1])
        sigma2 = 0.55
        expected = (stats.invgamma.logpdf(sigma2, 2.0, scale=1.0)
                    + stats.multivariate_normal.logpdf(beta, np.zeros_like(beta),
                                                       sigma2 * 100.0 * np.eye(len(beta)))
                    + norm.logpdf(y, design @ beta, np.sqrt(sigma2)).sum())
        return {"beta": _t(beta), "sigma2": _t(sigma2)}, expected
    raise AssertionError(name)


@pytest.fixture(scope="module")
def datasets():
    return {name: load(zoo.spec(name).default_data) for name in ALL}


# -- registry ------------------------------------------------------------------------------
def test_registry_lists_every_reference_model_with_description_and_data():
    specs = {s.name: s for s in zoo.list_models()}
    for name in ALL:
        assert name in specs, f"{name} not registered"
        entry = specs[name]
        assert len(entry.description) > 20
        assert "nuts" in entry.methods and "svi" in entry.methods
        expected_data = "diabetes" if name == "conjugate_linear_regression" else name
        assert entry.default_data == expected_data


def test_unknown_model_error_names_the_known_models():
    with pytest.raises(zoo.UnknownModelError) as err:
        zoo.get("no-such-model")
    message = str(err.value)
    assert "no-such-model" in message
    for name in ALL:
        assert name in message


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="dtype"):
        zoo.get("sblrc-blr", dtype="int8")
    with pytest.raises(ValueError, match="a0 and b0"):
        zoo.get("conjugate_linear_regression", a0=-1.0)


# -- exact log joints ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_log_joint_matches_scipy(name, datasets):
    model = zoo.get(name)
    ds = datasets[name]
    params, expected = _case(name, ds)
    got = _log_joint(model, model.model_kwargs(ds), params)
    # float64 throughout; scipy and torch differ only by summation order
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-8)


def test_flat_prior_has_zero_density_and_samples_on_its_support():
    like = torch.zeros(3, dtype=F64)
    positive = flat_prior(torch.distributions.constraints.positive, (), like=like)
    real = flat_prior(torch.distributions.constraints.real, (2,), like=like)
    assert float(positive.log_prob(_t(123.0))) == 0.0
    assert float(real.log_prob(_t([5.0, -7.0]))) == 0.0
    draws = positive.sample((100,))
    assert bool((draws > 0).all()) and draws.dtype == F64
    assert real.event_shape == (2,)
    with pytest.raises(ValueError, match="supports"):
        flat_prior(torch.distributions.constraints.unit_interval, (), like=like)


def test_ark_lag_matrix_rows_hold_previous_values():
    y = torch.arange(10.0)
    lags = lag_matrix(y, 3)
    assert lags.shape == (7, 3)
    # row for t = 5 (0-based): y[4], y[3], y[2]
    assert lags[5 - 3].tolist() == [4.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="lag order"):
        lag_matrix(y, 10)


# -- broadcasting over draws ---------------------------------------------------------------
def _draws(params: dict[str, torch.Tensor], num: int) -> dict[str, torch.Tensor]:
    """``num`` distinct parameter sets near ``params`` (positive sites stay positive)."""
    scale = torch.linspace(0.9, 1.1, num, dtype=F64)
    return {k: v * scale.reshape((num,) + (1,) * v.dim()) for k, v in params.items()}


def _per_site_log_probs(trace, leading: int) -> dict[str, torch.Tensor]:
    trace.compute_log_prob()
    out = {}
    for site_name, site in trace.nodes.items():
        if site["type"] == "sample" and "log_prob" in site and not site_is_subsample(site):
            lp = site["log_prob"]
            out[site_name] = lp.reshape(lp.shape[:leading] + (-1,)).sum(-1) if leading else lp.sum()
    return out


@pytest.mark.parametrize("name", ALL)
def test_models_broadcast_over_a_vectorised_draw_plate(name, datasets):
    model = zoo.get(name)
    ds = datasets[name]
    kwargs = model.model_kwargs(ds)
    params, _ = _case(name, ds)
    num = 3
    draws = _draws(params, num)
    looped = []
    for i in range(num):
        trace = poutine.trace(poutine.condition(model.model, data={k: v[i] for k, v in
                                                                   draws.items()})).get_trace(**kwargs)
        looped.append(_per_site_log_probs(trace, 0))
    # Layout 1: the plate's own layout, (S, 1) for scalars and (S, 1, D) for vectors, except
    # sites inside the data plate (eight schools' theta), which are (S, J).
    in_plate = {"theta", "theta_trans"}
    batched = {k: v if k in in_plate else v.reshape((num, 1) + v.shape[1:])
               for k, v in draws.items()}
    with pyro.plate("draws", num, dim=-2):
        trace = poutine.trace(poutine.condition(model.model, data=batched)).get_trace(**kwargs)
    vectorised = _per_site_log_probs(trace, 1)
    for site_name, value in vectorised.items():
        expected = torch.stack([lp[site_name] for lp in looped])
        assert value.shape == (num,)
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-9)
    # Layout 2: Predictive(parallel=True) / inference.log_likelihood give vectors as (S, D)
    predictive_layout = {k: v if v.dim() > 1 else v.reshape(num, 1) for k, v in draws.items()}
    with pyro.plate("draws", num, dim=-2):
        trace = poutine.trace(poutine.condition(model.model, data=predictive_layout)
                              ).get_trace(**kwargs)
    obs = trace.nodes["y"]["fn"].log_prob(trace.nodes["y"]["value"])
    assert obs.shape == (num, kwargs["y"].shape[0])
    torch.testing.assert_close(obs.sum(-1), torch.stack([lp["y"] for lp in looped]),
                               rtol=1e-12, atol=1e-9)


def test_align_global_layouts():
    assert align_global(torch.zeros(4)).shape == (4,)
    assert align_global(torch.zeros(3, 4)).shape == (3, 1, 4)
    assert align_global(torch.zeros(3, 1, 4)).shape == (3, 1, 4)


def test_subsampled_likelihood_is_rescaled_to_the_full_data():
    model = zoo.get("sblrc-blr")
    ds = load("sblrc-blr")
    kwargs = model.model_kwargs(ds)
    params, _ = _case("sblrc-blr", ds)
    trace = poutine.trace(poutine.condition(model.model, data=params)).get_trace(
        **kwargs, subsample_size=10)
    trace.compute_log_prob()
    site = trace.nodes["y"]
    assert site["value"].shape == (10,)
    assert site["scale"] == pytest.approx(10.0)  # N / subsample_size = 100 / 10


# -- Stan names ----------------------------------------------------------------------------
def test_to_stan_draws_names_and_values():
    beta = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    out = to_stan_draws({"beta": beta, "sigma": np.ones((2, 3))})
    assert list(out) == ["beta[1]", "beta[2]", "sigma"]
    np.testing.assert_array_equal(out["beta[2]"], beta[:, :, 1])
    matrix = to_stan_draws({"L": np.zeros((1, 4, 2, 3))})
    assert "L[2,3]" in matrix and len(matrix) == 6
    # singleton plate dims are dropped when event dims are declared
    squeezed = to_stan_draws({"beta": beta[:, :, None, :]}, {"beta": 1})
    np.testing.assert_array_equal(squeezed["beta[1]"], beta[:, :, 0])
    with pytest.raises(KeyError, match="lacks"):
        to_stan_draws({"beta": beta}, {"sigma": 0})
    with pytest.raises(ValueError, match="event dim"):
        to_stan_draws({"beta": np.zeros((2, 3, 4, 2))}, {"beta": 1})


@pytest.mark.parametrize("name", POSTERIORDB)
def test_stan_names_of_a_trace_match_the_reference_draws(name, datasets):
    model = zoo.get(name)
    ds = datasets[name]
    trace = poutine.trace(model.model).get_trace(**model.model_kwargs(ds))
    posterior = {site_name: site["value"].detach().numpy()[None, None]
                 for site_name, site in trace.nodes.items() if site["type"] == "sample"}
    names = model.to_stan_draws(posterior)
    reference = model.reference_posterior(ds)
    assert set(names) == set(reference["draws"])
    assert all(v.shape == (10, 1000) for v in reference["draws"].values())
    assert set(reference["mean"]) == set(names)


# -- the ports reproduce posteriordb's reference posteriors ---------------------------------
def _mcse_z(estimate: float, draws: np.ndarray) -> float:
    """(estimate - reference mean) in units of the reference mean's Monte Carlo standard error."""
    import arviz as az

    return (estimate - draws.mean()) / (draws.std() / np.sqrt(float(az.ess(draws))))


@pytest.mark.parametrize("name", ["kidiq-kidscore_momiq", "earnings-logearn_height",
                                  "mesquite-logmesquite_logvolume", "sblrc-blr", "arK-arK"])
def test_regression_ports_reproduce_the_reference_coefficient_means(name, datasets):
    """With a flat (or, here, negligible Normal(0, 10)) prior on the coefficients, their
    posterior mean is the least-squares fit on the model's own design whatever sigma's prior,
    so a wrong design (log transform, lag order, intercept) shows up against posteriordb."""
    model = zoo.get(name)
    ds = datasets[name]
    kwargs = model.model_kwargs(ds)
    x, y = kwargs["x"].numpy(), kwargs["y"].numpy()
    names = [f"beta[{i + 1}]" for i in range(x.shape[1])]
    if name == "arK-arK":
        x, names = np.column_stack([np.ones(len(y)), x]), ["alpha"] + names
    ols = np.linalg.lstsq(x, y, rcond=None)[0]
    draws = model.reference_posterior(ds)["draws"]
    for stan, estimate in zip(names, ols):
        # the reference means carry Monte Carlo error (ESS ~ 10^4); the worst of these 17
        # comparisons sits at 2.2 MCSE, so 4 MCSE cannot fail by chance in practice
        assert abs(_mcse_z(estimate, draws[stan])) < 4.0, stan


@pytest.mark.parametrize("name", ["earnings-logearn_height", "mesquite-logmesquite_logvolume"])
def test_flat_sigma_prior_matches_the_reference_posterior_of_sigma(name, datasets):
    """Flat beta and flat sigma > 0 give sigma^2 | y ~ InverseGamma((N - p - 1) / 2, RSS / 2),
    so E[sigma] = sqrt(RSS / 2) Gamma(a - 1/2) / Gamma(a); a flat prior on log sigma instead
    would sit 11 MCSE away on mesquite."""
    from scipy.special import gammaln

    model = zoo.get(name)
    ds = datasets[name]
    kwargs = model.model_kwargs(ds)
    x, y = kwargs["x"].numpy(), kwargs["y"].numpy()
    rss = np.sum((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2)
    a = (x.shape[0] - x.shape[1] - 1) / 2
    expected = np.sqrt(rss / 2) * np.exp(gammaln(a - 0.5) - gammaln(a))
    assert abs(_mcse_z(expected, model.reference_posterior(ds)["draws"]["sigma"])) < 4.0


# -- conjugate linear regression: exact posterior ------------------------------------------
def test_conjugate_posterior_mean_is_the_ridge_solution(datasets):
    ds = datasets["conjugate_linear_regression"]
    x, y = _np(ds, "x"), _np(ds, "y")
    model = zoo.get("conjugate_linear_regression", prior_scale=2.0)
    post = model.exact_posterior(ds.train["x"], ds.train["y"])
    # with m0 = 0 and V0 = 4 I the mean is ridge regression with penalty 1/4 on every
    # coefficient of the design with a column of ones (sklearn solves it independently)
    design = np.column_stack([np.ones(len(y)), x])
    ridge = Ridge(alpha=0.25, fit_intercept=False, solver="svd").fit(design, y)
    np.testing.assert_allclose(post.beta_mean.numpy(), ridge.coef_, rtol=1e-8, atol=1e-10)
    # the marginal Student-t's variances and the closed-form covariance agree
    torch.testing.assert_close(post.beta_marginal().variance, post.beta_cov.diagonal())
    ref = model.reference_posterior(ds)
    assert ref["mean"]["beta[1]"] == pytest.approx(float(post.beta_mean[0]))
    assert ref["mean"]["sigma2"] == pytest.approx(float(post.b / (post.a - 1)))
    assert set(ref["mean"]) == set(model.to_stan_draws({
        "beta": np.zeros((1, 1, design.shape[1])), "sigma2": np.zeros((1, 1))}))


def test_conjugate_posterior_moments_match_quadrature_of_the_model_log_joint():
    """Integrate the Pyro model's own log joint on a (beta, sigma2) grid for one coefficient."""
    gen = np.random.default_rng(0)
    x = gen.normal(size=(30, 1))
    y = 0.7 * x[:, 0] + 0.5 * gen.normal(size=30)
    model = zoo.get("conjugate_linear_regression", a0=3.0, b0=0.5, prior_mean=0.2,
                    prior_scale=0.8, fit_intercept=False)
    post = model.exact_posterior(_t(x), _t(y))
    beta_sd = float(post.beta_cov[0, 0].sqrt())
    beta_grid = torch.linspace(float(post.beta_mean[0]) - 12 * beta_sd,
                               float(post.beta_mean[0]) + 12 * beta_sd, 601, dtype=F64)
    s2_grid = torch.linspace(1e-3, 40 * float(post.sigma2_mean), 1501, dtype=F64)
    bb, ss = torch.meshgrid(beta_grid, s2_grid, indexing="ij")
    num = bb.numel()
    with pyro.plate("grid", num, dim=-2):  # the model's own log joint at every grid point
        trace = poutine.trace(poutine.condition(model.model, data={
            "beta": bb.reshape(num, 1, 1), "sigma2": ss.reshape(num, 1)})).get_trace(
            x=_t(x), y=_t(y))
    log_joint = sum(lp for lp in _per_site_log_probs(trace, 1).values()).reshape(bb.shape)
    weight = (log_joint - log_joint.max()).exp()
    weight = weight / weight.sum()
    beta_mean = float((weight * bb).sum())
    beta_var = float((weight * (bb - beta_mean) ** 2).sum())
    s2_mean = float((weight * ss).sum())
    # a fine Riemann sum over +-12 sd (beta) and 40x the mean (sigma2) of a smooth density:
    # discretisation and truncation errors are far below 1e-4 relative
    assert beta_mean == pytest.approx(float(post.beta_mean[0]), rel=1e-4)
    assert beta_var == pytest.approx(float(post.beta_cov[0, 0]), rel=1e-3)
    assert s2_mean == pytest.approx(float(post.sigma2_mean), rel=1e-3)


def test_conjugate_model_with_a_full_prior_covariance(datasets):
    """The MultivariateNormal branch (``prior_cov``): scipy log joint and draw broadcasting."""
    ds = datasets["conjugate_linear_regression"]
    x, y = _np(ds, "x")[:, :2], _np(ds, "y")
    design = np.column_stack([np.ones(len(y)), x])
    cov = np.array([[4.0, 0.5, 0.2], [0.5, 2.0, -0.3], [0.2, -0.3, 1.0]])
    m0 = np.array([0.1, -0.1, 0.2])
    model = zoo.get("conjugate_linear_regression", a0=3.0, b0=2.0, prior_mean=m0.tolist(),
                    prior_cov=cov.tolist())
    beta, sigma2 = np.array([0.05, 0.3, -0.2]), 0.7
    expected = (stats.invgamma.logpdf(sigma2, 3.0, scale=2.0)
                + stats.multivariate_normal.logpdf(beta, m0, sigma2 * cov)
                + stats.norm.logpdf(y, design @ beta, np.sqrt(sigma2)).sum())
    kwargs = {"x": _t(x), "y": _t(y)}
    got = _log_joint(model, kwargs, {"beta": _t(beta), "sigma2": _t(sigma2)})
    assert got == pytest.approx(expected, rel=1e-10)
    draws = {"beta": _t(np.stack([beta, 0.5 * beta])).reshape(2, 1, 3),
             "sigma2": _t([[sigma2], [1.3]])}
    with pyro.plate("draws", 2, dim=-2):
        trace = poutine.trace(poutine.condition(model.model, data=draws)).get_trace(**kwargs)
    joint = sum(_per_site_log_probs(trace, 1).values())
    assert float(joint[0]) == pytest.approx(expected, rel=1e-10)
    assert float(joint[1]) == pytest.approx(_log_joint(model, kwargs, {
        "beta": _t(0.5 * beta), "sigma2": _t(1.3)}), rel=1e-10)
    with pytest.raises(ValueError, match="prior_mean has shape .3,.; the model has 11"):
        model.exact_posterior(_t(_np(ds, "x")), _t(y))


def test_nig_posterior_updates_sequentially():
    """Updating on two halves in turn equals updating on all the data at once."""
    gen = np.random.default_rng(1)
    x, y = _t(gen.normal(size=(40, 3))), _t(gen.normal(size=40))
    m0, v0 = _t([0.1, -0.2, 0.3]), _t(np.diag([2.0, 1.0, 0.5]))
    full = nig_posterior(x, y, m0, v0, 2.0, 1.5)
    first = nig_posterior(x[:25], y[:25], m0, v0, 2.0, 1.5)
    second = nig_posterior(x[25:], y[25:], first.mean, first.scale, float(first.a), float(first.b))
    torch.testing.assert_close(second.mean, full.mean)
    torch.testing.assert_close(second.scale, full.scale)
    assert float(second.b) == pytest.approx(float(full.b), rel=1e-10)
    assert float(second.a) == float(full.a)


# -- NUTS runs with Pyro's default-style initialisation -------------------------------------
@pytest.mark.smoke
@pytest.mark.parametrize("name", ["eight_schools-eight_schools_noncentered",
                                  "mesquite-logmesquite_logvolume"])
def test_smoke_nuts_samples_with_init_to_median(name, datasets):
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_median

    model = zoo.get(name)
    mcmc = MCMC(NUTS(model.model, init_strategy=init_to_median), num_samples=20,
                warmup_steps=20, disable_progbar=True)
    mcmc.run(**model.model_kwargs(datasets[name]))
    samples = {k: v.numpy()[None] for k, v in mcmc.get_samples().items()}
    assert all(np.isfinite(v).all() for v in samples.values())
