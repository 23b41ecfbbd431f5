"""The rule table: geometry, output-shape formula and FLOPs of every conv-like op.

Each family of layers is one :class:`Rule` in :data:`RULES`. A rule turns a
module (``nn.Conv2d(...)``) or a functional call (``F.conv2d(x, w, ...)``) into a
*spec* — a small frozen dataclass holding the op's parameters — and the spec
knows its output shape, its geometry (for receptive fields and checkerboards)
and its FLOPs. Adding a layer type means adding one entry to :data:`RULES`.

The formulas are written from the documented semantics, never by asking torch:

* convolution (PyTorch ``nn.Conv*d`` docs; Dumoulin & Visin, arXiv 1603.07285)::

      out = floor((in + 2·p − d·(k − 1) − 1) / s) + 1

* transposed convolution (``nn.ConvTranspose*d`` docs)::

      out = (in − 1)·s − 2·p + d·(k − 1) + output_padding + 1,
      output_padding < max(s, d)

* pooling (``nn.MaxPool*d``/``nn.AvgPool*d`` docs, ``aten/src/ATen/native/Pool.h``)::

      out = floor_or_ceil((in + 2·p − d·(k − 1) − 1) / s) + 1
      with ceil_mode, the last window must start inside the input or the left
      padding: if (out − 1)·s ≥ in + p then out −= 1

* interpolation (``F.interpolate`` docs): ``out = size`` or ``floor(in · scale)``.

The property tests in ``tests/test_layers_property.py`` check every formula and
every rejection against torch itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from pytest_convcheck.axis_maps import (
    AxisMap,
    antialiased_map,
    conv_like_map,
    interpolation_map,
    transposed_map,
    transposed_phase_taps,
)
from pytest_convcheck.dims import Contract, Effect, Mix, Relayout, Unknown, Window
from pytest_convcheck.errors import ShapeError

Shape = tuple[int, ...]
PhaseTaps = list[tuple[int, int, list[list[tuple[int, float]]]]]
"""Per spatial axis: (period, advance, per-phase taps as (input offset, weight))."""

_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


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


# --------------------------------------------------------------------------- helpers


def _name(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else kind


def _tuple(value: Any, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    items = tuple(value)
    if len(items) == 1 and n > 1:
        return items * n
    if len(items) != n:
        raise ShapeError(
            f"{what} must be an int or a tuple of {n} ints, got {value!r}"
            "\n  fix: give one int, or one per spatial axis."
        )
    return tuple(int(v) for v in items)


def _at_least(label: str, what: str, values: Sequence[int], low: int, fix: str) -> None:
    """torch's CPU argument checks: every entry of ``what`` is ≥ ``low``
    (``aten/src/ATen/native/ConvUtils.h`` ``check_shape_forward``, ``Pool.h``,
    ``Im2Col.cpp``: kernel, stride and dilation ≥ 1, padding ≥ 0)."""
    if any(v < low for v in values):
        raise ShapeError(
            f"{label}: {what} must be ≥ {low} along every axis, got {what}="
            f"{_show(values)}.\n  fix: {fix}"
        )


def _same_dtype(label: str, dtype: torch.dtype, weight: torch.dtype | None) -> None:
    """A weight of another dtype than the input: torch's CPU kernels refuse it (its meta
    kernels do not check)."""
    if weight is None or weight == dtype:
        return
    kind = str(dtype).removeprefix("torch.")
    raise ShapeError(
        f"{label}: the input is {kind} but the weight is "
        f"{str(weight).removeprefix('torch.')}; they must have one dtype.\n  cause: a weight "
        f"kept as a plain tensor attribute (not a parameter or buffer) or made in forward "
        f"with a fixed dtype, which model.to()/.double() do not cast.\n  fix: register it "
        f"with nn.Parameter or register_buffer, or create it with dtype=x.dtype."
    )


def _averaged_taps(window: Window) -> PhaseTaps:
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


def _count(number: int, noun: str) -> str:
    """``1 channel``, ``3 channels``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _show(values: Sequence[int]) -> str:
    items = tuple(values)
    return str(items[0]) if len(items) == 1 else str(items)


_KERNEL_FIX = "use a kernel_size of at least 1 (1 is a pointwise layer)."
_STRIDE_FIX = (
    "use stride ≥ 1 (1 keeps the resolution; to upsample use a transposed conv or nn.Upsample)."
)
_DILATION_FIX = "use dilation ≥ 1 (1 is an ordinary, undilated kernel)."
_PADDING_FIX = (
    "use padding ≥ 0; to crop, slice the input (x[..., a:b]) or use F.pad with negative values."
)


def _check_spatial_rank(label: str, input_shape: Shape, n: int) -> None:
    """A layer of ``n`` spatial dims takes ``(C, *spatial)`` or ``(N, C, *spatial)``."""
    _check_rank(
        label,
        input_shape,
        (n + 1, n + 2),
        f"(C, *{n} spatial) or (N, C, *{n} spatial)",
        f"give the layer a {n + 2}-D tensor",
    )


def _check_non_empty(label: str, input_shape: Shape, n: int, what: str) -> None:
    """Only the batch may be empty (``Expected input to have non-zero size for
    non-batch dimensions`` in aten's pooling kernels)."""
    if any(size == 0 for size in input_shape[-n - 1 :]):
        raise ShapeError(
            f"{label}: input of shape {tuple(input_shape)} has a zero-size non-batch "
            f"dimension; {what} needs a non-empty input.\n  fix: feed a non-empty input "
            f"(only the batch may be 0)."
        )


def _check_rank(
    label: str, input_shape: Shape, ranks: Sequence[int], meaning: str, fix: str
) -> None:
    if len(input_shape) not in ranks:
        allowed = " or ".join(f"{r}-D" for r in ranks)
        raise ShapeError(
            f"{label}: expected a {allowed} input ({meaning}), got {len(input_shape)}-D "
            f"input of shape {tuple(input_shape)}.\n  fix: {fix}"
        )


def _spatial_split(input_shape: Shape, n: int) -> tuple[Shape, Shape]:
    """(leading dims incl. channel, spatial dims)."""
    return tuple(input_shape[:-n]), tuple(input_shape[-n:])


def is_lazy(module: nn.Module) -> bool:
    """A lazy module (``nn.LazyConv2d``, …) whose parameters are not materialised yet."""
    return isinstance(module, LazyModuleMixin) and module.has_uninitialized_params()


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _shape_of(value: Any) -> Shape:
    return tuple(int(s) for s in value.shape)


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
        raise NotImplementedError

    def geometry(self) -> Geometry | None:
        return None

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect | None:
        """How the op moves and mixes the dims of its input (see :mod:`.dims`), for
        receptive fields; ``None``: the op is described by name in ``dims.TABLE``
        (activations, norms, softmax)."""
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
    ``ConvTranspose2d(padding='same')``): every input is refused with ``problem``."""

    kind: str
    problem: str

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        raise ShapeError(f"{_name(self.kind, name)}: {self.problem}")


@dataclass(frozen=True)
class ConvSpec(Spec):
    """``nn.Conv*d`` / ``F.conv*d`` and ``nn.ConvTranspose*d`` / ``F.conv_transpose*d``."""

    kind: str
    dims: int
    in_channels: int | None  # None: lazy module, any channel count
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int = 1
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: tuple[int, ...] = ()
    output_size: tuple[int, ...] | None = None  # ConvTranspose.forward(x, output_size)
    bias: bool = True
    bias_shape: tuple[int, ...] | None = None  # F.conv*(..., bias): checked against out_channels
    weight_dtype: torch.dtype | None = None  # F.conv*(x, weight): must be the input's dtype

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        _same_dtype(_name(self.kind, name), dtype, self.weight_dtype)

    def for_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Spec | None:
        size = args[0] if args else kwargs.get("output_size")
        if not self.transposed or size is None:
            return self
        try:
            return replace(self, output_size=tuple(int(s) for s in size))
        except (TypeError, ValueError):
            return None

    def check_arguments(self, label: str) -> None:
        """The layer's own arguments, whatever the input (torch's CPU checks in
        ``ConvUtils.h``; the meta kernels skip several of them)."""
        _at_least(label, "kernel_size", self.kernel, 1, _KERNEL_FIX)
        _at_least(label, "stride", self.stride, 1, _STRIDE_FIX)
        _at_least(label, "dilation", self.dilation, 1, _DILATION_FIX)
        if isinstance(self.padding, str):
            half = _show(
                tuple(d * (k - 1) // 2 for k, d in zip(self.kernel, self.dilation, strict=True))
            )
            if self.transposed or self.padding not in ("same", "valid"):
                where = (
                    " for transposed convolutions (only ints)"
                    if self.transposed
                    else "; the padding strings are 'same' and 'valid'"
                )
                raise ShapeError(
                    f"{label}: padding={self.padding!r} is not supported{where}.\n  fix: "
                    f"give the padding as ints, e.g. padding={half}."
                )
            if self.padding == "same" and any(s != 1 for s in self.stride):
                raise ShapeError(
                    f"{label}: padding='same' is not supported for strided convolutions "
                    f"(stride={_show(self.stride)}).\n  fix: give the padding as ints, e.g. "
                    f"padding={half}, or use stride=1."
                )
        elif self.padding_mode == "zeros":
            # other modes pad with F.pad first, where a negative padding crops
            _at_least(label, "padding", self.padding, 0, _PADDING_FIX)
        if self.groups < 1:
            raise ShapeError(
                f"{label}: groups must be ≥ 1, got groups={self.groups}.\n  fix: groups=1 "
                f"for an ordinary conv, groups=in_channels for a depthwise one."
            )
        if self.out_channels % self.groups:
            raise ShapeError(
                f"{label}: out_channels={self.out_channels} is not divisible by "
                f"groups={self.groups}.\n  fix: choose out_channels as a multiple of groups."
            )
        if self.in_channels is not None and self.in_channels % self.groups:
            raise ShapeError(
                f"{label}: in_channels={self.in_channels} is not divisible by "
                f"groups={self.groups}.\n  fix: choose in_channels as a multiple of groups."
            )
        if self.transposed and self.output_size is None:  # output_size overrides it
            _at_least(
                label,
                "output_padding",
                self.output_padding,
                0,
                "use output_padding ≥ 0 (it adds rows at the end), or pass output_size.",
            )
        if self.bias_shape is not None and self.bias_shape != (self.out_channels,):
            raise ShapeError(
                f"{label}: bias of shape {self.bias_shape} does not fit out_channels="
                f"{self.out_channels}; it must be 1-D with {self.out_channels} elements.\n"
                f"  fix: pass a bias of shape ({self.out_channels},), or None."
            )

    def _pads(self, spatial: Shape) -> tuple[tuple[int, int], ...]:
        if self.padding == "valid":
            return tuple((0, 0) for _ in range(self.dims))
        if self.padding == "same":
            pads = []
            for k, d in zip(self.kernel, self.dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        assert not isinstance(self.padding, str)
        return tuple((p, p) for p in self.padding)

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        self.check_arguments(label)
        n = self.dims
        axes = _AXES[n]
        _check_rank(
            label,
            input_shape,
            (n + 1, n + 2),
            f"(C, {', '.join(axes)}) unbatched or (N, C, {', '.join(axes)}) batched",
            f"give the layer a (N, C, {', '.join(axes)}) tensor; "
            f"for a {len(input_shape)}-D input use a {len(input_shape) - 2}-d layer"
            if len(input_shape) - 2 in (1, 2, 3)
            else f"give the layer a (N, C, {', '.join(axes)}) tensor",
        )
        lead, spatial = _spatial_split(input_shape, n)
        channels = lead[-1]
        if self.in_channels is not None and channels != self.in_channels:
            raise ShapeError(
                f"{label}: expected {_count(self.in_channels, 'input channel')} (in_channels="
                f"{self.in_channels}), got {channels} in input of shape {tuple(input_shape)}"
                f" (channel dim is {len(input_shape) - n - 1}).\n  fix: make the layer before "
                f"it produce {_count(self.in_channels, 'channel')}, or build this layer with "
                f"in_channels={channels}."
            )
        if any(size == 0 for size in input_shape[len(lead) - 1 :]):
            raise ShapeError(
                f"{label}: input of shape {tuple(input_shape)} has a zero-size non-batch "
                f"dimension; convolution needs at least one element per channel and axis."
                "\n  fix: feed a non-empty input (only the batch may be 0)."
            )
        if self.transposed:
            return (*lead[:-1], self.out_channels, *self._transposed_spatial(label, spatial))
        return (*lead[:-1], self.out_channels, *self._conv_spatial(label, spatial))

    def _conv_spatial(self, label: str, spatial: Shape) -> Shape:
        pads = self._pads(spatial)
        if self.padding_mode != "zeros":
            _check_pad_mode(label, self.padding_mode, spatial, pads, _AXES[self.dims])
        out = []
        for axis, size, (pl, pr), k, s, d in zip(
            _AXES[self.dims], spatial, pads, self.kernel, self.stride, self.dilation, strict=True
        ):
            padded = size + pl + pr
            eff = d * (k - 1) + 1
            if padded < eff:
                need = eff - pl - pr
                raise ShapeError(
                    f"{label}: kernel larger than the padded input along {axis}: "
                    f"in + pad = {size} + {pl + pr} = {padded} < dilation·(kernel−1)+1 = "
                    f"{d}·({k}−1)+1 = {eff}, so out = floor((in + 2p − d(k−1) − 1)/s) + 1 = "
                    f"floor(({size} + {pl + pr} − {d * (k - 1)} − 1)/{s}) + 1 = "
                    f"{(padded - eff) // s + 1}.\n  fix: feed at least {need} along {axis} "
                    f"(a larger model input), or reduce kernel_size/dilation, or add padding."
                )
            out.append((padded - eff) // s + 1)
        return tuple(out)

    def _transposed_spatial(self, label: str, spatial: Shape) -> Shape:
        assert not isinstance(self.padding, str)
        base = [
            (size - 1) * s - 2 * p + d * (k - 1) + 1
            for size, s, p, d, k in zip(
                spatial, self.stride, self.padding, self.dilation, self.kernel, strict=True
            )
        ]
        if self.output_size is not None:
            wanted = self.output_size[-self.dims :]
            if len(self.output_size) not in (self.dims, self.dims + 1, self.dims + 2):
                raise ShapeError(
                    f"{label}: output_size must have {self.dims} or {self.dims + 2} elements, "
                    f"got {len(self.output_size)}: {self.output_size}"
                    "\n  fix: pass output_size=(H, W) or the full (N, C, H, W)."
                )
            out_pad = []
            for axis, want, lo, s in zip(_AXES[self.dims], wanted, base, self.stride, strict=True):
                hi = lo + s - 1
                if not lo <= want <= hi:
                    raise ShapeError(
                        f"{label}: output_size {want} along {axis} is out of reach: "
                        f"(in−1)·s − 2p + d(k−1) + 1 + output_padding gives {lo}..{hi} "
                        f"(output_padding 0..s−1 = 0..{s - 1}).\n  fix: request a size in "
                        f"{lo}..{hi}, or change stride/padding/kernel."
                    )
                out_pad.append(want - lo)
            self._check_positive(label, tuple(wanted))
            return tuple(wanted)
        out = []
        for axis, lo, op, s, d in zip(
            _AXES[self.dims], base, self.output_padding, self.stride, self.dilation, strict=True
        ):
            if op >= max(s, d):
                raise ShapeError(
                    f"{label}: output_padding={op} along {axis} must be smaller than "
                    f"max(stride, dilation) = max({s}, {d}) = {max(s, d)}.\n  fix: use "
                    f"output_padding < {max(s, d)}, or pass output_size to forward()."
                )
            out.append(lo + op)
        self._check_positive(label, tuple(out))
        return tuple(out)

    def _check_positive(self, label: str, out: Shape) -> None:
        """An empty (size-0) transposed-conv output is rejected.

        torch 2.13 is not consistent here: the slow CPU path raises "Output size
        is too small", while the grouped and mkldnn paths return an empty tensor
        (which path runs depends on groups, kernel, stride, batch and thread
        count). An empty feature map is a bug in any model, so the rule always
        rejects it; ``tests/test_torch_quirks.py`` pins the inconsistency.
        """
        for axis, size in zip(_AXES[self.dims], out, strict=True):
            if size < 1:
                raise ShapeError(
                    f"{label}: output size along {axis} would be {size}: out = (in−1)·s − 2p + "
                    f"d(k−1) + output_padding + 1 must be ≥ 1 (output {out}; torch returns an "
                    f"empty tensor or raises, depending on the backend).\n  fix: reduce "
                    f"padding or feed a larger input."
                )

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Along each spatial dim, output ``j`` reads ``j·s − p + d·t`` (transposed:
        the inputs ``i`` with ``j = i·s − p + d·t``); every input channel is read."""
        rank = len(input_shape)
        n = len(self.kernel)
        pads = self._pads(())
        build = transposed_map if self.transposed else conv_like_map
        maps = tuple(
            build(k, s, p, d)
            for k, s, (p, _), d in zip(self.kernel, self.stride, pads, self.dilation, strict=True)
        )
        return Window(
            tuple(range(rank - n, rank)),
            maps,
            tuple(output_shape),
            (rank - n - 1,),
            boundary=self.padding_mode,
        )

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Each kernel tap counts once: ``j ← j·s − p + d·t``; transposed, phase r of
        the output gets the taps ``t`` with ``s | (r + p − d·t)``."""
        axes: PhaseTaps = []
        for k, s, (p, _), d in zip(
            self.kernel, self.stride, self._pads(()), self.dilation, strict=True
        ):
            if self.transposed:
                taps = [
                    [((r + p - d * t) // s, 1.0) for t in phase]
                    for r, phase in enumerate(transposed_phase_taps(k, s, p, d))
                ]
                axes.append((s, 1, taps))
            else:
                axes.append((1, s, [[(-p + d * t, 1.0) for t in range(k)]]))
        return axes

    @property
    def upsamples(self) -> bool:
        """A transposed conv with a stride > 1: it spreads inputs over phases."""
        return self.transposed and any(s > 1 for s in self.stride)

    def geometry(self) -> Geometry:
        pads = (
            self._pads(()) if isinstance(self.padding, str) else tuple((p, p) for p in self.padding)
        )
        return Geometry(
            op="conv_transpose" if self.transposed else "conv",
            kernel=self.kernel,
            stride=self.stride,
            padding=pads,
            dilation=self.dilation,
            output_padding=self.output_padding,
            groups=self.groups,
            mode=self.padding_mode,
        )

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """2 · (MACs): each output element of a conv takes (C_in/groups)·∏k MACs; a
        transposed conv does the same work per *input* element (it is the adjoint)."""
        c_in = input_shape[-self.dims - 1]
        per_group = c_in // self.groups if self.groups else c_in
        kernel = _numel(self.kernel)
        if self.transposed:
            macs = _numel(input_shape) * kernel * (self.out_channels // self.groups)
        else:
            macs = _numel(output_shape) * kernel * per_group
        bias = _numel(output_shape) if self.bias else 0
        return 2 * macs + bias

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """The input gradient (a transposed conv of the output gradient) and the
        weight gradient (a conv of the input with the output gradient) take the
        forward's MACs each; the bias gradient one add per output element. So
        backward = 2 · forward − bias adds (Goodfellow et al., *Deep Learning*, §9.5)."""
        bias = _numel(output_shape) if self.bias else 0
        return 2 * (self.flops(input_shape, output_shape) - bias) + bias


def _check_pad_mode(
    label: str,
    mode: str,
    spatial: Shape,
    pads: Sequence[tuple[int, int]],
    axes: Sequence[str],
) -> None:
    """Limits of non-constant padding (``F.pad`` docs; ``aten/.../ReflectionPad.cpp``)."""
    for axis, size, (pl, pr) in zip(axes, spatial, pads, strict=True):
        if mode == "reflect" and (pl >= size or pr >= size):
            raise ShapeError(
                f"{label}: reflect padding ({pl}, {pr}) along {axis} must be smaller than the "
                f"input size {size} (reflection mirrors inside the input).\n  fix: reduce the "
                f"padding below {size}, feed a larger input, or use padding_mode "
                f"'replicate'/'zeros'."
            )
        if mode == "circular" and (pl > size or pr > size):
            raise ShapeError(
                f"{label}: circular padding ({pl}, {pr}) along {axis} wraps around more than "
                f"once: it must be at most the input size {size}.\n  fix: reduce the padding "
                f"to ≤ {size} or feed a larger input."
            )
        if mode in ("replicate", "reflect", "circular") and size == 0:
            raise ShapeError(
                f"{label}: {mode} padding needs a non-empty input along {axis}."
                "\n  fix: feed a non-empty input, or pad with mode 'constant'."
            )


def _conv_padding(value: Any, n: int) -> tuple[int, ...] | str:
    if isinstance(value, str):
        return value
    items = tuple(value) if not isinstance(value, int) else (value,)
    if items and all(isinstance(v, str) for v in items):
        # nn.ConvTranspose2d(padding='same') stores _pair('same') = ('s', 'a', 'm', 'e')
        return "".join(items)
    return _tuple(value, n, "padding")


_CONV_DIMS: dict[type[nn.Module], int] = {
    nn.Conv1d: 1,
    nn.Conv2d: 2,
    nn.Conv3d: 3,
    nn.ConvTranspose1d: 1,
    nn.ConvTranspose2d: 2,
    nn.ConvTranspose3d: 3,
}


def _conv_from_module(module: nn.Module) -> ConvSpec:
    m: Any = module
    n = next((_CONV_DIMS[c] for c in type(module).__mro__ if c in _CONV_DIMS), len(m.kernel_size))
    transposed = bool(m.transposed)
    lazy = is_lazy(module)
    if len(tuple(m.kernel_size)) != n:
        raise ShapeError(
            f"kernel_size={tuple(m.kernel_size)} must have {n} entries for a {n}-d conv "
            f"(the weight is {n + 2}-D).\n  fix: kernel_size=k or a tuple of {n} ints."
        )
    return ConvSpec(
        kind=type(module).__name__,
        dims=n,
        in_channels=None if lazy else int(m.in_channels),
        out_channels=int(m.out_channels),
        kernel=tuple(int(k) for k in m.kernel_size),
        stride=_tuple(m.stride, n, "stride"),
        padding=_conv_padding(m.padding, n),
        dilation=_tuple(m.dilation, n, "dilation"),
        groups=int(m.groups),
        padding_mode=m.padding_mode,
        transposed=transposed,
        output_padding=_tuple(m.output_padding, n, "output_padding") if transposed else (),
        bias=m.bias is not None,
    )


def _conv_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ConvSpec:
    name = getattr(func, "__name__", "conv")
    transposed = "transpose" in name
    n = int(name[-2])
    names = (
        ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
        if transposed
        else ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    )
    bound = dict(zip(names, args, strict=False)) | kwargs
    weight = bound["weight"]
    if weight.dim() != n + 2:
        layout = "C_in, C_out/groups" if transposed else "C_out, C_in/groups"
        raise ShapeError(
            f"weight of shape {tuple(weight.shape)} is {weight.dim()}-D; {name} needs a "
            f"{n + 2}-D weight ({layout}{', k' * n}).\n  fix: pass a weight of that shape."
        )
    groups = int(bound.get("groups", 1))
    padding = bound.get("padding", 0)
    kernel = tuple(int(k) for k in weight.shape[2:])
    bias = bound.get("bias")
    if transposed:
        in_channels, out_channels = int(weight.shape[0]), int(weight.shape[1]) * groups
    else:
        in_channels, out_channels = int(weight.shape[1]) * groups, int(weight.shape[0])
    return ConvSpec(
        kind=name,
        dims=n,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel=kernel,
        stride=_tuple(bound.get("stride", 1), n, "stride"),
        padding=_conv_padding(padding, n),
        dilation=_tuple(bound.get("dilation", 1), n, "dilation"),
        groups=groups,
        transposed=transposed,
        output_padding=_tuple(bound.get("output_padding", 0), n, "output_padding")
        if transposed
        else (),
        bias=bias is not None,
        bias_shape=tuple(bias.shape) if isinstance(bias, torch.Tensor) else None,
        weight_dtype=weight.dtype,
    )


@dataclass(frozen=True)
class PoolSpec(Spec):
    """Max/avg/LP pooling: ``nn.MaxPool*d``, ``nn.AvgPool*d``, ``nn.LPPool*d`` and ``F.*``."""

    kind: str
    family: str  # "max" | "avg" | "lp"
    dims: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool = False

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        n = self.dims
        axes = _AXES[n]
        _check_rank(
            label,
            input_shape,
            (n + 1, n + 2),
            f"(C, {', '.join(axes)}) or (N, C, {', '.join(axes)})",
            f"give the pooling layer a (N, C, {', '.join(axes)}) tensor",
        )
        lead, spatial = _spatial_split(input_shape, n)
        if any(size == 0 for size in input_shape[-n - 1 :]):
            raise ShapeError(
                f"{label}: input of shape {tuple(input_shape)} has a zero-size non-batch "
                f"dimension; pooling needs a non-empty input."
                "\n  fix: feed a non-empty input (only the batch may be 0)."
            )
        for axis, k, s, d, p in zip(
            axes, self.kernel, self.stride, self.dilation, self.padding, strict=True
        ):
            if k <= 0 or s <= 0 or d <= 0 or p < 0:
                raise ShapeError(
                    f"{label}: kernel_size, stride and dilation must be positive and padding "
                    f"non-negative along {axis}, got kernel={k}, stride={s}, dilation={d}, "
                    f"padding={p}."
                    "\n  fix: kernel_size, stride and dilation ≥ 1; padding ≥ 0."
                )
            if p > k // 2:
                raise ShapeError(
                    f"{label}: padding={p} along {axis} must be at most half the kernel size "
                    f"(kernel_size // 2 = {k} // 2 = {k // 2}).\n  fix: use padding ≤ {k // 2} "
                    f"or a larger kernel."
                )
        out = []
        for axis, size, k, s, d, p in zip(
            axes, spatial, self.kernel, self.stride, self.dilation, self.padding, strict=True
        ):
            o = pool_output_size(size, k, s, p, d, self.ceil_mode)
            if o < 1:
                eff = d * (k - 1) + 1
                raise ShapeError(
                    f"{label}: output size along {axis} is too small: out = "
                    f"{'ceil' if self.ceil_mode else 'floor'}((in + 2p − d(k−1) − 1)/s) + 1 = "
                    f"{'ceil' if self.ceil_mode else 'floor'}(({size} + {2 * p} − {eff - 1} − 1)"
                    f"/{s}) + 1 = {o} for input of shape {tuple(input_shape)}.\n  fix: feed at "
                    f"least {max(eff - 2 * p, 1)} along {axis} (a larger model input), or use a "
                    f"smaller kernel_size/dilation, or padding."
                )
            out.append(o)
        if n == 3 and self.family in ("avg", "lp"):
            # aten pool3d_shape_check(check_input_size=true) for avg_pool3d: the
            # unpadded input must hold one kernel, even where padding or ceil_mode
            # would give a window.
            for axis, size, k in zip(axes, spatial, self.kernel, strict=True):
                if size < k:
                    raise ShapeError(
                        f"{label}: input size {size} along {axis} is smaller than the kernel "
                        f"size {k}; 3-D average pooling needs in ≥ kernel_size (padding does "
                        f"not count) for input of shape {tuple(input_shape)}.\n  fix: feed at "
                        f"least {k} along {axis}, or use a smaller kernel."
                    )
        return (*lead, *out)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Output ``j`` reads the window ``j·s − p + d·t``, ``t < k``, per channel."""
        rank = len(input_shape)
        n = len(self.kernel)
        maps = tuple(
            conv_like_map(k, s, p, d)
            for k, s, p, d in zip(
                self.kernel, self.stride, self.padding, self.dilation, strict=True
            )
        )
        return Window(tuple(range(rank - n, rank)), maps, tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """An average of the window ``j·s − p + d·t``, ``t < k``."""
        return [
            (1, s, [[(-p + d * t, 1.0 / k) for t in range(k)]])
            for k, s, p, d in zip(
                self.kernel, self.stride, self.padding, self.dilation, strict=True
            )
        ]

    def geometry(self) -> Geometry:
        return Geometry(
            op=f"{self.family}_pool",
            kernel=self.kernel,
            stride=self.stride,
            padding=tuple((p, p) for p in self.padding),
            dilation=self.dilation,
            ceil_mode=self.ceil_mode,
        )

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """One comparison or add per window element."""
        return _numel(output_shape) * _numel(self.kernel)


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """``aten/src/ATen/native/Pool.h: pooling_output_shape``.

    ``out = floor_or_ceil((in + 2p − d(k−1) − 1)/s) + 1``; with ``ceil_mode`` the
    last window must start inside the input or the left padding.
    """
    numerator = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def torch_class_name(module: nn.Module) -> str:
    """The name of the ``torch.nn`` class a module is or derives from (``MaxPool2d``
    for a user's ``class MyPool(nn.MaxPool2d)``): what its rule reads."""
    return next(
        (c.__name__ for c in type(module).__mro__ if c.__module__.startswith("torch.nn")),
        type(module).__name__,
    )


def _divisor_problem(divisor: Any) -> str:
    if divisor is not None and int(divisor) == 0:
        return "divisor_override must not be zero.\n  fix: drop it, or give the divisor ≠ 0."
    return ""


def _pool_from_module(module: nn.Module) -> PoolSpec:
    m: Any = module
    kind = type(module).__name__
    base = torch_class_name(module)
    n = int(base[-2])
    family = "max" if "Max" in base else "lp" if "LP" in base else "avg"
    kernel = _tuple(m.kernel_size, n, "kernel_size")
    stride = _tuple(m.stride if m.stride is not None else kernel, n, "stride")
    padding = _tuple(getattr(m, "padding", 0), n, "padding")
    dilation = _tuple(getattr(m, "dilation", 1), n, "dilation")
    if base == "LPPool1d" and not isinstance(m.kernel_size, int):
        # F.lp_pool1d multiplies by kernel_size: a tuple fails in torch with
        # "mul(): argument 'other' must be Tensor, not tuple" (docs: "a single int").
        raise ShapeError(
            f"kernel_size must be a single int for LPPool1d, got {m.kernel_size!r} (torch "
            f"fails in mul()).\n  fix: LPPool1d(norm_type, {kernel[0]})."
        )
    _refuse(_divisor_problem(getattr(m, "divisor_override", None)))
    return PoolSpec(kind, family, n, kernel, stride, padding, dilation, bool(m.ceil_mode))


_POOL_ARGS = {
    "max": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg": (
        "input",
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "lp": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
}


def _pool_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PoolSpec:
    name = getattr(func, "__name__", "pool")
    family = "max" if name.startswith("max") else "lp" if name.startswith("lp") else "avg"
    n = int(name.split("pool")[1][0])
    bound = dict(zip(_POOL_ARGS[family], args, strict=False)) | kwargs
    kernel = _tuple(bound["kernel_size"], n, "kernel_size")
    stride = bound.get("stride")
    stride = (
        kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    )
    _refuse(_divisor_problem(bound.get("divisor_override")))
    return PoolSpec(
        name,
        family,
        n,
        kernel,
        _tuple(stride, n, "stride"),
        _tuple(bound.get("padding", 0), n, "padding"),
        _tuple(bound.get("dilation", 1), n, "dilation"),
        bool(bound.get("ceil_mode", False)),
    )


@dataclass(frozen=True)
class AdaptivePoolSpec(Spec):
    """``nn.AdaptiveAvgPool*d`` / ``nn.AdaptiveMaxPool*d``: the output size is given;
    ``None`` keeps the input size along that axis."""

    kind: str
    dims: int
    output_size: tuple[int | None, ...]

    def global_average(self, spatial: Shape) -> bool:
        """Average pooling to one position per axis: torch computes a mean, which also
        takes an empty input (``aten/.../AdaptiveAveragePooling.cpp``)."""
        sizes = (i if o is None else o for i, o in zip(spatial, self.output_size, strict=True))
        return "avg" in self.kind.lower() and all(s == 1 for s in sizes)

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        n = self.dims
        _check_spatial_rank(label, input_shape, n)
        if len(self.output_size) != n:
            raise ShapeError(
                f"{label}: output_size={self.output_size} must have {n} entries (one per "
                f"spatial axis).\n  fix: output_size=s or a tuple of {n} sizes."
            )
        _at_least(
            label,
            "output_size",
            [s for s in self.output_size if s is not None],
            0,
            "give each output size as an int ≥ 0 (or None to keep the input size).",
        )
        lead, spatial = _spatial_split(input_shape, n)
        if not self.global_average(spatial):
            _check_non_empty(label, input_shape, n, "adaptive pooling")
        out = tuple(
            size if want is None else want
            for size, want in zip(spatial, self.output_size, strict=True)
        )
        return (*lead, *out)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Window:
        """Output ``j`` reads ``[⌊j·in/out⌋, ⌈(j+1)·in/out⌉)`` (``AdaptivePooling.h``);
        pooling an axis down to one position reads all of it (global pooling)."""
        rank = len(input_shape)
        maps = []
        for size_in, size_out in zip(
            input_shape[rank - self.dims :], output_shape[rank - self.dims :], strict=True
        ):
            if size_out == 1 and size_in > 1:
                # every position of the pooled axis (the whole input when nothing
                # upstream dropped a border row: an unpadded strided conv may)
                maps.append(AxisMap(1, size_in, (((0, size_in - 1),),)))
            else:
                maps.append(interpolation_map("area", None, size_in, size_out))
        return Window(tuple(range(rank - self.dims, rank)), tuple(maps), tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Each output phase averages its source positions (the field's taps)."""
        return _averaged_taps(self.effect(input_shape, output_shape))

    def geometry(self) -> Geometry:
        n = self.dims
        return Geometry("adaptive_pool", (0,) * n, (0,) * n, ((0, 0),) * n, (1,) * n)

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        return _numel(input_shape)


def _adaptive_output_size(value: Any, n: int) -> tuple[int | None, ...]:
    if value is None or isinstance(value, int):
        return (value,) * n
    items = tuple(value)
    return items * n if len(items) == 1 and n > 1 else items


def _adaptive_from_module(module: nn.Module) -> AdaptivePoolSpec:
    kind = type(module).__name__
    n = int(torch_class_name(module)[-2])
    return AdaptivePoolSpec(kind, n, _adaptive_output_size(module.output_size, n))


def _adaptive_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AdaptivePoolSpec:
    name = getattr(func, "__name__", "adaptive_pool")
    n = int(name.split("pool")[1][0])
    size = args[1] if len(args) > 1 else kwargs["output_size"]
    return AdaptivePoolSpec(name, n, _adaptive_output_size(size, n))


_INTERP_RANKS = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5, "lanczos": 4}
_NOT_ALIGNABLE = ("nearest", "area", "nearest-exact")
_ANTIALIASED = ("bilinear", "bicubic", "lanczos")
INTERPOLATION_MODES = (
    "nearest",
    "nearest-exact",
    "linear",
    "bilinear",
    "bicubic",
    "trilinear",
    "area",
    # Lanczos-3 (antialias=True, 4-D), new in torch 2.13
    *(("lanczos",) if hasattr(torch._C._nn, "_upsample_lanczos2d_aa") else ()),
)


@dataclass(frozen=True)
class InterpolateSpec(Spec):
    """``nn.Upsample`` / ``F.interpolate``: ``out = size`` or ``int(in · scale_factor)``
    (truncated towards zero, as ``UpSample.cpp``'s ``compute_output_size`` does)."""

    kind: str
    size: tuple[int, ...] | int | None
    scale_factor: tuple[float, ...] | float | None
    mode: str = "nearest"
    align_corners: bool | None = None
    antialias: bool = False

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        rank = len(input_shape)
        if self.mode not in INTERPOLATION_MODES:
            raise ShapeError(
                f"{label}: mode {self.mode!r} is not an interpolation mode of this torch.\n  "
                f"fix: use one of {', '.join(INTERPOLATION_MODES)}."
            )
        if rank not in (3, 4, 5):
            raise ShapeError(
                f"{label}: expected a 3-D, 4-D or 5-D input (N, C, *1–3 spatial dims), got "
                f"{rank}-D input of shape {tuple(input_shape)}.\n  fix: add the batch "
                f"dimension (x.unsqueeze(0)) or reshape to (N, C, ...)."
            )
        n = rank - 2
        needed = _INTERP_RANKS.get(self.mode)
        if needed is not None and needed != rank:
            raise ShapeError(
                f"{label}: mode {self.mode!r} needs a {needed}-D input, got {rank}-D input of "
                f"shape {tuple(input_shape)}.\n  fix: use mode "
                f"{ {3: 'linear', 4: 'bilinear', 5: 'trilinear'}[rank]!r} for {rank}-D input."
            )
        if self.align_corners is not None and self.mode in _NOT_ALIGNABLE:
            raise ShapeError(
                f"{label}: align_corners can only be set with the interpolating modes "
                f"linear | bilinear | bicubic | trilinear, not {self.mode!r}.\n  fix: drop "
                f"align_corners."
            )
        if self.antialias and not (self.mode in _ANTIALIASED and rank == 4):
            raise ShapeError(
                f"{label}: antialias=True works only with 4-D input and mode 'bilinear', "
                f"'bicubic' or 'lanczos', got mode {self.mode!r} and {rank}-D input."
                "\n  fix: drop antialias, or use mode 'bilinear' on a 4-D input."
            )
        if self.mode == "lanczos" and (self.align_corners or not self.antialias):
            raise ShapeError(
                f"{label}: mode 'lanczos' needs antialias=True and align_corners=False, got "
                f"antialias={self.antialias}, align_corners={self.align_corners}.\n  fix: "
                f"F.interpolate(x, ..., mode='lanczos', antialias=True)."
            )
        if (self.size is None) == (self.scale_factor is None):
            raise ShapeError(
                f"{label}: give exactly one of size or scale_factor."
                "\n  fix: drop size or scale_factor."
            )
        lead, spatial = _spatial_split(input_shape, n)
        if self.size is not None:
            sizes = _tuple(self.size, n, "size")
            if isinstance(self.size, Sequence) and len(self.size) != n:
                raise ShapeError(
                    f"{label}: size {self.size} has {len(self.size)} entries for an input with "
                    f"{n} spatial dims (shape {tuple(input_shape)}).\n  fix: give {n} sizes."
                )
            out = sizes
        else:
            scales = self.scale_factor
            assert scales is not None
            if isinstance(scales, Sequence):
                if len(scales) != n:
                    raise ShapeError(
                        f"{label}: scale_factor {scales} has {len(scales)} entries for an input "
                        f"with {n} spatial dims (shape {tuple(input_shape)}).\n  fix: give {n} "
                        f"factors or one number."
                    )
                factors = tuple(float(f) for f in scales)
            else:
                factors = (float(scales),) * n
            out = tuple(int(size * f) for size, f in zip(spatial, factors, strict=True))
        # 'area' is adaptive average pooling, which accepts an empty output.
        smallest = 0 if self.mode == "area" else 1
        if any(s <= 0 for s in spatial) or any(o < smallest for o in out):
            raise ShapeError(
                f"{label}: input and output sizes must be greater than 0, got input spatial "
                f"{spatial} → output {out} (out = size or int(in · scale_factor)).\n  fix: "
                f"use a larger scale_factor or input."
            )
        return (*lead, *out)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Window:
        """The source indices of each output position, from ``UpSample.h``'s index
        formulas (anti-aliased modes: the filter's support); a size-1 axis is
        broadcast (torch clamps the neighbours a linear kernel would reach)."""
        rank = len(input_shape)
        n = max(0, rank - 2)
        maps = []
        for size_in, size_out in zip(
            input_shape[rank - n :], output_shape[rank - n :], strict=True
        ):
            if size_in == 1:
                maps.append(AxisMap.broadcast())
            elif self.antialias or self.mode == "lanczos":
                maps.append(antialiased_map(self.mode, size_in, size_out))
            else:
                maps.append(interpolation_map(self.mode, self.align_corners, size_in, size_out))
        return Window(tuple(range(rank - n, rank)), tuple(maps), tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Each output phase averages its source positions (the field's taps)."""
        return _averaged_taps(self.effect(input_shape, output_shape))

    def upsamples_axes(self, input_shape: Shape, output_shape: Shape) -> bool:
        """Whether some spatial axis comes out larger than it went in."""
        n = max(0, len(input_shape) - 2)
        return (
            any(b > a for a, b in zip(input_shape[-n:], output_shape[-n:], strict=True))
            if n
            else False
        )

    def geometry(self) -> Geometry:
        return Geometry("upsample", (), (), (), (), mode=self.mode)

    def scales(self, input_shape: Shape, output_shape: Shape) -> tuple[Fraction, ...]:
        """Output size / input size per spatial axis, as exact fractions."""
        n = len(input_shape) - 2
        return tuple(
            Fraction(o, i) for i, o in zip(input_shape[-n:], output_shape[-n:], strict=True)
        )

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        taps = {
            "nearest": 0,
            "nearest-exact": 0,
            "area": 1,
            "linear": 2,
            "bilinear": 4,
            "bicubic": 16,
            "trilinear": 8,
            "lanczos": 36,
        }.get(self.mode, 1)
        return 2 * taps * _numel(output_shape)


def _interp_from_module(module: nn.Module) -> InterpolateSpec:
    m: Any = module
    return InterpolateSpec(
        type(module).__name__,
        _freeze(m.size),
        _freeze(m.scale_factor),
        m.mode,
        m.align_corners,
    )


def _interp_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> InterpolateSpec:
    names = (
        "input",
        "size",
        "scale_factor",
        "mode",
        "align_corners",
        "recompute_scale_factor",
        "antialias",
    )
    bound = dict(zip(names, args, strict=False)) | kwargs
    return InterpolateSpec(
        getattr(func, "__name__", "interpolate"),
        _freeze(bound.get("size")),
        _freeze(bound.get("scale_factor")),
        bound.get("mode", "nearest"),
        bound.get("align_corners"),
        bool(bound.get("antialias", False)),
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(frozen=True)
class PixelShuffleSpec(Spec):
    """``nn.PixelShuffle(r)``: (C·r², H, W) → (C, H·r, W·r); ``nn.PixelUnshuffle`` inverse."""

    kind: str
    factor: int
    inverse: bool = False

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        r = self.factor
        if r < 1:
            what = "downscale_factor" if self.inverse else "upscale_factor"
            raise ShapeError(
                f"{label}: {what} must be ≥ 1, got {r}.\n  fix: use a factor of 2 or more "
                f"(1 changes nothing)."
            )
        if len(input_shape) < 3:
            raise ShapeError(
                f"{label}: expected an input with at least 3 dims (*, C, H, W), got "
                f"{len(input_shape)}-D input of shape {tuple(input_shape)}."
                "\n  fix: give the layer a (N, C, H, W) tensor."
            )
        *lead, c, h, w = input_shape
        if not self.inverse:
            if c % (r * r):
                raise ShapeError(
                    f"{label}: channels {c} must be divisible by upscale_factor² = {r}² = "
                    f"{r * r} (input shape {tuple(input_shape)}).\n  fix: make the previous "
                    f"conv output a multiple of {r * r} channels, e.g. "
                    f"{max(1, c // (r * r)) * r * r}."
                )
            return (*lead, c // (r * r), h * r, w * r)
        if h % r or w % r:
            raise ShapeError(
                f"{label}: height {h} and width {w} must be divisible by downscale_factor {r} "
                f"(input shape {tuple(input_shape)}).\n  fix: feed sizes that are multiples of "
                f"{r}, or pad first."
            )
        return (*lead, c * r * r, h // r, w // r)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """A relayout (``PixelShuffle.cpp``): (*, C·r², H, W) → view (*, C, r, r, H, W)
        → permute (*, C, H, r, W, r) → view (*, C, H·r, W·r); the inverse for unshuffle."""
        *lead, c, h, w = input_shape
        r = self.factor
        k = len(lead)
        at = tuple(range(k))
        if not self.inverse:
            split = (*lead, c // (r * r), r, r, h, w)
            perm = (*at, k, k + 3, k + 1, k + 4, k + 2)
        else:
            split = (*lead, c, h // r, r, w // r, r)
            perm = (*at, k, k + 2, k + 4, k + 1, k + 3)
        return Relayout((("reshape", split), ("permute", perm), ("reshape", tuple(output_shape))))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Shuffle: each output phase reads one input position; unshuffle: each
        output position averages an r-wide block."""
        r = self.factor
        if self.inverse:
            return [(1, r, [[(a, 1.0 / r) for a in range(r)]]) for _ in range(2)]
        return [(r, 1, [[(0, 1.0)] for _ in range(r)]) for _ in range(2)]

    @property
    def upsamples(self) -> bool:
        return not self.inverse

    def geometry(self) -> Geometry:
        r = self.factor
        scale = Fraction(1, r) if self.inverse else Fraction(r)
        return Geometry(
            "pixel_unshuffle" if self.inverse else "pixel_shuffle",
            (1, 1),
            (1, 1),
            ((0, 0), (0, 0)),
            (1, 1),
            scale=(scale, scale),
        )


def _shuffle_from_module(module: nn.Module) -> PixelShuffleSpec:
    m: Any = module
    if isinstance(module, nn.PixelUnshuffle):
        return PixelShuffleSpec("PixelUnshuffle", int(m.downscale_factor), inverse=True)
    return PixelShuffleSpec("PixelShuffle", int(m.upscale_factor))


def _shuffle_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PixelShuffleSpec:
    name = getattr(func, "__name__", "pixel_shuffle")
    inverse = "unshuffle" in name
    key = "downscale_factor" if inverse else "upscale_factor"
    factor = args[1] if len(args) > 1 else kwargs[key]
    return PixelShuffleSpec(name, int(factor), inverse)


@dataclass(frozen=True)
class UnfoldSpec(Spec):
    """``nn.Unfold`` (im2col): (N, C, H, W) → (N, C·∏k, L), L = ∏ conv output sizes;
    ``nn.Fold`` (col2im) the inverse, with the output size given."""

    kind: str
    kernel: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]
    fold_output: tuple[int, int] | None = None

    def _blocks(self, label: str, spatial: Sequence[int]) -> tuple[int, int]:
        blocks = tuple(
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, d, p, s in zip(
                spatial, self.kernel, self.dilation, self.padding, self.stride, strict=True
            )
        )
        if any(b < 1 for b in blocks):
            raise ShapeError(
                f"{label}: spatial size {tuple(spatial)} with kernel_size={self.kernel}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride} gives "
                f"{blocks} sliding blocks (floor((in + 2p − d(k−1) − 1)/s) + 1 per axis); each "
                f"must be at least 1.\n  fix: a larger input or a smaller kernel."
            )
        return blocks[0], blocks[1]

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        _at_least(label, "kernel_size", self.kernel, 1, _KERNEL_FIX)
        _at_least(label, "dilation", self.dilation, 1, _DILATION_FIX)
        _at_least(label, "padding", self.padding, 0, "use padding ≥ 0.")
        _at_least(label, "stride", self.stride, 1, "use stride ≥ 1.")
        kernel_area = self.kernel[0] * self.kernel[1]
        if self.fold_output is None:
            _check_rank(
                label,
                input_shape,
                (3, 4),
                "(C, H, W) or (N, C, H, W)",
                "Unfold takes 4-D (batched) or 3-D (unbatched) image input",
            )
            *lead, c, h, w = input_shape
            if any(size == 0 for size in (c, h, w)):
                raise ShapeError(
                    f"{label}: input of shape {tuple(input_shape)} is empty."
                    "\n  fix: feed a non-empty input."
                )
            bh, bw = self._blocks(label, (h, w))
            return (*lead, c * kernel_area, bh * bw)
        _check_rank(
            label,
            input_shape,
            (2, 3),
            "(C·∏k, L) or (N, C·∏k, L)",
            "Fold takes 3-D (batched) or 2-D (unbatched) column input",
        )
        *lead, ck, length = input_shape
        if ck == 0 or ck % kernel_area:
            raise ShapeError(
                f"{label}: dim -2 of the input ({ck}) must be a positive multiple of "
                f"∏kernel_size = {kernel_area}.\n  fix: feed Unfold's output with the same "
                f"kernel_size."
            )
        bh, bw = self._blocks(label, self.fold_output)
        if length != bh * bw:
            raise ShapeError(
                f"{label}: dim -1 of the input ({length}) must equal the number of sliding "
                f"blocks for output_size={self.fold_output}: {bh}·{bw} = {bh * bw}.\n  fix: "
                f"use the output_size that produced these columns."
            )
        return (*lead, ck // kernel_area, *self.fold_output)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """im2col/col2im move window positions into channels and back: taken as
        mixing the spatial dims (an over-statement of the field)."""
        rank = len(input_shape)
        return Mix(tuple(range(1, rank)), tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """The spatial structure ends here."""
        return []

    def geometry(self) -> Geometry:
        return Geometry(
            "fold" if self.fold_output is not None else "unfold",
            self.kernel,
            self.stride,
            tuple((p, p) for p in self.padding),
            self.dilation,
        )


def _unfold_from_module(module: nn.Module) -> UnfoldSpec:
    m: Any = module
    fold = isinstance(module, nn.Fold)
    return UnfoldSpec(
        type(module).__name__,
        _tuple(m.kernel_size, 2, "kernel_size"),  # type: ignore[arg-type]
        _tuple(m.dilation, 2, "dilation"),  # type: ignore[arg-type]
        _tuple(m.padding, 2, "padding"),  # type: ignore[arg-type]
        _tuple(m.stride, 2, "stride"),  # type: ignore[arg-type]
        _tuple(m.output_size, 2, "output_size") if fold else None,  # type: ignore[arg-type]
    )


def _unfold_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> UnfoldSpec:
    name = getattr(func, "__name__", "unfold")
    fold = name == "fold"
    names = (
        ("input", "output_size", "kernel_size", "dilation", "padding", "stride")
        if fold
        else ("input", "kernel_size", "dilation", "padding", "stride")
    )
    bound = dict(zip(names, args, strict=False)) | kwargs
    return UnfoldSpec(
        name,
        _tuple(bound["kernel_size"], 2, "kernel_size"),  # type: ignore[arg-type]
        _tuple(bound.get("dilation", 1), 2, "dilation"),  # type: ignore[arg-type]
        _tuple(bound.get("padding", 0), 2, "padding"),  # type: ignore[arg-type]
        _tuple(bound.get("stride", 1), 2, "stride"),  # type: ignore[arg-type]
        _tuple(bound["output_size"], 2, "output_size") if fold else None,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class PadSpec(Spec):
    """Padding layers and ``F.pad``: ``pad`` lists (before, after) pairs from the last
    dim backwards, as ``F.pad`` takes them; ``out = in + before + after``."""

    kind: str
    pad: tuple[int, ...]
    mode: str = "constant"
    dims: int | None = None  # padding modules accept (dims+1)- or (dims+2)-D input

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        m = len(self.pad) // 2
        if len(self.pad) % 2:
            raise ShapeError(
                f"{label}: padding length must be even, got {self.pad}."
                "\n  fix: give (before, after) pairs, last dim first."
            )
        if self.dims is not None:
            _check_rank(
                label,
                input_shape,
                (self.dims + 1, self.dims + 2),
                f"(C, *{self.dims} dims) or (N, C, *{self.dims} dims)",
                f"give the layer a {self.dims + 2}-D tensor",
            )
        elif self.mode != "constant" and len(input_shape) not in (m + 1, m + 2):
            raise ShapeError(
                f"{label}: {self.mode} padding of {m} dims needs a {m + 1}-D or {m + 2}-D "
                f"input, got shape {tuple(input_shape)}."
                "\n  fix: give the layer one more dim than the padded ones (C), or two (N, C)."
            )
        if m > len(input_shape):
            raise ShapeError(
                f"{label}: padding {self.pad} pads {m} dims but the input has only "
                f"{len(input_shape)} (shape {tuple(input_shape)})."
                "\n  fix: pad at most as many dims as the input has."
            )
        out = list(input_shape)
        axes = list(range(len(input_shape) - 1, len(input_shape) - 1 - m, -1))
        pairs = [(self.pad[2 * i], self.pad[2 * i + 1]) for i in range(m)]
        if self.mode != "constant":
            if self.mode in ("reflect", "replicate") and any(s == 0 for s in input_shape[-m - 1 :]):
                raise ShapeError(
                    f"{label}: {self.mode} padding needs a non-empty input, got shape "
                    f"{tuple(input_shape)}."
                    "\n  fix: feed a non-empty input, or pad with mode 'constant'."
                )
            spatial = tuple(input_shape[a] for a in axes)
            _check_pad_mode(label, self.mode, spatial, pairs, [f"dim {a}" for a in axes])
        for axis, (before, after) in zip(axes, pairs, strict=True):
            size = input_shape[axis] + before + after
            # replicate padding only counts the total (ReplicationPadding.cpp)
            cropped = input_shape[axis] + min(before, 0) + min(after, 0)
            if self.mode == "replicate":
                cropped = size
            if cropped < 0 or size < 0 or (size == 0 and self.mode != "constant"):
                what = " (an empty output)" if size == 0 else ""
                raise ShapeError(
                    f"{label}: input size {input_shape[axis]} at dim {axis} plus padding "
                    f"({before}, {after}) gives {size}{what}.\n  fix: crop less (negative "
                    f"padding removes elements)."
                )
            out[axis] = size
        return tuple(out)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Output ``j`` reads input ``j − before`` along each padded dim (away from
        the borders, where reflect/replicate/circular padding read inside)."""
        rank = len(input_shape)
        m = len(self.pad) // 2
        dims = tuple(rank - 1 - i for i in range(m))
        maps = tuple(AxisMap(1, 1, (((-self.pad[2 * i], -self.pad[2 * i]),),)) for i in range(m))
        boundary = "zeros" if self.mode == "constant" else self.mode
        return Window(dims, maps, tuple(output_shape), boundary=boundary)

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Output ``j`` reads input ``j − before`` along each padded dim."""
        rank = len(input_shape)
        before = {rank - 1 - i: self.pad[2 * i] for i in range(len(self.pad) // 2)}
        return [(1, 1, [[(-before.get(d, 0), 1.0)]]) for d in range(rank)]

    def geometry(self) -> Geometry:
        m = len(self.pad) // 2
        pairs = tuple((self.pad[2 * i], self.pad[2 * i + 1]) for i in reversed(range(m)))
        return Geometry("pad", (1,) * m, (1,) * m, pairs, (1,) * m, mode=self.mode)


_PAD_MODES = {
    "Constant": "constant",
    "Zero": "constant",
    "Reflection": "reflect",
    "Replication": "replicate",
    "Circular": "circular",
}


def _pad_from_module(module: nn.Module) -> PadSpec:
    kind = type(module).__name__
    base = torch_class_name(module)
    n = int(base[-2])
    mode = next(v for k, v in _PAD_MODES.items() if base.startswith(k))
    return PadSpec(kind, tuple(module.padding), mode, n)  # type: ignore[arg-type]


def _pad_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PadSpec:
    if getattr(func, "__name__", "") == "constant_pad_nd":
        bound = dict(zip(("input", "pad", "value"), args, strict=False)) | kwargs
        return PadSpec("constant_pad_nd", tuple(int(p) for p in bound["pad"]))
    bound = dict(zip(("input", "pad", "mode", "value"), args, strict=False)) | kwargs
    return PadSpec("pad", tuple(bound["pad"]), bound.get("mode") or "constant")


SliceItem = tuple[int | None, int | None, int | None]


@dataclass(frozen=True)
class SliceSpec(Spec):
    """Basic slicing ``x[a:b:s, ..., c:d]`` (``Tensor.__getitem__`` with slices and one
    ``...``) and ``narrow(dim, start, length)``: crops, as in U-Net's crop-and-concat
    or a centre crop.

    ``front`` holds the slices of the leading dims, ``back`` those of the trailing
    dims (after ``...``). Per dim, Python's slice rule:
    ``out = len(range(*slice(a, b, s).indices(in)))`` (bounds clamp to the size;
    torch takes no step ≤ 0). ``narrow`` does not clamp: ``start + length`` must fit
    (source: the docs of ``torch.Tensor.__getitem__`` and ``torch.narrow``).
    """

    kind: str
    front: tuple[SliceItem, ...] = ()
    back: tuple[SliceItem, ...] = ()
    strict: bool = False  # narrow: out of range is an error, not a clamp

    def placed(self, input_shape: Shape, name: str | None = None) -> list[SliceItem]:
        """One ``(start, stop, step)`` slice per dim of ``input_shape``."""
        label = _name(self.kind, name)
        rank = len(input_shape)
        if len(self.front) + len(self.back) > rank:
            raise ShapeError(
                f"{label}: {len(self.front) + len(self.back)} indices for a {rank}-D tensor "
                f"of shape {tuple(input_shape)}."
                "\n  fix: index at most as many dims as the tensor has."
            )
        middle = [(None, None, None)] * (rank - len(self.front) - len(self.back))
        return [*self.front, *middle, *self.back]

    def starts_and_steps(self, input_shape: Shape) -> list[tuple[int, int]]:
        """Per dim, the input index of output position 0 and the step."""
        found = []
        for (a, b, step), size in zip(self.placed(input_shape), input_shape, strict=True):
            start, _, stride = slice(a, b, step).indices(size)
            found.append((start, stride))
        return found

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Output ``j`` reads input ``start + j·step`` along each sliced dim."""
        dims, maps = [], []
        for d, (start, step) in enumerate(self.starts_and_steps(input_shape)):
            if (start, step) != (0, 1):
                dims.append(d)
                maps.append(AxisMap(1, step, (((start, start),),)))
        return Window(tuple(dims), tuple(maps), tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Output ``j`` reads input ``start + j·step``: a crop shifts the phases."""
        return [(1, step, [[(start, 1.0)]]) for start, step in self.starts_and_steps(input_shape)]

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        out = []
        for dim, ((a, b, step), size) in enumerate(
            zip(self.placed(input_shape, name), input_shape, strict=True)
        ):
            if self.strict and a is not None and b is not None:
                start = a + size if a < 0 else a
                if not 0 <= start <= size or b - a + start > size:
                    raise ShapeError(
                        f"{label}: start {a} + length {b - a} exceeds dim {dim} of size "
                        f"{size} (input {tuple(input_shape)}); narrow does not clamp.\n  fix: "
                        f"narrow less, or slice with x[..., a:b], which clamps."
                    )
                a, b = start, start + (b - a)
            out.append(len(range(*slice(a, b, step).indices(size))))
        return tuple(out)


def _slice_items(index: Any) -> tuple[tuple[SliceItem, ...], tuple[SliceItem, ...]]:
    """(front, back) slices of a basic index; ``ValueError`` for anything else (ints,
    ``None``, tensors, lists: no rule, torch runs them as they are)."""
    items = index if isinstance(index, tuple) else (index,)
    front: list[SliceItem] = []
    back: list[SliceItem] = []
    target = front
    for item in items:
        if item is Ellipsis:
            if target is back:
                raise ValueError("two ellipses")
            target = back
            continue
        if not isinstance(item, slice):
            raise ValueError(f"not a slice: {item!r}")
        bounds = (item.start, item.stop, item.step)
        if not all(v is None or type(v) is int for v in bounds):
            raise ValueError(f"slice bounds are not ints: {item!r}")
        if item.step is not None and item.step <= 0:
            raise ValueError("torch rejects steps ≤ 0 itself")
        target.append(bounds)
    return tuple(front), tuple(back)


def _slice_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> SliceSpec:
    if getattr(func, "__name__", "") == "narrow":
        bound = dict(zip(("input", "dim", "start", "length"), args, strict=False)) | kwargs
        dim, start, length = (bound[k] for k in ("dim", "start", "length"))
        if not all(type(v) is int for v in (dim, start, length)):
            raise ValueError("narrow with tensor arguments")
        item: SliceItem = (start, start + length, None)
        if dim >= 0:
            return SliceSpec("narrow", ((None, None, None),) * dim + (item,), strict=True)
        return SliceSpec("narrow", (), (item,) + ((None, None, None),) * (-dim - 1), strict=True)
    front, back = _slice_items(args[1])
    return SliceSpec("getitem", front, back)


@dataclass(frozen=True)
class LinearSpec(Spec):
    """``nn.Linear`` / ``F.linear``: (*, in_features) → (*, out_features)."""

    kind: str
    in_features: int | None
    out_features: int
    bias: bool = True
    vector: bool = False  # F.linear with a 1-D weight: the last dim is contracted away
    bias_shape: tuple[int, ...] | None = None  # F.linear(..., bias): must broadcast
    weight_dtype: torch.dtype | None = None  # F.linear(x, weight): must be the input's dtype

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Every output feature reads every input feature (the last dim)."""
        return (
            Mix((len(input_shape) - 1,), tuple(output_shape)) if input_shape else Unknown(self.kind)
        )

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """The spatial structure ends here."""
        return []

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        _same_dtype(_name(self.kind, name), dtype, self.weight_dtype)

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        if len(input_shape) == 0:
            raise ShapeError(
                f"{label}: input must have at least one dimension."
                "\n  fix: add a dim, e.g. x.unsqueeze(0)."
            )
        out = (*input_shape[:-1], self.out_features) if not self.vector else input_shape[:-1]
        if self.in_features is not None and input_shape[-1] != self.in_features:
            flat = _numel(input_shape[1:]) if len(input_shape) > 1 else input_shape[-1]
            raise ShapeError(
                f"{label}: expected the last dim to be in_features={self.in_features}, got "
                f"input of shape {tuple(input_shape)} (last dim {input_shape[-1]}).\n  fix: "
                f"flatten to (N, {flat}) with x.flatten(1) and build the layer with "
                f"in_features={flat}, or use nn.LazyLinear."
            )
        if self.bias_shape is not None:
            _fits(label, "bias", self.bias_shape, tuple(out))
        return tuple(out)

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        macs = _numel(output_shape) * input_shape[-1]
        return 2 * macs + (_numel(output_shape) if self.bias else 0)

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """``grad_x = grad_y · W`` and ``grad_W = grad_yᵀ · x`` take the forward's MACs
        each; the bias gradient one add per output element."""
        macs = _numel(output_shape) * input_shape[-1]
        return 4 * macs + (_numel(output_shape) if self.bias else 0)


def _linear_from_module(module: nn.Module) -> LinearSpec:
    m: Any = module
    lazy = is_lazy(module)
    return LinearSpec(
        type(module).__name__,
        None if lazy else int(m.in_features),
        int(m.out_features),
        m.bias is not None,
    )


def _linear_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> LinearSpec:
    bound = dict(zip(("input", "weight", "bias"), args, strict=False)) | kwargs
    weight, bias = bound["weight"], bound.get("bias")
    if weight.dim() not in (1, 2):
        raise ShapeError(
            f"weight of shape {tuple(weight.shape)} must be 2-D (out_features, in_features) "
            f"or 1-D (in_features,).\n  fix: reshape the weight."
        )
    return LinearSpec(
        "linear",
        int(weight.shape[-1]),
        int(weight.shape[0]) if weight.dim() == 2 else 1,
        bias is not None,
        vector=weight.dim() == 1,
        bias_shape=tuple(bias.shape) if isinstance(bias, torch.Tensor) else None,
        weight_dtype=weight.dtype,
    )


@dataclass(frozen=True)
class FlattenSpec(Spec):
    """``nn.Flatten(start_dim, end_dim)`` / ``torch.flatten``; ``nn.Unflatten(dim, sizes)``."""

    kind: str
    start_dim: int = 1
    end_dim: int = -1
    unflatten: tuple[int, ...] | None = None  # nn.Unflatten: sizes; start_dim is its dim

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """A row-major reshape."""
        return Relayout((("reshape", tuple(output_shape)),))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """The spatial structure ends here."""
        return []

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        rank = len(input_shape)
        if self.unflatten is not None:
            dim = _dim_index(label, self.start_dim, rank, input_shape, wrap_scalar=False)
            sizes = list(self.unflatten)
            if sizes.count(-1) > 1:
                raise ShapeError(
                    f"{label}: only one size may be -1, got {tuple(sizes)}."
                    "\n  fix: give every size but one."
                )
            known = _numel([s for s in sizes if s != -1])
            total = input_shape[dim]
            if -1 in sizes:
                if known == 0 or total % known:
                    raise ShapeError(
                        f"{label}: cannot unflatten dim {dim} of size {total} into "
                        f"{tuple(sizes)}: {total} is not divisible by {known}."
                        "\n  fix: choose sizes whose product divides the dim."
                    )
                sizes[sizes.index(-1)] = total // known
            elif known != total:
                raise ShapeError(
                    f"{label}: sizes {tuple(sizes)} multiply to {known}, but dim {dim} of input "
                    f"{tuple(input_shape)} has size {total}.\n  fix: choose sizes whose product "
                    f"is {total}."
                )
            return (*input_shape[:dim], *sizes, *input_shape[dim + 1 :])
        if rank == 0:
            return (1,)
        start = _dim_index(label, self.start_dim, rank, input_shape)
        end = _dim_index(label, self.end_dim, rank, input_shape)
        if start > end:
            raise ShapeError(
                f"{label}: start_dim {self.start_dim} comes after end_dim {self.end_dim} for "
                f"a {rank}-D input of shape {tuple(input_shape)}."
                "\n  fix: use start_dim ≤ end_dim."
            )
        return (*input_shape[:start], _numel(input_shape[start : end + 1]), *input_shape[end + 1 :])


def _flatten_from_module(module: nn.Module) -> FlattenSpec:
    m: Any = module
    if isinstance(module, nn.Unflatten):
        return FlattenSpec(
            "Unflatten", int(m.dim), unflatten=tuple(int(s) for s in m.unflattened_size)
        )
    return FlattenSpec("Flatten", int(m.start_dim), int(m.end_dim))


def _flatten_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> FlattenSpec:
    bound = dict(zip(("input", "start_dim", "end_dim"), args, strict=False)) | kwargs
    return FlattenSpec("flatten", int(bound.get("start_dim", 0)), int(bound.get("end_dim", -1)))


@dataclass(frozen=True)
class ChannelNormSpec(Spec):
    """Shape-preserving layers. ``channels`` (norm layers) must match the input's
    channel dim; ``ranks`` lists the accepted input ranks (empty: any);
    ``normalized_shape`` (LayerNorm) must match the trailing dims; ``groups``
    (GroupNorm) must divide the channels; ``dim`` (softmax) must be a dim of the
    input; ``spatial_stats`` (InstanceNorm on its input's statistics) needs more
    than one spatial element. Arguments torch rejects whatever the input (hardtanh
    with min_val > max_val, dropout p outside [0, 1]) make an :class:`InvalidSpec`."""

    kind: str
    channels: int | None = None
    ranks: tuple[int, ...] = ()
    normalized_shape: tuple[int, ...] | None = None
    groups: int | None = None
    batch_stats: bool = False  # BatchNorm in training mode: needs > 1 value per channel
    dim: int | None = None
    spatial_stats: bool = False
    min_rank: int = 0
    unbatched: bool = False  # the lower of two ranks is (C, *spatial), without N

    reads_every_input: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        if self.ranks:
            _check_rank(
                label,
                input_shape,
                self.ranks,
                "see the layer's docs",
                f"give the layer a {self.ranks[-1]}-D (N, C, ...) tensor",
            )
        if len(input_shape) < self.min_rank:
            raise ShapeError(
                f"{label}: expected an input with at least {self.min_rank} dims "
                f"(N, C, ...), got shape {tuple(input_shape)}."
                "\n  fix: give the layer an (N, C, ...) tensor."
            )
        if self.dim is not None:
            _dim_index(label, self.dim, len(input_shape), input_shape)
        if self.normalized_shape is not None:
            k = len(self.normalized_shape)
            if tuple(input_shape[-k:]) != self.normalized_shape or len(input_shape) < k:
                raise ShapeError(
                    f"{label}: normalized_shape={self.normalized_shape} must equal the last "
                    f"{k} dims of the input, got input of shape {tuple(input_shape)}.\n  fix: "
                    f"build the layer with normalized_shape={tuple(input_shape[-k:])}."
                )
            return tuple(input_shape)
        channel_dim = 0 if self.unbatched and len(input_shape) == self.ranks[0] else 1
        if self.channels is not None or self.groups is not None:
            if len(input_shape) < 2:
                raise ShapeError(
                    f"{label}: expected (N, C, ...) input, got {tuple(input_shape)}."
                    "\n  fix: give the layer an (N, C, ...) tensor."
                )
            c = input_shape[channel_dim]
            if self.channels is not None and c != self.channels:
                raise ShapeError(
                    f"{label}: expected {self.channels} channels (num_features), got {c} in "
                    f"input of shape {tuple(input_shape)}.\n  fix: build the layer with "
                    f"{c} features, or make the previous layer output {self.channels} channels."
                )
            if self.groups is not None and c % self.groups:
                raise ShapeError(
                    f"{label}: {c} channels are not divisible by num_groups={self.groups}."
                    f"\n  fix: use a num_groups that divides {c}."
                )
            if self.groups is not None and (
                input_shape[0] * c // self.groups * _numel(input_shape[2:]) == 1
            ):
                raise ShapeError(
                    f"{label}: group norm needs more than 1 value per group, got input of "
                    f"shape {tuple(input_shape)} with num_groups={self.groups} "
                    f"(N·C/G·∏spatial = 1).\n  fix: use fewer groups or a larger input."
                )
            if self.batch_stats and _numel(input_shape) // max(c, 1) <= 1:
                raise ShapeError(
                    f"{label}: in training mode batch norm needs more than 1 value per channel, "
                    f"got input of shape {tuple(input_shape)}.\n  fix: use a batch of 2 or "
                    f"more, or call model.eval() for single-sample inference."
                )
        if self.spatial_stats and _numel(input_shape[channel_dim + 1 :]) <= 1:
            raise ShapeError(
                f"{label}: instance norm takes its statistics over the spatial dims and needs "
                f"more than 1 spatial element, got input of shape {tuple(input_shape)}.\n  "
                f"fix: feed a larger input (or fewer downsampling stages before this layer), "
                f"or use GroupNorm/BatchNorm here."
            )
        return tuple(input_shape)


def _dim_index(
    label: str, dim: int, rank: int, input_shape: Shape, *, wrap_scalar: bool = True
) -> int:
    """``dim`` normalised for a ``rank``-D input; with ``wrap_scalar`` a 0-D input
    takes dims 0 and -1 (``maybe_wrap_dim``), otherwise none."""
    extent = max(rank, 1) if wrap_scalar else rank
    if not -extent <= dim < extent:
        raise ShapeError(
            f"{label}: dim {dim} is out of range for a {rank}-D input of shape "
            f"{tuple(input_shape)} (expected {-extent}..{extent - 1})."
            "\n  fix: use a dim inside the range, counting from 0 (or from −1 at the end)."
        )
    return dim % extent


@dataclass(frozen=True)
class GLUSpec(Spec):
    """``nn.GLU(dim)`` / ``F.glu``: the input is split in halves along ``dim``, which
    must have an even size; ``out = in`` with that dim halved."""

    kind: str
    dim: int = -1

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Output ``i`` reads inputs ``i`` and ``i + n/2`` along ``dim``: mixes it."""
        rank = len(input_shape)
        return Mix(((self.dim % rank),) if rank else (), tuple(output_shape))

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        if not input_shape:
            raise ShapeError(
                f"{label}: glu does not support 0-D (scalar) inputs."
                "\n  fix: give it a tensor with the dim to halve."
            )
        dim = _dim_index(label, self.dim, len(input_shape), input_shape)
        if input_shape[dim] % 2:
            raise ShapeError(
                f"{label}: halving dim {dim} needs an even size, got {input_shape[dim]} in "
                f"input of shape {tuple(input_shape)}.\n  fix: make the previous layer "
                f"output {input_shape[dim] + 1} or {input_shape[dim] - 1} along dim {dim}."
            )
        out = list(input_shape)
        out[dim] //= 2
        return tuple(out)


_INSTANCE_RANKS = {"InstanceNorm1d": (2, 3), "InstanceNorm2d": (3, 4), "InstanceNorm3d": (4, 5)}


def _norm_from_module(module: nn.Module) -> Spec:
    m: Any = module
    kind = type(module).__name__
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        lazy = is_lazy(module)
        ranks = {"BatchNorm1d": (2, 3), "BatchNorm2d": (4,), "BatchNorm3d": (5,)}.get(
            torch_class_name(module).replace("Lazy", ""), ()
        )
        batch_stats = module.training or not m.track_running_stats
        _refuse(_eps_problem(float(m.eps), batch_stats))
        return ChannelNormSpec(
            kind, None if lazy else int(m.num_features), ranks, batch_stats=batch_stats
        )
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        base = next(c.__name__ for c in type(module).__mro__ if c.__name__ in _INSTANCE_RANKS)
        checked = (m.affine or m.track_running_stats) and not is_lazy(module)
        # without affine parameters or running statistics, a channel count that differs
        # from num_features is only a warning in torch
        return ChannelNormSpec(
            kind,
            int(m.num_features) if checked else None,
            _INSTANCE_RANKS[base],
            spatial_stats=module.training or not m.track_running_stats,
            unbatched=True,
        )
    if isinstance(module, nn.LayerNorm):
        return ChannelNormSpec(kind, normalized_shape=tuple(m.normalized_shape))
    if isinstance(module, nn.GroupNorm):
        return ChannelNormSpec(kind, int(m.num_channels), groups=int(m.num_groups), min_rank=2)
    if isinstance(module, nn.Softmax2d):
        return ChannelNormSpec(kind, ranks=(3, 4))
    if isinstance(module, nn.LocalResponseNorm):
        return ChannelNormSpec(kind, min_rank=3)
    if isinstance(module, (nn.Softmax, nn.LogSoftmax, nn.Softmin)) and m.dim is not None:
        return ChannelNormSpec(kind, dim=int(m.dim))
    if isinstance(module, nn.Hardtanh):
        _refuse(_hardtanh_problem(m.min_val, m.max_val))
    return ChannelNormSpec(kind)


def _glu_from_module(module: nn.Module) -> GLUSpec:
    return GLUSpec(type(module).__name__, int(module.dim))  # type: ignore[arg-type]


def _glu_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> GLUSpec:
    bound = dict(zip(("input", "dim"), args, strict=False)) | kwargs
    return GLUSpec("glu", int(bound.get("dim", -1)))


def _eps_problem(eps: float, training: bool) -> str:
    """``F.batch_norm``: eps > 0 when the batch's statistics are used, ≥ 0 otherwise."""
    if eps > 0 or (eps == 0 and not training):
        return ""
    rule = "positive when normalising with the batch's statistics" if training else "≥ 0"
    return f"eps={eps} must be {rule}.\n  fix: use a small positive eps such as 1e-5."


def _hardtanh_problem(low: float, high: float) -> str:
    if low <= high:
        return ""
    return (
        f"min_val={low} is greater than max_val={high}.\n  fix: swap them "
        f"(hardtanh clamps to [min_val, max_val])."
    )


def _refuse(problem: str) -> None:
    """An argument torch rejects whatever the input: the spec functions raise, and
    :func:`spec_for_module` / :func:`spec_for_call` make it an :class:`InvalidSpec`."""
    if problem:
        raise ShapeError(problem)


_DROPOUT_RANKS = {"dropout1d": (2, 3), "dropout3d": (4, 5)}


def _elementwise_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ChannelNormSpec:
    """Shape-preserving calls, with the argument checks torch makes before (or
    instead of) computing: norms' parameter sizes, softmax's dim, dropout's p,
    hardtanh's bounds, gelu's approximation."""
    name = getattr(func, "__name__", "elementwise")
    if name in ("batch_norm", "instance_norm", "layer_norm", "group_norm"):
        return _norm_call(name, args, kwargs)
    if name in ("softmax", "log_softmax", "softmin"):
        bound = dict(zip(("input", "dim"), args, strict=False)) | kwargs
        dim = bound.get("dim")
        return ChannelNormSpec(name, dim=None if dim is None else int(dim))
    if name.endswith("dropout") or name.startswith(("dropout", "feature_alpha")):
        bound = dict(zip(("input", "p", "training", "inplace"), args, strict=False)) | kwargs
        p = float(bound.get("p", 0.5))
        if not 0.0 <= p <= 1.0:
            raise ShapeError(
                f"dropout probability has to be between 0 and 1, but got p={p}.\n  fix: "
                f"p is the fraction of elements zeroed, e.g. 0.1."
            )
        return ChannelNormSpec(name, ranks=_DROPOUT_RANKS.get(name, ()))
    if name == "hardtanh":
        bound = dict(zip(("input", "min_val", "max_val"), args, strict=False)) | kwargs
        _refuse(
            _hardtanh_problem(float(bound.get("min_val", -1.0)), float(bound.get("max_val", 1.0)))
        )
    if name == "gelu":
        approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
        if approximate not in ("none", "tanh"):
            raise ShapeError(
                f"approximate={approximate!r} is not a gelu approximation.\n  fix: "
                f"approximate='none' (exact) or 'tanh'."
            )
    if name == "clamp" and any(isinstance(v, torch.Tensor) for v in (*args[1:], *kwargs.values())):
        raise ValueError("clamp with tensor bounds broadcasts: torch computes its shape")
    return ChannelNormSpec(name)


def _numel_of(value: Any) -> int | None:
    return int(value.numel()) if isinstance(value, torch.Tensor) else None


def _norm_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ChannelNormSpec:
    if name == "layer_norm":
        bound = dict(zip(("input", "normalized_shape", "weight", "bias"), args, strict=False))
        bound |= kwargs
        shape = bound["normalized_shape"]
        normalized = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        for what in ("weight", "bias"):
            tensor = bound.get(what)
            if isinstance(tensor, torch.Tensor) and tuple(tensor.shape) != normalized:
                raise ShapeError(
                    f"{what} of shape {tuple(tensor.shape)} must have the shape of "
                    f"normalized_shape={normalized}.\n  fix: pass a {what} of shape {normalized}."
                )
        return ChannelNormSpec(name, normalized_shape=normalized)
    if name == "group_norm":
        bound = dict(zip(("input", "num_groups", "weight", "bias"), args, strict=False)) | kwargs
        groups = int(bound["num_groups"])
        sizes = {_numel_of(bound.get("weight")), _numel_of(bound.get("bias"))} - {None}
        if groups < 1:
            raise ShapeError(
                f"num_groups must be ≥ 1, got {groups}.\n  fix: num_groups=1 normalises "
                f"all channels together (LayerNorm-like), num_groups=C each one (InstanceNorm)."
            )
        return ChannelNormSpec(
            name, next(iter(sizes)) if len(sizes) == 1 else None, groups=groups, min_rank=2
        )
    names = (
        ("input", "running_mean", "running_var", "weight", "bias", "training")
        if name == "batch_norm"
        else ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats")
    )
    bound = dict(zip(names, args, strict=False)) | kwargs
    if bound["input"].dim() < 2:
        raise ValueError("a norm of a 1-D input: torch decides")
    sizes = {_numel_of(bound.get(k)) for k in names[1:5]} - {None}
    channels = next(iter(sizes)) if len(sizes) == 1 else None
    if len(sizes) > 1:
        raise ShapeError(
            f"running statistics and affine parameters disagree on the channel "
            f"count: sizes {sorted(s for s in sizes if s is not None)}.\n  fix: give all of "
            f"them one entry per channel."
        )
    if name == "batch_norm":
        training = bool(bound.get("training", False))
        _refuse(_eps_problem(float(bound.get("eps", 1e-5)), training))
        return ChannelNormSpec(name, channels, batch_stats=training, min_rank=2)
    return ChannelNormSpec(
        name,
        channels,
        min_rank=2,
        spatial_stats=bool(bound.get("use_input_stats", True)),
    )


@dataclass(frozen=True)
class FractionalPoolSpec(Spec):
    """``nn.FractionalMaxPool2d/3d`` / ``F.fractional_max_pool2d/3d`` (Graham,
    arXiv 1412.6071): pseudo-random windows of ``kernel`` that tile the input;
    ``out = output_size`` or ``int(in · output_ratio)``, and
    ``out + kernel − 1 ≤ in`` per axis (``aten/.../FractionalMaxPool2d.cpp``)."""

    kind: str
    dims: int
    kernel: tuple[int, ...]
    output_size: tuple[int, ...] | None
    output_ratio: tuple[float, ...] | None
    samples: tuple[Shape, torch.dtype] | None = None  # _random_samples: (shape, dtype)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Pseudo-random windows: taken as mixing the pooled dims."""
        rank = len(input_shape)
        return Mix(tuple(range(rank - self.dims, rank)), tuple(output_shape))

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        if self.samples is not None and self.samples[1] != dtype:
            raise ShapeError(
                f"{_name(self.kind, name)}: _random_samples are {self.samples[1]} but the "
                f"input is {dtype}; they must have the same dtype.\n  fix: create the "
                f"samples with dtype=x.dtype."
            )

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        n = self.dims
        _check_spatial_rank(label, input_shape, n)
        _check_non_empty(label, input_shape, n, "fractional max pooling")
        lead, spatial = _spatial_split(input_shape, n)
        if self.samples is not None:
            shape = self.samples[0]
            batch = input_shape[0] if len(input_shape) == n + 2 else 1
            if len(shape) != 3 or shape[0] < batch or shape[1] != lead[-1] or shape[2] != n:
                raise ShapeError(
                    f"{label}: _random_samples of shape {shape} must be (≥ N, C, {n}) = "
                    f"(≥ {batch}, {lead[-1]}, {n}) for input {tuple(input_shape)}.\n  fix: "
                    f"drop _random_samples, or draw them as torch.rand(N, C, {n})."
                )
        if self.output_size is not None:
            out = self.output_size
        else:
            assert self.output_ratio is not None
            out = tuple(int(size * r) for size, r in zip(spatial, self.output_ratio, strict=True))
        _at_least(label, "output size", out, 0, "ask for an output size ≥ 0.")
        # FractionalMaxPool2d.cpp checks out + k − 1 ≤ in, FractionalMaxPool3d.cpp < in
        strict = n == 3
        for axis, size, o, k in zip(_AXES[n], spatial, out, self.kernel, strict=True):
            if o + k - 1 > size or (strict and o + k - 1 == size):
                need = o + k if strict else o + k - 1
                raise ShapeError(
                    f"{label}: kernel {k} is too large for output size {o} along {axis}: "
                    f"out + kernel − 1 = {o} + {k} − 1 = {o + k - 1} must be "
                    f"{'<' if strict else '≤'} in = {size} (input {tuple(input_shape)}).\n  "
                    f"fix: feed at least {need} along {axis}, or ask for a smaller output or "
                    f"kernel."
                )
        return (*lead, *out)


def _fractional(
    kind: str, n: int, kernel: Any, size: Any, ratio: Any, samples: Any
) -> FractionalPoolSpec:
    if size is None and ratio is None:
        raise ShapeError(
            "needs either output_size or output_ratio.\n  fix: give one of them, e.g. "
            "output_ratio=0.5."
        )
    ratios = None
    if size is None:
        items = (ratio,) * n if isinstance(ratio, (int, float)) else tuple(ratio)
        if len(items) == 1:
            items = items * n
        ratios = tuple(float(r) for r in items)
        if len(ratios) != n:
            raise ShapeError(
                f"output_ratio={ratio!r} must have {n} entries."
                "\n  fix: give one ratio, or one per axis."
            )
    return FractionalPoolSpec(
        kind,
        n,
        _tuple(kernel, n, "kernel_size"),
        None if size is None else _tuple(size, n, "output_size"),
        ratios,
        (_shape_of(samples), samples.dtype) if isinstance(samples, torch.Tensor) else None,
    )


def _fractional_from_module(module: nn.Module) -> FractionalPoolSpec:
    m: Any = module
    n = 3 if isinstance(module, nn.FractionalMaxPool3d) else 2
    return _fractional(
        type(module).__name__,
        n,
        m.kernel_size,
        m.output_size,
        m.output_ratio,
        getattr(m, "_random_samples", None),
    )


def _fractional_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> FractionalPoolSpec:
    name = getattr(func, "__name__", "fractional_max_pool2d")
    names = ("input", "kernel_size", "output_size", "output_ratio", "return_indices")
    bound = dict(zip(names, args, strict=False)) | kwargs
    n = 3 if "3d" in name else 2
    return _fractional(
        name,
        n,
        bound["kernel_size"],
        bound.get("output_size"),
        bound.get("output_ratio"),
        bound.get("_random_samples"),
    )


@dataclass(frozen=True)
class UnpoolSpec(Spec):
    """``nn.MaxUnpool*d`` / ``F.max_unpool*d``: the inverse of max pooling, each value
    put back where its index says (SegNet's decoder). Default
    ``out = (in − 1)·s − 2p + k``; an ``output_size`` must lie strictly within one
    stride of it (``torch/nn/functional.py: _unpool_output_size``); ``indices`` must
    have the input's shape (``aten/.../MaxUnpooling.cpp``)."""

    kind: str
    dims: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_size: tuple[int, ...] | None = None
    indices_shape: tuple[int, ...] | None = None

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Each value goes back somewhere in its pooling window: the footprint of a
        transposed conv, output ``o`` ← input ``i`` for ``o = i·s − p + t``, ``t < k``."""
        rank = len(input_shape)
        n = len(self.kernel)
        maps = tuple(
            transposed_map(k, s, p, 1) if min(k, s) >= 1 else AxisMap.everything()
            for k, s, p in zip(self.kernel, self.stride, self.padding, strict=True)
        )
        # the indices say where inside the window: the footprint covers them
        return Window(tuple(range(rank - n, rank)), maps, tuple(output_shape), data="first")

    def for_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Spec | None:
        bound = dict(zip(("indices", "output_size"), args, strict=False)) | kwargs
        indices, size = bound.get("indices"), bound.get("output_size")
        try:
            return replace(
                self,
                indices_shape=tuple(indices.shape) if indices is not None else None,
                output_size=None if size is None else tuple(int(v) for v in size),
            )
        except (TypeError, ValueError, AttributeError):
            return None

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        n = self.dims
        _check_spatial_rank(label, input_shape, n)
        if n == 3:
            _at_least(label, "stride", self.stride, 1, "use stride ≥ 1.")
        if self.indices_shape is not None and self.indices_shape != tuple(input_shape):
            raise ShapeError(
                f"{label}: indices of shape {self.indices_shape} must have the input's shape "
                f"{tuple(input_shape)}.\n  fix: pass the indices that the matching "
                f"MaxPool (return_indices=True) returned with this tensor."
            )
        _check_non_empty(label, input_shape, n, "unpooling")
        lead, spatial = _spatial_split(input_shape, n)
        default = tuple(
            (size - 1) * s + k - 2 * p
            for size, k, s, p in zip(spatial, self.kernel, self.stride, self.padding, strict=True)
        )
        if self.output_size is None:
            out = default
        else:
            wanted = self.output_size
            if len(wanted) == n + 2:
                wanted = wanted[2:]
            if len(wanted) != n:
                raise ShapeError(
                    f"{label}: output_size {self.output_size} must have {n} or {n + 2} "
                    f"entries.\n  fix: pass the size of the tensor that was pooled."
                )
            for axis, want, base, s in zip(_AXES[n], wanted, default, self.stride, strict=True):
                if not base - s < want < base + s:
                    raise ShapeError(
                        f"{label}: output_size {want} along {axis} is out of reach: it must "
                        f"lie strictly between (in−1)·s + k − 2p ∓ s = {base - s} and "
                        f"{base + s}.\n  fix: pass the size of the tensor that was pooled."
                    )
            out = tuple(wanted)
        if any(o < 0 for o in out):
            raise ShapeError(
                f"{label}: output size {out} is negative: out = (in − 1)·s + k − 2p must be "
                f"≥ 0.\n  fix: reduce padding or feed a larger input."
            )
        return (*lead, *out)


def _unpool(kind: str, n: int, kernel: Any, stride: Any, padding: Any) -> UnpoolSpec:
    k = _tuple(kernel, n, "kernel_size")
    return UnpoolSpec(
        kind,
        n,
        k,
        k if stride is None else _tuple(stride, n, "stride"),
        _tuple(padding, n, "padding"),
    )


def _unpool_from_module(module: nn.Module) -> UnpoolSpec:
    m: Any = module
    n = int(torch_class_name(module)[-2])
    return _unpool(type(module).__name__, n, m.kernel_size, m.stride, m.padding)


def _unpool_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Spec:
    name = getattr(func, "__name__", "max_unpool2d")
    names = ("input", "indices", "kernel_size", "stride", "padding", "output_size")
    bound = dict(zip(names, args, strict=False)) | kwargs
    spec = _unpool(
        name, int(name[-2]), bound["kernel_size"], bound.get("stride"), bound.get("padding", 0)
    )
    return spec.for_call((bound["indices"], bound.get("output_size")), {}) or spec


@dataclass(frozen=True)
class TensorUnfoldSpec(Spec):
    """``x.unfold(dimension, size, step)``: sliding windows along one dim;
    ``dim → (in − size) // step + 1`` and a new last dim of ``size``
    (``aten/src/ATen/native/TensorShape.cpp: unfold``)."""

    kind: str
    dim: int
    size: int
    step: int

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Window ``q`` reads ``q·step + t``, ``t < size``, along ``dim``; the new last
        dim is the offset inside the window."""
        rank = len(input_shape)
        dim = self.dim % rank if rank else 0
        return Window((dim,), (conv_like_map(self.size, self.step, 0, 1),), tuple(output_shape))

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = _name(self.kind, name)
        rank = len(input_shape)
        d = _dim_index(label, self.dim, rank, input_shape)
        available = input_shape[d] if rank else 1
        if self.size > available:
            raise ShapeError(
                f"{label}: window size {self.size} exceeds dim {d} of size {available} "
                f"(input {tuple(input_shape)}).\n  fix: a window of at most {available}, or "
                f"a larger input."
            )
        if self.size < 0:
            raise ShapeError(
                f"{label}: window size must be ≥ 0, got {self.size}."
                "\n  fix: x.unfold(dim, size ≥ 0, step ≥ 1)."
            )
        if self.step < 1:
            raise ShapeError(
                f"{label}: step must be ≥ 1, got {self.step}."
                "\n  fix: x.unfold(dim, size, step ≥ 1)."
            )
        if not rank:
            return (self.size,)
        out = list(input_shape)
        out[d] = (input_shape[d] - self.size) // self.step + 1
        return (*out, self.size)


def _tensor_unfold_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TensorUnfoldSpec:
    bound = dict(zip(("input", "dimension", "size", "step"), args, strict=False)) | kwargs
    values = (bound["dimension"], bound["size"], bound["step"])
    if not all(type(v) is int for v in values):
        raise ValueError("unfold with non-int arguments")
    return TensorUnfoldSpec("unfold", *values)


def _aa_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> InterpolateSpec:
    """``_upsample_bilinear2d_aa(input, output_size, align_corners, scale_factors)``:
    the kernel behind ``F.interpolate(..., mode='bilinear', antialias=True)``."""
    names = ("input", "output_size", "align_corners", "scale_factors")
    bound = dict(zip(names, args, strict=False)) | kwargs
    size, scales = bound.get("output_size"), bound.get("scale_factors")
    return InterpolateSpec(
        "_upsample_bilinear2d_aa",
        None if size is None else tuple(int(v) for v in size),
        None if scales is None else tuple(float(v) for v in scales),
        "bilinear",
        bool(bound.get("align_corners", False)),
        antialias=True,
    )


def broadcast_shapes(label: str, *shapes: Shape) -> Shape:
    """NumPy/torch broadcasting (torch docs, "Broadcasting semantics"): align from
    the right; per dim the sizes must be equal or 1."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-rank, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(sizes) > 1:
            raise ShapeError(
                f"{label}: shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast: "
                f"dim {i} has sizes {sorted(sizes)} (each must be 1 or equal).\n  fix: reshape "
                f"or expand one operand so that the sizes match."
            )
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _fits(label: str, what: str, shape: Shape, target: Shape) -> None:
    """``shape`` must broadcast to ``target`` without changing it (``Tensor.expand``)."""
    if len(shape) > len(target) or broadcast_shapes(label, shape, target) != target:
        raise ShapeError(
            f"{label}: {what} of shape {tuple(shape)} cannot be broadcast to the result's "
            f"shape {tuple(target)}.\n  fix: give {what} a shape that expands to "
            f"{tuple(target)}."
        )


@dataclass(frozen=True)
class MatmulSpec(Spec):
    """Matrix products, as torch documents them: ``matmul`` (``@``, with 1-D promotion
    and batch broadcasting), ``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``einsum`` and
    ``scaled_dot_product_attention``. ``operands`` holds every tensor argument's shape
    in the op's order; ``flops`` counts 2 per multiply-accumulate of the product (as
    ``torch.utils.flop_counter`` does) plus 1 per element of an added input
    (``addmm``/``baddbmm``), as conv and linear count their bias."""

    kind: str
    form: str  # matmul | mm | bmm | addmm | baddbmm | einsum | sdpa
    operands: tuple[Shape, ...]
    equation: str = ""
    causal_mask: bool = False  # sdpa: is_causal together with attn_mask
    gqa: bool = False

    reads_every_input: ClassVar[bool] = True

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """``a @ b`` sums over ``a``'s last dim and ``b``'s second-to-last; other
        forms (einsum, attention, ``addmm``) are taken as mixing everything."""
        if self.form in ("matmul", "mm", "bmm") and all(len(s) >= 2 for s in self.operands):
            return Contract(tuple(output_shape))
        return Unknown(self.kind)

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        return self._plan(_name(self.kind, name))[0]

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        return self._plan(self.kind)[1]

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """Both operands' gradients are products of the same size as the forward."""
        return 2 * self.flops(input_shape, output_shape)

    def _plan(self, label: str) -> tuple[Shape, int]:
        """(output shape, FLOPs)."""
        ops = self.operands
        if self.form == "einsum":
            return _einsum(label, self.equation, ops)
        if self.form == "sdpa":
            return self._attention(label)
        if self.form in ("addmm", "baddbmm"):
            rank = 2 if self.form == "addmm" else 3
            out, flops = _product(label, ops[1], ops[2], rank)
            _fits(label, "input", ops[0], out)
            return out, flops + _numel(out)
        if self.form in ("mm", "bmm"):
            return _product(label, ops[0], ops[1], 2 if self.form == "mm" else 3)
        return _matmul(label, ops[0], ops[1])

    def _attention(self, label: str) -> tuple[Shape, int]:
        q, k, v = self.operands[:3]
        if min(len(q), len(k), len(v)) < 2:
            raise ShapeError(
                f"{label}: query, key and value need at least 2 dims (…, L, E), got "
                f"{tuple(q)}, {tuple(k)}, {tuple(v)}."
                "\n  fix: give query, key and value the shape (…, L, E)."
            )
        if q[-1] != k[-1] or k[-2] != v[-2]:
            raise ShapeError(
                f"{label}: query (…, L, E) = {tuple(q)}, key (…, S, E) = {tuple(k)} and value "
                f"(…, S, Ev) = {tuple(v)} must agree on E (query and key) and S (key and "
                f"value).\n  fix: project query and key to the same width, and give key and "
                f"value the same length."
            )
        kb, vb = k[:-2], v[:-2]
        if self.gqa and len(q) >= 3 and len(k) >= 3 and len(v) >= 3:
            heads = q[-3]
            for what, shape in (("key", k), ("value", v)):
                if shape[-3] == 0 or heads % shape[-3]:
                    raise ShapeError(
                        f"{label}: with enable_gqa the query's {heads} heads must be a "
                        f"multiple of the {what}'s {shape[-3]}."
                        "\n  fix: make the query's head count a multiple of the key's and value's."
                    )
            kb, vb = (*k[:-3], heads), (*v[:-3], heads)
        batch = broadcast_shapes(label, q[:-2], kb, vb)
        length, width, keys, out_width = q[-2], q[-1], k[-2], v[-1]
        if len(self.operands) > 3:
            _fits(label, "attn_mask", self.operands[3], (*batch, length, keys))
        if self.causal_mask:
            raise ShapeError(
                f"{label}: attn_mask and is_causal=True together are not supported.\n  fix: "
                f"drop one (a causal mask is what is_causal builds)."
            )
        b = _numel(batch)
        return (*batch, length, out_width), 2 * b * length * keys * (width + out_width)


def _product(label: str, a: Shape, b: Shape, rank: int) -> tuple[Shape, int]:
    """``mm`` (rank 2) and ``bmm`` (rank 3): no broadcasting, no promotion."""
    what = "matrices" if rank == 2 else "batches of matrices"
    if len(a) != rank or len(b) != rank:
        raise ShapeError(
            f"{label}: expects two {rank}-D {what}, got {tuple(a)} and {tuple(b)}.\n  fix: use "
            f"torch.matmul (or @), which promotes and broadcasts."
        )
    if rank == 3 and a[0] != b[0]:
        raise ShapeError(
            f"{label}: batch sizes differ: {a[0]} and {b[0]} (shapes {tuple(a)}, {tuple(b)})."
            "\n  fix: give both operands the same batch, or use torch.matmul, which broadcasts."
        )
    if a[-1] != b[-2]:
        raise ShapeError(
            f"{label}: shapes {tuple(a)} and {tuple(b)} cannot be multiplied: the inner sizes "
            f"{a[-1]} and {b[-2]} differ.\n  fix: transpose an operand or project it to "
            f"the same width."
        )
    out = (*a[:-1], b[-1])
    return out, 2 * _numel(out) * a[-1]


def _matmul(label: str, a: Shape, b: Shape) -> tuple[Shape, int]:
    """``torch.matmul`` (docs): 1-D operands are promoted (a row before, a column
    after) and the promoted dim removed again; batch dims broadcast."""
    if not a or not b:
        raise ShapeError(
            f"{label}: both arguments to matmul need at least 1 dim, got {tuple(a)} and "
            f"{tuple(b)}.\n  fix: multiply scalars with *."
        )
    left = (1, *a) if len(a) == 1 else a
    right = (*b, 1) if len(b) == 1 else b
    if left[-1] != right[-2]:
        raise ShapeError(
            f"{label}: shapes {tuple(a)} and {tuple(b)} cannot be multiplied: the inner sizes "
            f"{left[-1]} and {right[-2]} differ.\n  fix: transpose an operand or project it "
            f"to the same width."
        )
    batch = broadcast_shapes(label, left[:-2], right[:-2])
    rows = () if len(a) == 1 else (left[-2],)
    cols = () if len(b) == 1 else (right[-1],)
    return (*batch, *rows, *cols), 2 * _numel(batch) * left[-2] * left[-1] * right[-1]


def _einsum_terms(equation: str, ops: tuple[Shape, ...]) -> tuple[list[list[str]], list[str]]:
    """Input terms and the output term as lists of labels, ``...`` expanded to one
    label per broadcast dim (``'.0'``, ``'.1'``, … from the left of the widest)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ops):
        raise ShapeError(
            f"einsum: the equation {equation!r} has {len(terms)} operand term(s) but "
            f"{len(ops)} operand(s) were given."
            "\n  fix: give one term per operand, separated by commas."
        )
    widest = 0
    for term, shape in zip(terms, ops, strict=True):
        letters = term.replace("...", "")
        if not all(c.isalpha() for c in letters) or term.count("...") > 1:
            raise ShapeError(
                f"einsum: invalid subscripts {term!r} in {equation!r}."
                "\n  fix: use letters and at most one ... per term."
            )
        if "..." in term:
            width = len(shape) - len(letters)
            if width < 0:
                raise ShapeError(
                    f"einsum: term {term!r} has more labels than operand {tuple(shape)} has dims."
                    "\n  fix: one label per dim."
                )
            widest = max(widest, width)
        elif len(letters) != len(shape):
            raise ShapeError(
                f"einsum: term {term!r} has {len(letters)} labels but operand {tuple(shape)} "
                f"has {len(shape)} dims.\n  fix: give one label per dim (or use ...)."
            )
    expanded = []
    for term, shape in zip(terms, ops, strict=True):
        head, dots, tail = term.partition("...")
        width = len(shape) - len(head) - len(tail) if dots else 0
        expanded.append([*head, *(f".{widest - width + i}" for i in range(width)), *tail])
    if arrow:
        left, dots, right = rhs.partition("...")
        if not all(c.isalpha() for c in left + right):
            raise ShapeError(
                f"einsum: invalid output subscripts {rhs!r}."
                "\n  fix: use letters and at most one ... after ->."
            )
        out = [*left, *(f".{i}" for i in range(widest) if dots), *right]
    else:
        counts: dict[str, int] = {}
        for term_labels in expanded:
            for label in term_labels:
                counts[label] = counts.get(label, 0) + 1
        out = [f".{i}" for i in range(widest)] + sorted(
            c for c, n in counts.items() if n == 1 and not c.startswith(".")
        )
    return expanded, out


def _einsum(label: str, equation: str, ops: tuple[Shape, ...]) -> tuple[Shape, int]:
    """``torch.einsum``: each label has one size (1 broadcasts); the output has the
    output labels' sizes. FLOPs as torch contracts it (``aten/.../Linear.cpp``), left
    to right in pairs, each a ``bmm`` over the labels the pair shares or keeps:
    2·∏ sizes of the pair's labels, after labels of one operand only (in neither the
    output nor another operand) are summed away first, free of multiplications; a
    pair that sums nothing of size > 1 is an elementwise product, 0 FLOPs."""
    try:
        terms, out = _einsum_terms(equation, ops)
    except ShapeError as error:
        raise ShapeError(f"{label}: {str(error).removeprefix('einsum: ')}") from None
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, ops, strict=True):
        for name, size in zip(term, shape, strict=True):
            known = sizes.get(name, 1)
            if size != 1 and known != 1 and size != known:
                raise ShapeError(
                    f"{label}: label {name!r} has size {size} in one operand and {known} in "
                    f"another ({equation!r} on {', '.join(str(tuple(o)) for o in ops)})."
                    "\n  fix: make the sizes of the label agree (or 1, which broadcasts)."
                )
            sizes[name] = max(known, size) if size == 1 or known == 1 else size
    for name in out:
        if name not in sizes:
            raise ShapeError(
                f"{label}: output label {name!r} appears in no operand."
                "\n  fix: use only labels of the operands after ->."
            )
        if out.count(name) > 1:
            raise ShapeError(
                f"{label}: output label {name!r} appears more than once."
                "\n  fix: name each output label once."
            )
    # a label of size 1 in an operand is broadcast there: that operand does not have it
    labels = [
        {c for c, size in zip(term, shape, strict=True) if size > 1}
        for term, shape in zip(terms, ops, strict=True)
    ]

    def kept(j: int) -> set[str]:
        # a label of one operand only, and not of the output, is summed out first
        others = set(out).union(*(labels[o] for o in range(len(labels)) if o != j))
        return labels[j] & others

    flops = 0
    live = kept(0)
    for i in range(1, len(terms)):
        right = kept(i)
        later = set(out).union(*labels[i + 1 :])
        summed = (live & right) - later
        if _numel([sizes[c] for c in summed]) > 1:
            flops += 2 * _numel([sizes[c] for c in live | right])
        # else: nothing is summed, an elementwise product (torch multiplies), 0 FLOPs
        # as for every elementwise op
        live = (live | right) - summed
    return tuple(sizes[c] for c in out), flops


_MATMUL_FORMS = {
    "matmul": "matmul",
    "__matmul__": "matmul",
    "__rmatmul__": "matmul",
    "mm": "mm",
    "bmm": "bmm",
    "addmm": "addmm",
    "baddbmm": "baddbmm",
}


def _matmul_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> MatmulSpec:
    name = getattr(func, "__name__", "matmul")
    if name == "einsum":
        equation, *rest = args
        operands = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        if not isinstance(equation, str) or not all(isinstance(t, torch.Tensor) for t in operands):
            raise ValueError("einsum's sublist form: torch computes its shape")
        return MatmulSpec(name, "einsum", tuple(_shape_of(t) for t in operands), equation)
    if name == "scaled_dot_product_attention":
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
        bound = dict(zip(names, args, strict=False)) | kwargs
        mask = bound.get("attn_mask")
        qkv = [_shape_of(bound[k]) for k in ("query", "key", "value")]
        if isinstance(mask, torch.Tensor):
            qkv.append(_shape_of(mask))
        return MatmulSpec(
            name,
            "sdpa",
            tuple(qkv),
            causal_mask=mask is not None and bool(bound.get("is_causal", False)),
            gqa=bool(bound.get("enable_gqa", False)),
        )
    form = _MATMUL_FORMS[name]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    tensors += [v for k, v in kwargs.items() if isinstance(v, torch.Tensor) and k != "out"]
    count = 3 if form in ("addmm", "baddbmm") else 2
    if len(tensors) != count:
        raise ValueError("an unusual call signature")
    operands = tuple(_shape_of(t) for t in tensors)
    return MatmulSpec(name, form, operands[::-1] if name == "__rmatmul__" else operands)


# --------------------------------------------------------------------------- the table


def _no_module(module: nn.Module) -> Spec:
    raise TypeError(f"no module of this family: {type(module).__name__}")


@dataclass(frozen=True)
class Rule:
    """One row of the rule table: the modules and functions of a family and how to
    turn each into a :class:`Spec`."""

    family: str
    modules: tuple[type[nn.Module], ...]
    from_module: Callable[[nn.Module], Spec]
    functions: tuple[Callable[..., Any], ...] = ()
    from_call: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Spec] | None = None
    shape_preserving: bool = False


_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Softshrink,
    nn.Hardshrink,
    nn.LogSigmoid,
    nn.Threshold,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softmin,
    nn.Softmax2d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.Identity,
)
_ELEMENTWISE_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    F.relu6,
    F.leaky_relu,
    F.leaky_relu_,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardtanh,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    F.softsign,
    F.logsigmoid,
    F.sigmoid,
    torch.sigmoid,
    F.tanh,
    torch.tanh,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    F.softmax,
    F.log_softmax,
    F.batch_norm,
    F.instance_norm,
    F.layer_norm,
    F.group_norm,
    torch.Tensor.relu,
    torch.Tensor.relu_,
    torch.Tensor.sigmoid,
    torch.Tensor.tanh,
    torch.Tensor.sigmoid_,
    torch.Tensor.tanh_,
    torch.Tensor.clamp,
    torch.clamp,
)

RULES: tuple[Rule, ...] = (
    Rule(
        "conv",
        (
            nn.Conv1d,
            nn.Conv2d,
            nn.Conv3d,
            nn.ConvTranspose1d,
            nn.ConvTranspose2d,
            nn.ConvTranspose3d,
            nn.LazyConv1d,
            nn.LazyConv2d,
            nn.LazyConv3d,
            nn.LazyConvTranspose1d,
            nn.LazyConvTranspose2d,
            nn.LazyConvTranspose3d,
        ),
        _conv_from_module,
        (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d),
        _conv_from_call,
    ),
    Rule(
        "pool",
        (
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.MaxPool3d,
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AvgPool3d,
            nn.LPPool1d,
            nn.LPPool2d,
            *((nn.LPPool3d,) if hasattr(nn, "LPPool3d") else ()),
        ),
        _pool_from_module,
        (
            F.max_pool1d,
            F.max_pool2d,
            F.max_pool3d,
            F.avg_pool1d,
            F.avg_pool2d,
            F.avg_pool3d,
            F.lp_pool1d,
            F.lp_pool2d,
            *((F.lp_pool3d,) if hasattr(F, "lp_pool3d") else ()),
            F.max_pool1d_with_indices,
            F.max_pool2d_with_indices,
            F.max_pool3d_with_indices,
            torch.max_pool1d,
            torch.max_pool2d,
            torch.max_pool3d,
            torch.max_pool1d_with_indices,
            torch.avg_pool1d,
        ),
        _pool_from_call,
    ),
    Rule(
        "fractional_pool",
        (nn.FractionalMaxPool2d, nn.FractionalMaxPool3d),
        _fractional_from_module,
        (
            F.fractional_max_pool2d,
            F.fractional_max_pool3d,
            F.fractional_max_pool2d_with_indices,
            F.fractional_max_pool3d_with_indices,
        ),
        _fractional_from_call,
    ),
    Rule(
        "unpool",
        (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d),
        _unpool_from_module,
        (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d),
        _unpool_from_call,
    ),
    Rule(
        "adaptive_pool",
        (
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d,
            nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d,
        ),
        _adaptive_from_module,
        (
            F.adaptive_avg_pool1d,
            F.adaptive_avg_pool2d,
            F.adaptive_avg_pool3d,
            F.adaptive_max_pool1d,
            F.adaptive_max_pool2d,
            F.adaptive_max_pool3d,
            F.adaptive_max_pool1d_with_indices,
            F.adaptive_max_pool2d_with_indices,
            F.adaptive_max_pool3d_with_indices,
        ),
        _adaptive_from_call,
    ),
    Rule(
        "interpolate",
        (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d),
        _interp_from_module,
        (F.interpolate, F.upsample),
        _interp_from_call,
    ),
    Rule(
        "antialiased_interpolate",
        (),
        _no_module,
        (torch._C._nn._upsample_bilinear2d_aa, torch.ops.aten._upsample_bilinear2d_aa),
        _aa_from_call,
    ),
    Rule(
        "pixel_shuffle",
        (nn.PixelShuffle, nn.PixelUnshuffle),
        _shuffle_from_module,
        (F.pixel_shuffle, F.pixel_unshuffle),
        _shuffle_from_call,
    ),
    Rule(
        "unfold", (nn.Unfold, nn.Fold), _unfold_from_module, (F.unfold, F.fold), _unfold_from_call
    ),
    Rule(
        "pad",
        (
            nn.ConstantPad1d,
            nn.ConstantPad2d,
            nn.ConstantPad3d,
            nn.ZeroPad1d,
            nn.ZeroPad2d,
            nn.ZeroPad3d,
            nn.ReflectionPad1d,
            nn.ReflectionPad2d,
            nn.ReflectionPad3d,
            nn.ReplicationPad1d,
            nn.ReplicationPad2d,
            nn.ReplicationPad3d,
            nn.CircularPad1d,
            nn.CircularPad2d,
            nn.CircularPad3d,
        ),
        _pad_from_module,
        (F.pad, torch.constant_pad_nd),
        _pad_from_call,
    ),
    Rule(
        "slice",
        (),
        _no_module,
        (torch.Tensor.__getitem__, torch.narrow, torch.Tensor.narrow),
        _slice_from_call,
    ),
    Rule("tensor_unfold", (), _no_module, (torch.Tensor.unfold,), _tensor_unfold_from_call),
    Rule("linear", (nn.Linear, nn.LazyLinear), _linear_from_module, (F.linear,), _linear_from_call),
    Rule(
        "matmul",
        (),
        _no_module,
        (
            torch.matmul,
            torch.Tensor.matmul,
            torch.Tensor.__matmul__,
            torch.Tensor.__rmatmul__,
            torch.mm,
            torch.Tensor.mm,
            torch.bmm,
            torch.Tensor.bmm,
            torch.addmm,
            torch.Tensor.addmm,
            torch.baddbmm,
            torch.Tensor.baddbmm,
            torch.einsum,
            F.scaled_dot_product_attention,
        ),
        _matmul_from_call,
    ),
    Rule(
        "flatten",
        (nn.Flatten, nn.Unflatten),
        _flatten_from_module,
        (torch.flatten, torch.Tensor.flatten),
        _flatten_from_call,
    ),
    Rule("glu", (nn.GLU,), _glu_from_module, (F.glu,), _glu_from_call),
    Rule(
        "shape_preserving",
        (
            *_ACTIVATIONS,
            nn.BatchNorm1d,
            nn.BatchNorm2d,
            nn.BatchNorm3d,
            nn.LazyBatchNorm1d,
            nn.LazyBatchNorm2d,
            nn.LazyBatchNorm3d,
            nn.SyncBatchNorm,
            nn.InstanceNorm1d,
            nn.InstanceNorm2d,
            nn.InstanceNorm3d,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.LocalResponseNorm,
        ),
        _norm_from_module,
        _ELEMENTWISE_FUNCTIONS,
        _elementwise_from_call,
        shape_preserving=True,
    ),
)

MODULE_RULES: dict[type[nn.Module], Rule] = {m: rule for rule in RULES for m in rule.modules}
FUNCTION_RULES: dict[Any, Rule] = {f: rule for rule in RULES for f in rule.functions}


def rule_for_module(module: nn.Module) -> Rule | None:
    """The rule of a module: its exact type first, then its nearest base class that
    has a rule and whose ``forward`` the module does not override."""
    rule = MODULE_RULES.get(type(module))
    if rule is not None:
        return rule
    for base in type(module).__mro__[1:]:
        rule = MODULE_RULES.get(base)
        if rule is not None:
            same_forward = getattr(type(module), "forward", None) is getattr(base, "forward", None)
            return rule if same_forward else None
    return None


def spec_for_module(module: nn.Module) -> Spec | None:
    """The spec of a module with a rule, or ``None``. A module whose arguments torch
    rejects whatever the input gets an :class:`InvalidSpec` that says why."""
    rule = rule_for_module(module)
    if rule is None:
        return None
    try:
        return rule.from_module(module)
    except ShapeError as error:
        return InvalidSpec(type(module).__name__, str(error))


def spec_for_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Spec | None:
    """The spec of a functional call (``F.conv2d(x, w, ...)``) with a rule, or ``None``
    for a call signature the rule does not read (torch then runs it as it is). A call
    whose arguments torch rejects whatever the input gets an :class:`InvalidSpec`."""
    rule = FUNCTION_RULES.get(func)
    if rule is None or rule.from_call is None:
        return None
    try:
        return rule.from_call(func, args, kwargs)
    except ShapeError as error:
        return InvalidSpec(getattr(func, "__name__", "call"), str(error))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None  # an unusual call signature: let torch run it


def output_shape(
    layer: nn.Module, input_shape: Sequence[int], *, output_size: Sequence[int] | None = None
) -> Shape:
    """Formula-predicted output shape of one layer on an input of ``input_shape``.

    ``input_shape`` includes batch and channel dims, e.g. ``(1, 1, 28, 28)``.
    ``output_size`` is the optional argument of ``ConvTranspose*d.forward``.
    Raises :class:`ShapeError` exactly where torch rejects that input; the
    message gives the formula with the numbers and the fix. Raises ``TypeError``
    for a layer type the rule table does not cover.
    """
    shape = tuple(int(s) for s in input_shape)
    spec = spec_for_module(layer)
    if spec is None:
        covered = sorted({m.__name__ for m in MODULE_RULES})
        raise TypeError(
            f"output_shape: no shape rule for {type(layer).__name__}; covered layers: "
            f"{', '.join(covered)}. For a whole model use pytest_convcheck.trace(model, shape)."
        )
    if output_size is not None:
        if not isinstance(spec, ConvSpec) or not spec.transposed:
            raise TypeError("output_size applies only to ConvTranspose*d layers")
        spec = replace(spec, output_size=tuple(int(s) for s in output_size))
    spec.check_dtype(torch.get_default_dtype())
    return spec.output_shape(shape)


__all__ = [
    "FUNCTION_RULES",
    "MODULE_RULES",
    "RULES",
    "Geometry",
    "Rule",
    "Shape",
    "ShapeError",
    "Spec",
    "output_shape",
    "pool_output_size",
    "rule_for_module",
    "spec_for_call",
    "spec_for_module",
]
