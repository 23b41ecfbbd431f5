"""Receptive fields measured with autograd, and the effective receptive field.

``empirical_receptive_field`` differentiates chosen output positions with respect
to the input on a *linearised* CPU copy of the model (:mod:`pytest_convcheck.linearised`:
max-pooling becomes its dependency pattern, activations and dropout the identity,
weights positive and subtraction addition, normalisations their data path, …), so
that a gradient is non-zero exactly where the output depends on the input. It picks
an input on which the fields of the measured output positions fit, and one output
position per phase.

Memory is estimated from the trace before anything runs: a measurement over
its budget is refused (:class:`~pytest_convcheck.errors.MeasurementRefused`)
with what it would need.

The user's model is never touched. ``effective_receptive_field`` is Luo et al.'s
"Understanding the Effective Receptive Field in Deep CNNs" (NeurIPS 2016): the
mean gradient magnitude of the centre output over random inputs, with the real
non-linearities and the current (or freshly initialised) weights.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_convcheck.axis_maps import AxisMap
from pytest_convcheck.errors import MeasurementRefused, ShapeError
from pytest_convcheck.fields import FieldNumbers, ReceptiveField, field_of_trace, node_maps
from pytest_convcheck.inputs import Inputs, as_inputs
from pytest_convcheck.linearised import Linearised, linearise
from pytest_convcheck.tracing import (
    ModelRunError,
    Trace,
    TraceNode,
    first_tensor,
    forward_failures,
    materialized_copy,
    trace,
)
from pytest_convcheck.tracing.failures import is_dtype_clash

__all__ = [
    "EffectiveField",
    "MeasuredField",
    "effective_receptive_field",
    "empirical_receptive_field",
]


@dataclass(frozen=True)
class MeasuredField(FieldNumbers):
    """A receptive field measured with autograd: the same numbers as
    :class:`~pytest_convcheck.fields.ReceptiveField`, plus the measured positions
    (output index → per-axis input positions) and the hole map (the input
    positions that reach the first measured output position)."""

    measured: dict[tuple[int, ...], tuple[tuple[int, ...], ...]]
    hole_map: torch.Tensor
    clipped: bool = False
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        fmt = "×".join
        text = (
            f"measured receptive field of {self.model} on input "
            f"{fmt(map(str, self.input_shape))}: size {fmt(map(str, self.size))}, stride "
            f"{fmt(map(str, self.stride))}, offset {', '.join(map(str, self.offset))}"
        )
        if self.holes:
            text += f", holes at {self.hole_positions}"
        if self.clipped:
            text += " (clipped by the input's borders)"
        return text + "".join(f"\nnote: {n}" for n in self.notes)


def _alignment(result: Trace) -> list[int]:
    """Per spatial axis, the least common multiple of the integer strides reached
    inside the model: sizes that are multiples of it go through every
    downsampling stage alike (a U-Net at 576, not 570)."""
    maps, _ = node_maps(result)
    spatial = result.spatial
    found = [1] * spatial
    for axes in maps.values():
        for axis, axis_map in enumerate(axes):
            if axis_map.whole or axis_map.advance <= 0:
                continue
            step = axis_map.advance // math.gcd(axis_map.advance, axis_map.period)
            if step <= 1024:
                found[axis] = math.lcm(found[axis], step)
    return found


def _fitting_shape(
    model: nn.Module, inputs: Inputs, analytic: ReceptiveField, base: Trace
) -> tuple[tuple[int, ...], bool, list[int], Trace]:
    """``input_shape`` when the field fits it; else the smallest larger input, a
    multiple of the model's strides along each axis (where every stage downsamples
    alike, not a U-Net at 570), on which the fields of output positions
    ``q·P + r`` (all phases r) lie inside the input; ``clipped`` when the model
    runs at no such size.

    Per axis, phase r's field is ``q·T + [lo_r, hi_r]``: it fits from
    ``q = max_r ceil(−lo_r / T)`` on, in an input of ``q·T + max_r hi_r + 1``.
    """
    spatial = len(analytic.axes)
    input_shape = inputs.shape
    wanted = list(input_shape)
    first_q = []
    for axis, axis_map in enumerate(analytic.axes):
        if axis_map.whole or not any(axis_map.taps) or axis_map.advance <= 0:
            first_q.append(0)
            continue
        lows = [t[0][0] for t in axis_map.taps if t]
        highs = [t[-1][1] for t in axis_map.taps if t]
        q = max(0, max(math.ceil(-lo / axis_map.advance) for lo in lows))
        first_q.append(q)
        need = q * axis_map.advance + max(highs) + 1
        wanted[-spatial + axis] = max(wanted[-spatial + axis], need)
    step = _alignment(base)
    for axis in range(spatial):
        size = wanted[-spatial + axis]
        if size != input_shape[-spatial + axis]:
            wanted[-spatial + axis] = -(-size // step[axis]) * step[axis]
    if tuple(wanted) == tuple(input_shape):
        return input_shape, False, first_q, base
    for _ in range(16):
        shape = tuple(wanted)
        try:
            result = trace(model, inputs.with_shape(shape))
        except (ShapeError, ModelRunError):
            result = None
        if result is not None and result.outputs and result.outputs[0][1][0] == shape[0]:
            out = result.outputs[0][1]
            fits = len(out) < 3 or all(
                q * m.period + m.period - 1 < out[-spatial + axis]
                for axis, (q, m) in enumerate(zip(first_q, analytic.axes, strict=True))
                if not m.whole
            )
            if fits:
                return shape, False, first_q, result
        # the next size every stride divides
        for axis, m in enumerate(analytic.axes):
            if not m.whole:
                wanted[-spatial + axis] += step[axis]
    return input_shape, True, [0] * spatial, base


def _batch_one(model: nn.Module, inputs: Inputs) -> tuple[Inputs, Trace]:
    """``inputs`` with batch 1 where the model takes it, and its trace."""
    single = inputs.with_batch(1)
    try:
        return single, trace(model, single)
    except (ShapeError, ModelRunError):
        return inputs, trace(model, inputs)


def _need_floating(model: nn.Module, inputs: Inputs) -> None:
    """Gradients reach floating inputs only."""
    if not inputs.main.floating:
        raise MeasurementRefused(
            f"{type(model).__name__}: the primary input ({inputs.primary_name()}, "
            f"{inputs.main.describe()}) holds integers — no gradient reaches it, so a "
            f"gradient cannot measure its field.\n  fix: rely on the analytic field "
            f"(receptive_field), or pick a floating input with input=."
        )


_BYTES = 8  # float64

# ops that cut the gradient path: what a refused measurement names
_GRADIENT_CUTS = frozenset(
    {"detach", "detach_", "round", "round_", "byte", "char", "short", "int", "long", "bool"}
)


def _casts_to_integers(node: TraceNode) -> bool:
    """A ``.to(dtype)`` to an integer or boolean dtype."""
    call = node.call
    if node.op != "to" or call is None or len(call.args) < 2:
        return False
    target = call.args[1]
    return isinstance(target, torch.dtype) and not (target.is_floating_point or target.is_complex)


def _memory_needed(result: Trace) -> int:
    """Bytes of the linearised float64 forward and its autograd graph: every
    intermediate tensor once (autograd keeps most of them) plus the input gradient."""
    total = math.prod(result.input_shape) * 2
    for node in result.nodes:
        if node.output_shape is not None:
            total += math.prod(node.output_shape)
    return total * _BYTES


def _show_bytes(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


_MEASURED_PER_AXIS = 8


def _positions_on_axis(axis_map: AxisMap, out_extent: int, in_extent: int) -> list[int]:
    """Output positions along one axis whose whole field lies inside the input: one
    per phase when there are few phases, else the largest field and others spread
    over the axis; the middle when no field fits."""
    if axis_map.whole:
        return [out_extent // 2]
    fitting: dict[int, int] = {}  # phase → first fitting position
    sizes: dict[int, int] = {}
    for j in range(out_extent):
        reached = axis_map.at(j)
        if reached and reached[0][0] >= 0 and reached[-1][1] < in_extent:
            phase = j % axis_map.period
            if phase not in fitting:
                fitting[phase] = j
                sizes[j] = reached[-1][1] - reached[0][0] + 1
    if not fitting:
        return [out_extent // 2]
    found = [fitting[phase] for phase in sorted(fitting)]
    if len(found) <= _MEASURED_PER_AXIS:
        return found
    largest = max(found, key=lambda j: sizes[j])
    step = len(found) / (_MEASURED_PER_AXIS - 1)
    spread = [found[int(i * step)] for i in range(_MEASURED_PER_AXIS - 1)]
    return list(dict.fromkeys([*spread[:1], largest, *spread[1:]]))


def _positions_to_measure(
    analytic: ReceptiveField, output_shape: tuple[int, ...], input_shape: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """Output positions to differentiate: per axis those of
    :func:`_positions_on_axis`, combined index by index."""
    spatial = len(analytic.axes)
    per_axis = [
        _positions_on_axis(m, out, size)
        for m, out, size in zip(
            analytic.axes, output_shape[-spatial:], input_shape[-spatial:], strict=True
        )
    ]
    count = max(len(p) for p in per_axis)
    return list(dict.fromkeys(tuple(p[i % len(p)] for p in per_axis) for i in range(count)))


def empirical_receptive_field(
    model: nn.Module,
    input_shape: Any = None,
    *,
    positions: Sequence[Sequence[int]] | None = None,
    include_statistics: bool = False,
    max_memory: int = 2 * 2**30,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> MeasuredField:
    """Measure the receptive field of ``model`` with autograd on a linearised copy.

    Picks an input large enough for the field of an output position to fit (a
    size every stride of the model divides, so that the geometry is the one at
    ``input_shape``; ``clipped`` says when the model runs at no such size), and
    measures one output position per phase (or the given ``positions``, spatial
    indices of the output). ``include_statistics`` counts normalisation
    statistics, as :func:`~pytest_convcheck.fields.receptive_field` does.

    The measurement runs with batch 1 in float64; its memory is estimated from
    the trace first. A field too large to fit a measurable input is measured on
    the given input, clipped by its borders (``clipped``, with a note); a
    measurement above ``max_memory`` bytes even then is refused with
    :class:`~pytest_convcheck.errors.MeasurementRefused`.
    """
    inputs = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    _need_floating(model, inputs)
    shape = inputs.shape
    base = trace(model, inputs)
    analytic = field_of_trace(base, include_statistics=include_statistics)
    spatial = len(analytic.axes)
    fitted, clipped, _, result = _fitting_shape(model, inputs, analytic, base)
    batch_one_shape = (1, *fitted[1:])
    if fitted[0] != 1:
        try:
            result = trace(model, inputs.with_shape(batch_one_shape))
            fitted = batch_one_shape
        except (ShapeError, ModelRunError):
            pass
    given = inputs
    inputs = inputs.with_shape(fitted)
    if fitted != shape:
        shape = fitted
        analytic = field_of_trace(result, include_statistics=include_statistics)
    needed = _memory_needed(result)
    notes: list[str] = []
    if needed > max_memory and fitted != given.shape:
        # the field does not fit a measurable input: measure it at the given size,
        # clipped by the input's borders, when that fits the budget
        at_given = _batch_one(model, given)
        if _memory_needed(at_given[1]) <= max_memory:
            notes.append(
                f"the field ({'×'.join(map(str, analytic.size))}) would need an input of "
                f"{'×'.join(map(str, shape))}, about {_show_bytes(needed)}, over the budget "
                f"of {_show_bytes(max_memory)}: measured on the given input, clipped by its "
                f"borders"
            )
            inputs, result = at_given
            shape = inputs.shape
            analytic = field_of_trace(result, include_statistics=include_statistics)
            clipped = True
            needed = _memory_needed(result)
    if needed > max_memory:
        raise MeasurementRefused(
            f"{type(model).__name__}: measuring the receptive field needs an input of "
            f"{'×'.join(map(str, shape))} (the analytic field is "
            f"{'×'.join(map(str, analytic.size))} input positions, stride "
            f"{'×'.join(map(str, analytic.stride))}), about {_show_bytes(needed)} in float64 "
            f"with its autograd graph — over the budget of {_show_bytes(max_memory)}.\n  fix: "
            f"rely on the analytic field (receptive_field), pass max_memory= to allow more, "
            f"or measure a truncated model (its first stages)."
        )
    try:
        out, x = _linearised_forward(model, inputs, include_statistics, torch.float64)
    except ModelRunError as error:
        if not is_dtype_clash(str(error)):
            raise
        # the forward casts to float32 itself (MONAI's vector quantiser: inputs.float())
        out, x = _linearised_forward(model, inputs, include_statistics, torch.float32)
        notes.append(
            "measured in float32: the forward casts to float32 itself, which a float64 copy "
            "cannot follow"
        )
    if out is None:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    if not out.requires_grad:
        cuts = sorted(
            {n.op for n in result.nodes if n.op in _GRADIENT_CUTS}
            | {f"to({n.call.args[1]})" for n in result.nodes if n.call and _casts_to_integers(n)}
        )
        raise MeasurementRefused(
            f"{type(model).__name__}: the output does not depend on the input through "
            f"differentiable ops"
            + (f" (the forward calls {', '.join(cuts)})" if cuts else "")
            + ", so a gradient cannot show which inputs it reads.\n  fix: rely on the "
            "analytic field (receptive_field), or measure the part of the model before the "
            "cut (e.g. its encoder)."
        )
    out_shape = tuple(out.shape)
    spatial_out = len(out_shape) - 2
    if spatial_out >= 1 and spatial_out != spatial:
        notes.append(
            f"the output ({'×'.join(map(str, out_shape))}) has not the input's {spatial} "
            f"spatial axes: the whole output was measured"
        )
        spatial_out = 0
    if spatial_out < 1:
        # no spatial output (a classifier): every output depends on the whole input
        chosen: list[tuple[int, ...]] = [()]
    else:
        chosen = (
            [tuple(p) for p in positions]
            if positions
            else _positions_to_measure(analytic, out_shape, shape)
        )
    measured: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
    hole_map = torch.zeros(shape[-spatial:], dtype=torch.bool)
    hole_axes: tuple[tuple[int, ...], ...] = ()
    for position in chosen:
        index: tuple[slice | int, ...] = (slice(None), slice(None), *position)
        target = out[index] if position else out
        with _gradient_failures(model):
            (grad,) = torch.autograd.grad(target.sum(), x, retain_graph=True)
        if not torch.isfinite(grad).all():
            raise MeasurementRefused(
                f"{type(model).__name__}: the gradient of the linearised copy overflowed "
                f"(inf/NaN) at output position {position}; the measurement cannot tell "
                f"which inputs it depends on.\n  fix: rely on the analytic field "
                f"(receptive_field), or report the model: an op grows values without bound."
            )
        mask = grad.abs().sum(dim=tuple(range(len(shape) - spatial))) > 0
        per_axis = []
        for axis in range(spatial):
            others = tuple(a for a in range(spatial) if a != axis)
            line = mask.any(dim=others) if others else mask
            per_axis.append(tuple(int(i) for i in torch.nonzero(line).flatten()))
        measured[position] = tuple(per_axis)
        if position == chosen[0] or (_holed(measured[position]) and not _holed(hole_axes)):
            hole_map, hole_axes = mask, measured[position]  # the first, or the first with holes
    if measured and not any(any(axis) for axis in measured.values()):
        raise MeasurementRefused(
            f"{type(model).__name__}: every measured gradient is zero — the output at "
            f"{list(measured)} does not depend on the input in the linearised copy (an op "
            f"without a linear stand-in cancels it).\n  fix: rely on the analytic field "
            f"(receptive_field), and report the model so that the op gets a stand-in."
        )
    found = _summarise(model, shape, analytic, measured, hole_map, clipped, spatial_out)
    return replace(found, notes=(*found.notes, *notes)) if notes else found


def _linearised_forward(
    model: nn.Module, inputs: Inputs, include_statistics: bool, dtype: torch.dtype
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The linearised copy's first output on an input of ones in ``dtype``, and that
    input (which requires grad)."""
    work = linearise(model, inputs, dtype)
    x = torch.ones(inputs.shape, dtype=dtype, requires_grad=True)
    args, kwargs = inputs.build(dtype, "cpu", primary=x)
    with (
        forward_failures(model, "the measured field", dtype, "cpu"),
        torch.random.fork_rng(devices=[]),
        Linearised(include_statistics),
    ):
        return first_tensor(work(*args, **kwargs)), x


@contextlib.contextmanager
def _gradient_failures(model: nn.Module) -> Iterator[None]:
    """A gradient torch cannot take through the model, as a refusal that says why:
    activation checkpointing (``torch.utils.checkpoint`` when the input requires
    grad) recomputes the forward during backward, outside this measurement."""
    try:
        yield
    except RuntimeError as error:
        text = str(error)
        if "checkpoint" not in text:
            raise
        raise MeasurementRefused(
            f"{type(model).__name__}: its forward uses activation checkpointing "
            f"(torch.utils.checkpoint), which recomputes it during backward, so the "
            f"measurement's gradient cannot be taken ({text.splitlines()[0][:120]}).\n"
            f"  fix: switch checkpointing off for the measurement (timm: "
            f"model.set_grad_checkpointing(False); or checkpoint only when training), or "
            f"rely on the analytic field (receptive_field)."
        ) from None


def _gaps(found: tuple[int, ...]) -> tuple[int, ...]:
    """The positions skipped between the first and the last of ``found`` (sorted
    positions along one axis), relative to the first."""
    if not found:
        return ()
    seen = set(found)
    return tuple(i - found[0] for i in range(found[0], found[-1] + 1) if i not in seen)


def _holed(per_axis: tuple[tuple[int, ...], ...]) -> bool:
    return any(_gaps(found) for found in per_axis)


def _summarise(
    model: nn.Module,
    shape: tuple[int, ...],
    analytic: ReceptiveField,
    measured: dict[tuple[int, ...], tuple[tuple[int, ...], ...]],
    hole_map: torch.Tensor,
    clipped: bool,
    spatial_out: int,
) -> MeasuredField:
    spatial = len(analytic.axes)
    sizes: list[int] = []
    strides: list[Fraction | int] = []
    offsets: list[int] = []
    phases: list[tuple[int, ...]] = []
    holes: list[tuple[int, ...]] = []
    for axis in range(spatial):
        spans = {
            pos: (found[axis][0], found[axis][-1], found[axis])
            for pos, found in measured.items()
            if found[axis]
        }
        if not spans:
            sizes.append(0)
            strides.append(0)
            offsets.append(0)
            phases.append(())
            holes.append(())
            continue
        per_phase = tuple(hi - lo + 1 for lo, hi, _ in spans.values())
        sizes.append(max(per_phase))
        phases.append(per_phase)
        first_pos, (lo, _, _) = next(iter(spans.items()))
        # the holes of the first position measured that has some (as the analytic
        # field gives the first output phase's that has some)
        holes.append(next((g for g in (_gaps(f) for _, _, f in spans.values()) if g), ()))
        axis_map = analytic.axes[axis]
        if spatial_out < 1 or axis_map.whole or not axis_map.advance or not first_pos:
            strides.append(shape[-spatial + axis])
            offsets.append(lo)
            continue
        # stride: the field's start moves by `advance` per `period` output positions
        stride = axis_map.stride
        strides.append(int(stride) if stride.denominator == 1 else stride)
        # the offset is where phase 0's field starts: read it off a phase-0 position
        ref = next((p for p in spans if p[axis] % axis_map.period == 0), first_pos)
        j = ref[axis]
        q = j // axis_map.period
        offsets.append(spans[ref][0] - q * axis_map.advance)
    return MeasuredField(
        type(model).__name__,
        shape,
        tuple(sizes),
        tuple(strides),
        tuple(offsets),
        tuple(phases),
        any(holes),
        tuple(holes),
        measured,
        hole_map,
        clipped,
        ("the input does not hold the whole field; sizes are clipped",) if clipped else (),
    )


# --------------------------------------------------------------------------- effective field


@dataclass(frozen=True)
class EffectiveField:
    """Luo et al.'s effective receptive field: the mean |∂ centre output / ∂ input|
    map, and the side of the smallest centred square (cube) that holds each
    fraction of its mass."""

    model: str
    input_shape: tuple[int, ...]
    weights: str
    grad_map: torch.Tensor
    centre: tuple[int, ...]
    sides: dict[float, int]

    def __str__(self) -> str:
        parts = ", ".join(f"{int(q * 100)}%: {s}" for q, s in sorted(self.sides.items()))
        return (
            f"effective receptive field of {self.model} ({self.weights} weights) on input "
            f"{'×'.join(map(str, self.input_shape))}: centred square holding {parts}"
        )

    def save_png(self, path: str | Path) -> Path:
        """A heat map of the gradient with a colour bar, axis labels and the squares
        holding 20/50/99 % of its mass (needs the ``plots`` extra: matplotlib; see
        :func:`pytest_convcheck.pictures.erf_picture`)."""
        from pytest_convcheck.pictures import erf_picture

        return erf_picture(self).save(path)


def effective_receptive_field(
    model: nn.Module,
    input_shape: Any = None,
    *,
    samples: int = 8,
    weights: str = "current",
    fractions: Sequence[float] = (0.2, 0.5, 0.99),
    seed: int = 0,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> EffectiveField:
    """Mean gradient magnitude of the centre output position over ``samples``
    random normal inputs (Luo et al., NeurIPS 2016), on a CPU copy of the model
    with its ``"current"`` weights or re-initialised ones (``"init"``)."""
    if weights not in ("current", "init"):
        raise ValueError(f"weights must be 'current' or 'init', got {weights!r}")
    inputs = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    _need_floating(model, inputs)
    shape = inputs.shape
    single = inputs.with_batch(1)
    work = materialized_copy(model, "cpu", single).float().eval()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: inside fork_rng(devices=[])
        if weights == "init":
            for module in work.modules():
                reset = getattr(type(module), "reset_parameters", None)
                if callable(reset):
                    module.reset_parameters()  # type: ignore[operator]
        spatial = len(shape) - 2
        total = torch.zeros(shape[-spatial:])
        centre: tuple[int, ...] = ()
        for sample in range(samples):
            x = torch.randn((1, *shape[1:]), requires_grad=True)
            args, kwargs = single.build(torch.float32, "cpu", seed=seed + sample, primary=x)
            with forward_failures(model, "the effective field", torch.float32, "cpu"):
                out = first_tensor(work(*args, **kwargs))
            if out is None or out.dim() < 3:
                raise ValueError(
                    f"{type(model).__name__}: the effective receptive field needs a spatial "
                    f"output, got {None if out is None else tuple(out.shape)}"
                )
            centre = tuple(s // 2 for s in out.shape[2:])
            at: tuple[slice | int, ...] = (slice(None), slice(None), *centre)
            with _gradient_failures(model):
                (grad,) = torch.autograd.grad(out[at].sum(), x)
            total += grad.abs().sum(dim=(0, 1))
    grad_map = total / samples
    # centre the squares on the middle of the centre output's (analytic) field
    field = field_of_trace(trace(model, single))
    middle = []
    for axis, found in enumerate(field.positions(centre)):
        middle.append((found[0] + found[-1]) // 2 if found else grad_map.shape[axis] // 2)
    sides = {q: _smallest_square(grad_map, tuple(middle), q) for q in fractions}
    return EffectiveField(type(model).__name__, shape, weights, grad_map, tuple(middle), sides)


def _smallest_square(grad_map: torch.Tensor, centre: tuple[int, ...], fraction: float) -> int:
    total = float(grad_map.sum())
    if total == 0.0:
        return 0
    radius = 0
    limit = max(grad_map.shape)
    while radius <= limit:
        window = tuple(
            slice(max(c - radius, 0), min(c + radius + 1, n))
            for c, n in zip(centre, grad_map.shape, strict=True)
        )
        if float(grad_map[window].sum()) >= fraction * total - 1e-12:
            return 2 * radius + 1
        radius += 1
    return 2 * limit + 1
