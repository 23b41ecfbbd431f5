"""Per-axis dependency maps: which input positions each output position reads.

An :class:`AxisMap` describes one axis of one tensor: output position
``j = q·period + r`` depends on input positions ``q·advance + x`` for ``x`` in
``taps[r]`` (disjoint intervals). The constructors below give the map of each
windowed op along one axis, from the op's documented index formula:

* conv / pooling (kernel k, stride s, padding p, dilation d)::

      j ← {j·s − p + d·t : 0 ≤ t < k}                       P = 1, T = s

* transposed conv: output ``j`` receives input ``i`` when ``j = i·s − p + d·t``::

      A[r] = {(r + p − d·t)/s : t < k, s | (r + p − d·t)}   P = s, T = 1

* interpolation and adaptive pooling: the source indices of each output phase,
  from the op's own index formula with exact fractions
  (``aten/src/ATen/native/UpSample.h``, ``AdaptivePooling.h``).

Maps compose exactly (:meth:`AxisMap.then`) and merge by union
(:meth:`AxisMap.union`): the recurrence of Araujo, Norris & Sim, "Computing
Receptive Fields of Convolutional Neural Networks" (Distill, 2019), kept as sets.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Intervals = tuple[tuple[int, int], ...]

__all__ = [
    "AxisMap",
    "Intervals",
    "antialiased_map",
    "conv_like_map",
    "interpolation_map",
    "merge_intervals",
    "points",
    "source_scale",
    "transposed_map",
    "transposed_phase_taps",
]


def merge_intervals(points_or_intervals: Iterable[tuple[int, int]]) -> Intervals:
    """Sorted, disjoint, non-adjacent intervals (inclusive bounds)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(points_or_intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def points(intervals: Intervals) -> Iterable[int]:
    for lo, hi in intervals:
        yield from range(lo, hi + 1)


@dataclass(frozen=True)
class AxisMap:
    """Dependency of positions along one axis on model-input positions.

    Output position ``j = q·period + r`` depends on input positions
    ``q·advance + x`` for ``x`` in ``taps[r]``. ``whole`` means every input
    position (after flatten, linear, global pooling).
    """

    period: int
    advance: int
    taps: tuple[Intervals, ...]
    whole: bool = False

    @staticmethod
    def identity() -> AxisMap:
        return AxisMap(1, 1, (((0, 0),),))

    @staticmethod
    def broadcast() -> AxisMap:
        """Every position reads input position 0 (upsampling a size-1 axis)."""
        return AxisMap(1, 0, (((0, 0),),))

    @staticmethod
    def everything() -> AxisMap:
        return AxisMap(1, 1, (((0, 0),),), whole=True)

    @property
    def stride(self) -> Fraction:
        return Fraction(self.advance, self.period)

    def at(self, j: int) -> Intervals:
        """Input positions (unclipped; negative = padding) that position ``j`` depends on."""
        q, r = divmod(j, self.period)
        shift = q * self.advance
        return tuple((lo + shift, hi + shift) for lo, hi in self.taps[r])

    def then(self, layer: AxisMap) -> AxisMap:
        """The map of ``layer`` applied to a tensor whose map is ``self``."""
        if self.whole or layer.whole:
            return AxisMap.everything()
        # shifting the layer's output by layer.period shifts its input by layer.advance;
        # the upstream map repeats every self.period positions
        k = self.period // math.gcd(layer.advance, self.period)
        period = layer.period * k
        advance = (k * layer.advance // self.period) * self.advance
        taps = []
        for r in range(period):
            q, phase = divmod(r, layer.period)
            base = q * layer.advance
            found: list[tuple[int, int]] = []
            for x in points(layer.taps[phase]):
                found += self.at(base + x)
            taps.append(merge_intervals(found))
        return AxisMap(period, advance, tuple(taps))

    def union(self, other: AxisMap) -> AxisMap | None:
        """The map of a merge (add, cat, …) of two paths; ``None`` when their
        strides differ (the union is then not periodic)."""
        if self.whole or other.whole:
            return AxisMap.everything()
        if self.advance * other.period != other.advance * self.period:
            return None
        period = math.lcm(self.period, other.period)
        advance = self.advance * (period // self.period)
        taps = tuple(merge_intervals(self.at(r) + other.at(r)) for r in range(period))
        return AxisMap(period, advance, taps)

    def phase_sizes(self) -> tuple[int, ...]:
        if self.period == 1:
            t = self.taps[0]
            return (t[-1][1] - t[0][0] + 1 if t else 0,)
        return tuple(t[-1][1] - t[0][0] + 1 if t else 0 for t in self.taps)

    def plain_stride(self) -> Fraction | int:
        """The stride as an int when whole, else a Fraction."""
        if self.advance % self.period == 0:
            return self.advance // self.period
        return Fraction(self.advance, self.period)

    def holes(self) -> tuple[tuple[int, ...], ...]:
        """Per phase: positions inside the field (relative to its start) reached by no path."""
        found = []
        for t in self.taps:
            gaps: list[int] = []
            for (_, hi), (lo, _) in itertools.pairwise(t):
                gaps += range(hi + 1 - t[0][0], lo - t[0][0])
            found.append(tuple(gaps))
        return tuple(found)


@functools.lru_cache(maxsize=1024)
def conv_like_map(kernel: int, stride: int, pad_before: int, dilation: int) -> AxisMap:
    return AxisMap(
        1, stride, (merge_intervals((-pad_before + dilation * t,) * 2 for t in range(kernel)),)
    )


def transposed_phase_taps(kernel: int, stride: int, padding: int, dilation: int) -> list[list[int]]:
    """Per output phase r < s of a 1-D transposed conv, the kernel taps t that land on
    it: output ``j`` receives input ``i`` through tap ``t`` when ``j = i·s − p + d·t``,
    so phase r gets the taps with ``s | (r + p − d·t)``, from input ``(r + p − d·t)/s``."""
    return [
        [t for t in range(kernel) if (r + padding - dilation * t) % stride == 0]
        for r in range(stride)
    ]


@functools.lru_cache(maxsize=1024)
def transposed_map(kernel: int, stride: int, padding: int, dilation: int) -> AxisMap:
    taps = [
        merge_intervals(((r + padding - dilation * t) // stride,) * 2 for t in phase)
        for r, phase in enumerate(transposed_phase_taps(kernel, stride, padding, dilation))
    ]
    return AxisMap(stride, 1, tuple(taps))


def sampled_map(size_in: int, size_out: int, sources: Any) -> AxisMap:
    """A map from a per-output-position source function, periodic with the reduced
    ratio ``size_out/size_in`` (pass ``size − 1`` for ``align_corners``, whose
    source index is ``j·(in − 1)/(out − 1)``); ``sources(j)`` gives the input
    indices of ``j``."""
    g = math.gcd(size_in, size_out) or 1
    period, advance = size_out // g, size_in // g
    taps = tuple(merge_intervals((i, i) for i in sources(r)) for r in range(period))
    return AxisMap(period, advance, taps)


_FILTER_TAPS = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4, "lanczos": 6}


@functools.lru_cache(maxsize=1024)
def antialiased_map(
    mode: str, size_in: int, size_out: int, scale: Fraction | None = None
) -> AxisMap:
    """Anti-aliased resampling (``aten/src/ATen/native/UpSampleKernel.cpp``,
    ``_compute_indices_min_size_weights_aa``): output j reads the input positions
    within ``support = taps/2 · max(scale, 1)`` of its centre ``scale·(j + ½)``, so
    a downsampling filter widens with the factor. Taken one position wider on each
    side, as an upper bound. ``scale``: input positions per output position (see
    :func:`source_scale`; default ``size_in/size_out``)."""
    scale = Fraction(size_in, size_out) if scale is None else scale
    support = Fraction(_FILTER_TAPS.get(mode, 6), 2) * max(scale, Fraction(1))

    def window(j: int) -> range:
        centre = scale * (j + Fraction(1, 2))
        return range(math.floor(centre - support) - 1, math.ceil(centre + support) + 1)

    return sampled_map(scale.numerator, scale.denominator, window)


def source_scale(
    size_in: int, size_out: int, scale_factor: float | None, recompute: bool | None
) -> Fraction:
    """Input positions per output position that torch's resampling kernels use
    (``compute_scales_value`` in ``aten/src/ATen/native/UpSample.h``): ``1/scale_factor``
    when the call gave one and did not ask to recompute it, else ``in/out``. They
    differ where ``in·scale_factor`` is no integer: ``scale_factor=0.5`` on 37 rows
    gives 18 rows that read rows ``2j, 2j + 1``, not ``37/18·j``. A factor not exact
    in binary (0.7) is read as the nearest fraction with a denominator up to 2¹⁶
    (7/10), as torch's float arithmetic rounds it."""
    if scale_factor is None or recompute or not scale_factor > 0:
        return Fraction(size_in, size_out)
    return 1 / Fraction(float(scale_factor)).limit_denominator(1 << 16)


@functools.lru_cache(maxsize=1024)
def interpolation_map(
    mode: str,
    align_corners: bool | None,
    size_in: int,
    size_out: int,
    scale: Fraction | None = None,
) -> AxisMap:
    """Source indices of ``F.interpolate`` (aten/src/ATen/native/UpSample.h), away from
    the borders (where torch clamps). ``scale``: input positions per output position
    (:func:`source_scale`; default ``size_in/size_out``); ``align_corners`` uses
    ``(in − 1)/(out − 1)`` whatever was given, and ``area`` (adaptive pooling) the
    sizes."""
    given = scale is not None
    scale = Fraction(size_in, size_out) if scale is None else scale
    if mode in ("nearest",):
        # nearest_idx: the same size is a copy and twice the size j >> 1, whatever the
        # scale factor; otherwise floor(j · scale)
        if size_out == size_in:
            scale = Fraction(1)
        elif size_out == 2 * size_in:
            scale = Fraction(1, 2)
        return sampled_map(scale.numerator, scale.denominator, lambda j: [math.floor(j * scale)])
    if mode == "nearest-exact":
        return sampled_map(
            scale.numerator,
            scale.denominator,
            lambda j: [math.floor((j + Fraction(1, 2)) * scale)],
        )
    if mode == "area":
        scale = Fraction(size_in, size_out)
        return sampled_map(
            size_in,
            size_out,
            lambda j: range(math.floor(j * scale), math.ceil((j + 1) * scale)),
        )
    if align_corners and size_out > 1:
        scale = Fraction(size_in - 1, size_out - 1)

    def source(j: int) -> float | Fraction:
        if align_corners:
            return j * scale
        return (j + Fraction(1, 2)) * scale - Fraction(1, 2)

    # the ratio the source index repeats with
    if align_corners and size_out > 1:
        ratio = (size_in - 1, size_out - 1)
    elif given:
        ratio = (scale.numerator, scale.denominator)
    else:
        ratio = (size_in, size_out)

    if mode in ("linear", "bilinear", "trilinear"):

        def linear(j: int) -> list[int]:
            x = source(j)
            lo = math.floor(x)
            return [lo] if x == lo else [lo, lo + 1]

        return sampled_map(*ratio, linear)

    def cubic(j: int) -> Sequence[int]:
        # four taps around floor(x); at an integer x the cubic kernel is (0, 1, 0, 0)
        x = source(j)
        lo = math.floor(x)
        return [lo] if x == lo else range(lo - 1, lo + 3)

    return sampled_map(*ratio, cubic)
