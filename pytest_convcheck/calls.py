"""One call of a model: its built inputs, the tensors in them, and what it returns.

A model's inputs are described by :class:`~pytest_convcheck.inputs.Inputs`; the
checks that run the model build them into a :data:`Call` (positional and keyword
arguments, tensors nested in tuples, lists and dicts) and then work on the tensors
of that call by *label*: ``input`` for a lone tensor, else ``input[0]``,
``input['mask']``, ``input[1][0]`` … Its outputs are read the same way, by place:
``output``, ``output[0]``, ``output['logits']``, ``output.logits`` …

* :func:`build_call` — the inputs drawn on CPU in float64, and the random stream
  they were drawn from;
* :func:`map_call`, :func:`call_tensors`, :func:`cast_call`, :func:`fresh_call` —
  every input tensor of a call, replaced, listed, moved or copied;
* :func:`call_model` runs a model on a call, :func:`output_tensors` reads the
  tensors out of what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from pytest_convcheck.inputs import Input, Inputs
from pytest_convcheck.tracing import output_leaves

__all__ = [
    "Call",
    "Outputs",
    "as_call",
    "build_call",
    "call_model",
    "call_tensors",
    "cast_call",
    "fresh_call",
    "is_lone_tensor",
    "map_call",
    "output_tensors",
]

Outputs = dict[str, torch.Tensor]
"""Every output tensor of a forward, by its place: ``output`` for a lone tensor,
``output[0]``, ``output['logits']``, ``output.logits`` … for nested tuples, lists,
dicts and dataclass-like outputs (``ModelOutput``)."""

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""The built positional and keyword arguments of one forward."""


def output_tensors(value: Any) -> Outputs:
    """The tensors in what a forward returned, by their place (see :data:`Outputs`)."""
    return {f"output{path}": tensor for path, tensor in output_leaves(value)}


def as_call(x: torch.Tensor | Call) -> Call:
    """A lone input tensor as the call ``model(x)``; a call as it is."""
    if isinstance(x, torch.Tensor):
        return (x,), {}
    return x


def call_model(model: nn.Module, call: Call) -> Any:
    """``model(*args, **kwargs)`` of the call's arguments."""
    args, kwargs = call
    return model(*args, **kwargs)


def is_lone_tensor(call: Call) -> bool:
    """Whether the call is ``model(x)`` with one tensor: its input is labelled
    ``input``, not ``input[0]``."""
    args, kwargs = call
    return len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)


def _map_value(value: Any, fn: Callable[[str, torch.Tensor], Any], path: str) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(path, value)
    if isinstance(value, tuple):
        return tuple(_map_value(v, fn, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, list):
        return [_map_value(v, fn, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _map_value(v, fn, f"{path}[{k!r}]") for k, v in value.items()}
    return value


def map_call(call: Call, fn: Callable[[str, torch.Tensor], Any]) -> Call:
    """``call`` with every input tensor ``t`` (nested in tuples, lists and dicts too)
    replaced by ``fn(label, t)``; labels as :func:`call_tensors` gives them."""
    args, kwargs = call
    lone = is_lone_tensor(call)
    new_args = tuple(
        _map_value(v, fn, "input" if lone else f"input[{i}]") for i, v in enumerate(args)
    )
    new_kwargs = {k: _map_value(v, fn, f"input[{k!r}]") for k, v in kwargs.items()}
    return new_args, new_kwargs


def call_tensors(call: Call) -> list[tuple[str, torch.Tensor]]:
    """The input tensors of ``call`` by label: ``input`` for a lone tensor, else
    ``input[0]``, ``input['mask']``, ``input[1][0]`` … (positional indices, keyword
    names, places inside lists and dicts), in the order the inputs were built."""
    found: list[tuple[str, torch.Tensor]] = []

    def collect(path: str, tensor: torch.Tensor) -> torch.Tensor:
        found.append((path, tensor))
        return tensor

    map_call(call, collect)
    return found


def cast_call(call: Call, device: str | torch.device, dtype: torch.dtype) -> Call:
    """``call`` on ``device``, its floating inputs in ``dtype``; integer and boolean
    inputs keep their values and dtype."""

    def move(_: str, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point():
            return tensor.to(device=device, dtype=dtype)
        return tensor.to(device)

    return map_call(call, move)


def fresh_call(call: Call, *, grad: bool = False) -> Call:
    """Copies of every input tensor (a forward that writes into its input leaves ours
    alone); with ``grad``, the floating ones require a gradient."""

    def copy(_: str, tensor: torch.Tensor) -> torch.Tensor:
        new = tensor.detach().clone()
        return new.requires_grad_(True) if grad and new.is_floating_point() else new

    return map_call(call, copy)


def _described_leaves(value: Any) -> Iterator[Input]:
    """The :class:`Input` placeholders in ``value``, in the order ``Inputs.build``
    draws them."""
    if isinstance(value, Input):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _described_leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _described_leaves(item)


def build_call(inputs: Inputs, seed: int = 0) -> tuple[Call, torch.Generator]:
    """``inputs`` built on CPU, floating ones in float64 (``Inputs.build``, ``seed``),
    and a generator that continues the random stream they were drawn from (for the
    output weights: for one input of a shape, ``x`` and the weights are the draws
    they always were)."""
    call = cast_call(inputs.build(torch.float64, "cpu", seed=seed), "cpu", torch.float64)
    generator = torch.Generator().manual_seed(seed)
    for _, value in inputs.items():
        for item in _described_leaves(value):
            item.tensor(torch.float64, "cpu", generator)
    return call, generator
