"""A trace replayed at another input size, without running the model.

A trace on meta records, for each op, how it was called (:class:`~pytest_convcheck.
tracing.OpCall`). At another size of the primary input, each node's output shapes
follow from its inputs' shapes alone:

- a node with a rule: the rule's formula (``spec.output_shape``, the authority
  that also refuses what torch refuses, e.g. ``⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1``
  below 1 for a convolution, torch's ``nn.Conv2d`` docs);
- a pointwise op: its inputs broadcast (torch's broadcasting semantics);
- any other op (``view``, ``cat``, ``matmul``, …): called again, as recorded, on
  empty meta tensors of the new shapes.

Nodes whose inputs keep their shapes keep their outputs. This is the model's
run *if* its Python code makes the same calls at every size, which holds when
it never reads a size that changes: :attr:`Trace.size_reads` lists what it read,
and :meth:`SizeProgram.run` returns the values those reads would give, so that
the caller can check they stay the same (:func:`~pytest_convcheck.input_sizes.
input_size_rule` does). An op whose number of outputs changes with the size
(``torch.split(x, 4, dim=-1)``, iterating over a spatial dim) cannot be replayed:
:class:`NotReplayable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from pytest_convcheck.effects import Pointwise, Statistics
from pytest_convcheck.errors import ShapeError
from pytest_convcheck.layers import (
    FUNCTION_RULES,
    Shape,
    Spec,
    broadcast_shapes,
    concatenated_shape,
    spec_for_call,
)
from pytest_convcheck.layers.indexing import INDEXING, index_out_of_range, unknown_index_dims
from pytest_convcheck.tracing import MODEL_INPUT, Trace, TraceNode
from pytest_convcheck.tracing.records import Slot
from pytest_convcheck.tracing.stand_ins import CONCATENATIONS, cat_arguments

__all__ = ["NotReplayable", "SizeProgram", "SizeRun"]


_STRIDED_VIEWS = frozenset({"view", "view_as", "unflatten"})


class NotReplayable(Exception):
    """The trace cannot stand for the model at another size; the message says why."""


@dataclass(frozen=True)
class SizeRun:
    """The model at one input size: ``outputs`` (one shape per output leaf, ``None``
    when a layer refuses its input, with ``refusal`` saying which) and ``reads``
    (the value of each of :attr:`Trace.size_reads`, ``None`` where not reached)."""

    outputs: tuple[Shape, ...] | None
    reads: tuple[Shape | int | None, ...]
    refusal: str = ""


@dataclass
class SizeProgram:
    """The ops of ``trace`` as a function of the primary input's shape."""

    trace: Trace
    _memo: dict[tuple[int, tuple[Shape, ...]], tuple[Shape, ...]] = field(default_factory=dict)
    _specs: dict[int, Spec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trace.fallback:
            raise NotReplayable(f"the model ran on CPU, not meta ({self.trace.fallback})")
        for node in self.trace.nodes:
            if node.call is None:
                raise NotReplayable(f"{node.op} in {node.module or 'forward'} was not recorded")
            if node.op in _STRIDED_VIEWS and not all(node.call.contiguous):
                raise NotReplayable(
                    f"{node.op} in {node.module or 'forward'} views a non-contiguous tensor: "
                    f"whether it works depends on strides at each size"
                )
            if node.spec is None and isinstance(node.effect, Statistics):
                # a norm is not executed on meta by the trace: its rule checks the call
                spec = _call_spec(node)
                if spec is not None:
                    self._specs[node.node_id] = spec

    def run(self, primary: Shape) -> SizeRun:
        """The model's outputs and size reads at primary input shape ``primary``."""
        nodes = self.trace.nodes
        shapes: list[tuple[Shape, ...]] = []
        refusal = ""
        for node in nodes:
            try:
                shapes.append(self._node(node, primary, shapes))
            except _Refused as error:
                refusal = str(error)
                break
        reads = tuple(
            self._read(node_id, dim, primary, shapes) for node_id, dim in self.trace.size_reads
        )
        if refusal:
            return SizeRun(None, reads, refusal)
        outputs = []
        for (_, reference), node_id in zip(
            self.trace.outputs, self.trace.output_nodes, strict=True
        ):
            if node_id == MODEL_INPUT:
                outputs.append(tuple(primary))
            else:
                outputs.append(_pick(nodes[node_id], shapes[node_id], reference))
        return SizeRun(tuple(outputs), reads)

    def _node(
        self, node: TraceNode, primary: Shape, shapes: Sequence[tuple[Shape, ...]]
    ) -> tuple[Shape, ...]:
        assert node.call is not None
        nodes = self.trace.nodes
        ins: list[Shape] = []
        for i, producer in enumerate(node.inputs):
            if producer is None:
                ins.append(node.input_shapes[i])
            elif producer == MODEL_INPUT:
                ins.append(tuple(primary))
            else:
                ins.append(_pick(nodes[producer], shapes[producer], node.input_shapes[i]))
        new = tuple(ins)
        if new == node.input_shapes:
            return node.call.outputs
        key = (node.node_id, new)
        known = self._memo.get(key)
        if known is None:
            spec = self._specs.get(node.node_id)
            if spec is not None and new[1:] == node.input_shapes[1:]:
                known = (_spec_shape(spec, node, new[0]),)
            else:
                known = _outputs(node, new)
            self._memo[key] = known
        return known

    def _read(
        self, node_id: int, dim: int | None, primary: Shape, shapes: Sequence[tuple[Shape, ...]]
    ) -> Shape | int | None:
        if node_id == MODEL_INPUT:
            shape: Shape = tuple(primary)
        elif node_id < len(shapes):
            found = shapes[node_id]
            if len(set(found)) > 1:
                raise NotReplayable(
                    f"a size is read off one of several outputs of "
                    f"{self.trace.nodes[node_id].op}: which one is not recorded"
                )
            shape = found[0]
        else:
            return None
        return shape if dim is None else shape[dim] if dim < len(shape) else None


class _Refused(Exception):
    """A layer refuses its input at this size."""


def _pick(producer: TraceNode, outputs: tuple[Shape, ...], reference: Shape) -> Shape:
    """Which of ``producer``'s outputs a consumer reads: the one whose shape at the
    trace's size was the consumer's recorded input shape."""
    if len(outputs) == 1:
        return outputs[0]
    assert producer.call is not None
    matches = [k for k, shape in enumerate(producer.call.outputs) if shape == reference]
    if len({outputs[k] for k in matches}) != 1:
        raise NotReplayable(
            f"{producer.op} in {producer.module or 'forward'} returns several tensors and "
            f"which one its consumer reads cannot be told from their shapes"
        )
    return outputs[matches[0]]


def _call_spec(node: TraceNode) -> Spec | None:
    """The rule table's spec of a node's call, built from the call as recorded."""
    assert node.call is not None
    tensors = [
        torch.empty(shape, dtype=dtype, device="meta")
        for shape, dtype in zip(node.input_shapes, node.call.dtypes, strict=True)
    ]
    filled = node.call.filled(tensors)
    try:
        spec = spec_for_call(node.call.func, *filled)
    except Exception:  # a call form the rule does not read: the op is called again
        return None
    rule = FUNCTION_RULES.get(node.call.func)
    return spec if rule is not None and rule.shape_preserving else None


def _spec_shape(spec: Spec, node: TraceNode, shape: Shape) -> Shape:
    try:
        return tuple(spec.output_shape(shape, node.module or None))
    except (ShapeError, ValueError, TypeError, IndexError) as error:
        raise _Refused(f"{node.op} in {node.module or 'forward'}: {error}") from None


def _outputs(node: TraceNode, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    """The output shapes of ``node`` on inputs of shapes ``ins``."""
    assert node.call is not None
    count = len(node.call.outputs)
    where = f"{node.op} in {node.module or 'forward'}"
    varying = [i for i, (a, b) in enumerate(zip(ins, node.input_shapes, strict=True)) if a != b]
    if node.spec is not None and varying == [0]:
        shape = _spec_shape(node.spec, node, ins[0])
        if count == 1 or len(set(node.call.outputs)) == 1:
            return (shape,) * count
    if isinstance(node.effect, Pointwise) and count == 1:
        try:  # the rule table's broadcasting (torch's broadcast_shapes imports its refs)
            shape = broadcast_shapes(where, *ins)
        except ShapeError as error:
            raise _Refused(str(error)) from None
        if node.op.endswith("_") and shape != ins[0]:
            raise _Refused(f"{where}: an in-place op cannot grow its input to {shape}")
        return (shape,)
    relaid = _relayout(node, ins)
    if relaid is not None:
        return (relaid,)
    joined = _concatenation(node, ins)
    if joined is not None:
        return (joined,)
    tensors = [
        torch.empty(shape, dtype=dtype, device="meta")
        for shape, dtype in zip(ins, node.call.dtypes, strict=True)
    ]
    if node.op in INDEXING:
        _check_indices(node, ins, tensors)
    try:
        with torch._C.DisableTorchFunction():
            result = node.call.again(tensors)
    except Exception as error:  # torch refuses the shapes: this size is invalid
        raise _Refused(f"{where}: {type(error).__name__}: {error}") from None
    found = _result_shapes(result)
    if len(found) != count:
        raise NotReplayable(
            f"{where} returns {len(found)} tensors at this size and {count} at the traced "
            f"one: the model's Python code depends on the size"
        )
    return found


def _check_indices(node: TraceNode, ins: tuple[Shape, ...], tensors: list[torch.Tensor]) -> None:
    """The index bounds of a ``getitem``/``index_select`` at the new shapes (meta
    tensors check none, see :mod:`~pytest_convcheck.layers.indexing`): a list of ints
    is read as recorded; the values of an index tensor (a constant made in
    ``forward``, or computed) are not kept, so a dim it indexes may not change."""
    assert node.call is not None
    args, kwargs = node.call.filled(tensors)
    bad = index_out_of_range(node.op, args, kwargs, ins[0])
    if bad is not None:
        raise _Refused(bad.message(node.op, node.module or "forward", ins[0]))
    for dim in unknown_index_dims(node.op, args, kwargs, len(ins[0])):
        if ins[0][dim] != node.input_shapes[0][dim]:
            raise NotReplayable(
                f"{node.op} in {node.module or 'forward'} indexes dim {dim}, whose size "
                f"changes, with a tensor: its bounds need its values"
            )


def _relayout(node: TraceNode, ins: tuple[Shape, ...]) -> Shape | None:
    """The output shape of a ``view``/``reshape``/``flatten``/``contiguous`` of one
    tensor, computed as torch does (one ``-1`` inferred from the element count);
    ``None`` for any other call, or arguments of another form (then the op is called
    again on meta)."""
    assert node.call is not None
    call, op = node.call, node.op
    if len(ins) != 1 or not call.args or type(call.args[0]) is not Slot:
        return None
    (shape,) = ins
    rest = call.args[1:]
    if op == "contiguous" and not rest and not call.kwargs:
        return shape
    numel = math.prod(shape)
    if op in ("view", "reshape") and not call.kwargs:
        wanted = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
        if not all(type(v) is int for v in wanted) or sum(v == -1 for v in wanted) > 1:
            return None
        known = math.prod(v for v in wanted if v != -1)
        if -1 in wanted:
            if known == 0 or numel % known:
                raise _Refused(
                    f"{op} in {node.module or 'forward'}: shape {tuple(wanted)} "
                    f"is invalid for input of size {numel}"
                )
            return tuple(numel // known if v == -1 else v for v in wanted)
        if known != numel:
            raise _Refused(
                f"{op} in {node.module or 'forward'}: shape {tuple(wanted)} is "
                f"invalid for input of size {numel}"
            )
        return tuple(wanted)
    if op == "flatten":
        if len(rest) > 2 or set(call.kwargs) - {"start_dim", "end_dim"} or not shape:
            return None
        start = rest[0] if rest else call.kwargs.get("start_dim", 0)
        end = rest[1] if len(rest) > 1 else call.kwargs.get("end_dim", -1)
        if type(start) is not int or type(end) is not int:
            return None
        start, end = start % len(shape), end % len(shape)
        if start > end:
            return None
        return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])
    return None


def _concatenation(node: TraceNode, ins: tuple[Shape, ...]) -> Shape | None:
    """The output shape of a ``torch.cat`` of recorded tensors of one dtype along an
    int ``dim``; ``None`` for any other call (then the op is called again on meta)."""
    assert node.call is not None
    call = node.call
    bound = cat_arguments(call.args, call.kwargs) if node.op in CONCATENATIONS else None
    if bound is None:
        return None
    parts, dim = bound
    if not all(type(p) is Slot for p in parts) or len(set(call.dtypes)) != 1:
        return None
    shapes = [ins[p.position] for p in parts]
    if any(s == (0,) for s in shapes):
        return None
    try:
        return concatenated_shape(f"cat in {node.module or 'forward'}", shapes, dim)
    except ShapeError as error:
        raise _Refused(str(error)) from None


def _result_shapes(value: object) -> tuple[Shape, ...]:
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape),)
    if isinstance(value, (tuple, list)):
        return tuple(s for item in value for s in _result_shapes(item))
    if isinstance(value, dict):
        return tuple(s for item in value.values() for s in _result_shapes(item))
    return ()
