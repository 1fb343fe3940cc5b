"""The model registry: names to factories, with a description, default data and methods.

The CLI, the benchmark runner and the tests all list and build models through it.

Usage::

    import zoo
    [spec.name for spec in zoo.list_models()]
    model = zoo.get("eight_schools-eight_schools_centered")

Registering a model::

    from zoo.registry import register

    @register("my_model", description="...", default_data="diabetes", methods=("nuts", "svi"))
    class MyModel(ZooModel): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:  # a runtime import would run zoo/models/__init__.py, which imports this module
    from zoo.models.base import ZooModel

F = TypeVar("F", bound="Callable[..., ZooModel]")


class UnknownModelError(KeyError):
    """Raised for a model name the registry does not hold; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build a model and what it is for."""

    name: str
    factory: Callable[..., ZooModel]
    description: str
    default_data: str
    methods: tuple[str, ...]


_REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str, *, description: str, default_data: str, methods: tuple[str, ...]
) -> Callable[[F], F]:
    """Class or factory decorator adding a model to the registry under ``name``."""

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        if isinstance(factory, type):
            factory.name = name
        _REGISTRY[name] = ModelSpec(name, factory, description, default_data, tuple(methods))
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


def get(name: str, **config: Any) -> ZooModel:
    """Build the model registered under ``name`` with its configuration keywords."""
    entry = spec(name)
    try:
        return entry.factory(**config)
    except TypeError as err:
        raise TypeError(f"bad configuration for model {name!r}: {err}") from err
