"""Deep latent Gaussian models (VAEs) with one or two stochastic layers and flow posteriors.

The generative model (Rezende et al. 2014; Kingma & Welling 2014; Burda et al. 2015) is, for
``L`` stochastic layers ``z_L -> ... -> z_1 -> x``::

    z_L ~ N(0, I),   z_l | z_{l+1} ~ N(mu_l(z_{l+1}), diag sigma_l(z_{l+1})^2),
    x | z_1 ~ Bernoulli(logits = decoder(z_1))          (binary data)
            or Normal(decoder(z_1), obs_scale)          (continuous data; fixed or learned scale)

with MLPs for every conditional. The guide is the amortised encoder
``q(z_1 | x) q(z_2 | z_1) ...``, each factor a diagonal Gaussian optionally pushed through
``num_flows`` amortised planar / radial / IAF transforms conditioned on the encoder's hidden
state (:mod:`zoo.models.amortized_flows`). All guides are listed by :meth:`VAE.guides`
(``encoder``, ``planar``, ``radial``, ``iaf``) so ``zoo fit vae --guide planar`` works; each is
a :class:`VAEGuide`, the zoo's guide protocol (:class:`inference.guide_protocol.ZooGuide`) with
that ``kind``.

Latent sites are ``z`` (one layer) or ``z1``, ``z2`` (two layers), inside the plate ``data``
at ``dim=-1``; the observation site is ``x``. Both model and guide accept ``subsample_size``
for mini-batches and broadcast over a leading particle dimension (``vectorize_particles``).

**Dynamic binarisation** (``binarize="dynamic"``, the default for the Bernoulli likelihood):
each call of the guide draws ``x_bin ~ Bernoulli(x)`` from the mini-batch's grey levels with
torch's global RNG (so it is fixed by ``pyro.set_rng_seed``), feeds it to the encoder and hands
it to the next model call on the same data and indices, so each SVI step scores one fresh
binarisation shared by all particles (as needed by the IWAE bound). A model call without a
preceding guide call (prior or predictive use) draws its own. Binary data are unchanged by it.
:meth:`VAE.evaluate` binarises the evaluation split once with a fixed ``torch.Generator``.

Usage::

    import zoo
    from zoo.data import load
    from inference.svi import fit_svi
    vae = zoo.get("vae", latent_dim=8, hidden=(128,), guide="planar", num_flows=4)
    data = load("digits")
    result = fit_svi(vae.model, vae.model_kwargs(data), guide=vae.guide, elbo="iwae",
                     num_particles=5, vectorize_particles=True, batch_size=100, lr=1e-3)
    vae.evaluate(data, result)   # {"test_ll_is": ..., "test_ll_se": ..., "test_elbo": ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from inference.guide_protocol import ZooGuide
from zoo.data.dataset import Dataset
from zoo.models.amortized_flows import FLOW_KINDS, AmortizedFlow
from zoo.models.base import ZooModel
from zoo.models.networks import (ACTIVATIONS, GaussianHead, LazyInputDim, mlp, out_dim,
                                 seeded)
from inference.methods.capabilities import ModelTraits
from zoo.registry import register

if TYPE_CHECKING:
    from inference.result import InferenceResult

LIKELIHOODS = ("bernoulli", "gaussian")
BINARIZE = (None, "dynamic")
GUIDE_NAMES = ("encoder",) + FLOW_KINDS


def _per_layer(value: Any, layers: int, what: str) -> list[tuple[int, ...]]:
    """``hidden`` given as one width, one tuple of widths (shared) or one tuple per layer."""
    if isinstance(value, int):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise ValueError(f"{what} must be an int or a tuple of widths, got {value!r}")
    value = tuple(value)
    if all(isinstance(v, int) for v in value):
        return [value] * layers
    if len(value) != layers or not all(isinstance(v, (tuple, list)) for v in value):
        raise ValueError(
            f"{what} must be a tuple of widths or one tuple per stochastic layer "
            f"({layers}), got {value!r}"
        )
    return [tuple(int(w) for w in v) for v in value]


@register(
    "vae",
    description="Deep latent Gaussian model / VAE: MLP encoder and decoder, 1 or 2 stochastic "
    "layers, Bernoulli or Gaussian likelihood, diagonal or amortised planar/radial/IAF posterior",
    default_data="digits",
    traits=ModelTraits(learned_parameters=True, local_latents=True, minibatch=True),
)
class VAE(LazyInputDim, ZooModel, nn.Module):
    """A VAE / DLGM; configuration keywords (all optional):

    - ``latent_dim``: int, or one int per stochastic layer (bottom first), e.g. ``(100, 50)``.
    - ``stochastic_layers``: 1 or 2 (default: the length of ``latent_dim``).
    - ``hidden``: deterministic widths of every MLP, shared or one tuple per layer.
    - ``activation``: ``tanh`` (default), ``relu``, ``softplus``, ``elu``, ``leaky_relu``.
    - ``likelihood``: ``bernoulli`` or ``gaussian``; ``obs_scale`` float or ``"learned"``.
    - ``binarize``: ``"dynamic"`` (default for Bernoulli) or ``None`` (use ``x`` as given).
    - ``guide`` / ``flow``: ``encoder`` (diagonal), ``planar``, ``radial`` or ``iaf``;
      ``num_flows`` (K, default 10) and ``flow_hidden`` (hypernetwork / MADE widths).
    - ``x_dim``: data width; inferred from the data by :meth:`model_kwargs` when ``None``.
    - ``eval_samples`` (importance samples for :meth:`evaluate`, default 100; use 5000 for
      reported figures), ``eval_max_points`` (evaluate on the first n points only),
      ``eval_particle_batch``, ``eval_data_batch``, ``eval_seed``.
    - ``init_seed``: seed of the weight initialisation (the global RNG is left untouched).
    """

    observed_names = ("x",)

    def __init__(
        self,
        *,
        latent_dim: int | Sequence[int] = 50,
        stochastic_layers: int | None = None,
        hidden: Sequence[int] | Sequence[Sequence[int]] = (200, 200),
        activation: str = "tanh",
        likelihood: str = "bernoulli",
        obs_scale: float | str = "learned",
        binarize: str | None = "dynamic",
        guide: str | None = None,
        flow: str | None = None,
        num_flows: int = 10,
        flow_hidden: Sequence[int] | None = None,
        x_dim: int | None = None,
        image_shape: Sequence[int] | None = None,
        eval_samples: int = 100,
        eval_max_points: int | None = None,
        eval_particle_batch: int = 100,
        eval_data_batch: int = 100,
        eval_seed: int = 0,
        init_seed: int | None = 0,
    ):
        nn.Module.__init__(self)
        dims = [int(latent_dim)] if isinstance(latent_dim, int) else [int(d) for d in latent_dim]
        if stochastic_layers is not None:
            if stochastic_layers not in (1, 2):
                raise ValueError(f"stochastic_layers must be 1 or 2, got {stochastic_layers}")
            if len(dims) == 1 and stochastic_layers == 2:
                dims = [2 * dims[0], dims[0]]
            if len(dims) != stochastic_layers:
                raise ValueError(
                    f"latent_dim {tuple(dims)} does not match stochastic_layers={stochastic_layers}"
                )
        if not 1 <= len(dims) <= 2 or min(dims) < 1:
            raise ValueError(f"latent_dim must be 1 or 2 positive ints, got {latent_dim!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if isinstance(num_flows, bool) or not isinstance(num_flows, int) or num_flows < 0:
            raise ValueError(f"num_flows must be an integer >= 0, got {num_flows!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
        if binarize not in BINARIZE:
            raise ValueError(f"unknown binarize {binarize!r}; choose one of {BINARIZE}")
        if likelihood == "gaussian":
            binarize = None
        if not (obs_scale == "learned" or (isinstance(obs_scale, (int, float)) and obs_scale > 0)):
            raise ValueError(f"obs_scale must be a positive float or 'learned', got {obs_scale!r}")
        if guide is not None and flow is not None and guide != flow:
            raise ValueError(f"guide={guide!r} and flow={flow!r} disagree; give one of them")
        guide_name = guide or flow or "encoder"
        if guide_name not in GUIDE_NAMES:
            raise ValueError(f"unknown guide {guide_name!r}; choose one of {GUIDE_NAMES}")
        self.latent_dims = tuple(dims)
        self.hidden = _per_layer(hidden, len(dims), "hidden")
        self.activation_name = activation
        self.likelihood = likelihood
        self.obs_scale = obs_scale
        self.binarize = binarize
        self.guide_name = guide_name
        self.num_flows = int(num_flows)
        self.flow_hidden = None if flow_hidden is None else tuple(flow_hidden)
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.eval_samples = int(eval_samples)
        self.eval_max_points = eval_max_points
        self.eval_particle_batch = int(eval_particle_batch)
        self.eval_data_batch = int(eval_data_batch)
        self.eval_seed = int(eval_seed)
        self.init_seed = init_seed
        self.x_dim: int | None = None
        self._stash: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.flows = nn.ModuleDict()
        if x_dim is not None:
            self.build(int(x_dim))

    # ------------------------------------------------------------------ networks
    @property
    def num_layers(self) -> int:
        return len(self.latent_dims)

    @property
    def latent_names(self) -> tuple[str, ...]:
        """Latent site names, bottom layer first."""
        return ("z",) if self.num_layers == 1 else ("z1", "z2")

    def build(self, x_dim: int) -> None:
        """Create the networks for data of width ``x_dim`` (done once; later calls check it)."""
        if self.x_dim is not None:
            if x_dim != self.x_dim:
                raise ValueError(f"this VAE was built for x_dim={self.x_dim}, got data of width {x_dim}")
            return
        self.x_dim = int(x_dim)
        act = self.activation_name
        with seeded(self.init_seed):
            # encoder: x -> h_1 -> (loc, scale) of z1;  z1 -> h_2 -> z2 ...
            enc_nets, enc_heads = [], []
            inputs = [self.x_dim] + list(self.latent_dims[:-1])
            for layer, (d_in, d_z) in enumerate(zip(inputs, self.latent_dims)):
                widths = self.hidden[layer]
                enc_nets.append(mlp(d_in, widths, act))
                enc_heads.append(GaussianHead(out_dim(d_in, widths), d_z))
            self.enc_nets = nn.ModuleList(enc_nets)
            self.enc_heads = nn.ModuleList(enc_heads)
            # decoder: z1 -> x (reversed widths); prior of z1 given z2
            widths = tuple(reversed(self.hidden[0]))
            self.dec_net = mlp(self.latent_dims[0], widths, act)
            self.dec_out = nn.Linear(out_dim(self.latent_dims[0], widths), self.x_dim)
            if self.num_layers == 2:
                widths = tuple(reversed(self.hidden[1]))
                self.prior_net = mlp(self.latent_dims[1], widths, act)
                self.prior_head = GaussianHead(out_dim(self.latent_dims[1], widths), self.latent_dims[0])
            if self.likelihood == "gaussian" and self.obs_scale == "learned":
                self.obs_head = _LearnedScale(self.x_dim)
            self._flow_stack(self.guide_name)  # the configured guide's flows exist from the start

    def _flow_stack(self, kind: str) -> nn.ModuleList | None:
        """The per-layer flow stacks of guide ``kind`` (created on first use)."""
        if kind == "encoder":
            return None
        if kind not in self.flows:
            with seeded(self.init_seed):
                self.flows[kind] = nn.ModuleList(
                    AmortizedFlow(kind, d_z, out_dim(d_in, widths), self.num_flows, self.flow_hidden)
                    for d_in, d_z, widths in zip(
                        [self.x_dim] + list(self.latent_dims[:-1]), self.latent_dims, self.hidden
                    )
                )
        return self.flows[kind]

    def decoder_modules(self) -> nn.ModuleList:
        mods: list[nn.Module] = [self.dec_net, self.dec_out]
        if self.num_layers == 2:
            mods += [self.prior_net, self.prior_head]
        if self.likelihood == "gaussian" and self.obs_scale == "learned":
            mods.append(self.obs_head)
        return nn.ModuleList(mods)

    def likelihood_dist(self, z1: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z1)`` as a distribution with event dim 1."""
        out = self.dec_out(self.dec_net(z1))
        if self.likelihood == "bernoulli":
            # binarize=None with grey levels: Bernoulli "likelihood" of grey targets as in Pyro's
            # VAE example (not a density of the data); validation would reject non-binary values
            # (binary data: Pyro's global validation setting decides, so that a compiled ELBO,
            # traced with validation off, can drop the checks)
            validate = None if self.binarize is not None else False
            return dist.Bernoulli(logits=out, validate_args=validate).to_event(1)
        if self.obs_scale == "learned":
            scale = self.obs_head()
        else:
            scale = torch.as_tensor(float(self.obs_scale))
        return dist.Normal(out, scale.expand_as(out)).to_event(1)

    # ------------------------------------------------------------------ data
    def _binarized(self, x: torch.Tensor, idx: torch.Tensor, role: str) -> torch.Tensor:
        xb = x[idx]
        if self.binarize != "dynamic":
            return xb
        stash = self._stash
        # the guide's indices reach the model by replay as the same tensor: test identity
        # first (a value comparison cannot be traced into a compiled ELBO)
        if (role == "model" and stash is not None and stash[0] is x
                and (stash[1] is idx or torch.equal(stash[1], idx))):
            self._stash = None
            return stash[2]
        sample = torch.bernoulli(xb)
        self._stash = (x, idx, sample) if role == "guide" else None
        return sample

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """``{"x": (N, x_dim) float tensor}`` from ``dataset``'s split (images are flattened)."""
        x = dataset.split(split)["x"]
        x = x.reshape(len(x), -1).to(torch.get_default_dtype())
        if self.image_shape is None and "image_shape" in dataset.info:
            self.image_shape = tuple(dataset.info["image_shape"])
        self.build(x.shape[-1])
        return {"x": x}

    # ------------------------------------------------------------------ model and guides
    def model(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> torch.Tensor:
        """``p(x, z)``; with ``x=None`` draws ``num_data`` images from the prior."""
        self._check_x(x)
        pyro.module("vae_decoder", self.decoder_modules())
        n = len(x) if x is not None else int(num_data)
        top = self.latent_dims[-1]
        with pyro.plate("data", n, subsample_size=subsample_size, dim=-1) as idx:
            xb = None if x is None else self._binarized(x, idx, "model")
            zeros = torch.zeros(top)
            z = pyro.sample(self.latent_names[-1], dist.Normal(zeros, 1.0 + zeros).to_event(1))
            if self.num_layers == 2:
                loc, scale = self.prior_head(self.prior_net(z))
                z = pyro.sample(self.latent_names[0], dist.Normal(loc, scale).to_event(1))
            return pyro.sample("x", self.likelihood_dist(z), obs=xb)

    def _guide(
        self,
        kind: str,
        x: torch.Tensor | None = None,
        subsample_size: int | None = None,
        num_data: int = 1,
    ) -> None:
        if x is None:
            raise ValueError("the VAE's encoder guide needs the data x")
        self._check_x(x)
        pyro.module("vae_encoder", nn.ModuleList([self.enc_nets, self.enc_heads]))
        stacks = self._flow_stack(kind)
        if stacks is not None:
            pyro.module(f"vae_flow_{kind}", stacks)
        with pyro.plate("data", len(x), subsample_size=subsample_size, dim=-1) as idx:
            h_in = self._binarized(x, idx, "guide")
            for layer, name in enumerate(self.latent_names):
                hidden = self.enc_nets[layer](h_in)
                loc, scale = self.enc_heads[layer](hidden)
                if stacks is None:
                    q = dist.Normal(loc, scale).to_event(1)
                else:
                    q = stacks[layer].distribution(loc, scale, hidden)
                h_in = pyro.sample(name, q)

    def _guide_median(self, kind: str, x: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """:meth:`VAEGuide.median`: every layer's base median pushed through its flows."""
        if x is None:
            raise ValueError("a VAE guide's median needs the data x")
        self._check_x(x)
        stacks = self._flow_stack(kind)
        out: dict[str, torch.Tensor] = {}
        h_in = x
        with torch.no_grad():
            for layer, name in enumerate(self.latent_names):
                hidden = self.enc_nets[layer](h_in)
                z, _ = self.enc_heads[layer](hidden)
                if stacks is not None:
                    for transform in stacks[layer].transforms(hidden):
                        z = transform(z)
                out[name] = z
                h_in = z
        return out

    def guide_named(self, kind: str) -> "VAEGuide":
        """The guide called ``kind`` (``encoder``, ``planar``, ``radial``, ``iaf``)."""
        if kind not in GUIDE_NAMES:
            raise KeyError(f"unknown VAE guide {kind!r}; choose one of {GUIDE_NAMES}")
        return VAEGuide(self, kind)

    @property
    def guide(self) -> "VAEGuide":  # type: ignore[override]
        """The configured guide (``guide=``/``flow=`` keyword)."""
        return self.guide_named(self.guide_name)

    def driver_defaults(self, family: str) -> dict[str, Any]:
        """No draws of the per-data-point latents by default: held-out figures come from
        :meth:`evaluate` (importance sampling), and MNIST-sized draws would not fit in memory."""
        return {"num_posterior_draws": 0, "log_likelihood": False} if family == "vi" else {}

    def guides(self) -> Mapping[str, "VAEGuide"]:
        """``model`` (the configured guide, the CLI's default) and every guide by name."""
        return {"model": self.guide, **{kind: self.guide_named(kind) for kind in GUIDE_NAMES}}

    # ------------------------------------------------------------------ evaluation
    def evaluation_kwargs(self, dataset: Dataset, split: str = "test") -> dict[str, Any]:
        """The held-out data, binarised once with ``eval_seed`` when binarisation is dynamic
        (every evaluation then scores the same binary images)."""
        x = self.model_kwargs(dataset, split)["x"]
        if self.binarize == "dynamic":
            from zoo.data.mnist import dynamic_binarize

            x = dynamic_binarize(x, torch.Generator().manual_seed(self.eval_seed))
        return {"x": x}

    def evaluation_defaults(self) -> dict[str, Any]:
        """The ``eval_*`` configuration as evaluation settings."""
        return {"is_samples": self.eval_samples, "max_points": self.eval_max_points,
                "particle_batch": self.eval_particle_batch, "data_batch": self.eval_data_batch,
                "seed": self.eval_seed}

    def fitted_guide(self, result: "InferenceResult | None") -> "VAEGuide":
        """The guide a fit used when it is one of this model's guides, else the configured one."""
        guide = None
        if result is not None:
            guide = result.fitted.get("trained_guide", result.fitted.get("guide"))
        if guide is None:
            return self.guide_named(self.guide_name)
        if not isinstance(guide, VAEGuide):
            raise ValueError(
                "VAE.evaluate needs one of the VAE's amortised guides "
                f"({', '.join(GUIDE_NAMES)}); the fit used {guide!r}"
            )
        return self.guide_named(guide.kind)

    # ------------------------------------------------------------------ codes and samples
    def _mean_image(self, z1: torch.Tensor) -> torch.Tensor:
        d = self.likelihood_dist(z1)
        base = d.base_dist if hasattr(d, "base_dist") else d
        return base.mean.clamp(0, 1)

    def encode(self, x: torch.Tensor, result: "InferenceResult | None" = None) -> torch.Tensor:
        """Codes for a linear probe: the fitted guide's point estimate of the bottom latent
        (the encoder mean for the diagonal guide), ``(N, latent_dim)``, no gradients."""
        return self.fitted_guide(result).median(x=x)[self.latent_names[0]]

    def reconstruct(self, x: torch.Tensor, result: "InferenceResult | None" = None
                    ) -> torch.Tensor:
        """Decoder means at :meth:`encode`'s codes, in [0, 1]."""
        with torch.no_grad():
            return self._mean_image(self.encode(x, result))

    def generate(self, n: int, seed: int = 0, result: "InferenceResult | None" = None
                 ) -> torch.Tensor:
        """Decoder means of ``n`` prior draws (a second layer at its conditional mean), in
        [0, 1]; reproducible by ``seed`` with the global RNG untouched."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = torch.randn(n, self.latent_dims[-1], generator=g)
            if self.num_layers == 2:
                z, _ = self.prior_head(self.prior_net(z))
            return self._mean_image(z)

    def plot(self, dataset: Dataset, result: "InferenceResult | None", out_dir: Path) -> list[Path]:
        """Prior samples, reconstructions, a latent interpolation and (2-D latents) a latent map."""
        from zoo.viz.vae import vae_figures

        return vae_figures(self, dataset, Path(out_dir), guide=self.fitted_guide(result))


@register(
    "dlgm2",
    description="Two-stochastic-layer DLGM (Burda et al. 2015: x <- h1 <- h2, latents 100 and 50, "
    "100-100 and 50-50 tanh MLPs) with the amortised guide q(h1|x) q(h2|h1)",
    default_data="digits",
    traits=ModelTraits(learned_parameters=True, local_latents=True, minibatch=True),
)
class DLGM2(VAE):
    """:class:`VAE` with two stochastic layers by default (same keywords)."""

    def __init__(
        self,
        *,
        latent_dim: int | Sequence[int] = (100, 50),
        hidden: Sequence[int] | Sequence[Sequence[int]] = ((100, 100), (50, 50)),
        **config: Any,
    ):
        super().__init__(latent_dim=latent_dim, hidden=hidden, **config)


class VAEGuide(ZooGuide):
    """One of a VAE's amortised guides q(z | x): ``encoder`` (diagonal Gaussian per layer) or
    the same pushed through ``num_flows`` amortised ``planar`` / ``radial`` / ``iaf`` flows.

    Called like the model (``x``, ``subsample_size``, ``num_data``); its parameters are the
    VAE's modules, registered as ``vae_encoder`` and ``vae_flow_<kind>``. Build it with
    :meth:`VAE.guide_named` (or read ``vae.guide`` / ``vae.guides()``).

    Usage::

        guide = vae.guide_named("planar")
        pyro.poutine.trace(guide).get_trace(x=x)     # one draw of every local latent
        guide.median(x=x)["z"]                       # (N, latent_dim), no random numbers used
    """

    amortised = True

    def __init__(self, vae: VAE, kind: str) -> None:
        self.vae = vae
        self.kind = kind
        self.__name__ = self.__qualname__ = f"vae_guide_{kind}"
        self.__doc__ = f"The VAE's amortised {kind} guide q(z | x)."

    @property
    def vae_guide_kind(self) -> str:
        """Former name of :attr:`kind`, kept for existing callers; read ``kind`` instead."""
        return self.kind

    def __call__(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> None:
        self.vae._guide(self.kind, x, subsample_size, num_data)

    def median(
        self, x: torch.Tensor | None = None, subsample_size: int | None = None, num_data: int = 1
    ) -> dict[str, torch.Tensor]:
        """Per-point point estimates of the local latents for every row of ``x`` (detached).

        ``x`` is fed to the encoder as given: no dynamic binarisation, so no random numbers are
        drawn (pass binarised data, e.g. :meth:`VAE.evaluation_x`, to match what the encoder
        was trained on); ``subsample_size`` is ignored. For the ``encoder`` guide the bottom
        latent's value is the exact median (and mode) of ``q(z_1 | x)``, the encoder's mean; a
        second layer gets the median of ``q(z_2 | z_1)`` at that value. For flow guides each
        layer's base median is pushed through the flows: the image of the median, a point
        estimate but not in general the median of the flow distribution.
        """
        return self.vae._guide_median(self.kind, x)


class _LearnedScale(nn.Module):
    """A per-dimension observation scale, softplus-parametrised (initially about 0.3)."""

    def __init__(self, dim: int):
        super().__init__()
        self.raw = nn.Parameter(torch.full((dim,), -1.0))

    def forward(self) -> torch.Tensor:
        return torch.nn.functional.softplus(self.raw) + 1e-3
