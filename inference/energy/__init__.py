"""Energy-based models trained by their own estimators: contrastive divergence, persistent CD,
parallel tempering, and annealed importance sampling for their partition functions.

The pieces know nothing of particular models; a model takes part by implementing the small
protocols of :mod:`inference.energy.protocol` (an energy over a state, a positive phase, a
Gibbs step at inverse temperature ``beta``; for AIS a base model and a tractable unnormalised
marginal). Restricted and deep Boltzmann machines in :mod:`zoo.models` implement them.

Usage::

    from inference.energy import train_energy, run_ais, ais_schedule
    record = train_energy(rbm, x_train, k=1, num_steps=5000, lr=0.05, seed=0)
    ais = run_ais(rbm, ais_schedule(14_500), num_runs=100, seed=0)
    ais.log_z, ais.log_z_se
"""

from inference.energy.ais import AISResult, ais_schedule, run_ais
from inference.energy.protocol import Annealable, EnergyModel, TrainingStage
from inference.energy.tempering import swap_step
from inference.energy.train import TrainingRecord, train_energy

__all__ = ["AISResult", "Annealable", "EnergyModel", "TrainingRecord", "TrainingStage",
           "ais_schedule", "run_ais", "swap_step", "train_energy"]
