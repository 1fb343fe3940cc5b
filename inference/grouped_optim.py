"""One torch optimiser over all of Pyro's parameters, in place of one per parameter.

``pyro.optim.PyroOptim`` creates a separate torch optimiser for every parameter it sees and
steps each one on its own: for a network with a dozen weight tensors that is a dozen
``Optimizer.step`` calls (hooks, grad-mode switches, argument handling) per SVI step, which
for a small VAE cost more than its forward pass. :class:`GroupedOptim` keeps the same
contract (called with the parameters of a step, ``get_state`` / ``set_state`` in Pyro's
per-parameter format, state of parameters not seen yet consumed when they appear) with one
torch optimiser whose parameter groups collect the parameters as they appear, stepped once.

The arithmetic is the same: the optimisers used here (Adam, SGD, RMSprop, Adagrad, Pyro's
ClippedAdam and AdagradRMSProp) update each parameter from its own gradient and state only,
so stepping them together gives what stepping them one by one gives. Pyro's per-parameter
learning-rate schedulers, gradient clipping (``clip_args``) and per-parameter ``optim_args``
callables are not supported here: :func:`inference.schedules.make_optimizer` keeps
``PyroOptim`` for those.

Usage::

    from inference.grouped_optim import GroupedOptim
    optim = GroupedOptim(torch.optim.Adam, {"lr": 1e-3})
    svi = pyro.infer.SVI(model, guide, optim, Trace_ELBO())   # or SVIEngine(...)
    optim.get_state()["AutoNormal.locs.mu"]["state"][0]["exp_avg"]
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import pyro
import torch
from pyro.optim import PyroOptim

__all__ = ["GroupedOptim"]


class GroupedOptim(PyroOptim):
    """A ``PyroOptim`` with one torch optimiser for every parameter (see the module docstring).

    A call steps exactly the parameters passed (others keep their values and state even if
    they hold a gradient). Usage: ``GroupedOptim(torch.optim.Adam, {"lr": 0.01})(params)``.
    """

    def __init__(self, optim_constructor: Callable[..., torch.optim.Optimizer],
                 optim_args: Mapping[str, Any]) -> None:
        if not isinstance(optim_args, Mapping):
            raise TypeError("GroupedOptim takes a dict of optimiser arguments (per-parameter "
                            "argument callables need pyro.optim.PyroOptim)")
        super().__init__(optim_constructor, dict(optim_args))
        self.optimizer: torch.optim.Optimizer | None = None
        self._known: dict[torch.Tensor, None] = {}

    def _add(self, params: list[torch.Tensor]) -> None:
        if self.optimizer is None:
            self.optimizer = self.pt_optim_constructor(params, **self.pt_optim_args)
        else:
            self.optimizer.add_param_group({"params": params})
        store = pyro.get_param_store()
        for p in params:
            self._known[p] = None
            # Pyro's map from parameter to its optimiser, for code that walks it (e.g. to set
            # the learning rate of every group): here every entry is the one optimiser
            self.optim_objs[p] = self.optimizer
            saved = self._state_waiting_to_be_consumed.pop(store.param_name(p), None)
            if saved and saved.get("state"):
                # as Optimizer.load_state_dict: floating state follows the parameter's dtype
                # and device; the step counter stays as it was
                self.optimizer.state[p] = {
                    key: (value.to(device=p.device, dtype=p.dtype)
                          if torch.is_tensor(value) and key != "step"
                          and value.is_floating_point() else value)
                    for key, value in saved["state"][0].items()}

    def __call__(self, params: Iterable[torch.Tensor], *args: Any, **kwargs: Any) -> None:
        params = list(params)
        new = [p for p in params if p not in self._known]
        if new:
            self._add(new)
        if self.optimizer is None:
            return
        hidden: list[tuple[torch.Tensor, torch.Tensor]] = []
        if len(params) != len(self._known):  # step only the parameters of this call
            wanted = set(map(id, params))
            for p in self._known:
                if id(p) not in wanted and p.grad is not None:
                    hidden.append((p, p.grad))
                    p.grad = None
        try:
            self.optimizer.step(*args, **kwargs)
        finally:
            for p, grad in hidden:
                p.grad = grad

    def get_state(self) -> dict[str, Any]:
        """Per parameter name, the state dict a one-parameter torch optimiser would have
        (``{"state": {0: ...}, "param_groups": [{..., "params": [0]}]}``): Pyro's format, so
        checkpoints move between this and ``PyroOptim``."""
        if self.optimizer is None:
            return {}
        store = pyro.get_param_store()
        out: dict[str, Any] = {}
        for group in self.optimizer.param_groups:
            hyper = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                name = store.param_name(p)
                if name is None:
                    continue
                state = self.optimizer.state.get(p)
                out[name] = {"state": {0: dict(state)} if state else {},
                             "param_groups": [{**hyper, "params": [0]}]}
        return out
