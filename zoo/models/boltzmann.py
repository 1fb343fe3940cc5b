"""Boltzmann machines in the zoo: the RBM, the deep belief net and the deep Boltzmann machine.

These are energy-based models, not Pyro generative programs: each zoo model's ``model`` is an
``nn.Module`` implementing the protocols of :mod:`inference.energy` (an energy, a positive
phase, Gibbs steps; a path for annealed importance sampling), and they are fit by the
``energy`` family of methods (``cd``, ``pcd``), which train it in place. Held-out figures come
from AIS (:meth:`BoltzmannModel.evaluate`): the test log-likelihood per image of an RBM, and
the variational lower bound on it for a DBN or DBM, with the AIS ``log Z``, its standard
error, the +-3 sd interval and, for small models, the exact ``log Z`` by enumeration.

Usage::

    from zoo.fit import fit
    result, rbm, data = fit("rbm", "cd", config={"hidden": 500}, k=1, num_steps=20000)
    rbm.evaluate(data, result)     # {"test_ll": ..., "log_z": ..., "log_z_se": ...}

    zoo fit rbm --method cd --config hidden=500 --out runs/rbm
    zoo fit dbm --method pcd --config hidden=[500,1000] --set num_steps=20000 --out runs/dbm
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from inference.energy.protocol import HISTORY_PREFIX
from inference.methods.capabilities import ModelTraits
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.dbm_layers import DBM
from zoo.models.dbn_layers import DBN
from zoo.models.rbm_layers import RBM, VISIBLE_KINDS
from zoo.registry import register

if TYPE_CHECKING:
    from inference.energy.ais import AISResult
    from inference.result import InferenceResult

__all__ = ["BoltzmannModel", "RBMModel", "DBNModel", "DBMModel", "ENERGY_METHODS"]

#: the methods that can train these models
ENERGY_METHODS = ("cd", "pcd")
_TRAITS = ModelTraits(discrete_latents=True, learned_parameters=True, local_latents=True,
                      minibatch=True, differentiable=False, energy_based=True)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class BoltzmannModel(ZooModel):
    """What the RBM, DBN and DBM share: data binding, AIS evaluation and figures.

    Configuration common to all (keywords of every subclass):

    - ``ais_runs`` (default 100) and ``ais_temperatures`` (default 14,500, the schedule of
      Salakhutdinov and Murray 2008): the AIS estimate of ``log Z``;
    - ``bound_samples``: draws of ``q`` per image for a DBN's bound (default 10);
    - ``gibbs_steps``: Gibbs sweeps of the chains shown in the sample figure (default 1000);
    - ``eval_seed``: seed of the evaluation's random numbers;
    - ``eval_max_points``: evaluate on the first n held-out images only (default all).
    """

    observed_names = ("x",)
    network: torch.nn.Module

    def __init__(self, network: torch.nn.Module, *, ais_runs: int = 100,
                 ais_temperatures: int = 14_500, bound_samples: int = 10,
                 gibbs_steps: int = 1000, eval_seed: int = 0,
                 eval_max_points: int | None = None):
        self.model = network  # an energy network, not a Pyro program (see module docstring)
        self.ais_runs = _positive_int("ais_runs", ais_runs)
        self.ais_temperatures = _positive_int("ais_temperatures", ais_temperatures)
        if self.ais_runs < 2 or self.ais_temperatures < 3:
            raise ValueError(f"AIS needs ais_runs >= 2 and ais_temperatures >= 3, got "
                             f"{ais_runs} and {ais_temperatures}")
        self.bound_samples = _positive_int("bound_samples", bound_samples)
        self.gibbs_steps = _positive_int("gibbs_steps", gibbs_steps)
        self.eval_seed = int(eval_seed)
        self.eval_max_points = (None if eval_max_points is None
                                else _positive_int("eval_max_points", eval_max_points))
        self.last_ais: AISResult | None = None

    # ------------------------------------------------------------------ data
    def _x(self, dataset: Dataset, split: str) -> torch.Tensor:
        arrays = dataset.split(split)
        if "x" not in arrays:
            raise ValueError(f"model {self.name!r} needs a data set with an 'x' array; "
                             f"{dataset.name!r} has {sorted(arrays)}")
        x = torch.as_tensor(arrays["x"]).float()
        x = x.reshape(len(x), -1)
        if self.visible_kind == "bernoulli" and bool(((x < 0) | (x > 1)).any()):
            raise ValueError(f"model {self.name!r} has binary visible units and needs data in "
                             f"[0, 1]; {dataset.name!r} is not (use visible='gaussian')")
        return x

    visible_kind = "bernoulli"

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (n, d) float tensor}`` of one split (images flattened)."""
        return {"x": self._x(dataset, split)}

    def guides(self) -> Mapping[str, Any]:
        return {}

    # ------------------------------------------------------------------ evaluation
    def evaluation_defaults(self) -> dict[str, Any]:
        return {} if self.eval_max_points is None else {"max_points": self.eval_max_points}

    def restore(self, result: "InferenceResult | None") -> None:
        """Load a result's trained parameters into the network (no-op for a live fit)."""
        params = (result.guide_params or {}) if result is not None else {}
        state = {k: torch.tensor(np.array(v)) for k, v in params.items()
                 if not k.startswith(HISTORY_PREFIX)}
        if state:
            self.model.load_state_dict(state, strict=True)

    def evaluate(self, dataset: Dataset, result: "InferenceResult | None" = None,
                 split: str = "test", settings: Mapping[str, Any] | None = None
                 ) -> dict[str, float]:
        """AIS ``log Z`` and the held-out log-likelihood (RBM) or its lower bound (DBN, DBM).

        Evaluation settings (:class:`inference.evaluation.EvalSettings`) used: ``max_points``
        (first n held-out images), ``is_samples`` (caps the AIS runs) and ``seed``.
        """
        from inference.energy import ais_schedule, run_ais
        from zoo.evaluation import eval_settings

        if split not in dataset.splits:
            raise ValueError(f"data set {dataset.name!r} has no {split!r} split; it has "
                             f"{sorted(dataset.splits)}")
        checked = eval_settings(self, settings)
        self.restore(result)
        x = self.evaluation_x(dataset, split)
        if checked.max_points is not None:
            x = x[:checked.max_points]
        runs = max(2, min(self.ais_runs, checked.is_samples))
        seed = self.eval_seed + checked.seed
        target = self.model.annealable()
        ais = run_ais(target, ais_schedule(self.ais_temperatures), num_runs=runs, seed=seed)
        self.last_ais = ais
        generator = torch.Generator().manual_seed(seed)
        ll = self.model.held_out_log_likelihood(x, ais.log_z, samples=self.bound_samples,
                                                generator=generator).numpy()
        metrics = {
            "test_ll": float(ll.mean()),
            "test_ll_se": float(ll.std(ddof=1) / np.sqrt(len(ll))) if len(ll) > 1 else 0.0,
            "log_z": float(ais.log_z), "log_z_se": float(ais.log_z_se),
            "log_z_high": float(ais.log_z_high),
            "ais_log_weight_sd": float(np.std(ais.log_weights)),
            "ais_runs": float(runs), "ais_temperatures": float(self.ais_temperatures),
            "eval_points": float(len(x)),
        }
        if np.isfinite(ais.log_z_low):  # -inf when 3 sd exceed the mean weight
            metrics["log_z_low"] = float(ais.log_z_low)
        with torch.no_grad():
            # per pixel, like the autoencoders' recon_error (one Gibbs sweep v -> h -> v)
            metrics["recon_error"] = float(((self.model.reconstruction(x) - x) ** 2).mean())
        exact = target.exact_log_z() if hasattr(target, "exact_log_z") else None
        if exact is not None:
            metrics["log_z_exact"] = float(exact)
            metrics["test_ll_exact"] = float(ll.mean()) + ais.log_z - exact
        return metrics

    def evaluation_x(self, dataset: Dataset, split: str) -> torch.Tensor:
        return self._x(dataset, split)

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path
             ) -> list[Path]:
        """First-layer filters, samples from Gibbs chains, the AIS log-weight spread."""
        from zoo.viz.boltzmann import boltzmann_figures

        self.restore(result)
        shape = dataset.info.get("image_shape")
        return boltzmann_figures(self, Path(out_dir), image_shape=shape,
                                 recon_error=self._history(result))

    @staticmethod
    def _history(result: "InferenceResult | None") -> np.ndarray | None:
        params = (result.guide_params or {}) if result is not None else {}
        value = params.get(HISTORY_PREFIX + "recon_error")
        return None if value is None else np.asarray(value)


def _hidden(value: Any, layers: int | None, name: str) -> list[int]:
    widths = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(widths, (list, tuple)) or not widths:
        raise ValueError(f"hidden must be a width or a list of widths, got {value!r}")
    widths = [_positive_int("hidden", w) for w in widths]
    if layers is not None and len(widths) != layers:
        raise ValueError(f"{name} takes hidden as {layers} widths, got {value!r}")
    return widths


@register(
    "rbm",
    description="Restricted Boltzmann machine, Bernoulli-Bernoulli or Gaussian-Bernoulli, "
    "trained by CD-k / PCD / parallel tempering; AIS test log-likelihood",
    default_data="binarized_mnist", traits=_TRAITS, methods=ENERGY_METHODS,
)
class RBMModel(BoltzmannModel):
    """An RBM: ``hidden`` units (default 500), ``visible`` ``bernoulli`` (binary data, the
    default) or ``gaussian`` (real data, standardised here with the training split's mean and
    sd; its test_ll is then per standardised image), ``x_dim`` (default 784), ``init_seed``;
    plus the AIS keywords of :class:`BoltzmannModel`."""

    def __init__(self, *, hidden: int = 500, visible: str = "bernoulli", x_dim: int = 784,
                 init_seed: int = 0, **evaluation: Any):
        if visible not in VISIBLE_KINDS:
            raise ValueError(f"visible must be one of {VISIBLE_KINDS}, got {visible!r}")
        self.visible_kind = visible
        self._standardize: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(RBM(_positive_int("x_dim", x_dim),
                             _hidden(hidden, 1, "rbm")[0], visible=visible, seed=init_seed),
                         **evaluation)

    def _x(self, dataset: Dataset, split: str) -> torch.Tensor:
        if self.visible_kind != "gaussian":
            return self._checked(super()._x(dataset, split))
        if self._standardize is None:  # the training split's statistics, once
            train = torch.as_tensor(dataset.split("train")["x"]).float()
            train = train.reshape(len(train), -1)
            self._standardize = (train.mean(0), train.std(0).clamp_min(1e-6))
        raw = torch.as_tensor(dataset.split(split)["x"]).float()
        raw = raw.reshape(len(raw), -1)
        mean, sd = self._standardize
        return self._checked((raw - mean) / sd)

    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.model.n_visible:
            raise ValueError(f"model 'rbm' was built with x_dim={self.model.n_visible} but the "
                             f"data have {x.shape[1]} columns; pass --config "
                             f"x_dim={x.shape[1]}")
        return x


@register(
    "dbn",
    description="Deep belief net: RBMs stacked greedily (CD / PCD per layer), ancestral "
    "sampling, AIS-estimated variational lower bound on test log p(x)",
    default_data="binarized_mnist", traits=_TRAITS, methods=ENERGY_METHODS,
)
class DBNModel(BoltzmannModel):
    """A DBN with binary units: ``hidden`` widths bottom first (default ``[500, 2000]``),
    ``x_dim`` (784), ``init_seed``; plus the AIS keywords of :class:`BoltzmannModel`."""

    def __init__(self, *, hidden: Sequence[int] = (500, 2000), x_dim: int = 784,
                 init_seed: int = 0, **evaluation: Any):
        super().__init__(DBN(_positive_int("x_dim", x_dim), _hidden(hidden, None, "dbn"),
                             seed=init_seed), **evaluation)


@register(
    "dbm",
    description="Two-layer deep Boltzmann machine: doubled-weight greedy pretraining, "
    "mean-field data term, PCD model term; AIS-estimated lower bound on test log p(x)",
    default_data="binarized_mnist", traits=_TRAITS, methods=ENERGY_METHODS,
)
class DBMModel(BoltzmannModel):
    """A two-layer DBM: ``hidden`` = ``[h1, h2]`` (default ``[500, 1000]``), ``x_dim`` (784),
    ``mean_field_steps`` (30), ``pretrain`` (greedy doubled-weight RBMs first, default true),
    ``init_seed``; plus the AIS keywords of :class:`BoltzmannModel`."""

    def __init__(self, *, hidden: Sequence[int] = (500, 1000), x_dim: int = 784,
                 mean_field_steps: int = 30, pretrain: bool = True, init_seed: int = 0,
                 **evaluation: Any):
        h1, h2 = _hidden(hidden, 2, "dbm")
        if not isinstance(pretrain, bool):
            raise ValueError(f"pretrain must be true or false, got {pretrain!r}")
        network = DBM(_positive_int("x_dim", x_dim), h1, h2,
                      mean_field_steps=_positive_int("mean_field_steps", mean_field_steps),
                      pretrain=pretrain, seed=init_seed)
        super().__init__(network, **evaluation)
