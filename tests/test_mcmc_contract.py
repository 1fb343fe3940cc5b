"""Our Pyro-kernel adapter against ``pyro.infer.MCMC``, and the kernel protocol's own example.

The adapter (``inference/mcmc/kernels/pyro_adapter.py``) drives Pyro's NUTS and HMC through
``setup``/``sample`` and reads per-transition statistics off private attributes
(``_divergences``, ``_mean_accept_prob``, ``_potential_energy_last``, ``_sample_r``,
``_build_tree``, ...). These tests pin that down against Pyro's public API so that a Pyro
upgrade that moves those attributes, or changes how a transition consumes random numbers,
fails here loudly:

* draws: one chain through ``run_mcmc`` equals, bit for bit, ``MCMC(NUTS(model,
  init_strategy=init_to_uniform))`` seeded with that chain's seed (``chain_seeds(seed, 1)[0]``).
  They match exactly because both set the seed, build the kernel, call ``setup`` (which draws
  the initial point and runs the step-size search) and then ``sample`` in the same order, and
  our ``"uniform"`` strategy returns Pyro's ``init_to_uniform`` value whenever the prior can be
  sampled; the recording subclasses draw no random numbers;
* divergences: the sampling-phase indices Pyro reports (``MCMC.diagnostics()``) equal the
  draws we flag ``diverging``;
* the adapted step size equals the Pyro kernel's ``step_size``;
* ``lp`` equals minus the potential recomputed from the constrained draw with
  ``initialize_model``'s public potential function; ``energy`` (potential plus a kinetic
  energy, which is non-negative) is finite and at least the previous state's potential;
  tree depths and leapfrog counts are consistent.

NUTS runs on centred eight schools (a funnel: it diverges, so the divergence comparison is not
vacuous). HMC runs on a normal model with unknown mean and sd, because with Pyro's default
trajectory length (2*pi) the funnel's small step sizes cost hundreds of leapfrog steps per draw;
it reads divergences through the same code as NUTS. HMC uses that default trajectory length
(``num_steps=None``): a given ``num_steps`` is deliberately different from Pyro (fixed steps,
see ``RecordingHMC``), so it has no Pyro twin.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import HMC, MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.util import initialize_model

from inference.mcmc import chain_seeds, run_mcmc

F64 = torch.float64
# centred eight schools: a funnel, so NUTS diverges at the adapted step size
Y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=F64)
SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=F64)
#: seed 3 gives divergences in the sampling phase (checked below, so a change cannot hide)
SEED, NUM_WARMUP, NUM_SAMPLES, MAX_TREE_DEPTH = 3, 40, 40, 4


def eight_schools(sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=F64), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(torch.tensor(5.0, dtype=F64)))
    with pyro.plate("schools", len(sigma)):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def normal(y=None):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=F64), 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(2.0, dtype=F64)))
    with pyro.plate("data", len(Y)):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


#: kernel -> (model, model kwargs)
CASES = {"nuts": (eight_schools, {"sigma": SIGMA, "y": Y}), "hmc": (normal, {"y": Y / 10})}


def _ours(kernel: str):
    model, kwargs = CASES[kernel]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_mcmc(model, kwargs, kernel=kernel, num_chains=1,
                        num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, seed=SEED,
                        max_tree_depth=MAX_TREE_DEPTH, init_strategy="uniform",
                        chain_method="sequential", progress_bar=False, log_likelihood=False)


def _pyro(kernel: str) -> MCMC:
    model, kwargs = CASES[kernel]
    pyro.set_rng_seed(chain_seeds(SEED, 1)[0])
    if kernel == "nuts":
        pyro_kernel = NUTS(model, init_strategy=init_to_uniform, max_tree_depth=MAX_TREE_DEPTH)
    else:
        pyro_kernel = HMC(model, init_strategy=init_to_uniform)
    mcmc = MCMC(pyro_kernel, num_samples=NUM_SAMPLES, warmup_steps=NUM_WARMUP,
                disable_progbar=True)
    mcmc.run(**kwargs)
    return mcmc


@pytest.fixture(scope="module", params=["nuts", "hmc"])
def pair(request):
    return request.param, _ours(request.param), _pyro(request.param)


def test_same_draws_as_pyro_mcmc(pair):
    _, ours, mcmc = pair
    theirs = mcmc.get_samples(group_by_chain=True)
    assert set(theirs) == set(ours.posterior)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours.posterior[name], value.numpy(), err_msg=name)


def test_same_divergences_and_step_size_as_pyro_mcmc(pair):
    kernel, ours, mcmc = pair
    flagged = np.flatnonzero(ours.sample_stats["diverging"][0]).tolist()
    assert flagged == list(mcmc.diagnostics()["divergences"]["chain 0"])
    if kernel == "nuts":
        assert flagged, "the funnel should diverge here, else this comparison is vacuous"
    assert ours.settings["adapted_step_size"] == [pytest.approx(mcmc.kernel.step_size, rel=0)]
    assert (ours.sample_stats["step_size"] == mcmc.kernel.step_size).all()


def test_recorded_statistics_agree_with_public_quantities(pair):
    kernel, ours, _ = pair
    stats = {k: v[0] for k, v in ours.sample_stats.items()}
    model, kwargs = CASES[kernel]
    _, potential_fn, transforms, _ = initialize_model(model, model_kwargs=kwargs)
    potential = []
    for i in range(NUM_SAMPLES):
        z = {k: transforms[k](torch.tensor(ours.posterior[k][0, i])) for k in transforms}
        potential.append(float(potential_fn(z)))
    np.testing.assert_allclose(stats["lp"], -np.array(potential), rtol=1e-9, atol=1e-9)
    assert np.isfinite(stats["energy"]).all()
    # energy = U(state at the start) + kinetic >= U(previous draw) = -lp[i - 1]
    assert (stats["energy"][1:] >= -stats["lp"][:-1] - 1e-9).all()
    assert ((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1)).all()
    if kernel == "nuts":
        depth, steps = stats["tree_depth"], stats["n_steps"]
        assert ((depth >= 1) & (depth <= MAX_TREE_DEPTH)).all()
        assert ((steps >= depth) & (steps <= 2**depth - 1)).all()
    else:
        assert (stats["n_steps"] == max(1, int(2 * np.pi / stats["step_size"][0]))).all()


def test_hmc_acceptance_probabilities_match_the_accepted_fraction(pair):
    """For HMC a draw moves iff the proposal was accepted; the mean recorded acceptance
    probability estimates that fraction, within 4 binomial sds (sd <= 0.5 / sqrt(n))."""
    kernel, ours, mcmc = pair
    if kernel != "hmc":
        pytest.skip("NUTS moves within its trajectory; no accept/reject per draw")
    accepted = float(mcmc.diagnostics()["acceptance rate"]["chain 0"])
    mean_prob = float(ours.sample_stats["acceptance_rate"].mean())
    assert abs(mean_prob - accepted) < 4 * 0.5 / np.sqrt(NUM_SAMPLES)


def test_protocol_docstring_example_runs():
    import inference.mcmc.protocol as protocol

    block = re.search(r"A tiny kernel.*?::\n\n(.*?)\n\nTo make", protocol.__doc__, re.S)
    assert block is not None
    code = "\n".join(line[4:] for line in block.group(1).splitlines())
    namespace: dict = {}
    exec(compile(code, "protocol-example", "exec"), namespace)  # noqa: S102 - our own docstring
    assert isinstance(namespace["kernel"], protocol.Kernel)
