"""What traces learn once per process and re-use (:data:`caches`, a
:class:`TraceCaches`): replay plans of module calls (:class:`Plan`), keyed by the
tree signatures of modules (:func:`tree_signatures`), and geometry ops already
verified against their rule on meta (:func:`call_key`,
:func:`remember_verified`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from pytest_convcheck.layers import Shape, Spec, is_lazy, spec_for_module
from pytest_convcheck.tracing.copying import HOOK_KEYS
from pytest_convcheck.tracing.records import TraceLayer, TraceNode
from pytest_convcheck.tracing.tensors import is_row_major


class Plan(NamedTuple):
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
    analyses: dict[Any, Any]
    """What analyses of a whole model's trace found (:attr:`Trace.analyses`); the
    same dict for every trace replayed from this plan."""


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


class TraceCaches:
    """What traces learn once per process and re-use, with one public :meth:`clear`.

    - ``plans``: per (module tree signature, input shape, dtype), the nodes and rows a
      call recorded (:class:`Plan`); a later identical call is replayed from it
      instead of executed: ResNet-50's sixteen bottlenecks at equal shapes, or a whole
      model traced again.
    - ``verified``: geometry ops already executed on meta and compared with their rule
      (executing conv and pooling on meta costs 25–140 µs each): the outcome of an
      identical call (same function, spec and input shapes and dtypes) is re-used,
      disagreements included.
    - ``trees``: tree signatures interned as small integers (hashing a nested
      signature once per level, not once per lookup).
    - ``specs``: each module's spec (:func:`~pytest_convcheck.layers.spec_for_module`)
      per tree signature, which fixes everything a spec reads (class, plain
      attributes, parameter shapes and dtypes): a model traced at a new input does
      not look its 160 modules up again (0.7 ms for ResNet-50).

    Each holds at most :attr:`limit` entries; a full cache is emptied, not grown.
    """

    limit = 50_000

    def __init__(self) -> None:
        self.plans: dict[tuple[Any, ...], Plan] = {}
        self.verified: dict[tuple[Any, ...], _Verified] = {}
        self.trees: dict[tuple[Any, ...], int] = {}
        self.specs: dict[int, Spec | None] = {}
        # per module class, (len(__dict__), *names of its plain attributes): the fast
        # path of _module_signature
        self.configuration_keys: dict[type, tuple[Any, ...]] = {}

    def clear(self) -> None:
        """Forget everything: the next trace executes every op again."""
        self.plans.clear()
        self.verified.clear()
        self.trees.clear()
        self.specs.clear()
        self.configuration_keys.clear()

    def tree_id(self, signature: tuple[Any, ...]) -> int:
        """The small integer standing for ``signature``."""
        found = self.trees.get(signature)
        if found is None:
            if len(self.trees) >= self.limit:
                self.clear()  # ids are referenced by plans: forget both together
            found = self.trees[signature] = len(self.trees)
        return found

    def module_spec(self, tree: int | None, module: nn.Module) -> Spec | None:
        """``spec_for_module(module)``, kept under the module's tree signature
        ``tree`` (see :func:`tree_signatures`; ``None``: not kept)."""
        if tree is None:
            return spec_for_module(module)
        if tree not in self.specs:
            self.specs[tree] = spec_for_module(module)
        return self.specs[tree]

    def remember_plan(self, key: tuple[Any, ...], plan: Plan) -> None:
        if len(self.plans) >= self.limit:
            self.plans.clear()
        self.plans[key] = plan


caches = TraceCaches()
"""The process's trace caches; ``caches.clear()`` makes the next trace cold."""


def call_key(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...] | None:
    """A hashable description of a call: tensors by shape and dtype, other
    arguments by type and value (``8``, ``8.0``, ``True`` and ``np.int64(8)`` are
    equal in Python, not to torch's argument parser); ``None`` when an argument is
    unhashable, a tensor has other strides than row-major (the outcome kept for a key
    is materialised row-major, while torch keeps a channels-last input's output
    channels-last) or is 0-d (a size given as a tensor: its value matters)."""

    def part(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if not is_row_major(value) or value.dim() == 0:
                raise TypeError("not a key")
            return ("tensor", tuple(value.shape), value.dtype)
        if isinstance(value, (list, tuple)):
            return (type(value), tuple(part(v) for v in value))
        return (type(value), value)

    try:
        key = (
            func,
            tuple(part(a) for a in args),
            tuple(sorted((k, part(v)) for k, v in kwargs.items())),
        )
        hash(key)
    except TypeError:
        return None
    return key


def remember_verified(
    key: tuple[Any, ...],
    result: Any,
    spec: Spec | None,
    predicted: Shape | None,
    found: tuple[str, ...],
) -> None:
    """Keep the outcome of a verified geometry op under ``key`` (see :func:`call_key`)
    in ``caches.verified``: its outputs' shapes and dtypes, its spec, the rule's
    prediction and the disagreements ``found``; results other than a tensor or a tuple
    of tensors are not kept."""
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


def tree_signatures(model: nn.Module) -> dict[str, int | None]:
    """Per module name, an integer standing for everything a call of that module can
    depend on besides its input: its class, its plain attributes (``training``,
    ``stride``, …, see :func:`_module_signature`), the shapes and dtypes of its own
    parameters and buffers, and its children's signatures; ``None`` where a module
    (or one below it) has an attribute of another kind, a forward hook, or the tree
    shares a module between two places (then every composite module gets ``None``).

    Two calls of modules with equal signatures on inputs of equal shape and dtype
    record the same ops: what :class:`Plan` replay rests on."""
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
        if isinstance(module, LazyModuleMixin) and is_lazy(module):
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
        if (
            config is None
            or "forward" in state  # a forward set on the instance: not the class's code
            or state.get("_forward_hooks")
            or state.get("_forward_pre_hooks")
        ):
            found[name] = None
            return None
        tensors = [
            (k, None if t is None else (tuple(t.shape), t.dtype))
            for k, t in state["_parameters"].items()
        ]
        if state["_buffers"]:
            tensors += [
                (k, None if t is None else (tuple(t.shape), t.dtype))
                for k, t in state["_buffers"].items()
            ]
        found[name] = tree = caches.tree_id((config, tuple(tensors), tuple(children)))
        return tree

    visit(model, "")
    if shared:
        for name, module in model.named_modules(remove_duplicate=False):
            if module._modules:
                found[name] = None
    return found


_PLAIN = frozenset({int, float, bool, str, type(None)})
_PLAIN_OR_TUPLE = _PLAIN | {tuple}


def is_plain_setting(value: Any) -> bool:
    """A module setting read as it is: a number, string, flag or ``None``, or a tuple
    of them (``stride=(2, 2)``, ``mode='nearest'``)."""
    return type(value) in _PLAIN or (
        type(value) is tuple and all(type(item) in _PLAIN for item in value)
    )


_NOT_CONFIGURATION = (
    frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "forward"})
    | HOOK_KEYS
)


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
    keys = caches.configuration_keys.get(type(module))
    if keys is not None and len(state) == keys[0]:
        try:
            values = tuple([state[k] for k in keys[1:]])
            # is_plain_setting, inlined with set operations: this runs for every
            # module of every trace
            kinds = set(map(type, values))
            if kinds <= _PLAIN or (
                kinds <= _PLAIN_OR_TUPLE
                and all(set(map(type, v)) <= _PLAIN for v in values if type(v) is tuple)
            ):
                hash(values)
                return (type(module), values)
        except (KeyError, TypeError):
            pass
    found = _full_signature(module)
    if found is not None and keys is None:
        names = [k for k, v in state.items() if is_plain_setting(v)]
        if len(names) == len(found[1]):  # every configuration attribute is plain
            caches.configuration_keys[type(module)] = (len(state), *names)
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
            if all(type(v) in plain for v in value):
                items.append((key, kind, *value))
                continue
            frozen = _frozen_data(value)  # e.g. timm's feature_info: a list of dicts
            if frozen is None:
                return None
            items.append((key, frozen))
        elif isinstance(value, torch.Tensor):
            items.append((key, tuple(value.shape), value.dtype))
        elif kind is dict:
            frozen = _frozen_data(value)
            if frozen is None:
                return None
            items.append((key, dict, frozen))
        else:
            return None
    return (type(module), tuple(items))


def _frozen_data(value: Any, depth: int = 0) -> Any:
    """A dict, list or tuple of plain values (e.g. timm's ``pretrained_cfg``) as a
    hashable value that compares by content; ``None`` when it holds anything else."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth > 4:
        return None
    if kind is dict:
        pairs = []
        for k, v in value.items():
            frozen = _frozen_data(v, depth + 1)
            if type(k) not in _PLAIN or (frozen is None and v is not None):
                return None
            pairs.append((k, frozen))
        return (dict, tuple(pairs))
    if kind is tuple or kind is list:
        items = []
        for v in value:
            frozen = _frozen_data(v, depth + 1)
            if frozen is None and v is not None:
                return None
            items.append(frozen)
        return (kind, tuple(items))
    return None
