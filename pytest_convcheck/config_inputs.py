"""The forms a configured model's input and expected output take in
``pyproject.toml``, an ini line or ``--convcheck-input``, validated without torch.

``input`` is one shape (``[2, 1, 28, 28]``, ``"2,1,28,28"``, ``"2x1x28x28"``), a list
of shapes or tables (positional inputs), a table of them by name (keyword inputs),
or the one-line forms ``2,3,32,32;2,1,32,32`` and ``sample=2,4,32,32;timestep=2:int64``;
a table gives ``shape`` and optionally ``dtype``, ``low`` and ``high``.
:mod:`pytest_convcheck.inputs` builds the tensors from these descriptions.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_convcheck.errors import ConvcheckConfigError


def _size(value: Any) -> int:
    """One entry of a shape: an int (not a bool, not a float such as 16.5 or 16.0,
    which would be truncated silently), or the digits of one."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(value)


def parse_shape(value: Any, where: str, key: str) -> tuple[int, ...]:
    """``value`` (a list of sizes, or ``"2,1,28,28"``, ``"2x1x28x28"``,
    ``"2×1×28×28"``) as a shape of sizes ≥ 1; anything else is a
    :class:`ConvcheckConfigError` naming ``where`` and ``key``."""
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


def parse_expected_output(value: Any, where: str) -> Any:
    """One shape, one shape per output (a list of lists), or a table of them by the
    output's key (a model returning a dict); nested as the output is."""
    if isinstance(value, dict):
        return {str(k): parse_expected_output(v, where) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, (list, dict)) for v in value):
        return tuple(parse_expected_output(v, where) for v in value)
    return parse_shape(value, where, "expect_output")


DTYPE_NAMES = frozenset(
    {
        *("float", "float32", "float64", "double", "float16", "half", "bfloat16"),
        *("int", "int64", "long", "int32", "int16", "int8", "uint8", "bool"),
    }
)
"""The dtype names an input may give (``pytest_convcheck.inputs`` maps them)."""


def plain(value: Any) -> Any:
    """A parsed description as the user wrote it (tuples as lists), for messages."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
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
        table: dict[str, Any] = {"shape": parse_shape(value["shape"], where, f"{key}.shape")}
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
    return parse_shape(value, where, key)


def parse_inputs(value: Any, where: str) -> tuple[tuple[int, ...], Any]:
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
        return parse_shape(value, where, "input"), None
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
