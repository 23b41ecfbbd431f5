"""Hypothesis strategies for conv-like layers and the inputs they get.

Every strategy draws a :class:`LayerCase`: a constructed ``nn.Module`` and an input
shape (batch and channel dims included). Cases are *valid and invalid*: the
input is drawn around the sizes the layer accepts, so roughly a third of the
cases are ones torch rejects (too small, wrong channel count, bad padding).
Configurations the layer's constructor itself refuses are never drawn.

Example::

    from hypothesis import given
    from pytest_convcheck import output_shape, ShapeError
    from pytest_convcheck.strategies import conv_cases

    @given(conv_cases(dims=2))
    def test_my_rule(case):
        ...  # case.layer, case.input_shape

``FAMILIES`` maps a family name to its strategy factory (each takes ``dims``
where it has spatial dims); ``layer_cases(family, dims)`` picks from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from torch import nn

__all__ = [
    "FAMILIES",
    "LayerCase",
    "adaptive_pool_cases",
    "conv_cases",
    "conv_transpose_cases",
    "flatten_cases",
    "fold_cases",
    "input_shapes",
    "interpolate_cases",
    "layer_cases",
    "linear_cases",
    "norm_cases",
    "pad_cases",
    "pixel_shuffle_cases",
    "pool_cases",
    "unfold_cases",
]


@dataclass(frozen=True)
class LayerCase:
    """A layer and an input shape for it (valid or not)."""

    layer: nn.Module
    input_shape: tuple[int, ...]
    call_kwargs: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        extra = f", {dict(self.call_kwargs)}" if self.call_kwargs else ""
        return f"LayerCase({self.layer!r}, {self.input_shape}{extra})"


def _per_dim(draw: st.DrawFn, dims: int, values: st.SearchStrategy[int]) -> tuple[int, ...]:
    if draw(st.booleans()):
        return (draw(values),) * dims
    return tuple(draw(values) for _ in range(dims))


def input_shapes(
    dims: int, channels: int, *, max_size: int = 12, batched: bool | None = None
) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes ``(N, C, *spatial)`` (or ``(C, *spatial)`` unbatched) with spatial
    sizes 1..``max_size``; the channel count is usually ``channels``."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[int, ...]:
        c = (
            draw(st.one_of(st.just(channels), st.integers(1, 8)))
            if channels
            else draw(st.integers(1, 8))
        )
        spatial = tuple(draw(st.integers(1, max_size)) for _ in range(dims))
        is_batched = draw(st.booleans()) if batched is None else batched
        if is_batched:
            return (draw(st.integers(1, 3)), c, *spatial)
        return (c, *spatial)

    return build()


def _construct(factory: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    try:
        return factory(*args, **kwargs)
    except (ValueError, RuntimeError, TypeError, ZeroDivisionError):
        assume(False)
        raise AssertionError("unreachable") from None


_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def conv_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Conv{dims}d`` with any kernel, stride, padding (ints, ``'same'``,
    ``'valid'``), dilation, groups and padding_mode."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
        cin = groups * draw(st.integers(1, 3))
        cout = groups * draw(st.integers(1, 3))
        kernel = _per_dim(draw, dims, st.integers(1, 5))
        dilation = _per_dim(draw, dims, st.sampled_from([1, 1, 2, 3]))
        stride = _per_dim(draw, dims, st.sampled_from([1, 1, 2, 3]))
        padding_kind = draw(st.sampled_from(["valid", "same", "ints", "ints"]))
        padding: Any = (
            _per_dim(draw, dims, st.integers(0, 4)) if padding_kind == "ints" else padding_kind
        )
        if padding == "same":
            stride = (1,) * dims
        mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        layer = _construct(
            _CONV[dims],
            cin,
            cout,
            kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            padding_mode=mode,
        )
        shape = draw(input_shapes(dims, cin, max_size=max(12, max(kernel) * max(dilation) + 2)))
        return LayerCase(layer, shape)

    return build()


def conv_transpose_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.ConvTranspose{dims}d`` with kernel, stride, padding, output_padding
    (valid or not), dilation and groups; sometimes ``output_size`` for forward."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        groups = draw(st.sampled_from([1, 1, 2]))
        cin = groups * draw(st.integers(1, 3))
        cout = groups * draw(st.integers(1, 3))
        kernel = _per_dim(draw, dims, st.integers(1, 5))
        stride = _per_dim(draw, dims, st.integers(1, 4))
        dilation = _per_dim(draw, dims, st.integers(1, 3))
        padding = _per_dim(draw, dims, st.integers(0, 3))
        output_padding = _per_dim(draw, dims, st.integers(0, 3))
        layer = _construct(
            _CONVT[dims],
            cin,
            cout,
            kernel,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
        )
        shape = draw(input_shapes(dims, cin, max_size=8))
        kwargs: tuple[tuple[str, Any], ...] = ()
        if draw(st.integers(0, 3)) == 0:
            spatial = shape[-dims:]
            size = tuple(
                (i - 1) * s - 2 * p + d * (k - 1) + 1 + draw(st.integers(-1, s))
                for i, s, p, d, k in zip(spatial, stride, padding, dilation, kernel, strict=True)
            )
            kwargs = (("output_size", size),)
        return LayerCase(layer, shape, kwargs)

    return build()


_POOLS: dict[str, dict[int, type[nn.Module]]] = {
    "max": {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d},
    "avg": {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d},
    "lp": {1: nn.LPPool1d, 2: nn.LPPool2d, **({3: nn.LPPool3d} if hasattr(nn, "LPPool3d") else {})},
}


def pool_cases(dims: int = 2, family: str = "max") -> st.SearchStrategy[LayerCase]:
    """Max/avg/LP pooling with kernel, stride, padding (valid or not), dilation
    (max only) and ceil_mode."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        kernel = _per_dim(draw, dims, st.integers(1, 5))
        stride = draw(st.one_of(st.none(), st.just(_per_dim(draw, dims, st.integers(1, 4)))))
        ceil_mode = draw(st.booleans())
        if family == "lp":
            # LPPool1d takes a single int (its docs); a tuple fails inside torch.
            k: Any = kernel[0] if dims == 1 else kernel
            s: Any = stride[0] if dims == 1 and stride is not None else stride
            layer = _construct(_POOLS["lp"][dims], 2, k, stride=s, ceil_mode=ceil_mode)
        else:
            padding = _per_dim(draw, dims, st.integers(0, 3))
            kwargs: dict[str, Any] = {"stride": stride, "padding": padding, "ceil_mode": ceil_mode}
            if family == "max":
                kwargs["dilation"] = _per_dim(draw, dims, st.integers(1, 3))
            layer = _construct(_POOLS[family][dims], kernel, **kwargs)
        return LayerCase(layer, draw(input_shapes(dims, 0, max_size=12)))

    return build()


def adaptive_pool_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """Adaptive avg/max pooling with output sizes (``None`` keeps the input size)."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        families: list[dict[int, type[nn.Module]]] = [
            {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
            {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
        ]
        cls = draw(st.sampled_from(families))[dims]
        size = tuple(draw(st.one_of(st.integers(1, 7), st.none())) for _ in range(dims))
        out = size[0] if dims == 1 else size
        if dims == 1 and out is None:
            out = 1
        return LayerCase(_construct(cls, out), draw(input_shapes(dims, 0, max_size=10)))

    return build()


_MODES = ["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"]


def interpolate_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Upsample`` with size or (fractional) scale_factor and every mode; modes
    that need another rank and ``align_corners`` misuse are drawn too."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        mode = draw(st.sampled_from(_MODES))
        align = draw(st.sampled_from([None, None, True, False]))
        if draw(st.booleans()):
            sizes = tuple(draw(st.integers(1, 16)) for _ in range(dims))
            layer = _construct(nn.Upsample, size=sizes, mode=mode, align_corners=align)
        else:
            factor = draw(
                st.one_of(
                    st.sampled_from([0.5, 1.5, 2.0, 3.0, 0.25, 1.0 / 3.0]),
                    st.floats(0.1, 4.0, allow_nan=False).map(lambda f: round(f, 3)),
                )
            )
            layer = _construct(nn.Upsample, scale_factor=factor, mode=mode, align_corners=align)
        return LayerCase(layer, draw(input_shapes(dims, 0, max_size=9, batched=True)))

    return build()


def pixel_shuffle_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.PixelShuffle``/``nn.PixelUnshuffle`` with factors 1–4 on inputs
    ``(*lead, C, H, W)`` with 0–3 leading dims (ranks below 3 are invalid);
    ``dims`` is unused: both layers are 2-D."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        r = draw(st.integers(1, 4))
        lead = tuple(draw(st.lists(st.integers(1, 3), max_size=3)))
        h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        if draw(st.booleans()):
            c = draw(st.one_of(st.integers(1, 4).map(lambda m: m * r * r), st.integers(1, 20)))
            layer: nn.Module = nn.PixelShuffle(r)
        else:
            c = draw(st.integers(1, 4))
            layer = nn.PixelUnshuffle(r)
        shape = (*lead, c, h, w)
        if draw(st.integers(0, 9)) == 0:
            shape = shape[-draw(st.integers(1, 2)) :]  # too few dims
        return LayerCase(layer, shape)

    return build()


def unfold_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Unfold`` (2-D only) with kernel, dilation, padding, stride."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        layer = nn.Unfold(
            _per_dim(draw, 2, st.integers(1, 4)),
            dilation=_per_dim(draw, 2, st.integers(1, 2)),
            padding=_per_dim(draw, 2, st.integers(0, 2)),
            stride=_per_dim(draw, 2, st.integers(1, 3)),
        )
        return LayerCase(layer, draw(input_shapes(2, 0, max_size=9)))

    return build()


def fold_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Fold`` with output sizes and column inputs, the block count right or off by one."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        kernel = _per_dim(draw, 2, st.integers(1, 3))
        out = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
        stride = _per_dim(draw, 2, st.integers(1, 2))
        layer = nn.Fold(out, kernel, stride=stride)
        blocks = 1
        for size, k, s in zip(out, kernel, stride, strict=True):
            blocks *= max((size - k) // s + 1, 0)
        length = max(blocks + draw(st.sampled_from([0, 0, 0, 1, -1])), 1)
        ck = kernel[0] * kernel[1] * draw(st.integers(1, 2)) + draw(st.sampled_from([0, 0, 0, 1]))
        return LayerCase(layer, (draw(st.integers(1, 2)), ck, length))

    return build()


_PADS: dict[str, dict[int, Any]] = {
    "constant": {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d},
    "reflect": {1: nn.ReflectionPad1d, 2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d},
    "replicate": {1: nn.ReplicationPad1d, 2: nn.ReplicationPad2d, 3: nn.ReplicationPad3d},
    "circular": {1: nn.CircularPad1d, 2: nn.CircularPad2d, 3: nn.CircularPad3d},
}


def pad_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """Padding layers of every mode (negative, cropping padding for constant)."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        mode = draw(st.sampled_from(list(_PADS)))
        low = -3 if mode == "constant" else 0
        pad = tuple(draw(st.integers(low, 5)) for _ in range(2 * dims))
        cls = _PADS[mode][dims]
        layer = cls(pad, 0.0) if mode == "constant" else cls(pad)
        return LayerCase(layer, draw(input_shapes(dims, 0, max_size=6)))

    return build()


def linear_cases(dims: int = 1) -> st.SearchStrategy[LayerCase]:
    """``nn.Linear`` on inputs of rank 1–4 whose last dim matches or not."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        fin, fout = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        lead = tuple(draw(st.lists(st.integers(1, 3), max_size=3)))
        last = draw(st.one_of(st.just(fin), st.integers(1, 8)))
        return LayerCase(nn.Linear(fin, fout), (*lead, last))

    return build()


def flatten_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Flatten`` and ``nn.Unflatten`` with any dims, in range or not."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=dims + 2)))
        if draw(st.booleans()):
            return LayerCase(nn.Flatten(draw(st.integers(-5, 4)), draw(st.integers(-5, 4))), shape)
        dim = draw(st.integers(-len(shape), len(shape) - 1))
        total = shape[dim]
        options = [(total,), (1, total), (total, 1), (-1, 1), (2, -1), (3, 2)]
        sizes = draw(st.sampled_from(options))
        return LayerCase(nn.Unflatten(dim, sizes), shape)

    return build()


def norm_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """BatchNorm (train and eval), GroupNorm, LayerNorm and an activation, with
    matching or mismatching channel counts."""

    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        c = draw(st.integers(1, 6))
        shape = draw(input_shapes(dims, c, max_size=3, batched=draw(st.booleans())))
        kind = draw(st.sampled_from(["bn", "gn", "ln", "act"]))
        if kind == "bn":
            layer: nn.Module = bn[dims](c)
            layer.train(draw(st.booleans()))
        elif kind == "gn":
            g = draw(st.integers(1, 3))
            layer = _construct(nn.GroupNorm, g, g * draw(st.integers(1, 3)))
        elif kind == "ln":
            layer = nn.LayerNorm(shape[-1] if draw(st.booleans()) else draw(st.integers(1, 4)))
        else:
            layer = draw(st.sampled_from([nn.ReLU(), nn.GELU(), nn.Sigmoid(), nn.Dropout(0.0)]))
        return LayerCase(layer, shape)

    return build()


FAMILIES: dict[str, Callable[[int], st.SearchStrategy[LayerCase]]] = {
    "conv": conv_cases,
    "conv_transpose": conv_transpose_cases,
    "max_pool": lambda dims: pool_cases(dims, "max"),
    "avg_pool": lambda dims: pool_cases(dims, "avg"),
    "lp_pool": lambda dims: pool_cases(dims, "lp"),
    "adaptive_pool": adaptive_pool_cases,
    "interpolate": interpolate_cases,
    "pixel_shuffle": pixel_shuffle_cases,
    "unfold": unfold_cases,
    "fold": fold_cases,
    "pad": pad_cases,
    "linear": linear_cases,
    "flatten": flatten_cases,
    "norm": norm_cases,
}


def layer_cases(family: str, dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """The strategy of ``family`` (a key of :data:`FAMILIES`) in ``dims`` spatial dims."""
    try:
        factory = FAMILIES[family]
    except KeyError:
        raise ValueError(
            f"unknown layer family {family!r}; known: {', '.join(sorted(FAMILIES))}"
        ) from None
    return factory(dims)
