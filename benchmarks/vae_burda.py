"""Burda et al. (2015) protocol: VAE (k=1) vs IWAE (k=50) on dynamically binarised MNIST.

Architecture 784-200-200-50 tanh (one stochastic layer; ``--models`` adds the two-layer
100/50 DLGM), Bernoulli likelihood, dynamic binarisation of the 60k training images, test NLL
estimated with 5000 importance samples per test image (:mod:`inference.marginal_likelihood`),
reported with its standard error across test images, its Monte Carlo error, the test negative
ELBO, the gap and PSIS k-hat, next to the published figure. Training uses the shared SVI driver.

The paper trains 3280 epochs with batch 20; on a CPU this script trains for a wall-clock
budget instead (``--budget-minutes``, shared equally by the models after reserving the
estimated evaluation time) and can evaluate on a test subset (``--test-points``). Every budget
choice is written in the output, so reduced runs are never mistaken for the protocol's.

Usage::

    python -m benchmarks.vae_burda --budget-minutes 25
    python -m benchmarks.vae_burda --budget-minutes 15 --test-points 200 --models vae_k1,iwae_k50
    python -m benchmarks.vae_burda --steps 100000 --batch-size 20 --test-points 10000  # long run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.vae_common import (add_budget_arguments, load_benchmark_data, set_threads,
                                   steps_for, time_evaluation, time_per_step, train_and_evaluate,
                                   write_table)
from zoo.models.vae import VAE

#: published test NLL (nats), Burda et al. 2015 Table 1 (dynamic binarisation) and App. D
#: (static binarisation), IS with 5000 samples; see shared/TARGETS.md
PUBLISHED: dict[tuple[str, str], tuple[float, str]] = {
    ("mnist", "vae_k1"): (86.76, "Burda 2015 Tab.1, 1 layer VAE k=1"),
    ("mnist", "vae_k50"): (86.35, "Burda 2015 Tab.1, 1 layer VAE k=50"),
    ("mnist", "iwae_k50"): (84.78, "Burda 2015 Tab.1, 1 layer IWAE k=50"),
    ("mnist", "dlgm2_vae_k1"): (85.33, "Burda 2015 Tab.1, 2 layers VAE k=1"),
    ("mnist", "dlgm2_iwae_k50"): (82.90, "Burda 2015 Tab.1, 2 layers IWAE k=50"),
    ("binarized_mnist", "vae_k1"): (88.71, "Burda 2015 App.D, static, 1 layer k=1"),
    ("binarized_mnist", "iwae_k50"): (87.10, "Burda 2015 App.D, static, 1 layer IWAE k=50"),
}

#: model label -> (two stochastic layers?, objective, particles)
MODELS: dict[str, tuple[bool, str, int]] = {
    "vae_k1": (False, "trace", 1),
    "vae_k50": (False, "trace", 50),
    "iwae_k50": (False, "iwae", 50),
    "dlgm2_vae_k1": (True, "trace", 1),
    "dlgm2_iwae_k50": (True, "iwae", 50),
}


def make_vae(two_layers: bool, seed: int) -> VAE:
    """The Burda et al. architectures (tanh MLPs, Bernoulli likelihood, dynamic binarisation)."""
    if two_layers:
        # two deterministic layers of 100 units below h1 (100) and of 50 below h2 (50)
        return VAE(latent_dim=(100, 50), hidden=((100, 100), (50, 50)), activation="tanh",
                   binarize="dynamic", init_seed=seed)
    return VAE(latent_dim=50, hidden=(200, 200), activation="tanh", binarize="dynamic",
               init_seed=seed)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_budget_arguments(parser)
    parser.add_argument("--data", default="mnist", choices=("mnist", "binarized_mnist"))
    parser.add_argument("--allocation", default="equal-steps",
                        choices=("equal-steps", "equal-time"),
                        help="share the training budget as equal steps (epochs) or equal time")
    parser.add_argument("--models", default="vae_k1,iwae_k50",
                        help=f"comma-separated labels from {sorted(MODELS)}")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")

    start = time.perf_counter()
    data = load_benchmark_data(args.data, args.train_points)
    n_train = len(data.train["x"])
    n_test = len(data.test["x"]) if args.test_points is None else args.test_points
    budget = args.budget_minutes * 60.0
    plans = []
    for label in labels:
        two, elbo, k = MODELS[label]
        fit_kwargs = {"elbo": elbo, "num_particles": k, "vectorize_particles": k > 1,
                      "batch_size": args.batch_size, "lr": args.lr,
                      "lr_schedule": {"name": "cosine"}}
        per_step, eval_s = 0.0, 0.0
        if args.steps is None:  # timing probes only to fit the budget
            per_step = time_per_step(lambda two=two: make_vae(two, args.seed), data, fit_kwargs)
            eval_s = time_evaluation(lambda two=two: make_vae(two, args.seed), data,
                                     args.is_samples, n_test)
        plans.append((label, two, fit_kwargs, per_step, eval_s))
    spent = time.perf_counter() - start
    # training time left after the estimated evaluations and a 10% margin
    train_total = max(0.0, 0.9 * budget - spent - sum(p[4] for p in plans))
    # equal steps (= equal epochs, as in the paper) by default; or equal wall time
    equal_steps = steps_for(train_total / 1.0, sum(p[3] for p in plans), n_train,
                            args.batch_size, args.max_epochs)

    rows = []
    for label, two, fit_kwargs, per_step, eval_s in plans:
        if args.steps:
            steps = args.steps
        elif args.allocation == "equal-steps":
            steps = equal_steps
        else:
            steps = steps_for(train_total / len(plans), per_step, n_train, args.batch_size,
                              args.max_epochs)
        pub, note = PUBLISHED.get((args.data, label), (None, ""))
        print(f"[vae_burda] {label}: {steps} steps (~{per_step * steps / 60:.1f} min at "
              f"{per_step * 1000:.0f} ms/step), evaluation ~{eval_s / 60:.1f} min", flush=True)
        rows.append(train_and_evaluate(
            label, make_vae(two, args.seed), data, fit_kwargs, num_steps=steps,
            is_samples=args.is_samples, test_points=args.test_points, seed=args.seed,
            published=pub, published_note=note,
            extra={"budget_minutes": args.budget_minutes, "allocation": args.allocation,
                   "batch_size": args.batch_size,
                   "lr": args.lr, "lr_schedule": "cosine", "architecture":
                   "784-100-100-[100]-50-50-[50] tanh" if two else "784-200-200-[50] tanh"}))
        print(f"[vae_burda] {label}: test NLL {rows[-1]['test_nll']:.2f} "
              f"+- {rows[-1]['test_nll_se']:.2f}", flush=True)
    total = time.perf_counter() - start
    header = [
        f"vae_burda: data={args.data} (dynamic binarisation)" if args.data == "mnist"
        else f"vae_burda: data={args.data} (static binarisation)",
        f"budget {args.budget_minutes} min, wall {total / 60:.1f} min, batch {args.batch_size}, "
        f"lr {args.lr} cosine, IS {args.is_samples} samples on {n_test} test points, "
        f"train points {n_train}, allocation {args.allocation}, seed {args.seed}",
        "published: 3280 epochs, batch 20, full test set; reduced budgets are not comparable "
        "with it, only indicative",
    ]
    write_table(rows, args.out or Path("runs") / "vae_burda", "vae_burda", header)
    return rows


if __name__ == "__main__":
    main()
