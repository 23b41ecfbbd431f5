"""Small helpers on tensors and the values that hold them: the tensors of nested
arguments (:func:`tensors_of`, :func:`first_tensor`), the tensors of a forward's
result with their places (:func:`output_leaves`), shapes as text
(:func:`format_shape`), row-major strides (:func:`is_row_major`) and the short names
of torch functions (:func:`op_name`)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from pytest_convcheck.layers.base import row_major_strides


def is_row_major(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` has exactly the strides ``torch.empty`` gives its shape —
    stricter than ``is_contiguous()``, which a channels-last tensor with one channel
    or a 1×1 image also passes, and whose outputs torch keeps channels-last."""
    return tensor.stride() == row_major_strides(tensor.shape)


def format_shape(shape: Any) -> str:
    """A shape as text: ``1×3×8×8``; ``—`` for none, ``scalar`` for ``()``, several
    shapes joined by commas."""
    if shape is None:
        return "—"
    if shape and isinstance(shape[0], (tuple, list)):  # several outputs (lists from JSON)
        return ", ".join(format_shape(s) for s in shape)
    return "×".join(str(s) for s in shape) if shape else "scalar"


def tensors_of(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value`` (nested tuples, lists and dict values), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        found: list[torch.Tensor] = []
        for item in value:
            if isinstance(item, torch.Tensor):
                found.append(item)
            elif isinstance(item, (tuple, list, dict)):
                found += tensors_of(item)
        return found
    if isinstance(value, dict):
        return tensors_of(list(value.values()))
    return []


def first_tensor(value: Any) -> torch.Tensor | None:
    """``value`` itself if it is a tensor, else the first of :func:`tensors_of`."""
    if isinstance(value, torch.Tensor):
        return value
    found = tensors_of(value)
    return found[0] if found else None


def op_name(func: Callable[..., Any]) -> str:
    """``F.max_pool2d`` → ``max_pool2d``, ``Tensor.__add__`` → ``add``, ``__iadd__`` → ``add_``
    (cached per function: :func:`op_name_of`; unhashable callables are named each time)."""
    try:
        return op_name_of(func)
    except TypeError:
        return _compute_op_name(func)


@functools.lru_cache(maxsize=4096)
def op_name_of(func: Callable[..., Any]) -> str:
    """:func:`op_name` of a hashable function, cached (``op_name_of.cache_clear()``)."""
    return _compute_op_name(func)


def _compute_op_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None) or str(func)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in ("add", "sub", "mul", "truediv"):
            name = name[1:] + ("_" if name[0] == "i" else "")
    return name.replace("truediv", "div")


def output_leaves(value: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a forward's result with its place (``""`` for the result
    itself): tuples and lists, mappings (``transformers``' ``ModelOutput`` is one),
    dataclasses (by field), and other objects with ``to_tuple()``."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from output_leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from output_leaves(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from output_leaves(getattr(value, item.name, None), f"{path}.{item.name}")
    elif callable(getattr(value, "to_tuple", None)):
        yield from output_leaves(tuple(value.to_tuple()), path)


def named_output_leaves(value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """:func:`output_leaves`, the result itself named ``output``."""
    for path, tensor in output_leaves(value):
        yield path or "output", tensor
