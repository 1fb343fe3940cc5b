"""The model registry: names to factories, with a description, default data and traits.

The CLI, the benchmark runner and the tests all list and build models through it. A model
declares what it is (:class:`~inference.methods.capabilities.ModelTraits`: discrete or local
latents, learned parameters, mini-batch support); which inference methods apply follows from
what each method needs (:mod:`inference.methods`), so a new method needs no edit here.

Usage::

    import zoo
    [spec.name for spec in zoo.list_models()]
    model = zoo.get("eight_schools-eight_schools_centered")

Registering a model::

    from zoo.registry import register

    @register("my_model", description="...", default_data="diabetes",
              traits=ModelTraits(minibatch=True))
    class MyModel(ZooModel): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from inference.methods.capabilities import ModelTraits

if TYPE_CHECKING:  # a runtime import would run zoo/models/__init__.py, which imports this module
    from zoo.models.base import ZooModel

F = TypeVar("F", bound="Callable[..., ZooModel]")


class UnknownModelError(KeyError):
    """Raised for a model name the registry does not hold; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build a model, what it is for and what it is.

    ``only_methods`` optionally narrows the methods to a named subset (``None``: every
    registered method whose needs the traits meet).
    """

    name: str
    factory: Callable[..., ZooModel]
    description: str
    default_data: str
    traits: ModelTraits = field(default_factory=ModelTraits)
    only_methods: tuple[str, ...] | None = None

    @property
    def methods(self) -> tuple[str, ...]:
        """Names of the registered inference methods that can run this model."""
        from inference.methods import list_methods

        return tuple(m.name for m in list_methods() if m.applies_to(self.traits)
                     and (self.only_methods is None or m.name in self.only_methods))


_REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str, *, description: str, default_data: str, traits: ModelTraits | None = None,
    methods: tuple[str, ...] | None = None,
) -> Callable[[F], F]:
    """Class or factory decorator adding a model to the registry under ``name``.

    ``traits`` says what the model is (default: a small continuous model with no learned
    parameters); ``methods`` optionally restricts it to named methods.
    """
    if traits is not None and not isinstance(traits, ModelTraits):
        raise TypeError(f"traits of model {name!r} must be a ModelTraits, got {traits!r}")

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        if isinstance(factory, type):
            factory.name = name
        _REGISTRY[name] = ModelSpec(name, factory, description, default_data,
                                    traits or ModelTraits(),
                                    None if methods is None else tuple(methods))
        return factory

    return decorate


def _ensure_loaded() -> None:
    import zoo.models  # noqa: F401  (importing registers every built-in model)


def list_models() -> list[ModelSpec]:
    """Every registered model, sorted by name."""
    _ensure_loaded()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name raises :class:`UnknownModelError`."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def traits_of(model: ZooModel) -> ModelTraits:
    """The registered traits of a model instance (default traits for an unregistered one)."""
    if not model.name:
        return ModelTraits()
    _ensure_loaded()
    entry = _REGISTRY.get(model.name)
    return entry.traits if entry is not None else ModelTraits()


def get(name: str, **config: Any) -> ZooModel:
    """Build the model registered under ``name`` with its configuration keywords."""
    from zoo.config_check import check_config

    entry = spec(name)
    check_config(entry.factory, config, model=name)
    try:
        return entry.factory(**config)
    except TypeError as err:
        raise TypeError(f"bad configuration for model {name!r}: {err}") from err
