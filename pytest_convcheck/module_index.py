"""One walk of a model's module tree, shared by the analyses that read the model.

``nn.Module.named_modules``/``named_parameters`` are recursive generators: on a
300-module timm model each walk costs about a millisecond, and a report needs
several (module aliases, parameter ties and counts, per-row parameters, lazy
layers). :class:`ModuleIndex` walks once, with a stack, and keeps what those
walks would yield, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pytest_convcheck.layers import is_lazy

__all__ = ["ModuleIndex", "storage_key"]


def storage_key(tensor: torch.Tensor) -> tuple[object, ...]:
    """Tensors are one when they are one object or view the same memory identically."""
    uninitialized = getattr(nn.parameter, "UninitializedTensorMixin", ())
    if (
        (uninitialized and isinstance(tensor, uninitialized))
        or tensor.device.type == "meta"
        or tensor.numel() == 0
    ):
        return ("id", id(tensor))
    try:
        pointer = tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return ("id", id(tensor))
    return ("storage", pointer, tensor.storage_offset(), tuple(tensor.shape), tensor.stride())


@dataclass(frozen=True)
class ModuleIndex:
    """What one walk of ``model`` found.

    - ``modules``: ``model.named_modules(remove_duplicate=False)``, in its order
      (a module registered under two names appears twice);
    - ``parameters``: ``model.named_parameters(remove_duplicate=False)``, in its order;
    - ``lazy``: some module still has uninitialised (lazy) parameters.
    """

    model: nn.Module
    modules: tuple[tuple[str, nn.Module], ...]
    parameters: tuple[tuple[str, torch.Tensor], ...]
    lazy: bool

    def identity(self) -> tuple[object, ...]:
        """Which objects the model is made of: every module by identity, every
        parameter by identity, memory address and strides (what :func:`storage_key`
        decides ties from, shapes aside: those are in the trace's plan), in walk
        order. Equal identities, equal sharing. (Not for lazy models: an
        uninitialised parameter has no address.)"""
        return (
            tuple(id(module) for _, module in self.modules),
            tuple((id(t), t.data_ptr(), t.stride()) for _, t in self.parameters),
        )

    @classmethod
    def of(cls, model: nn.Module) -> ModuleIndex:
        modules: list[tuple[str, nn.Module]] = []
        parameters: list[tuple[str, torch.Tensor]] = []
        lazy = False
        stack: list[tuple[str, nn.Module]] = [("", model)]
        while stack:
            name, module = stack.pop()
            modules.append((name, module))
            lazy = lazy or is_lazy(module)
            prefix = f"{name}." if name else ""
            for key, tensor in module._parameters.items():
                if tensor is not None:
                    parameters.append((prefix + key, tensor))
            children = [
                (prefix + key, child) for key, child in module._modules.items() if child is not None
            ]
            stack.extend(reversed(children))
        return cls(model, tuple(modules), tuple(parameters), lazy)
