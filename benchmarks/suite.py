"""Benchmark suites declared as data: TOML files expanded into a list of cells.

A *cell* is one fit: a model (with its configuration), a data set (with loader options such as a
UCI split), an inference method with its driver settings and guide, and a seed. A suite lists
cells compactly: the grid keys ``model``, ``data``, ``split``, ``method`` and ``seed`` may be lists,
and each ``[[cell]]`` entry expands into their Cartesian product.

Usage::

    from benchmarks.suite import load_suite
    suite = load_suite("quick")              # a built-in name, or a path to a .toml file
    for cell in suite.cells:
        print(cell.cell_id, cell.method, cell.settings)

Suite file format::

    name = "example"
    description = "what the suite measures"
    imports = []                      # optional: modules imported first (register extra models)

    [defaults]                        # merged under every [[cell]] (cell keys win)
    seed = [0, 1]

    [methods.nuts]                    # a named inference set-up: "method" is a registered
    method = "nuts"                   # method (`zoo methods`: nuts, hmc, rw, mala, svi, ...)
    num_chains = 2                    # every other key is a setting of that method
    num_warmup = 200
    num_samples = 200

    [methods.svi_normal]
    method = "svi"
    guide = "auto_normal"
    num_steps = 1000

    [[cell]]
    model = "eight_schools-eight_schools_noncentered"
    method = ["nuts", "svi_normal"]   # names under [methods], or a bare method name

    [[cell]]
    model = "eight_schools-eight_schools_centered"
    method = "nuts"
    settings = { num_samples = 1000 } # per-cell overrides of the driver settings

    [budget]                          # optional caps (benchmarks.budget.Budget), e.g.
    max_steps = 600                   # zoo bench NAME --budget minutes=12 overrides them

    [[published]]                     # numbers to compare with, shown beside the measured ones
    model = "bnn"                     # (or, before the first table: published = [{...}, ...])
    data = "uci-boston-housing"
    method = "mc_dropout"             # matched against the method name, guide or driver
    metric = "rmse"                   # a column of the results table
    value = 2.97
    source = "Gal & Ghahramani 2016, Table 1"
    note = "optional remark"

Keys of ``[[cell]]``: ``model`` (required), ``data`` (default: the model's default data),
``data_options`` (loader keywords), ``split`` (grid key, passed to the loader as
``data_options["split"]``), ``method`` (required), ``seed`` (default 0), ``config`` (model
configuration keywords), ``settings`` (driver-setting overrides), ``guide`` (overrides the
method's guide), ``eval_split`` (the held-out split evaluated, default ``"test"``),
``evaluation`` (evaluation settings, :class:`inference.evaluation.EvalSettings`:
``is_samples``, ``num_draws``, ``max_points`` ...), ``psis_khat`` (compute the PSIS k-hat of
an SVI guide, default false), ``plots`` (write the standard plots, default true), ``label`` (the
method label in tables; default the method name).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

SUITES_DIR = Path(__file__).resolve().parent / "suites"

#: keys of [[cell]] whose value may be a list that expands into one cell per element
GRID_KEYS = ("model", "data", "split", "method", "seed")
CELL_KEYS = frozenset(
    GRID_KEYS
    + ("data_options", "config", "settings", "guide", "eval_split", "evaluation", "psis_khat",
       "plots", "label")
)
PUBLISHED_KEYS = frozenset(("model", "data", "method", "metric", "value", "source", "note"))
TOP_KEYS = frozenset(
    ("name", "description", "imports", "defaults", "methods", "cell", "published", "budget")
)


class SuiteError(ValueError):
    """A suite file that cannot be read or names something that does not exist."""


@dataclass(frozen=True)
class Cell:
    """One fit of a benchmark grid; ``cell_id`` names its output folder."""

    model: str
    method: str  # a registered inference method (see inference.methods)
    label: str  # the method's name in the suite (e.g. "svi_iaf"); tables group by it
    data: str | None = None
    data_options: Mapping[str, Any] = field(default_factory=dict)
    split: Any = None
    guide: str | None = None
    seed: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    eval_split: str = "test"
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    psis_khat: bool = False
    plots: bool = True
    index: int = 0  # position in the suite, for stable ordering of the table

    @property
    def key(self) -> dict[str, Any]:
        """Everything that determines the cell's numbers, as plain JSON-able data."""
        return {
            "model": self.model,
            "method": self.method,
            "label": self.label,
            "data": self.data,
            "data_options": dict(self.data_options),
            "split": self.split,
            "guide": self.guide,
            "seed": self.seed,
            "config": dict(self.config),
            "settings": dict(self.settings),
            "eval_split": self.eval_split,
            **({"evaluation": dict(self.evaluation)} if self.evaluation else {}),
            "psis_khat": self.psis_khat,
        }

    @property
    def cell_id(self) -> str:
        """A readable, file-system-safe id, unique through a short hash of :attr:`key`."""
        digest = hashlib.sha1(
            json.dumps(self.key, sort_keys=True, default=str).encode()
        ).hexdigest()[:8]
        parts = [self.model, self.data or "default", self.label]
        if self.split is not None:
            parts.append(f"split{self.split}")
        parts.append(f"seed{self.seed}")
        readable = re.sub(r"[^A-Za-z0-9_.=-]+", "-", "__".join(parts))
        return f"{readable}__{digest}"

    @property
    def all_data_options(self) -> dict[str, Any]:
        """Loader keywords, with the grid's ``split`` folded in."""
        options = dict(self.data_options)
        if self.split is not None:
            options["split"] = self.split
        return options

    def describe(self) -> str:
        """Short human-readable name for error messages."""
        split = "" if self.split is None else f" split={self.split}"
        return (
            f"cell #{self.index} (model={self.model!r} data={self.data!r}{split} "
            f"method={self.label!r} seed={self.seed})"
        )


@dataclass(frozen=True)
class Suite:
    """A named list of cells plus published numbers to compare with."""

    name: str
    description: str
    cells: tuple[Cell, ...]
    published: tuple[Mapping[str, Any], ...] = ()
    imports: tuple[str, ...] = ()
    budget: Mapping[str, Any] = field(default_factory=dict)  # see benchmarks.budget.Budget
    source: str = ""  # the TOML text the suite was read from
    path: Path | None = None


def builtin_suites() -> list[str]:
    """Names of the suites shipped in ``benchmarks/suites``."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def suite_path(name_or_path: str | Path) -> Path:
    """The TOML file of a built-in suite name or an explicit path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise SuiteError(f"suite file {str(candidate)!r} does not exist")
        return candidate
    builtin = SUITES_DIR / f"{name_or_path}.toml"
    if not builtin.is_file():
        raise SuiteError(
            f"unknown suite {str(name_or_path)!r}; built-in suites: {', '.join(builtin_suites())} "
            "(or give a path to a .toml file)"
        )
    return builtin


def load_suite(name_or_path: str | Path, *, validate: bool = True) -> Suite:
    """Read, expand and (by default) validate a suite against the model registry."""
    path = suite_path(name_or_path)
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"suite file {path} is not valid TOML: {err}") from None
    suite = parse_suite(raw, default_name=path.stem, source=text, path=path)
    if validate:
        validate_suite(suite)
    return suite


def parse_suite(
    raw: Mapping[str, Any], *, default_name: str = "suite", source: str = "",
    path: Path | None = None,
) -> Suite:
    """Expand the parsed TOML of a suite into cells (no registry look-ups)."""
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise SuiteError(
            f"suite {default_name!r}: unknown top-level keys {sorted(unknown)}; "
            f"allowed: {sorted(TOP_KEYS)}"
        )
    name = str(raw.get("name", default_name))
    methods = _parse_methods(name, raw.get("methods", {}))
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise SuiteError(f"suite {name!r}: [defaults] must be a table")
    entries = raw.get("cell", [])
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"suite {name!r} declares no [[cell]] entries")
    cells: list[Cell] = []
    for number, entry in enumerate(entries):
        merged = {**defaults, **entry}
        for key in ("settings", "config", "data_options", "evaluation"):  # tables merge by key
            if isinstance(defaults.get(key), Mapping) and isinstance(entry.get(key), Mapping):
                merged[key] = {**defaults[key], **entry[key]}
        cells.extend(_expand_entry(name, number, merged, methods, start=len(cells)))
    ids = [c.cell_id for c in cells]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SuiteError(f"suite {name!r} declares the same cell twice: {duplicates}")
    published = tuple(_parse_published(name, raw.get("published", [])))
    imports = raw.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise SuiteError(f"suite {name!r}: imports must be a list of module names")
    budget = raw.get("budget", {})
    if not isinstance(budget, Mapping):
        raise SuiteError(f"suite {name!r}: [budget] must be a table")
    return Suite(
        name=name,
        description=str(raw.get("description", "")),
        cells=tuple(cells),
        published=published,
        imports=tuple(imports),
        budget=dict(budget),
        source=source,
        path=path,
    )


def _method_names() -> list[str]:
    from inference.methods import list_methods

    return sorted(m.name for m in list_methods())


def _takes_guide(method: str) -> bool:
    from inference.methods import get

    return "guide" in get(method).fields


def _parse_methods(suite: str, table: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(table, Mapping):
        raise SuiteError(f"suite {suite!r}: [methods] must be a table of tables")
    methods = {}
    known = _method_names()
    for label, spec in table.items():
        if not isinstance(spec, Mapping) or "method" not in spec:
            raise SuiteError(
                f"suite {suite!r}: [methods.{label}] needs a 'method' key (one of {known})"
            )
        if spec["method"] not in known:
            raise SuiteError(
                f"suite {suite!r}: [methods.{label}] has method {spec['method']!r}; "
                f"registered methods: {known}"
            )
        methods[label] = dict(spec)
    return methods


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _expand_entry(
    suite: str, number: int, entry: Mapping[str, Any], methods: Mapping[str, Mapping[str, Any]],
    start: int,
) -> list[Cell]:
    where = f"suite {suite!r}, [[cell]] #{number}"
    unknown = set(entry) - CELL_KEYS
    if unknown:
        raise SuiteError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(CELL_KEYS)}")
    for required in ("model", "method"):
        if required not in entry:
            raise SuiteError(f"{where}: missing required key {required!r}")
    for key in ("settings", "config", "data_options", "evaluation"):
        if not isinstance(entry.get(key, {}), Mapping):
            raise SuiteError(f"{where}: {key!r} must be a table")
    grid = {key: _as_list(entry.get(key)) for key in GRID_KEYS}
    grid["seed"] = _as_list(entry.get("seed", 0))
    for key, values in grid.items():
        if not values:
            raise SuiteError(f"{where}: {key!r} is an empty list")
    cells = []
    for model, data, split, method_name, seed in itertools.product(
        *(grid[k] for k in GRID_KEYS)
    ):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise SuiteError(f"{where}: seed must be an integer, got {seed!r}")
        if method_name in methods:
            spec = dict(methods[method_name])
            driver = spec.pop("method")
            guide = spec.pop("guide", None)
        elif method_name in _method_names():
            driver, guide, spec = method_name, None, {}
        else:
            raise SuiteError(
                f"{where}: unknown method {method_name!r}; use a registered method "
                f"{_method_names()} or a name declared under [methods] "
                f"({sorted(methods) or 'none declared'})"
            )
        guide = entry.get("guide", guide)
        if not _takes_guide(driver):
            if guide is not None:
                raise SuiteError(f"{where}: method {method_name!r} ({driver}) takes no guide")
        elif guide is None:
            guide = "auto_normal"
        cells.append(
            Cell(
                model=str(model),
                method=driver,
                label=str(entry.get("label", method_name)),
                data=data,
                data_options=dict(entry.get("data_options", {})),
                split=split,
                guide=guide,
                seed=seed,
                config=dict(entry.get("config", {})),
                settings={**spec, **entry.get("settings", {})},
                eval_split=str(entry.get("eval_split", "test")),
                evaluation=dict(entry.get("evaluation", {})),
                psis_khat=bool(entry.get("psis_khat", False)),
                plots=bool(entry.get("plots", True)),
                index=start + len(cells),
            )
        )
    return cells


def _parse_published(suite: str, rows: Any) -> list[dict[str, Any]]:
    if not isinstance(rows, list):
        raise SuiteError(f"suite {suite!r}: published numbers must be [[published]] entries")
    out = []
    for number, row in enumerate(rows):
        where = f"suite {suite!r}, [[published]] #{number}"
        unknown = set(row) - PUBLISHED_KEYS
        if unknown:
            raise SuiteError(f"{where}: unknown keys {sorted(unknown)}; allowed: "
                             f"{sorted(PUBLISHED_KEYS)}")
        for required in ("model", "method", "metric", "value", "source"):
            if required not in row:
                raise SuiteError(f"{where}: missing required key {required!r}")
        if not isinstance(row["value"], (int, float)):
            raise SuiteError(f"{where}: value must be a number, got {row['value']!r}")
        out.append({"data": None, "note": "", **row, "value": float(row["value"])})
    return out


# --------------------------------------------------------------------------- validation
def validate_suite(suite: Suite) -> None:
    """Check every cell against the model and method registries before anything runs.

    Raises :class:`SuiteError` naming the cell and the bad value (unknown model, a method
    that needs a capability the model lacks, an unknown guide, a setting the method does not
    take or a value out of range, or a model configuration the model rejects).
    """
    import importlib

    import zoo
    from inference import methods
    from inference.evaluation import EvalSettings
    from zoo.registry import UnknownModelError

    for module in suite.imports:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise SuiteError(f"suite {suite.name!r}: cannot import {module!r}: {err}") from None
    from benchmarks.budget import Budget

    try:
        Budget.from_mapping(suite.budget, method="budget")
    except ValueError as err:
        raise SuiteError(f"suite {suite.name!r}, [budget]: {err}") from None
    known = {spec.name: spec for spec in zoo.list_models()}
    built: dict[str, Any] = {}
    for cell in suite.cells:
        where = f"suite {suite.name!r}, {cell.describe()}"
        if cell.model not in known:
            raise SuiteError(
                f"{where}: unknown model {cell.model!r}; registered models: "
                f"{', '.join(sorted(known))}"
            )
        spec = known[cell.model]
        data = cell.data or spec.default_data
        _validate_data(suite.name, cell, data)
        entry = methods.get(cell.method)
        values = dict(cell.settings)
        if cell.guide is not None:
            values["guide"] = cell.guide
        try:
            settings = entry.settings_from(values)
            EvalSettings.from_mapping(cell.evaluation, method="evaluation")
            if spec.only_methods is not None and cell.method not in spec.only_methods:
                raise ValueError(f"model {cell.model!r} is registered for methods "
                                 f"{list(spec.only_methods)} only")
            entry.check_model(spec.traits, cell.model, settings)
        except ValueError as err:
            raise SuiteError(f"{where}: {err}") from None
        key = json.dumps([cell.model, dict(cell.config)], sort_keys=True, default=str)
        try:
            if key not in built:
                built[key] = zoo.get(cell.model, **cell.config)
        except (TypeError, ValueError, UnknownModelError) as err:
            raise SuiteError(f"{where}: bad model config {dict(cell.config)}: {err}") from None
        if cell.guide is not None:
            own = set(built[key].guides())
            autoguides = _autoguide_names()
            if not (cell.guide in own or cell.guide in autoguides):
                raise SuiteError(
                    f"{where}: unknown guide {cell.guide!r}; model {cell.model!r} has guides "
                    f"{sorted(own)} and the SVI driver takes the autoguides {sorted(autoguides)}"
                )


def _autoguide_names() -> set[str]:
    from inference.guides import GUIDE_NAMES

    return set(GUIDE_NAMES)


def _validate_data(suite: str, cell: Cell, data: str) -> None:
    """The data set exists and takes the cell's loader options."""
    from zoo.data import list_datasets, options

    if data not in list_datasets():
        raise SuiteError(
            f"suite {suite!r}, {cell.describe()}: unknown data set {data!r}; known data sets: "
            f"{', '.join(list_datasets())}"
        )
    bad = sorted(set(cell.all_data_options) - set(options(data)))
    if bad:
        raise SuiteError(
            f"suite {suite!r}, {cell.describe()}: data set {data!r} takes no option(s) {bad}; "
            f"it takes {sorted(options(data)) or 'none'}"
        )
