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

A forward with several inputs (see :mod:`pytest_convcheck.inputs`)::

    input = [[2, 3, 32, 32], [2, 1, 32, 32]]                       # positional
    input = { sample = [2, 4, 32, 32], timestep = { shape = [2], dtype = "int64" } }
    example_inputs = "mypkg.models:example_inputs"                  # anything else

and on one line (ini, ``--convcheck-input``): ``2,3,32,32;2,1,32,32`` (positional),
``sample=2,4,32,32;timestep=2:int64`` (by name, ``:dtype`` for non-float inputs).

This module holds :class:`ModelConfig` and the reading of those sources into it:
one ``[tool.convcheck.models.NAME]`` table (:func:`model_from_table`), one line of
the ``convcheck_models`` ini option (:func:`table_from_ini_line`) and all of them
together (:func:`load_models`). The input forms are validated by
:mod:`pytest_convcheck.config_inputs`, the factories imported by
:mod:`pytest_convcheck.config_imports`; their public names are importable from
here as well.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_convcheck.config_imports import HUBS, import_factory, import_object, user_frames
from pytest_convcheck.config_inputs import (
    DTYPE_NAMES,
    parse_expected_output,
    parse_inputs,
    plain,
)
from pytest_convcheck.errors import ConvcheckConfigError

__all__ = [
    "AVAILABLE_CHECKS",
    "CHECKERBOARD_KINDS",
    "DTYPE_NAMES",
    "HUBS",
    "ModelConfig",
    "check_name",
    "import_factory",
    "import_object",
    "load_models",
    "model_from_table",
    "safe_name",
    "table_from_ini_line",
    "user_frames",
]

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
    "example_inputs",
    "expect_output",
    "checks",
    "allow",
    "receptive_field_min",
    "receptive_field_max",
    "receptive_field_exact",
    "receptive_field_statistics",
    "checkerboard_kinds",
    "sharing_allow",
    "kwargs",
    "timeout",
    "weights",
}
CHECKERBOARD_KINDS = ("structural", "weights", "output", "gradient")


@dataclass(frozen=True)
class ModelConfig:
    """One model to check: where to get it, its input, and what to check."""

    name: str
    factory: str
    input_shape: tuple[int, ...]  # the primary input's shape (() with example_inputs)
    expect_output: Any = None  # a shape, one per output, or a table of them by name
    checks: tuple[str, ...] = AVAILABLE_CHECKS
    allow: frozenset[str] = field(default_factory=frozenset)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "pyproject.toml"
    inputs: Any = None  # several inputs: a list (positional) or a dict (by name)
    example_inputs: str | None = None  # "module:function" returning (args, kwargs)
    root: Path | None = None  # where factories and weights resolve (the project's folder)

    @property
    def weights(self) -> Path | None:
        """The checkpoint of ``weights = "path.pt"``, resolved against :attr:`root`."""
        value = self.options.get("weights")
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() or self.root is None else self.root / path

    @property
    def description(self) -> Any:
        """What the checks take as ``input_shape`` (example_inputs aside)."""
        return self.inputs if self.inputs is not None else self.input_shape

    def input_text(self) -> str:
        """The input in messages: ``[2, 1, 28, 28]``, or every input."""
        if self.example_inputs and not self.input_shape:
            return f"example_inputs {self.example_inputs}"
        if not self.input_shape and self.inputs is None:
            return "inferred from the model"
        if self.inputs is None:
            return str(list(self.input_shape))
        return str(plain(self.inputs))


def _names(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConvcheckConfigError(
            f"{where}: {key} must be a list of check names, got {value!r}.\n  fix: e.g. "
            f'{key} = ["shapes", "batch"] (known: {", ".join(AVAILABLE_CHECKS)}).'
        )
    known = AVAILABLE_CHECKS
    for name in value:
        if name not in known:
            raise ConvcheckConfigError(
                f"{where}: unknown check {name!r} in {key}; known checks: {', '.join(known)}.\n"
                f"  fix: use one of the known names (or remove {name!r})."
            )
    return tuple(value)


_NAME = re.compile(r"\w[\w.+-]*")
"""A model name: it names the items (``convcheck::NAME::CHECK``), the snapshot file
and the pictures, so it holds no path separators, no ``::`` and no spaces."""


def safe_name(name: str) -> str:
    """``name`` as it may appear in a node id and a file name (for the item that
    reports a malformed name)."""
    return re.sub(r"[^\w.+-]", "_", name).lstrip(".") or "_"


def check_name(name: Any, source: str) -> str:
    """Refuse a model name that is empty or could leave the snapshot or picture
    folder (``../x``) or break the item's node id."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConvcheckConfigError(
            f"model name {name!r} in {source} is not usable: a name must be non-empty, start "
            f"with a letter, digit or _, and hold only letters, digits and _ . + - (it names "
            f"the items convcheck::NAME::CHECK and the files __snapshots__/convcheck/NAME.json "
            f"and the pictures).\n  fix: rename it, e.g. [tool.convcheck.models."
            f"{safe_name(str(name)).strip('_') or 'decoder'}]."
        )
    return name


def model_from_table(name: str, table: Any, source: str, root: Path | None = None) -> ModelConfig:
    """Validate one ``[tool.convcheck.models.NAME]`` table (``root``: the folder that
    factories and ``weights`` paths are relative to)."""
    where = f"[tool.convcheck.models.{name}] in {source}"
    check_name(name, source)
    if not isinstance(table, dict):
        raise ConvcheckConfigError(
            f"{where}: must be a table, got {type(table).__name__}.\n  fix: write the model as "
            f'a table:\n  [tool.convcheck.models.{name}]\n  factory = "mypkg.models:Net"\n'
            f"  input = [1, 1, 28, 28]"
        )
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConvcheckConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
            f"{', '.join(sorted(_KEYS))}.\n  fix: correct the spelling or remove the key."
        )
    if "factory" not in table:
        raise ConvcheckConfigError(
            f"{where}: missing 'factory'.\n  fix: name the model's class or function, e.g.\n"
            f'  factory = "mypkg.models:Net"   (or "timm:resnet18", "torchvision:resnet18",\n'
            f'  "path/to/file.py:Net")\n  input = [1, 1, 28, 28]   (optional: inferred from '
            f"the model when left out)"
        )
    factory = table["factory"]
    if not isinstance(factory, str) or ":" not in factory:
        raise ConvcheckConfigError(
            f"{where}: factory must be 'module.path:Name' (a class or a function returning an "
            f"nn.Module), got {factory!r}.\n  fix: separate the module from the name with a "
            f'colon, e.g. factory = "mypkg.models:Net".'
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
                    f"got {value!r}.\n  fix: e.g. {key} = 64 or {key} = [64, 32]."
                )
            options[key] = value
    if "receptive_field_statistics" in table:
        value = table["receptive_field_statistics"]
        if not isinstance(value, bool):
            raise ConvcheckConfigError(
                f"{where}: receptive_field_statistics must be true or false, got {value!r}.\n  "
                f"fix: receptive_field_statistics = true counts the statistics of GroupNorm / "
                f"InstanceNorm layers in the field (ini: receptive_field_statistics=true)."
            )
        options["receptive_field_statistics"] = value
    if "checkerboard_kinds" in table:
        kinds = table["checkerboard_kinds"]
        if (
            not isinstance(kinds, list)
            or not kinds
            or any(k not in CHECKERBOARD_KINDS for k in kinds)
        ):
            raise ConvcheckConfigError(
                f"{where}: checkerboard_kinds must be a non-empty list of "
                f"{', '.join(CHECKERBOARD_KINDS)}, got {kinds!r}.\n  fix: e.g. "
                f'checkerboard_kinds = ["structural", "weights"].'
            )
        options["checkerboard_kinds"] = tuple(kinds)
    if "sharing_allow" in table:
        names = table["sharing_allow"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConvcheckConfigError(
                f"{where}: sharing_allow must be a list of module names, got {names!r}.\n  fix: "
                f'e.g. sharing_allow = ["blocks"] (a module or the container holding it).'
            )
        options["sharing_allow"] = tuple(names)
    if "kwargs" in table:
        kwargs = table["kwargs"]
        if not isinstance(kwargs, dict) or not all(
            isinstance(k, str) and k.isidentifier() for k in kwargs
        ):
            raise ConvcheckConfigError(
                f"{where}: kwargs must be a table of keyword arguments for the factory, "
                f"got {kwargs!r}.\n  fix: e.g. kwargs = {{ num_classes = 10 }} (ini: "
                f"kwargs.num_classes=10)."
            )
        options["kwargs"] = dict(kwargs)
    example = table.get("example_inputs")
    if example is not None and (not isinstance(example, str) or ":" not in example):
        raise ConvcheckConfigError(
            f"{where}: example_inputs must be 'module.path:function', got {example!r}.\n  fix: "
            f"point it at a function returning (args, kwargs), e.g. example_inputs = "
            f'"mypkg.models:example_inputs".'
        )
    if "input" in table:
        input_shape, described = parse_inputs(table["input"], where)
    else:
        input_shape, described = (), None
    for key in ("receptive_field_min", "receptive_field_max", "receptive_field_exact"):
        value = options.get(key)
        if isinstance(value, list) and input_shape and len(value) != len(input_shape) - 2:
            raise ConvcheckConfigError(
                f"{where}: {key} = {value} has {len(value)} entries, but input "
                f"{list(input_shape)} has {max(0, len(input_shape) - 2)} spatial axes.\n  fix: "
                f"give one size for all axes ({key} = {value[0]}) or one per spatial axis."
            )
    if "timeout" in table:
        timeout = table["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConvcheckConfigError(
                f"{where}: timeout must be a positive number of seconds per check, got "
                f"{timeout!r}.\n  fix: e.g. timeout = 60 (or leave it out: --convcheck-timeout, "
                f"default 300 s)."
            )
        options["timeout"] = float(timeout)
    if "weights" in table:
        weights = table["weights"]
        if not isinstance(weights, str) or not weights.strip():
            raise ConvcheckConfigError(
                f"{where}: weights must be the path of a checkpoint (a state dict saved with "
                f'torch.save), got {weights!r}.\n  fix: e.g. weights = "checkpoints/decoder.pt" '
                f"(relative to the folder of pyproject.toml; loaded with weights_only=True)."
            )
        options["weights"] = weights.strip()
    return ModelConfig(
        name,
        factory,
        input_shape,
        parse_expected_output(expect, where) if expect is not None else None,
        checks,
        frozenset(allow),
        options,
        source,
        described,
        example,
        root,
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
            f"[key=value ...].\n  fix: e.g. 'decoder mypkg.models:Decoder 2,1,28,28'."
        )
    name, factory, shape, *options = parts
    table: dict[str, Any] = {"factory": factory, "input": shape}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ConvcheckConfigError(
                f"convcheck_models line {line!r}: {option!r} is not key=value.\n  fix: write "
                f"options as key=value without spaces, e.g. checks=shapes,batch."
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
        elif key == "timeout":
            try:
                table[key] = float(value)
            except ValueError:
                table[key] = value  # model_from_table reports it
        elif key == "receptive_field_statistics":
            lowered = value.lower()
            table[key] = {"true": True, "false": False}.get(lowered, value)
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


def _tool_section(data: dict[str, Any], pyproject: Path) -> dict[str, Any]:
    """``[tool.convcheck]`` of a parsed ``pyproject.toml`` (empty when absent); a
    section of the wrong kind (``convcheck = "yes"``, ``[[tool.convcheck]]``) is a
    :class:`ConvcheckConfigError`."""
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConvcheckConfigError(
            f"{pyproject}: 'tool' must be a table, got {type(tool).__name__} {tool!r}.\n  fix: "
            f"remove that key; tools are configured under [tool.NAME] tables."
        )
    section = tool.get("convcheck", {})
    if not isinstance(section, dict):
        kind = (
            "an array of tables [[tool.convcheck]]"
            if isinstance(section, list)
            else (f"{type(section).__name__} {section!r}")
        )
        raise ConvcheckConfigError(
            f"{pyproject}: [tool.convcheck] must be a table holding [tool.convcheck.models.NAME] "
            f"tables, got {kind}.\n  fix: write one table per model:\n"
            f'  [tool.convcheck.models.decoder]\n  factory = "mypkg.models:Decoder"\n'
            f"  input = [1, 1, 28, 28]"
        )
    unknown = sorted(set(section) - {"models"})
    if unknown:
        raise ConvcheckConfigError(
            f"{pyproject}: unknown key(s) {', '.join(unknown)} in [tool.convcheck]; it holds "
            f"only [tool.convcheck.models.NAME] tables.\n  fix: put each model under "
            f"[tool.convcheck.models.NAME] (models, plural)."
        )
    return section


def _cli_names(factories: list[str], taken: set[str]) -> list[str]:
    """Distinct names for ``--convcheck-model`` factories: the factory's own name
    (``Net`` for ``pkg.a:Net``), or, where two share it or a configured model has
    it, the dotted path (``pkg.a.Net``), then a counter (``pkg.a.Net-2``)."""
    factories = [f.partition("@")[0] for f in factories]
    short = [f.rsplit(":", 1)[-1] for f in factories]
    names: list[str] = []
    for factory, name in zip(factories, short, strict=True):
        if short.count(name) > 1 or name in taken:
            name = factory.replace(":", ".")
        candidate, count = name, 1
        while candidate in taken or candidate in names:
            count += 1
            candidate = f"{name}-{count}"
        names.append(candidate)
    return names


def _cli_inputs(cli_models: list[str], cli_input: str | list[str] | None) -> list[str | None]:
    """One input per ``--convcheck-model``: its own ``@shape`` suffix, else a single
    ``--convcheck-input`` for all of them, or one each, paired in order, else none
    (inferred from the model)."""
    inputs: list[str | None] = [cli_input] if isinstance(cli_input, str) else list(cli_input or [])
    suffixed = ["@" in m for m in cli_models]
    if any(suffixed):
        bare = [m for m, s in zip(cli_models, suffixed, strict=True) if not s]
        given = iter(_cli_inputs(bare, cli_input)) if bare else iter(())
        return [
            m.partition("@")[2] if s else next(given)
            for m, s in zip(cli_models, suffixed, strict=True)
        ]
    if not inputs:
        return [None] * len(cli_models)
    if len(inputs) == 1:
        return inputs * len(cli_models)
    if len(inputs) != len(cli_models):
        raise ConvcheckConfigError(
            f"{len(cli_models)} --convcheck-model options but {len(inputs)} --convcheck-input "
            f"options: give one input for all models, or one per model, in the same order "
            f"(--convcheck-model a:Net --convcheck-input 1,1,28,28 --convcheck-model b:Net "
            f"--convcheck-input 1,3,32,32)."
        )
    return inputs


def load_models(
    pyproject: Path | None,
    cli_models: list[str],
    cli_input: str | list[str] | None,
    ini_lines: list[str] | None = None,
    root: Path | None = None,
) -> tuple[list[ModelConfig], dict[str, str]]:
    """All configured models — the ``pyproject.toml`` tables, the ``convcheck_models``
    ini lines, then the command line —
    and, per model name, the error of each malformed table (the other models still
    load). A file that is not valid TOML or a malformed ``[tool.convcheck]``
    section raises :class:`ConvcheckConfigError`. A name given twice (a table and an
    ini line, or two ini lines) is an error naming both sources; command-line models
    get distinct names (:func:`_cli_names`). Factories and ``weights`` paths resolve
    against the folder of ``pyproject.toml`` for its tables, and against ``root``
    (pytest's rootdir) for ini lines and the command line."""
    found: list[tuple[str, ModelConfig | str, str]] = []  # name, model or error, source
    if pyproject is not None and pyproject.is_file():
        import tomllib  # only with --convcheck: plain pytest runs never pay for it

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConvcheckConfigError(f"{pyproject}: not valid TOML: {error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConvcheckConfigError(f"{pyproject}: cannot read it: {error}") from None
        section = _tool_section(data, pyproject)
        tables = section.get("models", {})
        if not isinstance(tables, dict):
            raise ConvcheckConfigError(
                f"[tool.convcheck.models] in {pyproject} must be a table of tables.\n  fix: write "
                f"one [tool.convcheck.models.NAME] table per model."
            )
        for name, table in tables.items():
            source = f"[tool.convcheck.models.{name}] in {pyproject}"
            try:
                found.append(
                    (name, model_from_table(name, table, str(pyproject), pyproject.parent), source)
                )
            except ConvcheckConfigError as error:
                found.append((name, str(error), source))
    for number, line in enumerate(ini_lines or (), 1):
        name = line.split()[0] if line.split() else "convcheck_models"
        source = f"line {number} of the ini option convcheck_models ({line.strip()!r})"
        try:
            name, table = table_from_ini_line(line)
            found.append(
                (
                    name,
                    model_from_table(name, table, "ini option convcheck_models", root),
                    source,
                )
            )
        except ConvcheckConfigError as error:
            found.append((name, str(error), source))
    if cli_models:
        taken = {name for name, _, _ in found}
        inputs = _cli_inputs(cli_models, cli_input)
        names = _cli_names(cli_models, taken)
        for factory, name, shape in zip(cli_models, names, inputs, strict=True):
            source = f"--convcheck-model {factory}"
            table = {"factory": factory.partition("@")[0]}
            if shape is not None:
                table["input"] = shape
            try:
                found.append((name, model_from_table(name, table, "command line", root), source))
            except ConvcheckConfigError as error:
                found.append((name, str(error), source))
    models: list[ModelConfig] = []
    errors: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for name, _, source in found:
        sources.setdefault(name, []).append(source)
    for name, value, _ in found:
        key = name if isinstance(name, str) and _NAME.fullmatch(name) else safe_name(str(name))
        if len(sources[name]) > 1:
            errors[key] = (
                f"model name {name!r} is configured {len(sources[name])} times: "
                + "; ".join(sources[name])
                + ".\n  fix: give each model its own name (or remove one of them)."
            )
        elif isinstance(value, str):
            errors[key] = value
        else:
            models.append(value)
    return models, errors
