"""Receptive fields, computed analytically from a trace.

Per spatial axis, every tensor of the traced graph carries a :class:`AxisMap`: the
exact set of model-input positions that each of its positions depends on. The map
is periodic: output position ``j = q·P + r`` depends on input positions
``q·T + A[r]``, where ``A[r]`` (the *taps* of phase ``r``) is a list of
disjoint intervals. ``T/P`` is the effective stride; ``P > 1`` after
upsampling or transposed convs, where the field depends on the output phase.

Each layer contributes its own map (``layer_map``) and maps compose exactly:

* conv / pooling (kernel k, stride s, padding p, dilation d)::

      j ← {j·s − p + d·t : 0 ≤ t < k}                       P = 1, T = s

* transposed conv: output ``j`` receives input ``i`` when ``j = i·s − p + d·t``::

      A[r] = {(r + p − d·t)/s : t < k, s | (r + p − d·t)}   P = s, T = 1

* nearest / linear / cubic interpolation and adaptive pooling: the source
  indices of each output phase, computed from the op's own index formula with
  exact fractions; pixel shuffle by ``r``: ``P = r, T = 1``. Adaptive pooling
  of an axis down to one position is global pooling (the whole input), and
  upsampling a size-1 axis is a broadcast (``T = 0``): so the image-pooling
  branch of DeepLab-v3's ASPP and a squeeze-and-excitation gate make every
  output depend on every input, as they do.

* slicing ``x[..., a:b:s]`` and ``narrow``: ``j ← a + j·s`` (a crop keeps the
  field and moves its offset; a strided slice multiplies the stride).

This is the recurrence of Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks" (Distill, 2019) — ``r_in = s·r_out + (k_eff − s)``,
effective stride the product of strides — kept as sets so that branches (a
merge is the union of its inputs' fields), gridding holes of dilated stacks
(Yu & Koltun, arXiv 1511.07122) and fractional strides come out exactly.
Normalisation layers are treated as pointwise (their batch or spatial statistics
are not counted, as in the literature); flatten, linear and global pooling make
the field cover the whole input ("global").
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pytest_convcheck.layers import (
    AdaptivePoolSpec,
    ChannelNormSpec,
    ConvSpec,
    FlattenSpec,
    Geometry,
    InterpolateSpec,
    LinearSpec,
    PadSpec,
    PixelShuffleSpec,
    PoolSpec,
    SliceSpec,
    Spec,
    UnfoldSpec,
    UnpoolSpec,
)
from pytest_convcheck.tracing import MODEL_INPUT, Trace, TraceNode

Intervals = tuple[tuple[int, int], ...]

__all__ = [
    "AxisMap",
    "FieldNumbers",
    "FieldRow",
    "ReceptiveField",
    "assert_receptive_field",
    "data_inputs",
    "field_of_trace",
    "growth_options",
    "receptive_field",
    "transposed_phase_taps",
]


def _merge(points_or_intervals: Iterable[tuple[int, int]]) -> Intervals:
    """Sorted, disjoint, non-adjacent intervals (inclusive bounds)."""
    merged: list[list[int]] = []
    for lo, hi in sorted(points_or_intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def _points(intervals: Intervals) -> Iterable[int]:
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
            for x in _points(layer.taps[phase]):
                found += self.at(base + x)
            taps.append(_merge(found))
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
        taps = tuple(_merge(self.at(r) + other.at(r)) for r in range(period))
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


# --------------------------------------------------------------------------- layer maps


@functools.lru_cache(maxsize=1024)
def _conv_like(kernel: int, stride: int, pad_before: int, dilation: int) -> AxisMap:
    return AxisMap(1, stride, (_merge((-pad_before + dilation * t,) * 2 for t in range(kernel)),))


def transposed_phase_taps(kernel: int, stride: int, padding: int, dilation: int) -> list[list[int]]:
    """Per output phase r < s of a 1-D transposed conv, the kernel taps t that land on
    it: output ``j`` receives input ``i`` through tap ``t`` when ``j = i·s − p + d·t``,
    so phase r gets the taps with ``s | (r + p − d·t)``, from input ``(r + p − d·t)/s``."""
    return [
        [t for t in range(kernel) if (r + padding - dilation * t) % stride == 0]
        for r in range(stride)
    ]


@functools.lru_cache(maxsize=1024)
def _transposed(kernel: int, stride: int, padding: int, dilation: int) -> AxisMap:
    taps = [
        _merge(((r + padding - dilation * t) // stride,) * 2 for t in phase)
        for r, phase in enumerate(transposed_phase_taps(kernel, stride, padding, dilation))
    ]
    return AxisMap(stride, 1, tuple(taps))


def _sampled(size_in: int, size_out: int, sources: Any) -> AxisMap:
    """A map from a per-output-position source function, periodic with the reduced
    ratio ``size_out/size_in``; ``sources(j)`` gives the input indices of ``j``."""
    g = math.gcd(size_in, size_out)
    period, advance = size_out // g, size_in // g
    taps = tuple(_merge((i, i) for i in sources(r)) for r in range(period))
    return AxisMap(period, advance, taps)


_FILTER_TAPS = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4, "lanczos": 6}


@functools.lru_cache(maxsize=1024)
def _antialiased(mode: str, size_in: int, size_out: int) -> AxisMap:
    """Anti-aliased resampling (``aten/src/ATen/native/UpSampleKernel.cpp``,
    ``_compute_indices_min_size_weights_aa``): output j reads the input positions
    within ``support = taps/2 · max(scale, 1)`` of its centre ``scale·(j + ½)``, so
    a downsampling filter widens with the factor. Taken one position wider on each
    side, as an upper bound."""
    scale = Fraction(size_in, size_out)
    support = Fraction(_FILTER_TAPS.get(mode, 6), 2) * max(scale, Fraction(1))

    def window(j: int) -> range:
        centre = scale * (j + Fraction(1, 2))
        return range(math.floor(centre - support) - 1, math.ceil(centre + support) + 1)

    return _sampled(size_in, size_out, window)


@functools.lru_cache(maxsize=1024)
def _interpolation(mode: str, align_corners: bool | None, size_in: int, size_out: int) -> AxisMap:
    """Source indices of ``F.interpolate`` (aten/src/ATen/native/UpSample.h), away from
    the borders (where torch clamps)."""
    scale = Fraction(size_in, size_out)
    if mode in ("nearest",):
        return _sampled(size_in, size_out, lambda j: [math.floor(j * scale)])
    if mode == "nearest-exact":
        return _sampled(size_in, size_out, lambda j: [math.floor((j + Fraction(1, 2)) * scale)])
    if mode == "area":
        return _sampled(
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

    if mode in ("linear", "bilinear", "trilinear"):

        def linear(j: int) -> list[int]:
            x = source(j)
            lo = math.floor(x)
            return [lo] if x == lo else [lo, lo + 1]

        return _sampled(size_in, size_out, linear)

    def cubic(j: int) -> Sequence[int]:
        # four taps around floor(x); at an integer x the cubic kernel is (0, 1, 0, 0)
        x = source(j)
        lo = math.floor(x)
        return [lo] if x == lo else range(lo - 1, lo + 3)

    return _sampled(size_in, size_out, cubic)


def layer_maps(node: TraceNode, spatial: int) -> tuple[AxisMap, ...] | None:
    """Per spatial axis, the map of one op from its first input to its output;
    ``None`` for an op that is pointwise along the spatial axes."""
    spec: Spec | None = node.spec
    in_shape = node.input_shapes[0] if node.input_shapes else None
    out_shape = node.output_shape
    if isinstance(spec, ConvSpec):
        pads = spec._pads(())
        if spec.transposed:
            return tuple(
                _transposed(k, s, p, d)
                for k, s, (p, _), d in zip(
                    spec.kernel, spec.stride, pads, spec.dilation, strict=True
                )
            )
        return tuple(
            _conv_like(k, s, p, d)
            for k, s, (p, _), d in zip(spec.kernel, spec.stride, pads, spec.dilation, strict=True)
        )
    if isinstance(spec, PoolSpec):
        return tuple(
            _conv_like(k, s, p, d)
            for k, s, p, d in zip(
                spec.kernel, spec.stride, spec.padding, spec.dilation, strict=True
            )
        )
    if isinstance(spec, UnpoolSpec) and len(spec.kernel) == spatial:
        # each value goes back somewhere in its pooling window: a transposed conv's
        # footprint, output o ← input i for o = i·s − p + t, 0 ≤ t < k
        if min(*spec.kernel, *spec.stride) < 1:
            return tuple(AxisMap.everything() for _ in range(spatial))
        return tuple(
            _transposed(k, s, p, 1)
            for k, s, p in zip(spec.kernel, spec.stride, spec.padding, strict=True)
        )
    if isinstance(spec, PadSpec):
        pairs = spec.geometry().padding[-spatial:]
        if len(pairs) < spatial:
            pairs = ((0, 0),) * (spatial - len(pairs)) + pairs
        return tuple(AxisMap(1, 1, (((-before, -before),),)) for before, _ in pairs)
    if isinstance(spec, PixelShuffleSpec):
        r = spec.factor
        if spec.inverse:
            return tuple(AxisMap(1, r, (((0, r - 1),),)) for _ in range(spatial))
        return tuple(AxisMap(r, 1, tuple(((0, 0),) for _ in range(r))) for _ in range(spatial))
    if isinstance(spec, (AdaptivePoolSpec, InterpolateSpec)) and in_shape and out_shape:
        maps = []
        for size_in, size_out in zip(in_shape[-spatial:], out_shape[-spatial:], strict=True):
            if isinstance(spec, AdaptivePoolSpec):
                # pooling a whole axis down to one position is global pooling
                global_pool = size_out == 1 and size_in > 1
                maps.append(
                    AxisMap.everything()
                    if global_pool
                    else _interpolation("area", None, size_in, size_out)
                )
            elif size_in == 1:
                # every output position reads the one input position (torch clamps the
                # neighbours a linear or cubic kernel would reach): a broadcast
                maps.append(AxisMap.broadcast())
            elif spec.antialias or spec.mode == "lanczos":
                maps.append(_antialiased(spec.mode, size_in, size_out))
            else:
                maps.append(_interpolation(spec.mode, spec.align_corners, size_in, size_out))
        return tuple(maps)
    if isinstance(spec, SliceSpec) and in_shape and len(in_shape) >= spatial:
        # output j reads input start + j·step (a crop, or a strided subsample)
        return tuple(
            AxisMap(1, step, (((start, start),),))
            for start, step in spec.starts_and_steps(in_shape)[-spatial:]
        )
    if isinstance(spec, (LinearSpec, FlattenSpec, UnfoldSpec)):
        return tuple(AxisMap.everything() for _ in range(spatial))
    if isinstance(spec, ChannelNormSpec):
        return None
    return _generic_map(node, spatial)


def _generic_map(node: TraceNode, spatial: int) -> tuple[AxisMap, ...] | None:
    """Ops without a rule (elementwise arithmetic, views, cat along channels, …):
    pointwise when they keep the trailing spatial sizes, otherwise the field
    becomes the whole input (a flatten, a spatial reduction, a reshape)."""
    in_shape = node.input_shapes[0] if node.input_shapes else None
    out_shape = node.output_shape
    if in_shape is None or out_shape is None:
        return None
    if (
        len(in_shape) >= spatial + 1
        and len(out_shape) >= spatial + 1
        and tuple(in_shape[-spatial:]) == tuple(out_shape[-spatial:])
    ):
        return None
    return tuple(AxisMap.everything() for _ in range(spatial))


# --------------------------------------------------------------------------- the field


@dataclass(frozen=True)
class FieldRow:
    """The field at one row of the trace table."""

    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    size: tuple[int, ...]
    stride: tuple[Fraction | int, ...]
    offset: tuple[int, ...]
    input_stride: tuple[Fraction | int, ...] = ()
    spec: ConvSpec | PoolSpec | None = None

    @property
    def geometry(self) -> Geometry | None:
        """The kernel, stride, padding and dilation of the row's conv or pool."""
        return self.spec.geometry() if self.spec is not None else None


def _plain(value: Fraction) -> Fraction | int:
    return int(value) if value.denominator == 1 else value


@dataclass(frozen=True)
class FieldNumbers:
    """The numbers of a receptive field, analytic or measured.

    Per spatial axis: ``size`` (the largest over output positions, in input
    pixels, padding included), ``stride`` (input pixels per output position; a
    ``Fraction`` after upsampling), ``offset`` (where output position 0's field
    starts in input coordinates; negative reaches into the padding, so
    ``−offset`` is Araujo et al.'s "effective padding"). ``phase_sizes`` lists
    the size per output phase (one phase unless the stride is fractional);
    ``holes`` is true when a position inside a field is reached by no path, and
    ``hole_positions`` lists them per axis (relative to the field's start, for
    the first phase that has holes).
    """

    model: str
    input_shape: tuple[int, ...]
    size: tuple[int, ...]
    stride: tuple[Fraction | int, ...]
    offset: tuple[int, ...]
    phase_sizes: tuple[tuple[int, ...], ...]
    holes: bool
    hole_positions: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ReceptiveField(FieldNumbers):
    """The analytic receptive field of a model's output: :class:`FieldNumbers`,
    plus ``whole`` (axes where every output depends on every input position,
    after flatten or global pooling), a row per layer, and the per-axis maps."""

    whole: tuple[bool, ...]
    layers: tuple[FieldRow, ...]
    axes: tuple[AxisMap, ...]
    notes: tuple[str, ...] = ()

    def positions(self, index: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """Per axis, the input positions that output position ``index`` depends on,
        clipped to the input."""
        result = []
        for axis_map, j, extent in zip(
            self.axes, index, self.input_shape[-len(self.axes) :], strict=True
        ):
            if axis_map.whole:
                result.append(tuple(range(extent)))
                continue
            result.append(tuple(i for i in _points(axis_map.at(j)) if 0 <= i < extent))
        return tuple(result)

    def table(self) -> str:
        header = ("layer", "kind", "output", "field", "stride", "offset")
        rows = [
            (
                row.name,
                row.kind,
                "×".join(map(str, row.output_shape)) if row.output_shape else "—",
                "×".join(map(str, row.size)),
                "×".join(map(str, row.stride)),
                ",".join(map(str, row.offset)),
            )
            for row in self.layers
        ]
        widths = [max(len(r[c]) for r in (header, *rows)) for c in range(6)]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in (header, *rows)
        )

    def __str__(self) -> str:
        fmt = "×".join
        text = (
            f"receptive field of {self.model} on input {fmt(map(str, self.input_shape))}: "
            f"size {fmt(map(str, self.size))}, stride {fmt(map(str, self.stride))}, "
            f"offset {', '.join(map(str, self.offset))}"
        )
        if any(len(p) > 1 for p in self.phase_sizes):
            text += f", sizes per phase {self.phase_sizes}"
        if self.holes:
            text += f", holes at {self.hole_positions}"
        if any(self.whole):
            text += " (global along some axes)"
        for note in self.notes:
            text += f"\nnote: {note}"
        return f"{text}\n{self.table()}"


def _field_numbers(
    axes: Sequence[AxisMap], extents: Sequence[int]
) -> tuple[tuple[int, ...], tuple[Fraction | int, ...], tuple[int, ...]]:
    sizes: list[int] = []
    strides: list[Fraction | int] = []
    offsets: list[int] = []
    for axis_map, extent in zip(axes, extents, strict=True):
        if axis_map.whole:
            sizes.append(extent)
            strides.append(extent)
            offsets.append(0)
            continue
        sizes.append(max(axis_map.phase_sizes()))
        strides.append(axis_map.plain_stride())
        first = axis_map.taps[0]
        offsets.append(first[0][0] if first else 0)
    return tuple(sizes), tuple(strides), tuple(offsets)


def data_inputs(node: TraceNode, known: dict[int, Any]) -> list[int]:
    """The producers of ``node``'s data inputs among ``known`` nodes: all of them for
    merges (add, cat, …) and pointwise ops; only the first for ops with a geometry
    rule (conv, pool, …), whose other tensor inputs are weights."""
    sources = [p for p in node.inputs if p is not None and p in known]
    if node.spec is not None and not node.spec.reads_every_input:
        return sources[:1]
    return sources


def _then_per_axis(merged: tuple[AxisMap, ...], layer: tuple[AxisMap, ...]) -> tuple[AxisMap, ...]:
    """``m.then(lm)`` per axis, composed once for axes that are alike (a square model)."""
    done: list[tuple[AxisMap, AxisMap, AxisMap]] = []
    out = []
    for m, lm in zip(merged, layer, strict=True):
        for m0, lm0, result in done:
            if m0 == m and lm0 == lm:
                out.append(result)
                break
        else:
            result = m.then(lm)
            done.append((m, lm, result))
            out.append(result)
    return tuple(out)


def node_maps(result: Trace) -> tuple[dict[int, tuple[AxisMap, ...]], list[str]]:
    """The per-axis map of every node's output, and notes on merges and unknown ops."""
    spatial = len(result.input_shape) - 2
    if spatial < 1:
        raise ValueError(
            "receptive fields need an input with spatial dims (N, C, ...), got "
            f"{result.input_shape}"
        )
    identity = tuple(AxisMap.identity() for _ in range(spatial))
    maps: dict[int, tuple[AxisMap, ...]] = {MODEL_INPUT: identity}
    notes: list[str] = []
    for node in result.nodes:
        sources = [maps[p] for p in data_inputs(node, maps)]
        if not sources:
            maps[node.node_id] = identity  # a constant (no path from the input)
            continue
        merged = sources[0]
        for other in sources[1:]:
            combined = []
            for a, b in zip(merged, other, strict=True):
                union = a.union(b)
                if union is None:
                    notes.append(
                        f"{node.op} in {node.module or 'forward'} merges paths with strides "
                        f"{_plain(a.stride)} and {_plain(b.stride)}; the field of the first "
                        f"path is kept"
                    )
                    union = a
                combined.append(union)
            merged = tuple(combined)
        layer = layer_maps(node, spatial)
        maps[node.node_id] = merged if layer is None else _then_per_axis(merged, layer)
    return maps, notes


def field_of_trace(result: Trace, *, rows: bool = True) -> ReceptiveField:
    """The receptive field of the traced model's (first) output, with a row per layer
    (``rows=False``: without them, for callers that need only the totals)."""
    maps, notes = node_maps(result)
    spatial = len(result.input_shape) - 2
    extents = result.input_shape[-spatial:]
    numbers: dict[int, tuple[Any, Any, Any]] = {}  # id of a node's maps → its numbers

    def numbers_of(axes: tuple[AxisMap, ...]) -> tuple[Any, Any, Any]:
        found = numbers.get(id(axes))
        if found is None:
            found = numbers[id(axes)] = _field_numbers(axes, extents)
        return found

    table = []
    for row in result.layers if rows else ():
        if not row.nodes or row.nodes[-1] not in maps:
            continue
        size, stride, offset = numbers_of(maps[row.nodes[-1]])
        first = result.nodes[row.nodes[0]]
        source = next((p for p in first.inputs if p is not None and p in maps), None)
        in_stride = numbers_of(maps[source])[1] if source is not None else ()
        spec = next(
            (
                result.nodes[i].spec
                for i in row.nodes
                if isinstance(result.nodes[i].spec, (ConvSpec, PoolSpec))
            ),
            None,
        )
        table.append(
            FieldRow(
                row.name,
                row.kind,
                row.output_shape,
                size,
                stride,
                offset,
                in_stride,
                spec,  # type: ignore[arg-type]
            )
        )
    out_node = result.output_nodes[0] if result.output_nodes else MODEL_INPUT
    axes = maps[out_node]
    size, stride, offset = _field_numbers(axes, extents)
    hole_lists = []
    for axis_map in axes:
        per_phase = axis_map.holes() if not axis_map.whole else ((),)
        hole_lists.append(next((h for h in per_phase if h), ()))
    return ReceptiveField(
        result.model,
        result.input_shape,
        size,
        stride,
        offset,
        tuple(m.phase_sizes() if not m.whole else (e,) for m, e in zip(axes, extents, strict=True)),
        any(hole_lists),
        tuple(hole_lists),
        tuple(m.whole for m in axes),
        tuple(table),
        axes,
        tuple(dict.fromkeys(notes)),
    )


def receptive_field(model: Any, input_shape: Sequence[int]) -> ReceptiveField:
    """The analytic receptive field of ``model``'s output on an input of ``input_shape``
    (batch and channel dims included), from one meta-device trace."""
    from pytest_convcheck.tracing import trace

    return field_of_trace(trace(model, input_shape))


def _as_axes(value: int | Sequence[int] | None, spatial: int, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value,) * spatial
    items = tuple(int(v) for v in value)
    if len(items) != spatial:
        raise ValueError(
            f"{what} needs one number or {spatial} (one per spatial axis), got {value!r}"
        )
    return items


def growth_options(field: ReceptiveField, top: int = 3) -> list[str]:
    """The layers where one more step of dilation (or kernel) grows the field most.

    A layer with kernel k and dilation d at input stride S adds (d·(k−1))·S to the
    field; one more dilation adds (k−1)·S at no parameter cost, two more kernel
    taps add 2·d·S and cost weights.
    """
    options = []
    for row in field.layers:
        geometry = row.geometry
        if (
            geometry is None
            or not row.input_stride
            or geometry.op not in ("conv", "max_pool", "avg_pool")
        ):
            continue
        gains = []
        for axis, (k, d, s_in) in enumerate(
            zip(geometry.kernel, geometry.dilation, row.input_stride, strict=False)
        ):
            if k <= 1:
                continue
            gains.append((Fraction(k - 1) * Fraction(s_in), Fraction(2 * d) * Fraction(s_in), axis))
        if not gains:
            continue
        dil, ker, _ = max(gains)
        options.append(
            (
                dil,
                f"{row.name} ({row.kind}, kernel {geometry.kernel}, dilation {geometry.dilation}, "
                f"input stride {'×'.join(map(str, row.input_stride))}): dilation +1 → "
                f"+{_plain(dil)} (no new weights); kernel +2 → +{_plain(ker)}",
            )
        )
    options.sort(key=lambda item: -item[0])
    return [text for _, text in options[:top]]


def assert_receptive_field(
    model: Any,
    input_shape: Sequence[int],
    *,
    min_size: int | Sequence[int] | None = None,
    max_size: int | Sequence[int] | None = None,
    exact: int | Sequence[int] | None = None,
) -> ReceptiveField:
    """Assert bounds on the receptive field size of ``model``'s output (one number for
    every spatial axis, or one per axis). Returns the field.

    On failure the message shows the per-layer growth table and the layers that
    would grow the field most cheaply.
    """
    field = receptive_field(model, input_shape)
    spatial = len(field.size)
    checks = [
        (
            _as_axes(min_size, spatial, "min_size"),
            lambda got, want: got >= want,
            "smaller than min_size",
        ),
        (
            _as_axes(max_size, spatial, "max_size"),
            lambda got, want: got <= want,
            "larger than max_size",
        ),
        (_as_axes(exact, spatial, "exact"), lambda got, want: got == want, "not equal to exact"),
    ]
    for wanted, ok, words in checks:
        if wanted is None:
            continue
        bad = [
            (axis, got, want)
            for axis, (got, want) in enumerate(zip(field.size, wanted, strict=True))
            if not ok(got, want)
        ]
        if not bad:
            continue
        details = ", ".join(f"axis {axis}: {got} vs {want}" for axis, got, want in bad)
        lines = [
            f"{field.model}: receptive field {'×'.join(map(str, field.size))} is {words} "
            f"{'×'.join(map(str, wanted))} ({details}) on input {tuple(field.input_shape)}.",
            "Field after each layer:",
            field.table(),
        ]
        options = growth_options(field)
        if options and words != "larger than max_size":
            lines.append("Cheapest ways to grow it (a layer adds d·(k−1)·input_stride):")
            lines += [f"  {text}" for text in options]
        elif words == "larger than max_size":
            lines.append(
                "  fix: fewer or smaller kernels, less dilation, or less downsampling "
                "before the large kernels."
            )
        raise AssertionError("\n".join(lines))
    return field
