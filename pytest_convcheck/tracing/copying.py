"""Copies of the user's model to trace and run (the original is never touched): the
structural copy with parameters and buffers on meta or CPU (:func:`copy_with`),
lazy layers given their parameters by one dry forward (:func:`initialise_lazy`,
:func:`materialized_copy`, :func:`with_parameter_shapes`), and the dtype a model computes in
(:func:`input_dtype`)."""

from __future__ import annotations

import copy
import itertools
import types
from typing import Any

import torch
from torch import nn

from pytest_convcheck.errors import ModelStateError
from pytest_convcheck.inputs import Inputs, as_inputs
from pytest_convcheck.layers import is_lazy

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
HOOK_KEYS = frozenset(key for key in nn.Module().__dict__ if "hooks" in key)
"""The attributes of an ``nn.Module`` that hold hook dicts (``_forward_hooks``, …)."""
_UNINITIALIZED = getattr(nn.parameter, "UninitializedTensorMixin", ())


def copy_with(model: nn.Module, device: str) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on ``device`` (``"meta"``
    or ``"cpu"``); ties are kept (one source tensor, one copy) and the original is
    never modified.

    A structural copy: the module tree is rebuilt, tensors are mapped to the
    device, hooks are copied as ``copy.deepcopy`` copies them (see
    :func:`_own_hooks`), other mutable attributes are deep-copied. Falls back to
    ``copy.deepcopy`` for modules it cannot rebuild.
    """
    memo: dict[int, Any] = {}
    hook_tables: list[dict[Any, Any]] = []
    try:
        copied = _copy_module(model, memo, device, hook_tables)
        _own_hooks(hook_tables, memo)
        return copied
    except Exception:
        memo = {}
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            memo.setdefault(id(tensor), _copy_tensor(tensor, device))
        return copy.deepcopy(model, memo)


def materialized_copy(
    model: nn.Module, device: str, input_shape: Any, dtype: torch.dtype | None = None
) -> nn.Module:
    """:func:`copy_with`, then one dry forward on zeros when the copy has lazy
    (uninitialised) parameters, so that every parameter has its shape.

    Raises :class:`~pytest_convcheck.errors.ModelStateError` when a real device is
    asked for and the model holds meta tensors: shapes without values."""
    if device != "meta":
        _refuse_meta_tensors(model)
    work = copy_with(model, device)
    initialise_lazy(work, as_inputs(input_shape), dtype or input_dtype(model), device)
    return work


def with_parameter_shapes(model: nn.Module, input_shape: Any) -> nn.Module:
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
        lazy: torch.Tensor = type(tensor)(
            requires_grad=tensor.requires_grad, device=device, dtype=tensor.dtype
        )
        return lazy
    if device == "meta":
        # a plain tensor: the meta copy is ours alone and never trained, and
        # nn.Parameter's wrapper costs more than the tensor
        return torch.empty_like(tensor, device="meta")
    new = tensor.detach().to(device, copy=True)
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(new, requires_grad=tensor.requires_grad)
    return new


def _own_hooks(tables: list[dict[Any, Any]], memo: dict[int, Any]) -> None:
    """Give the copy its own hooks where a hook is bound to an object: a method, or a
    ``partial`` of one (timm's ``FeatureHooks`` stores each feature map in a dict of
    its own). Shared, such a hook would act on the user's objects: write the copy's
    tensors into the user's model. Deep-copied with the tree's ``memo`` once every
    module and tensor of the copy is in it, so that what the hook refers to is the
    copy's. Plain functions stay shared (``copy.deepcopy`` shares them too), and so
    does a hook that cannot be copied. ``tables``: the copy's non-empty hook dicts,
    collected while copying (most models have none: no second walk of the tree)."""
    for table in tables:
        for handle, hook in list(table.items()):
            if type(hook) in _SHARED_EXACT:  # a function, a flag
                continue
            try:
                table[handle] = copy.deepcopy(hook, memo)
            except Exception:  # a hook holding a lock, a file: shared, as before
                continue


def _copy_module(
    module: nn.Module, memo: dict[int, Any], device: str, hook_tables: list[dict[Any, Any]]
) -> nn.Module:
    done: nn.Module | None = memo.get(id(module))
    if done is not None:
        return done
    cls = type(module)
    new = cls.__new__(cls)
    memo[id(module)] = new
    state: dict[str, Any] = {}
    shared, hooks = _SHARED_EXACT, HOOK_KEYS
    for key, value in module.__dict__.items():
        kind = type(value)
        if kind in shared:
            state[key] = value
        elif key in hooks and isinstance(value, dict):
            # registered in the memo so that copied hook handles (RemovableHandle,
            # e.g. a lazy module's init hook) remove from *this* dict, never the user's
            state[key] = memo[id(value)] = value.copy() if value else kind()
            if value:
                hook_tables.append(state[key])
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
                (name, None if child is None else _copy_module(child, memo, device, hook_tables))
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


def input_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model computes in: that of its first floating parameter or buffer
    (a lazy layer's uninitialised parameters know theirs: the default dtype when it
    was built), else the default dtype."""
    for p in itertools.chain(model.parameters(), model.buffers()):
        if p.dtype.is_floating_point:
            return p.dtype
    return torch.get_default_dtype()


def initialise_lazy(
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
