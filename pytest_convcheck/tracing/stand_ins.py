"""Outputs made without running an op on meta: :func:`concatenated` for
``torch.cat`` and :func:`empty_like_output` for the calls a rule stands in for
(:attr:`~pytest_convcheck.layers.table.Rule.trusted_on_meta`). On torch 2.13 the
meta kernels of these ops are Python decompositions whose first call in a process
imports ``torch._dynamo`` (0.7 s); each stand-in is exactly what torch would return
(shape, dtype, device, row-major strides) or ``None``, and then the op runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pytest_convcheck.errors import ShapeError
from pytest_convcheck.layers import Shape, concatenated_shape
from pytest_convcheck.tracing.tensors import is_row_major

#: ``torch.cat`` and its aliases (see :func:`concatenated`)
CONCATENATIONS = frozenset({"cat", "concat", "concatenate"})


def empty_like_output(shape: Shape, like: torch.Tensor) -> torch.Tensor | None:
    """An empty tensor of ``shape`` with ``like``'s dtype and device, standing in for
    a trusted op's output; ``None`` where torch cannot make one (a size past its
    limits): the op then runs and torch says what is wrong."""
    try:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    except (RuntimeError, TypeError, ValueError, OverflowError):
        return None


def cat_arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Sequence[Any], int] | None:
    """The parts and the ``dim`` of a ``torch.cat(tensors, dim)`` call (the parts as
    given: tensors, or a recorded call's slots); ``None`` for any other form (``out=``,
    a named dim, no parts)."""
    if set(kwargs) - {"tensors", "dim"} or len(args) > 2:
        return None
    parts = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if type(dim) is not int or not isinstance(parts, (list, tuple)) or not parts:
        return None
    return parts, dim


def concatenated(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``torch.cat(tensors, dim)`` of tensors of one dtype and device with row-major
    strides (torch keeps channels-last inputs channels-last; see
    :func:`~pytest_convcheck.tracing.tensors.is_row_major`): an empty tensor of the
    concatenated shape (see :func:`~pytest_convcheck.layers.concatenated_shape`), as
    torch's would be. Any other call (mixed dtypes or layouts, ``out=``, a legacy
    empty 1-D tensor, sizes that do not fit) is left to torch, which runs it or says
    what is wrong. On torch 2.13 the meta kernel of ``cat`` imports ``torch._dynamo``
    on first use (0.7 s)."""
    bound = cat_arguments(args, kwargs)
    if bound is None:
        return None
    tensors, dim = bound
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    first = tensors[0]
    if any(
        t.dtype != first.dtype or t.device != first.device or not is_row_major(t) for t in tensors
    ):
        return None
    try:
        shape = concatenated_shape("cat", [tuple(t.shape) for t in tensors], dim)
    except ShapeError:
        return None
    return torch.empty(shape, dtype=first.dtype, device=first.device)
