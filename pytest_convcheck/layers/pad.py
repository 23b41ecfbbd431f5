"""Padding: :class:`PadSpec` for the ``nn.*Pad*d`` layers, ``F.pad`` and
``torch.constant_pad_nd``, and :func:`check_pad_mode`, the limits of reflect,
replicate and circular padding that padded convolutions share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from pytest_convcheck.axis_maps import AxisMap
from pytest_convcheck.effects import Effect, Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    Geometry,
    PhaseTaps,
    Shape,
    Spec,
    check_rank,
    layer_label,
    torch_class_name,
)


def check_pad_mode(
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
                problem(
                    label,
                    f"reflect padding ({pl}, {pr}) along {axis} must be smaller than the input "
                    f"size {size} (reflection mirrors inside the input).",
                    fix=f"reduce the padding below {size}, feed a larger input, or use "
                    "padding_mode 'replicate'/'zeros'.",
                )
            )
        if mode == "circular" and (pl > size or pr > size):
            raise ShapeError(
                problem(
                    label,
                    f"circular padding ({pl}, {pr}) along {axis} wraps around more than once: it "
                    f"must be at most the input size {size}.",
                    fix=f"reduce the padding to ≤ {size} or feed a larger input.",
                )
            )
        if mode in ("replicate", "reflect", "circular") and size == 0:
            raise ShapeError(
                problem(
                    label,
                    f"{mode} padding needs a non-empty input along {axis}.",
                    fix="feed a non-empty input, or pad with mode 'constant'.",
                )
            )


@dataclass(frozen=True)
class PadSpec(Spec):
    """Padding layers and ``F.pad``: ``pad`` lists (before, after) pairs from the last
    dim backwards, as ``F.pad`` takes them; ``out = in + before + after``.

    Shape:
        - Input: ``(*)`` with at least as many dims as are padded; a padding layer
          of ``dims`` dims takes ``(C, *dims)`` or ``(N, C, *dims)``, as do
          ``F.pad``'s non-constant modes (one or two dims more than padded).
        - Output: the input's shape with, along each padded dim::

              out = in + before + after

          A negative padding crops. Constant padding may give an empty dim, the
          other modes need ``out ≥ 1`` and a non-empty input; reflect padding must
          be smaller than the input size, circular padding at most the input size.

    Source: the ``F.pad`` and ``nn.*Pad*d`` docs; ``aten/.../ReflectionPad.cpp``,
    ``ReplicationPadding.cpp``.
    """

    kind: str
    pad: tuple[int, ...]
    mode: str = "constant"
    dims: int | None = None  # padding modules accept (dims+1)- or (dims+2)-D input

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        m = len(self.pad) // 2
        if len(self.pad) % 2:
            raise ShapeError(
                problem(
                    label,
                    f"padding length must be even, got {self.pad}.",
                    fix="give (before, after) pairs, last dim first.",
                )
            )
        if self.dims is not None:
            check_rank(
                label,
                input_shape,
                (self.dims + 1, self.dims + 2),
                f"(C, *{self.dims} dims) or (N, C, *{self.dims} dims)",
                f"give the layer a {self.dims + 2}-D tensor",
            )
        elif self.mode != "constant" and len(input_shape) not in (m + 1, m + 2):
            raise ShapeError(
                problem(
                    label,
                    f"{self.mode} padding of {m} dims needs a {m + 1}-D or {m + 2}-D input, got "
                    f"shape {tuple(input_shape)}.",
                    fix="give the layer one more dim than the padded ones (C), or two (N, C).",
                )
            )
        if m > len(input_shape):
            raise ShapeError(
                problem(
                    label,
                    f"padding {self.pad} pads {m} dims but the input has only {len(input_shape)} "
                    f"(shape {tuple(input_shape)}).",
                    fix="pad at most as many dims as the input has.",
                )
            )
        out = list(input_shape)
        axes = list(range(len(input_shape) - 1, len(input_shape) - 1 - m, -1))
        pairs = [(self.pad[2 * i], self.pad[2 * i + 1]) for i in range(m)]
        if self.mode != "constant":
            if self.mode in ("reflect", "replicate") and any(s == 0 for s in input_shape[-m - 1 :]):
                raise ShapeError(
                    problem(
                        label,
                        f"{self.mode} padding needs a non-empty input, got shape "
                        f"{tuple(input_shape)}.",
                        fix="feed a non-empty input, or pad with mode 'constant'.",
                    )
                )
            spatial = tuple(input_shape[a] for a in axes)
            check_pad_mode(label, self.mode, spatial, pairs, [f"dim {a}" for a in axes])
        for axis, (before, after) in zip(axes, pairs, strict=True):
            size = input_shape[axis] + before + after
            # replicate padding only counts the total (ReplicationPadding.cpp)
            cropped = input_shape[axis] + min(before, 0) + min(after, 0)
            if self.mode == "replicate":
                cropped = size
            if cropped < 0 or size < 0 or (size == 0 and self.mode != "constant"):
                what = " (an empty output)" if size == 0 else ""
                raise ShapeError(
                    problem(
                        label,
                        f"input size {input_shape[axis]} at dim {axis} plus padding ({before}, "
                        f"{after}) gives {size}{what}.",
                        fix="crop less (negative padding removes elements).",
                    )
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


def pad_from_module(module: nn.Module) -> PadSpec:
    kind = type(module).__name__
    base = torch_class_name(module)
    n = int(base[-2])
    mode = next(v for k, v in _PAD_MODES.items() if base.startswith(k))
    return PadSpec(kind, tuple(module.padding), mode, n)  # type: ignore[arg-type]


def pad_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PadSpec:
    if getattr(func, "__name__", "") == "constant_pad_nd":
        bound = dict(zip(("input", "pad", "value"), args, strict=False)) | kwargs
        return PadSpec("constant_pad_nd", tuple(int(p) for p in bound["pad"]))
    bound = dict(zip(("input", "pad", "mode", "value"), args, strict=False)) | kwargs
    return PadSpec("pad", tuple(bound["pad"]), bound.get("mode") or "constant")
