"""The check every MCMC reference test makes: a run's draws against a posteriordb reference.

Tolerances (all from Monte Carlo error, fixed seeds):

* means: within 4 combined Monte Carlo standard errors,
  ``sqrt(mcse_run^2 + ref_sd^2 / ref_ess)``; for a correct sampler a 4-sigma miss has
  probability 6e-5 per parameter, so with ~40 parameters a false failure is below 0.3%.
* sds: within 10% of the reference sd. The check first asserts that the run is long enough for
  this to mean something: the Monte Carlo standard error of the sd (``az.mcse(method="sd")``)
  must be at most 1/3 of the tolerance, so 10% is at least 3 sigma.
* R-hat below ``max_rhat`` (1.01 by default, Vehtari et al. 2021).

Usage::

    assert_matches_reference(model, data, result)   # model: a zoo model with a reference
"""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import pytest


def assert_matches_reference(model: Any, data: Any, result: Any, max_rhat: float = 1.01
                             ) -> None:
    """Assert that ``result``'s draws match ``model``'s reference posterior (see above)."""
    reference = model.reference_posterior(data)
    draws = model.to_stan_draws(result.posterior)
    assert set(draws) == set(reference["mean"])
    for param, value in draws.items():
        ref_draws = reference["draws"][param]
        ref_ess = float(az.ess(np.asarray(ref_draws)))
        sd_error = float(az.mcse(value, method="sd"))
        assert 3 * sd_error <= 0.10 * reference["sd"][param], f"{param}: run too short"
        mcse = float(az.mcse(value))
        combined = np.sqrt(mcse**2 + reference["sd"][param] ** 2 / ref_ess)
        assert abs(value.mean() - reference["mean"][param]) < 4 * combined, param
        assert value.std(ddof=1) == pytest.approx(reference["sd"][param], rel=0.10), param
        assert float(az.rhat(value)) < max_rhat, param
