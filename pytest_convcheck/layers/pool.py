"""Pooling: :class:`PoolSpec` (max, average and LP pooling) with
:func:`pool_output_size`, :class:`FractionalPoolSpec` and :class:`UnpoolSpec` (max
unpooling), each with its builders from a module and from a functional call
(adaptive pooling: :mod:`~pytest_convcheck.layers.adaptive_pool`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from pytest_convcheck.axis_maps import AxisMap, conv_like_map, transposed_map
from pytest_convcheck.effects import Effect, Mix, Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    AXIS_NAMES,
    Geometry,
    PhaseTaps,
    Shape,
    Spec,
    check_at_least,
    check_non_empty,
    check_rank,
    check_spatial_rank,
    layer_label,
    numel,
    per_axis,
    shape_of,
    split_spatial,
    torch_class_name,
)


@dataclass(frozen=True)
class PoolSpec(Spec):
    """Max/avg/LP pooling: ``nn.MaxPool*d``, ``nn.AvgPool*d``, ``nn.LPPool*d`` and ``F.*``.

    Shape:
        - Input: ``(N, C, *spatial)`` or ``(C, *spatial)``, with ``dims`` spatial axes;
          only the batch may be empty.
        - Output: ``(N, C, *spatial_out)`` or ``(C, *spatial_out)``, where per axis
          (:func:`pool_output_size`)::

              out = floor_or_ceil((in + 2·p − d·(k − 1) − 1) / s) + 1

          with ``ceil_mode``, the last window must start inside the input or the left
          padding: if ``(out − 1)·s ≥ in + p`` then ``out −= 1``. The padding is at
          most ``k // 2``; 3-D average and LP pooling also need ``in ≥ k``.

    Source: the ``nn.MaxPool*d`` / ``nn.AvgPool*d`` docs,
    ``aten/src/ATen/native/Pool.h``.
    """

    kind: str
    family: str  # "max" | "avg" | "lp"
    dims: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool = False

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        n = self.dims
        axes = AXIS_NAMES[n]
        check_rank(
            label,
            input_shape,
            (n + 1, n + 2),
            f"(C, {', '.join(axes)}) or (N, C, {', '.join(axes)})",
            f"give the pooling layer a (N, C, {', '.join(axes)}) tensor",
        )
        lead, spatial = split_spatial(input_shape, n)
        if any(size == 0 for size in input_shape[-n - 1 :]):
            raise ShapeError(
                problem(
                    label,
                    f"input of shape {tuple(input_shape)} has a zero-size non-batch "
                    f"dimension; pooling needs a non-empty input.",
                    fix="feed a non-empty input (only the batch may be 0).",
                )
            )
        for axis, k, s, d, p in zip(
            axes, self.kernel, self.stride, self.dilation, self.padding, strict=True
        ):
            if k <= 0 or s <= 0 or d <= 0 or p < 0:
                raise ShapeError(
                    problem(
                        label,
                        f"kernel_size, stride and dilation must be positive and padding "
                        f"non-negative along {axis}, got kernel={k}, stride={s}, "
                        f"dilation={d}, padding={p}.",
                        fix="kernel_size, stride and dilation ≥ 1; padding ≥ 0.",
                    )
                )
            if p > k // 2:
                raise ShapeError(
                    problem(
                        label,
                        f"padding={p} along {axis} must be at most half the kernel size "
                        f"(kernel_size // 2 = {k} // 2 = {k // 2}).",
                        fix=f"use padding ≤ {k // 2} or a larger kernel.",
                    )
                )
        out = []
        for axis, size, k, s, d, p in zip(
            axes, spatial, self.kernel, self.stride, self.dilation, self.padding, strict=True
        ):
            o = pool_output_size(size, k, s, p, d, self.ceil_mode)
            if o < 1:
                eff = d * (k - 1) + 1
                rounding = "ceil" if self.ceil_mode else "floor"
                raise ShapeError(
                    problem(
                        label,
                        f"output size along {axis} is too small: out = "
                        f"{rounding}((in + 2p − d(k−1) − 1)/s) + 1 = "
                        f"{rounding}(({size} + {2 * p} − {eff - 1} − 1)/{s}) + 1 = {o} for "
                        f"input of shape {tuple(input_shape)}.",
                        fix=f"feed at least {max(eff - 2 * p, 1)} along {axis} (a larger model "
                        f"input), or use a smaller kernel_size/dilation, or padding.",
                    )
                )
            out.append(o)
        if n == 3 and self.family in ("avg", "lp"):
            # aten pool3d_shape_check(check_input_size=true) for avg_pool3d: the
            # unpadded input must hold one kernel, even where padding or ceil_mode
            # would give a window.
            for axis, size, k in zip(axes, spatial, self.kernel, strict=True):
                if size < k:
                    raise ShapeError(
                        problem(
                            label,
                            f"input size {size} along {axis} is smaller than the kernel size "
                            f"{k}; 3-D average pooling needs in ≥ kernel_size (padding does "
                            f"not count) for input of shape {tuple(input_shape)}.",
                            fix=f"feed at least {k} along {axis}, or use a smaller kernel.",
                        )
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
        return numel(output_shape) * numel(self.kernel)


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


def _check_divisor_override(divisor: Any) -> None:
    """``avg_pool``'s ``divisor_override=0``, which torch rejects whatever the input:
    :func:`~pytest_convcheck.layers.spec_for_module` and ``spec_for_call`` turn the
    error into an :class:`InvalidSpec`."""
    if divisor is not None and int(divisor) == 0:
        raise ShapeError(
            problem(
                None, "divisor_override must not be zero.", fix="drop it, or give the divisor ≠ 0."
            )
        )


def pool_from_module(module: nn.Module) -> PoolSpec:
    m: Any = module
    kind = type(module).__name__
    base = torch_class_name(module)
    n = int(base[-2])
    family = "max" if "Max" in base else "lp" if "LP" in base else "avg"
    kernel = per_axis(m.kernel_size, n, "kernel_size")
    stride = per_axis(m.stride if m.stride is not None else kernel, n, "stride")
    padding = per_axis(getattr(m, "padding", 0), n, "padding")
    dilation = per_axis(getattr(m, "dilation", 1), n, "dilation")
    if base == "LPPool1d" and not isinstance(m.kernel_size, int):
        # F.lp_pool1d multiplies by kernel_size: a tuple fails in torch with
        # "mul(): argument 'other' must be Tensor, not tuple" (docs: "a single int").
        raise ShapeError(
            problem(
                None,
                f"kernel_size must be a single int for LPPool1d, got {m.kernel_size!r} (torch "
                f"fails in mul()).",
                fix=f"LPPool1d(norm_type, {kernel[0]}).",
            )
        )
    _check_divisor_override(getattr(m, "divisor_override", None))
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


def pool_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PoolSpec:
    name = getattr(func, "__name__", "pool")
    family = "max" if name.startswith("max") else "lp" if name.startswith("lp") else "avg"
    n = int(name.split("pool")[1][0])
    bound = dict(zip(_POOL_ARGS[family], args, strict=False)) | kwargs
    kernel = per_axis(bound["kernel_size"], n, "kernel_size")
    stride = bound.get("stride")
    stride = (
        kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    )
    _check_divisor_override(bound.get("divisor_override"))
    return PoolSpec(
        name,
        family,
        n,
        kernel,
        per_axis(stride, n, "stride"),
        per_axis(bound.get("padding", 0), n, "padding"),
        per_axis(bound.get("dilation", 1), n, "dilation"),
        bool(bound.get("ceil_mode", False)),
    )


@dataclass(frozen=True)
class FractionalPoolSpec(Spec):
    """``nn.FractionalMaxPool2d/3d`` / ``F.fractional_max_pool2d/3d`` (Graham,
    "Fractional Max-Pooling", arXiv 1412.6071): pseudo-random windows of ``kernel``
    that tile the input.

    Shape:
        - Input: ``(N, C, *spatial)`` or ``(C, *spatial)``, with ``dims`` (2 or 3)
          spatial axes; only the batch may be empty.
        - Output: ``(N, C, *spatial_out)`` or ``(C, *spatial_out)``, where per axis::

              out = output_size   or   int(in · output_ratio)
              out + kernel − 1 ≤ in   (3-D: < in)

          ``_random_samples``, if given, have the shape ``(≥ N, C, dims)`` and the
          input's dtype.

    Source: the ``nn.FractionalMaxPool2d`` docs; ``aten/.../FractionalMaxPool2d.cpp``
    and ``FractionalMaxPool3d.cpp``.
    """

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
                problem(
                    layer_label(self.kind, name),
                    f"_random_samples are {self.samples[1]} but the input is {dtype}; they "
                    f"must have the same dtype.",
                    fix="create the samples with dtype=x.dtype.",
                )
            )

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        n = self.dims
        check_spatial_rank(label, input_shape, n)
        check_non_empty(label, input_shape, n, "fractional max pooling")
        lead, spatial = split_spatial(input_shape, n)
        if self.samples is not None:
            shape = self.samples[0]
            batch = input_shape[0] if len(input_shape) == n + 2 else 1
            if len(shape) != 3 or shape[0] < batch or shape[1] != lead[-1] or shape[2] != n:
                raise ShapeError(
                    problem(
                        label,
                        f"_random_samples of shape {shape} must be (≥ N, C, {n}) = "
                        f"(≥ {batch}, {lead[-1]}, {n}) for input {tuple(input_shape)}.",
                        fix=f"drop _random_samples, or draw them as torch.rand(N, C, {n}).",
                    )
                )
        if self.output_size is not None:
            out = self.output_size
        else:
            assert self.output_ratio is not None
            out = tuple(int(size * r) for size, r in zip(spatial, self.output_ratio, strict=True))
        check_at_least(label, "output size", out, 0, "ask for an output size ≥ 0.")
        # FractionalMaxPool2d.cpp checks out + k − 1 ≤ in, FractionalMaxPool3d.cpp < in
        strictly_less = n == 3
        for axis, size, o, k in zip(AXIS_NAMES[n], spatial, out, self.kernel, strict=True):
            if o + k - 1 > size or (strictly_less and o + k - 1 == size):
                need = o + k if strictly_less else o + k - 1
                raise ShapeError(
                    problem(
                        label,
                        f"kernel {k} is too large for output size {o} along {axis}: "
                        f"out + kernel − 1 = {o} + {k} − 1 = {o + k - 1} must be "
                        f"{'<' if strictly_less else '≤'} in = {size} "
                        f"(input {tuple(input_shape)}).",
                        fix=f"feed at least {need} along {axis}, or ask for a smaller output "
                        f"or kernel.",
                    )
                )
        return (*lead, *out)


def _fractional_pool_spec(
    kind: str, n: int, kernel: Any, size: Any, ratio: Any, samples: Any
) -> FractionalPoolSpec:
    if size is None and ratio is None:
        raise ShapeError(
            problem(
                None,
                "needs either output_size or output_ratio.",
                fix="give one of them, e.g. output_ratio=0.5.",
            )
        )
    ratios = None
    if size is None:
        items = (ratio,) * n if isinstance(ratio, (int, float)) else tuple(ratio)
        if len(items) == 1:
            items = items * n
        ratios = tuple(float(r) for r in items)
        if len(ratios) != n:
            raise ShapeError(
                problem(
                    None,
                    f"output_ratio={ratio!r} must have {n} entries.",
                    fix="give one ratio, or one per axis.",
                )
            )
    return FractionalPoolSpec(
        kind,
        n,
        per_axis(kernel, n, "kernel_size"),
        None if size is None else per_axis(size, n, "output_size"),
        ratios,
        (shape_of(samples), samples.dtype) if isinstance(samples, torch.Tensor) else None,
    )


def fractional_pool_from_module(module: nn.Module) -> FractionalPoolSpec:
    m: Any = module
    n = 3 if isinstance(module, nn.FractionalMaxPool3d) else 2
    return _fractional_pool_spec(
        type(module).__name__,
        n,
        m.kernel_size,
        m.output_size,
        m.output_ratio,
        getattr(m, "_random_samples", None),
    )


def fractional_pool_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> FractionalPoolSpec:
    name = getattr(func, "__name__", "fractional_max_pool2d")
    names = ("input", "kernel_size", "output_size", "output_ratio", "return_indices")
    bound = dict(zip(names, args, strict=False)) | kwargs
    n = 3 if "3d" in name else 2
    return _fractional_pool_spec(
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
    put back where its index says (SegNet's decoder).

    Shape:
        - Input: ``(N, C, *spatial)`` or ``(C, *spatial)``, with ``dims`` spatial axes;
          only the batch may be empty. ``indices`` have the input's shape.
        - Output: ``(N, C, *spatial_out)`` or ``(C, *spatial_out)``, where per axis::

              out = (in − 1)·s − 2·p + k

          or the ``output_size`` given to ``forward``, which must lie strictly within
          one stride of it.

    Source: the ``nn.MaxUnpool*d`` docs; ``torch/nn/functional.py:
    _unpool_output_size``; ``aten/.../MaxUnpooling.cpp``.
    """

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
        label = layer_label(self.kind, name)
        n = self.dims
        check_spatial_rank(label, input_shape, n)
        if n == 3:
            check_at_least(label, "stride", self.stride, 1, "use stride ≥ 1.")
        if self.indices_shape is not None and self.indices_shape != tuple(input_shape):
            raise ShapeError(
                problem(
                    label,
                    f"indices of shape {self.indices_shape} must have the input's shape "
                    f"{tuple(input_shape)}.",
                    fix="pass the indices that the matching MaxPool (return_indices=True) "
                    "returned with this tensor.",
                )
            )
        check_non_empty(label, input_shape, n, "unpooling")
        lead, spatial = split_spatial(input_shape, n)
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
                    problem(
                        label,
                        f"output_size {self.output_size} must have {n} or {n + 2} entries.",
                        fix="pass the size of the tensor that was pooled.",
                    )
                )
            for axis, want, base, s in zip(
                AXIS_NAMES[n], wanted, default, self.stride, strict=True
            ):
                if not base - s < want < base + s:
                    raise ShapeError(
                        problem(
                            label,
                            f"output_size {want} along {axis} is out of reach: it must lie "
                            f"strictly between (in−1)·s + k − 2p ∓ s = {base - s} and "
                            f"{base + s}.",
                            fix="pass the size of the tensor that was pooled.",
                        )
                    )
            out = tuple(wanted)
        if any(o < 0 for o in out):
            raise ShapeError(
                problem(
                    label,
                    f"output size {out} is negative: out = (in − 1)·s + k − 2p must be ≥ 0.",
                    fix="reduce padding or feed a larger input.",
                )
            )
        return (*lead, *out)


def _unpool_spec(kind: str, n: int, kernel: Any, stride: Any, padding: Any) -> UnpoolSpec:
    k = per_axis(kernel, n, "kernel_size")
    return UnpoolSpec(
        kind,
        n,
        k,
        k if stride is None else per_axis(stride, n, "stride"),
        per_axis(padding, n, "padding"),
    )


def unpool_from_module(module: nn.Module) -> UnpoolSpec:
    m: Any = module
    n = int(torch_class_name(module)[-2])
    return _unpool_spec(type(module).__name__, n, m.kernel_size, m.stride, m.padding)


def unpool_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Spec:
    name = getattr(func, "__name__", "max_unpool2d")
    names = ("input", "indices", "kernel_size", "stride", "padding", "output_size")
    bound = dict(zip(names, args, strict=False)) | kwargs
    spec = _unpool_spec(
        name, int(name[-2]), bound["kernel_size"], bound.get("stride"), bound.get("padding", 0)
    )
    return spec.for_call((bound["indices"], bound.get("output_size")), {}) or spec
