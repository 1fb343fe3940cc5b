"""Bayesian neural networks: an MLP or LeNet-5 whose weights are Pyro sample sites.

Registered models (all built by :class:`BayesianNet`; any keyword below can be given to
``zoo.get``):

* ``bnn`` -- regression MLP, Gaussian likelihood with a Gamma prior on the noise precision
  (default data ``diabetes``; the UCI protocol uses ``uci-<set>`` with ``hidden=(50,)``);
* ``bnn_classifier`` -- classification MLP with a Categorical likelihood (default ``digits``);
* ``lenet300100`` -- LeNet-300-100 on MNIST, log-uniform prior (sparse variational dropout);
* ``lenet5`` -- LeNet-5-Caffe (conv 20@5x5, conv 50@5x5, FC 500, FC 10) on MNIST, log-uniform prior.

Priors (``prior=``): ``"normal"`` (``N(0, prior_scale^2)`` per weight), ``"scale_mixture"``
(Blundell et al. 2015, ``mixture=(pi, sigma1, sigma2)``), ``"log_uniform"`` (the improper
prior of variational dropout on the weights, with ``N(0, prior_scale^2)`` on the biases; see
:mod:`zoo.models.bnn_layers` for how it is represented). Guides (``guides()``, the names of
``zoo fit ... --method svi --guide NAME``): ``bbb`` and ``mc_dropout`` for the proper priors,
``vd`` and ``sparse_vd`` for the log-uniform prior (see :mod:`zoo.models.bnn_guides`); the SVI
driver's autoguides (``auto_normal``, ``auto_iaf``, ``auto_laplace`` ...) and NUTS/HMC work on
the proper priors too.

Sites: weights ``w0, w1, ...`` shaped ``(in, out)`` (conv: ``(out, in, k, k)``), biases
``b0, b1, ...``, ``precision`` for regression, and the observation ``y`` inside the data plate
(``dim=-1``, optional ``subsample_size``).

Usage::

    import zoo
    from zoo.data import load
    from inference.svi import fit_svi
    net = zoo.get("bnn", hidden=(50,))
    ds = load("uci-yacht", split=0)
    res = fit_svi(net.model, net.model_kwargs(ds), guide=net.guides()["bbb"], elbo="meanfield",
                  num_steps=2000, batch_size=32, lr=1e-2)
    net.evaluate(ds, res)   # {'test_ll': ..., 'rmse': ..., ...}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine

from zoo.data.dataset import Dataset
from zoo.models.base import ZooModel
from zoo.models.bnn_layers import LogUniform, ScaleMixtureNormal, conv2d, linear
from inference.methods.capabilities import ModelTraits
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "gelu": F.gelu,
    "softplus": F.softplus,
}
_PRIORS = ("normal", "scale_mixture", "log_uniform")
_TASKS = ("regression", "classification")
_ARCHITECTURES = ("mlp", "lenet5")
_NOISE = ("homoscedastic", "heteroscedastic")
#: smallest noise sd of the mean-variance head (standardised scale), so the likelihood stays
#: bounded when a member fits a point exactly
_MIN_NOISE_SD = 1e-3


@dataclass(frozen=True)
class LayerSpec:
    """One weight layer: ``kind`` is ``"linear"`` (weight ``(in, out)``) or ``"conv"``."""

    index: int
    kind: str
    weight_shape: tuple[int, ...]
    bias_shape: tuple[int, ...]

    @property
    def weight(self) -> str:
        return f"w{self.index}"

    @property
    def bias(self) -> str:
        return f"b{self.index}"

    @property
    def fan_in(self) -> int:
        if self.kind == "linear":
            return self.weight_shape[0]
        return int(np.prod(self.weight_shape[1:]))

    @property
    def in_units(self) -> int:
        """Size of the layer's input unit axis (features, or input channels for conv)."""
        return self.weight_shape[0] if self.kind == "linear" else self.weight_shape[1]


class BayesianNet(ZooModel):
    """A Bayesian MLP (or LeNet-5) for regression or classification as a Pyro model.

    Arguments: ``task`` (``"regression"``/``"classification"``), ``hidden`` (widths of the
    hidden layers), ``activation`` (``relu``, ``tanh``, ``sigmoid``, ``elu``, ``gelu``,
    ``softplus``), ``prior`` (``normal``, ``scale_mixture``, ``log_uniform``), ``prior_scale``,
    ``mixture`` (``(pi, sigma1, sigma2)`` of the scale mixture), ``noise_prior``
    (``(concentration, rate)`` of the Gamma prior on the noise precision; default ``(6, 6)`` as
    in PBP, Hernández-Lobato & Adams 2015), ``num_classes``, ``architecture`` (``mlp`` or
    ``lenet5``), ``image_shape`` (for ``lenet5``), and guide options ``local_reparam``
    (``"lrt"``, ``"flipout"`` or ``None``), ``dropout_rate`` (MC dropout), ``vd_alpha``
    (``"weight"``, ``"neuron"``, ``"layer"``: how alpha is shared in ``vd``), ``noise``
    (regression: ``"homoscedastic"``, one noise precision site with a Gamma prior, or
    ``"heteroscedastic"``, the Gaussian mean-variance head of deep ensembles: a second output
    ``s`` gives the noise sd ``softplus(s) + 1e-3``).

    Usage::

        net = BayesianNet(task="regression", hidden=(50,))
        net.model(x, y)                       # one prior draw of the weights, y observed
    """

    def __init__(
        self,
        task: str = "regression",
        hidden: Sequence[int] = (50,),
        activation: str = "relu",
        prior: str = "normal",
        prior_scale: float = 1.0,
        mixture: Sequence[float] = (0.5, 1.0, math.exp(-6.0)),
        noise_prior: Sequence[float] = (6.0, 6.0),
        num_classes: int = 10,
        architecture: str = "mlp",
        image_shape: Sequence[int] = (28, 28),
        local_reparam: str | None = "lrt",
        dropout_rate: float = 0.05,
        vd_alpha: str = "weight",
        noise: str = "homoscedastic",
    ) -> None:
        if task not in _TASKS:
            raise ValueError(f"task {task!r}; allowed: {_TASKS}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r}; allowed: {sorted(_ACTIVATIONS)}")
        if prior not in _PRIORS:
            raise ValueError(f"prior {prior!r}; allowed: {_PRIORS}")
        if architecture not in _ARCHITECTURES:
            raise ValueError(f"architecture {architecture!r}; allowed: {_ARCHITECTURES}")
        if architecture == "lenet5" and task != "classification":
            raise ValueError("architecture 'lenet5' needs task='classification'")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive integers, got {hidden}")
        if not prior_scale > 0:
            raise ValueError(f"prior_scale must be positive, got {prior_scale}")
        if len(mixture) != 3 or not 0 < mixture[0] < 1 or min(mixture[1:]) <= 0:
            raise ValueError(f"mixture must be (pi in (0,1), sigma1 > 0, sigma2 > 0), got {mixture}")
        if len(noise_prior) != 2 or min(noise_prior) <= 0:
            raise ValueError(f"noise_prior must be (concentration > 0, rate > 0), got {noise_prior}")
        if local_reparam not in (None, "lrt", "flipout"):
            raise ValueError(f"local_reparam {local_reparam!r}; allowed: None, 'lrt', 'flipout'")
        if not 0 <= dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
        if noise not in _NOISE:
            raise ValueError(f"noise {noise!r}; allowed: {_NOISE}")
        if noise == "heteroscedastic" and task != "regression":
            raise ValueError("noise='heteroscedastic' needs task='regression'")
        if vd_alpha not in ("weight", "neuron", "layer"):
            raise ValueError(f"vd_alpha {vd_alpha!r}; allowed: 'weight', 'neuron', 'layer'")
        self.task = task
        self.hidden = hidden
        self.activation = activation
        self.prior = prior
        self.prior_scale = float(prior_scale)
        self.mixture = tuple(float(v) for v in mixture)
        self.noise_prior = tuple(float(v) for v in noise_prior)
        self.num_classes = int(num_classes)
        self.architecture = architecture
        self.image_shape = tuple(int(s) for s in image_shape)
        self.local_reparam = local_reparam
        self.dropout_rate = float(dropout_rate)
        self.vd_alpha = vd_alpha
        self.noise = noise
        self.observed_names = ("y",)

    # ------------------------------------------------------------------ structure
    @property
    def out_features(self) -> int:
        if self.task == "regression":
            return 2 if self.noise == "heteroscedastic" else 1
        return self.num_classes

    def layers(self, in_features: int) -> list[LayerSpec]:
        """The weight layers for inputs with ``in_features`` columns."""
        specs: list[LayerSpec] = []
        if self.architecture == "lenet5":
            h, w = self.image_shape
            if h * w != in_features:
                raise ValueError(f"lenet5 with image_shape {self.image_shape} needs "
                                 f"{h * w} input features, got {in_features}")
            specs.append(LayerSpec(0, "conv", (20, 1, 5, 5), (20,)))
            specs.append(LayerSpec(1, "conv", (50, 20, 5, 5), (50,)))
            side_h, side_w = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
            widths = [50 * side_h * side_w, 500, self.num_classes]
            for i in range(2):
                specs.append(LayerSpec(2 + i, "linear", (widths[i], widths[i + 1]),
                                       (widths[i + 1],)))
            return specs
        widths = [in_features, *self.hidden, self.out_features]
        return [LayerSpec(i, "linear", (widths[i], widths[i + 1]), (widths[i + 1],))
                for i in range(len(widths) - 1)]

    def weight_prior(self, shape: Sequence[int]) -> dist.Distribution:
        """The prior of one weight tensor (event shape ``shape``)."""
        if self.prior == "normal":
            base = dist.Normal(0.0, self.prior_scale).expand(shape)
        elif self.prior == "scale_mixture":
            base = ScaleMixtureNormal(*self.mixture).expand(shape)
        else:
            base = LogUniform().expand(shape)
        return base.to_event(len(shape))

    def bias_prior(self, shape: Sequence[int]) -> dist.Distribution:
        """The prior of one bias vector; the log-uniform prior keeps a Normal on the biases."""
        if self.prior == "scale_mixture":
            return ScaleMixtureNormal(*self.mixture).expand(shape).to_event(len(shape))
        return dist.Normal(0.0, self.prior_scale).expand(shape).to_event(len(shape))

    def noise_precision_prior(self) -> dist.Distribution:
        return dist.Gamma(*self.noise_prior)

    # ------------------------------------------------------------------ computation
    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The network output for weights ``params`` (site name -> tensor) and inputs ``x``.

        Weights may carry batch dims ``(*B, 1, ...)`` (see :mod:`zoo.models.bnn_layers`); the
        output is ``(*B, N, out)`` (regression: ``out = 1``; classification: logits).
        """
        act = _ACTIVATIONS[self.activation]
        specs = self.layers(x.shape[-1])
        h = x
        if specs[0].kind == "conv":
            h = x.reshape(*x.shape[:-1], 1, *self.image_shape)
        for k, spec in enumerate(specs):
            w, b = params[spec.weight], params[spec.bias]
            if spec.kind == "conv":
                h = act(conv2d(h, w, b))
                lead = h.shape[:-3]
                h = F.max_pool2d(h.reshape(-1, *h.shape[-3:]), 2)
                h = h.reshape(*lead, *h.shape[-3:])
                if k + 1 < len(specs) and specs[k + 1].kind == "linear":
                    h = h.flatten(-3)
            else:
                h = linear(h, w, b)
                if k + 1 < len(specs):
                    h = act(h)
        return h

    def sample_params(self, in_features: int) -> dict[str, torch.Tensor]:
        """Sample every weight, bias and (regression) the noise precision from the prior."""
        params: dict[str, torch.Tensor] = {}
        for spec in self.layers(in_features):
            params[spec.weight] = pyro.sample(spec.weight, self.weight_prior(spec.weight_shape))
            params[spec.bias] = pyro.sample(spec.bias, self.bias_prior(spec.bias_shape))
        if self.task == "regression" and self.noise == "homoscedastic":
            params["precision"] = pyro.sample("precision", self.noise_precision_prior())
        return params

    def mean_and_scale(self, params: Mapping[str, torch.Tensor], out: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Regression: the predictive mean ``(*B, N)`` and noise sd of network output ``out``
        (a shared ``precision`` site, or the mean-variance head's second output)."""
        if self.noise == "heteroscedastic":
            return out[..., 0], F.softplus(out[..., 1]) + _MIN_NOISE_SD
        return out.squeeze(-1), params["precision"].rsqrt()

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None) -> torch.Tensor:
        """The Pyro model: weights from the prior, then ``y`` given ``x`` in the data plate."""
        if x.dim() != 2:
            raise ValueError(f"x must be (N, features), got shape {tuple(x.shape)}")
        params = self.sample_params(x.shape[-1])
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as idx:
            xb = x if subsample_size is None else x.index_select(0, idx)
            yb = None if y is None else (y if subsample_size is None else y.index_select(0, idx))
            out = self.forward(params, xb)
            if self.task == "regression":
                mean, scale = self.mean_and_scale(params, out)
                return pyro.sample("y", dist.Normal(mean, scale), obs=yb)
            return pyro.sample("y", dist.Categorical(logits=out), obs=yb)

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        part = dataset.split(split)
        x = part["x"].reshape(part["x"].shape[0], -1).to(torch.get_default_dtype())
        y = part["y"]
        y = y.reshape(-1).long() if self.task == "classification" else y.reshape(-1).to(x.dtype)
        if self.task == "classification" and len(y) and int(y.max()) >= self.num_classes:
            raise ValueError(f"labels go up to {int(y.max())} but num_classes={self.num_classes}")
        return {"x": x, "y": y}

    # ------------------------------------------------------------------ guides
    def driver_defaults(self, family: str) -> dict[str, Any]:
        """Big nets (LeNets, wide MLPs) keep the fitted guide instead of stored weight draws:
        a thousand draws of LeNet-300-100's 266k weights, and their pointwise log-likelihood on
        60k images, would take gigabytes. :meth:`evaluate` then samples the guide in chunks."""
        if family == "vi" and (self.architecture == "lenet5" or max(self.hidden) > 200):
            return {"num_posterior_draws": 0, "log_likelihood": False}
        if family == "laplace":  # the last layer, for last_layer_laplace
            last = 3 if self.architecture == "lenet5" else len(self.hidden)
            return {"last_layer_sites": [f"w{last}", f"b{last}"]}
        return {}

    def network_view(self, model_kwargs: Mapping[str, Any]) -> Any | None:
        """The MLP as an ``nn.Sequential`` of ``nn.Linear`` layers and activations (an
        :class:`inference.kfac.NetworkView`) for the inputs ``model_kwargs["x"]``; ``None``
        for LeNet-5 (convolutions), a non-Gaussian prior (scale mixture, log-uniform) or the
        mean-variance head, whose curvature a Gaussian/categorical GGN does not describe."""
        from torch import nn

        from inference.kfac import NetworkView

        if (self.architecture != "mlp" or self.prior != "normal"
                or self.noise == "heteroscedastic"):
            return None
        specs = self.layers(int(model_kwargs["x"].shape[-1]))
        act = _ACTIVATIONS[self.activation]
        modules: list[nn.Module] = []
        for k, spec in enumerate(specs):
            modules.append(nn.Linear(*spec.weight_shape))
            if k + 1 < len(specs):
                modules.append(_Activation(act))
        regression = self.task == "regression"
        return NetworkView(nn.Sequential(*modules),
                           sites=tuple((s.weight, s.bias) for s in specs),
                           likelihood="gaussian" if regression else "categorical",
                           prior_precision=self.prior_scale ** -2,
                           noise_precision="precision" if regression else None)

    def guides(self) -> dict[str, Callable[..., Any]]:
        """Model-specific guides: ``bbb``/``mc_dropout`` (proper priors), ``vd``/``sparse_vd``
        (log-uniform prior)."""
        from zoo.models.bnn_guides import (BayesByBackpropGuide, MCDropoutGuide,
                                           SparseVariationalDropoutGuide,
                                           VariationalDropoutGuide)

        if self.prior == "log_uniform":
            return {"vd": VariationalDropoutGuide(self), "sparse_vd": SparseVariationalDropoutGuide(self)}
        return {"bbb": BayesByBackpropGuide(self), "mc_dropout": MCDropoutGuide(self)}

    def shifted_inputs(self, kwargs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Classification: the test images with uniform noise, inverted and (square images)
        rotated by 90 degrees (:func:`ood_inputs`), labels kept; regression: none."""
        if self.task != "classification":
            return {}
        x = kwargs["x"]
        side = self.image_shape if self.architecture == "lenet5" else _square(x.shape[-1])
        return {name: {**kwargs, "x": xo}
                for name, xo in ood_inputs(x, image_shape=side, seed=0).items()}

    # ------------------------------------------------------------------ prediction
    def predict(self, source: Any, x: torch.Tensor, *, num_draws: int = 200,
                chunk_size: int = 50, data_batch: int = 1000,
                seed: int | None = 0) -> dict[str, torch.Tensor]:
        """Per-draw predictive distributions at inputs ``x``.

        ``source`` is a guide (any callable guide: the BNN guides, autoguides) or a mapping of
        posterior arrays shaped ``(chain, draw, ...)`` (e.g. ``InferenceResult.posterior``).
        Returns, for regression, ``{"mean": (S, N), "noise_var": (S, N)}`` on the model's
        (standardised) scale; for classification ``{"probs": (S, N, K)}``. Draws are taken in
        chunks of ``chunk_size`` and each chunk is evaluated vectorised over ``data_batch`` inputs
        at a time, so memory stays bounded on large test sets (MNIST, LeNet-5).
        """
        if data_batch < 1:
            raise ValueError(f"data_batch must be a positive integer, got {data_batch!r}")
        x = x.reshape(x.shape[0], -1).to(torch.get_default_dtype())
        outs: list[dict[str, torch.Tensor]] = []
        for params in iter_weight_draws(source, {"x": x}, num_draws, chunk_size, seed=seed):
            with torch.no_grad():
                out = torch.cat([self.forward(params, xb) for xb in x.split(data_batch)], dim=-2)
                if self.task == "regression":
                    mean, scale = self.mean_and_scale(params, out)
                    mean = mean.reshape(-1, x.shape[0])
                    var = scale.pow(2).reshape(mean.shape[0], -1).expand_as(mean)
                    outs.append({"mean": mean, "noise_var": var})
                else:
                    probs = torch.softmax(out, -1).reshape(-1, x.shape[0], out.shape[-1])
                    outs.append({"probs": probs})
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def plot(self, dataset: Dataset, result: "InferenceResult", out_dir: Path) -> list[Path]:
        """Classification: reliability diagram and in- vs out-of-distribution entropy histograms;
        regression: predictive mean and +-2 sd bands against the test targets."""
        from zoo.viz import bnn as viz

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        source = posterior_source(result)
        kw = self.model_kwargs(dataset, "test")
        pred = self.predict(source, kw["x"], num_draws=100)
        if self.task == "regression":
            return [viz.regression_bands(pred["mean"], pred["noise_var"], kw["y"],
                                         out_dir / "bnn_predictive.png")]
        from inference.calibration import predictive_entropy
        from inference.calibration_records import save_ood_entropy, save_reliability

        probs = pred["probs"].mean(0)
        ood_entropy = {name: predictive_entropy(self.predict(source, shifted["x"],
                                                             num_draws=100)["probs"].mean(0))
                       for name, shifted in self.shifted_inputs(kw).items()}
        in_entropy = predictive_entropy(probs)
        # the numbers behind the figures, for the report's figures across methods
        save_reliability(probs, kw["y"], out_dir)
        save_ood_entropy(in_entropy, ood_entropy, out_dir)
        return [viz.reliability_diagram(probs, kw["y"], out_dir / "bnn_reliability.png"),
                viz.entropy_histograms(in_entropy, ood_entropy,
                                       out_dir / "bnn_ood_entropy.png")]


# ---------------------------------------------------------------------- helpers
class _Activation(torch.nn.Module):
    """An activation function as a module (for :meth:`BayesianNet.network_view`)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _square(n: int) -> tuple[int, int] | None:
    side = int(round(math.sqrt(n)))
    return (side, side) if side * side == n else None


def ood_inputs(x: torch.Tensor, image_shape: Sequence[int] | None = None,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Out-of-distribution inputs made from in-distribution ones ``x`` (values in ``[0, 1]``):
    uniform ``noise``, ``inverted`` (``1 - x``) and, for square images, ``rotated`` by 90 degrees."""
    gen = torch.Generator().manual_seed(seed)
    out = {"noise": torch.rand(x.shape, generator=gen, dtype=x.dtype),
           "inverted": 1.0 - x}
    if image_shape is not None:
        h, w = image_shape
        if h == w:
            out["rotated"] = torch.rot90(x.reshape(-1, h, w), 1, (-2, -1)).reshape(x.shape)
    return out


def posterior_source(result: "InferenceResult") -> Any:
    """The posterior arrays of a result when they hold draws, else its fitted guide."""
    if result.posterior and any(k.startswith("w") for k in result.posterior):
        return result.posterior
    guide = result.fitted.get("guide") if result.fitted else None
    if guide is None:
        raise ValueError("the result holds neither weight draws (posterior w0, ...) nor a "
                         "fitted guide; fit with num_posterior_draws > 0 or keep result.fitted")
    return guide


def iter_weight_draws(source: Any, guide_kwargs: Mapping[str, Any], num_draws: int,
                      chunk_size: int = 50, seed: int | None = 0
                      ) -> Iterator[dict[str, torch.Tensor]]:
    """Chunks of weight draws shaped ``(s, 1, *event)`` (the data-plate slot included).

    From a mapping of ``(chain, draw, ...)`` arrays: ``num_draws`` evenly spaced draws (all of
    them if there are fewer). From a guide: fresh draws of the guide run under a vectorising
    plate at ``dim=-2``; ``seed`` fixes them (the global RNG state is restored afterwards).
    """
    if num_draws < 1 or chunk_size < 1:
        raise ValueError(f"num_draws and chunk_size must be >= 1, got {num_draws}, {chunk_size}")
    if isinstance(source, Mapping):
        flat = {k: torch.as_tensor(np.array(v)).reshape(-1, *np.shape(v)[2:])
                for k, v in source.items()}
        total = next(iter(flat.values())).shape[0]
        idx = torch.linspace(0, total - 1, min(num_draws, total)).round().long()
        for start in range(0, len(idx), chunk_size):
            sel = idx[start:start + chunk_size]
            yield {k: v[sel].to(torch.get_default_dtype()).unsqueeze(1) for k, v in flat.items()}
        return
    if not callable(source):
        raise TypeError(f"source must be a guide or a mapping of posterior arrays, got {type(source)}")
    rng = torch.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        done = 0
        while done < num_draws:
            n = min(chunk_size, num_draws - done)
            with torch.no_grad(), poutine.block(), pyro.plate("_draws", n, dim=-2):
                trace = poutine.trace(source).get_trace(**guide_kwargs)
            draw = {}
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or site["infer"].get("is_auxiliary"):
                    continue
                value = site["value"].detach()
                event = site["fn"].event_shape
                draw[name] = value.reshape(n, 1, *event)
            yield draw
            done += n
    finally:
        torch.set_rng_state(rng)


# ---------------------------------------------------------------------- registrations
#: nets trained on all of MNIST: mini-batches only, a full-data density per step is too dear
_LARGE_NET = ModelTraits(minibatch=True, full_batch=False)


def _named(net: BayesianNet, name: str) -> BayesianNet:
    net.name = name  # the registry sets ``name`` on classes only
    return net


@register("bnn", description="Bayesian MLP regression (Gaussian likelihood, Gamma noise "
          "precision; Bayes-by-Backprop, MC dropout, NUTS, autoguides)",
          default_data="diabetes", traits=ModelTraits(minibatch=True, layered_network=True))
def _bnn(**config: Any) -> BayesianNet:
    config.setdefault("task", "regression")
    return _named(BayesianNet(**config), 'bnn')


@register("bnn_classifier", description="Bayesian MLP classifier (Categorical likelihood; "
          "Bayes-by-Backprop, MC dropout, NUTS, autoguides)",
          default_data="digits", traits=ModelTraits(minibatch=True, layered_network=True))
def _bnn_classifier(**config: Any) -> BayesianNet:
    config.setdefault("task", "classification")
    config.setdefault("hidden", (50,))
    return _named(BayesianNet(**config), 'bnn_classifier')


@register("lenet300100", description="LeNet-300-100 with the log-uniform prior (variational "
          "and sparse variational dropout)", default_data="mnist",
          traits=_LARGE_NET)
def _lenet300100(**config: Any) -> BayesianNet:
    config.setdefault("task", "classification")
    config.setdefault("hidden", (300, 100))
    config.setdefault("prior", "log_uniform")
    return _named(BayesianNet(**config), 'lenet300100')


@register("lenet5", description="LeNet-5-Caffe with the log-uniform prior (sparse variational "
          "dropout)", default_data="mnist", traits=_LARGE_NET)
def _lenet5(**config: Any) -> BayesianNet:
    config.setdefault("task", "classification")
    config.setdefault("architecture", "lenet5")
    config.setdefault("prior", "log_uniform")
    return _named(BayesianNet(**config), 'lenet5')
