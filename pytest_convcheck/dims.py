"""How each op moves and mixes the dims of its tensors: the *effects* table.

The receptive-field analysis needs, for every op of a trace, which output
elements read which input elements. Ops with a geometry rule (conv, pooling,
interpolation, padding, slicing, pixel shuffle, linear, …) describe it through
their spec's :meth:`~pytest_convcheck.layers.Spec.effect`; every other op is
described here, by name, from its documented semantics:

* :class:`Pointwise` — element ``i`` of the output reads element ``i`` of each
  data input (broadcast from the right). An explicit allow-list
  (:data:`POINTWISE_OPS`): arithmetic, comparisons, activations, dropout, casts.
* :class:`Relayout` — a pure change of layout: ``view``/``reshape``/``flatten``/
  ``unflatten``/``squeeze``/``unsqueeze`` (a reshape in row-major order) and
  ``permute``/``transpose``/``movedim`` (a permutation of dims).
* :class:`Mix` — every element along ``dims`` reads every element along them
  (``softmax``, ``cumsum``, ``sort``, reductions such as ``mean``/``amax``/``sum``,
  ``roll``/``flip`` taken conservatively, ``gather``).
* :class:`Statistics` — a normalisation: pointwise on the data path, with
  statistics over ``dims`` (GroupNorm: channels and space; InstanceNorm: space;
  LayerNorm: its trailing dims; BatchNorm in training: batch and space).
* :class:`Window` — a windowed op along some dims (from a spec), given as an
  :class:`~pytest_convcheck.axis_maps.AxisMap` per dim.
* :class:`Join` (``cat``/``stack``), :class:`Expand` (``expand``/``repeat``),
  :class:`Contract` (matrix products), :class:`Constant` (``zeros_like``).
* :class:`Unknown` — an op with no rule. It is taken to mix every dim of every
  data input (the conservative reading: the field can only be over-stated), and
  the analysis says so.

Dims in effects are absolute (non-negative) dims of the op's first input, fixed
when the effect is built from the call's arguments and shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytest_convcheck.axis_maps import AxisMap

Shape = tuple[int, ...]

__all__ = [
    "CONSTANT_OPS",
    "POINTWISE",
    "POINTWISE_OPS",
    "Chain",
    "Constant",
    "Contract",
    "Effect",
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


class Effect:
    """Base of all effects. ``data``: how the op's tensor inputs after the first
    are read — ``"all"`` (broadcast operands, merged pointwise), ``"first"``
    (templates such as ``view_as``'s: not data) or ``"mixed"`` (every element of
    them reaches every output element: weights computed from the input, indices)."""

    data: str = "mixed"


@dataclass(frozen=True)
class Pointwise(Effect):
    data: str = "all"


POINTWISE = Pointwise()
FIRST_ONLY = Pointwise("first")


@dataclass(frozen=True)
class Constant(Effect):
    """The output reads no input element (``zeros_like``, ``new_ones``)."""


@dataclass(frozen=True)
class Relayout(Effect):
    """Reshapes (row-major) and permutations, applied in order: each step is
    ``("reshape", target_shape)`` or ``("permute", dims)``."""

    steps: tuple[tuple[str, Shape], ...]
    data: str = "first"


@dataclass(frozen=True)
class Mix(Effect):
    """Every element along ``dims`` reads every element along them; the output
    has ``out_shape`` (the mixed dims kept, resized, or removed)."""

    dims: tuple[int, ...]
    out_shape: Shape
    what: str = ""
    exact: bool = True  # False: a permutation taken as a mix (an over-statement)


@dataclass(frozen=True)
class Statistics(Effect):
    """A normalisation: pointwise on the data path; its statistics span ``dims``."""

    dims: tuple[int, ...]
    kind: str = ""


@dataclass(frozen=True)
class Window(Effect):
    """A windowed op: first every element along ``mixes`` reaches every output
    element (a conv's input channels), then along each of ``dims`` the map of the
    same index in ``maps``; the output has ``out_shape`` (extra trailing dims of
    it, as ``Tensor.unfold``'s window dim, read the whole window). ``boundary``:
    positions in the padding read zeros, or mirrored, edge or wrapped-around
    input positions."""

    dims: tuple[int, ...]
    maps: tuple[AxisMap, ...]
    out_shape: Shape
    mixes: tuple[int, ...] = ()
    data: str = "mixed"
    boundary: str = "zeros"  # what the padding reads: zeros | reflect | replicate | circular


@dataclass(frozen=True)
class Split(Effect):
    """``chunk``/``split``/``unbind`` along ``dim``: each output is a slice of it at
    an offset the trace does not keep (taken as mixing the dim when it is spatial)."""

    dim: int
    out_shape: Shape
    data: str = "first"


@dataclass(frozen=True)
class Join(Effect):
    """``cat`` (``new=False``) or ``stack`` along ``dim`` of the output."""

    dim: int
    out_shape: Shape
    new: bool = False
    data: str = "all"


@dataclass(frozen=True)
class Expand(Effect):
    """``expand``/``repeat``: output dim ``i`` comes from input dim ``sources[i]``
    (``None``: a new dim), tiled ``tiles[i]`` times (repeat) or broadcast from size 1."""

    sources: tuple[int | None, ...]
    tiles: tuple[int, ...]
    out_shape: Shape
    data: str = "first"


@dataclass(frozen=True)
class Contract(Effect):
    """A matrix product ``a @ b``: ``a``'s last dim and ``b``'s second-to-last are
    summed over; with one data operand the output keeps its other dims."""

    out_shape: Shape
    data: str = "all"


@dataclass(frozen=True)
class Unknown(Effect):
    """No rule: taken to mix every dim of every data input."""

    op: str
    data: str = "mixed"


# --------------------------------------------------------------------------- the table

POINTWISE_OPS = frozenset(
    [
        "add",
        "add_",
        "sub",
        "sub_",
        "rsub",
        "mul",
        "mul_",
        "div",
        "div_",
        "true_divide",
        "floor_divide",
        "floordiv",
        "rfloordiv",
        "remainder",
        "mod",
        "rmod",
        "fmod",
        "pow",
        "pow_",
        "rpow",
        "float_power",
        "neg",
        "neg_",
        "negative",
        "pos",
        "abs",
        "abs_",
        "absolute",
        "exp",
        "exp_",
        "exp2",
        "expm1",
        "log",
        "log_",
        "log2",
        "log10",
        "log1p",
        "sqrt",
        "sqrt_",
        "rsqrt",
        "rsqrt_",
        "reciprocal",
        "reciprocal_",
        "sign",
        "sgn",
        "square",
        "square_",
        "sin",
        "cos",
        "tan",
        "tanh",
        "tanh_",
        "sinh",
        "cosh",
        "asin",
        "acos",
        "atan",
        "atan2",
        "arctan2",
        "erf",
        "erfc",
        "erfinv",
        "sigmoid",
        "sigmoid_",
        "logit",
        "xlogy",
        "hypot",
        "relu",
        "relu_",
        "relu6",
        "leaky_relu",
        "leaky_relu_",
        "elu",
        "elu_",
        "selu",
        "selu_",
        "celu",
        "celu_",
        "gelu",
        "silu",
        "silu_",
        "mish",
        "hardtanh",
        "hardtanh_",
        "hardswish",
        "hardswish_",
        "hardsigmoid",
        "hardsigmoid_",
        "softplus",
        "softsign",
        "logsigmoid",
        "tanhshrink",
        "softshrink",
        "hardshrink",
        "threshold",
        "threshold_",
        "prelu",
        "rrelu",
        "rrelu_",
        "clamp",
        "clamp_",
        "clip",
        "clip_",
        "clamp_min",
        "clamp_min_",
        "clamp_max",
        "clamp_max_",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "where",
        "masked_fill",
        "masked_fill_",
        "lerp",
        "lerp_",
        "addcmul",
        "addcmul_",
        "addcdiv",
        "addcdiv_",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "eq_",
        "logical_and",
        "logical_or",
        "logical_not",
        "logical_xor",
        "and",
        "or",
        "xor",
        "rand",
        "ror",
        "rxor",
        "invert",
        "lshift",
        "rshift",
        "bitwise_and",
        "bitwise_or",
        "bitwise_xor",
        "bitwise_not",
        "floor",
        "floor_",
        "ceil",
        "ceil_",
        "round",
        "round_",
        "trunc",
        "trunc_",
        "frac",
        "nan_to_num",
        "nan_to_num_",
        "isnan",
        "isinf",
        "isfinite",
        "isneginf",
        "isposinf",
        "signbit",
        "heaviside",
        "copysign",
        "ldexp",
        "deg2rad",
        "rad2deg",
        "dropout",
        "dropout_",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "feature_alpha_dropout",
        "channel_shuffle",
        "native_channel_shuffle",
        "copy_",
        "fill_",
        "zero_",
        "mul_scalar",
        "mish_",
        "gelu_",
        "softplus_",
    ]
)
"""Ops that read, for each output element, the same element of each (broadcast)
data input — and nothing else."""

_TEMPLATE_OPS = frozenset(
    [
        "to",
        "float",
        "double",
        "half",
        "bfloat16",
        "int",
        "long",
        "bool",
        "short",
        "char",
        "byte",
        "type",
        "type_as",
        "contiguous",
        "clone",
        "detach",
        "detach_",
        "requires_grad_",
        "cpu",
        "cuda",
        "pin_memory",
        "coalesce",
        "as_strided_copy",
    ]
)
"""Pointwise on the first input; other tensor arguments only give a dtype or device."""

CONSTANT_OPS = frozenset(
    [
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "rand_like",
        "randn_like",
        "randint_like",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty",
        "new_tensor",
    ]
)
"""Ops whose output reads no element of the input (only its shape, dtype, device)."""

_RESHAPES = frozenset(
    [
        "view",
        "reshape",
        "view_as",
        "reshape_as",
        "flatten",
        "unflatten",
        "squeeze",
        "unsqueeze",
        "squeeze_",
        "unsqueeze_",
        "ravel",
        "atleast_1d",
        "atleast_2d",
        "atleast_3d",
    ]
)
_REDUCTIONS = frozenset(
    [
        "sum",
        "mean",
        "nansum",
        "nanmean",
        "prod",
        "amax",
        "amin",
        "max",
        "min",
        "std",
        "var",
        "std_mean",
        "var_mean",
        "logsumexp",
        "norm",
        "all",
        "any",
        "count_nonzero",
        "argmax",
        "argmin",
        "median",
        "nanmedian",
        "mode",
        "kthvalue",
        "quantile",
        "nanquantile",
        "linalg_vector_norm",
        "linalg_norm",
        "aminmax",
    ]
)
_SCANS = frozenset(
    [
        "cumsum",
        "cumsum_",
        "cumprod",
        "cumprod_",
        "cummax",
        "cummin",
        "logcumsumexp",
        "sort",
        "argsort",
        "msort",
    ]
)
_SOFTMAX = frozenset(["softmax", "log_softmax", "softmin"])
_SPLITS = frozenset(["chunk", "split", "split_with_sizes", "tensor_split"])

EffectBuilder = Callable[[tuple[Any, ...], dict[str, Any], Shape, Shape], Effect]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _dims(value: Any, rank: int) -> tuple[int, ...] | None:
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
    dims = _dims(dim, len(shape))
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
        dims = _dims(_arg(args, kwargs, index, name, default), len(shape))
        if dims is None:
            return Unknown("?")
        return Mix(dims, out)

    return build


def _softmax(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dim = _arg(args, kwargs, 1, "dim", None)
    if dim is None:  # torch's legacy implicit dim (F._get_softmax_dim)
        dim = 0 if len(shape) in (0, 1, 3) else 1
    dims = _dims(dim, len(shape))
    return Unknown("softmax") if dims is None else Mix(dims, out)


def _topk(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dims = _dims(_arg(args, kwargs, 2, "dim", -1), len(shape))
    return Unknown("topk") if dims is None else Mix(dims, out)


def _roll(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    dims = _dims(_arg(args, kwargs, 2, "dims", None), len(shape))
    return Unknown("roll") if dims is None else Mix(dims, out, "roll (a cyclic shift)", exact=False)


def _flip(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
    value = _arg(args, kwargs, 1, "dims", None)
    if len(args) > 2 and all(isinstance(v, int) for v in args[1:]):
        value = tuple(args[1:])
    dims = _dims(value, len(shape)) if value is not None else None
    return Unknown("flip") if dims is None else Mix(dims, out, "flip (a reversal)", exact=False)


def _fixed(dims: tuple[int, ...], what: str = "") -> EffectBuilder:
    """Mixes fixed dims; with ``what``, a permutation taken as a mix."""

    def build(args: tuple[Any, ...], kwargs: dict[str, Any], shape: Shape, out: Shape) -> Effect:
        if what.startswith("rot90"):
            found = _dims(_arg(args, kwargs, 2, "dims", dims), len(shape))
        else:
            found = _dims(dims, len(shape))
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


@dataclass(frozen=True)
class Chain(Effect):
    """Effects applied in order, each to the previous one's output."""

    effects: tuple[Effect, ...]
    data: str = "first"


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
    dims = _dims(_arg(args, kwargs, 2, "dim", -1), len(shape))
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
    **{op: _first_only for op in _TEMPLATE_OPS},
    **{op: _constant for op in CONSTANT_OPS},
    **{op: _reshape for op in _RESHAPES},
    **{op: _reducing(op) for op in _REDUCTIONS},
    **{op: _along(-1) for op in _SCANS},
    **{op: _softmax for op in _SOFTMAX},
    **{op: _split for op in _SPLITS},
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
