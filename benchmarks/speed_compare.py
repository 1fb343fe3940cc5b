"""MCMC speed side by side: Pyro's NUTS (with and without JIT), the zoo's vectorised kernels and
NumPyro, on the same models, each run in a fresh process.

The figures are the issue-12 protocol: ESS per second is the smallest bulk ESS over all latent
parameters divided by the run's whole wall time (model set-up, warm-up, compilation and
sampling; not the interpreter's start and imports); leapfrog steps per second are the sampling
phase's gradient evaluations (summed over chains) over its wall time. Runs are interleaved
(every variant once, then again) and the table holds medians, with ours/NumPyro and ours/Pyro.

NumPyro is not a dependency of the zoo: it runs in its own environment, created on first use
(``python -m venv`` and ``pip install numpyro jax[cpu]``) at ``$ZOO_NUMPYRO_ENV`` or
``~/.cache/ppl-zoo/numpyro-venv``; its worker is :mod:`benchmarks.numpyro_worker`.

Usage::

    python -m benchmarks.speed_compare --out runs/speed --warmup 1000 --samples 1000 --repeats 3
    python -m benchmarks.speed_compare --only eight_schools:4 --methods zoo_nuts_vec,numpyro_nuts
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: method name -> run_mcmc settings (``numpyro`` runs in the NumPyro environment)
METHODS: dict[str, dict[str, Any]] = {
    "pyro_nuts": {"kernel": "nuts", "chain_method": "sequential", "jit_compile": False},
    "pyro_nuts_jit": {"kernel": "nuts", "chain_method": "sequential", "jit_compile": True},
    "zoo_nuts_vec": {"kernel": "nuts", "chain_method": "vectorized", "jit_compile": True},
    "zoo_nuts_vec_eager": {"kernel": "nuts", "chain_method": "vectorized",
                           "jit_compile": False},
    "zoo_chees_vec": {"kernel": "chees", "chain_method": "vectorized", "jit_compile": True},
    "zoo_meads_vec": {"kernel": "meads", "chain_method": "vectorized", "jit_compile": True},
    "zoo_meads_vec_eager": {"kernel": "meads", "chain_method": "vectorized",
                            "jit_compile": False},
    "numpyro_nuts": {"numpyro": True},
}
#: (model, chains) pairs; the BNN trees are capped at depth 6 as in the issue
CASES = [("eight_schools", 4), ("eight_schools", 32), ("bnn", 4)]
MAX_TREE_DEPTH = {"eight_schools": 10, "bnn": 6}


def model_and_data(name: str) -> tuple[Any, dict[str, Any]]:
    """The zoo model and its keyword arguments: non-centred eight schools, or a 13-50-1 tanh
    BNN on the first 400 training rows of Boston housing (split 0)."""
    import zoo
    from zoo.data import load

    if name == "eight_schools":
        key = "eight_schools-eight_schools_noncentered"
        model = zoo.get(key)
        return model, model.model_kwargs(load(zoo.registry.spec(key).default_data))
    if name == "bnn":
        model = zoo.get("bnn", hidden=(50,), activation="tanh")
        kwargs = model.model_kwargs(load("uci-boston-housing", split=0))
        return model, {"x": kwargs["x"][:400], "y": kwargs["y"][:400]}
    raise ValueError(f"unknown model {name!r}; expected eight_schools or bnn")


def _deterministic(model: Any) -> tuple[str, ...]:
    return ("theta",)  # the only deterministic site of the two models


def min_bulk_ess(draws: dict[str, np.ndarray]) -> float:
    """The smallest bulk ESS over every scalar of ``draws`` (arrays of shape (chain, draw, ...))."""
    import arviz as az

    data = az.convert_to_dataset({k: np.asarray(v, dtype=float) for k, v in draws.items()})
    ess = az.ess(data, method="bulk")
    return float(min(float(ess[v].min()) for v in ess.data_vars))


def run_zoo(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: one zoo run, timed from model set-up to the last draw."""
    import warnings

    import torch
    # imports are not timed (NumPyro's worker imports JAX before its clock starts): the
    # compiler stack that tracing and torch.compile load on first use is imported here
    import torch._dynamo  # noqa: F401
    import torch._inductor.codecache  # noqa: F401
    import torch.fx.experimental.proxy_tensor  # noqa: F401

    from inference.mcmc import run_mcmc

    torch.set_num_threads(1)
    model, kwargs = model_and_data(job["model"])
    settings = METHODS[job["method"]]
    cpu = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_mcmc(model.model, kwargs, num_chains=job["num_chains"],
                          num_warmup=job["num_warmup"], num_samples=job["num_samples"],
                          seed=job["seed"], max_tree_depth=job["max_tree_depth"],
                          progress_bar=False, log_likelihood=False, **settings)
    wall = result.timings["chains_wall"]
    cpu_s = time.process_time() - cpu
    draws = {k: v for k, v in result.posterior.items() if k not in _deterministic(model)}
    # sequential chains: the sum of their sampling times; vectorised: the batch's
    sampling_wall = result.timings["sampling"]
    return {"wall_s": wall, "sampling_s": sampling_wall, "cpu_s": cpu_s,
            "leapfrog_steps": int(np.asarray(result.sample_stats["n_steps"]).sum()),
            "divergences": int(np.asarray(result.sample_stats["diverging"]).sum()),
            "min_ess_bulk": min_bulk_ess(draws)}


def numpyro_python() -> str:
    """The NumPyro environment's Python, creating the environment on first use."""
    root = Path(os.environ.get("ZOO_NUMPYRO_ENV",
                               Path.home() / ".cache" / "ppl-zoo" / "numpyro-venv"))
    python = root / "bin" / "python"
    if not python.exists():
        print(f"creating the NumPyro benchmark environment in {root} (first use)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "numpyro", "jax[cpu]"],
                       check=True)
    return str(python)


def run_numpyro(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One NumPyro run in its own environment; ESS computed here from its draws."""
    _, kwargs = model_and_data(job["model"])
    data = workdir / f"{job['model']}.npz"
    np.savez(data, **{k: v.numpy() for k, v in kwargs.items()})
    draws_file = workdir / f"draws-{os.getpid()}-{time.monotonic_ns()}.npz"
    payload = dict(job, data=str(data), draws=str(draws_file))
    env = dict(os.environ, OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    out = subprocess.run([numpyro_python(), str(Path(__file__).with_name("numpyro_worker.py")),
                          json.dumps(payload)], check=True, capture_output=True, text=True,
                         env=env)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    with np.load(draws_file) as draws:
        row["min_ess_bulk"] = min_bulk_ess({k: draws[k] for k in draws.files})
    draws_file.unlink()
    return row


def run_variant(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One variant in a fresh process (a zoo worker or the NumPyro worker)."""
    if METHODS[job["method"]].get("numpyro"):
        return run_numpyro(job, workdir)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "benchmarks.speed_compare", "--worker",
                          json.dumps(job)], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (model, chains, method), with ESS/s, steps/s and the ratios to NumPyro and
    to Pyro's NUTS (the better of with and without JIT)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["num_chains"], row["method"]), []).append(row)
    table = []
    for (model, chains, method), runs in groups.items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("wall_s", "sampling_s", "cpu_s", "min_ess_bulk", "leapfrog_steps",
                         "divergences")}
        med["ess_per_s"] = statistics.median(r["min_ess_bulk"] / r["wall_s"] for r in runs)
        # process CPU seconds: the fairer clock on a shared machine (one thread each)
        med["ess_per_cpu_s"] = statistics.median(r["min_ess_bulk"] / r["cpu_s"] for r in runs)
        med["leapfrog_per_s"] = statistics.median(r["leapfrog_steps"] / r["sampling_s"]
                                                  for r in runs)
        table.append({"model": model, "chains": chains, "method": method, "runs": len(runs),
                      **med})
    for entry in table:
        same = {e["method"]: e for e in table
                if (e["model"], e["chains"]) == (entry["model"], entry["chains"])}
        if entry["method"].startswith("zoo_"):
            if "numpyro_nuts" in same:
                base = same["numpyro_nuts"]
                entry["ours_over_numpyro"] = entry["ess_per_s"] / base["ess_per_s"]
                entry["ours_over_numpyro_cpu"] = entry["ess_per_cpu_s"] / base["ess_per_cpu_s"]
            pyro = [same[m]["ess_per_s"] for m in ("pyro_nuts", "pyro_nuts_jit") if m in same]
            if pyro:
                entry["ours_over_pyro"] = entry["ess_per_s"] / max(pyro)
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    """The summary as a markdown table."""
    head = ("| model | chains | method | runs | wall s | CPU s | min bulk ESS | ESS/s | "
            "ESS/CPU s | leapfrog/s | div | ours/NumPyro | ours/NumPyro (CPU) | ours/Pyro |")
    lines = [head, "|" + "---|" * 14]
    for e in table:
        ratio = lambda k: f"{e[k]:.2f}" if k in e else ""  # noqa: E731
        lines.append(f"| {e['model']} | {e['chains']} | {e['method']} | {e['runs']} | "
                     f"{e['wall_s']:.1f} | {e['cpu_s']:.1f} | {e['min_ess_bulk']:.0f} | "
                     f"{e['ess_per_s']:.1f} | {e['ess_per_cpu_s']:.1f} | "
                     f"{e['leapfrog_per_s']:.0f} | {e['divergences']:.0f} | "
                     f"{ratio('ours_over_numpyro')} | {ratio('ours_over_numpyro_cpu')} | "
                     f"{ratio('ours_over_pyro')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="runs/speed-compare")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="cases model:chains, comma-separated")
    parser.add_argument("--methods", default=None, help="methods, comma-separated")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_zoo(json.loads(args.worker))))
        return
    cases = CASES if not args.only else [(c.split(":")[0], int(c.split(":")[1]))
                                         for c in args.only.split(",")]
    methods = list(METHODS) if not args.methods else args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {list(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for model, chains in cases:
                for method in methods:
                    job = {"model": model, "method": method, "num_chains": chains,
                           "num_warmup": args.warmup, "num_samples": args.samples,
                           "seed": args.seed + repeat, "max_tree_depth": MAX_TREE_DEPTH[model]}
                    try:
                        row = run_variant(job, Path(tmp))
                    except subprocess.CalledProcessError as error:
                        print(f"{model}:{chains} {method} failed:\n{error.stderr[-2000:]}",
                              flush=True)
                        continue
                    row.update(job)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    (out / "runs.jsonl").open("a").write(json.dumps(row) + "\n")
    table = summarise(rows)
    text = markdown(table)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
