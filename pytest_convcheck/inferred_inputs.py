"""An input for a model configured without one (``pytest --convcheck
--convcheck-model timm:resnet18``), inferred in this order:

1. the model's own ``example_inputs`` — a method returning ``(args, kwargs)``, a
   tensor or a tuple of tensors, or such an attribute;
2. the library's metadata: timm's ``pretrained_cfg["input_size"]`` (read from
   the model object), torchvision's weights ``meta["min_size"]`` as the least
   spatial size (metadata in torchvision's code: nothing downloaded);
3. the first conv-like layer: its ``in_channels`` and rank with a default spatial
   size (64² for 2-D, 16³ for 3-D, 1024 for 1-D), batch 2, moved to the nearest
   size the model accepts (:func:`~pytest_convcheck.input_sizes.input_size_rule`).

A model whose first layer is not conv-like (an embedding of token ids, a linear
layer) is refused with a message asking for the input. The rule that chose the
input is kept in :attr:`Inputs.source` (``"inferred: …"``) and shown in reports.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from pytest_convcheck.errors import ConvcheckConfigError
from pytest_convcheck.inputs import Inputs, as_inputs

__all__ = ["DEFAULT_SIZES", "infer_inputs"]

DEFAULT_SIZES = {1: 1024, 2: 64, 3: 16}
"""The default spatial size per rank of the first conv-like layer."""

BATCH = 2

_CONV_LIKE = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_NOT_SPATIAL = (nn.Embedding, nn.EmbeddingBag, nn.Linear, nn.LSTM, nn.GRU, nn.RNN)


def _example(model: nn.Module) -> Inputs | None:
    found = getattr(model, "example_inputs", None)
    if found is None:
        return None
    produced = found() if callable(found) else found
    if isinstance(produced, torch.Tensor):
        produced = ((produced,), {})
    elif isinstance(produced, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in produced):
        produced = (tuple(produced), {})
    inputs = as_inputs(example_inputs=lambda: produced)
    return replace(inputs, source="inferred: the model's example_inputs")


def _library(model: nn.Module) -> Inputs | None:
    """timm's ``pretrained_cfg["input_size"]`` on the model object."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if not size or not all(isinstance(s, int) and s > 0 for s in size):
        return None
    inputs = as_inputs((BATCH, *size))
    return replace(inputs, source="inferred: timm's pretrained_cfg input_size")


def _torchvision_min_size(hub_name: str | None) -> int | None:
    """torchvision's weights metadata ``min_size`` of a model name (metadata in the
    code: nothing downloaded), or ``None``."""
    if not hub_name:
        return None
    try:
        from torchvision.models import get_model_weights

        meta = get_model_weights(hub_name).DEFAULT.meta
    except Exception:  # no torchvision, no weights enum, no metadata: no rule
        return None
    size = meta.get("min_size")
    if isinstance(size, (tuple, list)) and size:
        size = max(int(v) for v in size)
    return int(size) if isinstance(size, int) and size > 0 else None


def _first_layer(model: nn.Module, name: str, min_size: int | None = None) -> Inputs:
    for path, module in model.named_modules():
        if isinstance(module, _CONV_LIKE):
            rank = len(module.kernel_size)
            size = max(DEFAULT_SIZES[rank], min_size or 0)
            shape = [BATCH, int(module.in_channels), *([size] * rank)]
            shape = _accepted(model, shape)
            inputs = as_inputs(tuple(shape))
            label = type(module).__name__
            where = f" {path!r}" if path else ""
            floor = f", at least torchvision's min_size {min_size}" if min_size else ""
            return replace(
                inputs,
                source=f"inferred: the first conv-like layer{where} ({label}, "
                f"{module.in_channels} channels), {'×'.join(map(str, shape[2:]))}{floor}",
            )
        if isinstance(module, _NOT_SPATIAL):
            kind = type(module).__name__
            raise ConvcheckConfigError(
                f"model {name!r}: cannot infer its input: its first layer {path!r} is a "
                f"{kind}, not a conv-like layer, so neither its rank nor its spatial size is "
                f"known.\n  fix: give the input, e.g. input = {{ ids = {{ shape = [2, 128], "
                f'dtype = "int64" }} }} in the model\'s table, or --convcheck-input 2,128 '
                f"(or --convcheck-model FACTORY@2,3,64,64)."
            )
    raise ConvcheckConfigError(
        f"model {name!r}: cannot infer its input: it has no conv-like layer.\n  fix: give the "
        f"input in the model's table (input = [2, 3, 64, 64]) or with --convcheck-input."
    )


def _accepted(model: nn.Module, shape: list[int]) -> list[int]:
    """``shape`` with its spatial sizes (kept equal) moved to the nearest size at
    which the model runs and keeps its batch (the larger one on a tie); unchanged
    when no size up to twice the default is accepted (the checks then say why)."""
    from pytest_convcheck.errors import ShapeError
    from pytest_convcheck.tracing import ModelRunError, trace

    size, rank = shape[-1], len(shape) - 2
    candidates = sorted(range(1, 2 * size + 1), key=lambda n: (abs(n - size), -n))
    for n in candidates:
        trial = [*shape[:2], *([n] * rank)]
        try:
            result = trace(model, tuple(trial))
        except (ShapeError, ModelRunError):
            continue
        if all(out and out[0] == shape[0] for _, out in result.outputs):
            return trial
    return shape


def infer_inputs(model: nn.Module, name: str, hub_name: str | None = None) -> Inputs:
    """The inferred input of ``model`` (see the module doc); ``hub_name``: the
    torchvision model name of a ``torchvision:NAME`` factory, whose weights metadata
    may give a ``min_size``."""
    for rule in (_example, _library):
        found = rule(model)
        if found is not None:
            return found
    return _first_layer(model, name, _torchvision_min_size(hub_name))
