"""Resampling: :class:`InterpolateSpec` (``nn.Upsample``, ``F.interpolate`` and the
anti-aliased kernel behind it) and :class:`PixelShuffleSpec` (``nn.PixelShuffle``,
``nn.PixelUnshuffle``), with their builders and :data:`INTERPOLATION_MODES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_convcheck.axis_maps import (
    AxisMap,
    antialiased_map,
    interpolation_map,
    source_scale,
)
from pytest_convcheck.effects import Effect, Relayout, Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    KERNEL_FLOATS,
    Geometry,
    PhaseTaps,
    Shape,
    Spec,
    averaged_taps,
    is_int,
    is_number,
    layer_label,
    numel,
    per_axis,
    split_spatial,
)

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


#: modes whose CPU kernels also take uint8 images
_UINT8_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "lanczos")


@dataclass(frozen=True)
class InterpolateSpec(Spec):
    """``nn.Upsample`` / ``F.interpolate``: ``out = size`` or ``int(in · scale_factor)``
    (truncated towards zero, as ``UpSample.cpp``'s ``compute_output_size`` does).

    Shape:
        - Input: ``(N, C, *spatial)`` with 1 to 3 spatial axes; ``linear`` takes 3-D,
          ``bilinear``/``bicubic``/``lanczos`` 4-D and ``trilinear`` 5-D input, and
          ``antialias=True`` only 4-D ``bilinear``/``bicubic``/``lanczos``.
        - Output: ``(N, C, *spatial_out)``, where per axis::

              out = size   or   int(in · scale_factor)

          with exactly one of ``size`` and ``scale_factor`` given; input and output
          sizes must be ≥ 1 (``area``, adaptive average pooling, also takes an
          output of 0).

    Source: the ``F.interpolate`` / ``nn.Upsample`` docs;
    ``aten/src/ATen/native/UpSample.cpp``.
    """

    kind: str
    size: tuple[int, ...] | int | None
    scale_factor: tuple[float, ...] | float | None
    mode: str = "nearest"
    align_corners: bool | None = None
    antialias: bool = False
    recompute_scale_factor: bool | None = None

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        """Floating inputs (not float8) in every mode; ``uint8`` only in ``nearest``,
        ``nearest-exact``, ``bilinear`` and ``bicubic`` (the image modes); no other
        integer, bool or complex input (torch 2.13's CPU kernels)."""
        if dtype in KERNEL_FLOATS or (dtype == torch.uint8 and self.mode in _UINT8_MODES):
            return
        modes = ", ".join(repr(m) for m in _UINT8_MODES)
        raise ShapeError(
            problem(
                layer_label(self.kind, name),
                f"mode={self.mode!r} does not take {str(dtype).removeprefix('torch.')} "
                f"input (floating point only; uint8 also in modes {modes}).",
                fix="interpolate a floating-point tensor: x.float() before, and round "
                "back after if integers are needed.",
            )
        )

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        rank = len(input_shape)
        if self.mode not in INTERPOLATION_MODES:
            raise ShapeError(
                problem(
                    label,
                    f"mode {self.mode!r} is not an interpolation mode of this torch.",
                    fix=f"use one of {', '.join(INTERPOLATION_MODES)}.",
                )
            )
        if rank not in (3, 4, 5):
            raise ShapeError(
                problem(
                    label,
                    f"expected a 3-D, 4-D or 5-D input (N, C, *1–3 spatial dims), got {rank}-D "
                    f"input of shape {tuple(input_shape)}.",
                    fix="add the batch dimension (x.unsqueeze(0)) or reshape to (N, C, ...).",
                )
            )
        n = rank - 2
        needed = _INTERP_RANKS.get(self.mode)
        if needed is not None and needed != rank:
            raise ShapeError(
                problem(
                    label,
                    f"mode {self.mode!r} needs a {needed}-D input, got {rank}-D input of shape "
                    f"{tuple(input_shape)}.",
                    fix=f"use mode { {3: 'linear', 4: 'bilinear', 5: 'trilinear'}[rank]!r} for "
                    f"{rank}-D input.",
                )
            )
        if self.align_corners is not None and self.mode in _NOT_ALIGNABLE:
            raise ShapeError(
                problem(
                    label,
                    "align_corners can only be set with the interpolating modes linear | bilinear "
                    f"| bicubic | trilinear, not {self.mode!r}.",
                    fix="drop align_corners.",
                )
            )
        if self.antialias and not (self.mode in _ANTIALIASED and rank == 4):
            raise ShapeError(
                problem(
                    label,
                    "antialias=True works only with 4-D input and mode 'bilinear', 'bicubic' or "
                    f"'lanczos', got mode {self.mode!r} and {rank}-D input.",
                    fix="drop antialias, or use mode 'bilinear' on a 4-D input.",
                )
            )
        if self.mode == "lanczos" and (self.align_corners or not self.antialias):
            raise ShapeError(
                problem(
                    label,
                    "mode 'lanczos' needs antialias=True and align_corners=False, got antialias="
                    f"{self.antialias}, align_corners={self.align_corners}.",
                    fix="F.interpolate(x, ..., mode='lanczos', antialias=True).",
                )
            )
        if (self.size is None) == (self.scale_factor is None):
            raise ShapeError(
                problem(
                    label,
                    "give exactly one of size or scale_factor.",
                    fix="drop size or scale_factor.",
                )
            )
        lead, spatial = split_spatial(input_shape, n)
        if input_shape[1] == 0 and not (self.mode == "area" and rank < 5):
            # 'area' on 3-D/4-D input is adaptive average pooling, which takes no channel
            raise ShapeError(
                problem(
                    label,
                    f"input of shape {tuple(input_shape)} has no channels; interpolation "
                    "needs a non-empty input (only the batch may be 0).",
                    fix="feed at least one channel.",
                )
            )
        if self.size is not None:
            sizes = per_axis(self.size, n, "size")
            if isinstance(self.size, Sequence) and len(self.size) != n:
                raise ShapeError(
                    problem(
                        label,
                        f"size {self.size} has {len(self.size)} entries for an input with {n} "
                        f"spatial dims (shape {tuple(input_shape)}).",
                        fix=f"give {n} sizes.",
                    )
                )
            out = sizes
        else:
            scales = self.scale_factor
            assert scales is not None
            if isinstance(scales, Sequence):
                if len(scales) != n:
                    raise ShapeError(
                        problem(
                            label,
                            f"scale_factor {scales} has {len(scales)} entries for an input with "
                            f"{n} spatial dims (shape {tuple(input_shape)}).",
                            fix=f"give {n} factors or one number.",
                        )
                    )
                factors = tuple(float(f) for f in scales)
            else:
                factors = (float(scales),) * n
            out = tuple(int(size * f) for size, f in zip(spatial, factors, strict=True))
        # 'area' is adaptive average pooling, which accepts an empty output.
        smallest = 0 if self.mode == "area" else 1
        if any(s <= 0 for s in spatial) or any(o < smallest for o in out):
            raise ShapeError(
                problem(
                    label,
                    f"input and output sizes must be greater than 0, got input spatial {spatial} "
                    f"→ output {out} (out = size or int(in · scale_factor)).",
                    fix="use a larger scale_factor or input.",
                )
            )
        return (*lead, *out)

    def effect(self, input_shape: Shape, output_shape: Shape) -> Window:
        """The source indices of each output position, from ``UpSample.h``'s index
        formulas (anti-aliased modes: the filter's support); a size-1 axis is
        broadcast (torch clamps the neighbours a linear kernel would reach)."""
        rank = len(input_shape)
        n = max(0, rank - 2)
        given = self.scale_factor
        factors: tuple[float | None, ...] = (
            tuple(given) if isinstance(given, (tuple, list)) else (given,) * n
        )
        if len(factors) != n:  # torch refuses it; the sizes stand in
            factors = (None,) * n
        maps = []
        for size_in, size_out, factor in zip(
            input_shape[rank - n :], output_shape[rank - n :], factors, strict=True
        ):
            # the kernels read 1/scale_factor when given, not in/out (source_scale)
            scale = source_scale(size_in, size_out, factor, self.recompute_scale_factor)
            if size_in == 1:
                maps.append(AxisMap.broadcast())
            elif self.antialias or self.mode == "lanczos":
                maps.append(antialiased_map(self.mode, size_in, size_out, scale))
            else:
                maps.append(
                    interpolation_map(self.mode, self.align_corners, size_in, size_out, scale)
                )
        return Window(tuple(range(rank - n, rank)), tuple(maps), tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Each output phase averages its source positions (the field's taps)."""
        return averaged_taps(self.effect(input_shape, output_shape))

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
        return 2 * taps * numel(output_shape)


def interpolate_from_module(module: nn.Module) -> InterpolateSpec:
    m: Any = module
    return InterpolateSpec(
        type(module).__name__,
        _freeze(m.size),
        _freeze(m.scale_factor),
        m.mode,
        m.align_corners,
        recompute_scale_factor=getattr(m, "recompute_scale_factor", None),
    )


def interpolate_from_call(
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
        bound.get("recompute_scale_factor"),
    )


def plain_interpolate_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Whether the rule's output stands for torch's on this ``F.interpolate`` call
    (see :attr:`~pytest_convcheck.layers.table.Rule.trusted_on_meta`): a floating
    (in the image modes also uint8) input with no empty non-batch dim; ``size`` as
    ints or ``scale_factor`` as finite numbers, exactly one of them;
    ``align_corners``, ``recompute_scale_factor`` and ``antialias`` as bools or
    ``None``, no ``recompute_scale_factor`` with ``size``.
    Any other call is left to torch, whose argument parser and checks refuse what
    the rule does not model (a float size, a tensor scale, an empty channel dim)."""
    names: tuple[str, ...] = ("input", "size", "scale_factor", "mode", "align_corners")
    if func is F.interpolate:
        names += ("recompute_scale_factor", "antialias")
    elif func is not F.upsample:
        return False
    if len(args) > len(names) or set(kwargs) - set(names):
        return False
    bound = dict(zip(names, args, strict=False)) | kwargs
    x, size, scale = bound.get("input"), bound.get("size"), bound.get("scale_factor")
    mode = bound.get("mode", "nearest")
    if not isinstance(x, torch.Tensor) or x.dim() < 3 or type(mode) is not str:
        return False
    if x.dtype not in KERNEL_FLOATS and not (x.dtype == torch.uint8 and mode in _UINT8_MODES):
        return False
    if any(s == 0 for s in x.shape[1:]) or (size is None) == (scale is None):
        return False
    if size is not None:
        sizes = size if isinstance(size, (tuple, list)) else (size,)
        if not all(is_int(s) for s in sizes) or bound.get("recompute_scale_factor"):
            return False
    else:
        scales = scale if isinstance(scale, (tuple, list)) else (scale,)
        if not all(is_number(s) and 0 < s < 1e6 for s in scales):
            return False
    flags = (bound.get(k) for k in ("align_corners", "recompute_scale_factor", "antialias"))
    return all(f is None or type(f) is bool for f in flags)


def _freeze(value: Any) -> Any:
    """A list argument (``size=[8, 8]``) as a tuple, for a frozen, hashable spec."""
    if isinstance(value, list):
        return tuple(value)
    return value


def antialiased_interpolate_from_call(
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


@dataclass(frozen=True)
class PixelShuffleSpec(Spec):
    """``nn.PixelShuffle(r)``: (C·r², H, W) → (C, H·r, W·r); ``nn.PixelUnshuffle`` inverse.

    Shape:
        - Input: ``(*, C_in, H_in, W_in)``, at least 3-D.
        - Output: ``(*, C_out, H_out, W_out)``, where for the shuffle (``C_in``
          divisible by ``r²``)::

              C_out = C_in / r²,  H_out = H_in · r,  W_out = W_in · r

          and for the unshuffle (``H_in`` and ``W_in`` divisible by ``r``)::

              C_out = C_in · r²,  H_out = H_in / r,  W_out = W_in / r

    Source: the ``nn.PixelShuffle`` / ``nn.PixelUnshuffle`` docs;
    ``aten/.../PixelShuffle.cpp``.
    """

    kind: str
    factor: int
    inverse: bool = False

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        r = self.factor
        if r < 1:
            what = "downscale_factor" if self.inverse else "upscale_factor"
            raise ShapeError(
                problem(
                    label,
                    f"{what} must be ≥ 1, got {r}.",
                    fix="use a factor of 2 or more (1 changes nothing).",
                )
            )
        if len(input_shape) < 3:
            raise ShapeError(
                problem(
                    label,
                    f"expected an input with at least 3 dims (*, C, H, W), got {len(input_shape)}"
                    f"-D input of shape {tuple(input_shape)}.",
                    fix="give the layer a (N, C, H, W) tensor.",
                )
            )
        *lead, c, h, w = input_shape
        if not self.inverse:
            if c % (r * r):
                raise ShapeError(
                    problem(
                        label,
                        f"channels {c} must be divisible by upscale_factor² = {r}² = {r * r} "
                        f"(input shape {tuple(input_shape)}).",
                        fix=f"make the previous conv output a multiple of {r * r} channels, e.g. "
                        f"{max(1, c // (r * r)) * r * r}.",
                    )
                )
            return (*lead, c // (r * r), h * r, w * r)
        if h % r or w % r:
            raise ShapeError(
                problem(
                    label,
                    f"height {h} and width {w} must be divisible by downscale_factor {r} (input "
                    f"shape {tuple(input_shape)}).",
                    fix=f"feed sizes that are multiples of {r}, or pad first.",
                )
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


def pixel_shuffle_from_module(module: nn.Module) -> PixelShuffleSpec:
    m: Any = module
    if isinstance(module, nn.PixelUnshuffle):
        return PixelShuffleSpec("PixelUnshuffle", int(m.downscale_factor), inverse=True)
    return PixelShuffleSpec("PixelShuffle", int(m.upscale_factor))


def pixel_shuffle_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PixelShuffleSpec:
    name = getattr(func, "__name__", "pixel_shuffle")
    inverse = "unshuffle" in name
    key = "downscale_factor" if inverse else "upscale_factor"
    factor = args[1] if len(args) > 1 else kwargs[key]
    return PixelShuffleSpec(name, int(factor), inverse)
