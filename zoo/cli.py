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
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence


def _parse_config(pairs: Sequence[str], flag: str = "--config") -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse, else kept as strings."""
    config: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"{flag} expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            config[key] = json.loads(raw)
        except json.JSONDecodeError:
            config[key] = raw
    return config


def _seed(text: str) -> int:
    """An argparse type: a seed NumPy and torch both take (0 <= seed < 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be in [0, 2**32), got {value}")
    return value


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

    if args.action == "fetch":
        from zoo.data.fetch import fetch

        if not args.name:
            raise ValueError("zoo data fetch needs a data set name (see `zoo data`)")
        paths = fetch(args.name, data_dir=args.data_dir, base_url=args.url, force=args.force)
        print(f"fetched {args.name}: {', '.join(str(p) for p in paths)}")
        return 0
    if args.name:
        raise ValueError(f"`zoo data` lists data sets; to download one: zoo data fetch "
                         f"{args.name}")

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
    "steps": (("vi", "num_steps"), ("point", "num_steps"), ("sgmcmc", "num_steps"),
              ("ensemble", "num_steps"), ("laplace", "num_steps")),
    "lr": (("vi", "lr"), ("point", "lr"), ("ensemble", "lr"), ("laplace", "lr")),
    "elbo": (("vi", "elbo"),),
    "num_particles": (("vi", "num_particles"),),
    "batch_size": (("vi", "batch_size"), ("point", "batch_size"), ("sgmcmc", "batch_size"),
                   ("ensemble", "batch_size"), ("laplace", "batch_size")),
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


def _resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes this interrupted fit (its own, with --out and --resume)."""
    import shlex

    argv = list(args.argv)
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", str(args.out)]
    if "--resume" not in argv:
        argv.append("--resume")
    return "zoo " + " ".join(shlex.quote(a) for a in argv)


def _cmd_fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from inference import methods
    from inference.diagnostics import summarize
    from inference.errors import TrainingInterrupted
    from inference.plots import save_standard_plots
    from inference.storage import atomic_path, atomic_write_text
    from zoo.evaluation import reference_agreement
    from zoo.fit import fit
    from zoo.run_folder import RunFolder, default_out

    # everything that can be checked is checked before the fit starts
    settings = _method_settings(args)
    entry = methods.get(args.method)
    resumable = "checkpoint_path" in entry.fields
    if args.resume and not resumable:
        raise ValueError(f"--resume applies to methods that keep a checkpoint (svi); "
                         f"{args.method!r} ({entry.family}) runs keep none")
    out = Path(args.out) if args.out else default_out(args.model, args.method)
    args.out = str(out)
    folder = RunFolder(out, overwrite=args.overwrite, resume=args.resume)
    folder.check()
    command = {k: v for k, v in vars(args).items()
               if k not in ("func", "argv", "resume", "overwrite", "library_warnings")}
    staging = folder.start(command)
    if resumable:
        settings.setdefault("checkpoint_path", str(folder.checkpoint))
        settings.setdefault("checkpoint_every", 100)
        settings["resume"] = args.resume
    data_options = {"split": args.split} if args.split is not None else {}
    try:
        result, model, dataset = fit(
            args.model, args.method, data=args.data, data_options=data_options,
            data_dir=args.data_dir, guide=args.guide, seed=args.seed,
            config=_parse_config(args.config), **settings,
        )
    except TrainingInterrupted as stop:
        print(f"zoo: interrupted after step {stop.step} of {stop.total}; the checkpoint is "
              f"kept in {staging}; resume with: {_resume_command(args)}", file=sys.stderr)
        return 130
    except BaseException as err:
        if not folder.checkpoint.exists():  # nothing to resume: leave no staging folder
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, KeyboardInterrupt):
            print(f"zoo: interrupted; {args.method!r} runs keep no checkpoint and nothing "
                  f"was written to {out}", file=sys.stderr)
            return 130
        raise
    result.save(staging)
    summary = summarize(result) if result.posterior else pd.DataFrame()
    with atomic_path(staging / "summary.csv") as tmp:
        summary.to_csv(tmp)
    metrics = model.evaluate(dataset, result, split="test") if "test" in dataset.splits else {}
    # models with a reference posterior (posteriordb, conjugate) say how far the fit is from it
    metrics.update(reference_agreement(model, dataset, result))
    atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=2, default=float))
    atomic_write_text(staging / "settings.json", json.dumps(command, indent=2, default=str))
    plots = save_standard_plots(result, staging / "plots")
    plots += model.plot(dataset, result, staging / "plots")
    library_warnings = getattr(args, "library_warnings", [])
    if library_warnings:  # kept for whoever wants them, not shown (see zoo.console)
        atomic_write_text(staging / "warnings.txt", "\n".join(library_warnings) + "\n")
    folder.commit()
    with pd.option_context("display.width", 160, "display.max_columns", None,
                           "display.max_rows", 40):
        print(summary if len(summary) else "(no global latent draws to summarise)")
    for key, value in metrics.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    # methods that test their own convergence and count their cost say so (svi_auto, NUTS)
    for key in ("converged", "steps", "grad_evals"):
        if result.settings.get(key) is not None:
            print(f"{key}: {result.settings[key]}")
    print(f"wrote {out}/: posterior.nc, summary.csv, metrics.json and {len(plots)} plots")
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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb; ``zoo VERB --help`` documents each."""
    parser = _Parser(
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

    p = verbs.add_parser("data", help="which data sets are present and where; `zoo data fetch "
                         "NAME` downloads one")
    p.add_argument("action", nargs="?", default="list", choices=("list", "fetch"),
                   help="list (default) or fetch")
    p.add_argument("name", nargs="?", default=None, help="data set to fetch")
    p.add_argument("--url", default=None, help="mirror to fetch from (default: $ZOO_DATA_URL)")
    p.add_argument("--force", action="store_true", help="download even when a good copy is "
                   "there")
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
    mcmc.add_argument("--chains", type=int, default=None, help="chains (default 4, MEADS 32; also SG-MCMC)")
    mcmc.add_argument("--warmup", type=int, default=None, help="warm-up iterations per chain "
                      "(default 500)")
    mcmc.add_argument("--draws", type=int, default=None, help="draws per chain (default 500); "
                      "svi: guide draws (default 1000, or none for amortised models); "
                      "laplace, swag: draws from the Gaussian")
    mcmc.add_argument("--chain-method", default=None, help="sequential, parallel (processes) or "
                      "vectorized (all chains as one batch)")
    mcmc.add_argument("--jit", action="store_true", help="JIT-compile the potential")
    vi = p.add_argument_group("SVI settings (default: the method's)")
    vi.add_argument("--steps", type=int, default=None,
                    help="optimisation steps (svi: 1000 fixed, at most 5000 untuned); SG-MCMC, "
                         "ensembles, SWAG, Laplace: their steps")
    vi.add_argument("--lr", type=float, default=None,
                    help="learning rate (default 0.01; giving it asks svi for its fixed path)")
    vi.add_argument("--elbo", default=None, help="objective: trace, meanfield, tracegraph, iwae, "
                    "renyi")
    vi.add_argument("--num-particles", type=int, default=None, help="ELBO particles")
    vi.add_argument("--batch-size", type=int, default=None, help="mini-batch size (also "
                    "SG-MCMC, ensembles, SWAG, Laplace)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, 0 <= seed < 2**32")
    p.add_argument("--out", default=None, help="output folder (default: "
                   "runs/<model>/<method>-<timestamp>); it must be empty or absent")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (by default it is refused)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted svi fit from its checkpoint (same command)")
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
    """Entry point of the ``zoo`` console script.

    Errors a user can act on (a bad setting, a missing file, an interrupted run) end in one
    ``zoo: error: ...`` line and a non-zero exit status, never a traceback.
    """
    from zoo.console import routed_warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        with routed_warnings() as library_warnings:
            args.library_warnings = library_warnings
            return int(args.func(args) or 0)
    except (KeyError, ValueError, TypeError, OSError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"zoo: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
