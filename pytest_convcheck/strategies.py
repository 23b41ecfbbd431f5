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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
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
    "fractional_pool_cases",
    "input_shapes",
    "interpolate_cases",
    "layer_cases",
    "linear_cases",
    "norm_cases",
    "pad_cases",
    "pixel_shuffle_cases",
    "pool_cases",
    "tensor_unfold_cases",
    "unfold_cases",
    "unpool_cases",
]


@dataclass(frozen=True)
class LayerCase:
    """A layer and an input shape for it (valid or not)."""

    layer: nn.Module
    input_shape: tuple[int, ...]
    call_kwargs: tuple[tuple[str, Any], ...] = ()
    traced: bool = False  # check the verdict of ``trace`` too, not only ``output_shape``

    def __repr__(self) -> str:
        extra = f", {dict(self.call_kwargs)}" if self.call_kwargs else ""
        return f"LayerCase({self.layer!r}, {self.input_shape}{extra})"


def _mostly(valid: st.SearchStrategy[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """``valid`` values, and about one time in twelve one that torch rejects (a zero,
    a negative, an out-of-range value)."""
    return st.integers(0, 11).flatmap(lambda i: st.sampled_from(invalid) if i == 0 else valid)


def _traced(draw: st.DrawFn, *invalid: bool) -> bool:
    """Check the trace's verdict too: always for a case with an invalid argument,
    otherwise one time in four (a trace costs more than a formula)."""
    return any(invalid) or draw(st.integers(0, 3)) == 0


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
        kernel = _per_dim(draw, dims, _mostly(st.integers(1, 5), [0, -1]))
        dilation = _per_dim(draw, dims, _mostly(st.sampled_from([1, 1, 2, 3]), [0, -1]))
        stride = _per_dim(draw, dims, _mostly(st.sampled_from([1, 1, 2, 3]), [0, -1, -2]))
        padding_kind = draw(st.sampled_from(["valid", "same", "ints", "ints"]))
        padding: Any = (
            _per_dim(draw, dims, _mostly(st.integers(0, 4), [-1, -2]))
            if padding_kind == "ints"
            else padding_kind
        )
        if padding == "same" and draw(st.integers(0, 7)):
            stride = (1,) * dims  # 'same' with a stride > 1 is refused by the constructor
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
        bad = min(*kernel, *dilation, *stride) < 1 or (
            not isinstance(padding, str) and min(padding) < 0
        )
        return LayerCase(layer, shape, traced=_traced(draw, bad))

    return build()


def conv_transpose_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.ConvTranspose{dims}d`` with kernel, stride, padding, output_padding
    (valid or not), dilation and groups; sometimes ``output_size`` for forward."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        groups = draw(st.sampled_from([1, 1, 2]))
        cin = groups * draw(st.integers(1, 3))
        cout = groups * draw(st.integers(1, 3))
        kernel = _per_dim(draw, dims, _mostly(st.integers(1, 5), [0, -1]))
        stride = _per_dim(draw, dims, _mostly(st.integers(1, 4), [0, -1]))
        dilation = _per_dim(draw, dims, _mostly(st.integers(1, 3), [0, -1]))
        padding = _per_dim(draw, dims, _mostly(st.integers(0, 3), [-1, -2]))
        output_padding = _per_dim(draw, dims, _mostly(st.integers(0, 3), [-1]))
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
        bad = min(*kernel, *stride, *dilation) < 1 or min(*padding, *output_padding) < 0
        return LayerCase(layer, shape, kwargs, traced=not kwargs and _traced(draw, bad))

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
        kernel = _per_dim(draw, dims, _mostly(st.integers(1, 5), [0, -1]))
        stride = draw(
            st.one_of(st.none(), st.just(_per_dim(draw, dims, _mostly(st.integers(1, 4), [0, -1]))))
        )
        ceil_mode = draw(st.booleans())
        values = [*kernel, *(stride or ())]
        padding: tuple[int, ...] = ()
        if family == "lp":
            # LPPool1d takes a single int (its docs); a tuple fails inside torch.
            k: Any = kernel[0] if dims == 1 else kernel
            s: Any = stride[0] if dims == 1 and stride is not None else stride
            layer = _construct(_POOLS["lp"][dims], 2, k, stride=s, ceil_mode=ceil_mode)
        else:
            padding = _per_dim(draw, dims, _mostly(st.integers(0, 3), [-1]))
            kwargs: dict[str, Any] = {"stride": stride, "padding": padding, "ceil_mode": ceil_mode}
            if family == "max":
                kwargs["dilation"] = _per_dim(draw, dims, _mostly(st.integers(1, 3), [0, -1]))
                values += kwargs["dilation"]
            elif dims > 1 and draw(st.integers(0, 15)) == 0:
                kwargs["divisor_override"] = draw(st.sampled_from([0, 1, 3]))
            layer = _construct(_POOLS[family][dims], kernel, **kwargs)
        bad = min(values) < 1 or min(padding, default=0) < 0
        return LayerCase(layer, draw(input_shapes(dims, 0, max_size=12)), traced=_traced(draw, bad))

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
        size = tuple(
            draw(st.one_of(_mostly(st.integers(1, 7), [0, -1]), st.none())) for _ in range(dims)
        )
        out = size[0] if dims == 1 else size
        if dims == 1 and out is None:
            out = 1
        shape = draw(input_shapes(dims, 0, max_size=10))
        if draw(st.integers(0, 15)) == 0:
            shape = (*shape[:-1], 0)  # an empty axis
        bad = min((v for v in size if v is not None), default=1) < 1
        return LayerCase(_construct(cls, out), shape, traced=_traced(draw, bad))

    return build()


_MODES = ["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"]


class _Resize(nn.Upsample):
    """``F.interpolate`` with ``antialias=True``, which ``nn.Upsample`` cannot pass."""

    def __init__(self, size: Any, factor: Any, mode: str, align: Any, antialias: bool):
        super().__init__(size=size, scale_factor=factor, mode=mode, align_corners=align)
        self.antialias = antialias

    def forward(self, x: Any) -> Any:
        return F.interpolate(
            x, self.size, self.scale_factor, self.mode, self.align_corners, antialias=True
        )


def interpolate_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Upsample`` with size or (fractional) scale_factor and every mode; modes
    that need another rank and ``align_corners`` misuse are drawn too."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        mode = draw(st.sampled_from(_MODES))
        align = draw(st.sampled_from([None, None, True, False]))
        antialias = draw(st.integers(0, 5)) == 0
        if draw(st.booleans()):
            sizes = tuple(draw(_mostly(st.integers(1, 16), [0, -1])) for _ in range(dims))
            layer = (
                _Resize(sizes, None, mode, align, antialias)
                if antialias
                else _construct(nn.Upsample, size=sizes, mode=mode, align_corners=align)
            )
            bad = min(sizes) < 1
        else:
            factor = draw(
                st.one_of(
                    st.sampled_from([0.5, 1.5, 2.0, 3.0, 0.25, 1.0 / 3.0]),
                    st.floats(0.1, 4.0, allow_nan=False).map(lambda f: round(f, 3)),
                    st.sampled_from([0.0, -1.0, -0.5]),
                )
            )
            layer = (
                _Resize(None, factor, mode, align, antialias)
                if antialias
                else _construct(nn.Upsample, scale_factor=factor, mode=mode, align_corners=align)
            )
            bad = factor <= 0
        shape = draw(input_shapes(dims, 0, max_size=9, batched=True))
        return LayerCase(layer, shape, traced=_traced(draw, bad))

    return build()


def pixel_shuffle_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.PixelShuffle``/``nn.PixelUnshuffle`` with factors 1–4 on inputs
    ``(*lead, C, H, W)`` with 0–3 leading dims (ranks below 3 are invalid);
    ``dims`` is unused: both layers are 2-D."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        r = draw(_mostly(st.integers(1, 4), [0, -1, -2]))
        lead = tuple(draw(st.lists(st.integers(1, 3), max_size=3)))
        h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        if draw(st.booleans()):
            c = draw(
                st.one_of(st.integers(1, 4).map(lambda m: m * max(r, 1) ** 2), st.integers(1, 20))
            )
            layer: nn.Module = nn.PixelShuffle(r)
        else:
            c = draw(st.integers(1, 4))
            layer = nn.PixelUnshuffle(r)
        shape = (*lead, c, h, w)
        if draw(st.integers(0, 9)) == 0:
            shape = shape[-draw(st.integers(1, 2)) :]  # too few dims
        return LayerCase(layer, shape, traced=_traced(draw, r < 1))

    return build()


def unfold_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Unfold`` (2-D only) with kernel, dilation, padding, stride."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        kernel = _per_dim(draw, 2, _mostly(st.integers(1, 4), [0, -1]))
        dilation = _per_dim(draw, 2, _mostly(st.integers(1, 2), [0, -1]))
        padding = _per_dim(draw, 2, _mostly(st.integers(0, 2), [-1]))
        stride = _per_dim(draw, 2, _mostly(st.integers(1, 3), [0, -1]))
        layer = nn.Unfold(kernel, dilation=dilation, padding=padding, stride=stride)
        bad = min(*kernel, *dilation, *stride) < 1 or min(padding) < 0
        return LayerCase(layer, draw(input_shapes(2, 0, max_size=9)), traced=_traced(draw, bad))

    return build()


def fold_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Fold`` with output sizes and column inputs, the block count right or off by one."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        kernel = _per_dim(draw, 2, _mostly(st.integers(1, 3), [0, -1]))
        out = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
        stride = _per_dim(draw, 2, _mostly(st.integers(1, 2), [0, -1]))
        layer = nn.Fold(out, kernel, stride=stride)
        blocks = 1
        for size, k, s in zip(out, kernel, stride, strict=True):
            blocks *= max((size - k) // max(s, 1) + 1, 0)
        length = max(blocks + draw(st.sampled_from([0, 0, 0, 1, -1])), 1)
        ck = abs(kernel[0] * kernel[1]) * draw(st.integers(1, 2))
        ck += draw(st.sampled_from([0, 0, 0, 1]))
        bad = min(*kernel, *stride) < 1
        return LayerCase(layer, (draw(st.integers(1, 2)), ck, length), traced=_traced(draw, bad))

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
        wild = [-1, -4, 9] if mode == "constant" else [-1]
        pad = tuple(draw(_mostly(st.integers(low, 5), wild)) for _ in range(2 * dims))
        cls = _PADS[mode][dims]
        layer = cls(pad, 0.0) if mode == "constant" else cls(pad)
        bad = min(pad) < low or max(pad) > 5
        return LayerCase(layer, draw(input_shapes(dims, 0, max_size=6)), traced=_traced(draw, bad))

    return build()


def linear_cases(dims: int = 1) -> st.SearchStrategy[LayerCase]:
    """``nn.Linear`` on inputs of rank 1–4 whose last dim matches or not."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        fin, fout = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        lead = tuple(draw(st.lists(st.integers(1, 3), max_size=3)))
        last = draw(st.one_of(st.just(fin), st.integers(1, 8)))
        return LayerCase(nn.Linear(fin, fout), (*lead, last), traced=_traced(draw))

    return build()


def flatten_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.Flatten`` and ``nn.Unflatten`` with any dims, in range or not."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=dims + 2)))
        if draw(st.booleans()):
            flatten = nn.Flatten(draw(st.integers(-5, 4)), draw(st.integers(-5, 4)))
            return LayerCase(flatten, shape, traced=_traced(draw))
        dim = draw(st.integers(-len(shape), len(shape) - 1))
        total = shape[dim]
        options = [(total,), (1, total), (total, 1), (-1, 1), (2, -1), (3, 2)]
        sizes = draw(st.sampled_from(options))
        return LayerCase(nn.Unflatten(dim, sizes), shape, traced=_traced(draw))

    return build()


def norm_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """BatchNorm (train and eval), GroupNorm, LayerNorm and an activation, with
    matching or mismatching channel counts."""

    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
    instance = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        c = draw(st.integers(1, 6))
        shape = draw(input_shapes(dims, c, max_size=3, batched=draw(st.booleans())))
        if draw(st.integers(0, 7)) == 0:
            shape = (*shape[:-dims], *(1,) * dims)  # one spatial element
        kind = draw(st.sampled_from(["bn", "gn", "ln", "in", "softmax", "glu", "act"]))
        if kind == "bn":
            layer: nn.Module = bn[dims](c, eps=draw(_mostly(st.just(1e-5), [0.0, -1.0])))
            layer.train(draw(st.booleans()))
        elif kind == "gn":
            g = draw(st.integers(1, 3))
            layer = _construct(nn.GroupNorm, g, g * draw(st.integers(1, 3)))
        elif kind == "ln":
            layer = nn.LayerNorm(shape[-1] if draw(st.booleans()) else draw(st.integers(1, 4)))
        elif kind == "in":
            layer = instance[dims](
                draw(st.sampled_from([c, c + 1])),
                affine=draw(st.booleans()),
                track_running_stats=draw(st.booleans()),
            )
            layer.train(draw(st.booleans()))
        elif kind == "softmax":
            layer = draw(st.sampled_from([nn.Softmax, nn.LogSoftmax, nn.Softmin]))(
                dim=draw(st.integers(-dims - 3, dims + 2))
            )
        elif kind == "glu":
            layer = nn.GLU(dim=draw(st.integers(-dims - 3, dims + 2)))
        else:
            layer = draw(
                st.sampled_from(
                    [nn.ReLU(), nn.GELU(), nn.Sigmoid(), nn.Dropout(0.0), nn.Softmax2d()]
                )
            )
        return LayerCase(layer, shape, traced=_traced(draw))

    return build()


_UNPOOLS = {1: nn.MaxUnpool1d, 2: nn.MaxUnpool2d, 3: nn.MaxUnpool3d}


class _PoolUnpool(nn.Module):
    """Max pooling with indices, then unpooling (SegNet's pair): the indices the
    unpooling gets are the pooling's own."""

    def __init__(self, pool: nn.Module, unpool: nn.Module, size: tuple[int, ...] | None):
        super().__init__()
        self.pool, self.unpool, self.size = pool, unpool, size

    def forward(self, x: Any) -> Any:
        y, indices = self.pool(x)
        return self.unpool(y, indices, output_size=self.size)

    def __repr__(self) -> str:
        return f"_PoolUnpool({self.pool!r}, {self.unpool!r}, output_size={self.size})"


def unpool_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.MaxUnpool{dims}d`` after a max pooling with indices, with kernel, stride,
    padding (valid or not) and sometimes an ``output_size`` near the default."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        kernel = _per_dim(draw, dims, st.integers(1, 4))
        stride = _per_dim(draw, dims, st.integers(1, 3))
        pool = _construct(_POOLS["max"][dims], kernel, stride=stride, return_indices=True)
        k2 = _per_dim(draw, dims, _mostly(st.integers(1, 4), [0]))
        s2 = _per_dim(draw, dims, _mostly(st.integers(1, 3), [0, -1]))
        p2 = _per_dim(draw, dims, _mostly(st.integers(0, 1), [-1, 3]))
        unpool: nn.Module = _UNPOOLS[dims](k2, stride=s2, padding=p2)  # type: ignore[arg-type]
        shape = draw(input_shapes(dims, 0, max_size=10))
        spatial = shape[-dims:]
        assume(all(n >= k for n, k in zip(spatial, kernel, strict=True)))
        size = None
        if draw(st.booleans()):
            pooled = [
                (n - k) // s + 1 for n, k, s in zip(shape[-dims:], kernel, stride, strict=True)
            ]
            size = tuple(
                (n - 1) * s + k - 2 * p + draw(st.integers(-3, 3))
                for n, k, s, p in zip(pooled, k2, s2, p2, strict=True)
            )
        # the indices are values: an index beyond the unpooled plane fails only when the
        # model runs, whatever the shapes; such pairs are not drawn
        pooled_out = [(n - k) // s + 1 for n, k, s in zip(spatial, kernel, stride, strict=True)]
        out = size or tuple(
            (n - 1) * s + k - 2 * p for n, k, s, p in zip(pooled_out, k2, s2, p2, strict=True)
        )
        reach = [(o - 1) * s + k for o, k, s in zip(pooled_out, kernel, stride, strict=True)]
        largest_index = sum((r - 1) * math.prod(spatial[d + 1 :]) for d, r in enumerate(reach))
        assume(all(o >= 0 for o in out) and largest_index < math.prod(out))
        # a composite model: only the trace can predict it
        return LayerCase(_PoolUnpool(pool, unpool, size), shape, traced=True)

    return build()


class _TensorUnfold(nn.Module):
    """``x.unfold(dim, size, step)`` as a layer."""

    def __init__(self, dim: int, size: int, step: int) -> None:
        super().__init__()
        self.dim, self.size, self.step = dim, size, step

    def forward(self, x: Any) -> Any:
        return x.unfold(self.dim, self.size, self.step)

    def __repr__(self) -> str:
        return f"_TensorUnfold(dim={self.dim}, size={self.size}, step={self.step})"


def tensor_unfold_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``Tensor.unfold`` (sliding windows along one dim) with dims in range or not,
    window sizes up to beyond the dim, and steps (zero and negative too)."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        shape = tuple(draw(st.lists(st.integers(1, 6), min_size=0, max_size=4)))
        dim = draw(st.integers(-len(shape) - 1, max(len(shape), 1)))
        size = draw(_mostly(st.integers(0, 6), [-1, 9]))
        step = draw(_mostly(st.integers(1, 3), [0, -1]))
        return LayerCase(_TensorUnfold(dim, size, step), shape, traced=True)

    return build()


def fractional_pool_cases(dims: int = 2) -> st.SearchStrategy[LayerCase]:
    """``nn.FractionalMaxPool{dims}d`` (2-d and 3-d) with an output size or ratio."""

    @st.composite
    def build(draw: st.DrawFn) -> LayerCase:
        n = max(dims, 2)
        cls = nn.FractionalMaxPool2d if n == 2 else nn.FractionalMaxPool3d
        kernel = _per_dim(draw, n, _mostly(st.integers(1, 4), [0, -1]))
        if draw(st.booleans()):
            out = _per_dim(draw, n, _mostly(st.integers(1, 6), [0, -1]))
            layer = _construct(cls, kernel, output_size=out)
        else:
            ratio = draw(st.sampled_from([0.25, 0.5, 0.7, 0.9]))
            layer = _construct(cls, kernel, output_ratio=ratio)
        return LayerCase(layer, draw(input_shapes(n, 0, max_size=9)), traced=_traced(draw))

    return build()


FAMILIES: dict[str, Callable[[int], st.SearchStrategy[LayerCase]]] = {
    "conv": conv_cases,
    "conv_transpose": conv_transpose_cases,
    "max_pool": lambda dims: pool_cases(dims, "max"),
    "avg_pool": lambda dims: pool_cases(dims, "avg"),
    "lp_pool": lambda dims: pool_cases(dims, "lp"),
    "adaptive_pool": adaptive_pool_cases,
    "fractional_pool": fractional_pool_cases,
    "unpool": unpool_cases,
    "tensor_unfold": tensor_unfold_cases,
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
