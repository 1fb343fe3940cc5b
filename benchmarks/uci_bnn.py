"""UCI regression benchmark of Bayesian neural nets (the 20-split protocol).

Protocol (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016): one hidden ReLU layer of 50
units (100 for protein), inputs and target standardised on the training split (the loaders
do this), RMSE and test log-likelihood on the original target scale (log-mean-exp over
posterior draws of the per-point density, minus log of the target's training sd), mean +-
standard error over splits, next to the published VI / PBP / MC dropout figures.

Methods (every one trained by the shared drivers): ``bbb`` (Bayes-by-Backprop, mean-field
Gaussian, local reparameterisation, closed-form KL), ``vd`` (Gaussian variational dropout with
the log-uniform prior), ``mc_dropout`` (MC dropout as VI, rate 0.05), ``nuts`` (NUTS over all
weights; only where the budget allows). Training runs ``--epochs`` passes over the data in
mini-batches (capped at ``--max-steps`` SVI steps per fit) and stops starting new fits after
``--minutes``; every budget choice is written with the results, and unfinished cells are
listed, so a reduced run is never mistaken for the protocol's 20 splits x 40 epochs.

Usage::

    python -m benchmarks.uci_bnn --splits 2 --epochs 40 --max-steps 1500 --minutes 13
    python -m benchmarks.uci_bnn --datasets yacht,boston-housing --methods bbb,nuts --splits 20
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

import zoo
from zoo.data import load

DATASETS = ("boston-housing", "concrete", "energy", "kin8nm", "naval-propulsion-plant",
            "power-plant", "protein-tertiary-structure", "wine-quality-red", "yacht")
METHODS = ("bbb", "vd", "mc_dropout", "nuts")

#: Gal & Ghahramani (2016), Table 1: (RMSE, test LL) for VI (Graves 2011), PBP and MC dropout
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "boston-housing": {"VI": (4.32, -2.90), "PBP": (3.01, -2.57), "MC dropout": (2.97, -2.46)},
    "concrete": {"VI": (7.19, -3.39), "PBP": (5.67, -3.16), "MC dropout": (5.23, -3.04)},
    "energy": {"VI": (2.65, -2.39), "PBP": (1.80, -2.04), "MC dropout": (1.66, -1.99)},
    "kin8nm": {"VI": (0.10, 0.90), "PBP": (0.10, 0.90), "MC dropout": (0.10, 0.95)},
    "naval-propulsion-plant": {"VI": (0.01, 3.73), "PBP": (0.01, 3.73),
                               "MC dropout": (0.01, 3.80)},
    "power-plant": {"VI": (4.33, -2.89), "PBP": (4.12, -2.84), "MC dropout": (4.02, -2.80)},
    "protein-tertiary-structure": {"VI": (4.84, -2.99), "PBP": (4.73, -2.97),
                                   "MC dropout": (4.36, -2.89)},
    "wine-quality-red": {"VI": (0.65, -0.98), "PBP": (0.64, -0.97), "MC dropout": (0.62, -0.93)},
    "yacht": {"VI": (6.89, -3.43), "PBP": (1.02, -1.63), "MC dropout": (1.11, -1.55)},
}


def hidden_units(dataset: str) -> int:
    """50 hidden units, 100 for protein (the protocol's choice)."""
    return 100 if dataset.startswith("protein") else 50


def build(method: str, dataset: str, dropout_rate: float) -> Any:
    """The registered ``bnn`` model configured for one method."""
    prior = "log_uniform" if method == "vd" else "normal"
    return zoo.get("bnn", hidden=(hidden_units(dataset),), prior=prior,
                   dropout_rate=dropout_rate)


def fit_one(method: str, net: Any, kwargs: dict[str, Any], *, epochs: int, max_steps: int,
            batch_size: int, lr: float, seed: int, nuts: dict[str, int]) -> tuple[Any, dict]:
    """Train one cell with the shared drivers; returns (result, budget actually used)."""
    n = kwargs["x"].shape[0]
    if method == "nuts":
        from inference.mcmc import run_mcmc

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_mcmc(net.model, kwargs, num_chains=nuts["chains"],
                           num_warmup=nuts["warmup"], num_samples=nuts["samples"],
                           max_tree_depth=nuts["tree_depth"], seed=seed, jit_compile=True,
                           progress_bar=False, log_likelihood=False)
        return res, dict(nuts)
    from inference.svi import fit_svi

    batch = min(batch_size, n)
    steps = min(max_steps, epochs * math.ceil(n / batch))
    guide = net.guides()[method]
    elbo = "trace" if method == "mc_dropout" else "meanfield"
    res = fit_svi(net.model, kwargs, guide=guide, elbo=elbo, num_steps=steps, lr=lr,
                  lr_schedule={"name": "cosine"}, batch_size=batch, seed=seed,
                  num_posterior_draws=0, log_likelihood=False, progress_bar=False)
    return res, {"steps": steps, "batch_size": batch, "epochs_run": steps * batch / n}


def run(datasets: Sequence[str], methods: Sequence[str], splits: int, epochs: int,
        max_steps: int, minutes: float, lr: float, num_draws: int, dropout_rate: float,
        nuts: dict[str, int], nuts_max_rows: int) -> tuple[pd.DataFrame, list[str]]:
    """Every (dataset, split, method) cell in order until the time budget is spent."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    t0 = time.perf_counter()
    for split in range(splits):
        for dataset in datasets:
            ds = None
            for method in methods:
                cell = f"{dataset}/split{split}/{method}"
                if time.perf_counter() - t0 > 60 * minutes:
                    skipped.append(f"{cell} (time budget)")
                    continue
                if ds is None:
                    try:
                        ds = load(f"uci-{dataset}", split=split)
                    except ValueError as err:  # protein has only 5 splits
                        skipped.append(f"{cell} ({err})")
                        break
                if method == "nuts" and ds.train["x"].shape[0] > nuts_max_rows:
                    skipped.append(f"{cell} (NUTS limited to <= {nuts_max_rows} rows)")
                    continue
                net = build(method, dataset, dropout_rate)
                kwargs = net.model_kwargs(ds)
                start = time.perf_counter()
                res, used = fit_one(method, net, kwargs, epochs=epochs, max_steps=max_steps,
                                    batch_size=32 if kwargs["x"].shape[0] < 2000 else 128,
                                    lr=lr, seed=split, nuts=nuts)
                metrics = net.evaluate(ds, res, num_draws=num_draws)
                rows.append({"dataset": dataset, "split": split, "method": method,
                             "rmse": metrics["rmse"], "test_ll": metrics["test_ll"],
                             "seconds": time.perf_counter() - start, **used})
                print(f"{cell}: rmse {metrics['rmse']:.3f} test_ll {metrics['test_ll']:.3f} "
                      f"({rows[-1]['seconds']:.1f}s)", flush=True)
    return pd.DataFrame(rows), skipped


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Mean +- standard error per (dataset, method), beside the published numbers."""
    out = []
    for (dataset, method), grp in raw.groupby(["dataset", "method"], sort=False):
        k = len(grp)
        se = (lambda v: float(v.std(ddof=1) / math.sqrt(k)) if k > 1 else float("nan"))
        pub = PUBLISHED[dataset]
        out.append({"dataset": dataset, "method": method, "splits": k,
                    "rmse": float(grp["rmse"].mean()), "rmse_se": se(grp["rmse"]),
                    "test_ll": float(grp["test_ll"].mean()), "test_ll_se": se(grp["test_ll"]),
                    **{f"{name} rmse": v[0] for name, v in pub.items()},
                    **{f"{name} ll": v[1] for name, v in pub.items()}})
    return pd.DataFrame(out)


def to_markdown(summary: pd.DataFrame) -> str:
    lines = ["| data set | method | splits | RMSE | test LL | VI RMSE / LL | PBP RMSE / LL | "
             "MC dropout RMSE / LL |", "|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['splits']} | {r['rmse']:.3f} +- "
            f"{r['rmse_se']:.3f} | {r['test_ll']:.3f} +- {r['test_ll_se']:.3f} | "
            f"{r['VI rmse']} / {r['VI ll']} | {r['PBP rmse']} / {r['PBP ll']} | "
            f"{r['MC dropout rmse']} / {r['MC dropout ll']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated subset of {','.join(DATASETS)}")
    p.add_argument("--methods", default="bbb,vd,mc_dropout",
                   help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--splits", type=int, default=20, help="splits 0..K-1 (protein has 5)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--max-steps", type=int, default=100_000, help="cap on SVI steps per fit")
    p.add_argument("--minutes", type=float, default=float("inf"),
                   help="start no new fit after this many minutes")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--draws", type=int, default=200, help="posterior draws for the metrics")
    p.add_argument("--dropout-rate", type=float, default=0.05)
    p.add_argument("--nuts-chains", type=int, default=2)
    p.add_argument("--nuts-warmup", type=int, default=200)
    p.add_argument("--nuts-samples", type=int, default=200)
    p.add_argument("--nuts-tree-depth", type=int, default=6)
    p.add_argument("--nuts-max-rows", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/uci_bnn")
    a = p.parse_args(argv)
    datasets = [d for d in a.datasets.split(",") if d]
    methods = [m for m in a.methods.split(",") if m]
    bad = [d for d in datasets if d not in DATASETS] + [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown data set or method {bad}; data sets {DATASETS}, "
                         f"methods {METHODS}")
    torch.set_num_threads(a.threads)
    nuts = {"chains": a.nuts_chains, "warmup": a.nuts_warmup, "samples": a.nuts_samples,
            "tree_depth": a.nuts_tree_depth}
    t0 = time.perf_counter()
    raw, skipped = run(datasets, methods, a.splits, a.epochs, a.max_steps, a.minutes, a.lr,
                       a.draws, a.dropout_rate, nuts, a.nuts_max_rows)
    summary = summarise(raw) if len(raw) else pd.DataFrame()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    raw.to_csv(out / "raw.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    settings = {**vars(a), "wall_seconds": time.perf_counter() - t0, "skipped": skipped,
                "protocol": "20 splits (protein 5), 40 epochs; see module docstring"}
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str))
    if len(summary):
        md = to_markdown(summary)
        (out / "summary.md").write_text(md + "\n")
        print(md)
    print(f"skipped {len(skipped)} cells; wall {settings['wall_seconds']:.0f}s; written to {out}")
    return summary


if __name__ == "__main__":
    main()
