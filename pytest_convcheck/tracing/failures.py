"""How a run of the model fails, in words: :class:`ModelRunError` (the model's own
code failed; defined in :mod:`pytest_convcheck.errors`, importable from here too),
the dtype and device clash hints (:func:`forward_failures`, :func:`clash_hint`),
:class:`MetaUnsupported` (the meta device cannot run an op: the trace re-runs on
CPU) and the message for a forward given too few inputs
(:func:`missing_inputs_message`)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from pytest_convcheck.errors import ModelRunError as ModelRunError  # its old home
from pytest_convcheck.errors import ModelStateError, ShapeError
from pytest_convcheck.inputs import Inputs

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


def is_dtype_clash(text: str) -> bool:
    """Whether an error's text says that two dtypes met (see :func:`clash_hint`)."""
    return any(word in text for word in _DTYPE_CLASH)


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


class MetaUnsupported(RuntimeError):
    """An op that the meta device cannot run (data-dependent, or no meta kernel)."""


def is_meta_limitation(error: Exception) -> bool:
    """Whether ``error`` says that the meta device cannot run the op (no meta kernel,
    data-dependent, a copy out of meta), not that the model or its shapes are wrong."""
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
