"""The ``zoo`` command line: list models and data, fit a model, run benchmarks, write reports.

Usage::

    zoo list
    zoo data
    zoo fit eight_schools-eight_schools_noncentered --method nuts --chains 4 --seed 0 --out runs/es
    zoo fit conjugate_linear_regression --method svi --guide auto_mvn --steps 2000 --out runs/blr
    zoo bench quick --out runs/quick
    zoo report runs/quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


def _parse_config(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse, else kept as strings."""
    config: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"zoo: --config expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            config[key] = json.loads(raw)
        except json.JSONDecodeError:
            config[key] = raw
    return config


def _cmd_list(args: argparse.Namespace) -> int:
    from zoo.registry import list_models

    specs = list_models()
    width = max((len(s.name) for s in specs), default=0)
    for s in specs:
        print(f"{s.name:<{width}}  {s.description}  [data: {s.default_data}; "
              f"methods: {', '.join(s.methods)}]")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from zoo.data import describe

    rows = describe(args.data_dir)
    width = max((len(r["name"]) for r in rows), default=0)
    for row in rows:
        state = "present" if row["present"] else "missing"
        note = f"  ({row['note']})" if row.get("note") else ""
        print(f"{row['name']:<{width}}  {state:<7}  {row['path']}{note}")
    return 0


def _driver_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.method == "svi":
        settings: dict[str, Any] = {"num_steps": args.steps, "lr": args.lr, "elbo": args.elbo,
                                    "num_particles": args.num_particles}
        if args.draws is not None:
            settings["num_posterior_draws"] = args.draws
        if args.batch_size:
            settings["batch_size"] = args.batch_size
        return settings
    return {"num_chains": args.chains, "num_warmup": args.warmup,
            "num_samples": 500 if args.draws is None else args.draws,
            "jit_compile": args.jit, "chain_method": args.chain_method}


def _cmd_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from inference.diagnostics import summarize
    from inference.plots import save_standard_plots
    from inference.storage import atomic_path, atomic_write_text
    from zoo.fit import fit

    data_options = {"split": args.split} if args.split is not None else {}
    result, model, dataset = fit(
        args.model, args.method, data=args.data, data_options=data_options,
        data_dir=args.data_dir, guide=args.guide, seed=args.seed,
        config=_parse_config(args.config), **_driver_settings(args),
    )
    out = Path(args.out)
    result.save(out)
    summary = summarize(result) if result.posterior else pd.DataFrame()
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp)
    metrics = model.evaluate(dataset, result, split="test") if "test" in dataset.splits else {}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float))
    atomic_write_text(out / "settings.json", json.dumps(
        {k: v for k, v in vars(args).items() if k != "func"}, indent=2, default=str))
    plots = save_standard_plots(result, out / "plots")
    plots += model.plot(dataset, result, out / "plots")
    with pd.option_context("display.width", 160, "display.max_columns", None,
                           "display.max_rows", 40):
        print(summary if len(summary) else "(no global latent draws to summarise)")
    for key, value in metrics.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    print(f"wrote {out}/posterior.nc, summary.csv, metrics.json and {len(plots)} plots")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb; ``zoo VERB --help`` documents each."""
    parser = argparse.ArgumentParser(
        prog="zoo", description="ppl-zoo: deep probabilistic models, inference benchmarks, "
                                "posterior diagnostics.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    p = verbs.add_parser("list", help="list the registered models, one per line, name first")
    p.set_defaults(func=_cmd_list)

    p = verbs.add_parser("data", help="which data sets are present and where")
    p.add_argument("--data-dir", default=None, help="data directory (default: $ZOO_DATA, "
                   "../shared/data beside the checkout, then the user cache)")
    p.set_defaults(func=_cmd_data)

    p = verbs.add_parser("fit", help="fit one model with one inference method and save the "
                         "posterior, summary and plots")
    p.add_argument("model", help="registered model name (see `zoo list`)")
    p.add_argument("--method", required=True, choices=["nuts", "hmc", "rw", "svi"])
    p.add_argument("--guide", default=None, help="svi guide: a model guide name or an autoguide "
                   "(auto_normal, auto_mvn, auto_lowrank_mvn, auto_laplace, auto_iaf, ...)")
    p.add_argument("--data", default=None, help="data set name (default: the model's own)")
    p.add_argument("--data-dir", default=None, help="data directory")
    p.add_argument("--split", type=int, default=None, help="split index (UCI sets)")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model configuration, e.g. --config latent_dim=2 activation=tanh")
    p.add_argument("--chains", type=int, default=4, help="MCMC chains")
    p.add_argument("--warmup", type=int, default=500, help="MCMC warm-up iterations per chain")
    p.add_argument("--draws", type=int, default=None, help="draws per chain (default 500; svi: "
                   "guide draws, default 1000, or none for amortised models)")
    p.add_argument("--chain-method", default="sequential", choices=["sequential", "parallel"])
    p.add_argument("--jit", action="store_true", help="JIT-compile the potential (MCMC)")
    p.add_argument("--steps", type=int, default=2000, help="SVI steps")
    p.add_argument("--lr", type=float, default=1e-2, help="SVI learning rate")
    p.add_argument("--elbo", default="trace", help="SVI objective: trace, meanfield, "
                   "tracegraph, iwae, renyi")
    p.add_argument("--num-particles", type=int, default=1, help="ELBO particles")
    p.add_argument("--batch-size", type=int, default=None, help="SVI mini-batch size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_cmd_fit)

    try:
        from benchmarks.cli import register_commands
    except ImportError:
        pass
    else:
        register_commands(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"zoo: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
