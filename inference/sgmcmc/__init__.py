"""Stochastic-gradient MCMC: SGLD, SGHMC, pSGLD kernels, step-size schedules, the chain driver.

Usage::

    from inference.sgmcmc import run_sgmcmc
    result = run_sgmcmc(model, {"y": y}, kernel="sgld", batch_size=10, step_size=0.1,
                        schedule="polynomial", num_steps=3000, thin=5)
"""

from inference.sgmcmc.driver import kept_steps, run_sgmcmc
from inference.sgmcmc.kernels import KERNELS
from inference.sgmcmc.schedules import SCHEDULES, StepSchedule

__all__ = ["run_sgmcmc", "kept_steps", "KERNELS", "SCHEDULES", "StepSchedule"]
