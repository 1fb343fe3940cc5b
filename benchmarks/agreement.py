"""Agreement of approximate posterior predictives with a gold-standard one (Izmailov et al. 2021).

On one small data set a long multi-chain full-batch HMC run is the reference posterior
predictive; every other method's predictive distribution on the same test points is scored
against it. For a Gaussian likelihood each method's predictive marginal at a test point is the
mixture over its draws of ``N(mean_s, var_s)``; per point:

* ``mean_diff_sd``: |predictive mean - reference mean| in reference predictive sds;
* ``sd_ratio``: predictive sd / reference predictive sd;
* ``tv``: total-variation distance of the two mixtures, integrated on a grid of 2000 points over
  +-6 reference sds (the mixtures are smooth, so the grid error is far below the values);
* ``w2``: 2-Wasserstein distance of the marginals in reference sds, from 4000 quantiles of
  each mixture (the exact 1-D W2 is the L2 distance of the quantile functions);

averaged over test points, plus the top-level ``test_ll`` and ``rmse`` of each method.

The reference (``--ref-init map``, the default): a BNN posterior is multimodal (hidden units
permute, and distinct functions fit the data), and NUTS chains started uniformly at random
settle in different modes without crossing between them within any affordable run (yacht,
4 chains: weight R-hat 3.1). So each of ``--ref-chains`` chains starts at its own mode, a
member of a full-batch deep ensemble of the same homoscedastic model, and the pooled chains
are a mixture over those modes, as in Izmailov et al. 2021 (many chains from different
starts). Between-chain R-hat then measures how different the modes are, not a failure to
converge, so the reference row reports, beside the weight R-hat, the R-hat of the predictive
mean at the test points over chains (``ref_rhat_f``) and within each chain (split R-hat of
each chain alone, worst chain: ``ref_rhat_f_within``), and the W2 of a single chain's
predictive against the pooled one, averaged over chains (``ref_chain_w2``): how far apart
the modes are in the units the methods are scored in. ``--ref-init uniform`` is Stan's start.

Usage::

    python -m benchmarks.agreement --data uci-yacht --config hidden=[10] --steps 2000 \\
        --ref-chains 8 --ref-warmup 300 --ref-draws 200 --ref-jit --out runs/agreement
    # writes runs/agreement/agreement.csv and agreement.md (the table); run again with the
    # same --out to resume: the NUTS reference (runs/agreement/reference) and the methods
    # already scored are reused

From Python: ``agreement_table(reference, approximations)`` on per-draw means and variances.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["marginal_agreement", "agreement_table", "main", "METHODS"]


def _mixture_cdf_quantiles(mean: np.ndarray, sd: np.ndarray, probs: np.ndarray,
                           grid: np.ndarray) -> np.ndarray:
    """Quantiles of the equal-weight mixture of N(mean_s, sd_s^2), by inverting its CDF on
    ``grid`` (monotone interpolation)."""
    from scipy.special import ndtr  # norm.cdf without scipy.stats' per-call overhead

    cdf = ndtr((grid[:, None] - mean[None]) / sd[None]).mean(1)
    return np.interp(probs, cdf, grid)


def _mixture_pdf(mean: np.ndarray, sd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Density of the equal-weight mixture of N(mean_s, sd_s^2) on ``grid``."""
    z = (grid[:, None] - mean[None]) / sd[None]
    return (np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * sd[None])).mean(1)


def marginal_agreement(ref_mean: np.ndarray, ref_var: np.ndarray, mean: np.ndarray,
                       var: np.ndarray) -> dict[str, float]:
    """Agreement of two predictive mixtures at every test point, averaged over points.

    Arguments are per-draw predictive means and variances shaped ``(S, N)`` (the reference's
    and the method's draws may differ in number).
    """
    n = ref_mean.shape[1]
    out = {"mean_diff_sd": [], "sd_ratio": [], "tv": [], "w2": []}
    probs = (np.arange(4000) + 0.5) / 4000
    for i in range(n):
        rm, rs = ref_mean[:, i], np.sqrt(ref_var[:, i])
        m, s = mean[:, i], np.sqrt(var[:, i])
        r_mu = rm.mean()
        r_sd = np.sqrt(np.mean(rs ** 2) + rm.var())
        mu = m.mean()
        sd = np.sqrt(np.mean(s ** 2) + m.var())
        lo = min(r_mu - 6 * r_sd, mu - 6 * sd)
        hi = max(r_mu + 6 * r_sd, mu + 6 * sd)
        grid = np.linspace(lo, hi, 2000)
        p = _mixture_pdf(rm, rs, grid)
        q = _mixture_pdf(m, s, grid)
        out["tv"].append(0.5 * np.trapezoid(np.abs(p - q), grid))
        qr = _mixture_cdf_quantiles(rm, rs, probs, grid)
        qm = _mixture_cdf_quantiles(m, s, probs, grid)
        out["w2"].append(np.sqrt(np.mean((qr - qm) ** 2)) / r_sd)
        out["mean_diff_sd"].append(abs(mu - r_mu) / r_sd)
        out["sd_ratio"].append(sd / r_sd)
    return {k: float(np.mean(v)) for k, v in out.items()}


def agreement_table(reference: Mapping[str, np.ndarray],
                    approximations: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict]:
    """One row per method: :func:`marginal_agreement` of its ``{"mean", "var"}`` draws
    against the reference's."""
    return [{"method": name, **marginal_agreement(reference["mean"], reference["var"],
                                                  pred["mean"], pred["var"])}
            for name, pred in approximations.items()]


#: the approximate methods compared, with settings for a run of ``steps`` optimisation steps
METHODS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "sgld": ("sgld", {}, {"num_chains": 4, "batch_size": 32, "step_size": 0.01, "thin": 20,
                          "pretrain_fraction": 0.25}),
    "sghmc": ("sghmc", {}, {"num_chains": 4, "batch_size": 32, "step_size": 0.01, "thin": 20,
                            "pretrain_fraction": 0.25}),
    "psgld": ("psgld", {}, {"num_chains": 4, "batch_size": 32, "step_size": 1e-3, "thin": 20,
                            "pretrain_fraction": 0.25}),
    "csghmc": ("csghmc", {}, {"num_chains": 4, "batch_size": 32, "step_size": 0.02,
                              "num_cycles": 4, "thin": 10, "pretrain_fraction": 0.25}),
    "swag": ("swag", {}, {"batch_size": 32, "swa_lr": 1e-2, "collect_every": 10,
                          "num_posterior_draws": 200}),
    "deep_ensemble": ("deep_ensemble", {"noise": "heteroscedastic"},
                      {"num_members": 5, "batch_size": 32}),
    "laplace_diag": ("laplace", {}, {"structure": "diag", "batch_size": 32,
                                     "num_posterior_draws": 200}),
    "last_layer_laplace": ("last_layer_laplace", {}, {"batch_size": 32,
                                                      "num_posterior_draws": 200}),
    "kfac_laplace": ("kfac_laplace", {}, {"batch_size": 32, "num_posterior_draws": 200}),
    # the same from the prior median: the Laplace rows above share one mode, found from a
    # prior draw, so this row shows how much of their error is the mode's
    "kfac_laplace_median": ("kfac_laplace", {}, {"batch_size": 32, "num_posterior_draws": 200,
                                                 "init": "median"}),
    "laplace_diag_median": ("laplace", {}, {"structure": "diag", "batch_size": 32,
                                            "num_posterior_draws": 200, "init": "median"}),
    "bbb": ("svi", {}, {"guide": "bbb", "batch_size": 32, "lr": 1e-2,
                        "num_posterior_draws": 200, "log_likelihood": False}),
}


def _predictive(model: Any, dataset: Any, result: Any, max_draws: int = 400
                ) -> dict[str, np.ndarray]:
    from inference.evaluation.predictive import predictive_distributions

    flat = {k: np.asarray(v).reshape(-1, *np.shape(v)[2:]) for k, v in result.posterior.items()}
    total = next(iter(flat.values())).shape[0]
    idx = np.linspace(0, total - 1, min(max_draws, total)).round().astype(int)
    pred = predictive_distributions(model.model, {k: v[idx] for k, v in flat.items()},
                                    model.evaluation_kwargs(dataset, "test"))
    return {"mean": pred["mean"].double().numpy(), "var": pred["var"].double().numpy()}


def reference_run(data: Any, config: Mapping[str, Any], *, chains: int, warmup: int,
                  draws: int, tree_depth: int, jit: bool, init: str = "map",
                  map_steps: int = 2000) -> Any:
    """The NUTS reference: ``chains`` chains, each from its own mode (``init="map"``: the
    members of a full-batch deep ensemble, ``map_steps`` Adam steps each) or from Stan's
    uniform start (``init="uniform"``: one run of ``chains`` chains); one result, chains
    pooled on the chain dimension."""
    from zoo.fit import fit

    nuts = dict(num_warmup=warmup, num_samples=draws, max_tree_depth=tree_depth,
                progress_bar=False, log_likelihood=False, jit_compile=jit)
    if init == "uniform":
        return fit("bnn", "nuts", data=data, config=config, seed=0, num_chains=chains,
                   **nuts)[0]
    if init != "map":
        raise ValueError(f"init must be 'map' or 'uniform', got {init!r}")
    t0 = time.perf_counter()
    modes = fit("bnn", "deep_ensemble", data=data, config=config, seed=0,
                num_members=chains, num_steps=map_steps, init="median")[0]
    map_time = time.perf_counter() - t0
    parts = [fit("bnn", "nuts", data=data, config=config, seed=c, num_chains=1,
                 init_strategy={k: v[0, c] for k, v in modes.posterior.items()}, **nuts)[0]
             for c in range(chains)]
    stats = set.intersection(*(set(p.sample_stats) for p in parts))
    timings = {k: sum(p.timings.get(k, 0.0) for p in parts) for k in parts[0].timings}
    return parts[0].with_updates(
        posterior={k: np.concatenate([p.posterior[k] for p in parts]) for k in parts[0].posterior},
        sample_stats={k: np.concatenate([p.sample_stats[k] for p in parts]) for k in stats},
        timings={**timings, "map": map_time},
        settings={**parts[0].settings, "num_chains": chains, "init_strategy": "map",
                  "map_steps": map_steps},
        posterior_predictive=None, log_likelihood=None)


def reference_diagnostics(model: Any, dataset: Any, ref: Any,
                          max_draws: int = 200) -> dict[str, float]:
    """Function-space diagnostics of the reference: R-hat of the predictive mean at the test
    points over chains (max over points) and within chains (split R-hat of each chain alone,
    worst chain and point), and the W2 / TV of one chain's predictive against the pooled one,
    averaged over chains."""
    import arviz as az

    from inference.evaluation.predictive import predictive_distributions

    chains, total = next(iter(ref.posterior.values())).shape[:2]
    idx = np.linspace(0, total - 1, min(max_draws, total)).round().astype(int)
    draws = {k: np.asarray(v)[:, idx].reshape(-1, *np.shape(v)[2:])
             for k, v in ref.posterior.items()}
    pred = predictive_distributions(model.model, draws, model.evaluation_kwargs(dataset, "test"))
    mean = pred["mean"].double().numpy().reshape(chains, len(idx), -1)
    var = pred["var"].double().numpy().reshape(chains, len(idx), -1)
    rhat = az.rhat(az.convert_to_dataset({"f": mean}))["f"].values
    half = len(idx) // 2  # one chain's R-hat: its two halves as two chains
    within = [az.rhat(az.convert_to_dataset({"f": mean[c, :2 * half].reshape(2, half, -1)}))
              ["f"].values.max() for c in range(chains)]
    pooled_m, pooled_v = mean.reshape(-1, mean.shape[-1]), var.reshape(-1, var.shape[-1])
    per_chain = [marginal_agreement(pooled_m, pooled_v, mean[c], var[c])
                 for c in range(chains)] if chains > 1 else []
    return {"ref_rhat_f": float(rhat.max()), "ref_rhat_f_median": float(np.median(rhat)),
            "ref_rhat_f_within": float(max(within)),
            "ref_chain_w2": float(np.mean([a["w2"] for a in per_chain])) if per_chain else 0.0,
            "ref_chain_tv": float(np.mean([a["tv"] for a in per_chain])) if per_chain else 0.0}


def main(argv: list[str] | None = None) -> int:
    """Run the reference and every method, write ``agreement.csv`` and ``agreement.md``."""
    import pandas as pd

    from zoo.evaluation import target_affine
    from zoo.fit import fit

    p = argparse.ArgumentParser(prog="python -m benchmarks.agreement", description=__doc__
                                .split("\n\n")[0])
    p.add_argument("--data", default="uci-yacht")
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--config", default="hidden=[50]", help="model config key=value (JSON)")
    p.add_argument("--steps", type=int, default=2000, help="steps of every approximate method")
    p.add_argument("--ref-chains", type=int, default=4)
    p.add_argument("--ref-warmup", type=int, default=500)
    p.add_argument("--ref-draws", type=int, default=500)
    p.add_argument("--ref-tree-depth", type=int, default=8)
    p.add_argument("--ref-jit", action="store_true", help="JIT-compile the NUTS potential")
    p.add_argument("--ref-init", choices=("map", "uniform"), default="map",
                   help="reference chains start at their own modes (deep-ensemble members) "
                        "or uniformly (Stan's start)")
    p.add_argument("--ref-map-steps", type=int, default=2000,
                   help="full-batch Adam steps of each starting mode")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    key, _, value = args.config.partition("=")
    config = {key: json.loads(value)} if key else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_options = {"split": args.split}
    t0 = time.perf_counter()
    import zoo
    from inference.diagnostics import summarize
    from inference.result import InferenceResult
    from zoo.data import load

    # the reference is saved and reused, so a run stopped after it resumes with the methods
    saved = out / "reference"
    if (saved / "result.json").exists():
        ref = InferenceResult.load(saved)
        model, dataset = zoo.get("bnn", **config), load(args.data, **data_options)
    else:
        model, dataset = zoo.get("bnn", **config), load(args.data, **data_options)
        ref = reference_run(dataset, config, chains=args.ref_chains, warmup=args.ref_warmup,
                            draws=args.ref_draws, tree_depth=args.ref_tree_depth,
                            jit=args.ref_jit, init=args.ref_init,
                            map_steps=args.ref_map_steps)
        ref = ref.with_updates(timings={**ref.timings, "wall": time.perf_counter() - t0})
        ref.save(saved)
    table = summarize(ref)
    ref_info = {"ref_time_s": ref.timings.get("wall"),
                "ref_max_rhat": float(table["r_hat"].max()),
                "ref_min_ess_bulk": float(table["ess_bulk"].min()),
                **reference_diagnostics(model, dataset, ref)}
    reference = _predictive(model, dataset, ref)
    scale, _ = target_affine(dataset)
    rows = [{"method": "nuts (reference)", **ref_info,
             **{k: v for k, v in model.evaluate(dataset, ref).items() if k in ("test_ll",
                                                                                "rmse")}}]
    done = {}
    if (out / "agreement.csv").exists():  # resume: keep the methods already scored
        done = {r["method"]: r for r in pd.read_csv(out / "agreement.csv").to_dict("records")
                if r["method"] in METHODS and not isinstance(r.get("error"), str)}
    for name in args.methods:
        if name in done:
            rows.append(done[name])
            continue
        method, extra_config, settings = METHODS[name]
        settings = dict(settings)
        steps_key = "num_steps"
        pre = settings.pop("pretrain_fraction", None)
        if pre:
            settings["pretrain_steps"] = int(pre * args.steps)
        settings[steps_key] = args.steps
        t1 = time.perf_counter()
        try:
            result, m, _ = fit("bnn", method, data=dataset, config={**config, **extra_config},
                               seed=0, **settings)
        except Exception as err:  # one failing method does not void the table
            rows.append({"method": name, "error": f"{type(err).__name__}: {err}"})
            continue
        pred = _predictive(m, dataset, result)
        metrics = m.evaluate(dataset, result)
        rows.append({"method": name, "fit_time_s": time.perf_counter() - t1,
                     **marginal_agreement(reference["mean"], reference["var"], pred["mean"],
                                          pred["var"]),
                     "test_ll": metrics.get("test_ll"), "rmse": metrics.get("rmse")})
        pd.DataFrame(rows).to_csv(out / "agreement.csv", index=False)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "agreement.csv", index=False)
    cols = [c for c in ("method", "mean_diff_sd", "sd_ratio", "tv", "w2", "test_ll", "rmse",
                        "fit_time_s", "ref_time_s", "ref_max_rhat", "ref_min_ess_bulk",
                        "ref_rhat_f", "ref_rhat_f_median", "ref_rhat_f_within",
                        "ref_chain_w2", "ref_chain_tv", "error")
            if c in frame]
    from benchmarks.report import markdown_table

    shown = frame[cols].map(lambda v: "" if isinstance(v, float) and np.isnan(v) else
                            f"{v:.3g}" if isinstance(v, float) else v)
    (out / "agreement.md").write_text("\n".join(markdown_table(shown.fillna(""))) + "\n")
    print(frame[cols].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
