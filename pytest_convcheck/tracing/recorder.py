"""The recording of one run: :class:`Recorder` (nodes, rows, call counts, size
reads; module calls entered and left, replayed from plans, or turned into plans)
and :class:`RecordingMode`, the ``TorchFunctionMode`` that sees every torch call,
short-circuits the ops not worth executing on meta and checks the others against
their rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from pytest_convcheck.dims import effect_of_call
from pytest_convcheck.errors import ShapeError
from pytest_convcheck.layers import FUNCTION_RULES, Shape, Spec, spec_for_call
from pytest_convcheck.layers.indexing import INDEXING, index_out_of_range
from pytest_convcheck.tracing.failures import (
    MetaUnsupported,
    ModelRunError,
    clash_hint,
    is_meta_limitation,
)
from pytest_convcheck.tracing.plans import Plan, caches, call_key, remember_verified
from pytest_convcheck.tracing.records import (
    MODEL_INPUT,
    OpCall,
    TraceLayer,
    TraceNode,
    moved_node,
    moved_row,
)
from pytest_convcheck.tracing.stand_ins import (
    CONCATENATIONS,
    concatenated,
    empty_like_output,
)
from pytest_convcheck.tracing.tensors import (
    first_tensor,
    format_shape,
    is_row_major,
    op_name,
    tensors_of,
)

_SIZE_READS = frozenset(
    {"__get__", "size", "numel", "__len__", "nelement", "stride", "untyped_storage"}
)
_SHAPE_PROPERTY = torch.Tensor.shape


_SKIP_NAMES = frozenset(
    {
        "untyped_storage",
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


@dataclass
class Recorder:
    """What one run of the model did so far: the nodes, the table rows, the module
    calls and the size reads that :class:`~pytest_convcheck.tracing.records.Trace`
    is made of. Fed by :class:`RecordingMode` (ops) and by the instrumented
    ``forward`` of each module (module calls, plan recording and replay)."""

    names: dict[int, str]  # id(module) of our copy → its qualified name ("" for the model)
    leaves: frozenset[int]  # ids of modules that are table rows: with a spec, or no children
    specs: dict[int, Spec]  # id(module) → the rule table's spec for it
    short_circuit: bool  # on meta: skip shape-preserving ops, use the caches and plans
    nodes: list[TraceNode] = field(default_factory=list)
    producers: dict[int, int] = field(default_factory=dict)  # id(tensor) → producing node
    # every tensor in ``producers``, kept referenced so that its id() is not reused by a
    # later tensor while the run lasts (which would give that tensor a wrong producer)
    alive: list[torch.Tensor] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)  # the module calls now running
    rows: list[TraceLayer] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)  # module name → calls so far
    disagreements: list[str] = field(default_factory=list)
    # (parent module, op) → functional calls so far: numbers the rows "add", "add#2", …
    functional_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    call_log: list[str] = field(default_factory=list)  # module names, in call order
    functional_log: list[tuple[str, str]] = field(default_factory=list)  # (parent, op) rows
    size_reads: list[tuple[int, int | None]] = field(default_factory=list)
    listening: bool = True  # False while the tracer's own code runs inside the mode
    mutated: bool = False  # a module attribute was set during the run: no more plans

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
    ) -> Plan | None:
        """What the call of module ``name`` on ``x`` recorded since ``start`` (nodes),
        ``rows_start`` and ``calls_start``, as a plan; ``None`` when it cannot be
        replayed: it read a tensor made outside the call, returned no tensor made in
        it, or called a module that had run before (call counts and functional row
        names would differ)."""
        if (
            not isinstance(output, torch.Tensor)
            or output.device.type != "meta"  # replayed as an empty meta tensor
            or len(self.nodes) == start
        ):
            return None
        called = self.call_log[calls_start:]
        if len(called) > 1 or len(self.functional_log) > functional_start:
            # several modules, or functional rows numbered per parent: only a first call
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
            nodes.append(moved_node(node, node.node_id - start, node.module[cut:], tuple(refs)))
        rows = tuple(
            moved_row(
                row,
                row.name[cut:],
                tuple(n - start for n in row.nodes),
                None if row.module is None else row.module[cut:],
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
        return Plan(
            tuple(nodes),
            rows,
            tuple(c[cut:] for c in called),
            tuple((parent[cut:], op) for parent, op in self.functional_log[functional_start:]),
            tuple(reads),
            last - start,
            output is x,
            tuple(output.shape),
            output.dtype,
            {},
        )

    def can_replay(self, name: str, plan: Plan) -> bool:
        """A plan calling several modules, or naming functional rows (numbered per
        parent module), replays only where none of its modules ran before."""
        calls = self.calls
        if len(plan.called) <= 1 and not plan.functional:
            return True
        return not any(name + c in calls for c in plan.called)

    def replay(self, name: str, x: torch.Tensor, plan: Plan) -> torch.Tensor:
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
                moved_node(
                    node,
                    start + node.node_id,
                    name + node.module,
                    tuple(
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
                    moved_row(
                        row,
                        name + row.name,
                        tuple(start + n for n in row.nodes),
                        None if row.module is None else name + row.module,
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


class RecordingMode(TorchFunctionMode):
    """The ``TorchFunctionMode`` a traced run happens under: every torch call in
    ``forward`` goes to :meth:`__torch_function__`, which records it in its
    :class:`Recorder`. Size reads are noted and run as they are; on meta,
    shape-preserving and elementwise ops return an empty tensor of the right shape
    without running (:meth:`_short_circuit`), and geometry ops are checked against
    their rule, re-using the outcome of an identical call already verified."""

    def __init__(self, recorder: Recorder) -> None:
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
            result = func(*args, **kwargs)
            if (
                raw_name == "__get__"
                and isinstance(result, torch.Tensor)
                and args
                and result is not args[0]
                and self.recorder.producers.get(id(args[0])) is not None
            ):
                # a tensor property (x.mT, x.T, x.data): an op of the data path
                name = getattr(getattr(func, "__self__", None), "__name__", "property")
                self.recorder.record(func, name, args, kwargs, result, None, None)
            return result
        rec = self.recorder
        op = op_name(func)
        rule = FUNCTION_RULES.get(func)
        first = args[0] if args and isinstance(args[0], torch.Tensor) else first_tensor(args)
        # only calls on meta tensors are stood in for or re-used: a small CPU tensor the
        # forward makes itself (a length it reads with .item()) is computed for real
        on_meta = rec.short_circuit and first is not None and first.device.type == "meta"
        if op in INDEXING and rec.short_circuit and first is not None:
            # meta tensors have no data: nothing checks an index against its dim
            bad = index_out_of_range(op, args, kwargs, tuple(first.shape))
            if bad is not None:
                where = rec.module_name() or "forward"
                raise ShapeError(bad.message(op, where, tuple(first.shape)))
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
        if on_meta:
            fast = self._short_circuit(func, raw_name, shape_preserving, args, kwargs)
            if fast is not None:
                rec.record(func, op, args, kwargs, fast, None, None)
                return fast
        key: tuple[Any, ...] | None = None
        if rule is not None and not rule.shape_preserving and on_meta:
            key = call_key(func, args, kwargs)
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
        if (
            predicted is not None
            and rule is not None
            and rule.trusted_on_meta is not None
            and on_meta
            and first is not None
            and rule.trusted_on_meta(func, args, kwargs)
            and all(is_row_major(t) for t in tensors_of((args, kwargs)))
        ):
            stand_in = empty_like_output(predicted, first)
            if stand_in is not None:
                if key is not None:
                    remember_verified(key, stand_in, spec, predicted, ())
                rec.record(func, op, args, kwargs, stand_in, spec, predicted)
                return stand_in
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
            remember_verified(key, result, spec, predicted, tuple(found))
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
        if name in CONCATENATIONS:
            return concatenated(args, kwargs)
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
            if is_row_major(x):
                # what empty_like gives, without its meta decomposition (32 µs a call
                # on torch 2.13, against 2 µs)
                return torch.empty(x.shape, dtype=x.dtype, device=x.device)
            return torch.empty_like(x)
        if name in _BINARY and len(args) == 2:
            other = args[1]
            if not is_row_major(x) or (isinstance(other, torch.Tensor) and not is_row_major(other)):
                return None  # torch lays the output out after the inputs': it runs
            if isinstance(other, torch.Tensor):
                shape = torch.broadcast_shapes(x.shape, other.shape)  # type: ignore[no-untyped-call, unused-ignore]
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
        if rec.short_circuit and is_meta_limitation(error):
            return MetaUnsupported(f"{op} in {where}: {error}")
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
