"""Gold-standard agreement scores: exact on Gaussians whose distances are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from benchmarks.agreement import marginal_agreement


def test_identical_predictives_agree_and_shifted_gaussians_score_their_closed_forms():
    mean = np.zeros((1, 3))
    var = np.ones((1, 3))
    same = marginal_agreement(mean, var, mean, var)
    assert same["tv"] == pytest.approx(0.0, abs=1e-9) and same["w2"] == pytest.approx(0, abs=1e-6)
    # N(0, 1) vs N(d, 1): TV = 2 Phi(d / 2) - 1 and W2 = d; a grid of 2000 points and 4000
    # quantiles are accurate to about 1e-3 here
    d = 0.7
    shifted = marginal_agreement(mean, var, mean + d, var)
    assert shifted["tv"] == pytest.approx(2 * norm.cdf(d / 2) - 1, abs=2e-3)
    assert shifted["w2"] == pytest.approx(d, abs=2e-3)
    assert shifted["mean_diff_sd"] == pytest.approx(d) and shifted["sd_ratio"] == pytest.approx(1)
    # a two-member mixture is compared as a mixture, not by its moments: equal-variance
    # Gaussian N(0, 1 + 0.25) against the mixture of N(+-0.5, 1) has TV > 0 but equal moments
    mix = marginal_agreement(np.zeros((1, 1)), np.full((1, 1), 1.25),
                             np.array([[-0.5], [0.5]]), np.ones((2, 1)))
    assert mix["mean_diff_sd"] == pytest.approx(0, abs=1e-12)
    assert mix["sd_ratio"] == pytest.approx(1.0)
    assert 0 < mix["tv"] < 0.05


def test_reference_diagnostics_tell_chains_in_one_mode_from_chains_in_two():
    import torch

    import zoo
    from benchmarks.agreement import reference_diagnostics
    from inference.result import InferenceResult
    from zoo.data import load

    model, data = zoo.get("bnn", hidden=(2,)), load("uci-yacht", split=0)
    gen = torch.Generator().manual_seed(0)
    centre = {"w0": torch.randn(6, 2, generator=gen), "b0": torch.randn(2, generator=gen),
              "w1": torch.randn(2, 1, generator=gen), "b1": torch.zeros(1),
              "precision": torch.tensor(4.0)}

    def chains(offsets):  # 2 chains of 100 draws: small jitter around centre + offset
        post = {}
        for k, v in centre.items():
            draws = [v + off * (k == "b1") + 1e-3 * torch.randn(100, *v.shape, generator=gen)
                     for off in offsets]
            post[k] = torch.stack(draws).numpy()
        post["precision"] = np.abs(post["precision"])
        return InferenceResult(method="nuts", posterior=post)

    one = reference_diagnostics(model, data, chains([0.0, 0.0]))
    two = reference_diagnostics(model, data, chains([0.0, 3.0]))
    assert one["ref_rhat_f"] < 1.1 and one["ref_chain_w2"] < 0.05
    # the second chain's function is shifted by 3 output units: R-hat over chains is large
    # (rank-normalised R-hat of two fully separated chains is bounded, near 1.9), each chain
    # alone is stationary, and one chain's predictive is far from the pooled one
    assert two["ref_rhat_f"] > 1.5 and two["ref_rhat_f_within"] < 1.1
    assert two["ref_chain_w2"] > 0.5
