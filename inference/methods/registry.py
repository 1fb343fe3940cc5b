"""The registry of inference methods: one entry per method, one contract for all of them.

An entry (:class:`MethodSpec`) has a name, a family (``mcmc``, ``vi`` ...), a settings
dataclass that validates itself, the capabilities it needs of a model, and
``run(target, settings, seed) -> InferenceResult``. The CLI, :func:`zoo.fit.fit`, suite
validation, the benchmark cells and the diagnostics all dispatch through it, so adding a method
is one file in :mod:`inference.methods` (or, for an MCMC kernel, one file in
:mod:`inference.mcmc.kernels`) plus its tests.

Usage::

    from inference import methods
    spec = methods.get("nuts")
    settings = spec.settings_from({"num_chains": 2, "num_warmup": 200})
    result = spec.run(methods.Target(model, {"y": y}), settings, seed=0)
    [m.name for m in methods.list_methods()]

Registering a method::

    @methods.register("my_method", family="vi", settings=MySettings,
                      needs=("differentiable_density",), description="...")
    def run_my_method(target, settings, seed):
        ...
        return InferenceResult(...)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from inference.methods.capabilities import (CAPABILITIES, ModelTraits, describe_missing,
                                            missing_capabilities)
from inference.methods.inputs import check_finite_inputs
from inference.methods.settings import MethodSettings, SettingsError

if TYPE_CHECKING:
    from inference.result import InferenceResult

__all__ = ["MethodSpec", "Target", "UnknownMethodError", "register", "get", "list_methods",
           "FAMILIES"]

#: method families; diagnostics and tables treat each family alike. ``mcmc``: Markov chains
#: with chain and draw dimensions (R-hat, ESS apply); ``sgmcmc``: stochastic-gradient chains
#: (also chain and draw dimensions); ``vi``: variational fits with independent draws;
#: ``ensemble``: independently trained members as draws; ``laplace``: Gaussian approximations
#: at a mode; ``energy``: energy-based models trained by their own estimators (contrastive
#: divergence); ``point``: point estimates (autoencoders, adversarial nets)
FAMILIES = ("mcmc", "sgmcmc", "vi", "ensemble", "laplace", "energy", "point")


class UnknownMethodError(KeyError):
    """A method name the registry does not hold; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Target:
    """What a method runs on: a Pyro model, its keyword arguments, and what the model offers.

    ``guides`` maps the model's own guide names to guide callables (``"model"`` is its
    default guide); ``traits`` says what the model is; ``name`` is used in messages;
    ``network`` is the model's network as a stack of linear layers
    (:class:`inference.kfac.NetworkView`, from ``ZooModel.network_view``) or ``None``.

    Example: ``Target(m.model, m.model_kwargs(data), guides=m.guides(), name="vae")``.
    """

    model: Callable[..., Any]
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    guides: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    traits: ModelTraits = field(default_factory=ModelTraits)
    name: str = "model"
    #: keywords of ``model_kwargs`` that may hold NaN to mark missing observations
    missing_ok: tuple[str, ...] = ()
    #: the network view for curvature methods (kfac_laplace); None when the model has none
    network: Any = None


RunFn = Callable[[Target, MethodSettings, int], "InferenceResult"]


@dataclass(frozen=True)
class MethodSpec:
    """One registered inference method.

    ``needs`` lists capabilities (keys of :data:`~inference.methods.capabilities.CAPABILITIES`)
    every run needs; ``extra_needs(settings)`` adds those that depend on the settings (SVI
    with ``batch_size`` needs mini-batches).
    """

    name: str
    family: str
    settings: type[MethodSettings]
    needs: frozenset[str]
    run_fn: RunFn
    description: str
    extra_needs: Callable[[MethodSettings], Iterable[str]] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The settings this method takes."""
        return self.settings.field_names()

    def settings_from(self, values: Mapping[str, Any] | None = None) -> MethodSettings:
        """Validated settings from a dict; unknown keys and bad values raise ``SettingsError``.

        A key that belongs to other methods is refused naming them (``num_warmup`` with svi:
        a setting of nuts, hmc, ...).
        """
        values = dict(values or {})
        foreign = {key: [m.name for m in list_methods() if key in m.fields]
                   for key in values if key not in self.fields}
        owned = {key: owners for key, owners in foreign.items() if owners}
        if owned:
            where = "; ".join(f"{key} is a setting of {', '.join(owners)}"
                              for key, owners in owned.items())
            raise SettingsError(f"method {self.name!r} takes no setting(s) {sorted(owned)}: "
                                f"{where}")
        return self.settings.from_mapping(values, method=self.name)

    def needs_for(self, settings: MethodSettings | None = None) -> frozenset[str]:
        """Capabilities a run with ``settings`` needs of its model."""
        extra = set(self.extra_needs(settings)) if (self.extra_needs and settings) else set()
        return frozenset(self.needs | extra)

    def check_model(self, traits: ModelTraits, model_name: str,
                    settings: MethodSettings | None = None) -> None:
        """Raise ``ValueError`` naming the missing capability when the model cannot be run."""
        missing = missing_capabilities(self.needs_for(settings), traits)
        if missing:
            raise ValueError(describe_missing(self.name, model_name, missing))

    def applies_to(self, traits: ModelTraits) -> bool:
        """Whether the method can run a model with ``traits`` (with its default settings)."""
        return not missing_capabilities(self.needs, traits)

    def run(self, target: Target, settings: MethodSettings | Mapping[str, Any] | None = None,
            seed: int = 0) -> "InferenceResult":
        """Check the model's capabilities, then run; returns the method's ``InferenceResult``."""
        if not isinstance(settings, MethodSettings):
            settings = self.settings_from(settings)
        elif not isinstance(settings, self.settings):
            raise SettingsError(f"method {self.name!r} takes {self.settings.__name__}, "
                                f"got {type(settings).__name__}")
        self.check_model(target.traits, target.name, settings)
        check_finite_inputs(target.model_kwargs, model=target.name, missing_ok=target.missing_ok)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
        result = self.run_fn(target, settings, seed)
        if result.family != self.family:
            result = result.with_updates(family=self.family)
        return result


_REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, *, family: str, settings: type[MethodSettings],
             needs: Iterable[str] = (), description: str = "",
             extra_needs: Callable[[MethodSettings], Iterable[str]] | None = None
             ) -> Callable[[RunFn], RunFn]:
    """Decorator adding ``run(target, settings, seed)`` to the registry under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown method family {family!r}; known: {FAMILIES}")
    unknown = sorted(set(needs) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"method {name!r} needs unknown capabilities {unknown}; known: "
                         f"{sorted(CAPABILITIES)}")
    if not (isinstance(settings, type) and issubclass(settings, MethodSettings)
            and dataclasses.is_dataclass(settings)):
        raise TypeError(f"settings of method {name!r} must be a MethodSettings dataclass")

    def decorate(run_fn: RunFn) -> RunFn:
        if name in _REGISTRY:
            raise ValueError(f"method name {name!r} is registered twice")
        bound = type(settings.__name__, (settings,), {"method_name": name,
                                                      "__doc__": settings.__doc__})
        bound = dataclass(frozen=True)(bound)
        _REGISTRY[name] = MethodSpec(name, family, bound, frozenset(needs), run_fn,
                                     description, extra_needs)
        return run_fn

    return decorate


def _ensure_loaded() -> None:
    from inference.methods import discover

    discover()


def get(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name raises :class:`UnknownMethodError`."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(f"unknown inference method {name!r}; known methods: "
                                 f"{', '.join(sorted(_REGISTRY))}") from None


def list_methods(family: str | None = None) -> list[MethodSpec]:
    """Every registered method (of one family, if given), sorted by family then name."""
    _ensure_loaded()
    specs = [s for s in _REGISTRY.values() if family is None or s.family == family]
    return sorted(specs, key=lambda s: (s.family, s.name))
