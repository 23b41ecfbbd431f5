"""Cropping by index: :class:`SliceSpec` for basic slicing (``x[a:b, ..., c:d]``)
and ``narrow``, with the reading of an index into per-dim slices; and
:func:`concatenated_shape`, the shape of ``torch.cat`` (crop-and-concat's other half).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_convcheck.axis_maps import AxisMap
from pytest_convcheck.effects import Effect, Window
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import PhaseTaps, Shape, Spec, layer_label


def concatenated_shape(label: str, shapes: Sequence[Shape], dim: int) -> Shape:
    """The shape of ``torch.cat`` of tensors of ``shapes`` along ``dim`` (torch docs:
    every tensor has the same shape except along ``dim``, where the sizes add up).
    Raises :class:`ShapeError` for no tensors, mixed ranks, a 0-d tensor, ``dim``
    out of range or a size that differs off ``dim``. The legacy exception (1-D
    empty tensors are skipped) is not modelled: call sites leave such calls to torch.
    """
    if not shapes:
        raise ShapeError(problem(label, "torch.cat needs at least one tensor.", fix="pass one."))
    rank = len(shapes[0])
    if rank == 0 or any(len(s) != rank for s in shapes):
        raise ShapeError(
            problem(
                label,
                f"tensors of ranks {[len(s) for s in shapes]} cannot be concatenated "
                f"(one rank ≥ 1 for all).",
                fix="reshape the tensors to one rank before concatenating.",
            )
        )
    if not -rank <= dim < rank:
        raise ShapeError(
            problem(
                label,
                f"dim {dim} is out of range for {rank}-d tensors.",
                fix=f"concatenate along a dim in [{-rank}, {rank - 1}].",
            )
        )
    dim %= rank
    for i in range(rank):
        sizes = {s[i] for s in shapes}
        if i != dim and len(sizes) > 1:
            listed = ", ".join(str(tuple(s)) for s in shapes)
            raise ShapeError(
                problem(
                    label,
                    f"shapes {listed} differ in dim {i} ({sorted(sizes)}); only dim {dim}, "
                    f"the one concatenated along, may differ.",
                    fix="crop, pad or interpolate the tensors to one size in every other dim.",
                )
            )
    return (*shapes[0][:dim], sum(s[dim] for s in shapes), *shapes[0][dim + 1 :])


SliceItem = tuple[int | None, int | None, int | None]
"""One dim's ``(start, stop, step)``, ``None`` where the slice leaves it out."""


@dataclass(frozen=True)
class SliceSpec(Spec):
    """Basic slicing ``x[a:b:s, ..., c:d]`` (``Tensor.__getitem__`` with slices and one
    ``...``) and ``narrow(dim, start, length)``: crops, as in U-Net's crop-and-concat
    or a centre crop.

    ``front`` holds the slices of the leading dims, ``back`` those of the trailing
    dims (after ``...``).

    Shape:
        - Input: ``(*)``, with at least as many dims as there are slices.
        - Output: the input's shape with, per sliced dim, Python's slice rule::

              out = len(range(*slice(a, b, s).indices(in)))

          (bounds clamp to the size; torch takes no step ≤ 0). ``narrow`` does not
          clamp: ``start + length`` must fit.

    Source: the docs of ``torch.Tensor.__getitem__`` and ``torch.narrow``.
    """

    kind: str
    front: tuple[SliceItem, ...] = ()
    back: tuple[SliceItem, ...] = ()
    strict: bool = False  # narrow: out of range is an error, not a clamp

    def placed(self, input_shape: Shape, name: str | None = None) -> list[SliceItem]:
        """One ``(start, stop, step)`` slice per dim of ``input_shape``."""
        label = layer_label(self.kind, name)
        rank = len(input_shape)
        if len(self.front) + len(self.back) > rank:
            raise ShapeError(
                problem(
                    label,
                    f"{len(self.front) + len(self.back)} indices for a {rank}-D tensor of shape "
                    f"{tuple(input_shape)}.",
                    fix="index at most as many dims as the tensor has.",
                )
            )
        middle = [(None, None, None)] * (rank - len(self.front) - len(self.back))
        return [*self.front, *middle, *self.back]

    def starts_and_steps(self, input_shape: Shape) -> list[tuple[int, int]]:
        """Per dim, the input index of output position 0 and the step."""
        found = []
        for (a, b, step), size in zip(self.placed(input_shape), input_shape, strict=True):
            start, _, stride = slice(a, b, step).indices(size)
            found.append((start, stride))
        return found

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Output ``j`` reads input ``start + j·step`` along each sliced dim (a prefix
        ``x[..., :n]`` too: a dim left out would be taken as mixed)."""
        dims, maps = [], []
        for d, (start, step) in enumerate(self.starts_and_steps(input_shape)):
            if (
                (start, step) != (0, 1)
                or d >= len(output_shape)
                or output_shape[d] != input_shape[d]
            ):
                dims.append(d)
                maps.append(AxisMap(1, step, (((start, start),),)))
        return Window(tuple(dims), tuple(maps), tuple(output_shape))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """Output ``j`` reads input ``start + j·step``: a crop shifts the phases."""
        return [(1, step, [[(start, 1.0)]]) for start, step in self.starts_and_steps(input_shape)]

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        out = []
        for dim, ((a, b, step), size) in enumerate(
            zip(self.placed(input_shape, name), input_shape, strict=True)
        ):
            if self.strict and a is not None and b is not None:
                start = a + size if a < 0 else a
                if not 0 <= start <= size or b - a + start > size:
                    raise ShapeError(
                        problem(
                            label,
                            f"start {a} + length {b - a} exceeds dim {dim} of size {size} (input "
                            f"{tuple(input_shape)}); narrow does not clamp.",
                            fix="narrow less, or slice with x[..., a:b], which clamps.",
                        )
                    )
                a, b = start, start + (b - a)
            out.append(len(range(*slice(a, b, step).indices(size))))
        return tuple(out)


def _slice_items(index: Any) -> tuple[tuple[SliceItem, ...], tuple[SliceItem, ...]]:
    """(front, back) slices of a basic index; ``ValueError`` for anything else (ints,
    ``None``, tensors, lists: no rule, torch runs them as they are)."""
    items = index if isinstance(index, tuple) else (index,)
    front: list[SliceItem] = []
    back: list[SliceItem] = []
    target = front
    for item in items:
        if item is Ellipsis:
            if target is back:
                raise ValueError("two ellipses")
            target = back
            continue
        if not isinstance(item, slice):
            raise ValueError(f"not a slice: {item!r}")
        bounds = (item.start, item.stop, item.step)
        if not all(v is None or type(v) is int for v in bounds):
            raise ValueError(f"slice bounds are not ints: {item!r}")
        if item.step is not None and item.step <= 0:
            raise ValueError("torch rejects steps ≤ 0 itself")
        target.append(bounds)
    return tuple(front), tuple(back)


def slice_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> SliceSpec:
    if getattr(func, "__name__", "") == "narrow":
        bound = dict(zip(("input", "dim", "start", "length"), args, strict=False)) | kwargs
        dim, start, length = (bound[k] for k in ("dim", "start", "length"))
        if not all(type(v) is int for v in (dim, start, length)):
            raise ValueError("narrow with tensor arguments")
        item: SliceItem = (start, start + length, None)
        if dim >= 0:
            return SliceSpec("narrow", ((None, None, None),) * dim + (item,), strict=True)
        return SliceSpec("narrow", (), (item,) + ((None, None, None),) * (-dim - 1), strict=True)
    front, back = _slice_items(args[1])
    return SliceSpec("getitem", front, back)
