"""The configured models of a run: each built once per process, with its weights
and its inputs.

``pytest --convcheck`` runs several checks on each model of the configuration
(:class:`~pytest_convcheck.config.ModelConfig`). :func:`cached_model` builds it once
per process (:func:`build_model`: the factory called with a fixed seed,
:data:`FACTORY_SEED`, and the checkpoint of ``weights =`` loaded by
:func:`load_weights`), so that every check sees the same weights and a slow factory
is paid for once; a failure to build is remembered too. :func:`model_inputs` gives
its inputs as the checks take them, once per model.
"""

from __future__ import annotations

import inspect
import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pytest_convcheck.config import ModelConfig, import_factory, import_object, user_frames
from pytest_convcheck.errors import ConvcheckConfigError
from pytest_convcheck.inputs import Inputs, as_inputs

__all__ = [
    "FACTORY_SEED",
    "build_model",
    "cached_failure",
    "cached_model",
    "forget_models",
    "load_weights",
    "model_inputs",
    "remember_failure",
]


_MODELS: dict[tuple[str, str, str], nn.Module | str] = {}
"""Per process: each configured model, built once (or why it could not be)."""


def _model_key(config: ModelConfig) -> tuple[str, str, str]:
    """A model is the same when its name, factory and factory arguments are."""
    return config.name, config.factory, repr(sorted(config.options.get("kwargs", {}).items()))


def forget_models() -> None:
    """Drop the built models (a new session in the same process starts afresh)."""
    _MODELS.clear()
    _INPUTS.clear()


def cached_model(config: ModelConfig) -> nn.Module:
    """The model of ``config``, built once per process by :func:`build_model` (a
    failure to build is remembered too): every check sees the same weights, and a
    slow factory is paid for once."""
    key = _model_key(config)
    if key not in _MODELS:
        try:
            _MODELS[key] = build_model(config)
        except ConvcheckConfigError as error:
            _MODELS[key] = str(error)
    found = _MODELS[key]
    if isinstance(found, str):
        raise ConvcheckConfigError(found)
    return found


def remember_failure(config: ModelConfig, message: str) -> None:
    """Record that ``config``'s model cannot be built (e.g. its factory timed out)."""
    _MODELS[_model_key(config)] = message


def cached_failure(config: ModelConfig) -> str:
    """Why ``config``'s model could not be built, or ``""``."""
    found = _MODELS.get(_model_key(config))
    return found if isinstance(found, str) else ""


FACTORY_SEED = 0
"""The seed of torch's, Python's and NumPy's generators while a factory runs."""


def _seeded_call(factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``factory(**kwargs)`` with torch's CPU generator, Python's ``random`` and (when
    imported) NumPy's global generator seeded with a fixed seed, each restored
    afterwards: the same weights in every process, whatever ran before."""
    state = random.getstate()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(FACTORY_SEED)
            random.seed(FACTORY_SEED)
            if numpy is not None:
                numpy.random.seed(FACTORY_SEED)
            return factory(**kwargs)
    finally:
        random.setstate(state)
        if numpy is not None:
            numpy.random.set_state(numpy_state)


def _signature(factory: Any, name: str) -> str:
    try:
        return f"{name}{inspect.signature(factory)}"
    except (TypeError, ValueError):
        return name


_INPUTS: dict[tuple[str, str, str], Inputs] = {}
"""Per process: each configured model's inputs (by the same key as :data:`_MODELS`)."""


def model_inputs(config: ModelConfig) -> Inputs:
    """The model's inputs as the checks take them (:mod:`pytest_convcheck.inputs`):
    its ``input`` description, what its ``example_inputs`` function returns, or, with
    neither, an input inferred from the model (:mod:`pytest_convcheck.inferred_inputs`)."""
    key = _model_key(config)
    nothing_given = config.inputs is None and not config.input_shape and not config.example_inputs
    if key not in _INPUTS and nothing_given:  # inferred from the model
        from pytest_convcheck.inferred_inputs import infer_inputs

        hub, _, hub_name = config.factory.partition(":")
        _INPUTS[key] = infer_inputs(
            cached_model(config), config.name, hub_name if hub == "torchvision" else None
        )
    if key not in _INPUTS:
        example = _import_function(config, config.example_inputs) if config.example_inputs else None
        try:
            _INPUTS[key] = as_inputs(
                None
                if example is not None and config.inputs is None and not config.input_shape
                else config.description,
                example_inputs=example,
            )
        except (TypeError, ValueError) as error:
            raise ConvcheckConfigError(f"model {config.name!r}: {error}") from None
    return _INPUTS[key]


def _import_function(config: ModelConfig, path: str) -> Callable[..., Any]:
    """``module:function`` (``example_inputs``), imported as factories are."""
    found: Callable[..., Any] = import_object(config, path, "example_inputs")
    return found


def build_model(config: ModelConfig) -> nn.Module:
    """Import ``config.factory`` (:func:`~pytest_convcheck.config.import_factory`:
    project-relative paths resolve against the project's folder) and call it with a
    fixed seed (see :func:`_seeded_call`); the result must be an ``nn.Module``. With
    ``weights = "path.pt"`` the checkpoint is loaded into it (``weights_only=True``)."""
    factory = import_factory(config)
    attr = config.factory.partition(":")[2]
    kwargs = config.options.get("kwargs", {})
    short = attr.rsplit(".", 1)[-1]
    called = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        model = _seeded_call(factory, kwargs)
    except SystemExit as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} called sys.exit({error.code!r}) "
            f"when called as {short}({called}).\n  fix: raise an exception instead of exiting "
            f"the process."
        ) from None
    except TypeError as error:
        frames = traceback.extract_tb(error.__traceback__)
        in_call = len(frames) <= 2  # raised by the call itself: the arguments do not fit
        if not in_call:
            raise ConvcheckConfigError(
                f"model {config.name!r}: factory {config.factory!r} raised TypeError: {error} "
                f"when called as {short}({called}).{user_frames(error)}\n  fix: the factory "
                f"itself failed; see where above."
            ) from None
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} raised "
            f"{type(error).__name__}: {error} when called as {short}({called}); it takes "
            f"{_signature(factory, short)}.\n  fix: give the arguments it needs under kwargs "
            f"in the model's table, e.g. kwargs = {{ num_classes = 10 }} (ini: "
            f"kwargs.num_classes=10), or point factory at a function that builds the model."
        ) from None
    except Exception as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} raised "
            f"{type(error).__name__}: {error} when called as {short}({called})."
            f"{user_frames(error)}\n  fix: the factory itself failed; see where above."
        ) from None
    if not isinstance(model, nn.Module):
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} returned "
            f"{type(model).__name__}, not an nn.Module.\n  fix: return the model itself from the "
            f"factory (not its output, a state dict or a wrapper)."
        )
    if config.weights is not None:
        load_weights(model, config)
    return model


_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def load_weights(model: nn.Module, config: ModelConfig) -> None:
    """Load ``config.weights`` (a state dict saved with ``torch.save``, or a checkpoint
    dict holding one under ``state_dict``, ``model_state_dict``, ``model``, …) into
    ``model``, strictly, with ``torch.load(..., weights_only=True)``: a checkpoint
    never runs code."""
    path = config.weights
    assert path is not None
    given = config.options.get("weights")
    if not path.is_file():
        raise ConvcheckConfigError(
            f"model {config.name!r}: weights = {given!r}: no file at {path}.\n  fix: give the "
            f"path of a checkpoint relative to {config.root or 'the working folder'}, or remove "
            f"the weights key to check the factory's random initial weights."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        import re

        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        reason = reason.splitlines()[0].split(". ")[0] if reason else ""
        raise ConvcheckConfigError(
            f"model {config.name!r}: cannot load weights {path} with weights_only=True "
            f"({type(error).__name__}: {reason}).\n"
            f"  fix: save a plain state dict, torch.save(model.state_dict(), {given!r}); "
            f"pickled modules and custom classes are refused (they would run code)."
        ) from None
    if isinstance(state, dict):
        for key in _CHECKPOINT_KEYS:
            if isinstance(state.get(key), dict) and not isinstance(state.get(key), torch.Tensor):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConvcheckConfigError(
            f"model {config.name!r}: {path} holds {type(state).__name__}, not a state dict "
            f"(a dict of parameter names to tensors).\n  fix: save it with "
            f"torch.save(model.state_dict(), {given!r})."
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        raise ConvcheckConfigError(
            f"model {config.name!r}: the weights in {path} do not fit {config.factory!r}:\n  "
            + "\n  ".join(lines[:6])
            + "\n  fix: save the checkpoint from this model class (same layers, same sizes, "
            "kwargs included), or point factory at the class the checkpoint belongs to."
        ) from None
