"""The MCMC driver: Pyro's NUTS, HMC or random-walk Metropolis kernels, chain by chain.

``run_mcmc`` returns an :class:`~inference.result.InferenceResult` with constrained draws
(``pyro.deterministic`` sites included), per-draw sample statistics, warm-up and sampling wall
times, settings, per-chain seeds and library versions, pointwise log-likelihoods and the
observed data.

Why each chain is driven here through the kernel's ``setup``/``sample`` API rather than by
``pyro.infer.MCMC``: ``MCMC`` keeps only the draws and a per-chain summary (divergence indices,
acceptance rate); per-draw acceptance probability, step size, tree depth, number of leapfrog
steps and energy never leave the kernel, and with worker processes its ``hook_fn`` runs in the
child where nothing can be collected. Driving ``kernel.sample`` ourselves (exactly what
``MCMC`` does inside ``_gen_samples``) lets thin kernel subclasses record those statistics after
every transition, and lets a chain run in a worker process that sends back plain arrays.
What each statistic is, and how it is read off Pyro's kernel:

* ``diverging``: the kernel appended to ``_divergences`` during this transition.
* ``acceptance_rate``: the transition's mean Metropolis acceptance probability, recovered from
  the kernel's running mean ``_mean_accept_prob`` (``a_n = n m_n - (n-1) m_{n-1}``).
* ``step_size``: the step size used by the transition (``kernel.step_size``).
* ``tree_depth`` (NUTS): number of trajectory doublings (the largest ``tree_depth`` passed to
  ``_build_tree`` plus one); it equals ``max_tree_depth`` when the trajectory was cut short.
* ``n_steps``: leapfrog steps (calls of ``_build_basetree`` for NUTS, ``num_steps`` for HMC).
* ``energy``: the Hamiltonian at the start of the transition, potential energy of the current
  state plus kinetic energy of the freshly drawn momentum (what E-BFMI needs).
* ``lp``: minus the potential energy of the new state (log density in the unconstrained space,
  Jacobian included, as Stan's ``lp__``).

Other choices: the default ``init_strategy`` is ``"uniform"`` (Stan's: each chain starts at
its own point drawn in (-2, 2) on the unconstrained scale, so R-hat can detect chains that
disagree); every strategy also works for flat priors that cannot be sampled
(``ImproperUniform``). Chain seeds come from ``numpy.random.SeedSequence(seed).spawn``, so a
chain's numbers do not depend on whether chains run one after another or in processes.
``dense_mass=True`` adapts a dense metric with scale-free shrinkage (see
:class:`_ScaleFreeDenseMassMatrix`).

Usage::

    import zoo
    from zoo.data import load
    from inference.mcmc import run_mcmc
    name = "eight_schools-eight_schools_noncentered"
    m = zoo.get(name)
    data = load(zoo.registry.spec(name).default_data)
    result = run_mcmc(m.model, m.model_kwargs(data), num_chains=4)
    result.to_inference_data()
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pyro
import torch
from pyro.infer.autoguide.initialization import (
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_uniform,
)
from pyro.infer.mcmc import HMC, NUTS, RandomWalkKernel
from pyro.infer.mcmc.adaptation import BlockMassMatrix
from pyro.infer.mcmc.util import initialize_model
from torch.distributions import transform_to

from inference.log_likelihood import pointwise_log_likelihood
from inference.predictive import posterior_predictive, site_names
from inference.result import InferenceResult

__all__ = ["run_mcmc", "KERNELS", "INIT_STRATEGIES", "CHAIN_METHODS", "ChainFailedError"]

KERNELS = ("nuts", "hmc", "rw")
INIT_STRATEGIES = ("uniform", "median", "feasible", "mean")
CHAIN_METHODS = ("sequential", "parallel")
#: default target acceptance probability per kernel (0.234 is optimal for random walks)
_DEFAULT_TARGET = {"nuts": 0.8, "hmc": 0.8, "rw": 0.234}


class ChainFailedError(RuntimeError):
    """A chain raised (or its worker process died); the message names the chain and the error."""


# ----------------------------------------------------------------------------- init strategies
def _without_sampling(site: Mapping[str, Any], spread: bool) -> torch.Tensor:
    """A point of the site's support for distributions that cannot sample (``ImproperUniform``).

    Pyro's init strategies all call ``site["fn"].sample()`` to get a prototype, which flat
    priors (``ImproperUniform``) do not support; here the prototype is built from the shape.
    """
    fn = site["fn"]
    transform = transform_to(fn.support)
    proto = transform.inv(transform(torch.zeros(fn.shape())))
    unconstrained = torch.rand_like(proto) * 4.0 - 2.0 if spread else torch.zeros_like(proto)
    value = transform(unconstrained)
    value._pyro_custom_init = False
    return value


def _robust_init(site: Mapping[str, Any], *, base: Callable[..., Any], spread: bool) -> Any:
    try:
        value = base(site)
    except NotImplementedError:  # e.g. ImproperUniform.sample
        return _without_sampling(site, spread)
    if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value).all()):
        # init_to_mean gives inf for heavy tails (HalfCauchy's mean): use the median instead
        return _robust_init(site, base=init_to_median, spread=False)
    return value


def _init_from_values(site: Mapping[str, Any], *, values: Mapping[str, Any],
                      fallback: Callable[..., Any]) -> Any:
    """``init_to_value`` that casts (and broadcasts) a given value to the site's dtype and shape."""
    proto = fallback(site)
    if site["name"] not in values:
        return proto
    value = torch.as_tensor(np.asarray(values[site["name"]]), dtype=proto.dtype,
                            device=proto.device)
    try:
        value = value.expand(proto.shape).clone()
    except RuntimeError as error:
        raise ValueError(f"initial value of {site['name']!r} has shape {tuple(value.shape)}; "
                         f"the site has shape {tuple(proto.shape)}") from error
    value._pyro_custom_init = True
    return value


def make_init_strategy(init: str | Mapping[str, Any]) -> Callable[..., Any]:
    """A Pyro init strategy from a name in :data:`INIT_STRATEGIES` or a dict of site values.

    ``uniform`` draws each site uniformly in (-2, 2) in the unconstrained space (Stan's
    default: over-dispersed starting points, which R-hat needs); ``median``/``mean`` use
    the prior's; ``feasible`` the unconstrained zero. All four also work for flat
    ``ImproperUniform`` priors. A dict fixes the given sites and draws the others uniformly.
    """
    uniform = functools.partial(_robust_init, base=init_to_uniform, spread=True)
    if isinstance(init, Mapping):
        return functools.partial(_init_from_values, values=dict(init), fallback=uniform)
    bases = {"uniform": (init_to_uniform, True), "median": (init_to_median, False),
             "feasible": (init_to_feasible, False), "mean": (init_to_mean, False)}
    if init not in bases:
        raise ValueError(
            f"unknown init_strategy {init!r}; expected one of {INIT_STRATEGIES} or a dict of values"
        )
    base, spread = bases[init]
    return functools.partial(_robust_init, base=base, spread=spread)


# ------------------------------------------------------------------- kernels that record stats
class _RecordingHMCMixin:
    """Records per-transition statistics of Pyro's HMC/NUTS after each ``sample`` call."""

    last_stats: dict[str, float]
    #: True from the start of ``sample`` until its first momentum draw has been recorded
    _rec_waiting = False
    _rec_energy: float | None = None
    _rec_leaves = 0
    _rec_max_depth = -1

    def sample(self, params):  # type: ignore[no-untyped-def]
        self._rec_energy = None
        self._rec_waiting = True
        self._rec_leaves = 0
        self._rec_max_depth = -1
        divergences = len(self._divergences)
        mean_before = self._mean_accept_prob
        step_size = float(self.step_size)
        num_steps = None if isinstance(self, NUTS) else int(self.num_steps)
        out = super().sample(params)
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        accept = n * self._mean_accept_prob - (n - 1) * mean_before
        stats = {
            "diverging": float(len(self._divergences) > divergences),
            "acceptance_rate": min(1.0, max(0.0, accept)),
            "step_size": step_size,
            "lp": -float(self._potential_energy_last),
            "energy": math.nan if self._rec_energy is None else self._rec_energy,
        }
        if isinstance(self, NUTS):
            stats["tree_depth"] = float(self._rec_max_depth + 1)
            stats["n_steps"] = float(self._rec_leaves)
        else:
            stats["n_steps"] = float(num_steps)
        self.last_stats = stats
        return out

    def _sample_r(self, name):  # type: ignore[no-untyped-def]
        r, r_unscaled = super()._sample_r(name)
        if self._rec_waiting:  # the transition's own momentum, not a step-size search's
            self._rec_waiting = False
            self._rec_energy = float(self._kinetic_energy(r_unscaled)) + float(
                self._potential_energy_last)
        return r, r_unscaled

    def _build_basetree(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._rec_leaves += 1
        return super()._build_basetree(*args, **kwargs)

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        # type: ignore[no-untyped-def]
        self._rec_max_depth = max(self._rec_max_depth, tree_depth)
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth,
                                   energy_current)


class _ScaleFreeDenseMassMatrix(BlockMassMatrix):
    """Pyro's dense mass-matrix adaptation with shrinkage relative to each variance.

    Pyro (like Stan) regularises the estimated covariance as
    ``n/(n+5) cov + 1e-3 * 5/(n+5) * I``. That absolute ``1e-3`` swamps posteriors whose sds
    are far below 0.03 (posteriordb's ``sblrc-blr`` coefficients have sd 0.001, the
    ``earnings`` slope 0.007 with correlation -0.998): the adapted metric then keeps the
    correlation and NUTS needs many small steps (ESS ~0.2 per draw). Here the dense blocks
    shrink towards their own diagonal, ``n/(n+5) cov + 1e-3 * 5/(n+5) * diag(cov)``, which is
    scale-free and still positive definite; diagonal blocks keep Pyro's rule. Only used with
    ``dense_mass=True``.
    """

    def end_adaptation(self) -> None:
        inverse_mass_matrix = {}
        for block, scheme in self._adapt_scheme.items():
            if scheme.diagonal:
                inverse_mass_matrix[block] = scheme.get_covariance(regularize=True)
                continue
            n = float(scheme.n_samples)
            cov = scheme.get_covariance(regularize=False)
            variances = cov.diagonal().clamp(min=1e-12)
            regularised = (n / (n + 5.0)) * cov + torch.diag(1e-3 * (5.0 / (n + 5.0)) * variances)
            regularised = regularised + torch.diag(1e-12 * torch.ones_like(variances))
            inverse_mass_matrix[block] = regularised
        self.inverse_mass_matrix = inverse_mass_matrix


class _RecordingNUTS(_RecordingHMCMixin, NUTS):
    pass


class _RecordingHMC(_RecordingHMCMixin, HMC):
    """HMC whose ``num_steps``, when given, stays fixed while the step size adapts.

    Pyro turns ``num_steps`` into a trajectory length ``step_size * num_steps`` fixed at
    construction, so adapting the step size silently changes the number of steps; here, as in
    NumPyro, a given ``num_steps`` is the number of leapfrog steps of every transition.
    """

    def __init__(self, model, *, num_steps=None, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(model, num_steps=num_steps, **kwargs)
        self._fixed_num_steps = num_steps

    @property
    def num_steps(self) -> int:
        if self._fixed_num_steps is not None:
            return int(self._fixed_num_steps)
        return max(1, int(self.trajectory_length / self.step_size))


class _RecordingRandomWalk(RandomWalkKernel):
    """Pyro's random-walk kernel with an init strategy and per-transition statistics."""

    def __init__(self, model, *, init_strategy, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(model, **kwargs)
        self._init_strategy = init_strategy

    def setup(self, warmup_steps, *args, **kwargs):  # type: ignore[no-untyped-def]
        # as RandomWalkKernel.setup, which offers no init strategy (it always uses the default)
        self._warmup_steps = warmup_steps
        (self._initial_params, self.potential_fn, self.transforms,
         self._prototype_trace) = initialize_model(
            self.model, model_args=args, model_kwargs=kwargs, init_strategy=self._init_strategy)
        self._energy_last = self.potential_fn(self._initial_params)

    def sample(self, params):  # type: ignore[no-untyped-def]
        mean_before = self._mean_accept_prob
        step_size = math.exp(self._log_step_size)
        out = super().sample(params)
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        accept = n * self._mean_accept_prob - (n - 1) * mean_before
        self.last_stats = {
            "acceptance_rate": min(1.0, max(0.0, accept)),
            "step_size": step_size,
            "lp": -float(self._energy_last),
        }
        return out


# ---------------------------------------------------------------------------- one chain
@dataclass(frozen=True)
class _Settings:
    kernel: str
    num_warmup: int
    num_samples: int
    target_accept_prob: float
    max_tree_depth: int
    step_size: float | None
    num_steps: int | None
    init_strategy: Any
    jit_compile: bool
    progress_bar: bool
    dense_mass: bool = False


@dataclass
class _ChainOutput:
    chain: int
    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    warmup_s: float
    sampling_s: float
    warmup_cpu_s: float
    sampling_cpu_s: float
    final_step_size: float
    extra: dict[str, Any] = field(default_factory=dict)


def _build_kernel(model: Callable[..., Any], s: _Settings) -> Any:
    init = make_init_strategy(s.init_strategy)
    if s.kernel == "rw":
        return _RecordingRandomWalk(model, init_strategy=init,
                                    init_step_size=float(s.step_size or 0.1),
                                    target_accept_prob=float(s.target_accept_prob))
    common = dict(step_size=float(s.step_size or 1.0), adapt_step_size=True,
                  adapt_mass_matrix=True, full_mass=s.dense_mass,
                  target_accept_prob=float(s.target_accept_prob),
                  jit_compile=s.jit_compile, ignore_jit_warnings=True, init_strategy=init)
    if s.kernel == "nuts":
        kernel = _RecordingNUTS(model, max_tree_depth=s.max_tree_depth, **common)
    else:
        kernel = _RecordingHMC(model, num_steps=s.num_steps, **common)
    if s.dense_mass:
        kernel.mass_matrix_adapter = _ScaleFreeDenseMassMatrix()
    return kernel


def _current_step_size(kernel: Any) -> float:
    if isinstance(kernel, RandomWalkKernel):
        return math.exp(kernel._log_step_size)
    return float(kernel.step_size)


def _run_chain(model: Callable[..., Any], model_kwargs: Mapping[str, Any], s: _Settings,
               chain: int, seed: int) -> _ChainOutput:
    """Warm up and sample one chain with its own seed; draws returned in the constrained space."""
    pyro.set_rng_seed(seed)
    kernel = _build_kernel(model, s)
    bar = None
    if s.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.num_warmup + s.num_samples, desc=f"chain {chain} warmup",
                   position=chain, leave=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    kernel.setup(s.num_warmup, **model_kwargs)
    params = kernel.initial_params
    for _ in range(s.num_warmup):
        params = kernel.sample(params)
        if bar is not None:
            bar.update()
    warm_end, cpu_warm_end = time.perf_counter(), time.process_time()
    if bar is not None:
        bar.set_description(f"chain {chain} sample")
    names = sorted(params)
    draws: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    stats: dict[str, list[float]] = {}
    for _ in range(s.num_samples):
        params = kernel.sample(params)
        for n in names:
            draws[n].append(params[n].detach().clone())
        for key, value in kernel.last_stats.items():
            stats.setdefault(key, []).append(value)
        if bar is not None:
            bar.update()
    end, cpu_end = time.perf_counter(), time.process_time()
    if bar is not None:
        bar.close()
    samples = {}
    with torch.no_grad():
        for n in names:
            unconstrained = torch.stack(draws[n])
            samples[n] = kernel.transforms[n].inv(unconstrained).cpu().numpy()
    step_size = _current_step_size(kernel)
    kernel.cleanup()
    return _ChainOutput(
        chain=chain,
        samples=samples,
        stats={k: np.asarray(v) for k, v in stats.items()},
        warmup_s=warm_end - start,
        sampling_s=end - warm_end,
        warmup_cpu_s=cpu_warm_end - cpu_start,
        sampling_cpu_s=cpu_end - cpu_warm_end,
        final_step_size=step_size,
    )


def _chain_worker(conn: Any, model, model_kwargs, s: _Settings, chain: int, seed: int) -> None:
    torch.set_num_threads(1)
    try:
        conn.send(("ok", _run_chain(model, model_kwargs, s, chain, seed)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent with its traceback
        conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _run_parallel(model, model_kwargs, s: _Settings, seeds: list[int]) -> list[_ChainOutput]:
    """Chains in forked worker processes (at most one per CPU core at a time).

    ``fork`` is used so that models defined anywhere (closures, notebooks) need not be
    picklable; only the finished chain's arrays travel back through a pipe.
    """
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError as error:  # pragma: no cover - platforms without fork
        raise ValueError("chain_method='parallel' needs the 'fork' start method") from error
    width = max(1, min(len(seeds), os.cpu_count() or 1))
    outputs: dict[int, _ChainOutput] = {}
    failures: list[str] = []
    pending = list(enumerate(seeds))
    while pending:
        batch, pending = pending[:width], pending[width:]
        running = []
        for chain, seed in batch:
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_chain_worker,
                               args=(child, model, model_kwargs, s, chain, seed), daemon=True)
            proc.start()
            child.close()
            running.append((chain, proc, parent))
        for chain, proc, parent in running:
            try:
                status, payload = parent.recv()
            except EOFError:
                proc.join()
                failures.append(f"chain {chain}: worker process exited with code "
                                f"{proc.exitcode} before returning a result")
                continue
            proc.join()
            if status == "ok":
                outputs[chain] = payload
            else:
                failures.append(f"chain {chain}: {payload}")
    if failures:
        raise ChainFailedError("MCMC chain(s) failed:\n" + "\n".join(failures))
    return [outputs[c] for c in range(len(seeds))]


def _run_sequential(model, model_kwargs, s: _Settings, seeds: list[int]) -> list[_ChainOutput]:
    outputs = []
    for chain, seed in enumerate(seeds):
        try:
            outputs.append(_run_chain(model, model_kwargs, s, chain, seed))
        except Exception as error:
            raise ChainFailedError(
                f"MCMC chain {chain} (seed {seed}) failed: {type(error).__name__}: {error}"
            ) from error
    return outputs


# ---------------------------------------------------------------------------- validation
def _validate(kernel, num_chains, num_warmup, num_samples, target, max_tree_depth, step_size,
              num_steps, init_strategy, chain_method, dense_mass=False) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
    if not isinstance(num_chains, (int, np.integer)) or num_chains < 1:
        raise ValueError(f"num_chains must be an integer >= 1, got {num_chains!r}")
    if not isinstance(num_warmup, (int, np.integer)) or num_warmup < 0:
        raise ValueError(f"num_warmup must be an integer >= 0, got {num_warmup!r}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if target is not None and not (0.0 < float(target) < 1.0):
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {target!r}")
    if not isinstance(max_tree_depth, (int, np.integer)) or max_tree_depth < 1:
        raise ValueError(f"max_tree_depth must be an integer >= 1, got {max_tree_depth!r}")
    if step_size is not None and not float(step_size) > 0.0:
        raise ValueError(f"step_size must be positive or None, got {step_size!r}")
    if num_steps is not None and (not isinstance(num_steps, (int, np.integer)) or num_steps < 1):
        raise ValueError(f"num_steps must be an integer >= 1 or None, got {num_steps!r}")
    if num_steps is not None and kernel != "hmc":
        raise ValueError(f"num_steps applies to kernel='hmc' only, not {kernel!r}")
    if not isinstance(init_strategy, Mapping) and init_strategy not in INIT_STRATEGIES:
        raise ValueError(f"unknown init_strategy {init_strategy!r}; expected one of "
                         f"{INIT_STRATEGIES} or a dict of site values")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"unknown chain_method {chain_method!r}; expected one of {CHAIN_METHODS}")
    if dense_mass and kernel == "rw":
        raise ValueError("dense_mass applies to kernel='nuts' or 'hmc', not 'rw'")


def chain_seeds(seed: int, num_chains: int) -> list[int]:
    """Independent per-chain seeds derived deterministically from ``seed`` (NumPy SeedSequence)."""
    states = np.random.SeedSequence(int(seed)).spawn(num_chains)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in states]


# ---------------------------------------------------------------------------- the driver
def run_mcmc(
    model: Callable[..., Any],
    model_kwargs: Mapping[str, Any] | None = None,
    *,
    kernel: str = "nuts",
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    target_accept_prob: float | None = None,
    max_tree_depth: int = 10,
    step_size: float | None = None,
    num_steps: int | None = None,
    init_strategy: str | Mapping[str, Any] = "uniform",
    jit_compile: bool = False,
    chain_method: str = "sequential",
    progress_bar: bool = True,
    log_likelihood: bool = True,
    dense_mass: bool = False,
) -> InferenceResult:
    """Sample a Pyro model's posterior with NUTS (default), HMC or random-walk Metropolis.

    ``target_accept_prob`` defaults to 0.8 for NUTS/HMC and 0.234 for ``rw``; ``step_size``
    is the initial step size (adapted during warm-up); ``num_steps`` fixes HMC's leapfrog steps
    (default: trajectory length 2*pi); ``dense_mass=True`` adapts a dense mass matrix (NUTS/HMC;
    worth it for strongly correlated posteriors such as regressions on uncentred predictors).
    ``init_strategy`` is one of :data:`INIT_STRATEGIES` or a
    dict of initial values. Chains run one after another or in forked worker processes
    (``chain_method="parallel"``), each with a seed from :func:`chain_seeds`. Diagnostic
    warnings (divergences, saturated tree depth, R-hat, ESS) are issued with ``warnings.warn``.

    ``result.timings``: ``warmup`` and ``sampling`` (wall seconds summed over chains; ESS per
    second uses ``sampling``), ``warmup_cpu``/``sampling_cpu`` (process CPU seconds, for shared
    machines), ``warmup/chain_<i>``, ``sampling/chain_<i>``, ``chains_wall`` (all chains,
    parallel or not), ``deterministic``, ``log_likelihood`` and ``total``.

    Example::

        result = run_mcmc(model, {"y": y}, num_chains=2, num_warmup=200, num_samples=200)
        result.posterior["mu"].shape        # (2, 200)
        result.sample_stats["diverging"]    # (2, 200)
    """
    _validate(kernel, num_chains, num_warmup, num_samples, target_accept_prob, max_tree_depth,
              step_size, num_steps, init_strategy, chain_method, dense_mass)
    if not callable(model):
        raise ValueError(f"model must be a callable Pyro model, got {type(model).__name__}")
    kwargs = dict(model_kwargs or {})
    target = float(target_accept_prob if target_accept_prob is not None
                   else _DEFAULT_TARGET[kernel])
    settings = _Settings(kernel, int(num_warmup), int(num_samples), target, int(max_tree_depth),
                         step_size, num_steps, init_strategy, bool(jit_compile),
                         bool(progress_bar), bool(dense_mass))
    seeds = chain_seeds(seed, int(num_chains))
    start = time.perf_counter()
    runner = _run_parallel if chain_method == "parallel" else _run_sequential
    chains = runner(model, kwargs, settings, seeds)
    chains_end = time.perf_counter()

    posterior = {name: np.stack([c.samples[name] for c in chains])
                 for name in chains[0].samples}
    sample_stats = {key: np.stack([c.stats[key] for c in chains]) for key in chains[0].stats}
    for key in ("diverging",):
        if key in sample_stats:
            sample_stats[key] = sample_stats[key].astype(bool)
    for key in ("tree_depth", "n_steps"):
        if key in sample_stats:
            sample_stats[key] = sample_stats[key].astype(np.int64)

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
        "max_tree_depth": int(max_tree_depth) if kernel == "nuts" else None,
        "step_size": step_size,
        "num_steps": num_steps,
        "init_strategy": (dict(init_strategy) if isinstance(init_strategy, Mapping)
                          else init_strategy),
        "jit_compile": bool(jit_compile),
        "dense_mass": bool(dense_mass),
        "chain_method": chain_method,
        "chain_seeds": seeds,
        "adapted_step_size": [c.final_step_size for c in chains],
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
