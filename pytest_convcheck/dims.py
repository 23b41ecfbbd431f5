"""The effects table: what each op without a geometry rule does to the dims of its
tensors, read from its call.

The receptive-field analysis needs, for every op of a trace, which output elements
read which input elements (an *effect*, :mod:`pytest_convcheck.effects`). Ops with
a geometry rule (conv, pooling, interpolation, padding, slicing, pixel shuffle,
linear, …) describe it through their spec's
:meth:`~pytest_convcheck.layers.Spec.effect`; every other op is described here, by
name (:data:`TABLE`), from its documented semantics: whole families of ops
(:mod:`pytest_convcheck.op_families`: pointwise ops, reshapes, reductions, scans,
…) share a builder, and ops such as ``permute``, ``cat``, ``getitem`` or
``layer_norm`` read their arguments. :func:`effect_of_call` builds the effect of
one call; an op the table does not know, or a call it cannot read, gets
:class:`~pytest_convcheck.effects.Unknown`.

The effect classes and the op families are re-exported here, for the modules that
import them together with the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytest_convcheck.axis_maps import AxisMap
from pytest_convcheck.effects import (
    FIRST_ONLY,
    POINTWISE,
    Chain,
    Constant,
    Contract,
    Effect,
    Expand,
    Join,
    Mix,
    Pointwise,
    Relayout,
    Shape,
    Split,
    Statistics,
    Unknown,
    Window,
)
from pytest_convcheck.op_families import (
    CONSTANT_OPS,
    POINTWISE_OPS,
    REDUCTION_OPS,
    RESHAPE_OPS,
    SCAN_OPS,
    SOFTMAX_OPS,
    SPLIT_OPS,
    TEMPLATE_OPS,
)

__all__ = [
    "CONSTANT_OPS",
    "POINTWISE",
    "POINTWISE_OPS",
    "TABLE",
    "Chain",
    "Constant",
    "Contract",
    "Effect",
    "EffectBuilder",
    "Expand",
    "Join",
    "Mix",
    "Pointwise",
    "Relayout",
    "Split",
    "Statistics",
    "Unknown",
    "Window",
    "effect_of_call",
]


EffectBuilder = Callable[[tuple[Any, ...], dict[str, Any], Shape, Shape], Effect]
"""Builds one call's effect from its ``(args, kwargs, input shape, output shape)``."""


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _dim_argument(value: Any, rank: int) -> tuple[int, ...] | None:
    """``value`` (an int, a sequence of ints, or ``None`` = every dim) as sorted
    absolute dims of a ``rank``-D tensor; ``None`` when it is not a dim argument."""
    if value is None:
        return tuple(range(rank))
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        values: Sequence[Any] = (value,)
    elif isinstance(value, (tuple, list, torch.Size)):
        values = value
    else:
        return None
    extent = max(rank, 1)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    if not all(-extent <= v < extent for v in values):
        return None
    return tuple(sorted({v % extent for v in values})) if rank else ()


def _reduction(
    op: str, args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape
) -> Effect:
    if op in ("max", "min") and len(args) > 1 and isinstance(args[1], torch.Tensor):
        return POINTWISE  # torch.max(a, b): elementwise
    dim = _arg(args, kwargs, 2 if op in ("norm", "quantile", "nanquantile") else 1, "dim", None)
    if op in ("kthvalue",):
        dim = _arg(args, kwargs, 2, "dim", -1)
    if op in ("linalg_vector_norm", "linalg_norm"):
        dim = _arg(args, kwargs, 2, "dim", None)
    if "axis" in kwargs:
        dim = kwargs["axis"]
    dims = _dim_argument(dim, len(shape))
    if dims is None:
        return Unknown(op)
    return Mix(dims, out, f"{op} over dims {list(dims)}")


def _reducing(op: str) -> EffectBuilder:
    def build(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
        return _reduction(op, args, kwargs, shape, out)

    return build


def _along(
    default: int | tuple[int, ...] | None, index: int = 1, name: str = "dim"
) -> EffectBuilder:
    def build(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
        dims = _dim_argument(_arg(args, kwargs, index, name, default), len(shape))
        if dims is None:
            return Unknown("?")
        return Mix(dims, out)

    return build


def _softmax(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dim = _arg(args, kwargs, 1, "dim", None)
    if dim is None:  # torch's legacy implicit dim (F._get_softmax_dim)
        dim = 0 if len(shape) in (0, 1, 3) else 1
    dims = _dim_argument(dim, len(shape))
    return Unknown("softmax") if dims is None else Mix(dims, out)


def _topk(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dims = _dim_argument(_arg(args, kwargs, 2, "dim", -1), len(shape))
    return Unknown("topk") if dims is None else Mix(dims, out)


def _roll(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dims = _dim_argument(_arg(args, kwargs, 2, "dims", None), len(shape))
    return Unknown("roll") if dims is None else Mix(dims, out, "roll (a cyclic shift)", exact=False)


def _flip(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    value = _arg(args, kwargs, 1, "dims", None)
    if len(args) > 2 and all(isinstance(v, int) for v in args[1:]):
        value = tuple(args[1:])
    dims = _dim_argument(value, len(shape)) if value is not None else None
    return Unknown("flip") if dims is None else Mix(dims, out, "flip (a reversal)", exact=False)


def _fixed(dims: tuple[int, ...], what: str = "") -> EffectBuilder:
    """Mixes fixed dims; with ``what``, a permutation taken as a mix."""

    def build(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
        if what.startswith("rot90"):
            found = _dim_argument(_arg(args, kwargs, 2, "dims", dims), len(shape))
        else:
            found = _dim_argument(dims, len(shape))
        if found is None:
            return Unknown("?")
        return Mix(found, out, what, exact=not what)

    return build


def _reshape(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    if math.prod(shape) != math.prod(out):
        return Unknown("reshape")
    return Relayout((("reshape", out),))


def _permutation(perm: Sequence[int], rank: int) -> Effect:
    if rank == 0:
        return FIRST_ONLY
    dims = tuple(d % rank for d in perm)
    if sorted(dims) != list(range(rank)):
        return Unknown("permute")
    return Relayout((("permute", dims),))


def _permute(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    perm = kwargs.get("dims", args[1:] if len(args) > 1 else ())
    if len(perm) == 1 and isinstance(perm[0], (tuple, list, torch.Size)):
        perm = perm[0]
    if not all(isinstance(d, int) for d in perm) or len(perm) != len(shape):
        return Unknown("permute")
    return _permutation(perm, len(shape))


def _transpose(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    rank = len(shape)
    if rank < 2:
        return FIRST_ONLY
    a = _arg(args, kwargs, 1, "dim0", 0)
    b = _arg(args, kwargs, 2, "dim1", 1)
    if not (isinstance(a, int) and isinstance(b, int)):
        return Unknown("transpose")
    perm = list(range(rank))
    perm[a % rank], perm[b % rank] = perm[b % rank], perm[a % rank]
    return _permutation(perm, rank)


def _matrix_transpose(
    args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape
) -> Effect:
    rank = len(shape)
    if rank < 2:
        return FIRST_ONLY
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return _permutation(perm, rank)


def _reversed_dims(
    args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape
) -> Effect:
    """``x.T`` (and ``x.H``): every dim reversed."""
    return _permutation(tuple(reversed(range(len(shape)))), len(shape))


def _movedim(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    rank = len(shape)
    source = _arg(args, kwargs, 1, "source", None)
    destination = _arg(args, kwargs, 2, "destination", None)
    src = (source,) if isinstance(source, int) else tuple(source or ())
    dst = (destination,) if isinstance(destination, int) else tuple(destination or ())
    if len(src) != len(dst) or not rank:
        return Unknown("movedim")
    src = tuple(s % rank for s in src)
    dst = tuple(d % rank for d in dst)
    perm: list[int | None] = [None] * rank
    for s, d in zip(src, dst, strict=True):
        perm[d] = s
    rest = iter(d for d in range(rank) if d not in src)
    return _permutation([p if p is not None else next(rest) for p in perm], rank)


def _expand(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    offset = len(out) - len(shape)
    if offset < 0:
        return Unknown("expand")
    sources = tuple(None if i < offset else i - offset for i in range(len(out)))
    return Expand(sources, (1,) * len(out), out)


def _repeat(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    offset = len(out) - len(shape)
    if offset < 0:
        return Unknown("repeat")
    sources = tuple(None if i < offset else i - offset for i in range(len(out)))
    tiles = tuple(
        out[i] if src is None else (out[i] // shape[src] if shape[src] else 1)
        for i, src in enumerate(sources)
    )
    return Expand(sources, tiles, out)


def _split(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    default = 0
    dim = _arg(args, kwargs, 2, "dim", default)
    if not isinstance(dim, int) or not shape:
        return Unknown("split")
    return Split(dim % len(shape), out)


def _unbind(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dim = _arg(args, kwargs, 1, "dim", 0)
    if not isinstance(dim, int) or not shape:
        return Unknown("unbind")
    return Split(dim % len(shape), out)


def _join(new: bool) -> EffectBuilder:
    def build(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
        dim = _arg(args, kwargs, 1, "dim", 0)
        if not isinstance(dim, int) or not out:
            return Unknown("cat")
        return Join(dim % len(out), out, new)

    return build


def _select(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dim = _arg(args, kwargs, 1, "dim", None)
    index = _arg(args, kwargs, 2, "index", None)
    if not (isinstance(dim, int) and isinstance(index, int)) or not shape:
        return Unknown("select")
    dim %= len(shape)
    index %= max(shape[dim], 1)
    kept = (*shape[:dim], 1, *shape[dim + 1 :])
    return _chain(
        Window((dim,), (AxisMap(1, 1, (((index, index),),)),), kept),
        Relayout((("reshape", out),)),
    )


def _chain(*effects: Effect) -> Effect:
    return Chain(tuple(effects))


def _getitem(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    """Basic indexing with ints, slices, ``None`` and one ``...`` (tensor indices:
    no rule)."""
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (torch.Tensor, list, bool)) for i in items):
        return Unknown("getitem")
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if consumed > len(shape) or sum(1 for i in items if i is Ellipsis) > 1:
        return Unknown("getitem")
    placed: list[Any] = []
    for item in items:
        if item is Ellipsis:
            placed += [slice(None)] * (len(shape) - consumed)
        elif item is not None:
            placed.append(item)
    placed += [slice(None)] * (len(shape) - len(placed))
    dims: list[int] = []
    maps: list[AxisMap] = []
    kept: list[int] = []
    for d, (item, size) in enumerate(zip(placed, shape, strict=True)):
        if isinstance(item, int):
            if not -size <= item < size:
                return Unknown("getitem")
            start = item % size
            dims.append(d)
            maps.append(AxisMap(1, 1, (((start, start),),)))
            kept.append(1)
        elif isinstance(item, slice):
            if not all(v is None or type(v) is int for v in (item.start, item.stop, item.step)):
                return Unknown("getitem")
            start, stop, step = item.indices(size)
            length = len(range(start, stop, step))
            if (start, step, length) != (0, 1, size):
                dims.append(d)
                maps.append(AxisMap(1, step, (((start, start),),)))
            kept.append(length)
        else:
            return Unknown("getitem")
    window = Window(tuple(dims), tuple(maps), tuple(kept))
    if tuple(kept) == tuple(out):
        return window
    return _chain(window, Relayout((("reshape", out),)))


def _diff(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    n = _arg(args, kwargs, 1, "n", 1)
    dims = _dim_argument(_arg(args, kwargs, 2, "dim", -1), len(shape))
    if not isinstance(n, int) or dims is None or len(dims) != 1 or len(out) != len(shape):
        return Unknown("diff")
    return Window(dims, (AxisMap(1, 1, (((0, n),),)),), out)


def _repeat_interleave(
    args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape
) -> Effect:
    repeats = _arg(args, kwargs, 1, "repeats", None)
    dim = _arg(args, kwargs, 2, "dim", None)
    if not isinstance(repeats, int) or not isinstance(dim, int) or repeats < 1:
        return Unknown("repeat_interleave")
    d = dim % len(shape)
    upsample = AxisMap(repeats, 1, tuple(((0, 0),) for _ in range(repeats)))
    return Window((d,), (upsample,), out)


def _batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    """Per position: the field is the inference-time one, where batch norm reads its
    running statistics (in training it takes them over the batch, which the batch
    check's concern, not the field's)."""
    return Statistics((), "batch norm")


def _instance_norm(
    args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape
) -> Effect:
    use_input_stats = bool(_arg(args, kwargs, 5, "use_input_stats", True))
    return Statistics(tuple(range(2, len(shape))) if use_input_stats else (), "instance norm")


def _group_norm(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    return Statistics(tuple(range(1, len(shape))), "group norm")


def _layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    normalized = _arg(args, kwargs, 1, "normalized_shape", None)
    k = 1 if isinstance(normalized, int) else len(normalized or ())
    k = min(k, len(shape))
    return Statistics(tuple(range(len(shape) - k, len(shape))), "layer norm")


def _pointwise(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    return POINTWISE


def _first_only(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    return FIRST_ONLY


def _constant(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    return Constant()


TABLE: dict[str, EffectBuilder] = {
    **{op: _pointwise for op in POINTWISE_OPS},
    **{op: _first_only for op in TEMPLATE_OPS},
    **{op: _constant for op in CONSTANT_OPS},
    **{op: _reshape for op in RESHAPE_OPS},
    **{op: _reducing(op) for op in REDUCTION_OPS},
    **{op: _along(-1) for op in SCAN_OPS},
    **{op: _softmax for op in SOFTMAX_OPS},
    **{op: _split for op in SPLIT_OPS},
    "normalize": _along(1, 2),
    "unbind": _unbind,
    "topk": _topk,
    "roll": _roll,
    "flip": _flip,
    "fliplr": _fixed((1,), "fliplr (a reversal)"),
    "flipud": _fixed((0,), "flipud (a reversal)"),
    "rot90": _fixed((0, 1), "rot90 (a rotation)"),
    "gather": _along(None),
    "index_select": _along(None),
    "take_along_dim": _along(None, 2),
    "local_response_norm": _fixed((1,)),
    "permute": _permute,
    "transpose": _transpose,
    "transpose_": _transpose,
    "swapaxes": _transpose,
    "swapdims": _transpose,
    "t": _matrix_transpose,
    # tensor properties, recorded under their names (x.mT, x.T, x.data, ...)
    "mT": _matrix_transpose,
    "mH": _matrix_transpose,
    "T": _reversed_dims,
    "H": _reversed_dims,
    "data": _pointwise,
    "real": _pointwise,
    "imag": _pointwise,
    "movedim": _movedim,
    "moveaxis": _movedim,
    "expand": _expand,
    "expand_as": _expand,
    "broadcast_to": _expand,
    "repeat": _repeat,
    "tile": _repeat,
    "repeat_interleave": _repeat_interleave,
    "cat": _join(False),
    "concat": _join(False),
    "concatenate": _join(False),
    "stack": _join(True),
    "select": _select,
    "getitem": _getitem,
    "diff": _diff,
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    "group_norm": _group_norm,
    "layer_norm": _layer_norm,
    "rms_norm": _layer_norm,
}
"""Op name (as the trace records it) → how to build its effect from the call."""


def effect_of_call(
    op: str, args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape
) -> Effect:
    """The effect of one call of an op without a geometry rule; :class:`Unknown`
    for an op the table does not know or a call it cannot read."""
    build = TABLE.get(op)
    if build is None:
        return Unknown(op)
    try:
        effect = build(args, kwargs, shape, out)
    except (TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
        return Unknown(op)
    if isinstance(effect, Unknown) and effect.op != op:
        return Unknown(op)
    return effect
