"""``run_mcmc``: validate the settings, run the chains, assemble the result record.

The driver knows kernels only through the registry (:mod:`inference.mcmc.kernels`) and the
protocol (:mod:`inference.mcmc.protocol`), and chain methods only through
:data:`~inference.mcmc.chains.CHAIN_RUNNERS`: a new sampler or chain method needs no edit here.

Usage::

    from inference.mcmc import run_mcmc
    result = run_mcmc(model, {"y": y}, num_chains=4)
    result.to_inference_data()
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from inference.log_likelihood import pointwise_log_likelihood
from inference.mcmc.chains import CHAIN_METHODS, CHAIN_RUNNERS, chain_seeds
from inference.mcmc.initialization import INIT_STRATEGIES
from inference.mcmc.kernels import KernelSpec, get_kernel, list_kernels
from inference.mcmc.protocol import KERNEL_OPTIONS, STATISTICS, KernelSettings
from inference.mcmc.sampler import ChainOutput, ChainSettings
from inference.predictive import posterior_predictive, site_names
from inference.result import InferenceResult

__all__ = ["run_mcmc"]

#: accepted by every kernel and ignored by those that do not list it (as before the registry:
#: callers pass one max_tree_depth to any kernel); the settings record then holds None
_LENIENT_OPTIONS = ("max_tree_depth",)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer))


def _check_kernel_options(spec: KernelSpec, given: Mapping[str, Any]) -> None:
    """Reject kernel-specific options set for a kernel that does not take them."""
    for option, value in given.items():
        if option in spec.options or option in _LENIENT_OPTIONS:
            continue
        if value == KERNEL_OPTIONS[option]:
            continue
        owners = [name for name in list_kernels() if option in get_kernel(name).options]
        owners_text = " or ".join(f"kernel={name!r}" for name in owners) or "no kernel"
        raise ValueError(f"{option} applies to {owners_text} only, not {spec.name!r}")


def _validate(kernel: Any, num_chains: Any, num_warmup: Any, num_samples: Any, target: Any,
              max_tree_depth: Any, step_size: Any, num_steps: Any, init_strategy: Any,
              chain_method: Any, dense_mass: Any) -> KernelSpec:
    """The kernel's spec, after checking every argument (``ValueError`` says what is wrong)."""
    spec = get_kernel(kernel) if isinstance(kernel, str) else None
    if spec is None:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {list_kernels()}")
    if not _is_int(num_chains) or num_chains < 1:
        raise ValueError(f"num_chains must be an integer >= 1, got {num_chains!r}")
    if not _is_int(num_warmup) or num_warmup < 0:
        raise ValueError(f"num_warmup must be an integer >= 0, got {num_warmup!r}")
    if not _is_int(num_samples) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if target is not None and not (0.0 < float(target) < 1.0):
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {target!r}")
    if not _is_int(max_tree_depth) or max_tree_depth < 1:
        raise ValueError(f"max_tree_depth must be an integer >= 1, got {max_tree_depth!r}")
    if step_size is not None and not float(step_size) > 0.0:
        raise ValueError(f"step_size must be positive or None, got {step_size!r}")
    if num_steps is not None and (not _is_int(num_steps) or num_steps < 1):
        raise ValueError(f"num_steps must be an integer >= 1 or None, got {num_steps!r}")
    _check_kernel_options(spec, {"max_tree_depth": max_tree_depth, "num_steps": num_steps,
                                 "dense_mass": bool(dense_mass)})
    if not isinstance(init_strategy, Mapping) and init_strategy not in INIT_STRATEGIES:
        raise ValueError(f"unknown init_strategy {init_strategy!r}; expected one of "
                         f"{INIT_STRATEGIES} or a dict of site values")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"unknown chain_method {chain_method!r}; expected one of {CHAIN_METHODS}")
    if spec.chain_methods and chain_method not in spec.chain_methods:
        raise ValueError(f"kernel {spec.name!r} runs with chain_method "
                         f"{' or '.join(repr(m) for m in spec.chain_methods)} only, "
                         f"not {chain_method!r}")
    return spec


def _stack_stats(chains: list[ChainOutput]) -> dict[str, np.ndarray]:
    """Per-chain statistics as (chain, draw) arrays with the dtypes of :data:`STATISTICS`."""
    return {key: np.stack([c.stats[key] for c in chains]).astype(STATISTICS[key][0], copy=False)
            for key in chains[0].stats}


def run_mcmc(
    model: Callable[..., Any],
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    kernel: str = "nuts",
    num_chains: int | None = None,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    target_accept_prob: float | None = None,
    max_tree_depth: int = 10,
    step_size: float | None = None,
    num_steps: int | None = None,
    init_strategy: str | Mapping[str, Any] = "uniform",
    jit_compile: bool = False,
    chain_method: str | None = None,
    progress_bar: bool = True,
    log_likelihood: bool = True,
    dense_mass: bool = False,
) -> InferenceResult:
    """Sample a Pyro model's posterior with NUTS (default) or another registered kernel.

    ``kernel`` is a name from :func:`~inference.mcmc.kernels.list_kernels`: ``"nuts"``,
    ``"hmc"``, ``"rw"`` (random-walk Metropolis), ``"mala"`` (Metropolis-adjusted Langevin).
    ``target_accept_prob`` defaults to the kernel's (0.8 for NUTS/HMC, 0.234 for ``rw``, 0.574
    for ``mala``); ``step_size`` is the initial step size (adapted during warm-up). Options
    that belong to some kernels only: ``max_tree_depth`` (NUTS; ignored by the others),
    ``num_steps`` (HMC's fixed number of leapfrog steps; default: trajectory length 2*pi) and
    ``dense_mass=True`` (NUTS/HMC: a dense mass matrix, worth it for strongly correlated
    posteriors such as regressions on uncentred predictors). ``init_strategy`` is one of
    :data:`INIT_STRATEGIES` or a dict of initial values. Chains run one after another, in
    spawned worker processes (``chain_method="parallel"``; the model must then pickle), each
    with a seed from :func:`chain_seeds`, or all together as one batch
    (``chain_method="vectorized"``: kernels ``"nuts"``, ``"hmc"``, ``"chees"`` and
    ``"meads"``, the last two ChEES-HMC and MEADS, which adapt across chains and run only so,
    MEADS with 8 chains or more; see :mod:`inference.mcmc.vectorized`). The default is
    ``"sequential"``, or the kernel's own (``"vectorized"`` for ``"chees"`` and ``"meads"``).
    ``num_chains`` defaults to the kernel's own number (4; 32 for ``"meads"``).
    Diagnostic warnings (divergences, saturated tree depth, R-hat, ESS) are issued with
    ``warnings.warn``.

    ``result.timings``: ``warmup`` and ``sampling`` (wall seconds summed over chains; ESS per
    second uses ``sampling``), ``warmup_cpu``/``sampling_cpu`` (process CPU seconds, for shared
    machines), ``warmup/chain_<i>``, ``sampling/chain_<i>``, ``chains_wall`` (all chains,
    parallel or not), ``deterministic``, ``log_likelihood`` and ``total``.

    Example::

        result = run_mcmc(model, {"y": y}, num_chains=2, num_warmup=200, num_samples=200)
        result.posterior["mu"].shape        # (2, 200)
        result.sample_stats["diverging"]    # (2, 200)
    """
    known = get_kernel(kernel) if isinstance(kernel, str) else None
    if chain_method is None:
        chain_method = known.chain_methods[0] if known and known.chain_methods else "sequential"
    if num_chains is None:  # the kernel's own default (MEADS: 32), else 4
        num_chains = known.default_num_chains if known else 4
    spec = _validate(kernel, num_chains, num_warmup, num_samples, target_accept_prob,
                     max_tree_depth, step_size, num_steps, init_strategy, chain_method,
                     dense_mass)
    if not callable(model):
        raise ValueError(f"model must be a callable Pyro model, got {type(model).__name__}")
    kwargs = dict(model_kwargs or {})
    target = float(target_accept_prob if target_accept_prob is not None
                   else spec.default_target_accept)
    kernel_settings = KernelSettings(
        target_accept_prob=target, step_size=step_size, init_strategy=init_strategy,
        jit_compile=bool(jit_compile), max_tree_depth=int(max_tree_depth), num_steps=num_steps,
        dense_mass=bool(dense_mass))
    settings = ChainSettings(spec, kernel_settings, int(num_warmup), int(num_samples),
                             bool(progress_bar))
    seeds = chain_seeds(seed, int(num_chains))
    start = time.perf_counter()
    chains = CHAIN_RUNNERS[chain_method](model, kwargs, settings, seeds)
    chains_end = time.perf_counter()

    posterior = {name: np.stack([c.samples[name] for c in chains])
                 for name in chains[0].samples}
    sample_stats = _stack_stats(chains)

    kinds = site_names(model, kwargs)
    timings = {
        "warmup": float(sum(c.warmup_s for c in chains)),
        "sampling": float(sum(c.sampling_s for c in chains)),
        "warmup_cpu": float(sum(c.warmup_cpu_s for c in chains)),
        "sampling_cpu": float(sum(c.sampling_cpu_s for c in chains)),
        "chains_wall": chains_end - start,
    }
    for c in chains:
        timings[f"warmup/chain_{c.chain}"] = c.warmup_s
        timings[f"sampling/chain_{c.chain}"] = c.sampling_s
    if kinds["deterministic"]:
        t0 = time.perf_counter()
        posterior.update(posterior_predictive(model, posterior, kwargs,
                                              return_sites=kinds["deterministic"],
                                              chunk_size=1000, resample_observed=False))
        timings["deterministic"] = time.perf_counter() - t0
    log_lik, observed = None, None
    if log_likelihood and kinds["observed"]:
        t0 = time.perf_counter()
        latent = {k: posterior[k] for k in kinds["latent"] if k in posterior}
        log_lik = pointwise_log_likelihood(model, latent, kwargs)
        from inference.log_likelihood import observed_data

        observed = observed_data(model, kwargs)
        timings["log_likelihood"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start

    record = {
        "kernel": kernel,
        "num_chains": int(num_chains),
        "num_warmup": int(num_warmup),
        "num_samples": int(num_samples),
        "target_accept_prob": target,
        "max_tree_depth": int(max_tree_depth) if "max_tree_depth" in spec.options else None,
        "step_size": step_size,
        "num_steps": num_steps,
        "init_strategy": (dict(init_strategy) if isinstance(init_strategy, Mapping)
                          else init_strategy),
        "jit_compile": bool(jit_compile),
        "dense_mass": bool(dense_mass),
        "chain_method": chain_method,
        "chain_seeds": seeds,
        "adapted_step_size": [c.final_step_size for c in chains],
        # leapfrog steps of warm-up and sampling, all chains: the gradient evaluations to
        # compare with optimisation-based methods (None for kernels without gradients)
        "grad_evals": (int(sum(c.extra.get("warmup_n_steps", 0.0) for c in chains)
                           + float(np.sum(sample_stats["n_steps"])))
                       if "n_steps" in sample_stats else None),
    }
    result = InferenceResult(
        method=f"mcmc_{kernel}",
        posterior=posterior,
        sample_stats=sample_stats,
        timings=timings,
        settings=record,
        seed=int(seed),
        log_likelihood=log_lik,
        observed_data=observed,
        fitted={"model": model},
    )
    from inference.diagnostics import warnings_for

    for message in warnings_for(result):
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return result
