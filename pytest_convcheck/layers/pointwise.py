"""Shape-preserving ops: :class:`ShapePreservingSpec` for norms (batch, instance,
layer, group, local response), softmax, dropout and activations, with the argument
checks torch makes on them, and :class:`GLUSpec`, which halves one dim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from pytest_convcheck.effects import Effect, Mix
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    Shape,
    Spec,
    check_rank,
    is_lazy,
    layer_label,
    numel,
    torch_class_name,
    wrap_dim,
)


@dataclass(frozen=True)
class ShapePreservingSpec(Spec):
    """Shape-preserving layers. ``channels`` (norm layers) must match the input's
    channel dim; ``ranks`` lists the accepted input ranks (empty: any);
    ``normalized_shape`` (LayerNorm) must match the trailing dims; ``groups``
    (GroupNorm) must divide the channels; ``dim`` (softmax) must be a dim of the
    input; ``spatial_stats`` (InstanceNorm on its input's statistics) needs more
    than one spatial element. Arguments torch rejects whatever the input (hardtanh
    with min_val > max_val, dropout p outside [0, 1]) make an :class:`InvalidSpec`.

    Shape:
        - Input: ``(*)``, of one of ``ranks`` dims where given (``BatchNorm2d``:
          ``(N, C, H, W)``; ``InstanceNorm2d``: ``(N, C, H, W)`` or ``(C, H, W)``).
        - Output: ``(*)``, the input's shape.

    Source: the docs of each layer and function (``nn.BatchNorm*d``,
    ``nn.InstanceNorm*d``, ``nn.LayerNorm``, ``nn.GroupNorm``, ``nn.Softmax``,
    ``nn.Dropout*d``, the activations).
    """

    kind: str
    channels: int | None = None
    ranks: tuple[int, ...] = ()
    normalized_shape: tuple[int, ...] | None = None
    groups: int | None = None
    batch_stats: bool = False  # BatchNorm in training mode: needs > 1 value per channel
    dim: int | None = None
    spatial_stats: bool = False
    min_rank: int = 0
    unbatched: bool = False  # the lower of two ranks is (C, *spatial), without N

    reads_every_input: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        if self.ranks:
            check_rank(
                label,
                input_shape,
                self.ranks,
                "see the layer's docs",
                f"give the layer a {self.ranks[-1]}-D (N, C, ...) tensor",
            )
        if len(input_shape) < self.min_rank:
            raise ShapeError(
                problem(
                    label,
                    f"expected an input with at least {self.min_rank} dims (N, C, ...), got shape "
                    f"{tuple(input_shape)}.",
                    fix="give the layer an (N, C, ...) tensor.",
                )
            )
        if self.dim is not None:
            wrap_dim(label, self.dim, len(input_shape), input_shape)
        if self.normalized_shape is not None:
            k = len(self.normalized_shape)
            if tuple(input_shape[-k:]) != self.normalized_shape or len(input_shape) < k:
                raise ShapeError(
                    problem(
                        label,
                        f"normalized_shape={self.normalized_shape} must equal the last {k} dims "
                        f"of the input, got input of shape {tuple(input_shape)}.",
                        fix=f"build the layer with normalized_shape={tuple(input_shape[-k:])}.",
                    )
                )
            return tuple(input_shape)
        channel_dim = 0 if self.unbatched and len(input_shape) == self.ranks[0] else 1
        if self.channels is not None or self.groups is not None:
            if len(input_shape) < 2:
                raise ShapeError(
                    problem(
                        label,
                        f"expected (N, C, ...) input, got {tuple(input_shape)}.",
                        fix="give the layer an (N, C, ...) tensor.",
                    )
                )
            c = input_shape[channel_dim]
            if self.channels is not None and c != self.channels:
                raise ShapeError(
                    problem(
                        label,
                        f"expected {self.channels} channels (num_features), got {c} in input of "
                        f"shape {tuple(input_shape)}.",
                        fix=f"build the layer with {c} features, or make the previous layer "
                        f"output {self.channels} channels.",
                    )
                )
            if self.groups is not None and c % self.groups:
                raise ShapeError(
                    problem(
                        label,
                        f"{c} channels are not divisible by num_groups={self.groups}.",
                        fix=f"use a num_groups that divides {c}.",
                    )
                )
            if self.groups is not None and (
                input_shape[0] * c // self.groups * numel(input_shape[2:]) == 1
            ):
                raise ShapeError(
                    problem(
                        label,
                        "group norm needs more than 1 value per group, got input of shape "
                        f"{tuple(input_shape)} with num_groups={self.groups} (N·C/G·∏spatial = 1).",
                        fix="use fewer groups or a larger input.",
                    )
                )
            if self.batch_stats and numel(input_shape) // max(c, 1) <= 1:
                raise ShapeError(
                    problem(
                        label,
                        "in training mode batch norm needs more than 1 value per channel, got "
                        f"input of shape {tuple(input_shape)}.",
                        fix="use a batch of 2 or more, or call model.eval() for single-sample "
                        "inference.",
                    )
                )
        if self.spatial_stats and numel(input_shape[channel_dim + 1 :]) <= 1:
            raise ShapeError(
                problem(
                    label,
                    "instance norm takes its statistics over the spatial dims and needs more than "
                    f"1 spatial element, got input of shape {tuple(input_shape)}.",
                    fix="feed a larger input (or fewer downsampling stages before this layer), or "
                    "use GroupNorm/BatchNorm here.",
                )
            )
        return tuple(input_shape)


# The checks below refuse an argument torch rejects whatever the input: the builders
# raise, and spec_for_module / spec_for_call make the error an InvalidSpec.


def _check_eps(eps: float, training: bool) -> None:
    """``F.batch_norm``: eps > 0 when the batch's statistics are used, ≥ 0 otherwise."""
    if eps > 0 or (eps == 0 and not training):
        return
    rule = "positive when normalising with the batch's statistics" if training else "≥ 0"
    raise ShapeError(
        problem(
            None,
            f"eps={eps} must be {rule}.",
            fix="use a small positive eps such as 1e-5.",
        )
    )


def _check_hardtanh_bounds(low: float, high: float) -> None:
    """``hardtanh`` clamps to ``[min_val, max_val]``: ``min_val ≤ max_val``."""
    if low <= high:
        return
    raise ShapeError(
        problem(
            None,
            f"min_val={low} is greater than max_val={high}.",
            fix="swap them (hardtanh clamps to [min_val, max_val]).",
        )
    )


_INSTANCE_RANKS = {"InstanceNorm1d": (2, 3), "InstanceNorm2d": (3, 4), "InstanceNorm3d": (4, 5)}


def shape_preserving_from_module(module: nn.Module) -> Spec:
    m: Any = module
    kind = type(module).__name__
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        lazy = is_lazy(module)
        ranks = {"BatchNorm1d": (2, 3), "BatchNorm2d": (4,), "BatchNorm3d": (5,)}.get(
            torch_class_name(module).replace("Lazy", ""), ()
        )
        batch_stats = module.training or not m.track_running_stats
        _check_eps(float(m.eps), batch_stats)
        return ShapePreservingSpec(
            kind, None if lazy else int(m.num_features), ranks, batch_stats=batch_stats
        )
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        base = next(c.__name__ for c in type(module).__mro__ if c.__name__ in _INSTANCE_RANKS)
        checked = (m.affine or m.track_running_stats) and not is_lazy(module)
        # without affine parameters or running statistics, a channel count that differs
        # from num_features is only a warning in torch
        return ShapePreservingSpec(
            kind,
            int(m.num_features) if checked else None,
            _INSTANCE_RANKS[base],
            spatial_stats=module.training or not m.track_running_stats,
            unbatched=True,
        )
    if isinstance(module, nn.LayerNorm):
        return ShapePreservingSpec(kind, normalized_shape=tuple(m.normalized_shape))
    if isinstance(module, nn.GroupNorm):
        return ShapePreservingSpec(kind, int(m.num_channels), groups=int(m.num_groups), min_rank=2)
    if isinstance(module, nn.Softmax2d):
        return ShapePreservingSpec(kind, ranks=(3, 4))
    if isinstance(module, nn.LocalResponseNorm):
        return ShapePreservingSpec(kind, min_rank=3)
    if isinstance(module, (nn.Softmax, nn.LogSoftmax, nn.Softmin)) and m.dim is not None:
        return ShapePreservingSpec(kind, dim=int(m.dim))
    if isinstance(module, nn.Hardtanh):
        _check_hardtanh_bounds(m.min_val, m.max_val)
    return ShapePreservingSpec(kind)


_DROPOUT_RANKS = {"dropout1d": (2, 3), "dropout3d": (4, 5)}


def shape_preserving_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ShapePreservingSpec:
    """Shape-preserving calls, with the argument checks torch makes before (or
    instead of) computing: norms' parameter sizes, softmax's dim, dropout's p,
    hardtanh's bounds, gelu's approximation."""
    name = getattr(func, "__name__", "elementwise")
    if name in ("batch_norm", "instance_norm", "layer_norm", "group_norm"):
        return _norm_from_call(name, args, kwargs)
    if name in ("softmax", "log_softmax", "softmin"):
        bound = dict(zip(("input", "dim"), args, strict=False)) | kwargs
        dim = bound.get("dim")
        return ShapePreservingSpec(name, dim=None if dim is None else int(dim))
    if name.endswith("dropout") or name.startswith(("dropout", "feature_alpha")):
        bound = dict(zip(("input", "p", "training", "inplace"), args, strict=False)) | kwargs
        p = float(bound.get("p", 0.5))
        if not 0.0 <= p <= 1.0:
            raise ShapeError(
                problem(
                    None,
                    f"dropout probability has to be between 0 and 1, but got p={p}.",
                    fix="p is the fraction of elements zeroed, e.g. 0.1.",
                )
            )
        return ShapePreservingSpec(name, ranks=_DROPOUT_RANKS.get(name, ()))
    if name == "hardtanh":
        bound = dict(zip(("input", "min_val", "max_val"), args, strict=False)) | kwargs
        _check_hardtanh_bounds(float(bound.get("min_val", -1.0)), float(bound.get("max_val", 1.0)))
    if name == "gelu":
        approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
        if approximate not in ("none", "tanh"):
            raise ShapeError(
                problem(
                    None,
                    f"approximate={approximate!r} is not a gelu approximation.",
                    fix="approximate='none' (exact) or 'tanh'.",
                )
            )
    if name == "clamp" and any(isinstance(v, torch.Tensor) for v in (*args[1:], *kwargs.values())):
        raise ValueError("clamp with tensor bounds broadcasts: torch computes its shape")
    return ShapePreservingSpec(name)


def _tensor_numel(value: Any) -> int | None:
    """The number of elements of a tensor argument; ``None`` for anything else."""
    return int(value.numel()) if isinstance(value, torch.Tensor) else None


def _norm_from_call(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ShapePreservingSpec:
    if name == "layer_norm":
        bound = dict(zip(("input", "normalized_shape", "weight", "bias"), args, strict=False))
        bound |= kwargs
        shape = bound["normalized_shape"]
        normalized = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        for what in ("weight", "bias"):
            tensor = bound.get(what)
            if isinstance(tensor, torch.Tensor) and tuple(tensor.shape) != normalized:
                raise ShapeError(
                    problem(
                        None,
                        f"{what} of shape {tuple(tensor.shape)} must have the shape of "
                        f"normalized_shape={normalized}.",
                        fix=f"pass a {what} of shape {normalized}.",
                    )
                )
        return ShapePreservingSpec(name, normalized_shape=normalized)
    if name == "group_norm":
        bound = dict(zip(("input", "num_groups", "weight", "bias"), args, strict=False)) | kwargs
        groups = int(bound["num_groups"])
        sizes = {_tensor_numel(bound.get("weight")), _tensor_numel(bound.get("bias"))} - {None}
        if groups < 1:
            raise ShapeError(
                problem(
                    None,
                    f"num_groups must be ≥ 1, got {groups}.",
                    fix="num_groups=1 normalises all channels together (LayerNorm-like), "
                    "num_groups=C each one (InstanceNorm).",
                )
            )
        return ShapePreservingSpec(
            name, next(iter(sizes)) if len(sizes) == 1 else None, groups=groups, min_rank=2
        )
    names = (
        ("input", "running_mean", "running_var", "weight", "bias", "training")
        if name == "batch_norm"
        else ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats")
    )
    bound = dict(zip(names, args, strict=False)) | kwargs
    if bound["input"].dim() < 2:
        raise ValueError("a norm of a 1-D input: torch decides")
    sizes = {_tensor_numel(bound.get(k)) for k in names[1:5]} - {None}
    channels = next(iter(sizes)) if len(sizes) == 1 else None
    if len(sizes) > 1:
        raise ShapeError(
            problem(
                None,
                "running statistics and affine parameters disagree on the channel count: sizes "
                f"{sorted(s for s in sizes if s is not None)}.",
                fix="give all of them one entry per channel.",
            )
        )
    if name == "batch_norm":
        training = bool(bound.get("training", False))
        _check_eps(float(bound.get("eps", 1e-5)), training)
        return ShapePreservingSpec(name, channels, batch_stats=training, min_rank=2)
    return ShapePreservingSpec(
        name,
        channels,
        min_rank=2,
        spatial_stats=bool(bound.get("use_input_stats", True)),
    )


@dataclass(frozen=True)
class GLUSpec(Spec):
    """``nn.GLU(dim)`` / ``F.glu``: the input is split in halves along ``dim``, which
    must have an even size; ``out = in`` with that dim halved.

    Shape:
        - Input: ``(*₁, M, *₂)``, at least 1-D, ``M`` (along ``dim``) even.
        - Output: ``(*₁, M / 2, *₂)``.

    Source: the ``nn.GLU`` docs.
    """

    kind: str
    dim: int = -1

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Output ``i`` reads inputs ``i`` and ``i + n/2`` along ``dim``: mixes it."""
        rank = len(input_shape)
        return Mix(((self.dim % rank),) if rank else (), tuple(output_shape))

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        if not input_shape:
            raise ShapeError(
                problem(
                    label,
                    "glu does not support 0-D (scalar) inputs.",
                    fix="give it a tensor with the dim to halve.",
                )
            )
        dim = wrap_dim(label, self.dim, len(input_shape), input_shape)
        if input_shape[dim] % 2:
            raise ShapeError(
                problem(
                    label,
                    f"halving dim {dim} needs an even size, got {input_shape[dim]} in input of "
                    f"shape {tuple(input_shape)}.",
                    fix=f"make the previous layer output {input_shape[dim] + 1} or "
                    f"{input_shape[dim] - 1} along dim {dim}.",
                )
            )
        out = list(input_shape)
        out[dim] //= 2
        return tuple(out)


def glu_from_module(module: nn.Module) -> GLUSpec:
    return GLUSpec(type(module).__name__, int(module.dim))  # type: ignore[arg-type]


def glu_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> GLUSpec:
    bound = dict(zip(("input", "dim"), args, strict=False)) | kwargs
    return GLUSpec("glu", int(bound.get("dim", -1)))
