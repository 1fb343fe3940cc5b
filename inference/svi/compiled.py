"""A compiled ELBO: the loss and its gradients for a model and guide of fixed structure.

Pyro's ELBOs run the guide and the model under a stack of handlers at every step, building a
trace and distribution objects each time; for a small network that bookkeeping costs more than
the arithmetic. :func:`compile_elbo` runs it once instead: the ``Trace_ELBO`` estimate and its
gradients with respect to every parameter are traced to a flat graph of tensor operations with
``torch.fx``'s ``make_fx`` (the supported successor of the deprecated ``torch.jit.trace`` that
Pyro's ``JitTrace_ELBO`` uses), and that graph is compiled with ``torch.compile``. Each later
call replays it: the same random operations in the same order on torch's global generator
(``fallback_random``: the compiled graph draws exactly the numbers the eager path would), no
handler, trace or distribution object in the loop.

What it needs, and what happens otherwise (:class:`NotCompilable`, and the caller keeps Pyro's
ELBO):

* the objective is ``Trace_ELBO`` (any number of particles, vectorised or not) and every
  latent site of the guide is reparameterised (no score-function terms);
* the structure is fixed: the same sites, shapes and plates at every step. Python branches on
  the value of a parameter or of a random draw fail while tracing (the parameters are traced
  inputs); constants of the data are read once. The traced graph is also checked against
  Pyro's own ``loss_and_grads`` at two random states before it is used.
* no per-step change of the objective from outside (KL annealing changes it at every step).

Usage::

    from inference.svi.compiled import compile_elbo, NotCompilable
    try:
        loss_fn = compile_elbo(model, guide, Trace_ELBO(max_plate_nesting=1), {"x": x})
    except NotCompilable as err:
        print("plain ELBO:", err)
    loss, ok, grads = loss_fn()           # float, all finite?, one gradient per parameter
    loss_fn.params                        # the unconstrained parameters the grads belong to
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import ELBO, Trace_ELBO
from pyro.poutine.util import prune_subsample_sites

from inference.checkpoint import get_rng, set_rng

__all__ = ["CompiledELBO", "NotCompilable", "compile_elbo"]

#: relative and absolute tolerance of the check against Pyro's own ELBO (float32 sums of a
#: few thousand terms, fused differently by the compiler)
_RTOL, _ATOL = 1e-4, 1e-4


class NotCompilable(ValueError):
    """The ELBO of this model and guide cannot be compiled; the message says why."""


class CompiledELBO:
    """The compiled loss-and-gradient function of a model and guide (see the module docstring).

    Calling it returns ``(loss, ok, grads)``: the loss (a float, Pyro's ``Trace_ELBO``
    estimate), whether the loss and every gradient are finite (a bool; both come to the host
    in one synchronisation), and one gradient tensor per entry of :attr:`params` (the
    unconstrained parameters that the loss depends on, in a fixed order). Nothing is written
    to ``.grad``.

    Usage: ``loss, ok, grads = compile_elbo(model, guide, elbo, kwargs)()``.
    """

    def __init__(self, fn: Callable[..., Any], inputs: Sequence[torch.Tensor],
                 params: Sequence[torch.Tensor], backend: str) -> None:
        self._fn = fn
        self.inputs = list(inputs)
        #: the parameters with a gradient, in the order of the returned gradients
        self.params = list(params)
        #: ``"inductor"`` (torch.compile) or ``"fx"`` (the traced graph, replayed as is)
        self.backend = backend

    def __call__(self) -> tuple[float, bool, list[torch.Tensor]]:
        with torch.no_grad():
            status, *grads = self._fn(*self.inputs)
        loss, ok = status.tolist()
        return loss, bool(ok), grads


def _check_supported(elbo: ELBO, guide_trace: poutine.Trace) -> None:
    if type(elbo) is not Trace_ELBO:
        raise NotCompilable(f"only Trace_ELBO is compiled, not {type(elbo).__name__}")
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        fn = site["fn"]
        if site.get("infer", {}).get("enumerate") or not getattr(fn, "has_rsample", False):
            raise NotCompilable(f"guide site {name!r} is not reparameterised "
                                f"({type(fn).__name__}): its score-function term is not "
                                "compiled")


def _elbo_loss(elbo: ELBO, model: Callable[..., Any], guide: Callable[..., Any],
               kwargs: Mapping[str, Any]) -> torch.Tensor:
    """``Trace_ELBO``'s loss as a tensor for a fully reparameterised guide (its surrogate
    loss then equals the loss)."""
    total: Any = 0.0
    for model_trace, guide_trace in elbo._get_traces(model, guide, (), dict(kwargs)):
        total = total + (model_trace.log_prob_sum() - guide_trace.log_prob_sum())
    return -total / elbo.num_particles


def _pyro_reference(elbo: ELBO, model: Callable[..., Any], guide: Callable[..., Any],
                    kwargs: Mapping[str, Any], params: Sequence[torch.Tensor]
                    ) -> tuple[float, list[torch.Tensor | None]]:
    """Pyro's own ``loss_and_grads`` at the current RNG state; ``.grad`` left as it was."""
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        loss = elbo.loss_and_grads(model, guide, **kwargs)
        grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    return float(loss), grads


def _agrees(loss: float, grads: Sequence[torch.Tensor], ref_loss: float,
            ref_grads: Sequence[torch.Tensor | None]) -> bool:
    if not abs(loss - ref_loss) <= _ATOL + _RTOL * abs(ref_loss):
        return False
    for got, want in zip(grads, ref_grads):
        if want is None or not torch.allclose(got, want, rtol=_RTOL, atol=_ATOL * 10):
            return False
    return True


def compile_elbo(model: Callable[..., Any], guide: Callable[..., Any], elbo: ELBO,
                 model_kwargs: Mapping[str, Any], *, backend: str = "inductor") -> CompiledELBO:
    """Trace (and with ``backend="inductor"`` compile) ``elbo``'s loss and gradients.

    The model and guide must already have created their parameters (run the guide once) and
    ``elbo.max_plate_nesting`` must be set. Every RNG (torch, Python, numpy) is left as it
    was, so training afterwards draws the numbers it would have drawn without compiling.
    Raises :class:`NotCompilable` when the model, guide or objective cannot be compiled.
    Usage: see the module docstring.
    """
    if backend not in ("inductor", "fx"):
        raise ValueError(f"backend must be 'inductor' or 'fx', got {backend!r}")
    kwargs = dict(model_kwargs)
    rng = get_rng()
    try:
        return _build(model, guide, elbo, kwargs, backend)
    finally:
        set_rng(rng)


def _build(model: Callable[..., Any], guide: Callable[..., Any], elbo: ELBO,
           kwargs: dict[str, Any], backend: str) -> CompiledELBO:
    from torch.fx.experimental.proxy_tensor import make_fx

    # one eager run: the structure, the parameters it reads and which of them get a gradient
    try:
        with poutine.trace(param_only=True) as capture, torch.enable_grad():
            with poutine.block(), torch.no_grad():
                guide_trace = poutine.trace(guide).get_trace(**kwargs)
            _check_supported(elbo, prune_subsample_sites(guide_trace))
            loss = _elbo_loss(elbo, model, guide, kwargs)
        inputs = list({id(s["value"].unconstrained()): s["value"].unconstrained()
                       for s in capture.trace.nodes.values()}.values())
        found = torch.autograd.grad(loss, inputs, allow_unused=True)
    except NotCompilable:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the tensor ELBO: not compiled
        raise NotCompilable(f"{type(error).__name__}: {str(error).splitlines()[0]}") from error
    params = [p for p, g in zip(inputs, found) if g is not None]
    if not params:
        raise NotCompilable("the loss depends on no parameter")

    def loss_and_grads(*_: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # the parameters are read from the param store and modules as usual; make_fx tracks
        # them as the graph's inputs because they are the very tensors passed in
        value = _elbo_loss(elbo, model, guide, kwargs)
        grads = torch.autograd.grad(value, params)
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
        ok = (finite & torch.isfinite(value)).to(value.dtype)
        return (torch.stack([value.detach(), ok]),) + tuple(grads)

    try:
        with pyro.validation_enabled(False), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = make_fx(loss_and_grads)(*inputs)
        graph.graph.eliminate_dead_code()
        graph.recompile()
    except Exception as error:  # noqa: BLE001 - data-dependent control flow and the like
        raise NotCompilable(f"tracing failed ({type(error).__name__}: "
                            f"{str(error).splitlines()[0]})") from error

    fn: Callable[..., Any] = graph
    if backend == "inductor":
        fn = torch.compile(graph, dynamic=False, fullgraph=True,
                           options={"fallback_random": True})
    compiled = CompiledELBO(fn, inputs, params, backend)
    # the same numbers as Pyro's own estimator, at two random states
    for seed in (101, 202):
        pyro.set_rng_seed(seed)
        ref_loss, ref_grads = _pyro_reference(elbo, model, guide, kwargs, params)
        pyro.set_rng_seed(seed)
        try:
            got_loss, _, got_grads = compiled()
        except Exception as error:  # noqa: BLE001 - a compiler failure: keep the plain path
            raise NotCompilable(f"torch.compile failed ({type(error).__name__}: "
                                f"{str(error).splitlines()[0]})") from error
        if not _agrees(got_loss, got_grads, ref_loss, ref_grads):
            raise NotCompilable("the compiled ELBO disagrees with Pyro's (a Python branch on "
                                "random or parameter values?)")
    return compiled
