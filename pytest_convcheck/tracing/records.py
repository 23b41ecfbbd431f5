"""What a trace records: :class:`Trace`, its op graph of :class:`TraceNode` and its
table of :class:`TraceLayer` rows (with the text rendering of that table), and
:class:`OpCall`, how one op was called, kept so that it can be called again on
tensors of other shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from pytest_convcheck.dims import Effect, Unknown
from pytest_convcheck.inputs import Inputs
from pytest_convcheck.layers import Shape, Spec
from pytest_convcheck.tracing.tensors import format_shape, is_row_major

MODEL_INPUT = -1
"""Producer index of the model's input tensor in :attr:`TraceNode.inputs`."""


class TraceNode(NamedTuple):
    """One op application.

    ``inputs`` holds, for each tensor argument, the index of the node that
    produced it, :data:`MODEL_INPUT` for the model input, or ``None`` for a
    parameter, buffer or constant.
    """

    node_id: int
    op: str
    module: str
    inputs: tuple[int | None, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape | None
    spec: Spec | None = None
    predicted_shape: Shape | None = None
    effect: Effect | None = None
    call: OpCall | None = None

    def dims_effect(self) -> Effect:
        """How this op moves and mixes dims: its spec's effect, else the one the
        ops table gave the call, else :class:`~pytest_convcheck.dims.Unknown`."""
        if self.spec is not None and self.input_shapes and self.output_shape is not None:
            found = self.spec.effect(self.input_shapes[0], self.output_shape)
            if found is not None:
                return found
        return self.effect if self.effect is not None else Unknown(self.op)

    def flops(self) -> int:
        """FLOPs of this op from its rule (0 for ops without one)."""
        return self._rule_count(backward=False)

    def backward_flops(self) -> int:
        """FLOPs of this op's backward pass from its rule (0 for ops without one)."""
        return self._rule_count(backward=True)

    def _rule_count(self, *, backward: bool) -> int:
        if self.spec is None or not self.input_shapes or self.output_shape is None:
            return 0
        count = self.spec.backward_flops if backward else self.spec.flops
        return count(self.input_shapes[0], self.output_shape)


class TraceLayer(NamedTuple):
    """A row of the trace table: a leaf-module call or a functional call.

    ``nodes`` are the indices of the :class:`TraceNode` it ran.
    """

    name: str
    kind: str
    input_shape: Shape | None
    output_shape: Shape | None
    nodes: tuple[int, ...] = ()
    module: str | None = None
    spec: Spec | None = None


def moved_node(
    node: TraceNode, node_id: int, module: str, inputs: tuple[int | None, ...]
) -> TraceNode:
    """``node`` with another id, module name and inputs: ``node._replace(...)``, built
    directly (a third of the time; plans copy every node of every module call)."""
    return tuple.__new__(TraceNode, (node_id, node[1], module, inputs, *node[4:]))


def moved_row(row: TraceLayer, name: str, nodes: tuple[int, ...], module: str | None) -> TraceLayer:
    """``row`` with another name, nodes and module name (see :func:`moved_node`)."""
    return tuple.__new__(TraceLayer, (name, *row[1:4], nodes, module, *row[6:]))


@dataclass(frozen=True)
class Trace:
    """What one forward pass did, op by op."""

    model: str
    input_shape: Shape
    output_shape: Shape | tuple[Shape, ...] | None
    nodes: tuple[TraceNode, ...]
    layers: tuple[TraceLayer, ...]
    calls: dict[str, int]
    outputs: tuple[tuple[str, Shape], ...] = ()
    disagreements: tuple[str, ...] = ()
    fallback: str | None = None
    output_nodes: tuple[int, ...] = ()
    inputs: Inputs | None = None
    size_reads: tuple[tuple[int, int | None], ...] = ()
    """Sizes the model's Python code read off tensors made from the primary input:
    ``(node, dim)`` (``node`` :data:`MODEL_INPUT` for the input itself, ``dim``
    ``None`` for the whole shape or ``numel()``). What a replay of the trace at
    another input size must check (see :mod:`pytest_convcheck.size_program`)."""
    analyses: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Results of pure analyses of this trace (receptive field, checkerboard
    structure), by analysis and options: computed once, shared by every trace
    replayed from the same plan (:attr:`~pytest_convcheck.tracing.plans.Plan.analyses`),
    so a model reported again is not analysed again."""

    @property
    def spatial(self) -> int:
        """Spatial axes of the primary input: (N, C, *spatial) for a floating input,
        (N, *positions) for integer ids (tokens)."""
        if self.inputs is not None:
            return self.inputs.spatial
        return max(0, len(self.input_shape) - 2)

    @property
    def device(self) -> str:
        """``"meta"``, or ``"cpu"`` when the model could not run on meta."""
        return "cpu" if self.fallback else "meta"

    def table(self, *, mark: int | None = None) -> str:
        """The rows as a text table; ``mark`` puts an arrow at that row index."""
        header = ("", "layer", "kind", "input", "output")
        rows = [
            (
                "→" if i == mark else "",
                row.name,
                row.kind,
                format_shape(row.input_shape),
                format_shape(row.output_shape),
            )
            for i, row in enumerate(self.layers)
        ]
        widths = [max(len(r[c]) for r in (header, *rows)) for c in range(5)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in (header, *rows)
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        head = (
            f"trace of {self.model} on input {self.input_shape} → {format_shape(self.output_shape)}"
        )
        if self.fallback:
            head += f"\n(ran on CPU, not meta: {self.fallback})"
        text = f"{head}\n{self.table()}"
        if self.disagreements:
            text += "\nrule table disagrees with torch:\n  " + "\n  ".join(self.disagreements)
        return text


class Slot(NamedTuple):
    """Where the ``position``-th tensor argument of a recorded call goes (its producer
    is ``node.inputs[position]``)."""

    position: int


class OpCall(NamedTuple):
    """How a node's op was called, tensors replaced by :class:`Slot` markers, so that
    it can be called again on tensors of other shapes (see :meth:`again`)."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: tuple[Shape, ...]
    """The shape of every tensor the call returned, in order."""
    dtypes: tuple[torch.dtype, ...]
    """The dtype of every tensor argument, in slot order."""
    contiguous: tuple[bool, ...] = ()
    """Whether each tensor argument had row-major strides, size-1 dims included (a
    ``view`` of any other layout works or fails by its strides, which a replay at
    other sizes cannot see: a transposed 1×6 is "contiguous" to torch as 6×1)."""

    @classmethod
    def capture(
        cls,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        inputs: Sequence[torch.Tensor],
        outputs: Sequence[torch.Tensor],
    ) -> OpCall:
        counter = [0]
        return cls(
            func,
            _template(args, counter),
            _template(kwargs, counter) if kwargs else {},
            tuple(tuple(t.shape) for t in outputs),
            tuple(t.dtype for t in inputs),
            tuple(is_row_major(t) for t in inputs),
        )

    def again(self, tensors: Sequence[torch.Tensor]) -> Any:
        """The op called as recorded, with ``tensors`` in its tensor arguments' places."""
        args, kwargs = self.filled(tensors)
        return self.func(*args, **kwargs)

    def filled(self, tensors: Sequence[torch.Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The recorded ``(args, kwargs)`` with ``tensors`` in the tensor arguments' places."""
        return _fill(self.args, tensors), _fill(self.kwargs, tensors)


def _template(value: Any, counter: list[int]) -> Any:
    """``value`` with each tensor replaced by a :class:`Slot`, numbered in the order
    :func:`tensors_of` finds them."""
    if isinstance(value, torch.Tensor):
        counter[0] += 1
        return Slot(counter[0] - 1)
    if isinstance(value, (tuple, list)):
        if not any(isinstance(v, (torch.Tensor, tuple, list, dict)) for v in value):
            return value
        items = [
            _template(v, counter) if isinstance(v, (torch.Tensor, tuple, list, dict)) else v
            for v in value
        ]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _template(v, counter) for k, v in value.items()}
    return value


def _fill(value: Any, tensors: Sequence[torch.Tensor]) -> Any:
    if type(value) is Slot:
        return tensors[value.position]
    if isinstance(value, (tuple, list)):
        if not any(isinstance(v, (Slot, tuple, list, dict)) for v in value):
            return value
        items = [_fill(v, tensors) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _fill(v, tensors) for k, v in value.items()}
    return value
