"""The rule table: :class:`Rule`, :data:`RULES` and the look-ups on it.

Each family of layers is one :class:`Rule`: the ``nn`` modules and the functions
of the family, and the builders (in the family's module) that turn a module or a
call into a :class:`~pytest_convcheck.layers.base.Spec`. :data:`MODULE_RULES` and
:data:`FUNCTION_RULES` index the table; :func:`spec_for_module`,
:func:`spec_for_call` and :func:`output_shape` are what the rest of the package
asks. Adding a layer type means adding one entry to :data:`RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_convcheck.errors import ShapeError
from pytest_convcheck.layers.adaptive_pool import (
    adaptive_pool_from_call,
    adaptive_pool_from_module,
    plain_adaptive_avg_call,
)
from pytest_convcheck.layers.base import InvalidSpec, Shape, Spec
from pytest_convcheck.layers.conv import (
    ConvSpec,
    conv_from_call,
    conv_from_module,
)
from pytest_convcheck.layers.dense import (
    flatten_from_call,
    flatten_from_module,
    linear_from_call,
    linear_from_module,
    matmul_from_call,
    plain_linear_call,
)
from pytest_convcheck.layers.pad import pad_from_call, pad_from_module
from pytest_convcheck.layers.pointwise import (
    glu_from_call,
    glu_from_module,
    shape_preserving_from_call,
    shape_preserving_from_module,
)
from pytest_convcheck.layers.pool import (
    fractional_pool_from_call,
    fractional_pool_from_module,
    pool_from_call,
    pool_from_module,
    unpool_from_call,
    unpool_from_module,
)
from pytest_convcheck.layers.resample import (
    antialiased_interpolate_from_call,
    interpolate_from_call,
    interpolate_from_module,
    pixel_shuffle_from_call,
    pixel_shuffle_from_module,
    plain_interpolate_call,
)
from pytest_convcheck.layers.slicing import slice_from_call
from pytest_convcheck.layers.unfold import (
    tensor_unfold_from_call,
    unfold_from_call,
    unfold_from_module,
)


def _no_module(module: nn.Module) -> Spec:
    """The module builder of a family that has functions only (slicing, matmul)."""
    raise TypeError(f"no module of this family: {type(module).__name__}")


@dataclass(frozen=True)
class Rule:
    """One row of the rule table: the modules and functions of a family and how to
    turn each into a :class:`Spec`."""

    family: str
    modules: tuple[type[nn.Module], ...]
    from_module: Callable[[nn.Module], Spec]
    functions: tuple[Callable[..., Any], ...] = ()
    from_call: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Spec] | None = None
    shape_preserving: bool = False
    #: The calls of the family that, on meta, are not executed: for a call it accepts
    #: on tensors with row-major strides (see ``tracing.tensors.is_row_major``), an
    #: empty tensor of the predicted shape stands in for the output. For families
    #: whose meta kernel is a Python decomposition costing more than the check is
    #: worth: on torch 2.13 the first linear interpolation, biased ``F.linear`` or
    #: adaptive average pooling on meta imports ``torch._dynamo`` (0.7 s). The
    #: predicate admits only calls whose every argument the rule models (plain ints,
    #: floats and bools, one tensor each, floating dtypes), returning one tensor; the
    #: rule must refuse whatever torch refuses on them. ``tests/test_opinfo.py`` checks
    #: it against torch's own samples and error inputs, ``tests/test_rule_authority.py``
    #: against torch per dtype and argument type, and ``scripts/library_sweep.py``
    #: against CPU forwards.
    trusted_on_meta: (
        Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], bool] | None
    ) = None


_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Softshrink,
    nn.Hardshrink,
    nn.LogSigmoid,
    nn.Threshold,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softmin,
    nn.Softmax2d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.Identity,
)
_ELEMENTWISE_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    F.relu6,
    F.leaky_relu,
    F.leaky_relu_,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardtanh,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    F.softsign,
    F.logsigmoid,
    F.sigmoid,
    torch.sigmoid,
    F.tanh,
    torch.tanh,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    F.softmax,
    F.log_softmax,
    F.batch_norm,
    F.instance_norm,
    F.layer_norm,
    F.group_norm,
    torch.Tensor.relu,
    torch.Tensor.relu_,
    torch.Tensor.sigmoid,
    torch.Tensor.tanh,
    torch.Tensor.sigmoid_,
    torch.Tensor.tanh_,
    torch.Tensor.clamp,
    torch.clamp,
)

RULES: tuple[Rule, ...] = (
    Rule(
        "conv",
        (
            nn.Conv1d,
            nn.Conv2d,
            nn.Conv3d,
            nn.ConvTranspose1d,
            nn.ConvTranspose2d,
            nn.ConvTranspose3d,
            nn.LazyConv1d,
            nn.LazyConv2d,
            nn.LazyConv3d,
            nn.LazyConvTranspose1d,
            nn.LazyConvTranspose2d,
            nn.LazyConvTranspose3d,
        ),
        conv_from_module,
        (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d),
        conv_from_call,
    ),
    Rule(
        "pool",
        (
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.MaxPool3d,
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AvgPool3d,
            nn.LPPool1d,
            nn.LPPool2d,
            *((nn.LPPool3d,) if hasattr(nn, "LPPool3d") else ()),
        ),
        pool_from_module,
        (
            F.max_pool1d,
            F.max_pool2d,
            F.max_pool3d,
            F.avg_pool1d,
            F.avg_pool2d,
            F.avg_pool3d,
            F.lp_pool1d,
            F.lp_pool2d,
            *((F.lp_pool3d,) if hasattr(F, "lp_pool3d") else ()),
            F.max_pool1d_with_indices,
            F.max_pool2d_with_indices,
            F.max_pool3d_with_indices,
            torch.max_pool1d,
            torch.max_pool2d,
            torch.max_pool3d,
            torch.max_pool1d_with_indices,
            torch.avg_pool1d,
        ),
        pool_from_call,
    ),
    Rule(
        "fractional_pool",
        (nn.FractionalMaxPool2d, nn.FractionalMaxPool3d),
        fractional_pool_from_module,
        (
            F.fractional_max_pool2d,
            F.fractional_max_pool3d,
            F.fractional_max_pool2d_with_indices,
            F.fractional_max_pool3d_with_indices,
        ),
        fractional_pool_from_call,
    ),
    Rule(
        "unpool",
        (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d),
        unpool_from_module,
        (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d),
        unpool_from_call,
    ),
    Rule(
        "adaptive_pool",
        (
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d,
            nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d,
        ),
        adaptive_pool_from_module,
        (
            F.adaptive_avg_pool1d,
            F.adaptive_avg_pool2d,
            F.adaptive_avg_pool3d,
            F.adaptive_max_pool1d,
            F.adaptive_max_pool2d,
            F.adaptive_max_pool3d,
            F.adaptive_max_pool1d_with_indices,
            F.adaptive_max_pool2d_with_indices,
            F.adaptive_max_pool3d_with_indices,
        ),
        adaptive_pool_from_call,
        trusted_on_meta=plain_adaptive_avg_call,
    ),
    Rule(
        "interpolate",
        (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d),
        interpolate_from_module,
        (F.interpolate, F.upsample),
        interpolate_from_call,
        trusted_on_meta=plain_interpolate_call,
    ),
    Rule(
        "antialiased_interpolate",
        (),
        _no_module,
        (torch._C._nn._upsample_bilinear2d_aa, torch.ops.aten._upsample_bilinear2d_aa),
        antialiased_interpolate_from_call,
    ),
    Rule(
        "pixel_shuffle",
        (nn.PixelShuffle, nn.PixelUnshuffle),
        pixel_shuffle_from_module,
        (F.pixel_shuffle, F.pixel_unshuffle),
        pixel_shuffle_from_call,
    ),
    Rule("unfold", (nn.Unfold, nn.Fold), unfold_from_module, (F.unfold, F.fold), unfold_from_call),
    Rule(
        "pad",
        (
            nn.ConstantPad1d,
            nn.ConstantPad2d,
            nn.ConstantPad3d,
            nn.ZeroPad1d,
            nn.ZeroPad2d,
            nn.ZeroPad3d,
            nn.ReflectionPad1d,
            nn.ReflectionPad2d,
            nn.ReflectionPad3d,
            nn.ReplicationPad1d,
            nn.ReplicationPad2d,
            nn.ReplicationPad3d,
            nn.CircularPad1d,
            nn.CircularPad2d,
            nn.CircularPad3d,
        ),
        pad_from_module,
        (F.pad, torch.constant_pad_nd),
        pad_from_call,
    ),
    Rule(
        "slice",
        (),
        _no_module,
        (torch.Tensor.__getitem__, torch.narrow, torch.Tensor.narrow),
        slice_from_call,
    ),
    Rule("tensor_unfold", (), _no_module, (torch.Tensor.unfold,), tensor_unfold_from_call),
    Rule(
        "linear",
        (nn.Linear, nn.LazyLinear),
        linear_from_module,
        (F.linear,),
        linear_from_call,
        trusted_on_meta=plain_linear_call,
    ),
    Rule(
        "matmul",
        (),
        _no_module,
        (
            torch.matmul,
            torch.Tensor.matmul,
            torch.Tensor.__matmul__,
            torch.Tensor.__rmatmul__,
            torch.mm,
            torch.Tensor.mm,
            torch.bmm,
            torch.Tensor.bmm,
            torch.addmm,
            torch.Tensor.addmm,
            torch.baddbmm,
            torch.Tensor.baddbmm,
            torch.einsum,
            F.scaled_dot_product_attention,
        ),
        matmul_from_call,
    ),
    Rule(
        "flatten",
        (nn.Flatten, nn.Unflatten),
        flatten_from_module,
        (torch.flatten, torch.Tensor.flatten),
        flatten_from_call,
    ),
    Rule("glu", (nn.GLU,), glu_from_module, (F.glu,), glu_from_call),
    Rule(
        "shape_preserving",
        (
            *_ACTIVATIONS,
            nn.BatchNorm1d,
            nn.BatchNorm2d,
            nn.BatchNorm3d,
            nn.LazyBatchNorm1d,
            nn.LazyBatchNorm2d,
            nn.LazyBatchNorm3d,
            nn.SyncBatchNorm,
            nn.InstanceNorm1d,
            nn.InstanceNorm2d,
            nn.InstanceNorm3d,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.LocalResponseNorm,
        ),
        shape_preserving_from_module,
        _ELEMENTWISE_FUNCTIONS,
        shape_preserving_from_call,
        shape_preserving=True,
    ),
)

MODULE_RULES: dict[type[nn.Module], Rule] = {m: rule for rule in RULES for m in rule.modules}
FUNCTION_RULES: dict[Any, Rule] = {f: rule for rule in RULES for f in rule.functions}


def rule_for_module(module: nn.Module) -> Rule | None:
    """The rule of a module: its exact type first, then its nearest base class that
    has a rule and whose ``forward`` the module does not override."""
    rule = MODULE_RULES.get(type(module))
    if rule is not None:
        return rule
    for base in type(module).__mro__[1:]:
        rule = MODULE_RULES.get(base)
        if rule is not None:
            same_forward = getattr(type(module), "forward", None) is getattr(base, "forward", None)
            return rule if same_forward else None
    return None


def spec_for_module(module: nn.Module) -> Spec | None:
    """The spec of a module with a rule, or ``None``. A module whose arguments torch
    rejects whatever the input gets an :class:`InvalidSpec` that says why."""
    rule = rule_for_module(module)
    if rule is None:
        return None
    try:
        return rule.from_module(module)
    except ShapeError as error:
        return InvalidSpec(type(module).__name__, str(error))


def spec_for_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Spec | None:
    """The spec of a functional call (``F.conv2d(x, w, ...)``) with a rule, or ``None``
    for a call signature the rule does not read (torch then runs it as it is). A call
    whose arguments torch rejects whatever the input gets an :class:`InvalidSpec`."""
    rule = FUNCTION_RULES.get(func)
    if rule is None or rule.from_call is None:
        return None
    try:
        return rule.from_call(func, args, kwargs)
    except ShapeError as error:
        return InvalidSpec(getattr(func, "__name__", "call"), str(error))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None  # an unusual call signature: let torch run it


def output_shape(
    layer: nn.Module, input_shape: Sequence[int], *, output_size: Sequence[int] | None = None
) -> Shape:
    """Formula-predicted output shape of one layer on an input of ``input_shape``.

    ``input_shape`` includes batch and channel dims, e.g. ``(1, 1, 28, 28)``.
    ``output_size`` is the optional argument of ``ConvTranspose*d.forward``.
    Raises :class:`ShapeError` exactly where torch rejects that input; the
    message gives the formula with the numbers and the fix. Raises ``TypeError``
    for a layer type the rule table does not cover.
    """
    shape = tuple(int(s) for s in input_shape)
    spec = spec_for_module(layer)
    if spec is None:
        covered = sorted({m.__name__ for m in MODULE_RULES})
        raise TypeError(
            f"output_shape: no shape rule for {type(layer).__name__}; covered layers: "
            f"{', '.join(covered)}. For a whole model use pytest_convcheck.trace(model, shape)."
        )
    if output_size is not None:
        if not isinstance(spec, ConvSpec) or not spec.transposed:
            raise TypeError("output_size applies only to ConvTranspose*d layers")
        spec = replace(spec, output_size=tuple(int(s) for s in output_size))
    spec.check_dtype(torch.get_default_dtype())
    return spec.output_shape(shape)
