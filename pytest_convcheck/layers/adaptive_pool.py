"""Adaptive pooling: :class:`AdaptivePoolSpec` (``nn.AdaptiveAvgPool*d`` and
``nn.AdaptiveMaxPool*d``), its builders from a module and from a functional call,
and :func:`plain_adaptive_avg_call`, the calls whose rule stands in for the meta
kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_convcheck.axis_maps import AxisMap, interpolation_map
from pytest_convcheck.effects import Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    KERNEL_FLOATS,
    Geometry,
    PhaseTaps,
    Shape,
    Spec,
    averaged_taps,
    check_at_least,
    check_non_empty,
    check_spatial_rank,
    is_int,
    layer_label,
    numel,
    split_spatial,
    torch_class_name,
)


@dataclass(frozen=True)
class AdaptivePoolSpec(Spec):
    """``nn.AdaptiveAvgPool*d`` / ``nn.AdaptiveMaxPool*d``: the output size is given;
    ``None`` keeps the input size along that axis.

    Shape:
        - Input: ``(N, C, *spatial)`` or ``(C, *spatial)``, with ``dims`` spatial axes;
          only the batch may be empty, except for average pooling to one position
          per axis (a mean).
        - Output: ``(N, C, *output_size)`` or ``(C, *output_size)``, an entry ``None``
          replaced by the input's size along that axis.

    Source: the ``nn.AdaptiveAvgPool*d`` / ``nn.AdaptiveMaxPool*d`` docs;
    ``aten/.../AdaptiveAveragePooling.cpp``.
    """

    kind: str
    dims: int
    output_size: tuple[int | None, ...]

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        """Floating inputs only (not float8); complex too for an average to one position
        per axis (torch takes the mean). torch 2.13's CPU kernels; its meta kernels take
        any."""
        global_mean = "avg" in self.kind.lower() and all(o == 1 for o in self.output_size)
        if dtype in KERNEL_FLOATS or (dtype.is_complex and global_mean):
            return
        raise ShapeError(
            problem(
                layer_label(self.kind, name),
                f"adaptive pooling does not take {str(dtype).removeprefix('torch.')} input "
                f"(floating point only).",
                fix="pool a floating-point tensor: x.float() before the layer.",
            )
        )

    def global_average(self, spatial: Shape) -> bool:
        """Average pooling to one position per axis: torch computes a mean, which also
        takes an empty input (``aten/.../AdaptiveAveragePooling.cpp``)."""
        sizes = (i if o is None else o for i, o in zip(spatial, self.output_size, strict=True))
        return "avg" in self.kind.lower() and all(s == 1 for s in sizes)

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        n = self.dims
        check_spatial_rank(label, input_shape, n)
        if len(self.output_size) != n:
            raise ShapeError(
                problem(
                    label,
                    f"output_size={self.output_size} must have {n} entries (one per spatial axis).",
                    fix=f"output_size=s or a tuple of {n} sizes.",
                )
            )
        check_at_least(
            label,
            "output_size",
            [s for s in self.output_size if s is not None],
            0,
            "give each output size as an int ≥ 0 (or None to keep the input size).",
        )
        lead, spatial = split_spatial(input_shape, n)
        if not self.global_average(spatial):
            check_non_empty(label, input_shape, n, "adaptive pooling")
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
        return averaged_taps(self.effect(input_shape, output_shape))

    def geometry(self) -> Geometry:
        n = self.dims
        return Geometry("adaptive_pool", (0,) * n, (0,) * n, ((0, 0),) * n, (1,) * n)

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        return numel(input_shape)


def _adaptive_output_size(value: Any, n: int) -> tuple[int | None, ...]:
    if value is None or is_int(value):
        return (None if value is None else int(value),) * n
    items = tuple(int(v) if is_int(v) else v for v in value)
    return items * n if len(items) == 1 and n > 1 else items


def plain_adaptive_avg_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Whether the rule's output stands for torch's on this ``F.adaptive_avg_pool*d``
    call (see :attr:`~pytest_convcheck.layers.table.Rule.trusted_on_meta`): a floating
    input and ``output_size`` an int or a tuple or list of exactly one entry per
    spatial axis, each an int or ``None``. Any other call (``None`` alone, a bool, a
    1-tuple for two axes) is left to torch, whose argument parser refuses it."""
    dims = {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3}
    n = dims.get(func)
    if n is None or len(args) > 2 or set(kwargs) - {"input", "output_size"}:
        return False
    bound = dict(zip(("input", "output_size"), args, strict=False)) | kwargs
    x, size = bound.get("input"), bound.get("output_size")
    if not isinstance(x, torch.Tensor) or x.dtype not in KERNEL_FLOATS:
        return False
    if is_int(size):
        return True
    return (
        isinstance(size, (tuple, list))
        and len(size) == n
        and all(s is None or is_int(s) for s in size)
    )


def adaptive_pool_from_module(module: nn.Module) -> AdaptivePoolSpec:
    kind = type(module).__name__
    n = int(torch_class_name(module)[-2])
    return AdaptivePoolSpec(kind, n, _adaptive_output_size(module.output_size, n))


def adaptive_pool_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AdaptivePoolSpec:
    name = getattr(func, "__name__", "adaptive_pool")
    n = int(name.split("pool")[1][0])
    size = args[1] if len(args) > 1 else kwargs["output_size"]
    return AdaptivePoolSpec(name, n, _adaptive_output_size(size, n))
