"""Sliding windows: :class:`UnfoldSpec` (``nn.Unfold``/``F.unfold``, im2col, and
``nn.Fold``/``F.fold``, col2im) and :class:`TensorUnfoldSpec` (``Tensor.unfold``
along one dim), with their builders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from pytest_convcheck.axis_maps import conv_like_map
from pytest_convcheck.effects import Effect, Mix, Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    DILATION_FIX,
    KERNEL_FIX,
    Geometry,
    PhaseTaps,
    Shape,
    Spec,
    check_at_least,
    check_rank,
    layer_label,
    per_axis,
    wrap_dim,
)


@dataclass(frozen=True)
class UnfoldSpec(Spec):
    """``nn.Unfold`` (im2col): (N, C, H, W) → (N, C·∏k, L), L = ∏ conv output sizes;
    ``nn.Fold`` (col2im) the inverse, with the output size given.

    Shape:
        - Unfold input: ``(N, C, H, W)`` or ``(C, H, W)``, non-empty.
        - Unfold output: ``(N, C·∏k, L)`` or ``(C·∏k, L)``, where ``L`` is the number
          of sliding blocks, per axis::

              blocks = floor((in + 2·p − d·(k − 1) − 1) / s) + 1  ≥ 1

        - Fold input: ``(N, C·∏k, L)`` or ``(C·∏k, L)``, ``L`` the number of blocks
          of ``output_size``.
        - Fold output: ``(N, C, *output_size)`` or ``(C, *output_size)``.

    Source: the ``nn.Unfold`` / ``nn.Fold`` docs; ``aten/.../Im2Col.cpp``.
    """

    kind: str
    kernel: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]
    fold_output: tuple[int, int] | None = None

    def _blocks(self, label: str, spatial: Sequence[int]) -> tuple[int, int]:
        """The number of sliding blocks along H and W of ``spatial``; each must be ≥ 1."""
        blocks = tuple(
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, d, p, s in zip(
                spatial, self.kernel, self.dilation, self.padding, self.stride, strict=True
            )
        )
        if any(b < 1 for b in blocks):
            raise ShapeError(
                problem(
                    label,
                    f"spatial size {tuple(spatial)} with kernel_size={self.kernel}, dilation="
                    f"{self.dilation}, padding={self.padding}, stride={self.stride} gives {blocks}"
                    " sliding blocks (floor((in + 2p − d(k−1) − 1)/s) + 1 per axis); each must be "
                    "at least 1.",
                    fix="a larger input or a smaller kernel.",
                )
            )
        return blocks[0], blocks[1]

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        check_at_least(label, "kernel_size", self.kernel, 1, KERNEL_FIX)
        check_at_least(label, "dilation", self.dilation, 1, DILATION_FIX)
        check_at_least(label, "padding", self.padding, 0, "use padding ≥ 0.")
        check_at_least(label, "stride", self.stride, 1, "use stride ≥ 1.")
        kernel_area = self.kernel[0] * self.kernel[1]
        if self.fold_output is None:
            check_rank(
                label,
                input_shape,
                (3, 4),
                "(C, H, W) or (N, C, H, W)",
                "Unfold takes 4-D (batched) or 3-D (unbatched) image input",
            )
            *lead, c, h, w = input_shape
            if any(size == 0 for size in (c, h, w)):
                raise ShapeError(
                    problem(
                        label,
                        f"input of shape {tuple(input_shape)} is empty.",
                        fix="feed a non-empty input.",
                    )
                )
            bh, bw = self._blocks(label, (h, w))
            return (*lead, c * kernel_area, bh * bw)
        check_rank(
            label,
            input_shape,
            (2, 3),
            "(C·∏k, L) or (N, C·∏k, L)",
            "Fold takes 3-D (batched) or 2-D (unbatched) column input",
        )
        *lead, ck, length = input_shape
        if ck == 0 or ck % kernel_area:
            raise ShapeError(
                problem(
                    label,
                    f"dim -2 of the input ({ck}) must be a positive multiple of ∏kernel_size = "
                    f"{kernel_area}.",
                    fix="feed Unfold's output with the same kernel_size.",
                )
            )
        bh, bw = self._blocks(label, self.fold_output)
        if length != bh * bw:
            raise ShapeError(
                problem(
                    label,
                    f"dim -1 of the input ({length}) must equal the number of sliding blocks for "
                    f"output_size={self.fold_output}: {bh}·{bw} = {bh * bw}.",
                    fix="use the output_size that produced these columns.",
                )
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


def unfold_from_module(module: nn.Module) -> UnfoldSpec:
    m: Any = module
    fold = isinstance(module, nn.Fold)
    return UnfoldSpec(
        type(module).__name__,
        per_axis(m.kernel_size, 2, "kernel_size"),  # type: ignore[arg-type]
        per_axis(m.dilation, 2, "dilation"),  # type: ignore[arg-type]
        per_axis(m.padding, 2, "padding"),  # type: ignore[arg-type]
        per_axis(m.stride, 2, "stride"),  # type: ignore[arg-type]
        per_axis(m.output_size, 2, "output_size") if fold else None,  # type: ignore[arg-type]
    )


def unfold_from_call(
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
        per_axis(bound["kernel_size"], 2, "kernel_size"),  # type: ignore[arg-type]
        per_axis(bound.get("dilation", 1), 2, "dilation"),  # type: ignore[arg-type]
        per_axis(bound.get("padding", 0), 2, "padding"),  # type: ignore[arg-type]
        per_axis(bound.get("stride", 1), 2, "stride"),  # type: ignore[arg-type]
        per_axis(bound["output_size"], 2, "output_size") if fold else None,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class TensorUnfoldSpec(Spec):
    """``x.unfold(dimension, size, step)``: sliding windows along one dim.

    Shape:
        - Input: ``(*)``, with ``size ≤ in`` along ``dim`` (a 0-D input counts as 1).
        - Output: the input's shape with ``dim`` replaced and a new last dim::

              dim: in → (in − size) // step + 1,   new last dim: size

    Source: the ``torch.Tensor.unfold`` docs;
    ``aten/src/ATen/native/TensorShape.cpp: unfold``.
    """

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
        label = layer_label(self.kind, name)
        rank = len(input_shape)
        d = wrap_dim(label, self.dim, rank, input_shape)
        available = input_shape[d] if rank else 1
        if self.size > available:
            raise ShapeError(
                problem(
                    label,
                    f"window size {self.size} exceeds dim {d} of size {available} (input "
                    f"{tuple(input_shape)}).",
                    fix=f"a window of at most {available}, or a larger input.",
                )
            )
        if self.size < 0:
            raise ShapeError(
                problem(
                    label,
                    f"window size must be ≥ 0, got {self.size}.",
                    fix="x.unfold(dim, size ≥ 0, step ≥ 1).",
                )
            )
        if self.step < 1:
            raise ShapeError(
                problem(
                    label,
                    f"step must be ≥ 1, got {self.step}.",
                    fix="x.unfold(dim, size, step ≥ 1).",
                )
            )
        if not rank:
            return (self.size,)
        out = list(input_shape)
        out[d] = (input_shape[d] - self.size) // self.step + 1
        return (*out, self.size)


def tensor_unfold_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TensorUnfoldSpec:
    bound = dict(zip(("input", "dimension", "size", "step"), args, strict=False)) | kwargs
    values = (bound["dimension"], bound["size"], bound["step"])
    if not all(type(v) is int for v in values):
        raise ValueError("unfold with non-int arguments")
    return TensorUnfoldSpec("unfold", *values)
