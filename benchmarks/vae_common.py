"""Shared pieces of the VAE benchmarks: budgeted training, honest evaluation, the table.

Training always goes through the shared SVI driver (:func:`inference.svi.fit_svi`); evaluation
through :func:`inference.marginal_likelihood.importance_log_likelihood` (via ``VAE.evaluate``).
A wall-clock budget is turned into a number of SVI steps by timing a few steps first, so a CPU
run finishes in a known time; every budget decision is written into the output rows.

Usage (from the benchmark scripts)::

    row = train_and_evaluate(label, vae, data, fit_kwargs, num_steps=2000,
                             is_samples=5000, test_points=500, published=86.76)
    write_table(rows, "runs/vae_burda")
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from zoo.data import load
from zoo.data.dataset import Dataset
from zoo.models.vae import VAE

#: data sets the VAE benchmarks accept and how the VAE treats them
DATA_CHOICES = ("mnist", "binarized_mnist", "digits")


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both VAE benchmarks share (budget, evaluation subset, seed, output)."""
    parser.add_argument("--budget-minutes", type=float, default=20.0,
                        help="wall-clock budget for the whole run (training + evaluation)")
    parser.add_argument("--steps", type=int, default=None,
                        help="SVI steps per model (overrides the budget's choice)")
    parser.add_argument("--max-epochs", type=float, default=None,
                        help="cap on training epochs per model (Burda et al.: 3280)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--is-samples", type=int, default=5000,
                        help="importance samples per test point (published figures: 5000)")
    parser.add_argument("--test-points", type=int, default=None,
                        help="evaluate on the first n test points only (default: all)")
    parser.add_argument("--train-points", type=int, default=None,
                        help="train on the first n training points only (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<name>)")


def load_benchmark_data(name: str, train_points: int | None = None) -> Dataset:
    """``mnist`` (grey levels, binarised dynamically by the VAE), ``binarized_mnist`` or ``digits``."""
    if name not in DATA_CHOICES:
        raise ValueError(f"unknown data {name!r}; choose one of {DATA_CHOICES}")
    ds = load(name)
    if name == "binarized_mnist":  # the static split: train on train, report on test
        splits = {"train": ds.train, "test": ds.test, "valid": ds.valid}
    else:
        splits = dict(ds.splits)
    if train_points is not None:
        splits["train"] = {k: v[:train_points] for k, v in splits["train"].items()}
    return Dataset(ds.name, splits, dict(ds.info))


def time_per_step(make_vae: Callable[[], VAE], data: Dataset, fit_kwargs: Mapping[str, Any],
                  probe_steps: int = 30) -> float:
    """Seconds per SVI step of a configuration, timed on throw-away models.

    Two probes (5 and ``probe_steps`` steps) are differenced so that the one-off set-up cost
    of the first steps does not inflate the estimate.
    """
    from inference.svi import fit_svi

    def training_time(steps: int) -> float:
        vae = make_vae()
        kw = vae.model_kwargs(data)
        result = fit_svi(vae.model, kw, guide=vae.guide, num_steps=steps,
                         num_posterior_draws=0, log_likelihood=False, progress_bar=False,
                         **dict(fit_kwargs))
        return float(result.timings["training"])

    short, long = training_time(5), training_time(probe_steps)
    per_step = long / probe_steps  # includes the set-up: an upper bound
    diff = (long - short) / (probe_steps - 5)
    # the difference removes the set-up but is noisy on a shared machine: keep it only when
    # it is plausible (not below a quarter of the upper bound)
    return diff if per_step / 4 <= diff <= per_step else per_step


#: importance-sampling batch sizes used by the benchmarks (and timed by the probe)
EVAL_PARTICLE_BATCH = 500
EVAL_DATA_BATCH = 20


def time_evaluation(make_vae: Callable[[], VAE], data: Dataset, is_samples: int,
                    test_points: int) -> float:
    """Estimated seconds of the evaluation with ``is_samples`` samples on ``test_points``.

    The probe runs one data batch with two particle batches of the real sizes, so that the
    per-call overhead (large for long flow stacks) is timed as in the real run.
    """
    vae = make_vae()
    vae.model_kwargs(data)
    probe_points = min(EVAL_DATA_BATCH, test_points)
    probe_samples = min(2 * EVAL_PARTICLE_BATCH, is_samples)
    vae.eval_samples, vae.eval_max_points = probe_samples, probe_points
    vae.eval_particle_batch, vae.eval_data_batch = EVAL_PARTICLE_BATCH, EVAL_DATA_BATCH
    vae.evaluate(data, None)  # warm-up
    t0 = time.perf_counter()
    vae.evaluate(data, None)
    elapsed = time.perf_counter() - t0
    return elapsed * (is_samples / probe_samples) * (test_points / probe_points)


def train_and_evaluate(
    label: str,
    vae: VAE,
    data: Dataset,
    fit_kwargs: Mapping[str, Any],
    *,
    num_steps: int,
    is_samples: int,
    test_points: int | None,
    seed: int,
    published: float | None = None,
    published_note: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``vae`` with ``fit_svi`` for ``num_steps``, then evaluate IS-``is_samples`` test NLL."""
    from inference.svi import fit_svi

    kw = vae.model_kwargs(data)
    n_train = len(kw["x"])
    batch = fit_kwargs.get("batch_size") or n_train
    t0 = time.perf_counter()
    result = fit_svi(vae.model, kw, guide=vae.guide, num_steps=num_steps, seed=seed,
                     num_posterior_draws=0, log_likelihood=False, progress_bar=False,
                     **dict(fit_kwargs))
    train_time = time.perf_counter() - t0
    vae.eval_samples = is_samples
    vae.eval_max_points = test_points
    vae.eval_particle_batch = min(EVAL_PARTICLE_BATCH, is_samples)
    vae.eval_data_batch = EVAL_DATA_BATCH
    t1 = time.perf_counter()
    est = vae.importance_estimate(data, result)
    eval_time = time.perf_counter() - t1
    tail = result.loss_history[-min(len(result.loss_history), 200):]
    row = {
        "label": label,
        "data": data.name,
        "guide": vae.guide_name,
        "num_flows": vae.num_flows if vae.guide_name != "encoder" else 0,
        "objective": fit_kwargs.get("elbo", "trace"),
        "k": fit_kwargs.get("num_particles", 1),
        "steps": num_steps,
        "epochs": round(num_steps * batch / n_train, 3),
        "train_points": n_train,
        "train_loss_per_point_last200": float(tail.mean() / n_train),
        "test_nll": -est.mean,
        "test_nll_se": est.se,
        "test_nll_mc_se": est.mc_se,
        "test_neg_elbo": -est.elbo_mean,
        "test_neg_elbo_se": est.elbo_se,
        "gap": est.gap_mean,
        "khat_mean": est.khat_mean,
        "khat_max": est.khat_max,
        "is_samples": est.num_samples,
        "test_points": est.num_data,
        "train_seconds": round(train_time, 1),
        "eval_seconds": round(eval_time, 1),
        "published_nll": published,
        "published_note": published_note,
        "seed": seed,
    }
    row.update(extra or {})
    row["_estimate"] = est  # per-point arrays for paired comparisons; not written to the CSV
    return row


def paired_se(a: Any, b: Any, field: str = "log_likelihood") -> float:
    """Standard error of the mean per-point difference of two estimates on the same points."""
    diff = getattr(a, field) - getattr(b, field)
    return float(diff.std(ddof=1) / math.sqrt(len(diff)))


def steps_for(seconds: float, per_step: float, n_train: int, batch: int,
              max_epochs: float | None, minimum: int = 50) -> int:
    """SVI steps that fit in ``seconds`` (at least ``minimum``), capped at ``max_epochs``."""
    steps = max(minimum, int(seconds / max(per_step, 1e-6)))
    if max_epochs is not None:
        steps = min(steps, max(1, int(math.ceil(max_epochs * n_train / batch))))
    return steps


def write_table(rows: Sequence[Mapping[str, Any]], out_dir: Path, name: str,
                header: Sequence[str] = ()) -> Path:
    """Print the rows as a table and write them to ``out_dir/<name>-<UTC time>.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{name}-{stamp}.csv"
    fields = list(dict.fromkeys(k for row in rows for k in row if not k.startswith("_")))
    with open(path, "w", newline="") as fh:
        for line in header:
            fh.write(f"# {line}\n")
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    show = ["label", "steps", "epochs", "test_nll", "test_nll_se", "test_nll_mc_se",
            "test_neg_elbo", "gap", "khat_mean", "train_seconds", "eval_seconds",
            "published_nll"]
    print("\n".join(header))
    print(" | ".join(f"{c:>14}" for c in show))
    for row in rows:
        cells = []
        for c in show:
            v = row.get(c)
            cells.append(f"{v:>14.3f}" if isinstance(v, float) else f"{str(v):>14}")
        print(" | ".join(cells))
    print(f"written to {path}")
    return path


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, int(n)))
