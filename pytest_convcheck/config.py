"""The models a user asks ``pytest --convcheck`` to check, from ``pyproject.toml``
or the command line. Importing this module never imports torch.

``pyproject.toml``::

    [tool.convcheck.models.decoder]
    factory = "mypkg.models:Decoder"   # a class or a function returning an nn.Module
    input = [2, 1, 28, 28]
    expect_output = [2, 1, 28, 28]     # optional
    checks = ["shapes", "batch"]       # optional; default: all available checks
    allow = ["batch"]                  # optional: report these, don't fail

Command line: ``--convcheck-model mypkg.models:Decoder --convcheck-input 2,1,28,28``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_convcheck.errors import ConvcheckConfigError

AVAILABLE_CHECKS: tuple[str, ...] = (
    "shapes",
    "batch",
    "receptive_field",
    "checkerboard",
    "sharing",
    "parity",
    "layout",
    "snapshot",
)
"""Checks this version runs, in order (the default ``checks`` of a model)."""

_KEYS = {
    "factory",
    "input",
    "expect_output",
    "checks",
    "allow",
    "receptive_field_min",
    "receptive_field_max",
    "receptive_field_exact",
    "checkerboard_kinds",
    "sharing_allow",
    "kwargs",
}
CHECKERBOARD_KINDS = ("structural", "weights", "output", "gradient")


@dataclass(frozen=True)
class ModelConfig:
    """One model to check: where to get it, its input, and what to check."""

    name: str
    factory: str
    input_shape: tuple[int, ...]
    expect_output: tuple[Any, ...] | None = None  # a shape, or one per output
    checks: tuple[str, ...] = AVAILABLE_CHECKS
    allow: frozenset[str] = field(default_factory=frozenset)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "pyproject.toml"


def _shape(value: Any, where: str, key: str) -> tuple[int, ...]:
    if isinstance(value, str):  # "2,1,28,28", "2x1x28x28" or "2×1×28×28"
        value = [v.strip() for v in re.split(r"[,x×]", value.strip())]
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConvcheckConfigError(
            f"{where}: {key} must be a list of ints such as [1, 1, 28, 28], got {value!r}"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ConvcheckConfigError(
            f"{where}: {key} must be non-empty with sizes ≥ 1, got {list(shape)}"
        )
    return shape


def _expected(value: Any, where: str) -> tuple[Any, ...]:
    """One shape, or one shape per output (a list of lists)."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return tuple(_shape(v, where, "expect_output") for v in value)
    return _shape(value, where, "expect_output")


def _names(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConvcheckConfigError(f"{where}: {key} must be a list of check names, got {value!r}")
    known = AVAILABLE_CHECKS
    for name in value:
        if name not in known:
            raise ConvcheckConfigError(
                f"{where}: unknown check {name!r} in {key}; known checks: {', '.join(known)}"
            )
    return tuple(value)


def model_from_table(name: str, table: Any, source: str) -> ModelConfig:
    """Validate one ``[tool.convcheck.models.NAME]`` table."""
    where = f"[tool.convcheck.models.{name}] in {source}"
    if not isinstance(table, dict):
        raise ConvcheckConfigError(f"{where}: must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConvcheckConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(_KEYS))}"
        )
    for key in ("factory", "input"):
        if key not in table:
            raise ConvcheckConfigError(
                f'{where}: missing {key!r}. Example:\n  factory = "mypkg.models:Net"\n'
                f"  input = [1, 1, 28, 28]"
            )
    factory = table["factory"]
    if not isinstance(factory, str) or ":" not in factory:
        raise ConvcheckConfigError(
            f"{where}: factory must be 'module.path:Name' (a class or a function returning an "
            f"nn.Module), got {factory!r}"
        )
    checks = _names(table.get("checks", list(AVAILABLE_CHECKS)), where, "checks")
    allow = _names(table.get("allow", []), where, "allow")
    expect = table.get("expect_output")
    options = {}
    for key in ("receptive_field_min", "receptive_field_max", "receptive_field_exact"):
        if key in table:
            value = table[key]
            ok = isinstance(value, int) or (
                isinstance(value, list) and value and all(isinstance(v, int) for v in value)
            )
            if not ok or isinstance(value, bool):
                raise ConvcheckConfigError(
                    f"{where}: {key} must be an int or a list of ints (one per spatial axis), "
                    f"got {value!r}"
                )
            options[key] = value
    if "checkerboard_kinds" in table:
        kinds = table["checkerboard_kinds"]
        if (
            not isinstance(kinds, list)
            or not kinds
            or any(k not in CHECKERBOARD_KINDS for k in kinds)
        ):
            raise ConvcheckConfigError(
                f"{where}: checkerboard_kinds must be a non-empty list of "
                f"{', '.join(CHECKERBOARD_KINDS)}, got {kinds!r}"
            )
        options["checkerboard_kinds"] = tuple(kinds)
    if "sharing_allow" in table:
        names = table["sharing_allow"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConvcheckConfigError(
                f"{where}: sharing_allow must be a list of module names, got {names!r}"
            )
        options["sharing_allow"] = tuple(names)
    if "kwargs" in table:
        kwargs = table["kwargs"]
        if not isinstance(kwargs, dict) or not all(
            isinstance(k, str) and k.isidentifier() for k in kwargs
        ):
            raise ConvcheckConfigError(
                f"{where}: kwargs must be a table of keyword arguments for the factory, "
                f"e.g. kwargs = {{ num_classes = 10 }}, got {kwargs!r}"
            )
        options["kwargs"] = dict(kwargs)
    return ModelConfig(
        name,
        factory,
        _shape(table["input"], where, "input"),
        _expected(expect, where) if expect is not None else None,
        checks,
        frozenset(allow),
        options,
        source,
    )


_LIST_KEYS = {"checks", "allow", "checkerboard_kinds", "sharing_allow"}


def table_from_ini_line(line: str) -> tuple[str, dict[str, Any]]:
    """One line of the ``convcheck_models`` ini option (``pytest.ini``, ``setup.cfg``,
    ``tox.ini``): ``NAME MODULE:FACTORY N,C,H,W [key=value ...]``, lists written
    comma-separated, e.g. ``decoder mypkg.models:Decoder 2,1,28,28
    expect_output=2,1,28,28 allow=checkerboard receptive_field_min=64``; factory
    arguments as ``kwargs.NAME=VALUE`` (a Python literal, e.g. ``kwargs.width=16``)."""
    parts = line.split()
    if len(parts) < 3:
        raise ConvcheckConfigError(
            f"convcheck_models line {line!r}: expected NAME MODULE:FACTORY N,C,H,W "
            f"[key=value ...], e.g. 'decoder mypkg.models:Decoder 2,1,28,28'"
        )
    name, factory, shape, *options = parts
    table: dict[str, Any] = {"factory": factory, "input": shape}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ConvcheckConfigError(
                f"convcheck_models line {line!r}: {option!r} is not key=value"
            )
        items = [v for v in value.split(",") if v]
        if key.startswith("kwargs."):  # kwargs.width=16: a Python literal, else a string
            try:
                literal = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                literal = value
            table.setdefault("kwargs", {})[key.removeprefix("kwargs.")] = literal
        elif key in _LIST_KEYS:
            table[key] = items
        elif key.startswith("receptive_field_"):
            try:
                numbers = [int(v) for v in items]
            except ValueError:
                table[key] = value  # model_from_table reports it
                continue
            table[key] = numbers[0] if len(numbers) == 1 else numbers
        else:
            table[key] = value
    return name, table


def load_models(
    pyproject: Path | None,
    cli_models: list[str],
    cli_input: str | None,
    ini_lines: list[str] | None = None,
) -> tuple[list[ModelConfig], dict[str, str]]:
    """All configured models — the ``pyproject.toml`` tables, the ``convcheck_models``
    ini lines, then the command line —
    and, per model name, the error of each malformed table (the other models still
    load). A file that is not valid TOML or a malformed ``[tool.convcheck]``
    section raises :class:`ConvcheckConfigError`."""
    models: list[ModelConfig] = []
    errors: dict[str, str] = {}
    if pyproject is not None and pyproject.is_file():
        import tomllib  # only with --convcheck: plain pytest runs never pay for it

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConvcheckConfigError(f"{pyproject}: not valid TOML: {error}") from None
        section = data.get("tool", {}).get("convcheck", {})
        tables = section.get("models", {})
        if not isinstance(tables, dict):
            raise ConvcheckConfigError(
                f"[tool.convcheck.models] in {pyproject} must be a table of tables"
            )
        for name, table in tables.items():
            try:
                models.append(model_from_table(name, table, str(pyproject)))
            except ConvcheckConfigError as error:
                errors[name] = str(error)
    for line in ini_lines or ():
        try:
            name, table = table_from_ini_line(line)
            models.append(model_from_table(name, table, "ini option convcheck_models"))
        except ConvcheckConfigError as error:
            errors[line.split()[0] if line.split() else "convcheck_models"] = str(error)
    if cli_models:
        if cli_input is None:
            raise ConvcheckConfigError(
                "--convcheck-model needs --convcheck-input, e.g. --convcheck-input 2,1,28,28"
            )
        for factory in cli_models:
            name = factory.rsplit(":", 1)[-1]
            try:
                models.append(
                    model_from_table(name, {"factory": factory, "input": cli_input}, "command line")
                )
            except ConvcheckConfigError as error:
                errors[name] = str(error)
    return models, errors
