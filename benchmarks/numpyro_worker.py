"""One NumPyro NUTS run for :mod:`benchmarks.speed_compare`, in NumPyro's own environment.

This file runs under the benchmark environment's Python (NumPyro and JAX, no torch, no zoo):
it reads a job (JSON) and the data (``.npz``), samples with vectorised chains, writes the draws
of the latent sites to an ``.npz`` and prints one JSON line of timings. The models are the
NumPyro twins of the zoo's (the same priors, likelihood and parameterisation).

Usage::

    python benchmarks/numpyro_worker.py '{"model": "eight_schools", "data": "d.npz", ...}'
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def eight_schools(sigma, y):  # noqa: ANN001 - NumPyro model
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("schools", sigma.shape[0]):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_trans, sigma), obs=y)


def bnn(x, y, hidden=50):  # noqa: ANN001 - NumPyro model
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    w0 = numpyro.sample("w0", dist.Normal(0.0, 1.0).expand([x.shape[1], hidden]).to_event(2))
    b0 = numpyro.sample("b0", dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    w1 = numpyro.sample("w1", dist.Normal(0.0, 1.0).expand([hidden, 1]).to_event(2))
    b1 = numpyro.sample("b1", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    precision = numpyro.sample("precision", dist.Gamma(6.0, 6.0))
    out = (jnp.tanh(x @ w0 + b0) @ w1 + b1)[..., 0]
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(out, precision ** -0.5), obs=y)


MODELS = {"eight_schools": (eight_schools, ("sigma", "y")), "bnn": (bnn, ("x", "y"))}


def main(job: dict) -> dict:
    """Run the job; returns timings, leapfrog steps and divergences (draws go to a file)."""
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS

    numpyro.set_host_device_count(1)
    model, names = MODELS[job["model"]]
    data = np.load(job["data"])
    args = [jax.numpy.asarray(data[n]) for n in names]
    start = time.perf_counter()
    cpu = time.process_time()
    kernel = NUTS(model, max_tree_depth=job["max_tree_depth"], target_accept_prob=0.8)
    mcmc = MCMC(kernel, num_warmup=job["num_warmup"], num_samples=job["num_samples"],
                num_chains=job["num_chains"], chain_method="vectorized", progress_bar=False)
    key = jax.random.PRNGKey(job["seed"])
    mcmc.warmup(key, *args, extra_fields=("num_steps",))
    warm_end = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, *args, extra_fields=("num_steps", "diverging"))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    end = time.perf_counter()
    extra = mcmc.get_extra_fields(group_by_chain=True)
    np.savez(job["draws"], **{k: np.asarray(v) for k, v in samples.items()})
    return {"wall_s": end - start, "warmup_s": warm_end - start, "sampling_s": end - warm_end,
            "cpu_s": time.process_time() - cpu,
            "leapfrog_steps": int(np.asarray(extra["num_steps"]).sum()),
            "divergences": int(np.asarray(extra["diverging"]).sum()),
            "versions": {"numpyro": numpyro.__version__, "jax": jax.__version__}}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
