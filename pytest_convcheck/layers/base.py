"""What every rule shares: :class:`Spec`, :class:`Geometry`, :class:`InvalidSpec`
and the argument and input checks the family modules build their specs from.

A *spec* is a small frozen dataclass describing one application of an op (a
module such as ``nn.Conv2d(...)`` or a call such as ``F.conv2d(x, w, ...)``). It
knows the op's output shape, its geometry (for receptive fields and
checkerboards) and its FLOPs. The helpers here raise :class:`ShapeError` with the
messages torch's own checks would warrant, worded the same for every family.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from pytest_convcheck.effects import Effect, Window
from pytest_convcheck.errors import ShapeError, problem

Shape = tuple[int, ...]
PhaseTaps = list[tuple[int, int, list[list[tuple[int, float]]]]]
"""Per spatial axis: (period, advance, per-phase taps as (input offset, weight))."""

AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
"""The names of the spatial axes in messages, by the number of spatial dims."""


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """Per-spatial-axis geometry of an op, as the analyses need it.

    ``op`` is one of ``conv``, ``conv_transpose``, ``max_pool``, ``avg_pool``,
    ``lp_pool``, ``adaptive_pool``, ``upsample``, ``pad``, ``pixel_shuffle``,
    ``pixel_unshuffle``, ``unfold``, ``fold``. Tuples hold one entry per spatial
    axis; ``padding`` holds (before, after) pairs in input coordinates. For
    ``upsample``/``pixel_shuffle`` ``scale`` is output size / input size.
    """

    op: str
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...] = ()
    groups: int = 1
    scale: tuple[Fraction, ...] = ()
    mode: str = ""
    ceil_mode: bool = False

    @property
    def transposed(self) -> bool:
        return self.op == "conv_transpose"

    @property
    def effective_kernel(self) -> tuple[int, ...]:
        """``d·(k − 1) + 1`` per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))


# --------------------------------------------------------------------------- specs


class Spec:
    """Base of all specs: a frozen description of one op application.

    Subclasses are frozen dataclasses whose first field is ``kind``, the name of
    the layer class or function shown in messages.

    ``reads_every_input``: every tensor argument is data (norms, matrix products);
    otherwise only the first one is, and the others are weights or indices.
    """

    reads_every_input: ClassVar[bool] = False

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        """The op's output shape on an input of ``input_shape`` (batch and channels
        included), by the formula of torch's documentation of the op.

        The contract every spec keeps: raise :class:`~pytest_convcheck.errors.ShapeError`
        for every input torch's CPU kernel rejects (the message names the layer —
        ``name`` in the model when given —, the formula with the numbers, and the fix),
        and return exactly the shape torch returns for every other input; the property
        tests (``tests/test_layers_property.py``) hold each family to it."""
        raise NotImplementedError

    def geometry(self) -> Geometry | None:
        """Where each output position reads its input, per spatial axis (kernel,
        stride, padding, dilation, transposed or not) for a sliding-window op; ``None``
        for ops without one (linear layers, activations). Receptive fields and the
        checkerboard analysis read it; it must describe the same op that
        :meth:`output_shape` sizes."""
        return None

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect | None:
        """How the op moves and mixes the dims of its input (see
        :mod:`pytest_convcheck.effects`), for receptive fields; ``None``: the op is
        described by name in ``dims.TABLE`` (activations, norms, softmax)."""
        return None

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps | None:
        """For the checkerboard analysis, per trailing spatial axis ``(period, advance,
        taps)``: output ``j = q·period + r`` sums ``weight × input[q·advance + x]`` over
        ``(x, weight)`` in ``taps[r]``. ``None``: pointwise along the spatial axes
        (norms, padding); ``[]``: the spatial structure ends (flatten, linear).
        Default ``None``; the analysis decides for ops without phase geometry."""
        return None

    def for_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Spec | None:
        """The spec of a module for one call of its ``forward`` with these arguments
        after the input (``ConvTranspose2d(x, output_size)``); ``None`` when the rule
        cannot read them. Default: the arguments change nothing."""
        return self

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        """Raise :class:`ShapeError` where the op rejects an input of ``dtype`` whatever
        its shape (a tensor argument of another dtype). Default: any dtype."""

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """Multiply-accumulates count as two FLOPs; elementwise ops as zero."""
        return 0

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """FLOPs of the backward pass (gradients for the input and every parameter).

        Default: the forward's count — pooling and interpolation route each gradient
        back through the same windows and taps. Ops with weights override it.
        """
        return self.flops(input_shape, output_shape)


@dataclass(frozen=True)
class InvalidSpec(Spec):
    """A layer or call whose arguments torch rejects whatever the input
    (``Conv3d(kernel_size=(3, 3))``, ``F.conv2d`` with a 3-D weight,
    ``ConvTranspose2d(padding='same')``): every input is refused with ``problem``,
    the message (cause and fix) the spec builder raised."""

    kind: str
    problem: str

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        raise ShapeError(f"{layer_label(self.kind, name)}: {self.problem}")


# --------------------------------------------------------------------------- arguments


def layer_label(kind: str, name: str | None) -> str:
    """How messages name a layer: its kind, and its name in the model if it has one
    (``Conv2d 'encoder.0'``)."""
    return f"{kind} {name!r}" if name else kind


def per_axis(value: Any, n: int, what: str) -> tuple[int, ...]:
    """An argument given as an int or a sequence (``stride=2``, ``stride=(2, 1)``) as
    one entry per spatial axis: an int or a 1-sequence is repeated ``n`` times;
    another length than ``n`` is a :class:`ShapeError` that names ``what``."""
    if is_int(value):
        return (int(value),) * n
    items = tuple(int(v) if is_int(v) else v for v in value)
    if len(items) == 1 and n > 1:
        return items * n
    if len(items) != n:
        raise ShapeError(
            problem(
                None,
                f"{what} must be an int or a tuple of {n} ints, got {value!r}",
                fix="give one int, or one per spatial axis.",
            )
        )
    return tuple(int(v) for v in items)


def format_per_axis(values: Sequence[int]) -> str:
    """A per-axis argument as a message shows it: one entry as ``3``, several as
    ``(3, 5)``."""
    items = tuple(values)
    return str(items[0]) if len(items) == 1 else str(items)


KERNEL_FIX = "use a kernel_size of at least 1 (1 is a pointwise layer)."
STRIDE_FIX = (
    "use stride ≥ 1 (1 keeps the resolution; to upsample use a transposed conv or nn.Upsample)."
)
DILATION_FIX = "use dilation ≥ 1 (1 is an ordinary, undilated kernel)."
PADDING_FIX = (
    "use padding ≥ 0; to crop, slice the input (x[..., a:b]) or use F.pad with negative values."
)


def check_at_least(label: str, what: str, values: Sequence[int], low: int, fix: str) -> None:
    """torch's CPU argument checks: every entry of ``what`` is ≥ ``low``
    (``aten/src/ATen/native/ConvUtils.h`` ``check_shape_forward``, ``Pool.h``,
    ``Im2Col.cpp``: kernel, stride and dilation ≥ 1, padding ≥ 0)."""
    if any(v < low for v in values):
        raise ShapeError(
            problem(
                label,
                f"{what} must be ≥ {low} along every axis, got {what}={format_per_axis(values)}.",
                fix=fix,
            )
        )


#: The floating dtypes torch's CPU kernels of the interpolation, adaptive pooling and
#: linear families compute in (the float8 types have no kernels there).
KERNEL_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def is_int(value: Any) -> bool:
    """An integer as torch's argument parser takes one (a Python or NumPy int; not a
    bool, a float or a tensor)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """The strides of a freshly allocated (``torch.empty``) tensor of ``shape``."""
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def is_number(value: Any) -> bool:
    """A real number as torch's argument parser takes one (a Python or NumPy int or
    float; not a bool or a tensor)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_same_dtype(label: str, dtype: torch.dtype, weight: torch.dtype | None) -> None:
    """A weight of another dtype than the input: torch's CPU kernels refuse it (its meta
    kernels do not check)."""
    if weight is None or weight == dtype:
        return
    kind = str(dtype).removeprefix("torch.")
    raise ShapeError(
        problem(
            label,
            f"the input is {kind} but the weight is {str(weight).removeprefix('torch.')}; they "
            "must have one dtype.",
            cause="a weight kept as a plain tensor attribute (not a parameter or buffer) or made "
            "in forward with a fixed dtype, which model.to()/.double() do not cast.",
            fix="register it with nn.Parameter or register_buffer, or create it with "
            "dtype=x.dtype.",
        )
    )


def torch_class_name(module: nn.Module) -> str:
    """The name of the ``torch.nn`` class a module is or derives from (``MaxPool2d``
    for a user's ``class MyPool(nn.MaxPool2d)``): what its rule reads."""
    return next(
        (c.__name__ for c in type(module).__mro__ if c.__module__.startswith("torch.nn")),
        type(module).__name__,
    )


def is_lazy(module: nn.Module) -> bool:
    """A lazy module (``nn.LazyConv2d``, …) whose parameters are not materialised yet."""
    return isinstance(module, LazyModuleMixin) and module.has_uninitialized_params()


# --------------------------------------------------------------------------- inputs


def check_rank(
    label: str, input_shape: Shape, ranks: Sequence[int], meaning: str, fix: str
) -> None:
    """The input has one of ``ranks`` dims; the message says what they mean
    (``meaning``, e.g. ``(C, H, W) or (N, C, H, W)``) and how to get there (``fix``)."""
    if len(input_shape) not in ranks:
        allowed = " or ".join(f"{r}-D" for r in ranks)
        raise ShapeError(
            problem(
                label,
                f"expected a {allowed} input ({meaning}), got {len(input_shape)}-D input of shape "
                f"{tuple(input_shape)}.",
                fix=fix,
            )
        )


def check_spatial_rank(label: str, input_shape: Shape, n: int) -> None:
    """A layer of ``n`` spatial dims takes ``(C, *spatial)`` or ``(N, C, *spatial)``."""
    check_rank(
        label,
        input_shape,
        (n + 1, n + 2),
        f"(C, *{n} spatial) or (N, C, *{n} spatial)",
        f"give the layer a {n + 2}-D tensor",
    )


def check_non_empty(label: str, input_shape: Shape, n: int, what: str) -> None:
    """Only the batch may be empty (``Expected input to have non-zero size for
    non-batch dimensions`` in aten's pooling kernels)."""
    if any(size == 0 for size in input_shape[-n - 1 :]):
        raise ShapeError(
            problem(
                label,
                f"input of shape {tuple(input_shape)} has a zero-size non-batch dimension; {what} "
                "needs a non-empty input.",
                fix="feed a non-empty input (only the batch may be 0).",
            )
        )


def wrap_dim(
    label: str, dim: int, rank: int, input_shape: Shape, *, wrap_scalar: bool = True
) -> int:
    """``dim`` normalised for a ``rank``-D input; with ``wrap_scalar`` a 0-D input
    takes dims 0 and -1 (``maybe_wrap_dim``), otherwise none."""
    extent = max(rank, 1) if wrap_scalar else rank
    if not -extent <= dim < extent:
        raise ShapeError(
            problem(
                label,
                f"dim {dim} is out of range for a {rank}-D input of shape {tuple(input_shape)} "
                f"(expected {-extent}..{extent - 1}).",
                fix="use a dim inside the range, counting from 0 (or from −1 at the end).",
            )
        )
    return dim % extent


def split_spatial(input_shape: Shape, n: int) -> tuple[Shape, Shape]:
    """(leading dims incl. channel, spatial dims)."""
    return tuple(input_shape[:-n]), tuple(input_shape[-n:])


def numel(shape: Sequence[int]) -> int:
    """The number of elements of a tensor of ``shape``."""
    return math.prod(shape)


def shape_of(value: Any) -> Shape:
    """A tensor's shape as a tuple of ints."""
    return tuple(int(s) for s in value.shape)


def averaged_taps(window: Window) -> PhaseTaps:
    """Per axis of a sampling op (interpolation, adaptive pooling), each output phase
    as the average of its source positions; ``[]`` once an axis is pooled whole."""
    axes: PhaseTaps = []
    for amap in window.maps:
        if amap.whole:
            return []
        taps = []
        for intervals in amap.taps:
            found = [x for lo, hi in intervals for x in range(lo, hi + 1)]
            taps.append([(x, 1.0 / len(found)) for x in found])
        axes.append((amap.period, amap.advance, taps))
    return axes
