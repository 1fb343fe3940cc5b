"""Conditional VAE for structured output (Sohn, Lee, Yan 2015): MNIST quadrant completion.

Given ``quadrants`` (1, 2 or 3) quadrants of a digit ``x`` (hidden pixels set to -1, see
:mod:`zoo.data.quadrants`), predict the hidden pixels ``y`` (grey levels in [0, 1])::

    y_hat = sigmoid(baseline(x))                         deterministic baseline network
    z | x  ~ N(prior_net(x with y_hat filled in))        prior network p(z | x), fed by the baseline
    y | x, z ~ Bernoulli(logits = generation_net(x, z))  generation network p(y | x, z)
    q(z | x, y) = N(recognition_net(x with y filled in)) recognition network (the guide)

``generation="xz"`` is the paper's generation network, which sees x and z; ``generation="z"``
is the variant of Pyro's CVAE tutorial, which sees only z. Every network is a 784-500-500 ReLU
MLP by default, latent 200. The Bernoulli "likelihood" of grey-level targets is the tutorial's
(a binary cross-entropy summed over hidden pixels, not a density of grey levels), so the
reported log-likelihoods are comparable with its numbers, not with binarised-MNIST ones.

**The baseline** is trained in the same SVI run as the CVAE, on its own objective: while
training (``train_baseline=True`` in the training keywords) the model adds the factor
``-BCE(baseline(x), y)`` inside the data plate, and the prior network sees the baseline's
prediction detached, so the baseline's weights get gradients only from its masked BCE and the
CVAE's networks only from the ELBO (two objectives with disjoint parameters in one loss). The
paper and Pyro's tutorial pre-train the baseline and then freeze it; training it jointly keeps
one run of the shared SVI driver. Evaluation and validation keywords leave the factor out, so
the validation ELBO and the importance-sampled ``log p(y | x)`` are the CVAE's alone.

**Early stopping** uses a validation split cut from the training set (the last
``validation_size`` training images; never the test set): :meth:`data_driver_defaults` hands
the SVI method ``validation_kwargs``, ``patience`` (3) and ``eval_every`` (one epoch).

Usage::

    import zoo
    from zoo.fit import fit
    result, cvae, data = fit("cvae", "svi", config={"quadrants": 1}, num_steps=2000)
    cvae.evaluate(data, result)   # test_ll (IS, S=100) + k-hat, test_elbo_k (10 particles),
                                  # baseline_bce; all per image, nats
    cvae.complete(x_in, num_samples=4)   # (4, N, 784) completed images, z from p(z | x)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from inference.guide_protocol import ZooGuide
from inference.methods.capabilities import ModelTraits
from zoo.data.dataset import Dataset
from zoo.data.quadrants import fill_hidden, hidden_index, mask_inputs
from zoo.models.base import ZooModel
from zoo.models.networks import ACTIVATIONS, GaussianHead, mlp, out_dim, seeded
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult

GENERATIONS = ("xz", "z")


class ConditionalFitMixin:
    """What the conditional models share: seeded initialisation, a validation split cut from
    the training data for early stopping, evaluation defaults and following the data's device.

    Subclasses set ``validation_size``, ``patience``, ``default_batch_size``, the ``eval_*``
    attributes and ``init_seed``, and define ``split_kwargs(dataset, split, rows)``.
    """

    validation_size: int
    patience: int
    default_batch_size: int = 128
    init_seed: int | None

    def _follow(self, x: torch.Tensor) -> None:
        """Move the networks to ``x``'s device (a GPU fit) before Pyro registers them."""
        param = next(self.parameters())  # type: ignore[attr-defined]
        if param.device != x.device:
            self.to(x.device)  # type: ignore[attr-defined]

    def _rows(self, dataset: Dataset, split: str) -> tuple[str, slice]:
        """Which split of ``dataset`` and which rows serve as ``split``: ``train`` and
        ``valid`` are cut from the training split unless the data set has its own ``valid``."""
        if split not in ("train", "valid") or "valid" in dataset.splits:
            return split, slice(None)
        n = len(dataset.split("train")["x"])
        if self.validation_size >= n:
            raise ValueError(f"validation_size={self.validation_size} leaves no training data "
                             f"(the training split has {n} rows)")
        cut = n - self.validation_size
        if split == "valid":
            if self.validation_size == 0:
                raise ValueError("validation_size=0: there is no validation split")
            return "train", slice(cut, None)
        return "train", slice(0, cut)

    def split_kwargs(self, dataset: Dataset, split: str, rows: slice) -> dict[str, Any]:
        raise NotImplementedError

    def data_driver_defaults(self, family: str, dataset: Dataset,
                             settings: Mapping[str, Any]) -> dict[str, Any]:
        """Early stopping on the validation split: its keywords, ``patience``, and one
        validation per epoch (training rows / batch size)."""
        if family != "vi" or self.validation_size == 0:
            return {}
        source, rows = self._rows(dataset, "train")
        n_train = len(dataset.split(source)["x"][rows])
        batch = settings.get("batch_size") or n_train
        return {"validation_kwargs": self.evaluation_kwargs(dataset, "valid"),
                "patience": self.patience, "eval_every": max(1, math.ceil(n_train / batch))}

    def driver_defaults(self, family: str) -> dict[str, Any]:
        """Adam 1e-3, batch 128, no draws of the per-image latents (held-out figures come from
        importance sampling), and at most 50,000 steps (early stopping ends most runs)."""
        if family != "vi":
            return {}
        return {"num_posterior_draws": 0, "log_likelihood": False, "lr": 1e-3,
                "batch_size": self.default_batch_size, "num_steps": 50_000}

    def evaluation_defaults(self) -> dict[str, Any]:
        """The ``eval_*`` configuration as evaluation settings."""
        return {"is_samples": self.eval_samples, "elbo_particles": self.eval_elbo_particles,
                "max_points": self.eval_max_points, "particle_batch": self.eval_particle_batch,
                "data_batch": self.eval_data_batch, "seed": self.eval_seed}

    eval_samples: int
    eval_elbo_particles: int
    eval_max_points: int | None
    eval_particle_batch: int
    eval_data_batch: int
    eval_seed: int


def check_config(**values: Any) -> None:
    """ValueErrors naming a bad configuration value (shared by the conditional models)."""
    for name in ("latent_dim", "eval_samples", "eval_elbo_particles", "eval_particle_batch",
                 "eval_data_batch", "patience"):
        if name in values:
            v = values[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
    v = values.get("validation_size", 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"validation_size must be an integer >= 0, got {v!r}")
    if values.get("activation", "relu") not in ACTIVATIONS:
        raise ValueError(f"unknown activation {values['activation']!r}; choose one of "
                         f"{sorted(ACTIVATIONS)}")
    hidden = values.get("hidden", (1,))
    if (not isinstance(hidden, (tuple, list)) or not hidden
            or not all(isinstance(h, int) and h > 0 for h in hidden)):
        raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {hidden!r}")


@register(
    "cvae",
    description="Conditional VAE for MNIST quadrant completion (Sohn et al. 2015): prior "
    "network fed by a deterministic baseline, recognition network q(z|x,y), generation "
    "network p(y|x,z) (or p(y|z), Pyro's tutorial); quadrants=1, 2 or 3 given",
    default_data="mnist",
    traits=ModelTraits(learned_parameters=True, local_latents=True, minibatch=True),
)
class QuadrantCVAE(ConditionalFitMixin, ZooModel, nn.Module):
    """CVAE for quadrant completion; configuration keywords (all optional):

    - ``quadrants``: 1, 2 or 3 quadrants given as input (default 1).
    - ``generation``: ``"xz"`` (the paper's p(y | x, z)) or ``"z"`` (Pyro's tutorial, p(y | z)).
    - ``latent_dim`` (200), ``hidden`` ((500, 500)), ``activation`` (``relu``).
    - ``validation_size``: training images held out for early stopping (10,000; 0: none);
      ``patience``: validations without improvement before stopping (3).
    - ``eval_samples`` (importance samples per test image, 100), ``eval_elbo_particles``
      (particles of the reported ELBO, 10), ``eval_max_points``, ``eval_particle_batch``,
      ``eval_data_batch``, ``eval_seed``; ``init_seed`` seeds the weights (0).
    """

    observed_names = ("y",)
    guide_name = "recognition"

    def __init__(
        self,
        *,
        quadrants: int = 1,
        generation: str = "xz",
        latent_dim: int = 200,
        hidden: Sequence[int] = (500, 500),
        activation: str = "relu",
        side: int = 28,
        validation_size: int = 10_000,
        patience: int = 3,
        eval_samples: int = 100,
        eval_elbo_particles: int = 10,
        eval_max_points: int | None = None,
        eval_particle_batch: int = 100,
        eval_data_batch: int = 100,
        eval_seed: int = 0,
        init_seed: int | None = 0,
    ):
        nn.Module.__init__(self)
        hidden = tuple(hidden) if isinstance(hidden, (tuple, list)) else hidden
        check_config(latent_dim=latent_dim, hidden=hidden, activation=activation,
                     validation_size=validation_size, patience=patience,
                     eval_samples=eval_samples, eval_elbo_particles=eval_elbo_particles,
                     eval_particle_batch=eval_particle_batch, eval_data_batch=eval_data_batch)
        if generation not in GENERATIONS:
            raise ValueError(f"unknown generation {generation!r}; choose one of {GENERATIONS} "
                             "('xz': p(y|x,z) as in the paper, 'z': p(y|z) as in Pyro's tutorial)")
        index = hidden_index(quadrants, side)  # checks quadrants
        self.quadrants, self.generation, self.side = int(quadrants), generation, int(side)
        self.latent_dim, self.hidden, self.activation_name = int(latent_dim), hidden, activation
        self.validation_size, self.patience = int(validation_size), int(patience)
        self.eval_samples, self.eval_elbo_particles = int(eval_samples), int(eval_elbo_particles)
        self.eval_max_points = eval_max_points
        self.eval_particle_batch, self.eval_data_batch = eval_particle_batch, eval_data_batch
        self.eval_seed, self.init_seed = int(eval_seed), init_seed
        self.register_buffer("index", index, persistent=False)
        pixels, n_out = side * side, len(index)
        self.x_dim = pixels
        with seeded(self.init_seed):
            self.baseline_net = mlp(pixels, hidden, activation)
            self.baseline_out = nn.Linear(out_dim(pixels, hidden), n_out)
            self.prior_net = mlp(pixels, hidden, activation)
            self.prior_head = GaussianHead(out_dim(pixels, hidden), self.latent_dim)
            self.recognition_net = mlp(pixels, hidden, activation)
            self.recognition_head = GaussianHead(out_dim(pixels, hidden), self.latent_dim)
            gen_in = self.latent_dim + (pixels if generation == "xz" else 0)
            self.generation_net = mlp(gen_in, hidden, activation)
            self.generation_out = nn.Linear(out_dim(gen_in, hidden), n_out)

    # ------------------------------------------------------------------ networks
    @property
    def num_hidden(self) -> int:
        """Pixels to predict per image."""
        return len(self.index)

    def baseline_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic baseline's logits of the hidden pixels, ``(..., num_hidden)``."""
        return self.baseline_out(self.baseline_net(x))

    def prior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of p(z | x): the input completed by the (detached) baseline."""
        guess = torch.sigmoid(self.baseline_logits(x)).detach()
        return self.prior_head(self.prior_net(fill_hidden(x, guess, self.index)))

    def recognition(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of q(z | x, y): the input completed by the true hidden pixels."""
        return self.recognition_head(self.recognition_net(fill_hidden(x, y, self.index)))

    def generation_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(y | x, z) (or p(y | z)); broadcasts ``x`` over ``z``'s particle dims."""
        if self.generation == "xz":
            shape = torch.broadcast_shapes(x.shape[:-1], z.shape[:-1])
            z = torch.cat([x.expand(shape + x.shape[-1:]), z.expand(shape + z.shape[-1:])], -1)
        return self.generation_out(self.generation_net(z))

    def _check(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if x.dim() != 2 or x.shape[-1] != self.x_dim:
            raise ValueError(f"x must be (N, {self.x_dim}) masked images, got {tuple(x.shape)}")
        if y is not None and (y.shape != (len(x), self.num_hidden)):
            raise ValueError(f"y must be (N, {self.num_hidden}) hidden pixels for "
                             f"quadrants={self.quadrants}, got {tuple(y.shape)}")
        self._follow(x)

    # ------------------------------------------------------------------ data
    def split_kwargs(self, dataset: Dataset, split: str, rows: slice) -> dict[str, Any]:
        images = dataset.split(split)["x"][rows]
        images = images.reshape(len(images), -1).to(torch.get_default_dtype())
        if images.shape[-1] != self.x_dim:
            raise ValueError(f"this CVAE is for {self.side}x{self.side} images, got data of "
                             f"width {images.shape[-1]}")
        return {"x": mask_inputs(images, self.quadrants), "y": images[:, self.index]}

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``x`` (masked images), ``y`` (their hidden pixels); the training split (without the
        validation rows) also trains the baseline (``train_baseline=True``)."""
        source, rows = self._rows(dataset, split)
        kwargs = self.split_kwargs(dataset, source, rows)
        if split == "train":
            kwargs["train_baseline"] = True
        return kwargs

    def evaluation_kwargs(self, dataset: Dataset, split: str = "test") -> dict[str, Any]:
        """Held-out keywords: the CVAE alone (no baseline factor)."""
        source, rows = self._rows(dataset, split)
        return self.split_kwargs(dataset, source, rows)

    # ------------------------------------------------------------------ model and guide
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None,
              subsample_size: int | None = None, train_baseline: bool = False) -> torch.Tensor:
        """``p(y, z | x)``; with ``y=None`` draws the hidden pixels' success probabilities'
        Bernoulli sample (use :meth:`complete` for mean images)."""
        self._check(x, y)
        pyro.module("cvae", self)
        with pyro.plate("data", len(x), subsample_size=subsample_size, dim=-1) as idx:
            xb = x[idx]
            yb = None if y is None else y[idx]
            if train_baseline and yb is not None:
                bce = F.binary_cross_entropy_with_logits(self.baseline_logits(xb), yb,
                                                         reduction="none").sum(-1)
                pyro.factor("baseline_bce", -bce)
            loc, scale = self.prior(xb)
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            logits = self.generation_logits(xb, z)
            # grey-level targets: the tutorial's Bernoulli cross-entropy, not a density
            return pyro.sample("y", dist.Bernoulli(logits=logits, validate_args=False)
                               .to_event(1), obs=yb)

    def _guide(self, x: torch.Tensor, y: torch.Tensor | None = None,
               subsample_size: int | None = None, train_baseline: bool = False) -> None:
        if y is None:
            raise ValueError("the recognition network q(z | x, y) needs y; to predict, draw z "
                             "from the prior network (QuadrantCVAE.complete)")
        self._check(x, y)
        pyro.module("cvae", self)
        with pyro.plate("data", len(x), subsample_size=subsample_size, dim=-1) as idx:
            loc, scale = self.recognition(x[idx], y[idx])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    @property
    def guide(self) -> "RecognitionGuide":  # type: ignore[override]
        """The recognition network q(z | x, y) as a zoo guide."""
        return RecognitionGuide(self)

    def guides(self) -> Mapping[str, "RecognitionGuide"]:
        return {"model": self.guide, "recognition": self.guide}

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def complete(self, x: torch.Tensor, num_samples: int = 1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Completed images ``(num_samples, N, pixels)``: z ~ p(z | x), hidden pixels set to
        the mean of p(y | x, z), given pixels kept."""
        self._check(x, None)
        loc, scale = self.prior(x)
        eps = torch.randn((num_samples,) + loc.shape, generator=generator).to(loc.device)
        probs = torch.sigmoid(self.generation_logits(x, loc + scale * eps))
        return fill_hidden(x, probs, self.index)

    @torch.no_grad()
    def baseline_complete(self, x: torch.Tensor) -> torch.Tensor:
        """The baseline's completed images ``(N, pixels)``."""
        self._check(x, None)
        return fill_hidden(x, torch.sigmoid(self.baseline_logits(x)), self.index)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def baseline_bce(self, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Per-image masked binary cross-entropy of the baseline's prediction (nats), ``(N,)``."""
        self._check(x, y)
        return torch.cat([
            F.binary_cross_entropy_with_logits(self.baseline_logits(x[i:i + batch]),
                                               y[i:i + batch], reduction="none").sum(-1)
            for i in range(0, len(x), batch)])

    def heldout_extras(self, kwargs: Mapping[str, Any]) -> dict[str, float]:
        """``baseline_bce`` (mean masked BCE per image) and its standard error."""
        bce = self.baseline_bce(kwargs["x"], kwargs["y"]).double().cpu()
        n = len(bce)
        out = {"baseline_bce": float(bce.mean())}
        if n > 1:
            out["baseline_bce_se"] = float(bce.std() / math.sqrt(n))
        return out

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path
             ) -> list[Path]:
        """Completions of test images: input, truth, baseline and several CVAE samples."""
        from zoo.viz.cvae import completion_grid

        kwargs = self.evaluation_kwargs(dataset, "test")
        return [completion_grid(self, kwargs["x"][:10], kwargs["y"][:10], Path(out_dir),
                                num_samples=5, seed=self.eval_seed)]


class RecognitionGuide(ZooGuide):
    """A conditional model's recognition network as a zoo guide (amortised): q(z | inputs).

    Called like the model; its parameters are the model's modules. ``median`` gives the
    recognition network's mean per data point.

    Usage::

        guide = cvae.guide
        guide.median(x=x, y=y)["z"]        # (N, latent_dim)
    """

    kind = "recognition"
    amortised = True

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        # the name a fit records is a key of the model's guides(), so a saved run reloads
        self.__name__ = self.__qualname__ = "recognition"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.owner._guide(*args, **kwargs)

    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        kwargs.pop("subsample_size", None)
        kwargs.pop("train_baseline", None)
        with torch.no_grad():
            loc, _ = self.owner.recognition(*args, **kwargs)
        return {"z": loc}
