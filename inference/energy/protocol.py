"""What the energy-based trainers and AIS need of a model: two small protocols and a stage record.

A *state* is a tuple of tensors with a leading batch dimension (``(v, h)`` for an RBM,
``(v, h1, h2)`` for a two-layer DBM). The trainer (:func:`inference.energy.train_energy`)
minimises ``mean energy(positive state) - mean energy(negative state)`` with both states held
fixed: for an energy linear in its parameters this has the gradient ``E_data[dE/dtheta] -
E_model[dE/dtheta]``, the negative log-likelihood gradient whose model term CD-k and PCD
approximate with Gibbs chains.

A tiny example (a model with one visible unit and no hidden units)::

    class Coin(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.b = torch.nn.Parameter(torch.zeros(1))
        def energy(self, state, beta=1.0):
            return -beta * (state[0] * self.b).sum(-1)
        def positive_state(self, v, generator=None):
            return (v,)
        def chain_state(self, v, generator=None):
            return (v,)
        def gibbs_step(self, state, beta=1.0, generator=None):
            p = torch.sigmoid(beta * self.b).expand_as(state[0])
            return (torch.bernoulli(p, generator=generator),)
        def negative_state(self, state):
            return state
        def weight_parameters(self):
            return []
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch

State = tuple[torch.Tensor, ...]

__all__ = ["Annealable", "EnergyModel", "HISTORY_PREFIX", "State", "TrainingStage"]

#: prefix of the training histories an energy method stores beside the trained parameters in
#: ``InferenceResult.guide_params`` (``history/recon_error``); the rest is the state dict
HISTORY_PREFIX = "history/"


@runtime_checkable
class EnergyModel(Protocol):
    """A model the CD / PCD trainer can fit (an ``nn.Module`` whose parameters define it).

    - ``energy(state, beta)``: per-example energy of the tempered model ``p_beta`` (``beta=1``
      is the model itself), differentiable in the parameters;
    - ``positive_state(v)``: the data term's state: observed ``v`` with the hidden units at
      their exact conditional expectations (RBM) or mean-field values (DBM);
    - ``chain_state(v)``: a chain started at data (CD's start; PCD's first start);
    - ``gibbs_step(state, beta)``: one sweep of block Gibbs sampling under ``p_beta``;
    - ``negative_state(state)``: the chain state used for the model term (hidden units
      replaced by conditional probabilities where that lowers variance);
    - ``weight_parameters()``: the parameters weight decay applies to (not the biases).

    Optionally ``init_from_data(x)``: set biases from the training data's statistics before
    training (Hinton's guide: visible biases at the log-odds of the base rates).
    """

    def energy(self, state: State, beta: float = 1.0) -> torch.Tensor: ...

    def positive_state(self, v: torch.Tensor,
                       generator: torch.Generator | None = None) -> State: ...

    def chain_state(self, v: torch.Tensor, generator: torch.Generator | None = None) -> State: ...

    def gibbs_step(self, state: State, beta: float = 1.0,
                   generator: torch.Generator | None = None) -> State: ...

    def negative_state(self, state: State) -> State: ...

    def weight_parameters(self) -> Sequence[torch.nn.Parameter]: ...


@runtime_checkable
class Annealable(Protocol):
    """A model whose partition function AIS can estimate (:func:`inference.energy.run_ais`).

    The path runs from a base model (``beta=0``, known ``log Z``) to the model (``beta=1``):

    - ``ais_base_sample(n)``: ``n`` exact draws of the AIS state from the base model;
    - ``ais_log_z_base()``: log partition function of the base model;
    - ``ais_log_p_tilde(state, beta)``: unnormalised log density of ``p_beta`` on the AIS
      state (hidden units summed out where that is tractable);
    - ``ais_transition(state, beta)``: a Markov step leaving ``p_beta`` invariant.

    Optionally ``ais_step(state, beta_prev, beta, generator=, transition=)`` returning
    ``(log p*_beta(x) - log p*_beta_prev(x), next state)`` in one pass (a speed-up only).
    """

    def ais_base_sample(self, n: int, generator: torch.Generator | None = None) -> Any: ...

    def ais_log_z_base(self) -> float: ...

    def ais_log_p_tilde(self, state: Any, beta: float) -> torch.Tensor: ...

    def ais_transition(self, state: Any, beta: float,
                       generator: torch.Generator | None = None) -> Any: ...


@dataclass(frozen=True)
class TrainingStage:
    """One stage of a (possibly greedy, layer-wise) training: a model and what it is fit to.

    ``inputs(v, generator)`` maps a mini-batch of data to the stage model's visible units
    (identity for a plain RBM; samples of the layer below for the upper RBMs of a DBN);
    ``before()`` runs once when the stage starts (a DBM copies its pretrained layers in);
    ``name`` labels the stage in histories and messages.

    Example: ``TrainingStage("rbm1", rbm1)``.
    """

    name: str
    model: Any
    inputs: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None
    before: Callable[[], None] | None = None
