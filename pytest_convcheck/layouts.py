"""The :class:`Layout` of a traced tensor: per dim, the *digits* its index is made
of, and per model-input spatial axis an :class:`~pytest_convcheck.axis_maps.AxisMap`
(see :mod:`pytest_convcheck.dependencies`, which moves them op by op); and the
digit arithmetic of a reshape (:func:`regroup`) and of a ``cat``'s parts
(:func:`concatenated_parts`, :func:`part_read`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_convcheck.axis_maps import AxisMap
from pytest_convcheck.effects import Join, Window

__all__ = [
    "OTHER",
    "Digit",
    "Dims",
    "Layout",
    "Shape",
    "concatenated_parts",
    "digits_size",
    "freeze_dims",
    "other_digits",
    "part_read",
    "regroup",
]

OTHER = -1
"""The axis of a digit that is no spatial coordinate (channels, batch, …)."""

Digit = tuple[int, int, int]  # (axis or OTHER, size, unit)
Dims = tuple[tuple[Digit, ...], ...]
Shape = tuple[int, ...]


def other_digits(size: int) -> tuple[Digit, ...]:
    return ((OTHER, size, 0),) if size > 1 else ()


def digits_size(digits: Sequence[Digit]) -> int:
    return math.prod(d[1] for d in digits)


@dataclass(frozen=True)
class Layout:
    """Digits per dim and a map per model-input spatial axis (see the module doc)."""

    dims: Dims
    maps: tuple[AxisMap, ...]
    last: tuple[int, ...] = ()  # per axis, the last input position read for real
    pieces: tuple[tuple[int, int, Layout], ...] = field(default=(), compare=False, repr=False)
    """After a ``cat`` along a dim without spatial digits (channels): per part, its
    index range ``[start, stop)`` along :attr:`pieces_dim` and its own layout, so
    that a slice that reads within one part gets that part's field, not the union
    (``cat([x, y], 1)[:, :c]``). Kept through ops that return their input's layout
    (activations, eval-mode BatchNorm); any other op drops it."""
    pieces_dim: int = -1

    @staticmethod
    def of_input(shape: Shape, spatial: int) -> Layout:
        rank = len(shape)
        dims: list[tuple[Digit, ...]] = []
        for d, size in enumerate(shape):
            axis = d - (rank - spatial)
            if axis >= 0:
                dims.append(((axis, size, 1),) if size > 1 else ())
            else:
                dims.append(other_digits(size))
        return Layout(
            tuple(dims),
            tuple(AxisMap.identity() for _ in range(spatial)),
            tuple(shape[rank - spatial :]) and tuple(s - 1 for s in shape[rank - spatial :]),
        )

    def shape(self) -> Shape:
        return tuple(digits_size(d) for d in self.dims)

    @functools.cached_property
    def plain_axes(self) -> frozenset[int]:
        """Axes whose coordinate is one dim's index (one digit of unit 1, alone in
        its dim), or that have no digit: their map reads as it is."""
        seen: dict[int, int] = {}
        plain: set[int] = set()
        for digits in self.dims:
            for axis, _, unit in digits:
                if axis >= 0:
                    seen[axis] = seen.get(axis, 0) + 1
                    if len(digits) == 1 and unit == 1:
                        plain.add(axis)
        return frozenset(
            a for a in range(len(self.maps)) if seen.get(a, 0) == 0 or (a in plain and seen[a] == 1)
        )

    def axis_dims(self, axis: int) -> list[int]:
        return [i for i, digits in enumerate(self.dims) if any(d[0] == axis for d in digits)]

    def spatial_in(self, dim: int) -> bool:
        return any(d[0] >= 0 for d in self.dims[dim])


def concatenated_parts(
    effect: Join, sources: Sequence[Layout]
) -> tuple[tuple[int, int, Layout], ...]:
    """The parts of a ``cat`` along a dim that holds no spatial digit in any input, or
    of a ``stack`` (each input one index of the new dim), see :attr:`Layout.pieces`;
    a part that is itself a ``cat`` along that dim gives its own parts; ``()`` for
    any other join."""
    d = effect.dim
    if effect.new:
        if any(len(s.dims) + 1 != len(effect.out_shape) for s in sources):
            return ()
        sources = [Layout((*s.dims[:d], (), *s.dims[d:]), s.maps, s.last) for s in sources]
    elif any(
        len(s.dims) != len(effect.out_shape) or any(g[0] >= 0 for g in s.dims[d]) for s in sources
    ):
        return ()
    pieces: list[tuple[int, int, Layout]] = []
    offset = 0
    for source in sources:
        size = digits_size(source.dims[d])
        if source.pieces and source.pieces_dim == d:
            pieces += [(offset + a, offset + b, part) for a, b, part in source.pieces]
        else:
            pieces.append((offset, offset + size, source))
        offset += size
    return tuple(pieces) if offset == effect.out_shape[d] else ()


def part_read(source: Layout, effect: Window, out_shape: Shape) -> Layout | None:
    """The layout of a slice along :attr:`Layout.pieces_dim` that reads within one
    part of a ``cat`` (indices ``start + j·step``, other dims untouched): the part's
    own, resized; ``None`` for any other window."""
    d = source.pieces_dim
    if (
        not source.pieces
        or effect.mixes
        or effect.dims != (d,)
        or len(out_shape) != len(source.dims)
    ):
        return None
    if any(n != out_shape[i] for i, n in enumerate(source.shape()) if i != d) or out_shape[d] < 1:
        return None
    (read,) = effect.maps
    if read.whole or read.period != 1 or len(read.taps[0]) != 1:
        return None
    (start, stop) = read.taps[0][0]
    if start != stop:
        return None
    end = start + (out_shape[d] - 1) * read.advance
    low, high = min(start, end), max(start, end)
    for first, after, part in source.pieces:
        if first <= low and high < after:
            dims = [list(g) for g in part.dims]
            dims[d] = list(other_digits(out_shape[d]))
            return Layout(freeze_dims(dims), part.maps, part.last)
    return None


def freeze_dims(dims: list[list[Digit]]) -> Dims:
    return tuple(tuple(d) for d in dims)


def regroup(dims: Dims, out_shape: Shape) -> Dims | None:
    """The digits of a row-major reshape to ``out_shape``; ``None`` when a dim
    boundary falls inside a digit that it does not divide."""
    pending = [d for digits in dims for d in digits if d[1] > 1]
    result: list[tuple[Digit, ...]] = []
    for size in out_shape:
        taken: list[Digit] = []
        remaining = size
        while remaining > 1:
            if not pending:
                return None
            axis, s, unit = pending.pop(0)
            if remaining % s == 0:
                taken.append((axis, s, unit))
                remaining //= s
            elif s % remaining == 0:
                rest = s // remaining
                taken.append((axis, remaining, unit * rest if axis >= 0 else 0))
                pending.insert(0, (axis, rest, unit if axis >= 0 else 0))
                remaining = 1
            else:
                return None
        result.append(tuple(taken))
    if pending:
        return None
    return tuple(result)
