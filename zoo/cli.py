"""The ``zoo`` command line: list models and data, fit a model, run benchmarks, write reports.

Usage::

    zoo list
    zoo methods
    zoo data
    zoo fit eight_schools-eight_schools_noncentered --method nuts --chains 4 --seed 0 --out runs/es
    zoo fit conjugate_linear_regression --method svi --guide auto_mvn --steps 2000 --out runs/blr
    zoo evaluate runs/blr
    zoo bench quick --out runs/quick
    zoo report runs/quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


def _parse_config(pairs: Sequence[str], flag: str = "--config") -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse, else kept as strings."""
    config: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"zoo: {flag} expects key=value, got {pair!r}")
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


def _cmd_methods(args: argparse.Namespace) -> int:
    from inference.methods import list_methods

    specs = list_methods()
    width = max([len("method")] + [len(m.name) for m in specs])
    print(f"{'method':<{width}}  {'family':<8}  needs of the model")
    for m in specs:
        needs = ", ".join(sorted(m.needs)) or "-"
        print(f"{m.name:<{width}}  {m.family:<8}  {needs}")
        if args.verbose:
            print(f"{'':<{width}}  {m.description}")
            print(f"{'':<{width}}  settings: {', '.join(m.fields)}")
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


#: ``zoo fit`` flags that set a method setting: flag dest -> (family, setting) pairs
_FLAG_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "chains": (("mcmc", "num_chains"), ("sgmcmc", "num_chains")),
    "warmup": (("mcmc", "num_warmup"),),
    "draws": (("mcmc", "num_samples"), ("vi", "num_posterior_draws"),
              ("laplace", "num_posterior_draws")),
    "chain_method": (("mcmc", "chain_method"),),
    "jit": (("mcmc", "jit_compile"),),
    "steps": (("vi", "num_steps"), ("sgmcmc", "num_steps"), ("ensemble", "num_steps"),
              ("laplace", "num_steps")),
    "lr": (("vi", "lr"), ("ensemble", "lr"), ("laplace", "lr")),
    "elbo": (("vi", "elbo"),),
    "num_particles": (("vi", "num_particles"),),
    "batch_size": (("vi", "batch_size"), ("sgmcmc", "batch_size"), ("ensemble", "batch_size"),
                   ("laplace", "batch_size")),
}


def _method_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The method settings given on the command line: flags, then ``--set key=value`` pairs.

    A flag that is not a setting of the chosen method is refused, naming the methods it
    belongs to (``--steps`` with ``--method nuts``).
    """
    from inference import methods

    entry = methods.get(args.method)
    settings: dict[str, Any] = {}
    for dest, targets in _FLAG_SETTINGS.items():
        value = getattr(args, dest, None)
        if value is None or value is False:
            continue
        name = next((n for family, n in targets
                     if family == entry.family and n in entry.fields), None)
        if name is None:
            owners = [m.name for m in methods.list_methods()
                      if any(f == m.family and n in m.fields for f, n in targets)]
            flag = "--" + dest.replace("_", "-")
            raise ValueError(f"{flag} does not apply to method {args.method!r}; it is a setting "
                             f"of {', '.join(owners)}")
        settings[name] = value
    settings.update(_parse_config(args.set, flag="--set"))
    return settings


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
        config=_parse_config(args.config), **_method_settings(args),
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from zoo.evaluation import evaluate_fit
    from zoo.reload import load_run

    result, model, dataset = load_run(args.run, data_dir=args.data_dir)
    metrics = evaluate_fit(model, dataset, result, args.split,
                           _parse_config(args.set, flag="--set"))
    for key, value in metrics.items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
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

    p = verbs.add_parser("methods", help="list the inference methods: family and what each "
                         "needs of a model")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also each method's description and settings")
    p.set_defaults(func=_cmd_methods)

    p = verbs.add_parser("data", help="which data sets are present and where")
    p.add_argument("--data-dir", default=None, help="data directory (default: $ZOO_DATA, "
                   "../shared/data beside the checkout, then the user cache)")
    p.set_defaults(func=_cmd_data)

    p = verbs.add_parser("fit", help="fit one model with one inference method and save the "
                         "posterior, summary and plots")
    p.add_argument("model", help="registered model name (see `zoo list`)")
    p.add_argument("--method", required=True,
                   help="inference method (see `zoo methods`): nuts, hmc, rw, svi, ...")
    p.add_argument("--guide", default=None, help="svi guide: a model guide name or an autoguide "
                   "(auto_normal, auto_mvn, auto_lowrank_mvn, auto_laplace, auto_iaf, ...)")
    p.add_argument("--data", default=None, help="data set name (default: the model's own)")
    p.add_argument("--data-dir", default=None, help="data directory")
    p.add_argument("--split", type=int, default=None, help="split index (UCI sets)")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model configuration, e.g. --config latent_dim=2 activation=tanh")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="any method setting (`zoo methods -v` lists them), e.g. --set "
                   "dense_mass=true target_accept_prob=0.9")
    mcmc = p.add_argument_group("MCMC settings (default: the method's)")
    mcmc.add_argument("--chains", type=int, default=None, help="chains (default 4; also SG-MCMC)")
    mcmc.add_argument("--warmup", type=int, default=None, help="warm-up iterations per chain "
                      "(default 500)")
    mcmc.add_argument("--draws", type=int, default=None, help="draws per chain (default 500); "
                      "svi: guide draws (default 1000, or none for amortised models); "
                      "laplace, swag: draws from the Gaussian")
    mcmc.add_argument("--chain-method", default=None, help="sequential or parallel (processes)")
    mcmc.add_argument("--jit", action="store_true", help="JIT-compile the potential")
    vi = p.add_argument_group("SVI settings (default: the method's)")
    vi.add_argument("--steps", type=int, default=None, help="optimisation steps (default 1000); "
                    "SG-MCMC, ensembles, SWAG, Laplace: their steps")
    vi.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01)")
    vi.add_argument("--elbo", default=None, help="objective: trace, meanfield, tracegraph, iwae, "
                    "renyi")
    vi.add_argument("--num-particles", type=int, default=None, help="ELBO particles")
    vi.add_argument("--batch-size", type=int, default=None, help="mini-batch size (also "
                    "SG-MCMC, ensembles, SWAG, Laplace)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_cmd_fit)

    p = verbs.add_parser("evaluate", help="held-out metrics of a saved run (zoo fit --out), "
                         "rebuilt in this process")
    p.add_argument("run", help="a folder written by zoo fit")
    p.add_argument("--split", default="test", help="held-out split (default test)")
    p.add_argument("--data-dir", default=None, help="data directory")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="evaluation settings: is_samples, num_draws, max_points, seed, ...")
    p.set_defaults(func=_cmd_evaluate)

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
