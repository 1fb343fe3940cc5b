"""Speed figures of the inference drivers: NUTS ESS per second and SVI time per step.

* NUTS: non-centred eight schools, 4 chains run one after another; ESS/s is the smallest bulk
  ESS over all parameters divided by the summed sampling seconds of the chains (warm-up not
  counted), as ``inference.diagnostics.summarize`` reports it.
* SVI: ``fit_svi`` with ``auto_normal`` on the same model; seconds per optimisation step (wall
  time of the steps divided by their number; posterior draws after training excluded).

Wall-clock figures depend on what else runs on the machine; the CPU seconds of the whole run
(``time.process_time``) are printed beside them for comparison on shared machines.

Usage::

    python -m benchmarks.speed                      # defaults below
    python -m benchmarks.speed --jit --warmup 500 --samples 1000 --svi-steps 2000
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from typing import Any

import torch

NUTS_MODEL = "eight_schools-eight_schools_noncentered"
SVI_MODEL = "eight_schools-eight_schools_noncentered"


def _model(name: str) -> tuple[Any, dict[str, Any]]:
    import zoo
    import zoo.registry
    from zoo.data import load

    model = zoo.get(name)
    data = load(zoo.registry.spec(name).default_data)
    return model, model.model_kwargs(data)


def nuts_ess_per_second(num_warmup: int = 500, num_samples: int = 1000, num_chains: int = 4,
                        jit_compile: bool = False, seed: int = 0) -> dict[str, float]:
    """Minimum bulk ESS per sampling second of NUTS on non-centred eight schools."""
    from inference.diagnostics import summarize
    from inference.mcmc import run_mcmc

    model, kwargs = _model(NUTS_MODEL)
    cpu_start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_mcmc(model.model, kwargs, num_chains=num_chains, num_warmup=num_warmup,
                          num_samples=num_samples, jit_compile=jit_compile, seed=seed,
                          progress_bar=False, log_likelihood=False)
    cpu = time.process_time() - cpu_start
    table = summarize(result)
    seconds = float(result.timings["sampling"])
    steps = int(result.sample_stats["n_steps"].sum())
    return {
        "min_ess_bulk": float(table["ess_bulk"].min()),
        "sampling_s": seconds,
        "warmup_s": float(result.timings["warmup"]),
        "ess_per_s": float(table["ess_bulk"].min()) / seconds,
        "ms_per_leapfrog": 1000.0 * seconds / max(1, steps),
        "divergences": int(result.sample_stats["diverging"].sum()),
        "cpu_s": cpu,
        "ess_per_cpu_s": float(table["ess_bulk"].min()) / float(result.timings["sampling_cpu"]),
    }


def svi_seconds_per_step(num_steps: int = 1000, seed: int = 0) -> dict[str, float]:
    """Seconds per SVI step (``auto_normal``, Trace_ELBO, Adam) on non-centred eight schools."""
    try:
        from inference.svi import fit_svi
    except ImportError:  # the SVI driver is not part of this checkout
        return {}
    model, kwargs = _model(SVI_MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start, cpu_start = time.perf_counter(), time.process_time()
        result = fit_svi(model.model, kwargs, guide="auto_normal", num_steps=num_steps,
                         seed=seed, progress_bar=False, log_likelihood=False,
                         num_posterior_draws=10)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    train = float(result.timings.get("training", wall))
    return {"num_steps": num_steps, "seconds": train, "ms_per_step": 1000.0 * train / num_steps,
            "cpu_s": cpu}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--jit", action="store_true", help="JIT-compile the potential energy")
    parser.add_argument("--svi-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    nuts = nuts_ess_per_second(args.warmup, args.samples, args.chains, args.jit)
    print(f"NUTS {NUTS_MODEL} ({args.chains} chains x {args.samples} draws, warm-up "
          f"{args.warmup}, jit={args.jit}): min bulk ESS {nuts['min_ess_bulk']:.0f} in "
          f"{nuts['sampling_s']:.1f} s sampling -> {nuts['ess_per_s']:.1f} ESS/s "
          f"({nuts['ms_per_leapfrog']:.2f} ms per leapfrog step, warm-up {nuts['warmup_s']:.1f} s, "
          f"{nuts['divergences']} divergences; whole run {nuts['cpu_s']:.1f} s CPU, "
          f"{nuts['ess_per_cpu_s']:.1f} ESS per CPU second of sampling)")
    svi = svi_seconds_per_step(args.svi_steps)
    if svi:
        print(f"SVI {SVI_MODEL} (auto_normal, {svi['num_steps']} steps): "
              f"{svi['ms_per_step']:.2f} ms per step ({svi['seconds']:.1f} s wall; whole run "
              f"{svi['cpu_s']:.1f} s CPU)")
    else:
        print("SVI: inference.svi.fit_svi not available")


if __name__ == "__main__":
    main()
