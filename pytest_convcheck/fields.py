"""Receptive fields, computed analytically from a trace.

Per spatial axis, every tensor of the traced graph carries an
:class:`~pytest_convcheck.axis_maps.AxisMap`: the exact set of model-input
positions that each of its positions depends on. The map is periodic: output
position ``j = q·P + r`` depends on input positions ``q·T + A[r]``, where
``A[r]`` (the *taps* of phase ``r``) is a list of disjoint intervals. ``T/P`` is
the effective stride; ``P > 1`` after upsampling or transposed convs, where the
field depends on the output phase.

Each op contributes its *effect* (:mod:`pytest_convcheck.dims`: the spec's own
for conv, pooling, interpolation, padding, slicing, pixel shuffle, linear; the
ops table for everything else) and :mod:`pytest_convcheck.dependencies` follows
it exactly through relayouts (view/permute/flatten), merges and mixing:

* conv / pooling (kernel k, stride s, padding p, dilation d)::

      j ← {j·s − p + d·t : 0 ≤ t < k}                       P = 1, T = s

* transposed conv: output ``j`` receives input ``i`` when ``j = i·s − p + d·t``::

      A[r] = {(r + p − d·t)/s : t < k, s | (r + p − d·t)}   P = s, T = 1

* interpolation and adaptive pooling: the source indices of each output phase;
  adaptive pooling of an axis down to one position and flatten → linear make
  the field the whole input ("global"), as do softmax, cumsum, sort or a
  reduction along a spatial axis.

This is the recurrence of Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks" (Distill, 2019) — ``r_in = s·r_out + (k_eff − s)``,
effective stride the product of strides — kept as sets so that branches (a
merge is the union of its inputs' fields; a channel slice of a ``cat`` that reads
within one of its parts is that part's field), gridding holes of dilated stacks
(Yu & Koltun, arXiv 1511.07122) and fractional strides come out exactly.

**Normalisation statistics.** GroupNorm, InstanceNorm and a LayerNorm over
spatial axes compute statistics over the whole input: strictly, every output
then depends on every input position. As in the literature, the field counts
the *data path* by default and lists the layers whose statistics span spatial
axes in :attr:`ReceptiveField.statistics`; ``include_statistics=True`` counts
them (the field becomes the span of their statistics). BatchNorm in eval mode
and a LayerNorm over channels (ConvNeXt's) are per position either way.

**Ops without a rule** are taken to mix every axis of their input: the field
can be over-stated (and a note says so), never under-stated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pytest_convcheck.axis_maps import (
    AxisMap,
    Intervals,
    points,
    transposed_phase_taps,
)
from pytest_convcheck.dependencies import Layout, Propagation
from pytest_convcheck.dims import Unknown
from pytest_convcheck.layers import ConvSpec, Geometry, PoolSpec
from pytest_convcheck.tracing import MODEL_INPUT, Trace, TraceNode

__all__ = [
    "AxisMap",
    "FieldNumbers",
    "FieldRow",
    "Intervals",
    "ReceptiveField",
    "assert_receptive_field",
    "data_inputs",
    "field_of_trace",
    "growth_options",
    "node_layouts",
    "node_maps",
    "receptive_field",
    "transposed_phase_taps",
]


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
    after flatten or global pooling), a row per layer, the per-axis maps, and
    ``statistics``: the layers whose normalisation statistics span spatial axes
    (counted in the field only with ``include_statistics``)."""

    whole: tuple[bool, ...]
    layers: tuple[FieldRow, ...]
    axes: tuple[AxisMap, ...]
    notes: tuple[str, ...] = ()
    statistics: tuple[str, ...] = ()
    include_statistics: bool = False
    boundary: tuple[str, ...] = ()

    def positions(self, index: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """Per axis, the input positions that output position ``index`` depends on:
        positions in the padding are dropped (zero padding), or read where the
        padding reads — mirrored (reflect), the edge (replicate), wrapped around
        (circular) — when a layer pads that way (``boundary``). That reading is
        resolved against the model input: where a layer pads a tensor that strided
        or upsampling layers made, the positions of output elements whose field
        reaches the border are approximate (the interior, ``size`` and ``holes``
        are exact)."""
        result = []
        modes = self.boundary or ("zeros",) * len(self.axes)
        for axis_map, j, extent, mode in zip(
            self.axes, index, self.input_shape[-len(self.axes) :], modes, strict=True
        ):
            if axis_map.whole:
                result.append(tuple(range(extent)))
                continue
            found = {_read_at(i, extent, mode) for i in points(axis_map.at(j))}
            result.append(tuple(sorted(i for i in found if i is not None)))
        return tuple(result)

    def statistics_note(self) -> str:
        """What the field says about normalisation statistics, or ``""``."""
        if not self.statistics:
            return ""
        names = ", ".join(self.statistics[:4])
        if len(self.statistics) > 4:
            names += f" and {len(self.statistics) - 4} more"
        if self.include_statistics:
            return (
                f"the statistics of {len(self.statistics)} normalisation layer(s) ({names}) "
                f"span spatial axes and are counted: the field covers their span"
            )
        return (
            f"the statistics of {len(self.statistics)} normalisation layer(s) ({names}) span "
            f"the whole input along spatial axes; the field counts the data path only "
            f"(include_statistics=True counts them)"
        )

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
        statistics = self.statistics_note()
        if statistics:
            text += f"\nnote: {statistics}"
        for note in self.notes:
            text += f"\nnote: {note}"
        return f"{text}\n{self.table()}"


def _read_at(i: int, extent: int, mode: str) -> int | None:
    """The input position that position ``i`` (maybe in the padding) reads."""
    if 0 <= i < extent:
        return i
    if mode == "circular":
        return i % extent
    if mode == "replicate":
        return min(max(i, 0), extent - 1)
    if mode == "reflect" and extent > 1:
        period = 2 * (extent - 1)
        i %= period
        return i if i < extent else period - i
    return None


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
        # one field for every position (an axis reduced to one position): one output
        # step spans the input, as for a whole axis
        strides.append(axis_map.plain_stride() if axis_map.advance else extent)
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


_NO_DEPENDENCY = AxisMap(1, 1, ((),))


def node_layouts(
    result: Trace, *, include_statistics: bool = False
) -> tuple[dict[int, Layout | None], Propagation]:
    """The :class:`~pytest_convcheck.dependencies.Layout` of every node's output
    (``None``: it reads no input position), and the propagation with its notes
    and the normalisation layers whose statistics span spatial axes."""
    spatial = result.spatial
    if spatial < 1:
        raise ValueError(
            "receptive fields need an input with spatial dims (N, C, ...) — or integer ids "
            f"(N, L) —, got {result.input_shape}.\n  fix: describe the model's input with its "
            f"spatial dims, or pick another input with input=."
        )
    propagation = Propagation(tuple(result.input_shape[-spatial:]), include_statistics)
    layouts: dict[int, Layout | None] = {
        MODEL_INPUT: Layout.of_input(tuple(result.input_shape), spatial)
    }
    for node in result.nodes:
        positions = [
            i for i, p in enumerate(node.inputs) if p is not None and layouts.get(p) is not None
        ]
        if not positions or node.output_shape is None:
            layouts[node.node_id] = None
            continue
        sources = [layouts[node.inputs[i]] for i in positions]  # type: ignore[index]
        label = node.module or node.op
        effect = node.dims_effect()
        if node.spec is not None and not node.spec.reads_every_input and positions[0] != 0:
            # the data reaches a weight, not the input: every output reads all of it
            effect = Unknown(node.op)
        layouts[node.node_id] = propagation.apply(
            effect,
            sources,  # type: ignore[arg-type]
            tuple(node.output_shape),
            label,
            positions,
        )
    return layouts, propagation


def _reported(propagation: Propagation, layout: Layout | None) -> tuple[AxisMap, ...]:
    spatial = len(propagation.extents)
    if layout is None:
        return tuple(_NO_DEPENDENCY for _ in range(spatial))
    return tuple(propagation.reported(layout, axis) for axis in range(spatial))


def node_maps(
    result: Trace, *, include_statistics: bool = False
) -> tuple[dict[int, tuple[AxisMap, ...]], list[str]]:
    """The per-axis map of every node's output (over the positions of the dims that
    hold each axis), and notes on what the analysis could not follow exactly."""
    layouts, propagation = node_layouts(result, include_statistics=include_statistics)
    maps = {node: _reported(propagation, layout) for node, layout in layouts.items()}
    return maps, list(dict.fromkeys(propagation.notes))


def field_of_trace(
    result: Trace, *, rows: bool = True, include_statistics: bool = False
) -> ReceptiveField:
    """The receptive field of the traced model's (first) output, with a row per layer
    (``rows=False``: without them, for callers that need only the totals);
    ``include_statistics`` counts normalisation statistics (see the module doc).

    Computed once per trace (and per plan a trace is replayed from:
    :attr:`Trace.analyses`)."""
    key = ("receptive_field", rows, include_statistics)
    known = result.analyses.get(key)
    if known is None:
        known = result.analyses[key] = _field_of_trace(result, rows, include_statistics)
    return known


def _field_of_trace(result: Trace, rows: bool, include_statistics: bool) -> ReceptiveField:
    layouts, propagation = node_layouts(result, include_statistics=include_statistics)
    spatial = result.spatial
    extents = result.input_shape[-spatial:]
    numbers: dict[int, tuple[Any, Any, Any]] = {}  # id of a node's layout → its numbers

    def numbers_of(layout: Layout | None) -> tuple[Any, Any, Any]:
        found = numbers.get(id(layout))
        if found is None:
            found = numbers[id(layout)] = _field_numbers(_reported(propagation, layout), extents)
        return found

    table = []
    for row in result.layers if rows else ():
        if not row.nodes or row.nodes[-1] not in layouts:
            continue
        size, stride, offset = numbers_of(layouts[row.nodes[-1]])
        first = result.nodes[row.nodes[0]]
        source = next((p for p in first.inputs if p is not None and p in layouts), None)
        in_stride = numbers_of(layouts[source])[1] if source is not None else ()
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
    axes = _reported(propagation, layouts.get(out_node))
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
        tuple(dict.fromkeys([*_primary_note(result), *propagation.notes])),
        tuple(dict.fromkeys(propagation.statistics)),
        include_statistics,
        tuple(propagation.boundaries.get(axis, "zeros") for axis in range(spatial)),
    )


def _primary_note(result: Trace) -> list[str]:
    """Which input the field is of, for a forward with several."""
    inputs = result.inputs
    if inputs is None or inputs.single or len(inputs.tensors()) < 2:
        return []
    return [
        f"the field counts the positions of {inputs.primary_name()} "
        f"({inputs.main.describe()}); the other inputs are held fixed (input= picks another)"
    ]


def receptive_field(
    model: Any,
    input_shape: Any = None,
    *,
    include_statistics: bool = False,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> ReceptiveField:
    """The analytic receptive field of ``model``'s output on an input of ``input_shape``
    (batch and channel dims included), from one meta-device trace.

    ``include_statistics``: count the statistics of GroupNorm, InstanceNorm and
    spatial LayerNorm layers (then the field covers the span of their statistics,
    as the real gradient does); by default the field is the data path, as in the
    literature, and :attr:`ReceptiveField.statistics` names those layers.

    For a forward with several inputs (see :mod:`pytest_convcheck.inputs`), the
    field counts the positions of the primary input (``input=``, by default the
    first floating input with spatial dims); the others are held fixed.
    """
    from pytest_convcheck.tracing import trace

    result = trace(model, input_shape, example_inputs=example_inputs, input=input)
    return field_of_trace(result, include_statistics=include_statistics)


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
    input_shape: Any = None,
    *,
    min_size: int | Sequence[int] | None = None,
    max_size: int | Sequence[int] | None = None,
    exact: int | Sequence[int] | None = None,
    include_statistics: bool = False,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> ReceptiveField:
    """Assert bounds on the receptive field size of ``model``'s output (one number for
    every spatial axis, or one per axis). Returns the field.

    On failure the message shows the per-layer growth table, the layers that would
    grow the field most cheaply, and which normalisation layers' statistics span
    the input (counted with ``include_statistics``).
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    field = receptive_field(
        model,
        input_shape,
        include_statistics=include_statistics,
        example_inputs=example_inputs,
        input=input,
    )
    spatial = len(field.size)
    checks: list[tuple[Any, Callable[[int, int], bool], str]] = [
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
        if field.statistics_note():
            lines.append(f"note: {field.statistics_note()}")
        lines += [f"note: {note}" for note in field.notes]
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
