"""Which model-input positions each element of each traced tensor depends on.

Every tensor of a trace gets a :class:`Layout`: for each spatial axis ``a`` of
the model input, an :class:`~pytest_convcheck.axis_maps.AxisMap` ``M_a`` over a
*coordinate* ``j_a``, and for each dim of the tensor the *digits* that its index
is made of. A digit ``(a, size, unit)`` says that the dim's index contributes
``value · unit`` to ``j_a``; a digit of axis ``OTHER`` (channels, batch, a
window offset) contributes to no spatial coordinate. An element with coordinate
``j_a`` depends on the input positions ``M_a(j_a)`` along axis ``a``.

The model input ``(N, C, H, W)`` starts with one digit per dim and identity
maps. Each op's :mod:`effect <pytest_convcheck.dims>` then moves digits exactly:

* a reshape regroups the digits in row-major order (splitting a digit when a
  dim boundary falls inside it: ``H → (H/s, s)`` gives digits of unit ``s`` and
  ``1``), a permutation moves them with their dims — so space-to-depth written
  with ``view``/``permute``, channels-last permutes and flatten/unflatten are
  tracked exactly;
* *mixing* a dim (a conv's channels, ``softmax``, a reduction) removes its
  spatial digits: removing digit ``(a, s, u)`` composes ``M_a`` with the map
  ``k ↦ {k_low + u·v + u·s·k_high : v < s}`` (period ``u``, advance ``u·s``) —
  the union over the removed digit, which is exact;
* a windowed op along a dim first *focuses* the dim (makes it the one digit
  of its axis: other digits of the axis are mixed in, digits without an axis
  inside the dim become part of the coordinate, as after a pixel shuffle) and
  then composes ``M_a`` with the op's map;
* merges (add, mul, cat) take the union of their inputs' maps when their digits
  agree, and the whole axis when they do not; a ``cat`` along channels keeps its
  parts (:attr:`Layout.pieces`), so that a slice reading within one part
  (``cat([x, y], 1)[:, :c]``) has that part's layout, not the union.

Anything the analysis cannot follow exactly is over-stated, never under-stated:
an op without a rule mixes every axis of its inputs, and the analysis notes it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pytest_convcheck.axis_maps import AxisMap, merge_intervals
from pytest_convcheck.dims import (
    Chain,
    Constant,
    Contract,
    Effect,
    Expand,
    Join,
    Mix,
    Pointwise,
    Relayout,
    Split,
    Statistics,
    Unknown,
    Window,
)
from pytest_convcheck.layouts import (
    OTHER,
    Digit,
    Layout,
    Shape,
    concatenated_parts,
    digits_size,
    freeze_dims,
    other_digits,
    part_read,
    regroup,
)

_PROMOTE_LIMIT = 1 << 14  # larger relabellings are mixed instead (an over-statement)

__all__ = ["OTHER", "Layout", "Propagation"]


@dataclass
class Propagation:
    """Applies effects to layouts; collects notes on what it could not follow
    exactly. ``extents``: the model input's spatial sizes (a map that reaches
    every position of an axis becomes ``whole``)."""

    extents: tuple[int, ...]
    include_statistics: bool = False
    _last: list[int] = field(default_factory=list)  # of the op being applied
    notes: list[str] = field(default_factory=list)
    statistics: list[str] = field(default_factory=list)
    boundaries: dict[int, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ digits
    def _whole_if_covering(self, maps: list[AxisMap], dims: list[list[Digit]], axis: int) -> None:
        """An axis left without digits (one field for every element): whole when that
        field covers the input; else the field clipped to the input positions read
        for real (periodic maps carry a layer's padding on past the input's end,
        where an unpadded strided layer dropped border rows)."""
        if maps[axis].whole or any(d[0] == axis for digits in dims for d in digits):
            return
        reached = maps[axis].at(0)
        extent = self.extents[axis]
        last = min(self._last[axis], extent - 1) if axis < len(self._last) else extent - 1
        covers = reached and reached[0][0] <= 0 and reached[-1][1] >= last and len(reached) == 1
        if covers and last >= extent - 1:
            maps[axis] = AxisMap.everything()
            return
        clipped = tuple((max(lo, 0), min(hi, last)) for lo, hi in reached if hi >= 0 and lo <= last)
        maps[axis] = AxisMap(1, 0, (clipped,))  # every element reads the same positions

    def _remove(self, maps: list[AxisMap], dims: list[list[Digit]], dim: int, index: int) -> None:
        """Mix one spatial digit away: the union over its values (exact)."""
        axis, s, u = dims[dim][index]
        dims[dim][index] = (OTHER, s, 0)
        if not maps[axis].whole:
            taps = tuple(
                merge_intervals((r + v * u, r + v * u) for v in range(s)) for r in range(u)
            )
            maps[axis] = _then(maps[axis], AxisMap(u, u * s, taps))
        for digits in dims:
            for i, (a, size, unit) in enumerate(digits):
                if a == axis and unit > u:
                    digits[i] = (a, size, unit // s)
        self._whole_if_covering(maps, dims, axis)

    def _marginalize(self, maps: list[AxisMap], dims: list[list[Digit]], dim: int) -> None:
        while True:
            index = next((i for i, d in enumerate(dims[dim]) if d[0] >= 0), None)
            if index is None:
                break
            self._remove(maps, dims, dim, index)
        dims[dim] = list(other_digits(digits_size(dims[dim])))

    def _focus(
        self, maps: list[AxisMap], dims: list[list[Digit]], dim: int, label: str = ""
    ) -> int | None:
        """Make ``dim`` the only dim of its axis, its index the axis coordinate;
        the axis, or ``None`` when the dim holds no (or several) spatial axes (then
        mixed, and noted for the op ``label``)."""
        axes = {d[0] for d in dims[dim] if d[0] >= 0}
        if not axes:
            return None
        if len(axes) > 1:
            if label:
                self.notes.append(
                    f"{label} slides a window along a dim that holds several spatial "
                    f"axes (flattened together): taken as mixing them, so the field "
                    f"may be smaller than stated"
                )
            self._marginalize(maps, dims, dim)
            return None
        (axis,) = axes
        for other in range(len(dims)):
            while other != dim:
                index = next((i for i, d in enumerate(dims[other]) if d[0] == axis), None)
                if index is None:
                    break
                self._remove(maps, dims, other, index)
        if not any(d[0] == axis for d in dims[dim]):  # mixed away above (cannot happen)
            return None
        digits = dims[dim]
        n = digits_size(digits)
        if len(digits) == 1 and digits[0][2] == 1:
            return axis
        top = digits[0]
        if top[0] == axis:
            period, advance, lower = n // top[1], top[2], digits[1:]
        else:
            period, advance, lower = n, 0, digits
        if period > _PROMOTE_LIMIT:
            self._marginalize(maps, dims, dim)
            return None
        taps = []
        for r in range(period):
            j, rest = 0, r
            for a, size, unit in reversed(lower):
                if a == axis:
                    j += (rest % size) * unit
                rest //= size
            taps.append(((j, j),))
        if not maps[axis].whole:
            maps[axis] = _then(maps[axis], AxisMap(period, advance, tuple(taps)))
        dims[dim] = [(axis, n, 1)]
        return axis

    _BOUNDARY_ORDER = ("zeros", "replicate", "reflect", "circular")

    def _boundary(self, axis: int, mode: str) -> None:
        """Remember the farthest-reaching padding mode met along ``axis``."""
        order = self._BOUNDARY_ORDER
        known = self.boundaries.get(axis, "zeros")
        if mode in order and order.index(mode) > order.index(known):
            self.boundaries[axis] = mode

    # ------------------------------------------------------------------ effects
    def apply(
        self,
        effect: Effect,
        sources: Sequence[Layout],
        out_shape: Shape,
        label: str,
        positions: Sequence[int] = (),
    ) -> Layout | None:
        """The layout of an op's output from its data inputs' layouts (``None``:
        it reads no input position); ``positions``: where each data input sits
        among the op's tensor arguments."""
        if not sources or isinstance(effect, Constant):
            return None
        lasts = [s.last for s in sources if s.last]
        self._last = [max(v) for v in zip(*lasts, strict=True)] if lasts else []
        result = self._apply(effect, sources, out_shape, label, positions)
        if result is not None and self._last:
            result = replace(result, last=tuple(self._last))
        return result

    def _apply(
        self,
        effect: Effect,
        sources: Sequence[Layout],
        out_shape: Shape,
        label: str,
        positions: Sequence[int],
    ) -> Layout | None:
        if isinstance(effect, Unknown):
            where = f" in {label}" if label != effect.op else ""
            self.notes.append(
                f"no rule for {effect.op}{where}: it is taken to mix every axis of its "
                f"input, so the field may be smaller than stated"
            )
            return self._everything_of(sources, out_shape)
        if isinstance(effect, Pointwise):
            used = list(sources) if effect.data == "all" else [sources[0]]
            if len(used) == 1 and used[0].shape() == tuple(out_shape):
                return used[0]  # an activation, a cast: the same layout
            return self._merge(used, out_shape, label)
        if (
            isinstance(effect, Statistics)
            and not self.include_statistics
            and not any(d < len(sources[0].dims) and sources[0].spatial_in(d) for d in effect.dims)
        ):
            return sources[0]
        if isinstance(effect, Join):
            return self._join(effect, sources, label)
        if isinstance(effect, Contract):
            if len(sources) == 1 and positions and positions[0] in (0, 1):
                return self.contract_one(sources[0], positions[0], effect.out_shape, label)
            if any(s.axis_dims(a) for s in sources for a in range(len(s.maps))):
                self.notes.append(
                    f"{label} multiplies tensors that both depend on the input (attention's "
                    f"q @ k.T): every output is taken to read every position of each, so "
                    f"the field may be smaller than stated (attention within windows)"
                )
            return self._everything_of(sources, effect.out_shape)
        result = self._single(effect, sources[0], out_shape, label)
        extra = sources[1:] if effect.data == "mixed" else ()
        if extra and result is not None:
            result = self._mixed_in(result, extra, label)
        return result

    def _single(self, effect: Effect, source: Layout, out_shape: Shape, label: str) -> Layout:
        maps, dims = list(source.maps), [list(d) for d in source.dims]
        if isinstance(effect, Chain):
            layout = source
            for step in effect.effects:
                layout = self._single(step, layout, _shape_after(step, layout), label)
            return layout
        if isinstance(effect, Relayout):
            return self._relayout(source, effect, label)
        if isinstance(effect, Statistics):
            spans = [d for d in effect.dims if d < len(dims) and source.spatial_in(d)]
            if spans:
                self.statistics.append(label)
            if self.include_statistics:
                for d in effect.dims:
                    if d < len(dims):
                        self._marginalize(maps, dims, d)
            return Layout(freeze_dims(dims), tuple(maps))
        if isinstance(effect, Mix):
            if not effect.exact and any(source.spatial_in(d) for d in effect.dims if d < len(dims)):
                self.notes.append(
                    f"{effect.what} in {label} moves positions along a spatial axis: taken as "
                    f"mixing it, so the field may be smaller than stated"
                )
            for d in effect.dims:
                if d < len(dims):
                    self._marginalize(maps, dims, d)
            return self._reshaped_output(maps, dims, out_shape, drop=effect.dims)
        if isinstance(effect, Split):
            if effect.dim < len(dims) and source.spatial_in(effect.dim):
                self.notes.append(
                    f"{label} splits a spatial axis into pieces at offsets the trace does not "
                    f"keep: taken as mixing it"
                )
                self._marginalize(maps, dims, effect.dim)
            elif (
                source.pieces
                and source.pieces_dim == effect.dim
                and len({part.maps for _, _, part in source.pieces}) > 1
            ):
                self.notes.append(
                    f"{label} splits a concatenation into pieces the trace does not tell "
                    f"apart: each is given the union of the parts' fields (a slice, "
                    f"x[:, a:b], keeps its part's)"
                )
            return self._reshaped_output(maps, dims, out_shape, drop=(effect.dim,))
        if isinstance(effect, Window):
            piece = part_read(source, effect, out_shape)
            if piece is not None:
                if piece.last:
                    self._last = list(piece.last)
                return piece
            for d in effect.mixes:
                self._marginalize(maps, dims, d)
                dims[d] = list(other_digits(out_shape[d] if d < len(out_shape) else 1))
            for d, layer in zip(effect.dims, effect.maps, strict=True):
                axis = self._focus(maps, dims, d, label)
                size = out_shape[d] if d < len(out_shape) else 1
                if axis is None:
                    dims[d] = list(other_digits(size))
                    continue
                if axis < len(self._last) and not maps[axis].whole:
                    # the last coordinate the output really reads, and what it reaches
                    n_in = digits_size(dims[d])
                    read = layer.at(max(size - 1, 0))
                    if read:
                        coordinate = min(n_in - 1, read[-1][1])
                        reached = maps[axis].at(coordinate)
                        if reached and coordinate >= 0:
                            self._last[axis] = min(self._last[axis], reached[-1][1])
                maps[axis] = _then(maps[axis], layer)
                if effect.boundary != "zeros":
                    self._boundary(axis, effect.boundary)
                dims[d] = [(axis, size, 1)] if size > 1 and not maps[axis].whole else []
                if size <= 1:
                    self._whole_if_covering(maps, dims, axis)
                if maps[axis].whole:
                    for digits in dims:
                        digits[:] = [
                            (OTHER, s, 0) if a == axis else (a, s, u) for a, s, u in digits
                        ]
                    dims[d] = list(other_digits(size))
            windowed = set(effect.dims) | set(effect.mixes)
            for d in range(min(len(dims), len(out_shape))):
                if d not in windowed and digits_size(dims[d]) != out_shape[d]:
                    self._marginalize(maps, dims, d)
                    dims[d] = list(other_digits(out_shape[d]))
            if len(out_shape) < len(dims):
                return self._everything(Layout(freeze_dims(dims), tuple(maps)), out_shape)
            dims += [list(other_digits(s)) for s in out_shape[len(dims) :]]
            return Layout(freeze_dims(dims), tuple(maps))
        if isinstance(effect, Expand):
            new_dims: list[list[Digit]] = []
            for i, (src, tile) in enumerate(zip(effect.sources, effect.tiles, strict=True)):
                size = out_shape[i]
                if src is None or src >= len(dims) or digits_size(dims[src]) == 1:
                    new_dims.append(list(other_digits(size)))
                else:
                    new_dims.append([*other_digits(tile), *dims[src]])
            return Layout(freeze_dims(new_dims), tuple(maps))
        return self._everything(source, out_shape)

    def _reshaped_output(
        self,
        maps: list[AxisMap],
        dims: list[list[Digit]],
        out_shape: Shape,
        drop: Sequence[int],
    ) -> Layout:
        """The output of an op that mixed ``drop`` (now without spatial digits):
        kept (resized) when the rank is the same, removed when the rank fell by
        their number."""
        rank = len(dims)
        if len(out_shape) == rank:
            for d in range(rank):
                if digits_size(dims[d]) != out_shape[d]:
                    if d not in drop:
                        self._marginalize(maps, dims, d)
                    dims[d] = list(other_digits(out_shape[d]))
            return Layout(freeze_dims(dims), tuple(maps))
        kept = [dims[d] for d in range(rank) if d not in drop]
        if len(kept) == len(out_shape) and all(
            digits_size(k) == s for k, s in zip(kept, out_shape, strict=True)
        ):
            return Layout(freeze_dims(kept), tuple(maps))
        return self._everything(Layout(freeze_dims(dims), tuple(maps)), out_shape)

    def _everything(self, source: Layout, out_shape: Shape) -> Layout:
        """Every element reads every position its input reads: each axis with digits
        gets the union of its input's fields (the whole input where they cover it;
        a strided layer that dropped the last rows leaves them out), the others keep
        their one field."""
        maps, dims = list(source.maps), [list(d) for d in source.dims]
        for d in range(len(dims)):
            self._marginalize(maps, dims, d)
        return Layout(tuple(other_digits(s) for s in out_shape), tuple(maps))

    def _everything_of(self, sources: Sequence[Layout], out_shape: Shape) -> Layout:
        """:meth:`_everything` of an op with several data inputs (``q @ k.T``, an op
        without a rule): every element reads every position each input reads, so
        per axis the union of their fields (the whole input where it covers it)."""
        layouts = [self._everything(source, out_shape) for source in sources]
        if len(layouts) == 1:
            return layouts[0]
        maps = [
            AxisMap.everything()
            if any(layout.maps[axis].whole for layout in layouts)
            else AxisMap(1, 0, (merge_intervals(i for ly in layouts for i in ly.maps[axis].at(0)),))
            for axis in range(len(layouts[0].maps))
        ]
        dims = [list(d) for d in layouts[0].dims]  # no spatial digit left
        for axis in range(len(maps)):
            self._whole_if_covering(maps, dims, axis)
        return Layout(layouts[0].dims, tuple(maps))

    def _relayout(self, source: Layout, effect: Relayout, label: str) -> Layout:
        layout = source
        for kind, value in effect.steps:
            if kind == "permute":
                layout = Layout(tuple(layout.dims[d] for d in value), layout.maps)
                continue
            regrouped = regroup(layout.dims, value)
            if regrouped is None:
                self.notes.append(
                    f"{label} reshapes {_show(layout.shape())} to {_show(value)} across "
                    f"positions: taken as mixing the axes it moves"
                )
                return self._everything(layout, value)
            layout = Layout(regrouped, layout.maps)
        return layout

    def _merge(self, sources: Sequence[Layout], out_shape: Shape, label: str) -> Layout:
        """Pointwise merge of broadcast operands (aligned from the right)."""
        rank = len(out_shape)
        aligned: list[list[tuple[Digit, ...]]] = []
        for source in sources:
            pad = rank - len(source.dims)
            if pad < 0:
                return self._everything(source, out_shape)
            aligned.append([()] * pad + list(source.dims))
        spatial = len(sources[0].maps)
        maps: list[AxisMap] = []
        for axis in range(spatial):
            placements: list[tuple[tuple[tuple[int, int, Digit], ...], AxisMap]] = []
            fixed: list[tuple[tuple[tuple[int, int, Digit], ...], AxisMap]] = []
            for source, operand_dims in zip(sources, aligned, strict=True):
                place = tuple(
                    (d, i, digit)
                    for d, digits in enumerate(operand_dims)
                    for i, digit in enumerate(digits)
                    if digit[0] == axis
                )
                (placements if place else fixed).append((place, source.maps[axis]))
            maps.append(self._union(placements, fixed, label))
        dims: list[tuple[Digit, ...]] = []
        for d, size in enumerate(out_shape):
            chosen: tuple[Digit, ...] = other_digits(size)
            for operand in aligned:
                digits = operand[d]
                if (
                    digits_size(digits) == size
                    and size > 1
                    and any(g[0] >= 0 and not maps[g[0]].whole for g in digits)
                ):
                    chosen = digits
                    break
            chosen = tuple(
                (OTHER, s, 0) if a >= 0 and maps[a].whole else (a, s, u) for a, s, u in chosen
            )
            dims.append(chosen)
        return Layout(tuple(dims), tuple(maps))

    def _union(
        self,
        placements: list[tuple[tuple[tuple[int, int, Digit], ...], AxisMap]],
        fixed: list[tuple[tuple[tuple[int, int, Digit], ...], AxisMap]],
        label: str,
    ) -> AxisMap:
        maps = [m for _, m in placements] + [m for _, m in fixed]
        if any(m.whole for m in maps):
            return AxisMap.everything()
        if placements:
            first = placements[0][0]
            if any(place != first for place, _ in placements[1:]):
                self.notes.append(
                    f"{label} merges tensors whose positions are laid out differently: the "
                    f"field is taken as the whole input along that axis"
                )
                return AxisMap.everything()
            if fixed:  # a gate (x · σ(mean(x))), a broadcast operand: one field for all
                # position j reads its own field and the fixed one: not periodic, and an
                # enumeration over the extent extrapolates the fixed field into later
                # layers' padding (fields larger than the input), so: the whole axis
                self.notes.append(
                    f"{label} merges a tensor with positions along an axis and one with a "
                    f"single field for all of them (a gate, a broadcast): taken as the "
                    f"whole input along that axis, so the field may be smaller than stated"
                )
                return AxisMap.everything()
        result = maps[0]
        for other in maps[1:]:
            union = result.union(other)
            if union is None:
                if not placements:  # one position each: the union of their fields
                    union = AxisMap(1, 1, (merge_intervals(result.at(0) + other.at(0)),))
                else:
                    extent = math.prod(digit[1] for _, _, digit in placements[0][0])
                    return self._enumerated(placements, extent, label)
            result = union
        return result

    def _enumerated(
        self,
        placements: list[tuple[tuple[tuple[int, int, Digit], ...], AxisMap]],
        extent: int,
        label: str,
    ) -> AxisMap:
        """The union of paths whose strides differ (an FPN's nearest upsampling to an
        odd size): not periodic, so enumerated position by position over the
        tensor's extent, which is then one period; virtual positions past it (a
        later conv's padding) follow the first path's stride."""
        first = placements[0][1]
        period = math.lcm(max(extent, 1), first.period)
        if period > _PROMOTE_LIMIT:
            self.notes.append(
                f"{label} merges paths with strides {_plain(first)} and others over "
                f"{extent} positions: the field is taken as the whole input along that axis"
            )
            return AxisMap.everything()
        advance = period // first.period * first.advance
        taps = tuple(
            merge_intervals(found for _, m in placements for found in m.at(j))
            for j in range(period)
        )
        return AxisMap(period, advance, taps)

    def _join(self, effect: Join, sources: Sequence[Layout], label: str) -> Layout:
        prepared = []
        rank = len(effect.out_shape)
        for source in sources:
            maps, dims = list(source.maps), [list(d) for d in source.dims]
            if effect.new:
                dims.insert(effect.dim, [])
            if len(dims) != rank:
                return self._everything(source, effect.out_shape)
            if any(d[0] >= 0 for d in dims[effect.dim]):
                self.notes.append(f"{label} concatenates along a spatial axis: taken as mixing it")
                self._marginalize(maps, dims, effect.dim)
            dims[effect.dim] = list(other_digits(effect.out_shape[effect.dim]))
            prepared.append(Layout(freeze_dims(dims), tuple(maps)))
        merged = self._merge(prepared, effect.out_shape, label)
        pieces = concatenated_parts(effect, sources)
        return replace(merged, pieces=pieces, pieces_dim=effect.dim) if pieces else merged

    def contract_one(self, source: Layout, operand: int, out_shape: Shape, label: str) -> Layout:
        """``x @ W`` (``operand`` 0) or ``W @ x`` (``operand`` 1) with ``W`` a constant."""
        maps, dims = list(source.maps), [list(d) for d in source.dims]
        if len(dims) < 2 or len(out_shape) < len(dims):
            return self._everything(source, out_shape)
        summed = len(dims) - 1 if operand == 0 else len(dims) - 2
        self._marginalize(maps, dims, summed)
        dims[summed] = list(other_digits(out_shape[summed - len(dims)]))
        lead = [list(other_digits(s)) for s in out_shape[: len(out_shape) - len(dims)]]
        result = lead + dims
        if tuple(digits_size(d) for d in result) != tuple(out_shape):
            return self._everything(source, out_shape)
        return Layout(freeze_dims(result), tuple(maps))

    def _mixed_in(self, result: Layout, extra: Sequence[Layout], label: str) -> Layout:
        """Further data inputs whose every element reaches every output element
        (weights computed from the input, indices)."""
        maps = list(result.maps)
        for source in extra:
            for axis, axis_map in enumerate(source.maps):
                if source.axis_dims(axis) or axis_map.whole:
                    maps[axis] = AxisMap.everything()
        dims = tuple(
            tuple((OTHER, s, 0) if a >= 0 and maps[a].whole else (a, s, u) for a, s, u in digits)
            for digits in result.dims
        )
        return Layout(dims, tuple(maps))

    # ------------------------------------------------------------------ reading
    def reported(self, layout: Layout, axis: int) -> AxisMap:
        """The map of ``axis`` over the positions of the dim that holds it (a pixel
        shuffle's output rows, not its input's): the layout with that dim focused."""
        if layout.maps[axis].whole or axis in layout.plain_axes:
            return layout.maps[axis]
        maps, dims = list(layout.maps), [list(d) for d in layout.dims]
        holding = layout.axis_dims(axis)
        # the dim of the axis' most significant digit; other axes' digits are no
        # concern of this axis: read them as channels
        top = max(holding, key=lambda d: max(u for a, _, u in dims[d] if a == axis))
        for digits in dims:
            digits[:] = [
                (OTHER, s, 0) if a not in (axis, OTHER) else (a, s, u) for a, s, u in digits
            ]
        quiet = Propagation(self.extents)
        quiet._focus(maps, dims, top)
        return maps[axis]


@functools.lru_cache(maxsize=4096)
def _then(upstream: AxisMap, layer: AxisMap) -> AxisMap:
    """``upstream.then(layer)``, computed once per pair (the axes of a square model
    and the repeated blocks of a deep one compose the same maps)."""
    return upstream.then(layer)


def _show(shape: Shape) -> str:
    return "×".join(map(str, shape))


def _plain(axis_map: AxisMap) -> str:
    stride = axis_map.plain_stride()
    return str(stride)


def _shape_after(effect: Effect, layout: Layout) -> Shape:
    if isinstance(effect, Window):
        return effect.out_shape
    if isinstance(effect, Relayout):
        shape = layout.shape()
        for kind, value in effect.steps:
            shape = tuple(shape[d] for d in value) if kind == "permute" else value
        return shape
    if isinstance(effect, (Mix, Split, Expand)):
        return effect.out_shape
    return layout.shape()
