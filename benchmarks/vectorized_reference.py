"""Every vectorised kernel on every posteriordb reference posterior: how far its draws are from
Stan's reference, with R-hat, ESS, divergences and time, in one table.

The tests (``tests/test_mcmc_vectorized_reference.py``) check a few kernel and posterior
pairs at test-suite size; this runs the whole grid at a size a user would run, from Stan's
uniform(-2, 2) starts. Columns: ``max_abs_z``, the largest ``|mean - reference mean|`` in
reference sds (about 0.05 is Monte Carlo error at these sizes); ``max_log_sd_ratio``, the
largest ``|log(sd / reference sd)|``; ``max_rhat``; ``min_ess`` (bulk); ``divergences``; ``wall_s``
(set-up, compilation, warm-up and sampling). Each row is appended to ``runs.jsonl`` as it
finishes and the table is written to ``table.md``.

Usage::

    python -m benchmarks.vectorized_reference --out runs/vectorized-reference
    python -m benchmarks.vectorized_reference --kernels chees --models kidiq-kidscore_momiq
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: the posteriordb posteriors with a reference (the conjugate regression's is exact)
MODELS = ("eight_schools-eight_schools_noncentered", "kidiq-kidscore_momiq",
          "earnings-logearn_height", "mesquite-logmesquite_logvolume", "sblrc-blr", "arK-arK")
#: kernel -> run_mcmc settings: NUTS and HMC with a dense metric, the cross-chain kernels
#: with many chains and (MEADS: one leapfrog step per iteration) a long warm-up
KERNELS: dict[str, dict[str, Any]] = {
    "nuts": dict(num_chains=8, num_warmup=500, num_samples=500, dense_mass=True),
    "hmc": dict(num_chains=8, num_warmup=500, num_samples=500, dense_mass=True),
    "chees": dict(num_chains=32, num_warmup=1000, num_samples=500),
    "meads": dict(num_chains=32, num_warmup=1500, num_samples=1000),
}


def run_one(kernel: str, name: str, seed: int = 0, jit_compile: bool = True) -> dict[str, Any]:
    """One kernel on one posterior; its row of the table."""
    import arviz as az

    import zoo
    import zoo.registry
    from inference.mcmc import run_mcmc
    from zoo.data import load
    from zoo.evaluation import reference_agreement

    model = zoo.get(name)
    data = load(zoo.registry.spec(name).default_data)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_mcmc(model.model, model.model_kwargs(data), kernel=kernel,
                          chain_method="vectorized", seed=seed, jit_compile=jit_compile,
                          progress_bar=False, log_likelihood=False, **KERNELS[kernel])
    wall = time.perf_counter() - start
    draws = model.to_stan_draws(result.posterior)
    agreement = reference_agreement(model, data, result)
    return {"kernel": kernel, "model": name, "seed": seed,
            "max_abs_z": agreement.get("ref_max_abs_z"),
            "max_log_sd_ratio": agreement.get("ref_max_log_sd_ratio"),
            "max_rhat": max(float(az.rhat(np.asarray(v))) for v in draws.values()),
            "min_ess": min(float(az.ess(np.asarray(v))) for v in draws.values()),
            "divergences": int(np.asarray(result.sample_stats["diverging"]).sum()),
            "wall_s": wall, **{k: v for k, v in KERNELS[kernel].items()}}


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| kernel | posterior | max abs z | max log sd ratio | max R-hat | min ESS | "
             "divergences | wall s |", "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['model']} | {r['max_abs_z']:.2f} | "
                     f"{r['max_log_sd_ratio']:.2f} | {r['max_rhat']:.3f} | {r['min_ess']:.0f} | "
                     f"{r['divergences']} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vectorized-reference")
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eager", action="store_true", help="no torch.compile")
    args = parser.parse_args(argv)
    kernels, models = args.kernels.split(","), args.models.split(",")
    unknown = sorted(set(kernels) - set(KERNELS)) + sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown kernels or models {unknown}; kernels: {list(KERNELS)}, "
                         f"models: {list(MODELS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kernel in kernels:
        for name in models:
            row = run_one(kernel, name, args.seed, jit_compile=not args.eager)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with (out / "runs.jsonl").open("a") as handle:
                handle.write(json.dumps(row) + "\n")
    (out / "table.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
