"""Settings of an inference method: a dataclass that checks every field's type and range.

Each method declares its settings as a subclass of :class:`MethodSettings` whose fields are
made with the helpers below (:func:`integer`, :func:`real`, :func:`flag`, :func:`choice`,
:func:`mapping`, :func:`anything`). Construction checks every field and raises
:class:`SettingsError` naming the field, the value and what is allowed; booleans are not
accepted where a number belongs. :meth:`MethodSettings.from_mapping` builds settings from a
dict (a suite file, the CLI) and refuses keys that are not settings of the method.

Why by hand: dataclasses do not check types, and pydantic is not a dependency; the checks
needed here (integer ranges, probabilities, choices, "bool is not an int") are a few lines.

Usage::

    from dataclasses import dataclass
    from inference.methods.settings import MethodSettings, integer, real

    @dataclass(frozen=True)
    class MySettings(MethodSettings):
        num_steps: int = integer(1000, minimum=1)
        lr: float = real(0.01, minimum=0.0, exclusive=True)

    MySettings.from_mapping({"num_steps": 50}, method="mine")   # ok
    MySettings(num_steps=True)    # SettingsError: num_steps must be an integer >= 1, got True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Callable, ClassVar

__all__ = ["MethodSettings", "SettingsError", "integer", "real", "flag", "choice", "mapping",
           "anything", "text"]


class SettingsError(ValueError):
    """A setting with the wrong type or range, or one the method does not take."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(default: int | None, *, minimum: int | None = None, optional: bool = False,
            help: str = "") -> Any:
    """An integer field (``None`` allowed when ``optional``), at least ``minimum``."""
    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        bound = "" if minimum is None else f" >= {minimum}"
        allowed = f"an integer{bound}" + (" or None" if optional else "")
        if not _is_int(value) or (minimum is not None and int(value) < minimum):
            return f"{name} must be {allowed}, got {value!r}"
        return None
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def real(default: float | None, *, minimum: float | None = None, maximum: float | None = None,
         exclusive: bool = False, optional: bool = False, help: str = "") -> Any:
    """A real-number field in ``[minimum, maximum]`` (open bounds when ``exclusive``)."""
    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        lo, hi = ("(", ")") if exclusive else ("[", "]")
        if minimum is not None and maximum is not None:
            where = f" in {lo}{minimum}, {maximum}{hi}"
        elif minimum is not None:
            where = f" {'>' if exclusive else '>='} {minimum}"
        elif maximum is not None:
            where = f" {'<' if exclusive else '<='} {maximum}"
        else:
            where = ""
        allowed = f"a finite number{where}" + (" or None" if optional else "")
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok:
            x = float(value)
            ok = math.isfinite(x)
            if ok and minimum is not None:
                ok = x > minimum if exclusive else x >= minimum
            if ok and maximum is not None:
                ok = x < maximum if exclusive else x <= maximum
        return None if ok else f"{name} must be {allowed}, got {value!r}"
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def flag(default: bool, *, help: str = "") -> Any:
    """A boolean field: only ``True`` or ``False`` (not 0/1, not strings)."""
    def check(name: str, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def choice(default: str | None, options: Sequence[str] | Callable[[], Sequence[str]], *,
           optional: bool = False, open_ended: bool = False, help: str = "") -> Any:
    """A string field from ``options`` (a sequence, or a function returning one).

    ``open_ended`` also admits values outside ``options`` that are not strings (e.g. a
    callable guide, or a dict of initial values) without checking them.
    """
    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if open_ended and not isinstance(value, str):
            return None
        allowed = list(options() if callable(options) else options)
        if value not in allowed:
            return f"{name} must be one of {allowed}, got {value!r}"
        return None
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def text(default: str | None, *, optional: bool = False, help: str = "") -> Any:
    """A free string field (a path, a device name)."""
    def check(name: str, value: Any) -> str | None:
        if (value is None and optional) or isinstance(value, str):
            return None
        return f"{name} must be a string{' or None' if optional else ''}, got {value!r}"
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def mapping(*, help: str = "") -> Any:
    """A dict field (``None`` allowed), e.g. guide options or a schedule."""
    def check(name: str, value: Any) -> str | None:
        if value is None or isinstance(value, Mapping):
            return None
        return f"{name} must be a table of key = value (a dict) or None, got {value!r}"
    return dataclasses.field(default=None, metadata={"check": check, "help": help})


def anything(default: Any = None, *, help: str = "") -> Any:
    """A field checked by the driver itself (e.g. a KL-annealing object or a site list)."""
    return dataclasses.field(default=default, metadata={"check": None, "help": help})


@dataclasses.dataclass(frozen=True)
class MethodSettings:
    """Base class of every method's settings; subclasses are frozen dataclasses.

    Subclasses may override :meth:`check` for rules that involve several fields.
    """

    #: the method these settings belong to (filled by the registry, used in messages)
    method_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            problem = check(f.name, getattr(self, f.name)) if check else None
            if problem:
                raise SettingsError(self._where() + problem)
        problem = self.check()
        if problem:
            raise SettingsError(self._where() + problem)

    def _where(self) -> str:
        return f"method {self.method_name!r}: " if self.method_name else ""

    def check(self) -> str | None:
        """A problem involving several fields, or ``None``; subclasses override."""
        return None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every setting this method takes, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """One-line help per setting (empty where none was written)."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, method: str | None = None
                     ) -> "MethodSettings":
        """Settings from a dict; keys that are not settings of the method are refused.

        Example: ``NUTSSettings.from_mapping({"num_chains": 2})``.
        """
        name = method or cls.method_name
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise SettingsError(f"method {name!r} takes no setting(s) {unknown}; its settings "
                                f"are {list(cls.field_names())}")
        return cls(**dict(values))

    def as_dict(self) -> dict[str, Any]:
        """The settings as a dict of field values (not deep-copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
