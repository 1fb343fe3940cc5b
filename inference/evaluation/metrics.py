"""Every metric the zoo reports, named once: what it means, its unit and which way is better.

The evaluation module, the benchmark cells, the report and the README use these names and no
others (one name per metric). ``higher_is_better`` is ``None`` for figures that are not
scores (counts, sizes, settings).

Usage::

    from inference.evaluation.metrics import METRICS, better
    METRICS["test_ll"].unit          # 'nats per data point'
    better("rmse", 2.5, 3.0)         # True: lower RMSE wins
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "METRIC_FAMILIES", "better", "family_of", "KHAT_RELIABLE"]

#: PSIS k-hat above which an importance-sampled estimate is not trusted (Vehtari et al. 2024)
KHAT_RELIABLE = 0.7


@dataclass(frozen=True)
class Metric:
    """One reported figure: a description, its unit, the direction of improvement and its
    kind (``quality``: how good the posterior or predictions are; ``diagnostic``: how far to
    trust them; ``time``; ``bookkeeping``: sizes and sample counts, not measurements)."""

    description: str
    unit: str = ""
    higher_is_better: bool | None = None
    kind: str = "quality"


METRICS: dict[str, Metric] = {
    # held-out likelihoods (per data point)
    "test_ll": Metric("held-out log-likelihood: importance-sampled log p(x) for models with "
                      "local latents (log p(y | x) for conditional models such as the CVAE), "
                      "log-mean-exp of p(y | x, draw) over posterior draws otherwise; for "
                      "Boltzmann machines -F(x) - log Z with log Z from AIS (RBM), or the "
                      "variational lower bound on log p(x) with the AIS log Z (DBN, DBM)",
                      "nats per data point", True),
    "test_ll_se": Metric("standard error of test_ll across data points (absent when the "
                         "estimate is unreliable)", "nats per data point", kind="diagnostic"),
    "test_ll_mc_se": Metric("Monte Carlo error of the importance-sampled test_ll",
                            "nats per data point", kind="diagnostic"),
    "test_ll_khat": Metric("mean PSIS k-hat of the importance weights of test_ll; above 0.7 "
                           "the estimate is unreliable", "", False, kind="diagnostic"),
    "test_ll_khat_max": Metric("largest per-point PSIS k-hat of test_ll", kind="diagnostic"),
    "test_ll_unreliable_frac": Metric("share of data points whose k-hat exceeds 0.7", "", False,
                                      kind="diagnostic"),
    "test_ll_reliable": Metric("1 when test_ll_khat <= 0.7, else 0", kind="diagnostic"),
    "test_ll_exact": Metric("exact held-out log p(x) where the model has a closed form",
                            "nats per data point", True),
    "test_elbo": Metric("held-out ELBO (mean log importance weight)", "nats per data point",
                        True),
    "test_elbo_k": Metric("held-out ELBO estimated from elbo_particles guide draws per point "
                          "(independent of test_ll's draws; Pyro's CVAE tutorial reports 10)",
                          "nats per data point", True),
    "test_elbo_k_se": Metric("standard error of test_elbo_k across data points",
                             "nats per data point", kind="diagnostic"),
    "elbo_particles": Metric("guide draws per point behind test_elbo_k", kind="bookkeeping"),
    "baseline_bce": Metric("masked binary cross-entropy of a deterministic baseline network's "
                           "prediction of the hidden pixels (CVAE quadrant completion), summed "
                           "over hidden pixels", "nats per image", False),
    "baseline_bce_se": Metric("standard error of baseline_bce across images", "nats per image",
                              kind="diagnostic"),
    "gap": Metric("test_ll - test_elbo: what the guide loses to the bound", "nats per data "
                  "point", False, kind="diagnostic"),
    "eval_samples": Metric("importance samples per data point", kind="bookkeeping"),
    "eval_points": Metric("held-out data points evaluated", kind="bookkeeping"),
    "eval_fit_steps": Metric("SVI steps fitting the held-out points' local latents (models "
                             "without an amortised guide)", kind="bookkeeping"),
    "eval_draws": Metric("posterior draws used for predictive metrics", kind="bookkeeping"),
    # partition functions (Boltzmann machines; annealed importance sampling)
    "log_z": Metric("AIS estimate of the log partition function", "nats"),
    "log_z_se": Metric("delta-method standard error of log_z over the AIS runs", "nats",
                       kind="diagnostic"),
    "log_z_low": Metric("log of (mean AIS weight - 3 sd / sqrt(runs)), -inf (null) when "
                        "not positive (Salakhutdinov and Murray's interval)", "nats",
                        kind="diagnostic"),
    "log_z_high": Metric("log of (mean AIS weight + 3 sd / sqrt(runs))", "nats",
                         kind="diagnostic"),
    "log_z_exact": Metric("exact log partition function by enumeration (small models)",
                          "nats"),
    "ais_log_weight_sd": Metric("standard deviation of the AIS log-weights (above a few nats "
                                "the estimate rests on few runs)", "nats", False,
                                kind="diagnostic"),
    "ais_runs": Metric("AIS runs", kind="bookkeeping"),
    "ais_temperatures": Metric("AIS intermediate distributions", kind="bookkeeping"),
    # predictive metrics
    "rmse": Metric("root mean squared error of the predictive mean (original target scale)",
                   "target units", False),
    "accuracy": Metric("classification accuracy of the predictive", "", True),
    "test_error": Metric("classification error of the predictive (1 - accuracy)", "", False),
    "ece": Metric("expected calibration error, 15 equal-width bins", "", False),
    "entropy": Metric("mean predictive entropy", "nats"),
    "mutual_info": Metric("mean mutual information (epistemic part of the entropy)", "nats"),
    "expected_entropy": Metric("mean expected entropy (aleatoric part)", "nats"),
    "ood_entropy": Metric("mean predictive entropy on shifted (out-of-distribution) inputs; "
                          "the column ood_entropy_<shift> names the shift (noise, inverted, "
                          "rotated images)", "nats"),
    "ood_auroc": Metric("AUROC of predictive entropy for telling shifted inputs from test "
                        "inputs (1: every shifted input less certain; 0.5: no difference); the "
                        "column ood_auroc_<shift> names the shift", "", True),
    "epistemic_var": Metric("mean variance of the predictive mean over draws", "target units^2"),
    "aleatoric_var": Metric("mean observation-noise variance", "target units^2"),
    "predictive_sd": Metric("mean predictive standard deviation", "target units"),
    "point_error": Metric("classification error at the guide's point estimate (its median; "
                          "the pruned means for variational dropout)", "", False),
    "sparsity": Metric("share of weights pruned (sparse variational dropout)", "", True),
    "compression": Metric("weights before / weights after pruning", "x", True),
    # generated images (inference/evaluation/samples.py) and learned representations
    "mmd2": Metric("unbiased kernel MMD^2 of generated images against held-out images "
                   "(Gaussian kernel, median-distance bandwidth of the held-out images)", "",
                   False),
    "mmd_bandwidth": Metric("bandwidth of the MMD kernel", "pixels", kind="bookkeeping"),
    "sample_confidence": Metric("mean largest class probability a fixed MNIST classifier "
                                "gives generated images", "", True),
    "sample_entropy": Metric("mean entropy of the fixed classifier's prediction per generated "
                             "image (low: each looks like one digit)", "nats", False),
    "sample_label_entropy": Metric("entropy of the fixed classifier's mean prediction over "
                                   "generated images (log 10 = 2.30: every digit generated)",
                                   "nats", True),
    "inception_score": Metric("exp E KL(p(y|x) || p(y)) under the fixed MNIST classifier "
                              "(1 to 10)", "", True),
    "classifier_test_accuracy": Metric("MNIST test accuracy of the fixed classifier that "
                                       "scores generated images", "", kind="bookkeeping"),
    "scored_samples": Metric("generated images scored", kind="bookkeeping"),
    "recon_error": Metric("mean squared reconstruction error per pixel of held-out images",
                          "", False),
    "recon_bce": Metric("mean binary cross-entropy of held-out reconstructions, summed over "
                        "pixels", "nats per image", False),
    "probe_accuracy": Metric("held-out accuracy of a linear classifier (logistic regression) "
                             "trained on the learned codes of labelled training images", "",
                             True),
    "probe_accuracy_random": Metric("the same linear probe on a random Gaussian projection of "
                                    "the same size (the baseline a representation must beat)",
                                    "", True),
    "code_dim": Metric("size of the learned code", kind="bookkeeping"),
    "probe_train_points": Metric("labelled training images the linear probe is fitted on",
                                 kind="bookkeeping"),
    # training
    "elbo": Metric("final training ELBO, mean of the last 5% of steps, summed over the "
                   "training set (the report divides by num_train)", "nats", True),
    "train_elbo": Metric("training ELBO estimated with many vectorised particles after the last "
                         "step (SVI's elbo_every / elbo_particles), summed over the training "
                         "set", "nats", True),
    "psis_khat": Metric("PSIS k-hat of the guide against the posterior (Yao et al. 2018)", "",
                        False, kind="diagnostic"),
    # MCMC
    "min_ess_bulk": Metric("smallest bulk ESS over all parameters", "draws", True,
                           kind="diagnostic"),
    "min_ess_tail": Metric("smallest tail ESS over all parameters", "draws", True,
                           kind="diagnostic"),
    "ess_per_s": Metric("smallest bulk ESS per second of sampling", "draws / s", True,
                        kind="diagnostic"),
    "max_rhat": Metric("largest R-hat over all parameters", "", False, kind="diagnostic"),
    "divergences": Metric("divergent post-warm-up transitions", "", False, kind="diagnostic"),
    "diagnosed_params": Metric("scalar parameters the ESS and R-hat columns cover, when a "
                               "large posterior (a net's weights) was subsampled evenly",
                               kind="bookkeeping"),
    # reference posteriors
    "ref_max_abs_z": Metric("largest |posterior mean - reference mean| / reference sd", "sd",
                            False),
    "ref_max_log_sd_ratio": Metric("largest |log(sd / reference sd)|", "", False),
    "num_train": Metric("training points (the ELBO is their sum)", "", None, "bookkeeping"),
    # cost
    "grad_evals": Metric("gradient evaluations of the log density, everything included "
                         "(L-BFGS, Hessian, step-size trials, MCMC warm-up)", "", False,
                         kind="time"),
    "converged": Metric("1 when the method's own convergence test passed, else 0", "", True,
                        kind="diagnostic"),
    "step_ms": Metric("milliseconds per optimisation step", "ms", False, kind="time"),
    "fit_time_s": Metric("seconds spent fitting", "s", False, kind="time"),
    "wall_time_s": Metric("seconds for the whole cell", "s", False, kind="time"),
    "cpu_time_s": Metric("CPU seconds of the cell's process", "s", False, kind="time"),
}


#: metrics reported once per variant, as columns ``<family>_<variant>`` (``ood_auroc_noise``)
METRIC_FAMILIES = ("ood_entropy", "ood_auroc")


def family_of(name: str) -> str:
    """The registry name of a column: ``ood_auroc_rotated`` reads as ``ood_auroc``; any other
    name comes back unchanged. Usage: ``METRICS[family_of("ood_entropy_noise")]``."""
    for family in METRIC_FAMILIES:
        if name.startswith(family + "_"):
            return family
    return name


def better(metric: str, a: float, b: float) -> bool:
    """Whether value ``a`` of ``metric`` is better than ``b`` (``False`` for non-scores)."""
    info = METRICS.get(family_of(metric))
    if info is None or info.higher_is_better is None:
        return False
    return a > b if info.higher_is_better else a < b
