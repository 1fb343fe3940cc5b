"""Checks a model configuration against the model's own type hints before the model is built.

``--config latent_dim=true`` must not train a one-dimensional latent, and ``latent_dim=a``
must not fail deep inside a layer constructor with ``invalid literal for int()``. The types a
model accepts are already written down as the annotations of its constructor; this module
reads them and refuses, before anything runs, a key the model does not take or a value of
the wrong type, naming the key, the value and what is allowed.

Written by hand because the annotation forms the zoo's models use (``int``, ``float | str``,
``Sequence[int]``, ``Literal[...]``, ``X | None``) need only a few lines here, while a
validation library (pydantic, typeguard) would be a new dependency for one function.

Usage::

    from zoo.config_check import check_config
    check_config(VAE, {"latent_dim": 10}, model="vae")          # passes
    check_config(VAE, {"latent_dim": True}, model="vae")        # ValueError naming latent_dim
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A model configuration key the model does not take, or a value of the wrong type."""


def _describe(annotation: Any) -> str:
    """A short reader-facing name of an annotation: ``an integer``, ``a list of integers``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        inner = [a for a in args if a is not Ellipsis]
        if not inner:
            return "a list"
        plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
        return "a list of " + plural.get(inner[0], f"items each {_describe(inner[0])}")
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (as parsed from JSON or given in Python) fits ``annotation``.

    Booleans are not integers or numbers here; an integer is a number; unknown annotation
    forms (``Any``, classes) accept anything.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        if origin is tuple and inner and Ellipsis not in args:
            return len(value) == len(inner) and all(map(matches, value, inner))
        return not inner or all(matches(v, inner[0]) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is type(None):
        return value is None
    return True


def _parameters(factory: Callable[..., Any]) -> tuple[dict[str, Any], bool]:
    """Keyword parameters of ``factory`` with their annotations (a class: over its MRO), and
    whether some constructor takes keywords it does not name and which no base names either."""
    functions = ([cls.__dict__["__init__"] for cls in factory.__mro__
                  if "__init__" in cls.__dict__ and cls is not object]
                 if isinstance(factory, type) else [factory])
    params: dict[str, Any] = {}
    open_ended = False
    for position, function in enumerate(functions):
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # an annotation that cannot be resolved: accept its values
            hints = {}
        signature = inspect.signature(function)
        takes_any = False
        for name, param in signature.parameters.items():
            if param.kind is param.VAR_KEYWORD:
                takes_any = True
            elif name != "self" and param.kind is not param.VAR_POSITIONAL:
                params.setdefault(name, hints.get(name, Any))
        if takes_any and position == len(functions) - 1:
            open_ended = True  # the last constructor forwards to something we cannot read
        if not takes_any:
            break  # keywords stop here: bases further up never see the configuration
    return params, open_ended


def check_config(factory: Callable[..., Any], config: Mapping[str, Any], *, model: str) -> None:
    """Refuse a configuration key ``factory`` does not take, or a value of the wrong type.

    Raises :class:`ConfigError` naming the model, the key, the value and what is allowed.
    """
    params, open_ended = _parameters(factory)
    for key, value in config.items():
        if key not in params:
            if open_ended:
                continue
            raise ConfigError(f"model {model!r} has no configuration key {key!r}; it takes: "
                              f"{', '.join(sorted(params)) or 'none'}")
        if not matches(value, params[key]):
            raise ConfigError(f"model {model!r}: configuration {key}={value!r} is not allowed; "
                              f"{key} must be {_describe(params[key])}")
