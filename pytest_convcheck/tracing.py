"""One run of a model on the meta device, recorded op by op.

``trace(model, input_shape)`` copies the model with every parameter and buffer
replaced by a meta tensor (no memory, no FLOPs, any resolution; the user's model
is never touched), runs it once under a ``TorchFunctionMode`` that sees every
torch call in ``forward`` — module internals *and* functional calls such as
``F.max_pool2d``, ``x.view``, ``torch.cat`` or ``a + b`` — and global module
hooks that say which module each op ran in.

The result is a :class:`Trace`: a graph of :class:`TraceNode` (one per op, with
producer links, so branches and merges are explicit) and a table of
:class:`TraceLayer` rows (one per leaf-module call and per functional call made
directly in a composite ``forward``).

Speed: shape-preserving ops (activations, norms, dropout, elementwise
arithmetic) are not executed — their output is an empty meta tensor of the
rule's shape, because torch runs Python decompositions for them on meta that
cost more than a real CPU conv. Ops with a geometry rule (conv, pool, …) are
executed on meta *and* predicted by the rule table; any disagreement is
recorded in :attr:`Trace.disagreements`.

Models that cannot run on meta (data-dependent control flow, ``.item()``) are
re-run once on CPU with real weights on a copy; :attr:`Trace.fallback` says why.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import inspect
import itertools
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from pytest_convcheck.dims import Effect, Unknown, effect_of_call
from pytest_convcheck.errors import ModelStateError, ShapeError
from pytest_convcheck.inputs import Inputs, as_inputs, missing_parameters
from pytest_convcheck.layers import (
    FUNCTION_RULES,
    Shape,
    Spec,
    is_lazy,
    spec_for_call,
    spec_for_module,
)

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


def format_shape(shape: Any) -> str:
    if shape is None:
        return "—"
    if shape and isinstance(shape[0], (tuple, list)):  # several outputs (lists from JSON)
        return ", ".join(format_shape(s) for s in shape)
    return "×".join(str(s) for s in shape) if shape else "scalar"


class ModelRunError(RuntimeError):
    """The model's own code failed (not a torch op rejecting a shape)."""


_DTYPE_CLASH = ("expected scalar type", "same dtype", "dtype", "Double", "Half", "BFloat16")
_DEVICE_CLASH = ("same device", "Expected all tensors to be on")


@contextlib.contextmanager
def forward_failures(
    model: nn.Module, what: str, dtype: torch.dtype, device: str
) -> Iterator[None]:
    """Turn a failure of ``model``'s forward on one of our copies (``what``: the check
    and why it runs there) into a :class:`ModelRunError` that says which copy failed
    and, for dtype and device clashes, the usual cause and its fix."""
    try:
        yield
    except (AssertionError, ShapeError, ModelRunError, ModelStateError):
        raise
    except Exception as error:
        text = str(error).splitlines()[0] if str(error) else ""
        kind = str(dtype).removeprefix("torch.")
        hint = clash_hint(text, kind)
        raise ModelRunError(
            f"{type(model).__name__}.forward failed on a {kind} {device} copy ({what}): "
            f"{type(error).__name__}: {text}{hint}"
        ) from error


def clash_hint(text: str, kind: str) -> str:
    """For an error that is a dtype or device clash (a tensor made in ``forward`` with a
    fixed dtype or device), the usual cause and its fix; otherwise ``""``."""
    if any(word in text for word in _DEVICE_CLASH):
        return (
            "\n  cause: forward makes a tensor on a fixed device (torch.zeros(...) without "
            "device=, a CPU constant); the model will fail on a GPU too.\n  fix: create it "
            "with device=x.device (or torch.zeros_like(x), x.new_zeros(...)), or register "
            "it as a buffer so that model.to() moves it."
        )
    if any(word in text for word in _DTYPE_CLASH):
        return (
            f"\n  cause: forward makes a tensor with a fixed dtype (torch.zeros(...) "
            f"without dtype=, a float32 constant) that meets the {kind} activations; the "
            f"model will fail under .half(), .double() or bfloat16 too.\n  fix: create it "
            f"with dtype=x.dtype (or torch.zeros_like(x), x.new_zeros(...)), or register it "
            f"as a buffer so that model.to() casts it."
        )
    return ""


# --------------------------------------------------------------------------- recording


class _Slot(NamedTuple):
    """Where the ``position``-th tensor argument of a recorded call goes (its producer
    is ``node.inputs[position]``)."""

    position: int


class OpCall(NamedTuple):
    """How a node's op was called, tensors replaced by :class:`_Slot` markers, so that
    it can be called again on tensors of other shapes (see :meth:`again`)."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: tuple[Shape, ...]
    """The shape of every tensor the call returned, in order."""
    dtypes: tuple[torch.dtype, ...]
    """The dtype of every tensor argument, in slot order."""

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
        )

    def again(self, tensors: Sequence[torch.Tensor]) -> Any:
        """The op called as recorded, with ``tensors`` in its tensor arguments' places."""
        return self.func(*_fill(self.args, tensors), **_fill(self.kwargs, tensors))


def _template(value: Any, counter: list[int]) -> Any:
    """``value`` with each tensor replaced by a :class:`_Slot`, numbered in the order
    :func:`tensors_of` finds them."""
    if isinstance(value, torch.Tensor):
        counter[0] += 1
        return _Slot(counter[0] - 1)
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
    if type(value) is _Slot:
        return tensors[value.position]
    if isinstance(value, (tuple, list)):
        if not any(isinstance(v, (_Slot, tuple, list, dict)) for v in value):
            return value
        items = [_fill(v, tensors) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _fill(v, tensors) for k, v in value.items()}
    return value


_SIZE_READS = frozenset({"__get__", "size", "numel", "__len__", "nelement", "stride"})
_SHAPE_PROPERTY = torch.Tensor.shape


_SKIP_NAMES = frozenset(
    {
        "__get__",
        "size",
        "dim",
        "numel",
        "__len__",
        "is_contiguous",
        "stride",
        "data_ptr",
        "element_size",
        "nelement",
        "ndimension",
        "is_floating_point",
        "is_complex",
        "__format__",
        "__repr__",
        "__bool__",
        "__index__",
        "__int__",
        "__float__",
        "item",
        "tolist",
        "__iter__",
        "__hash__",
        "__reduce_ex__",
        "__deepcopy__",
    }
)
_BINARY = {
    "add",
    "__add__",
    "__radd__",
    "sub",
    "__sub__",
    "__rsub__",
    "mul",
    "__mul__",
    "__rmul__",
    "div",
    "__truediv__",
    "__rtruediv__",
    "add_",
    "__iadd__",
    "mul_",
    "__imul__",
    "sub_",
    "__isub__",
    "div_",
    "__itruediv__",
}


@dataclass
class _Frame:
    module: nn.Module
    name: str
    start: int
    input_shape: Shape | None
    spec: Spec | None


class _Plan(NamedTuple):
    """What one call of a module recorded, replayable for an identical call: a call of a
    module with the same tree signature (see :func:`tree_signatures`) on an input of the
    same shape and dtype, outside the modules it calls having run before.

    Names are kept relative to the called module's own name (``""`` for its own
    nodes, ``".conv1"`` for a child's); node ids relative to the call's first node,
    with ``-1`` for the call's input."""

    nodes: tuple[TraceNode, ...]
    rows: tuple[TraceLayer, ...]
    called: tuple[str, ...]
    functional: tuple[tuple[str, str], ...]  # (parent module, op) of each functional row
    reads: tuple[tuple[int, int | None], ...]  # size reads, nodes relative (-1: the input)
    output_node: int
    output_is_input: bool  # an in-place op returned the module's input tensor
    output_shape: Shape
    output_dtype: torch.dtype


class TraceCaches:
    """What traces learn once per process and re-use, with one public :meth:`clear`.

    - ``plans``: per (module tree signature, input shape, dtype), the nodes and rows a
      call recorded (:class:`_Plan`); a later identical call is replayed from it
      instead of executed: ResNet-50's sixteen bottlenecks at equal shapes, or a whole
      model traced again.
    - ``verified``: geometry ops already executed on meta and compared with their rule
      (executing conv and pooling on meta costs 25–140 µs each): the outcome of an
      identical call (same function, spec and input shapes and dtypes) is re-used,
      disagreements included.
    - ``trees``: tree signatures interned as small integers (hashing a nested
      signature once per level, not once per lookup).

    Each holds at most :attr:`limit` entries; a full cache is emptied, not grown.
    """

    limit = 50_000

    def __init__(self) -> None:
        self.plans: dict[tuple[Any, ...], _Plan] = {}
        self.verified: dict[tuple[Any, ...], _Verified] = {}
        self.trees: dict[tuple[Any, ...], int] = {}

    def clear(self) -> None:
        """Forget everything: the next trace executes every op again."""
        self.plans.clear()
        self.verified.clear()
        self.trees.clear()

    def tree_id(self, signature: tuple[Any, ...]) -> int:
        """The small integer standing for ``signature``."""
        found = self.trees.get(signature)
        if found is None:
            if len(self.trees) >= self.limit:
                self.clear()  # ids are referenced by plans: forget both together
            found = self.trees[signature] = len(self.trees)
        return found

    def remember_plan(self, key: tuple[Any, ...], plan: _Plan) -> None:
        if len(self.plans) >= self.limit:
            self.plans.clear()
        self.plans[key] = plan


@dataclass
class _Recorder:
    names: dict[int, str]
    leaves: frozenset[int]
    specs: dict[int, Spec]
    short_circuit: bool
    nodes: list[TraceNode] = field(default_factory=list)
    producers: dict[int, int] = field(default_factory=dict)
    alive: list[torch.Tensor] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)
    rows: list[TraceLayer] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)
    functional_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    call_log: list[str] = field(default_factory=list)
    functional_log: list[tuple[str, str]] = field(default_factory=list)
    size_reads: list[tuple[int, int | None]] = field(default_factory=list)
    listening: bool = True  # False while the tracer's own code runs inside the mode

    def read_size(self, func: Callable[..., Any], name: str, args: tuple[Any, ...]) -> None:
        """Note a size read off a tensor the model made from its input (see
        :attr:`Trace.size_reads`)."""
        if not self.listening or not args or not isinstance(args[0], torch.Tensor):
            return
        producer = self.producers.get(id(args[0]))
        if producer is None:
            return
        if name == "__get__":
            if getattr(func, "__self__", None) is not _SHAPE_PROPERTY:
                return  # .dtype, .device, ...: not a size
            dim = None
        elif name == "size" and len(args) > 1 and isinstance(args[1], int):
            dim = args[1] % max(1, args[0].dim())
        elif name in ("__len__",):
            dim = 0
        else:
            dim = None
        self.size_reads.append((producer, dim))

    # ------------------------------------------------------------------ tensors
    def mark(self, tensor: torch.Tensor, index: int) -> None:
        self.producers[id(tensor)] = index
        self.alive.append(tensor)

    def module_name(self) -> str:
        return self.stack[-1].name if self.stack else ""

    def in_leaf(self) -> bool:
        return bool(self.stack) and id(self.stack[-1].module) in self.leaves

    # ------------------------------------------------------------------ module hooks
    def pre_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        name = self.names.get(id(module), f"<unregistered {type(module).__name__}>")
        self.calls[name] = self.calls.get(name, 0) + 1
        self.call_log.append(name)
        first = args[0] if args and isinstance(args[0], torch.Tensor) else first_tensor(args)
        shape = tuple(first.shape) if first is not None else None
        spec = self.specs.get(id(module))
        if spec is not None and (len(args) > 1 or kwargs):
            spec = spec.for_call(args[1:], kwargs)
        if spec is not None and first is not None:
            # the rule table is the authority: a layer its formula or argument checks
            # reject is refused, even where torch's meta kernel would return a shape
            spec.check_dtype(first.dtype, name)
            try:
                spec.output_shape(tuple(first.shape), name)
            except ShapeError as error:
                wanted = getattr(spec, "in_channels", None) or getattr(spec, "channels", None)
                if (
                    self.producers.get(id(first)) == MODEL_INPUT
                    and isinstance(wanted, int)
                    and len(first.shape) >= 2
                    and first.shape[1] != wanted
                ):
                    # the first layer: no layer before it, the input description is wrong
                    problem = str(error).split("\n  fix:")[0]
                    described = [int(v) for v in first.shape]
                    described[1] = wanted
                    raise ShapeError(
                        f"{problem}\n  fix: this layer reads the model's input: describe the "
                        f"input with {wanted} channel{'s' if wanted != 1 else ''} (input = "
                        f"{described}), or build the layer with in_channels={int(first.shape[1])}."
                    ) from None
                raise
        self.stack.append(
            _Frame(
                module,
                name,
                len(self.nodes),
                shape,
                spec,
            )
        )

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not self.stack or self.stack[-1].module is not module:
            return
        frame = self.stack.pop()
        if id(module) not in self.leaves or (
            self.stack and id(self.stack[-1].module) in self.leaves
        ):
            return
        out = first_tensor(output)
        out_shape = tuple(out.shape) if out is not None else None
        self.rows.append(
            TraceLayer(
                frame.name,
                type(module).__name__,
                frame.input_shape,
                out_shape,
                tuple(range(frame.start, len(self.nodes))),
                frame.name,
                frame.spec,
            )
        )

    def plan(
        self,
        name: str,
        start: int,
        rows_start: int,
        calls_start: int,
        functional_start: int,
        reads_start: int,
        x: torch.Tensor,
        source: int | None,
        output: Any,
    ) -> _Plan | None:
        """What the call of module ``name`` on ``x`` recorded since ``start`` (nodes),
        ``rows_start`` and ``calls_start``, as a plan; ``None`` when it cannot be
        replayed: it read a tensor made outside the call, returned no tensor made in
        it, or called a module that had run before (call counts and functional row
        names would differ)."""
        if not isinstance(output, torch.Tensor) or len(self.nodes) == start:
            return None
        called = self.call_log[calls_start:]
        if len(called) > 1:
            counts: dict[str, int] = {}
            for c in called:
                counts[c] = counts.get(c, 0) + 1
            if any(self.calls[c] != k for c, k in counts.items()) or (
                name and not all(c == name or c.startswith(name + ".") for c in counts)
            ):
                return None  # a module of the call ran before it
        cut = len(name)
        nodes = []
        for node in self.nodes[start:]:
            refs: list[int | None] = []
            for producer in node.inputs:
                if producer is None:
                    refs.append(None)
                elif producer >= start:
                    refs.append(producer - start)
                elif producer == source:
                    refs.append(-1)
                else:
                    return None  # reads a tensor from outside the call: not replayable
            nodes.append(
                node._replace(
                    node_id=node.node_id - start, module=node.module[cut:], inputs=tuple(refs)
                )
            )
        rows = tuple(
            row._replace(
                name=row.name[cut:],
                nodes=tuple(n - start for n in row.nodes),
                module=None if row.module is None else row.module[cut:],
            )
            for row in self.rows[rows_start:]
        )
        last = self.producers.get(id(output))
        if last is None or last < start:
            return None
        reads = []
        for producer, dim in self.size_reads[reads_start:]:
            if producer >= start:
                reads.append((producer - start, dim))
            elif producer == source:
                reads.append((-1, dim))
            else:
                return None  # read a size from outside the call
        return _Plan(
            tuple(nodes),
            rows,
            tuple(c[cut:] for c in called),
            tuple((parent[cut:], op) for parent, op in self.functional_log[functional_start:]),
            tuple(reads),
            last - start,
            output is x,
            tuple(output.shape),
            output.dtype,
        )

    def can_replay(self, name: str, plan: _Plan) -> bool:
        """A plan calling several modules replays only where none of them ran before."""
        calls = self.calls
        return len(plan.called) <= 1 or not any(name + c in calls for c in plan.called)

    def replay(self, name: str, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        """Record a call of module ``name`` from its plan and return an output of the
        planned shape."""
        start = len(self.nodes)
        source = self.producers.get(id(x))
        for c in plan.called:
            full = name + c
            self.calls[full] = self.calls.get(full, 0) + 1
            self.call_log.append(full)
        if start == 0 and not name and source == MODEL_INPUT:
            self.nodes.extend(plan.nodes)  # the whole model: ids and names as recorded
        else:
            self.nodes.extend(
                node._replace(
                    node_id=start + node.node_id,
                    module=name + node.module,
                    inputs=tuple(
                        None if r is None else source if r == -1 else start + r for r in node.inputs
                    ),
                )
                for node in plan.nodes
            )
        for r, dim in plan.reads:
            read = source if r == -1 else start + r
            if read is not None:
                self.size_reads.append((read, dim))
        if plan.output_is_input:
            output = x
        else:
            with torch._C.DisableTorchFunction():  # not an op of the model: don't record it
                output = torch.empty(plan.output_shape, dtype=plan.output_dtype, device="meta")
        self.mark(output, start + plan.output_node)
        if not self.in_leaf():
            for parent, op in plan.functional:
                key = (name + parent, op)
                self.functional_counts[key] = self.functional_counts.get(key, 0) + 1
                self.functional_log.append(key)
            if start == 0 and not name:
                self.rows.extend(plan.rows)
            else:
                self.rows.extend(
                    row._replace(
                        name=name + row.name,
                        nodes=tuple(start + n for n in row.nodes),
                        module=None if row.module is None else name + row.module,
                    )
                    for row in plan.rows
                )
        return output

    # ------------------------------------------------------------------ ops
    def record(
        self,
        func: Callable[..., Any],
        op: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        spec: Spec | None,
        predicted: Shape | None,
    ) -> None:
        tensors_in = tensors_of(args)
        if kwargs:
            tensors_in += tensors_of(kwargs)
        tensors_out = tensors_of(result)
        if not tensors_out:
            return
        index = len(self.nodes)
        shapes_in = tuple(tuple(t.shape) for t in tensors_in)
        out_shape = tuple(tensors_out[0].shape)
        call = (
            OpCall.capture(func, args, kwargs, tensors_in, tensors_out)
            if self.short_circuit
            else None
        )
        effect = None
        if spec is None or type(spec).effect is Spec.effect:
            effect = effect_of_call(op, args, kwargs, shapes_in[0] if shapes_in else (), out_shape)
        node = TraceNode(
            index,
            op,
            self.module_name(),
            tuple(self.producers.get(id(t)) for t in tensors_in),
            shapes_in,
            out_shape,
            spec,
            predicted,
            effect,
            call,
        )
        self.nodes.append(node)
        for t in tensors_out:
            self.mark(t, index)
        if not self.in_leaf():
            parent = self.module_name()
            key = (parent, op)
            count = self.functional_counts.get(key, 0) + 1
            self.functional_counts[key] = count
            self.functional_log.append(key)
            name = f"{parent}.{op}" if parent else op
            if count > 1:
                name += f"#{count}"
            self.rows.append(
                TraceLayer(
                    name,
                    op,
                    node.input_shapes[0] if node.input_shapes else None,
                    node.output_shape,
                    (index,),
                    None,
                    spec,
                )
            )


def tensors_of(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value`` (nested tuples, lists and dict values), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        found: list[torch.Tensor] = []
        for item in value:
            if isinstance(item, torch.Tensor):
                found.append(item)
            elif isinstance(item, (tuple, list, dict)):
                found += tensors_of(item)
        return found
    if isinstance(value, dict):
        return tensors_of(list(value.values()))
    return []


def first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    found = tensors_of(value)
    return found[0] if found else None


_OP_NAMES: dict[Any, str] = {}


def op_name(func: Callable[..., Any]) -> str:
    """``F.max_pool2d`` → ``max_pool2d``, ``Tensor.__add__`` → ``add``, ``__iadd__`` → ``add_``."""
    try:
        return _OP_NAMES[func]
    except (KeyError, TypeError):
        pass
    name = _compute_op_name(func)
    with contextlib.suppress(TypeError):  # an unhashable callable: not cached
        _OP_NAMES[func] = name
    return name


def _compute_op_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None) or str(func)
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in ("add", "sub", "mul", "truediv"):
            name = name[1:] + ("_" if name[0] == "i" else "")
    return name.replace("truediv", "div")


@dataclass(frozen=True)
class _Verified:
    """An op whose rule was checked against torch on meta: its outputs' skeleton."""

    is_tuple: bool
    outputs: tuple[tuple[Shape, torch.dtype], ...]
    spec: Spec | None
    predicted: Shape | None
    disagreements: tuple[str, ...]

    def materialize(self) -> Any:
        made = [torch.empty(shape, dtype=dtype, device="meta") for shape, dtype in self.outputs]
        return tuple(made) if self.is_tuple else made[0]


caches = TraceCaches()
"""The process's trace caches; ``caches.clear()`` makes the next trace cold."""


def _call_key(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...] | None:
    """A hashable description of a call: tensors by shape and dtype, other
    arguments by value; ``None`` when an argument is unhashable."""

    def part(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return ("tensor", tuple(value.shape), value.dtype)
        if isinstance(value, (list, tuple)):
            return tuple(part(v) for v in value)
        return value

    key = (
        func,
        tuple(part(a) for a in args),
        tuple(sorted((k, part(v)) for k, v in kwargs.items())),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _remember(
    key: tuple[Any, ...],
    result: Any,
    spec: Spec | None,
    predicted: Shape | None,
    found: tuple[str, ...],
) -> None:
    if isinstance(result, torch.Tensor):
        is_tuple, outputs = False, (result,)
    elif isinstance(result, tuple) and all(isinstance(t, torch.Tensor) for t in result):
        is_tuple, outputs = True, result
    else:
        return
    if len(caches.verified) >= caches.limit:
        caches.verified.clear()
    caches.verified[key] = _Verified(
        is_tuple, tuple((tuple(t.shape), t.dtype) for t in outputs), spec, predicted, found
    )


class _Mode(TorchFunctionMode):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        raw_name = getattr(func, "__name__", "")
        if raw_name in _SKIP_NAMES:
            if raw_name in _SIZE_READS:
                self.recorder.read_size(func, raw_name, args)
            return func(*args, **kwargs)
        rec = self.recorder
        op = op_name(func)
        rule = FUNCTION_RULES.get(func)
        first = args[0] if args and isinstance(args[0], torch.Tensor) else first_tensor(args)
        shape_preserving = rule is not None and rule.shape_preserving
        # shape-preserving calls are checked here; geometry ops after the cache below
        spec = spec_for_call(func, args, kwargs) if shape_preserving else None
        if shape_preserving and first is not None:
            # not executed on meta (see _short_circuit): the rule's checks stand in for
            # torch's; a call signature the rule does not read runs as it is
            if spec is None:
                shape_preserving = False
            else:
                spec.output_shape(tuple(first.shape), rec.module_name() or None)
        if rec.short_circuit:
            fast = self._short_circuit(func, raw_name, shape_preserving, args, kwargs)
            if fast is not None:
                rec.record(func, op, args, kwargs, fast, None, None)
                return fast
        key: tuple[Any, ...] | None = None
        if rule is not None and not rule.shape_preserving and rec.short_circuit:
            key = _call_key(func, args, kwargs)
            known = caches.verified.get(key) if key is not None else None
            if known is not None:
                result = known.materialize()
                rec.disagreements += known.disagreements
                rec.record(func, op, args, kwargs, result, known.spec, known.predicted)
                return result
        if rule is not None and not rule.shape_preserving:
            spec = spec_for_call(func, args, kwargs)
        checked = spec is not None and first is not None and not rule.shape_preserving  # type: ignore[union-attr]
        predicted: Shape | None = None
        if checked:
            assert spec is not None and first is not None
            try:
                spec.check_dtype(first.dtype, rec.module_name() or None)
                predicted = spec.output_shape(tuple(first.shape), rec.module_name() or None)
            except (TypeError, ValueError, IndexError) as error:
                if isinstance(error, ShapeError):
                    # the rule table is the authority: torch's meta kernels skip checks
                    # that its CPU kernels make (negative padding, dilation 0, …)
                    raise
                spec = None
        try:
            result = func(*args, **kwargs)
        except ShapeError:
            raise
        except Exception as error:
            raise self._op_failure(func, op, args, error, predicted) from error
        out = first_tensor(result)
        found: list[str] = []
        if out is not None and spec is not None:
            where = rec.module_name() or "forward"
            if predicted is not None and predicted != tuple(out.shape):
                found.append(
                    f"{op} in {where}: rule predicts {format_shape(predicted)}, "
                    f"torch gives {format_shape(tuple(out.shape))}"
                )
        rec.disagreements += found
        if key is not None:
            _remember(key, result, spec, predicted, tuple(found))
        rec.record(func, op, args, kwargs, result, spec, predicted)
        return result

    @staticmethod
    def _short_circuit(
        func: Callable[..., Any],
        name: str,
        shape_preserving: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> torch.Tensor | None:
        """An empty meta tensor of the right shape for ops not worth executing."""
        if not args or not isinstance(args[0], torch.Tensor):
            return None
        x = args[0]
        if shape_preserving:
            if (
                name.endswith("_")
                or kwargs.get("inplace")
                or (
                    name
                    in (
                        "relu",
                        "relu6",
                        "hardtanh",
                        "leaky_relu",
                        "elu",
                        "selu",
                        "celu",
                        "dropout",
                        "alpha_dropout",
                        "hardswish",
                        "hardsigmoid",
                        "silu",
                        "mish",
                        "dropout1d",
                        "dropout2d",
                        "dropout3d",
                        "feature_alpha_dropout",
                    )
                    and len(args) > 1
                    and args[-1] is True
                )
            ):
                return x
            return torch.empty_like(x)
        if name in _BINARY and len(args) == 2:
            other = args[1]
            if isinstance(other, torch.Tensor):
                shape = torch.broadcast_shapes(x.shape, other.shape)
                dtype = torch.result_type(x, other)
            elif isinstance(other, (int, float, bool)):
                shape, dtype = x.shape, torch.result_type(x, other)
            else:
                return None
            if name.endswith("_") or name.startswith("__i"):
                return x if shape == x.shape else None
            return torch.empty(shape, dtype=dtype, device=x.device)
        return None

    def _op_failure(
        self,
        func: Callable[..., Any],
        op: str,
        args: tuple[Any, ...],
        error: Exception,
        predicted: Shape | None,
    ) -> Exception:
        rec = self.recorder
        where = rec.module_name() or "forward"
        if rec.short_circuit and _is_meta_limitation(error):
            return _MetaUnsupported(f"{op} in {where}: {error}")
        tensors = list(tensors_of(args))
        text = str(error).splitlines()[0] if str(error) else ""
        hint = clash_hint(text, str(tensors[0].dtype).removeprefix("torch.") if tensors else "")
        if hint:  # not a shape: the model mixes dtypes or devices
            return ModelRunError(f"{op} in {where!r} failed: {type(error).__name__}: {text}{hint}")
        shapes = ", ".join(format_shape(tuple(t.shape)) for t in tensors)
        message = f"{op} in {where!r} rejects its input ({shapes}): {error}"
        if len(tensors) > 1:  # a merge: say which layers the disagreeing paths come from
            sources = []
            for t in tensors:
                node = rec.producers.get(id(t))
                if node is None:
                    continue
                label = (
                    "the model input"
                    if node == MODEL_INPUT
                    else repr(rec.nodes[node].module or rec.nodes[node].op)
                )
                sources.append(f"{format_shape(tuple(t.shape))} from {label}")
            if sources:
                message += f"\n  inputs: {'; '.join(sources)}"
        if predicted is not None:
            rec.disagreements.append(
                f"{op} in {where}: rule predicts {format_shape(predicted)}, torch "
                f"raises {type(error).__name__}: {error}"
            )
            message += (
                f"\n  (the rule table predicted {format_shape(predicted)}: please report this)"
            )
        return ShapeError(message)


class _MetaUnsupported(RuntimeError):
    """An op that the meta device cannot run (data-dependent, or no meta kernel)."""


def _is_meta_limitation(error: Exception) -> bool:
    text = str(error)
    return isinstance(error, NotImplementedError) or any(
        marker in text
        for marker in (
            "meta",
            "Meta",
            "data-dependent",
            "_local_scalar_dense",
            "Cannot copy out of",
            "cannot be called on",
        )
    )


# --------------------------------------------------------------------------- copying


_SHARED_TYPES = (
    int,
    float,
    complex,
    str,
    bytes,
    bool,
    type(None),
    torch.dtype,
    torch.device,
    torch.Size,
    type,
    range,
    frozenset,
    types.FunctionType,
    types.BuiltinFunctionType,
)
_SHARED_EXACT = frozenset(_SHARED_TYPES)
_HOOK_KEYS = frozenset(key for key in nn.Module().__dict__ if "hooks" in key)
_UNINITIALIZED = getattr(nn.parameter, "UninitializedTensorMixin", ())


def _copy_with(model: nn.Module, device: str) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on ``device`` (``"meta"``
    or ``"cpu"``); ties are kept (one source tensor, one copy) and the original is
    never modified.

    A structural copy: the module tree is rebuilt, tensors are mapped to the
    device, hook dicts are copied shallowly (the hooks themselves are shared, as
    ``copy.deepcopy`` shares functions), other mutable attributes are deep-copied.
    Falls back to ``copy.deepcopy`` for modules it cannot rebuild.
    """
    memo: dict[int, Any] = {}
    try:
        return _copy_module(model, memo, device)
    except Exception:
        memo = {}
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            memo.setdefault(id(tensor), _copy_tensor(tensor, device))
        return copy.deepcopy(model, memo)


def materialized_copy(
    model: nn.Module, device: str, input_shape: Any, dtype: torch.dtype | None = None
) -> nn.Module:
    """:func:`_copy_with`, then one dry forward on zeros when the copy has lazy
    (uninitialised) parameters, so that every parameter has its shape.

    Raises :class:`~pytest_convcheck.errors.ModelStateError` when a real device is
    asked for and the model holds meta tensors: shapes without values."""
    if device != "meta":
        _refuse_meta_tensors(model)
    work = _copy_with(model, device)
    _initialise_lazy(work, as_inputs(input_shape), dtype or _input_dtype(model), device)
    return work


def with_sizes(model: nn.Module, input_shape: Any) -> nn.Module:
    """``model`` itself, or for a model with lazy layers a meta copy whose parameters
    have their shapes (a lazy parameter has no size until its first forward): what
    parameter counts are read from."""
    if any(is_lazy(m) for m in model.modules()):
        return materialized_copy(model, "meta", input_shape)
    return model


def _refuse_meta_tensors(model: nn.Module) -> None:
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    found = next((name for name, t in named if t.is_meta), None)
    if found is not None:
        raise ModelStateError(
            f"{type(model).__name__}: '{found}' is on the meta device (a shape without "
            f"values), so this check, which computes with the weights, cannot run.\n  fix: "
            f"build the model on a real device, or give it values first with "
            f"model.to_empty(device='cpu') and an initialisation (e.g. model.apply(init_fn) "
            f"or load_state_dict(..., assign=True)). Shape checks (trace, receptive_field, "
            f"checkerboard structure) work on meta models as they are."
        )


def _copy_tensor(tensor: torch.Tensor, device: str) -> torch.Tensor:
    if _UNINITIALIZED and isinstance(tensor, _UNINITIALIZED):
        return type(tensor)(requires_grad=tensor.requires_grad, device=device, dtype=tensor.dtype)
    if device == "meta":
        # a plain tensor: the meta copy is ours alone and never trained, and
        # nn.Parameter's wrapper costs more than the tensor
        return torch.empty_like(tensor, device="meta")
    new = tensor.detach().to(device, copy=True)
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(new, requires_grad=tensor.requires_grad)
    return new


def _copy_module(module: nn.Module, memo: dict[int, Any], device: str) -> nn.Module:
    done = memo.get(id(module))
    if done is not None:
        return done
    cls = type(module)
    new = cls.__new__(cls)
    memo[id(module)] = new
    state: dict[str, Any] = {}
    shared, hooks = _SHARED_EXACT, _HOOK_KEYS
    for key, value in module.__dict__.items():
        kind = type(value)
        if kind in shared:
            state[key] = value
        elif key in hooks and isinstance(value, dict):
            # registered in the memo so that copied hook handles (RemovableHandle,
            # e.g. a lazy module's init hook) remove from *this* dict, never the user's
            state[key] = memo[id(value)] = value.copy() if value else kind()
        elif key == "_parameters" or key == "_buffers":
            table = kind()
            for name, tensor in value.items():
                if tensor is None:
                    table[name] = None
                    continue
                twin = memo.get(id(tensor))
                if twin is None:
                    twin = memo[id(tensor)] = _copy_tensor(tensor, device)
                table[name] = twin
            state[key] = table
        elif key == "_modules":
            state[key] = kind(
                (name, None if child is None else _copy_module(child, memo, device))
                for name, child in value.items()
            )
        elif kind in (tuple, list, set) and all(type(v) in shared for v in value):
            state[key] = value if kind is tuple else value.copy()
        elif isinstance(value, _SHARED_TYPES):
            state[key] = value
        elif isinstance(value, torch.Tensor):
            twin = memo.get(id(value))
            if twin is None:
                twin = memo[id(value)] = _copy_tensor(value, device)
            state[key] = twin
        else:
            state[key] = copy.deepcopy(value, memo)
    new.__dict__.update(state)
    return new


def _input_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model computes in: that of its first floating parameter or buffer
    (a lazy layer's uninitialised parameters know theirs: the default dtype when it
    was built), else the default dtype."""
    for p in itertools.chain(model.parameters(), model.buffers()):
        if p.dtype.is_floating_point:
            return p.dtype
    return torch.get_default_dtype()


# --------------------------------------------------------------------------- trace


def trace(
    model: nn.Module,
    input_shape: Any = None,
    *,
    example_inputs: Callable[[], Any] | None = None,
    input: int | str | None = None,
    dtype: torch.dtype | None = None,
    device: str = "meta",
) -> Trace:
    """Run ``model`` once on inputs of ``input_shape`` and record every op.

    ``input_shape`` includes batch and channel dims, e.g. ``(1, 1, 28, 28)``; for a
    forward with several inputs, a tuple of shapes (positional), a mapping of names
    to shapes (keyword) or :class:`~pytest_convcheck.inputs.Input` descriptions, or
    ``example_inputs=`` a callable returning ``(args, kwargs)`` (see
    :mod:`pytest_convcheck.inputs`). ``input`` picks the primary input (the one whose
    positions the receptive field counts); by default the first floating input with
    spatial dims. ``device="meta"`` (default) costs no memory and no FLOPs; models
    that cannot run there are re-run on CPU (see :attr:`Trace.fallback`);
    ``device="cpu"`` runs on CPU directly. The user's model is not changed in any way.

    Raises :class:`ShapeError` when a torch op rejects the shapes it receives
    (the message names the layer, the formula and the numbers) and
    :class:`ModelRunError` when the model's own code fails.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace() needs an nn.Module, got {type(model).__name__}")
    inputs = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    dtype = dtype or _input_dtype(model)
    with gc_paused():
        if device == "meta":
            try:
                return _run(model, inputs, dtype, meta=True)
            except _MetaUnsupported as reason:
                # on CPU every failure is a ShapeError or a ModelRunError: nothing private
                # leaves the trace
                return _run(model, inputs, dtype, meta=False, fallback=str(reason))
        return _run(model, inputs, dtype, meta=False, fallback=f"device={device!r} requested")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a trace or an analysis builds its
    many short-lived records (the young-generation scans it would run cost VGG-16's
    report 8 %); resumed, and left as it was found, on the way out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _instrument(module: nn.Module, recorder: _Recorder, tree: int | None) -> None:
    """Wrap ``forward`` of a module *of our copy* so that the recorder sees each call.

    An instance attribute, not a hook: module calls keep torch's fast path, and
    ``self.block.forward(x)`` calls are seen too. Runs inside the module's own
    hooks, so it sees the input after any forward pre-hook.

    On meta, a call on one tensor of a module with tree signature ``tree`` (see
    :func:`tree_signatures`) whose input shape and dtype were seen before is
    replayed from its :class:`_Plan` instead of executed; the first such call
    records the plan.
    """
    original = module.forward
    name = recorder.names.get(id(module), f"<unregistered {type(module).__name__}>")
    replayable = (
        recorder.short_circuit and tree is not None and not name.startswith("<unregistered")
    )
    plans = caches.plans

    def forward(*args: Any, **kwargs: Any) -> Any:
        recorder.listening = False  # our own reads of .shape below are not the model's
        try:
            return record(*args, **kwargs)
        finally:
            recorder.listening = True

    def record(*args: Any, **kwargs: Any) -> Any:
        key = None
        if replayable and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
            key = (tree, tuple(args[0].shape), args[0].dtype)
            plan = plans.get(key)
            if plan is not None and recorder.can_replay(name, plan):
                return recorder.replay(name, args[0], plan)
        start, seen = len(recorder.nodes), len(recorder.disagreements)
        rows_start, calls_start = len(recorder.rows), len(recorder.call_log)
        functional_start = len(recorder.functional_log)
        reads_start = len(recorder.size_reads)
        source = recorder.producers.get(id(args[0])) if key is not None else None
        recorder.pre_hook(module, args, kwargs)
        recorder.listening = True
        output = original(*args, **kwargs)
        recorder.listening = False
        recorder.post_hook(module, args, output)
        if key is not None and len(recorder.disagreements) == seen and not recorder.in_leaf():
            plan = recorder.plan(
                name,
                start,
                rows_start,
                calls_start,
                functional_start,
                reads_start,
                args[0],
                source,
                output,
            )
            if plan is not None:
                caches.remember_plan(key, plan)
        return output

    object.__setattr__(module, "forward", forward)


_FORWARD_HOOKS = ("_forward_hooks", "_forward_pre_hooks")


def tree_signatures(model: nn.Module) -> dict[str, int | None]:
    """Per module name, an integer standing for everything a call of that module can
    depend on besides its input: its class, its plain attributes (``training``,
    ``stride``, …, see :func:`_module_signature`), the shapes and dtypes of its own
    parameters and buffers, and its children's signatures; ``None`` where a module
    (or one below it) has an attribute of another kind, a forward hook, or the tree
    shares a module between two places (then every composite module gets ``None``).

    Two calls of modules with equal signatures on inputs of equal shape and dtype
    record the same ops: what :class:`_Plan` replay rests on."""
    from torch.nn.modules import module as module_state

    found: dict[str, int | None] = {}
    if module_state._global_forward_hooks or module_state._global_forward_pre_hooks:
        return found
    visited: set[int] = set()
    shared = False

    def visit(module: nn.Module, name: str) -> int | None:
        nonlocal shared
        if id(module) in visited:
            shared = True
            return None
        visited.add(id(module))
        if is_lazy(module):
            found[name] = None
            return None
        state = module.__dict__
        children: list[tuple[str, int | None]] = []
        complete = True
        for child_name, child in state["_modules"].items():
            if child is None:
                children.append((child_name, -1))
                continue
            child_id = visit(child, f"{name}.{child_name}" if name else child_name)
            complete = complete and child_id is not None
            children.append((child_name, child_id))
        config = _module_signature(module) if complete else None
        if config is None or any(state.get(h) for h in _FORWARD_HOOKS):
            found[name] = None
            return None
        tensors = tuple(
            (k, None if t is None else (tuple(t.shape), t.dtype))
            for table in (state["_parameters"], state["_buffers"])
            for k, t in table.items()
        )
        found[name] = tree = caches.tree_id((config, tensors, tuple(children)))
        return tree

    visit(model, "")
    if shared:
        for name, module in model.named_modules(remove_duplicate=False):
            if module._modules:
                found[name] = None
    return found


_PLAIN = frozenset({int, float, bool, str, type(None)})
_NOT_CONFIGURATION = (
    frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "forward"})
    | _HOOK_KEYS
)


_CONFIGURATION_KEYS: dict[type, tuple[Any, ...]] = {}  # (len(__dict__), *attribute names)


def _module_signature(module: nn.Module) -> tuple[Any, ...] | None:
    """Everything of a leaf module's configuration that can change what its call
    returns, as a hashable key: its class and its plain attributes (``return_indices``,
    ``ceil_mode``, ``inplace``, …), tensor attributes by shape and dtype; ``None`` (no
    replay) when an attribute is of any other kind. Weights are left out: the spec
    (channels, kernel) fixes their shapes.

    Fast path (~1 µs): the attribute names of the class, learnt from its first
    instance, read as they are when the instance has exactly those and their values
    hash (plain values and tuples of them); otherwise the full walk."""
    state = module.__dict__
    keys = _CONFIGURATION_KEYS.get(type(module))
    if keys is not None and len(state) == keys[0]:
        try:
            values = tuple([state[k] for k in keys[1:]])
            if all(type(v) in _PLAIN or type(v) is tuple for v in values):
                hash(values)
                return (type(module), values)
        except (KeyError, TypeError):
            pass
    found = _full_signature(module)
    if found is not None and keys is None:
        names = [
            k
            for k, v in state.items()
            if type(v) in _PLAIN or (type(v) is tuple and all(type(i) in _PLAIN for i in v))
        ]
        if len(names) == len(found[1]):  # every configuration attribute is plain
            _CONFIGURATION_KEYS[type(module)] = (len(state), *names)
            return (type(module), tuple(state[k] for k in names))
    return found


def _full_signature(module: nn.Module) -> tuple[Any, ...] | None:
    items: list[tuple[Any, ...]] = []
    plain, skipped = _PLAIN, _NOT_CONFIGURATION
    for key, value in module.__dict__.items():
        kind = type(value)
        if kind in plain:
            items.append((key, value))
        elif key in skipped:
            continue
        elif kind is tuple or kind is list:
            if not all(type(v) in plain for v in value):
                return None
            items.append((key, kind, *value))
        elif isinstance(value, torch.Tensor):
            items.append((key, tuple(value.shape), value.dtype))
        else:
            return None
    return (type(module), tuple(items))


def _initialise_lazy(
    work: nn.Module, inputs: Inputs, dtype: torch.dtype, device: str, *, quiet: bool = False
) -> None:
    """Give the lazy layers of our copy their parameters with one dry forward on zeros
    (unrecorded), so that every parameter has its shape. ``quiet``: a failing forward
    leaves the copy lazy instead of raising — the trace's recorded run then reports
    the failure with its usual message."""
    if not any(is_lazy(m) for m in work.modules()):
        return
    try:
        args, kwargs = inputs.meta(dtype) if device == "meta" else inputs.build(dtype, device)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            work(*args, **kwargs)
    except Exception:
        if not quiet:
            raise


def _run(
    model: nn.Module,
    inputs: Inputs,
    dtype: torch.dtype,
    *,
    meta: bool,
    fallback: str | None = None,
) -> Trace:
    trees = tree_signatures(model) if meta else {}
    if meta and trees.get("") is not None:
        args, kwargs = inputs.meta(dtype)
        x = args[0] if len(args) == 1 and not kwargs else None
        if isinstance(x, torch.Tensor):
            plan = caches.plans.get((trees[""], tuple(x.shape), x.dtype))
            if plan is not None:  # this model was traced on this input before: no copy
                recorder = _Recorder({}, frozenset(), {}, short_circuit=True)
                recorder.mark(x, MODEL_INPUT)
                return _finish(model, inputs, recorder, recorder.replay("", x, plan), None)
    try:
        work = _copy_with(model, "meta" if meta else "cpu")
    except Exception as error:  # an attribute that cannot be deep-copied
        raise ModelRunError(
            f"{type(model).__name__}: cannot copy the model to trace it without touching it "
            f"({type(error).__name__}: {error}).\n  fix: make the model deep-copyable "
            f"(copy.deepcopy(model) must work)."
        ) from error
    # initialised unrecorded: the trace shows the model's ops, not empty/kaiming_uniform_
    _initialise_lazy(work, inputs, dtype, "meta" if meta else "cpu", quiet=True)
    names: dict[int, str] = {}
    leaves: set[int] = set()
    specs: dict[int, Spec] = {}
    unique: list[tuple[nn.Module, int | None]] = []
    for name, module in work.named_modules(remove_duplicate=False):
        if id(module) in names:
            continue
        names[id(module)] = name
        unique.append((module, trees.get(name)))
        spec = spec_for_module(module)
        if spec is not None:
            specs[id(module)] = spec
        if spec is not None or not module._modules:
            leaves.add(id(module))
    names[id(work)] = ""
    if not meta:
        args, kwargs = inputs.build(dtype, "cpu", seed=0)
    else:
        args, kwargs = inputs.meta(dtype)
    x = inputs_primary(inputs, args, kwargs)
    recorder = _Recorder(names, frozenset(leaves), specs, short_circuit=meta)
    recorder.mark(x, MODEL_INPUT)
    for module, tree in unique:
        _instrument(module, recorder, tree)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), _Mode(recorder):
            output = work(*args, **kwargs)
    except (ShapeError, _MetaUnsupported, ModelRunError):
        raise
    except Exception as error:
        missing = missing_parameters(model.forward, inputs)
        if missing:
            raise ModelRunError(missing_inputs_message(model, inputs, missing)) from error
        if meta and _is_meta_limitation(error):
            raise _MetaUnsupported(f"{type(error).__name__}: {error}") from error
        # the model's own code refused the input (a size assertion): a CPU run would
        # refuse it alike, so it is not re-run there
        raise ModelRunError(
            f"{type(model).__name__}.forward failed on input {inputs.describe()} "
            f"({type(error).__name__}: {error})"
        ) from error
    return _finish(model, inputs, recorder, output, fallback)


def _finish(
    model: nn.Module, inputs: Inputs, recorder: _Recorder, output: Any, fallback: str | None
) -> Trace:
    """The :class:`Trace` of a recorded run that returned ``output``."""
    outputs = tuple((path, tuple(t.shape)) for path, t in _leaves_with_paths(output))
    output_nodes = tuple(
        recorder.producers.get(id(t), MODEL_INPUT) for _, t in _leaves_with_paths(output)
    )
    if len(outputs) == 1:
        out_shape: Shape | tuple[Shape, ...] | None = outputs[0][1]
    elif outputs:
        out_shape = tuple(s for _, s in outputs)
    else:
        out_shape = None
    return Trace(
        type(model).__name__,
        inputs.shape,
        out_shape,
        tuple(recorder.nodes),
        tuple(recorder.rows),
        dict(recorder.calls),
        outputs,
        tuple(dict.fromkeys(recorder.disagreements)),
        fallback,
        output_nodes,
        inputs,
        tuple(recorder.size_reads),
    )


def inputs_primary(inputs: Inputs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The primary input's tensor among built ``(args, kwargs)``."""
    return inputs.primary_tensor(args, kwargs)


def missing_inputs_message(model: nn.Module, inputs: Inputs, missing: Sequence[str]) -> str:
    """A forward that needs more inputs than described: which, and how to give them."""
    try:
        parameters = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        parameters = []
    named = []
    for i, value in enumerate(inputs.args):
        name = parameters[i] if i < len(parameters) else f"arg{i}"
        named.append((name, value))
    named += list(inputs.kwargs)

    def toml(value: Any) -> str:
        shape = getattr(value, "shape", None)
        return "[" + ", ".join(map(str, shape)) + "]" if shape is not None else repr(value)

    table = ", ".join(
        [f"{name} = {toml(value)}" for name, value in named]
        + [f"{name} = [...]" for name in missing]
    )
    return (
        f"{type(model).__name__}.forward needs {len(missing)} more input(s): "
        f"{', '.join(missing)} (given: {inputs.describe()}).\n  fix: describe every input "
        f"by name, e.g. input = {{ {table} }} (an integer input: "
        f'{{ shape = [2], dtype = "int64" }}), or positionally as a list of shapes; in '
        f"Python pass the same as input_shape, or example_inputs= a function returning "
        f"(args, kwargs)."
    )


def output_leaves(value: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a forward's result with its place (``""`` for the result
    itself): tuples and lists, mappings (``transformers``' ``ModelOutput`` is one),
    dataclasses (by field), and other objects with ``to_tuple()``."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from output_leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from output_leaves(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from output_leaves(getattr(value, item.name, None), f"{path}.{item.name}")
    elif callable(getattr(value, "to_tuple", None)):
        yield from output_leaves(tuple(value.to_tuple()), path)


def _leaves_with_paths(value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """:func:`output_leaves`, the result itself named ``output``."""
    for path, tensor in output_leaves(value):
        yield path or "output", tensor


__all__ = ["MODEL_INPUT", "ModelRunError", "Trace", "TraceLayer", "TraceNode", "trace"]
