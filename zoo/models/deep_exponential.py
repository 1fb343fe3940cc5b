"""Deep exponential families (Ranganath, Tang, Charlin, Blei 2015): the sparse gamma DEF and
its Poisson, Bernoulli (sigmoid belief network) and Gaussian relatives.

``L`` layers of local latent variables per data point, top layer ``z_L`` first::

    z_L,n ~ p_L(prior)                                     (Gamma(alpha_z, beta_z), ...)
    z_l,n ~ ExpFam_l(mean = g_l(z_{l+1},n @ W_{l+1}))       l = L-1, ..., 1
    x_n   ~ Obs(mean = g_0(z_1,n @ W_1))                    (Poisson counts by default)

Layer types (``layers``, bottom first, or one name for all): ``gamma`` (shape ``alpha_z``, rate
``beta_z / mean``: the sparse gamma DEF), ``poisson`` (rate = mean), ``bernoulli`` (logits =
``z @ W``: a sigmoid belief network) and ``gaussian`` (``N(z @ W, 1)``); observations
``poisson``, ``bernoulli`` or ``gaussian`` (scale ``obs_scale``). The weights feeding a layer
whose mean must be positive (gamma, Poisson) from a non-negative layer are non-negative,
``Gamma(alpha_w, beta_w)``; every other weight matrix is real, ``N(0, weight_scale^2)``, with a
softplus link where a positive mean is needed (a Gaussian layer under a gamma one). Positive
means get ``mean_floor`` added so that a layer of zeros (Poisson, Bernoulli parents, or gamma
draws that underflow) never gives a rate of 0.
Defaults are the sparse gamma DEF protocol of Pyro's example (``../shared/TARGETS.md``):
widths 100-40-15, gamma layers, Poisson pixels, Gamma(0.1, 0.1) on z and Gamma(0.1, 0.3) on
weights.

Sites: weights ``w1`` (``widths[0] x x_dim``, feeding the data) ... ``wL`` (``widths[L-1] x
widths[L-2]``), each one site with two event dimensions; local latents ``z1`` (bottom) ...
``zL`` inside the plate ``data`` at ``dim=-1``, event dimension the layer's width; the data
``x``. ``model(x, weights=W)`` fixes the weights at given values (held-out evaluation: only
the local latents remain). Model and guides broadcast over a leading particle dimension.

Guides (``zoo fit def --guide NAME``, :meth:`DEF.guides`; see :mod:`zoo.models.def_guides`):
``mean_field`` (the hand-built mean-field guide of Pyro's example: gamma factors with softplus
shape and mean and their lower clamps, Bernoulli/Poisson/Normal factors for the other layer
types), ``auto_normal`` and ``auto_diagonal_normal`` (Gaussians in log space), ``grouped`` (an
EasyGuide: one diagonal Normal for all weights, one for all local z), and the driver's flow
guides ``auto_planar`` / ``auto_radial``; every autoguide starts at the prior mean. Discrete
layers make the model's driver defaults use ``TraceGraph_ELBO`` (score-function gradients
with decaying-average baselines, set in the guide).

Usage::

    from zoo.fit import fit
    result, m, data = fit("def", "svi", guide="mean_field", config={"widths": (100, 40, 15)})
    m.evaluate(data, result)     # {"test_elbo": ..., "test_ll": ..., "test_ll_khat": ...}
    m.plot(data, result, Path("runs/def"))   # weight images, reconstructions, ELBO trace
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from inference.methods.capabilities import ModelTraits
from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult

__all__ = ["DEF", "LAYER_TYPES", "OBSERVATIONS", "weight_matmul"]

LAYER_TYPES = ("gamma", "poisson", "bernoulli", "gaussian")
OBSERVATIONS = ("poisson", "bernoulli", "gaussian")
#: layer (or observation) types whose mean must be positive
POSITIVE_MEAN = ("gamma", "poisson")
#: layer types whose values are >= 0 (so non-negative weights keep a positive mean)
NONNEGATIVE = ("gamma", "poisson", "bernoulli")
DISCRETE = ("poisson", "bernoulli")
#: guides over unconstrained (log-space) values, which want a smaller step than mean_field
LOG_SPACE_GUIDES = ("auto_normal", "auto_diagonal_normal", "grouped", "auto_planar",
                    "auto_radial")


def weight_matmul(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``z @ w`` for local ``z`` of shape ``(*batch, N, K)`` and a global weight matrix ``w``.

    ``w`` arrives as ``(K, D)``, as ``(S, K, D)`` (vectorised draws) or, under a vectorised
    particle plate outside the data plate, with singleton plate dimensions before ``(K, D)``
    (``(S, 1, K, D)``); the singleton standing for the data plate is dropped so the batch
    dimensions line up with those of ``z``. Usage: ``weight_matmul(z1, w1)`` -> ``(..., N, D)``.
    """
    while w.dim() > 2 and w.dim() > z.dim() and w.shape[-3] == 1:
        w = w.squeeze(-3)
    return torch.matmul(z, w)


def _per_layer(value: str | Sequence[str], depth: int) -> tuple[str, ...]:
    names = (value,) * depth if isinstance(value, str) else tuple(value)
    if len(names) != depth:
        raise ValueError(f"layers must be one name or one per layer ({depth}), got {value!r}")
    bad = [n for n in names if n not in LAYER_TYPES]
    if bad:
        raise ValueError(f"unknown layer type(s) {bad}; choose from {LAYER_TYPES}")
    return names


@register(
    "def",
    description="Deep exponential family (Ranganath et al. 2015): sparse gamma DEF by default "
    "(100-40-15 gamma layers, Poisson pixels, Olivetti faces); Poisson, Bernoulli (sigmoid "
    "belief net) and Gaussian layers; mean-field gamma, log-space Normal, grouped and flow guides",
    default_data="faces",
    traits=ModelTraits(local_latents=True),
    methods=("svi",),
)
class DEF(ZooModel):
    """A deep exponential family; configuration keywords (all optional):

    - ``widths``: latent widths bottom first (default ``(100, 40, 15)``; ``(100,)`` is depth 1).
    - ``layers``: layer type(s), one of ``gamma``, ``poisson``, ``bernoulli``, ``gaussian``.
    - ``observation``: ``poisson`` (counts), ``bernoulli`` or ``gaussian`` (``obs_scale``).
    - ``alpha_z``, ``beta_z``: gamma layers' shape and rate factor (0.1, 0.1);
      ``alpha_w``, ``beta_w``: non-negative weights' Gamma prior (0.1, 0.3);
      ``weight_scale``: prior sd of real weights (1.0); ``top_rate`` (Poisson top layer, 1.0),
      ``top_prob`` (Bernoulli top layer, 0.5); ``mean_floor`` (1e-6, added to positive means).
    - ``guide``: the guide the CLI uses by default (``mean_field``).
    - ``x_dim``: data width (taken from the data when ``None``); ``image_shape`` for figures.
    - held-out evaluation: ``eval_samples`` (importance samples per face, 1000),
      ``eval_steps`` (steps of the local fit; default the training run's), ``eval_weight_draws``
      (guide draws averaged for the weights' posterior mean when the guide has no closed
      form, 100; the evaluation setting ``num_draws``, which budgets cap), ``eval_seed``.

    Usage: ``zoo.get("def", widths=(100,), layers="gamma")``.
    """

    observed_names = ("x",)

    def __init__(
        self, *, widths: Sequence[int] = (100, 40, 15), layers: str | Sequence[str] = "gamma",
        observation: str = "poisson", alpha_z: float = 0.1, beta_z: float = 0.1,
        alpha_w: float = 0.1, beta_w: float = 0.3, weight_scale: float = 1.0,
        top_rate: float = 1.0, top_prob: float = 0.5, obs_scale: float = 1.0,
        mean_floor: float = 1e-6, guide: str = "mean_field", x_dim: int | None = None,
        image_shape: Sequence[int] | None = None, eval_samples: int = 1000,
        eval_steps: int | None = None, eval_weight_draws: int = 100, eval_seed: int = 0,
    ) -> None:
        widths = (int(widths),) if isinstance(widths, int) else tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be one or more positive integers, got {widths!r}")
        self.widths = widths
        self.layers = _per_layer(layers, len(widths))
        if observation not in OBSERVATIONS:
            raise ValueError(f"unknown observation {observation!r}; choose from {OBSERVATIONS}")
        self.observation = observation
        for key, value in (("alpha_z", alpha_z), ("beta_z", beta_z), ("alpha_w", alpha_w),
                           ("beta_w", beta_w), ("weight_scale", weight_scale),
                           ("top_rate", top_rate), ("obs_scale", obs_scale)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{key} must be a positive number, got {value!r}")
        if not 0 < top_prob < 1:
            raise ValueError(f"top_prob must be in (0, 1), got {top_prob!r}")
        if not mean_floor >= 0:
            raise ValueError(f"mean_floor must be >= 0, got {mean_floor!r}")
        self.alpha_z, self.beta_z = float(alpha_z), float(beta_z)
        self.alpha_w, self.beta_w = float(alpha_w), float(beta_w)
        self.weight_scale, self.top_rate, self.top_prob = (float(weight_scale), float(top_rate),
                                                           float(top_prob))
        self.obs_scale, self.mean_floor = float(obs_scale), float(mean_floor)
        from zoo.models.def_guides import GUIDE_NAMES

        if guide not in GUIDE_NAMES:
            raise ValueError(f"unknown DEF guide {guide!r}; choose from {GUIDE_NAMES}")
        self.guide_name = guide
        self.x_dim = None if x_dim is None else int(x_dim)
        self.image_shape = None if image_shape is None else tuple(image_shape)
        if int(eval_samples) < 1 or int(eval_weight_draws) < 1:
            raise ValueError("eval_samples and eval_weight_draws must be >= 1")
        if eval_steps is not None and int(eval_steps) < 1:
            raise ValueError(f"eval_steps must be >= 1 or None, got {eval_steps!r}")
        self.eval_samples, self.eval_steps = int(eval_samples), eval_steps
        self.eval_weight_draws, self.eval_seed = int(eval_weight_draws), int(eval_seed)
        self._heldout: dict[str, Any] | None = None

    # ------------------------------------------------------------------ structure
    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def latent_names(self) -> tuple[str, ...]:
        """Local latent sites, bottom first: ``z1`` ... ``zL``."""
        return tuple(f"z{l + 1}" for l in range(self.depth))

    @property
    def weight_names(self) -> tuple[str, ...]:
        """Weight sites, bottom first: ``w1`` feeds the data, ``w{l+1}`` feeds ``z{l}``."""
        return tuple(f"w{l + 1}" for l in range(self.depth))

    @property
    def has_discrete_layers(self) -> bool:
        return any(t in DISCRETE for t in self.layers)

    def child_type(self, layer: int) -> str:
        """The type fed by weight ``w{layer+1}``: the observation for 0, else layer ``layer``."""
        return self.observation if layer == 0 else self.layers[layer - 1]

    def weight_kind(self, layer: int) -> str:
        """``"gamma"`` (non-negative) or ``"normal"`` (real) for weight ``w{layer+1}``."""
        child, parent = self.child_type(layer), self.layers[layer]
        return "gamma" if child in POSITIVE_MEAN and parent in NONNEGATIVE else "normal"

    def weight_shape(self, layer: int) -> tuple[int, int]:
        rows = self.widths[layer]
        cols = self.widths[layer - 1] if layer > 0 else self.x_dim
        if cols is None:
            raise ValueError("the DEF's data width is unknown: pass x or set x_dim")
        return rows, int(cols)

    def weight_prior(self, layer: int) -> dist.TorchDistribution:
        shape = self.weight_shape(layer)
        if self.weight_kind(layer) == "gamma":
            base = dist.Gamma(torch.tensor(self.alpha_w), torch.tensor(self.beta_w))
        else:
            base = dist.Normal(torch.tensor(0.0), torch.tensor(self.weight_scale))
        return base.expand(shape).to_event(2)

    def _mean(self, z: torch.Tensor, w: torch.Tensor, layer: int) -> torch.Tensor:
        """The link ``g(z @ W)`` for the type weight ``w{layer+1}`` feeds."""
        a = weight_matmul(z, w)
        if self.child_type(layer) in POSITIVE_MEAN:
            if self.weight_kind(layer) == "normal":
                a = F.softplus(a)
            return a + self.mean_floor
        return a  # logits (Bernoulli) or Gaussian mean

    def _layer_dist(self, kind: str, mean: torch.Tensor | None, width: int
                    ) -> dist.TorchDistribution:
        """``p(z_l | mean)``; ``mean=None`` is the top layer's prior."""
        if mean is None:
            ones = torch.ones(width)
            base = {"gamma": lambda: dist.Gamma(self.alpha_z * ones, self.beta_z * ones),
                    "poisson": lambda: dist.Poisson(self.top_rate * ones),
                    "bernoulli": lambda: dist.Bernoulli(probs=self.top_prob * ones),
                    "gaussian": lambda: dist.Normal(0.0 * ones, ones)}[kind]()
        elif kind == "gamma":
            base = dist.Gamma(torch.full_like(mean, self.alpha_z), self.beta_z / mean)
        elif kind == "poisson":
            base = dist.Poisson(mean)
        elif kind == "bernoulli":
            base = dist.Bernoulli(logits=mean)
        else:
            base = dist.Normal(mean, torch.ones_like(mean))
        return base.to_event(1)

    def _obs_dist(self, mean: torch.Tensor) -> dist.TorchDistribution:
        if self.observation == "poisson":
            return dist.Poisson(mean).to_event(1)
        if self.observation == "bernoulli":
            return dist.Bernoulli(logits=mean).to_event(1)
        return dist.Normal(mean, self.obs_scale).to_event(1)

    # ------------------------------------------------------------------ data and model
    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, x_dim) float tensor}`` (the faces' pixel counts)."""
        x = dataset.split(split)["x"]
        x = x.reshape(len(x), -1).to(torch.get_default_dtype())
        if self.x_dim is None:
            self.x_dim = int(x.shape[-1])
        elif self.x_dim != x.shape[-1]:
            raise ValueError(f"this DEF was built for x_dim={self.x_dim}, got data of width "
                             f"{x.shape[-1]}")
        if self.image_shape is None and "image_shape" in dataset.info:
            self.image_shape = tuple(dataset.info["image_shape"])
        return {"x": x}

    def model(self, x: torch.Tensor | None = None, num_data: int = 1,
              weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``p(x, z, W)``; with ``weights`` given, ``p(x, z | W)`` (no weight sites); with
        ``x=None``, ``num_data`` draws from the prior."""
        if x is not None:
            if self.x_dim is None:
                self.x_dim = int(x.shape[-1])
            elif x.shape[-1] != self.x_dim:
                raise ValueError(f"x has width {x.shape[-1]}, the DEF x_dim={self.x_dim}")
        if weights is None:
            w = [pyro.sample(name, self.weight_prior(l))
                 for l, name in enumerate(self.weight_names)]
        else:
            missing = [n for n in self.weight_names if n not in weights]
            if missing:
                raise ValueError(f"weights lack {missing}; give all of {self.weight_names}")
            w = [weights[n] for n in self.weight_names]
        n = len(x) if x is not None else int(num_data)
        with pyro.plate("data", n, dim=-1):
            z = None
            for l in reversed(range(self.depth)):
                mean = None if z is None else self._mean(z, w[l + 1], l + 1)
                z = pyro.sample(self.latent_names[l],
                                self._layer_dist(self.layers[l], mean, self.widths[l]))
            return pyro.sample("x", self._obs_dist(self._mean(z, w[0], 0)), obs=x)

    # ------------------------------------------------------------------ guides and driver
    def guides(self) -> dict[str, Any]:
        """Fresh guides by name (``mean_field``, ``auto_normal``, ``auto_diagonal_normal``,
        ``grouped``, ``auto_planar``, ``auto_radial``); ``model`` is the configured one."""
        from zoo.models.def_guides import GUIDE_NAMES, make_def_guide

        out = {name: make_def_guide(name, self) for name in GUIDE_NAMES}
        return {"model": out[self.guide_name], **out}

    def driver_defaults(self, family: str) -> dict[str, Any]:
        """The sparse gamma DEF protocol: AdagradRMSProp (eta 4.5, Pyro's example), 1500
        full-batch steps, the training ELBO with 20 vectorised particles every 25 steps, no
        posterior draws of the 400k weights (held-out figures come from :meth:`evaluate`);
        ``tracegraph`` (score-function terms with baselines) when a layer is discrete."""
        if family != "vi":
            return {}
        return {"optimizer": "adagrad_rmsprop", "lr": 4.5, "num_steps": 1500,
                "elbo": "tracegraph" if self.has_discrete_layers else "trace",
                "elbo_every": 25, "elbo_particles": 20, "num_posterior_draws": 0,
                "log_likelihood": False}

    def guide_defaults(self, guide: str | None) -> dict[str, Any]:
        """Adam at 0.05 for the guides in log space (``auto_*``, ``grouped``): AdagradRMSProp at
        eta 4.5 moves a log-weight by several units per step and diverges."""
        name = guide or self.guide_name
        if name in LOG_SPACE_GUIDES:
            return {"optimizer": "adam", "lr": 0.05}
        return {}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, dataset: Dataset, result: "InferenceResult | None" = None,
                 split: str = "test", settings: Mapping[str, Any] | None = None
                 ) -> dict[str, float]:
        """Held-out ELBO and importance-sampled ``log p(x)`` per face, weights fixed.

        The global weights are fixed at their posterior mean under the fitted guide (not
        integrated over their posterior); the local latents of the held-out faces are fitted
        by SVI with the same optimiser, objective and number of steps as the training run
        (``eval_steps`` overrides), and the fitted local guide is the importance proposal
        (:func:`inference.evaluation.local_refit.heldout_local_fit`). ``test_ll`` is then
        ``log p(x | E[W])`` per face with its PSIS k-hat, ``test_elbo`` the held-out ELBO.
        """
        from zoo.models.def_eval import heldout_metrics

        metrics, state = heldout_metrics(self, dataset, result, split, settings)
        self._heldout = {"result": id(result), **state}
        return metrics

    def evaluation_defaults(self) -> dict[str, Any]:
        return {"is_samples": self.eval_samples, "seed": self.eval_seed,
                "num_draws": self.eval_weight_draws}

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path
             ) -> list[Path]:
        """Bottom-layer weights as 64x64 faces, reconstructions of test faces, ELBO trace."""
        from zoo.viz.deep_exponential import def_figures

        if self._heldout is None or self._heldout.get("result") != id(result):
            self.evaluate(dataset, result)
        return def_figures(self, dataset, result, self._heldout, Path(out_dir))
