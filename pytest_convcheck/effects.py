"""Effects: how one op moves and mixes the dims of its tensors.

The receptive-field analysis needs, for every op of a trace, which output
elements read which input elements; an *effect* says so for one call of an op.
Ops with a geometry rule (conv, pooling, interpolation, padding, slicing, pixel
shuffle, linear, …) give theirs through their spec's
:meth:`~pytest_convcheck.layers.Spec.effect`; every other op gets its effect from
the table of :mod:`pytest_convcheck.dims`. The kinds:

* :class:`Pointwise` — element ``i`` of the output reads element ``i`` of each
  data input (broadcast from the right): arithmetic, comparisons, activations,
  dropout, casts.
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
* :class:`Join` (``cat``/``stack``), :class:`Split` (``chunk``/``unbind``),
  :class:`Expand` (``expand``/``repeat``), :class:`Contract` (matrix products),
  :class:`Constant` (``zeros_like``), :class:`Chain` (several in order).
* :class:`Unknown` — an op with no rule. It is taken to mix every dim of every
  data input (the conservative reading: the field can only be over-stated), and
  the analysis says so.

Dims in effects are absolute (non-negative) dims of the op's first input, fixed
when the effect is built from the call's arguments and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_convcheck.axis_maps import AxisMap

Shape = tuple[int, ...]

__all__ = [
    "FIRST_ONLY",
    "POINTWISE",
    "Chain",
    "Constant",
    "Contract",
    "Effect",
    "Expand",
    "Join",
    "Mix",
    "Pointwise",
    "Relayout",
    "Shape",
    "Split",
    "Statistics",
    "Unknown",
    "Window",
]


class Effect:
    """Base of all effects. ``data``: how the op's tensor inputs after the first
    are read — ``"all"`` (broadcast operands, merged pointwise), ``"first"``
    (templates such as ``view_as``'s: not data) or ``"mixed"`` (every element of
    them reaches every output element: weights computed from the input, indices)."""

    data: str = "mixed"


@dataclass(frozen=True)
class Pointwise(Effect):
    """Element ``i`` of the output reads element ``i`` of each data input (broadcast
    from the right)."""

    data: str = "all"


POINTWISE = Pointwise()
"""The effect of an elementwise op: every tensor input is data, broadcast."""
FIRST_ONLY = Pointwise("first")
"""Pointwise on the first input only: the other tensor arguments are templates
(``type_as``'s, ``to``'s) that give a dtype or device, not data."""


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


@dataclass(frozen=True)
class Chain(Effect):
    """Effects applied in order, each to the previous one's output."""

    effects: tuple[Effect, ...]
    data: str = "first"
