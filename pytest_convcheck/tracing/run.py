"""One traced run: :func:`trace` copies the model, instruments each module's
``forward`` (:func:`_instrument`), runs it under the recording mode (on meta, else
on CPU) and turns what was recorded into a :class:`Trace`; :func:`gc_paused` keeps
the garbage collector out of the way meanwhile."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from pytest_convcheck.errors import ShapeError
from pytest_convcheck.inputs import Inputs, as_inputs, missing_parameters
from pytest_convcheck.layers import Shape, Spec
from pytest_convcheck.tracing.copying import copy_with, initialise_lazy, input_dtype
from pytest_convcheck.tracing.failures import (
    MetaUnsupported,
    ModelRunError,
    is_meta_limitation,
    missing_inputs_message,
)
from pytest_convcheck.tracing.plans import caches, tree_signatures
from pytest_convcheck.tracing.recorder import Recorder, RecordingMode
from pytest_convcheck.tracing.records import MODEL_INPUT, Trace
from pytest_convcheck.tracing.tensors import named_output_leaves


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
    dtype = dtype or input_dtype(model)
    with gc_paused():
        if device == "meta":
            try:
                return _run(model, inputs, dtype, meta=True)
            except MetaUnsupported as reason:
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


def _instrument(module: nn.Module, recorder: Recorder, tree: int | None) -> None:
    """Wrap ``forward`` of a module *of our copy* so that the recorder sees each call.

    An instance attribute, not a hook: module calls keep torch's fast path, and
    ``self.block.forward(x)`` calls are seen too. Runs inside the module's own
    hooks, so it sees the input after any forward pre-hook.

    On meta, a call on one tensor of a module with tree signature ``tree`` (see
    :func:`tree_signatures`) whose input shape and dtype were seen before is
    replayed from its :class:`Plan` instead of executed; the first such call
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
        if (
            replayable
            and not recorder.mutated
            and len(args) == 1
            and not kwargs
            and isinstance(args[0], torch.Tensor)
            and args[0].device.type == "meta"  # a CPU tensor's values may matter
        ):
            # strides too: a view that works on a contiguous input fails on a transposed one
            key = (tree, tuple(args[0].shape), args[0].stride(), args[0].dtype)
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
        if (
            key is not None
            and not recorder.mutated
            and len(recorder.disagreements) == seen
            and not recorder.in_leaf()
        ):
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


#: held by a traced run while it wraps classes' ``__setattr__`` (see
#: :func:`_watching_attributes`); re-entrant, for a forward that traces a model itself
_WATCH = threading.RLock()


@contextlib.contextmanager
def _watching_attributes(recorder: Recorder, classes: Iterable[type[nn.Module]]) -> Iterator[None]:
    """Note (``recorder.mutated``) when the model sets a module attribute during its
    forward (a counter, a mode switched between two calls of one block): what the
    plans were recorded under has changed, so no call is replayed or recorded from
    then on.

    ``__setattr__`` is wrapped, for the run's duration only, on ``classes`` (those of
    the copy's modules), not on ``nn.Module``: setting an attribute of a class
    invalidates the type caches of all its subclasses, which for ``nn.Module`` with
    timm and diffusers loaded (2,000 subclasses) cost 0.4 ms per trace. So a module
    held outside the model (a global the forward mutates) is not watched, like any
    other global. Runs in several threads take turns (``_WATCH``), so that each
    restores what it wrapped."""

    def watch(setattr_of: Callable[..., None]) -> Callable[..., None]:
        def watched(module: nn.Module, name: str, value: Any) -> None:
            recorder.mutated = True
            setattr_of(module, name, value)

        return watched

    patched: list[tuple[type[nn.Module], Any]] = []
    _WATCH.acquire()
    try:
        for cls in classes:
            own = cls.__dict__.get("__setattr__")
            try:
                type.__setattr__(cls, "__setattr__", watch(cls.__setattr__))
            except (TypeError, AttributeError):  # a metaclass that forbids it: unwatched,
                recorder.mutated = True  # so nothing is replayed or recorded
                continue
            patched.append((cls, own))
        yield
    finally:
        for cls, own in reversed(patched):
            if own is None:
                type.__delattr__(cls, "__setattr__")
            else:
                type.__setattr__(cls, "__setattr__", own)
        _WATCH.release()


def _run(
    model: nn.Module,
    inputs: Inputs,
    dtype: torch.dtype,
    *,
    meta: bool,
    fallback: str | None = None,
) -> Trace:
    trees = tree_signatures(model) if meta else {}
    root_key = None
    if meta and trees.get("") is not None:
        args, kwargs = inputs.meta(dtype)
        x = args[0] if len(args) == 1 and not kwargs else None
        if isinstance(x, torch.Tensor):
            root_key = (trees[""], tuple(x.shape), x.stride(), x.dtype)
            plan = caches.plans.get(root_key)
            if plan is not None:  # this model was traced on this input before: no copy
                recorder = Recorder({}, frozenset(), {}, short_circuit=True)
                recorder.mark(x, MODEL_INPUT)
                output = recorder.replay("", x, plan)
                return _finish(model, inputs, recorder, output, None, plan.analyses)
    try:
        work = copy_with(model, "meta" if meta else "cpu")
    except Exception as error:  # an attribute that cannot be deep-copied
        raise ModelRunError(
            f"{type(model).__name__}: cannot copy the model to trace it without touching it "
            f"({type(error).__name__}: {error}).\n  fix: make the model deep-copyable "
            f"(copy.deepcopy(model) must work)."
        ) from error
    # initialised unrecorded: the trace shows the model's ops, not empty/kaiming_uniform_
    initialise_lazy(work, inputs, dtype, "meta" if meta else "cpu", quiet=True)
    names: dict[int, str] = {}
    leaves: set[int] = set()
    specs: dict[int, Spec] = {}
    unique: list[tuple[nn.Module, int | None]] = []
    for name, module in work.named_modules(remove_duplicate=False):
        if id(module) in names:
            continue
        names[id(module)] = name
        tree = trees.get(name)
        unique.append((module, tree))
        spec = caches.module_spec(tree, module)
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
    recorder = Recorder(names, frozenset(leaves), specs, short_circuit=meta)
    recorder.mark(x, MODEL_INPUT)
    for module, tree in unique:
        _instrument(module, recorder, tree)
    try:
        with (
            torch.random.fork_rng(devices=[]),
            torch.no_grad(),
            _watching_attributes(recorder, dict.fromkeys(type(m) for m, _ in unique)),
            RecordingMode(recorder),
        ):
            output = work(*args, **kwargs)
    except (ShapeError, MetaUnsupported, ModelRunError):
        raise
    except Exception as error:
        missing = missing_parameters(model.forward, inputs)
        if missing:
            raise ModelRunError(missing_inputs_message(model, inputs, missing)) from error
        if meta and is_meta_limitation(error):
            raise MetaUnsupported(f"{type(error).__name__}: {error}") from error
        # the model's own code refused the input (a size assertion): a CPU run would
        # refuse it alike, so it is not re-run there
        raise ModelRunError(
            f"{type(model).__name__}.forward failed on input {inputs.describe()} "
            f"({type(error).__name__}: {error})"
        ) from error
    finally:
        # each wrapper holds its module: without it the copy is freed as the trace
        # returns, not left to the cyclic collector (1,700 dicts for ResNet-50)
        for module, _ in unique:
            module.__dict__.pop("forward", None)
    recorded = caches.plans.get(root_key) if root_key is not None else None
    analyses = recorded.analyses if recorded is not None else {}
    return _finish(model, inputs, recorder, output, fallback, analyses)


def _finish(
    model: nn.Module,
    inputs: Inputs,
    recorder: Recorder,
    output: Any,
    fallback: str | None,
    analyses: dict[Any, Any],
) -> Trace:
    """The :class:`Trace` of a recorded run that returned ``output``."""
    outputs = tuple((path, tuple(t.shape)) for path, t in named_output_leaves(output))
    output_nodes = tuple(
        recorder.producers.get(id(t), MODEL_INPUT) for _, t in named_output_leaves(output)
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
        analyses,
    )


def inputs_primary(inputs: Inputs, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The primary input's tensor among built ``(args, kwargs)``."""
    return inputs.primary_tensor(args, kwargs)
