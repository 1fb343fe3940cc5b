"""Budgets: run a suite at a reduced size, and ``--smoke``, the tiny size every suite is tested at.

A budget caps what each cell may spend: optimisation steps (KL-annealing and validation
schedules shrink with them), wall-clock minutes per variational fit, MCMC warm-up and draws,
the held-out points and samples of evaluation, and which seeds and splits run. Suites may
declare one in a ``[budget]`` table; ``zoo bench NAME --budget key=value`` overrides it. A
budgeted cell has its own id (its settings differ), so budgeted and full runs never mix in one
output folder unnoticed, and every row keeps the settings it ran with.

Usage::

    from benchmarks.budget import Budget, SMOKE, apply_budget
    small = apply_budget(load_suite("uci"), Budget(max_steps=600, minutes=12, splits=3))
    tiny = apply_budget(load_suite("mnist-vae"), SMOKE)
"""

from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from benchmarks.suite import Cell, Suite, SuiteError
from inference.methods.settings import MethodSettings, flag, integer, real, text

__all__ = ["Budget", "SMOKE", "apply_budget"]


@dataclass(frozen=True)
class Budget(MethodSettings):
    """Caps applied to every cell of a suite (``None``: no cap).

    ``max_steps``: optimisation steps of variational and point fits (autoencoders, GANs), and
    the steps of SG-MCMC chains, SWAG, ensemble members and Laplace modes; ``minutes``:
    wall-clock minutes of one such fit (it stops early and says so); ``mcmc_draws``: MCMC
    warm-up and draws per chain; ``chains``: MCMC and SG-MCMC chains; ``members``: members of
    deep ensembles; ``max_points``, ``is_samples``, ``num_draws``: evaluation's held-out
    points, importance samples and posterior draws (``max_points`` also caps the training rows
    of a curvature estimate, ``curvature_points``); ``seeds``/``splits``: only the first n
    seeds / splits of the suite; ``one_per_method``: one cell per model and method (the
    first); ``max_tree_depth``: caps NUTS trees; ``elbo_particles``: particles of SVI's
    training-ELBO monitor; ``plots``: false skips figures; ``ais_temperatures``: caps the
    intermediate distributions of annealed importance sampling (a Boltzmann model's
    ``ais_temperatures`` configuration); ``datasets`` / ``methods``: comma-separated data set
    names / method labels, only those run (``--budget datasets=uci-yacht methods=sghmc,swag``).
    ``max_steps`` and ``minutes`` also cap the updates (per stage) and training time of the
    ``energy`` methods (cd, pcd). Under ``max_steps`` a cell's SG-MCMC warm start
    (``pretrain_steps``), thinning (``thin``) and SWAG's ``collect_every`` shrink in
    proportion, so the draws and snapshots kept stay as many as in the full run.
    """

    max_steps: int | None = integer(None, minimum=1, optional=True)
    minutes: float | None = real(None, minimum=0.0, exclusive=True, optional=True)
    mcmc_draws: int | None = integer(None, minimum=1, optional=True)
    chains: int | None = integer(None, minimum=1, optional=True)
    members: int | None = integer(None, minimum=1, optional=True)
    max_points: int | None = integer(None, minimum=1, optional=True)
    is_samples: int | None = integer(None, minimum=1, optional=True)
    num_draws: int | None = integer(None, minimum=1, optional=True)
    seeds: int | None = integer(None, minimum=1, optional=True)
    splits: int | None = integer(None, minimum=1, optional=True)
    max_tree_depth: int | None = integer(None, minimum=1, optional=True)
    elbo_particles: int | None = integer(None, minimum=1, optional=True)
    one_per_method: bool = flag(False)
    plots: bool = flag(True)
    ais_temperatures: int | None = integer(None, minimum=3, optional=True)
    datasets: str | None = text(None, optional=True)
    methods: str | None = text(None, optional=True)

    def merged(self, overrides: Mapping[str, Any]) -> "Budget":
        """This budget with some fields replaced (checked)."""
        return type(self).from_mapping({**self.as_dict(), **dict(overrides)}, method="budget")


#: the size ``zoo bench NAME --smoke`` runs at: every stage of every cell, in seconds
SMOKE = Budget(max_steps=3, mcmc_draws=8, chains=2, max_points=16, is_samples=8, num_draws=4,
               seeds=1, splits=1, max_tree_depth=4, elbo_particles=2, one_per_method=True,
               plots=False, ais_temperatures=20)


def _capped(value: Any, cap: int | None) -> Any:
    return value if cap is None or value is None else min(int(value), cap)


def _vi_settings(settings: dict[str, Any], default_steps: int | None, budget: Budget
                 ) -> dict[str, Any]:
    # a method whose step count defaults to None (svi: 1000 fixed, 5000 untuned) is capped too
    steps = settings.get("num_steps", default_steps)
    steps = math.inf if steps is None else int(steps)
    if budget.max_steps is not None and steps > budget.max_steps:
        ratio = budget.max_steps / steps if math.isfinite(steps) else 1.0
        settings["num_steps"] = budget.max_steps
        if settings.get("pretrain_steps"):  # SG-MCMC's warm start shrinks with the run
            settings["pretrain_steps"] = max(1, round(settings["pretrain_steps"] * ratio))
        # SG-MCMC's thinning and SWAG's collection interval shrink too, so a shorter run keeps
        # as many draws and snapshots as the full one (not one draw per chain, one snapshot)
        for key in ("thin", "collect_every"):
            if settings.get(key):
                settings[key] = max(1, round(settings[key] * ratio))
        if settings.get("num_cycles"):  # cyclical SG-MCMC: no more cycles than steps
            settings["num_cycles"] = min(int(settings["num_cycles"]), budget.max_steps)
        anneal = settings.get("kl_anneal")
        if isinstance(anneal, Mapping) and "steps" in anneal:  # the schedule shrinks with the fit
            settings["kl_anneal"] = {**anneal, "steps": max(1, round(anneal["steps"] * ratio))}
        for key in ("eval_every", "checkpoint_every"):
            if settings.get(key) is not None:
                settings[key] = max(1, min(int(settings[key]), budget.max_steps))
    if budget.num_draws is not None and "num_posterior_draws" in settings:
        settings["num_posterior_draws"] = min(int(settings["num_posterior_draws"]),
                                              budget.num_draws)
    if budget.elbo_particles is not None and settings.get("elbo_every") is not None:
        settings["elbo_particles"] = min(int(settings.get("elbo_particles", 20)),
                                         budget.elbo_particles)
    if budget.minutes is not None:
        limit = budget.minutes * 60.0
        settings["time_limit_s"] = min(float(settings.get("time_limit_s") or limit), limit)
    return settings


def _cell_under(cell: Cell, budget: Budget) -> Cell:
    from inference.methods import get

    entry = get(cell.method)
    defaults = entry.settings_from({"guide": cell.guide} if cell.guide else {}).as_dict()
    settings = dict(cell.settings)
    # every optimisation-driven family (vi, sgmcmc, ensemble, laplace) counts num_steps; the
    # mcmc family's num_steps is HMC's leapfrog count, which no budget touches
    if entry.family != "mcmc" and "num_steps" in entry.fields:
        settings = _vi_settings(settings, defaults["num_steps"], budget)
        if budget.minutes is not None and "time_limit_s" not in entry.fields:
            settings.pop("time_limit_s")
    if entry.family == "sgmcmc" and budget.chains is not None and int(
            settings.get("num_chains", defaults["num_chains"])) > budget.chains:
        settings["num_chains"] = budget.chains
    if budget.members is not None and "num_members" in entry.fields and int(
            settings.get("num_members", defaults["num_members"])) > budget.members:
        settings["num_members"] = budget.members
    if entry.family == "mcmc":
        for key in ("num_warmup", "num_samples"):
            value = _capped(settings.get(key, defaults.get(key)), budget.mcmc_draws)
            if value is not None and value != defaults.get(key):
                settings[key] = value
        if budget.chains is not None and int(settings.get("num_chains", defaults["num_chains"])
                                             ) > budget.chains:
            settings["num_chains"] = budget.chains
        if budget.max_tree_depth is not None and "max_tree_depth" in entry.fields:
            depth = int(settings.get("max_tree_depth", defaults["max_tree_depth"]))
            settings["max_tree_depth"] = min(depth, budget.max_tree_depth)
    if budget.max_points is not None and "curvature_points" in entry.fields:
        # a curvature over the whole training set (KFAC on MNIST: 60000 rows x 10 backward
        # passes) is capped like evaluation's points
        # (None, "all rows", is capped too)
        rows = settings.get("curvature_points")
        settings["curvature_points"] = budget.max_points if rows is None else _capped(
            rows, budget.max_points)
    evaluation = dict(cell.evaluation)
    for key, cap in (("max_points", budget.max_points), ("is_samples", budget.is_samples),
                     ("num_draws", budget.num_draws)):
        if cap is not None:
            evaluation[key] = _capped(evaluation.get(key, cap), cap)
    config = dict(cell.config)
    if budget.is_samples is not None and "eval_samples" in config:  # a model's own default
        config["eval_samples"] = min(int(config["eval_samples"]), budget.is_samples)
    if budget.ais_temperatures is not None and "ais_temperatures" in config:
        config["ais_temperatures"] = min(int(config["ais_temperatures"]), budget.ais_temperatures)
    return dataclasses.replace(cell, settings=settings, evaluation=evaluation, config=config,
                               plots=cell.plots and budget.plots)


def _first(values: list[Any], n: int | None) -> set[Any]:
    ordered = list(dict.fromkeys(values))
    return set(ordered if n is None else ordered[:n])


def _chosen(name: Any, names: str | None) -> bool:
    return names is None or str(name) in {n.strip() for n in names.split(",")}


def apply_budget(suite: Suite, budget: Budget | None) -> Suite:
    """The suite with ``budget`` applied to every cell (the suite itself when ``None``)."""
    if budget is None:
        return suite
    seeds = _first([c.seed for c in suite.cells], budget.seeds)
    splits = _first([c.split for c in suite.cells], budget.splits)
    cells, seen = [], set()
    for cell in suite.cells:
        if cell.seed not in seeds or cell.split not in splits:
            continue
        if not (_chosen(cell.data, budget.datasets) and _chosen(cell.label, budget.methods)):
            continue
        key = (cell.model, cell.label)
        if budget.one_per_method and key in seen:
            continue
        seen.add(key)
        cells.append(dataclasses.replace(_cell_under(cell, budget), index=len(cells)))
    if not cells:
        raise SuiteError(f"suite {suite.name!r}: the budget leaves no cell to run")
    return dataclasses.replace(suite, cells=tuple(cells))
