"""Convolution and transposed convolution: :class:`ConvSpec` and its builders.

The rule for ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d``, their lazy variants
and ``F.conv*d`` / ``F.conv_transpose*d``: the output-shape formulas with torch's
argument checks, the geometry, the phase taps of a strided transposed conv, and the
forward and backward FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from pytest_convcheck.axis_maps import conv_like_map, transposed_map, transposed_phase_taps
from pytest_convcheck.effects import Effect, Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    AXIS_NAMES,
    DILATION_FIX,
    KERNEL_FIX,
    PADDING_FIX,
    STRIDE_FIX,
    Geometry,
    PhaseTaps,
    Shape,
    Spec,
    check_at_least,
    check_rank,
    check_same_dtype,
    format_per_axis,
    is_lazy,
    layer_label,
    numel,
    per_axis,
    split_spatial,
)
from pytest_convcheck.layers.pad import check_pad_mode


def _count(number: int, noun: str) -> str:
    """``1 channel``, ``3 channels``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


@dataclass(frozen=True)
class ConvSpec(Spec):
    """``nn.Conv*d`` / ``F.conv*d`` and ``nn.ConvTranspose*d`` / ``F.conv_transpose*d``.

    Shape:
        - Input: ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``, with ``dims`` spatial
          axes; only the batch may be empty.
        - Output: ``(N, C_out, *spatial_out)`` or ``(C_out, *spatial_out)``, where per
          axis, with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``::

              out = floor((in + 2·p − d·(k − 1) − 1) / s) + 1

          and for a transposed convolution::

              out = (in − 1)·s − 2·p + d·(k − 1) + output_padding + 1,
              output_padding < max(s, d)

          ``padding='same'`` pads ``d·(k − 1)`` in all, the odd one at the end (stride
          1 only); ``'valid'`` pads nothing. ``output_size`` given to a transposed
          conv's ``forward`` picks ``output_padding`` in ``0..s − 1``.

    Source: the ``nn.Conv*d`` and ``nn.ConvTranspose*d`` docs; Dumoulin & Visin, "A
    guide to convolution arithmetic for deep learning", arXiv 1603.07285. The
    argument checks follow torch's CPU ones (``aten/src/ATen/native/ConvUtils.h``).
    """

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
        check_same_dtype(layer_label(self.kind, name), dtype, self.weight_dtype)

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
        check_at_least(label, "kernel_size", self.kernel, 1, KERNEL_FIX)
        check_at_least(label, "stride", self.stride, 1, STRIDE_FIX)
        check_at_least(label, "dilation", self.dilation, 1, DILATION_FIX)
        if isinstance(self.padding, str):
            half = format_per_axis(
                tuple(d * (k - 1) // 2 for k, d in zip(self.kernel, self.dilation, strict=True))
            )
            if self.transposed or self.padding not in ("same", "valid"):
                where = (
                    " for transposed convolutions (only ints)"
                    if self.transposed
                    else "; the padding strings are 'same' and 'valid'"
                )
                raise ShapeError(
                    problem(
                        label,
                        f"padding={self.padding!r} is not supported{where}.",
                        fix=f"give the padding as ints, e.g. padding={half}.",
                    )
                )
            if self.padding == "same" and any(s != 1 for s in self.stride):
                raise ShapeError(
                    problem(
                        label,
                        "padding='same' is not supported for strided convolutions (stride="
                        f"{format_per_axis(self.stride)}).",
                        fix=f"give the padding as ints, e.g. padding={half}, or use stride=1.",
                    )
                )
        elif self.padding_mode == "zeros":
            # other modes pad with F.pad first, where a negative padding crops
            check_at_least(label, "padding", self.padding, 0, PADDING_FIX)
        if self.groups < 1:
            raise ShapeError(
                problem(
                    label,
                    f"groups must be ≥ 1, got groups={self.groups}.",
                    fix="groups=1 for an ordinary conv, groups=in_channels for a depthwise one.",
                )
            )
        if self.out_channels % self.groups:
            raise ShapeError(
                problem(
                    label,
                    f"out_channels={self.out_channels} is not divisible by groups={self.groups}.",
                    fix="choose out_channels as a multiple of groups.",
                )
            )
        if self.in_channels is not None and self.in_channels % self.groups:
            raise ShapeError(
                problem(
                    label,
                    f"in_channels={self.in_channels} is not divisible by groups={self.groups}.",
                    fix="choose in_channels as a multiple of groups.",
                )
            )
        if self.transposed and self.output_size is None:  # output_size overrides it
            check_at_least(
                label,
                "output_padding",
                self.output_padding,
                0,
                "use output_padding ≥ 0 (it adds rows at the end), or pass output_size.",
            )
        if self.bias_shape is not None and self.bias_shape != (self.out_channels,):
            raise ShapeError(
                problem(
                    label,
                    f"bias of shape {self.bias_shape} does not fit out_channels="
                    f"{self.out_channels}; it must be 1-D with {self.out_channels} elements.",
                    fix=f"pass a bias of shape ({self.out_channels},), or None.",
                )
            )

    def padding_pairs(self) -> tuple[tuple[int, int], ...]:
        """The padding as ``(before, after)`` pairs per spatial axis, in input
        coordinates: ``(p, p)`` for an int padding; ``'valid'`` pads nothing;
        ``'same'`` pads ``d·(k − 1)`` in all, the odd one after."""
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
        label = layer_label(self.kind, name)
        self.check_arguments(label)
        n = self.dims
        axes = AXIS_NAMES[n]
        check_rank(
            label,
            input_shape,
            (n + 1, n + 2),
            f"(C, {', '.join(axes)}) unbatched or (N, C, {', '.join(axes)}) batched",
            f"give the layer a (N, C, {', '.join(axes)}) tensor; "
            f"for a {len(input_shape)}-D input use a {len(input_shape) - 2}-d layer"
            if len(input_shape) - 2 in (1, 2, 3)
            else f"give the layer a (N, C, {', '.join(axes)}) tensor",
        )
        lead, spatial = split_spatial(input_shape, n)
        channels = lead[-1]
        if self.in_channels is not None and channels != self.in_channels:
            raise ShapeError(
                problem(
                    label,
                    f"expected {_count(self.in_channels, 'input channel')} (in_channels="
                    f"{self.in_channels}), got {channels} in input of shape {tuple(input_shape)} "
                    f"(channel dim is {len(input_shape) - n - 1}).",
                    fix=f"make the layer before it produce {_count(self.in_channels, 'channel')}, "
                    f"or build this layer with in_channels={channels}.",
                )
            )
        if any(size == 0 for size in input_shape[len(lead) - 1 :]):
            raise ShapeError(
                problem(
                    label,
                    f"input of shape {tuple(input_shape)} has a zero-size non-batch dimension; "
                    "convolution needs at least one element per channel and axis.",
                    fix="feed a non-empty input (only the batch may be 0).",
                )
            )
        if self.transposed:
            return (*lead[:-1], self.out_channels, *self._transposed_spatial(label, spatial))
        return (*lead[:-1], self.out_channels, *self._conv_spatial(label, spatial))

    def _conv_spatial(self, label: str, spatial: Shape) -> Shape:
        pads = self.padding_pairs()
        if self.padding_mode != "zeros":
            check_pad_mode(label, self.padding_mode, spatial, pads, AXIS_NAMES[self.dims])
        out = []
        for axis, size, (pl, pr), k, s, d in zip(
            AXIS_NAMES[self.dims],
            spatial,
            pads,
            self.kernel,
            self.stride,
            self.dilation,
            strict=True,
        ):
            padded = size + pl + pr
            eff = d * (k - 1) + 1
            if padded < eff:
                need = eff - pl - pr
                raise ShapeError(
                    problem(
                        label,
                        f"kernel larger than the padded input along {axis}: in + pad = {size} + "
                        f"{pl + pr} = {padded} < dilation·(kernel−1)+1 = {d}·({k}−1)+1 = {eff}, "
                        f"so out = floor((in + 2p − d(k−1) − 1)/s) + 1 = floor(({size} + {pl + pr}"
                        f" − {d * (k - 1)} − 1)/{s}) + 1 = {(padded - eff) // s + 1}.",
                        fix=f"feed at least {need} along {axis} (a larger model input), or reduce "
                        "kernel_size/dilation, or add padding.",
                    )
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
                    problem(
                        label,
                        f"output_size must have {self.dims} or {self.dims + 2} elements, got "
                        f"{len(self.output_size)}: {self.output_size}",
                        fix="pass output_size=(H, W) or the full (N, C, H, W).",
                    )
                )
            for axis, want, lo, s in zip(
                AXIS_NAMES[self.dims], wanted, base, self.stride, strict=True
            ):
                hi = lo + s - 1
                if not lo <= want <= hi:
                    raise ShapeError(
                        problem(
                            label,
                            f"output_size {want} along {axis} is out of reach: (in−1)·s − 2p + "
                            f"d(k−1) + 1 + output_padding gives {lo}..{hi} (output_padding 0..s−1 "
                            f"= 0..{s - 1}).",
                            fix=f"request a size in {lo}..{hi}, or change stride/padding/kernel.",
                        )
                    )
            self._check_positive(label, tuple(wanted))
            return tuple(wanted)
        out = []
        for axis, lo, op, s, d in zip(
            AXIS_NAMES[self.dims],
            base,
            self.output_padding,
            self.stride,
            self.dilation,
            strict=True,
        ):
            if op >= max(s, d):
                raise ShapeError(
                    problem(
                        label,
                        f"output_padding={op} along {axis} must be smaller than max(stride, "
                        f"dilation) = max({s}, {d}) = {max(s, d)}.",
                        fix=f"use output_padding < {max(s, d)}, or pass output_size to forward().",
                    )
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
        for axis, size in zip(AXIS_NAMES[self.dims], out, strict=True):
            if size < 1:
                raise ShapeError(
                    problem(
                        label,
                        f"output size along {axis} would be {size}: out = (in−1)·s − 2p + d(k−1) "
                        f"+ output_padding + 1 must be ≥ 1 (output {out}; torch returns an empty "
                        "tensor or raises, depending on the backend).",
                        fix="reduce padding or feed a larger input.",
                    )
                )

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Along each spatial dim, output ``j`` reads ``j·s − p + d·t`` (transposed:
        the inputs ``i`` with ``j = i·s − p + d·t``); every input channel is read."""
        rank = len(input_shape)
        n = len(self.kernel)
        pads = self.padding_pairs()
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
            self.kernel, self.stride, self.padding_pairs(), self.dilation, strict=True
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
        return Geometry(
            op="conv_transpose" if self.transposed else "conv",
            kernel=self.kernel,
            stride=self.stride,
            padding=self.padding_pairs(),
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
        kernel = numel(self.kernel)
        if self.transposed:
            macs = numel(input_shape) * kernel * (self.out_channels // self.groups)
        else:
            macs = numel(output_shape) * kernel * per_group
        bias = numel(output_shape) if self.bias else 0
        return 2 * macs + bias

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """The input gradient (a transposed conv of the output gradient) and the
        weight gradient (a conv of the input with the output gradient) take the
        forward's MACs each; the bias gradient one add per output element. So
        backward = 2 · forward − bias adds (Goodfellow et al., *Deep Learning*, §9.5)."""
        bias = numel(output_shape) if self.bias else 0
        return 2 * (self.flops(input_shape, output_shape) - bias) + bias


def _conv_padding(value: Any, n: int) -> tuple[int, ...] | str:
    if isinstance(value, str):
        return value
    items = tuple(value) if not isinstance(value, int) else (value,)
    if items and all(isinstance(v, str) for v in items):
        # nn.ConvTranspose2d(padding='same') stores _pair('same') = ('s', 'a', 'm', 'e')
        return "".join(items)
    return per_axis(value, n, "padding")


_CONV_DIMS: dict[type[nn.Module], int] = {
    nn.Conv1d: 1,
    nn.Conv2d: 2,
    nn.Conv3d: 3,
    nn.ConvTranspose1d: 1,
    nn.ConvTranspose2d: 2,
    nn.ConvTranspose3d: 3,
}


def conv_from_module(module: nn.Module) -> ConvSpec:
    m: Any = module
    n = next((_CONV_DIMS[c] for c in type(module).__mro__ if c in _CONV_DIMS), len(m.kernel_size))
    transposed = bool(m.transposed)
    lazy = is_lazy(module)
    if len(tuple(m.kernel_size)) != n:
        raise ShapeError(
            problem(
                None,
                f"kernel_size={tuple(m.kernel_size)} must have {n} entries for a {n}-d conv (the "
                f"weight is {n + 2}-D).",
                fix=f"kernel_size=k or a tuple of {n} ints.",
            )
        )
    return ConvSpec(
        kind=type(module).__name__,
        dims=n,
        in_channels=None if lazy else int(m.in_channels),
        out_channels=int(m.out_channels),
        kernel=tuple(int(k) for k in m.kernel_size),
        stride=per_axis(m.stride, n, "stride"),
        padding=_conv_padding(m.padding, n),
        dilation=per_axis(m.dilation, n, "dilation"),
        groups=int(m.groups),
        padding_mode=m.padding_mode,
        transposed=transposed,
        output_padding=per_axis(m.output_padding, n, "output_padding") if transposed else (),
        bias=m.bias is not None,
    )


def conv_from_call(
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
            problem(
                None,
                f"weight of shape {tuple(weight.shape)} is {weight.dim()}-D; {name} needs a "
                f"{n + 2}-D weight ({layout}{', k' * n}).",
                fix="pass a weight of that shape.",
            )
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
        stride=per_axis(bound.get("stride", 1), n, "stride"),
        padding=_conv_padding(padding, n),
        dilation=per_axis(bound.get("dilation", 1), n, "dilation"),
        groups=groups,
        transposed=transposed,
        output_padding=per_axis(bound.get("output_padding", 0), n, "output_padding")
        if transposed
        else (),
        bias=bias is not None,
        bias_shape=tuple(bias.shape) if isinstance(bias, torch.Tensor) else None,
        weight_dtype=weight.dtype,
    )
