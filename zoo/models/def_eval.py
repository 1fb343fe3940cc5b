"""Held-out evaluation of a fitted deep exponential family (:class:`~zoo.models.deep_exponential.DEF`).

The DEF's guides hold one variational factor per *training* face, so a held-out face has no
posterior until one is fitted: the global weights are fixed at their posterior mean under the
trained guide (exact for the mean-field gamma guide, the average of ``num_draws`` guide draws
(evaluation setting; the model's ``eval_weight_draws`` by default) otherwise; the weight posterior is *not* integrated over), then the local latents of the
held-out faces are fitted by SVI (:mod:`inference.evaluation.local_refit`) and used as the
importance proposal for ``log p(x | E[W])`` per face with its PSIS k-hat.

The local guide is of the trained guide's family where that family factorises over faces: the
mean-field gamma guide for ``mean_field``, a diagonal Normal in log space (``AutoNormal``) for
``auto_normal``, ``auto_diagonal_normal`` and ``grouped`` (the same family per face), and also
for the flow guides, whose flows act on all latents jointly and cannot be refitted per face.

Usage::

    from zoo.models.def_eval import heldout_metrics
    metrics, state = heldout_metrics(def_model, load("faces"), result)
    metrics["test_ll"], state["recon"].shape      # per-face log p(x), (80, 4096) reconstructions
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import pyro
import pyro.poutine as poutine
import torch

from zoo.data.dataset import Dataset

if TYPE_CHECKING:
    from inference.result import InferenceResult
    from zoo.models.deep_exponential import DEF

__all__ = ["heldout_metrics", "posterior_mean_weights", "local_guide_kind"]

#: draws of the local guide averaged for reconstructions when it has no closed-form mean
RECON_DRAWS = 32


def _fork_rng(seed: int):
    from inference.checkpoint import get_rng, set_rng

    class _Fork:
        def __enter__(self) -> None:
            self.state = get_rng()
            pyro.set_rng_seed(seed)

        def __exit__(self, *exc: Any) -> None:
            set_rng(self.state)

    return _Fork()


def _mc_mean(guide: Any, kwargs: Mapping[str, Any], sites: tuple[str, ...], draws: int
             ) -> dict[str, torch.Tensor]:
    totals: dict[str, torch.Tensor] = {}
    with torch.no_grad(), poutine.block():
        for _ in range(draws):
            trace = poutine.trace(guide).get_trace(**kwargs)
            for s in sites:
                value = trace.nodes[s]["value"].detach()
                totals[s] = totals[s] + value if s in totals else value.clone()
    return {s: v / draws for s, v in totals.items()}


def posterior_mean_weights(m: "DEF", guide: Any, train_kwargs: Mapping[str, Any],
                           num_draws: int = 100, seed: int = 0) -> dict[str, torch.Tensor]:
    """``E_q[W]`` for every weight site: exact for :class:`DEFMeanField`, else the mean of
    ``num_draws`` guide draws (global RNG untouched). Usage: ``posterior_mean_weights(m, g, kw)``.
    """
    from zoo.models.def_guides import DEFMeanField

    if isinstance(guide, DEFMeanField):
        means = guide.mean()
        return {s: means[s] for s in m.weight_names}
    with _fork_rng(seed):
        return _mc_mean(guide, train_kwargs, m.weight_names, num_draws)


def local_guide_kind(trained: Any) -> str:
    """The family of the held-out local fit for a trained guide: ``mean_field`` or
    ``auto_normal`` (see the module docstring)."""
    from zoo.models.def_guides import DEFMeanField

    return "mean_field" if isinstance(trained, DEFMeanField) else "auto_normal"


def heldout_metrics(m: "DEF", dataset: Dataset, result: "InferenceResult | None",
                    split: str = "test", settings: Mapping[str, Any] | None = None,
                    ) -> tuple[dict[str, float], dict[str, Any]]:
    """Held-out metrics of a DEF fit and what the figures need (weights, data,
    reconstructions). See the module docstring; ``settings`` are evaluation settings
    (``is_samples``, ``max_points``, ``particle_batch``, ``seed``)."""
    from pyro.infer.autoguide import AutoNormal
    from pyro.infer.autoguide.initialization import init_to_mean

    from inference.evaluation import first_points
    from inference.evaluation.local_refit import heldout_local_fit, preserved_param_store
    from zoo.evaluation import eval_settings
    from zoo.models.deep_exponential import weight_matmul
    from zoo.models.def_guides import DEFMeanField

    if split not in dataset.splits:
        raise ValueError(f"data set {dataset.name!r} has no {split!r} split")
    if result is None or not result.fitted:
        raise ValueError("DEF.evaluate needs a live fit (result.fitted holds the trained guide)")
    st = eval_settings(m, settings)
    trained = result.fitted.get("trained_guide") or result.fitted.get("guide")
    train_kwargs = m.model_kwargs(dataset, "train")
    weights = posterior_mean_weights(m, trained, train_kwargs, st.num_draws, st.seed)
    x = first_points(m.evaluation_kwargs(dataset, split), st.max_points)["x"]
    kwargs = {"x": x, "weights": weights}
    kind = local_guide_kind(trained)
    run = result.settings
    steps = int(m.eval_steps or run.get("steps_run") or run.get("num_steps") or 1000)
    with preserved_param_store():
        if kind == "mean_field":
            local = DEFMeanField(m, prefix="def_heldout")
        else:
            local = AutoNormal(m.model, init_loc_fn=init_to_mean)
        metrics, _ = heldout_local_fit(
            m.model, local, kwargs, num_steps=steps, optimizer=run.get("optimizer", "adam"),
            lr=float(run.get("lr", 1e-2)), elbo=run.get("elbo", "trace"),
            is_samples=st.is_samples, particle_batch=st.particle_batch, seed=st.seed)
        if kind == "mean_field":
            z1 = local.mean()["z1"]
        else:
            with _fork_rng(st.seed):
                z1 = _mc_mean(local, kwargs, ("z1",), RECON_DRAWS)["z1"]
    with torch.no_grad():
        recon = m._mean(z1, weights["w1"], 0)
        if m.observation == "bernoulli":
            recon = torch.sigmoid(recon)
    state = {"weights": weights, "x": x, "recon": recon, "local_guide": kind}
    return metrics, state
