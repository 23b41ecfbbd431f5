"""Index bounds of advanced indexing, which meta tensors do not check.

``x[..., [0, 2, 9]]`` and ``x.index_select(-1, idx)`` raise ``IndexError`` on CPU
when an index is out of range for its dim (``-size ≤ i < size``, the
``Tensor.__getitem__`` and ``torch.index_select`` docs). On meta the op has no
data to read and returns a shape whatever the indices: a trace would pass a
width at which the model fails. :func:`index_out_of_range` reads the index as
torch places it and checks it against the input's shape:

* each item of a ``getitem`` index consumes dims in order: an int, a slice, a
  list of ints or an integer tensor one; a bool tensor as many as it has; ``...``
  the rest; ``None`` none;
* a list of ints (nested lists too) is checked value by value; an integer tensor
  when its values are there (a constant made in ``forward`` lives on the CPU); a
  tensor of the traced graph (on meta) cannot be, and is reported as unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytest_convcheck.errors import problem
from pytest_convcheck.layers.base import Shape, is_int

__all__ = [
    "INDEXING",
    "IndexCheck",
    "OutOfRange",
    "index_out_of_range",
    "indexed_dims",
    "unknown_index_dims",
]

#: the ops whose index bounds :func:`index_out_of_range` checks (as ``op_name`` spells them)
INDEXING = frozenset({"getitem", "index_select"})

IndexCheck = tuple[int, Any]
"""``(dim, item)``: an advanced index item and the input dim it indexes."""


def indexed_dims(
    op: str, args: Sequence[Any], kwargs: dict[str, Any], rank: int
) -> list[IndexCheck]:
    """The advanced index items of a ``getitem`` or ``index_select`` call on a tensor
    of ``rank`` dims, with the dim each indexes (``[]`` for any other call, or an
    index of a form not read here)."""
    if op == "index_select":
        dim: Any = args[1] if len(args) > 1 else kwargs.get("dim")
        index = args[2] if len(args) > 2 else kwargs.get("index")
        if not is_int(dim) or not -rank <= int(dim) < rank or index is None:
            return []
        return [(int(dim) % rank, index)]
    if op != "getitem" or len(args) < 2:
        return []
    items = args[1] if isinstance(args[1], tuple) else (args[1],)
    consumed = []
    for item in items:
        if item is None:
            consumed.append(0)
        elif item is Ellipsis:
            consumed.append(-1)
        elif isinstance(item, torch.Tensor) and item.dtype == torch.bool:
            consumed.append(max(item.dim(), 1))
        else:
            consumed.append(1)
    if consumed.count(-1) > 1:
        return []
    rest = rank - sum(c for c in consumed if c > 0)
    found: list[IndexCheck] = []
    dim = 0
    for item, count in zip(items, consumed, strict=True):
        if count == -1:
            dim += max(rest, 0)
            continue
        if isinstance(item, list) or (
            isinstance(item, torch.Tensor) and item.dtype not in (torch.bool, torch.uint8)
        ):
            found.append((dim, item))
        dim += count
    return found if dim <= rank else []


def _extremes(item: Any) -> tuple[int, int] | bool | None:
    """The smallest and largest index in ``item``; ``False`` for a tensor without
    values (on meta); ``None`` for an empty or unreadable item."""
    if isinstance(item, torch.Tensor):
        if item.device.type == "meta" or item.is_floating_point() or item.is_complex():
            return False
        if item.numel() == 0:
            return None
        return int(item.min()), int(item.max())
    values: list[int] = []
    stack = [item]
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif is_int(value):
            values.append(int(value))
        else:
            return None
    return (min(values), max(values)) if values else None


@dataclass(frozen=True)
class OutOfRange:
    """An index out of range: ``index`` along ``dim``, of size ``size``."""

    index: int
    dim: int
    size: int

    def message(self, op: str, where: str, shape: Shape) -> str:
        return problem(
            f"{op} in {where}",
            f"index {self.index} is out of range for dim {self.dim} of size {self.size} "
            f"(input {tuple(shape)}; an index must lie in {-self.size}…{self.size - 1}); "
            f"torch raises IndexError here, meta tensors do not check.",
            fix="index within the tensor's size at this input, or feed an input whose "
            f"dim {self.dim} has more than {max(self.index, -self.index - 1)} positions.",
        )


def index_out_of_range(
    op: str, args: Sequence[Any], kwargs: dict[str, Any], shape: Shape
) -> OutOfRange | None:
    """For a ``getitem``/``index_select`` call on a tensor of ``shape``, the first
    index out of range; ``None`` when every index whose values are known is in
    range (or the call is of another kind)."""
    for dim, item in indexed_dims(op, args, kwargs, len(shape)):
        found = _extremes(item)
        if not isinstance(found, tuple) or dim >= len(shape):
            continue
        low, high = found
        size = shape[dim]
        if high >= size:
            return OutOfRange(high, dim, size)
        if low < -size:
            return OutOfRange(low, dim, size)
    return None


def unknown_index_dims(
    op: str, args: Sequence[Any], kwargs: dict[str, Any], rank: int
) -> list[int]:
    """The dims indexed by an integer tensor whose values are not there (on meta: a
    tensor of the traced graph, or a recorded call replayed on empty tensors)."""
    return [
        dim
        for dim, item in indexed_dims(op, args, kwargs, rank)
        if isinstance(item, torch.Tensor) and _extremes(item) is False
    ]
