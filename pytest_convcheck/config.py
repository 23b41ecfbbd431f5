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
        return str(_plain(self.inputs))


def _size(value: Any) -> int:
    """One entry of a shape: an int (not a bool, not a float such as 16.5 or 16.0,
    which would be truncated silently), or the digits of one."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(value)


def _shape(value: Any, where: str, key: str) -> tuple[int, ...]:
    if isinstance(value, str):  # "2,1,28,28", "2x1x28x28" or "2×1×28×28"
        value = [v.strip() for v in re.split(r"[,x×]", value.strip())]
    try:
        if isinstance(value, (dict, bytes)):
            raise TypeError(value)
        shape = tuple(_size(v) for v in value)
    except TypeError as error:
        entry = error.args[0] if error.args and error.args[0] is not value else None
        what = (
            f" ({entry!r} is a {type(entry).__name__}, not an int)"
            if entry is not None and not isinstance(entry, str)
            else ""
        )
        raise ConvcheckConfigError(
            f"{where}: {key} must be a list of ints such as [1, 1, 28, 28], got {value!r}"
            f"{what}.\n  fix: write every size as a whole number, e.g. [2, 1, 16, 16]."
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ConvcheckConfigError(
            f"{where}: {key} must be non-empty with sizes ≥ 1, got {list(shape)}.\n  fix: give "
            f"every axis, batch and channels included, a size of at least 1, e.g. [1, 1, 28, 28]."
        )
    return shape


def _expected(value: Any, where: str) -> Any:
    """One shape, one shape per output (a list of lists), or a table of them by the
    output's key (a model returning a dict); nested as the output is."""
    if isinstance(value, dict):
        return {str(k): _expected(v, where) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, (list, dict)) for v in value):
        return tuple(_expected(v, where) for v in value)
    return _shape(value, where, "expect_output")


DTYPE_NAMES = frozenset(
    {
        *("float", "float32", "float64", "double", "float16", "half", "bfloat16"),
        *("int", "int64", "long", "int32", "int16", "int8", "uint8", "bool"),
    }
)
"""The dtype names an input may give (``pytest_convcheck.inputs`` maps them)."""


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _one_input(value: Any, where: str, key: str) -> Any:
    """A shape, or a table ``{ shape = [...], dtype = "int64", low = 0, high = 1000 }``."""
    if isinstance(value, str) and ":" in value:  # 2:int64 (one-line forms)
        shape, _, dtype = value.partition(":")
        value = {"shape": shape, "dtype": dtype}
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"shape", "dtype", "low", "high"})
        if unknown or "shape" not in value:
            raise ConvcheckConfigError(
                f"{where}: {key} must be a shape or a table with shape (and dtype, low, "
                f"high), got {value!r}.\n  fix: e.g. {key} = {{ shape = [2], dtype = "
                f'"int64", high = 1000 }}.'
            )
        table: dict[str, Any] = {"shape": _shape(value["shape"], where, f"{key}.shape")}
        if "dtype" in value:
            dtype = str(value["dtype"]).removeprefix("torch.")
            if dtype not in DTYPE_NAMES:
                raise ConvcheckConfigError(
                    f"{where}: {key}.dtype {value['dtype']!r} is not a dtype.\n  fix: one of "
                    f"{', '.join(sorted(DTYPE_NAMES))}."
                )
            table["dtype"] = dtype
        for bound in ("low", "high"):
            if bound in value:
                number = value[bound]
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise ConvcheckConfigError(
                        f"{where}: {key}.{bound} must be a number, got {number!r}.\n  fix: "
                        f"e.g. high = 1000 (integer inputs draw from low ≤ x < high)."
                    )
                table[bound] = number
        return table
    return _shape(value, where, key)


def _inputs(value: Any, where: str) -> tuple[tuple[int, ...], Any]:
    """``input`` as (the primary input's shape, the description of several inputs or
    ``None`` for one plain shape): a shape, a list of shapes or tables (positional),
    a table of them by name (keyword), or the one-line forms ``a;b`` and
    ``name=shape:dtype;…``."""
    if isinstance(value, str) and (";" in value or "=" in value or ":" in value):
        parts = [p.strip() for p in value.split(";") if p.strip()]
        named = ["=" in p for p in parts]
        if any(named) and not all(named):
            raise ConvcheckConfigError(
                f"{where}: input {value!r} mixes named and positional inputs.\n  fix: name "
                f"every input (sample=2,4,32,32;timestep=2:int64) or none (2,3,32,32;2,1,32,32)."
            )
        if all(named):
            value = {p.partition("=")[0].strip(): p.partition("=")[2].strip() for p in parts}
        elif len(parts) > 1 or ":" in value:
            value = parts
        else:
            value = parts[0]
    if isinstance(value, dict):
        if not value:
            raise ConvcheckConfigError(
                f"{where}: input is an empty table.\n  fix: name each input with its shape, "
                f"e.g. input = {{ sample = [2, 4, 32, 32] }}."
            )
        described: Any = {str(k): _one_input(v, where, f"input.{k}") for k, v in value.items()}
    elif isinstance(value, list) and value and all(isinstance(v, (list, dict, str)) for v in value):
        described = [_one_input(v, where, f"input[{i}]") for i, v in enumerate(value)]
    else:
        return _shape(value, where, "input"), None
    return _primary_shape(described), described


def _primary_shape(described: Any) -> tuple[int, ...]:
    """The shape of the input that shape-based analyses read: the first floating one
    with spatial dims (N, C, ...), else the first floating, else the first (the rule
    of ``pytest_convcheck.inputs``, without importing torch)."""
    entries = list(described.values()) if isinstance(described, dict) else list(described)
    shapes = []
    for entry in entries:
        if isinstance(entry, dict):
            floating = entry.get("dtype", "float") in (
                "float",
                "float32",
                "float64",
                "double",
                "float16",
                "half",
                "bfloat16",
            )
            shapes.append((tuple(entry["shape"]), floating))
        else:
            shapes.append((tuple(entry), True))
    for shape, floating in shapes:
        if floating and len(shape) >= 3:
            return shape
    for shape, floating in shapes:
        if floating:
            return shape
    return shapes[0][0]


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
        input_shape, described = _inputs(table["input"], where)
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
        _expected(expect, where) if expect is not None else None,
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
        plain = [m for m, s in zip(cli_models, suffixed, strict=True) if not s]
        given = iter(_cli_inputs(plain, cli_input)) if plain else iter(())
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


# --------------------------------------------------------------------------- factories


def _project_folders(root: Path | None) -> list[Path]:
    """Where a project keeps its importable code: the root and, in a src layout,
    ``root/src``."""
    if root is None:
        return []
    folders = [root]
    if (root / "src").is_dir():
        folders.append(root / "src")
    return folders


def _defines(folder: Path, top: str) -> bool:
    return (
        (folder / f"{top}.py").is_file()
        or (folder / top / "__init__.py").is_file()
        or ((folder / top).is_dir() and any((folder / top).glob("*.py")))
    )


def _importable_names(folders: list[Path]) -> list[str]:
    """Top-level modules and packages in the project's folders."""
    names: set[str] = set()
    for folder in folders:
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.suffix == ".py" and path.stem.isidentifier():
                names.add(path.stem)
            elif path.is_dir() and path.name.isidentifier() and any(path.glob("*.py")):
                names.add(path.name)
    return sorted(names - {"conftest", "setup", "noxfile"})


def _close(word: str, candidates: list[str]) -> str:
    """`` Did you mean 'X'?`` when ``word`` is a likely typo of a candidate."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    found = [lowered[word.lower()]] if word.lower() in lowered else []
    found = found or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" Did you mean {found[0]!r}?" if found else ""


def _submodules(module: Any) -> list[str]:
    import pkgutil

    return [info.name for info in pkgutil.iter_modules(getattr(module, "__path__", None) or [])]


def _import_error(
    config: ModelConfig,
    module_name: str,
    error: ImportError,
    folders: list[Path],
    what: str = "factory",
    target: str = "",
) -> ConvcheckConfigError:
    """Why ``module_name`` does not import, what was searched, and the likely fix."""
    import importlib

    missing = getattr(error, "name", None) or module_name
    own = module_name == missing or module_name.startswith(f"{missing}.")
    searched = ", ".join(str(f) for f in folders) or "sys.path"
    if not own:  # the module exists and imports something that is missing
        return ConvcheckConfigError(
            f"model {config.name!r}: importing {module_name!r} ({what} {target!r}) "
            f"failed: {error}.\n  fix: install {missing!r} in this environment (pip install "
            f"{missing.split('.')[0]}), or make {module_name!r} importable without it."
        )
    parent, _, leaf = missing.rpartition(".")
    hint = ""
    if parent:
        try:
            hint = _close(leaf, _submodules(importlib.import_module(parent)))
        except Exception:
            hint = ""
    else:
        hint = _close(missing, _importable_names(folders))
    where = (
        "the command line"
        if config.source == "command line"
        else "the ini option convcheck_models"
        if config.source.startswith("ini")
        else config.source
    )
    if config.source == "command line":
        fix = (
            f"run pytest from the folder that holds {missing.split('.')[0]!r} (its .py file or "
            f"package folder), or install the project (pip install -e .), or name the module "
            f"as Python imports it"
        )
    else:
        fix = (
            f"put {missing.replace('.', '/')}.py (or the package folder) under {searched}, "
            f"install the project (pip install -e .), or correct the {what} path in {where}"
        )
    return ConvcheckConfigError(
        f"model {config.name!r}: cannot import {module_name!r} for {what} {target!r}: no "
        f"module named {missing!r} in the project folder ({searched}) or the installed "
        f"packages.{hint}\n  fix: {fix}."
    )


def user_frames(error: BaseException, limit: int = 3) -> str:
    """The last frames of ``error``'s traceback outside pytest-convcheck."""
    import traceback

    here = str(Path(__file__).parent)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if here not in f.filename]
    lines = [
        f"    {f.filename}:{f.lineno} in {f.name}" + (f": {f.line.strip()}" if f.line else "")
        for f in frames[-limit:]
    ]
    return ("\n  where:\n" + "\n".join(lines)) if lines else ""


def _import(config: ModelConfig, module_name: str, what: str = "factory", target: str = "") -> Any:
    """``import module_name``; an ``ImportError`` passes through, anything else the
    module's own code raises (or ``sys.exit``) is a :class:`ConvcheckConfigError`."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise
    except SystemExit as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: importing {module_name!r} ({what} {target!r}) "
            f"called sys.exit({error.code!r}).\n  fix: keep script code under "
            f'`if __name__ == "__main__":` so that importing the module runs none of it.'
        ) from None
    except Exception as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: importing {module_name!r} ({what} {target!r}) "
            f"raised {type(error).__name__}: {error}{user_frames(error)}\n  fix: make the "
            f"module importable on its own."
        ) from None


HUBS = {
    "timm": ("timm", "timm.create_model(NAME, pretrained=False, **kwargs)"),
    "torchvision": ("torchvision", "torchvision.models.get_model(NAME, weights=None, **kwargs)"),
}
"""Factory prefixes that name a model of a library (random weights, nothing
downloaded): ``timm:resnet18``, ``torchvision:resnet18``."""


def _hub_factory(config: ModelConfig, hub: str, name: str) -> Any:
    """A factory building ``name`` from the library ``hub`` with random weights."""
    import importlib

    package, how = HUBS[hub]
    try:
        library = importlib.import_module(package)
        if hub == "torchvision":
            importlib.import_module("torchvision.models")
    except ImportError as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory '{hub}:{name}' needs {package!r}, which does not "
            f"import here ({error}).\n  fix: pip install {package} (into an environment that "
            f"already has torch, e.g. pip install --no-deps {package} plus its small "
            f"dependencies, so that pip keeps your torch build)."
        ) from None
    if hub == "timm":
        known = library.list_models()
        if name not in known:
            raise ConvcheckConfigError(
                f"model {config.name!r}: timm has no model {name!r}."
                f"{_close(name, list(known))}\n  fix: pick a name from timm.list_models()."
            )

        def build(**kwargs: Any) -> Any:
            return library.create_model(name, pretrained=False, **kwargs)

    else:
        models = library.models
        known = list(models.list_models())
        if name not in known:
            raise ConvcheckConfigError(
                f"model {config.name!r}: torchvision has no model {name!r}."
                f"{_close(name, known)}\n  fix: pick a name from "
                f"torchvision.models.list_models()."
            )

        def build(**kwargs: Any) -> Any:
            return models.get_model(name, weights=None, **kwargs)

    build.__name__ = name
    build.__doc__ = how.replace("NAME", repr(name))
    return build


def _from_file(config: ModelConfig, path_text: str, attr: str, what: str, target: str) -> Any:
    """``path/to/file.py:Name``: the file (relative to :attr:`ModelConfig.root`) loaded
    as a module of its own, and ``Name`` in it."""
    import importlib.util
    import sys

    path = Path(path_text).expanduser()
    if not path.is_absolute() and config.root is not None:
        path = config.root / path
    if not path.is_file():
        raise ConvcheckConfigError(
            f"model {config.name!r}: {what} {target!r}: no file at {path}.\n  fix: give the "
            f"file's path relative to {config.root or 'the working folder'}, or a module path "
            f"(mypkg.models:Net)."
        )
    module_name = f"_convcheck_file_{abs(hash(str(path.resolve())))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConvcheckConfigError(
                f"model {config.name!r}: {what} {target!r}: {path} is not a Python file.\n  "
                f"fix: point it at a .py file."
            )
        module = importlib.util.module_from_spec(spec)
        if str(path.parent) not in sys.path:  # its sibling modules import as in a script
            sys.path.append(str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise ConvcheckConfigError(
                f"model {config.name!r}: running {path} ({what} {target!r}) raised "
                f"{type(error).__name__}: {error}{user_frames(error)}\n  fix: make the file "
                f"importable on its own."
            ) from None
        sys.modules[module_name] = module
    found = getattr(module, attr, None)
    if found is None or not callable(found):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConvcheckConfigError(
            f"model {config.name!r}: {path} defines no callable {attr!r}.{_close(attr, names)}"
            f"\n  fix: point {what} at a class or function of that file."
        )
    return found


def import_factory(config: ModelConfig) -> Any:
    """The callable that ``config.factory`` names (see :func:`import_object`)."""
    return import_object(config, config.factory, "factory")


def import_object(config: ModelConfig, target: str, what: str) -> Any:
    """The callable that ``target`` (``module:name``) names, imported the way the user expects of
    a project-relative path: from the installed packages, else from the project's
    folder (:attr:`ModelConfig.root`, and ``root/src``), which is then added to the
    end of ``sys.path`` (so later imports inside the module find their siblings).
    Raises :class:`ConvcheckConfigError` with what was searched and, for a typo, the
    nearest name ("did you mean 'SmallClassifier'?")."""
    import importlib
    import sys

    module_name, _, attr = target.partition(":")
    if what == "factory" and module_name in HUBS:
        return _hub_factory(config, module_name, attr)
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        return _from_file(config, module_name, attr, what, target)
    folders = _project_folders(config.root)
    top = module_name.split(".")[0]
    try:
        module = _import(config, module_name, what, target)
    except ImportError as error:
        home = next((f for f in folders if _defines(f, top)), None)
        if home is None or str(home) in sys.path or getattr(error, "name", None) != top:
            raise _import_error(config, module_name, error, folders, what, target) from None
        sys.path.append(str(home))
        importlib.invalidate_caches()
        try:
            module = _import(config, module_name, what, target)
        except ImportError as again:
            raise _import_error(config, module_name, again, folders, what, target) from None
    found: Any = module
    for depth, part in enumerate(attr.split(".")):
        try:
            found = getattr(found, part)
        except AttributeError:
            owner = ".".join([module_name, *attr.split(".")[:depth]])
            names = [n for n in dir(found) if not n.startswith("_")]
            defined = [
                n
                for n in names
                if callable(getattr(found, n, None))
                and getattr(getattr(found, n, None), "__module__", None) == module_name
            ]
            hint = _close(part, names)
            listing = f" It defines: {', '.join(defined[:8])}." if defined and not hint else ""
            raise ConvcheckConfigError(
                f"model {config.name!r}: {owner!r} has no attribute {part!r} ({what} "
                f"{target!r}).{hint}{listing}\n  fix: point {what} at a class or function "
                f"that {owner!r} defines (check the spelling after the colon)."
            ) from None
    if not callable(found):
        raise ConvcheckConfigError(
            f"model {config.name!r}: {what} {target!r} is not callable.\n  fix: point {what} at "
            + (
                "a class or a function that returns the model."
                if what == "factory"
                else "a function returning (args, kwargs)."
            )
        )
    return found
