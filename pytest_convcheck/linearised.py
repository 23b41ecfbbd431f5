"""The linearised copy of a model, whose gradient is non-zero exactly where its
output depends on its input.

:func:`~pytest_convcheck.measured_fields.empirical_receptive_field` differentiates
output positions of :func:`linearise`'s copy of the model while :class:`Linearised`
is on; every op whose real gradient can miss a dependency gets a *linear
stand-in* with the same dependencies:

* max-pooling is replaced by its dependency pattern (average pooling, or a
  ones-kernel depthwise convolution when dilated): a max sends its gradient to
  one element only, which undercounts the field;
* activations (ReLU, sigmoid, GELU, …), softmax and dropout become the identity:
  dead ReLUs and saturated sigmoids would cut paths;
* weights are positive (``1/fan_in``), inputs are ones, and subtraction becomes
  addition, so no two paths cancel; batch norm runs in eval mode with unit
  statistics; a convolution with such weights is computed as one box filter;
* a product or quotient of two computed tensors (a squeeze-and-excitation gate
  times its features) becomes their sum — the same dependencies, without the
  values growing to inf over a dozen such blocks; a matrix product of two
  computed tensors (attention scores) has each factor rescaled to at most 1;
* normalisation layers become their data path (``x``), or with
  ``include_statistics`` the data path plus the mean over the dims their
  statistics span; softmax, normalize, sort, top-k and the scans become
  ``x`` plus the mean along their dim (a channel LayerNorm or a softmax of
  equal values would otherwise have a zero gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from pytest_convcheck.dims import Mix, Statistics, effect_of_call
from pytest_convcheck.layers import FUNCTION_RULES
from pytest_convcheck.tracing import materialized_copy, op_name

__all__ = ["Linearised", "linearise"]

_IDENTITY_NAMES = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "leaky_relu",
        "leaky_relu_",
        "elu",
        "elu_",
        "selu",
        "celu",
        "gelu",
        "silu",
        "mish",
        "sigmoid",
        "sigmoid_",
        "tanh",
        "tanh_",
        "hardtanh",
        "hardtanh_",
        "hardswish",
        "hardsigmoid",
        "softplus",
        "softsign",
        "logsigmoid",
        "tanhshrink",
        "softshrink",
        "hardshrink",
        "threshold",
        "prelu",
        "rrelu",
        "glu",
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "feature_alpha_dropout",
        "clamp",
        "clamp_",
        "clip",
    }
)


def _as_identity(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    x = args[0]
    if getattr(func, "__name__", "") == "glu":  # halves the channel dim
        dim = kwargs.get("dim", args[1] if len(args) > 1 else -1)
        a, b = x.chunk(2, dim)
        return a + b
    return x


def _pool_pattern(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The dependency pattern of a max-pool: every element of each window."""
    name = func.__name__
    dims = int(name.split("pool")[1][0])
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    bound = dict(zip(names, args, strict=False)) | kwargs
    x = bound["input"]
    kernel = bound["kernel_size"]
    stride = bound.get("stride") or kernel
    padding = bound.get("padding", 0)
    dilation = bound.get("dilation", 1)
    ceil_mode = bool(bound.get("ceil_mode", False))
    dilated = any(d != 1 for d in ((dilation,) if isinstance(dilation, int) else dilation))
    avg = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    if not dilated:
        out = avg(x, kernel, stride, padding, ceil_mode, True)
    else:
        channels = x.shape[-dims - 1]
        k = (kernel,) * dims if isinstance(kernel, int) else tuple(kernel)
        weight = torch.ones((channels, 1, *k), dtype=x.dtype, device=x.device)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
        out = conv(x, weight, None, stride, padding, dilation, channels)
    if bound.get("return_indices") or name.endswith("with_indices"):
        return out, torch.zeros(out.shape, dtype=torch.long)
    return out


def _adaptive_pattern(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    dims = int(func.__name__.split("pool")[1][0])
    avg = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[dims]
    out = avg(args[0], args[1] if len(args) > 1 else kwargs["output_size"])
    if (len(args) > 2 and args[2]) or kwargs.get("return_indices") or "indices" in func.__name__:
        return out, torch.zeros(out.shape, dtype=torch.long)
    return out


# the max-pooling functions of the rule table (their dependency pattern is replaced)
_POOLS = {
    f
    for f, rule in FUNCTION_RULES.items()
    if rule.family == "pool" and f.__name__.startswith("max")
}
_ADAPTIVE = {
    f
    for f, rule in FUNCTION_RULES.items()
    if rule.family == "adaptive_pool" and f.__name__.startswith("adaptive_max")
}
_SUBTRACT = {"sub", "__sub__", "rsub", "__rsub__", "sub_", "__isub__"}
_PRODUCTS = {
    "mul",
    "__mul__",
    "__rmul__",
    "mul_",
    "__imul__",
    "div",
    "__truediv__",
    "__rtruediv__",
    "div_",
    "__itruediv__",
    "true_divide",
}
_REDUCE_MAX = {"amax", "max"}
_NORMS = frozenset(
    {"batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm", "local_response_norm"}
)
# ops along a dim whose gradient on equal values is zero or one-hot: replaced by
# x + mean along the dim (values) and zeros (indices), the same dependencies
_ALONG_DIM = frozenset(
    {
        "softmax",
        "log_softmax",
        "softmin",
        "normalize",
        "sort",
        "msort",
        "topk",
        "cummax",
        "cummin",
        "kthvalue",
        "median",
        "nanmedian",
        "mode",
        "std",
        "var",
        "std_mean",
        "var_mean",
    }
)


_CONVS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_CONV_TRANSPOSES = {F.conv_transpose1d: 1, F.conv_transpose2d: 2, F.conv_transpose3d: 3}


def _box_conv(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A linearised convolution: with every weight equal to 1/fan_in, each output
    channel is the same box filter of the sum of its group's input channels. The
    single-channel computation gives the identical function (and gradient) at a
    fraction of the cost; the channel dim is restored by broadcasting."""
    transposed = func in _CONV_TRANSPOSES
    dims = _CONV_TRANSPOSES[func] if transposed else _CONVS[func]
    names = (
        ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
        if transposed
        else ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    )
    bound = dict(zip(names, args, strict=False)) | kwargs
    x, weight = bound["input"], bound["weight"]
    groups = int(bound.get("groups", 1))
    unbatched = x.dim() == dims + 1
    if unbatched:
        x = x.unsqueeze(0)
    n, c_in, *spatial = x.shape
    kernel = tuple(weight.shape[2:])
    summed = x.reshape(n, groups, c_in // groups, *spatial).sum(2)
    box = torch.full(
        (groups, 1, *kernel), 1.0 / ((c_in // groups) * math.prod(kernel)), dtype=x.dtype
    )
    options: dict[str, Any] = {k: bound[k] for k in ("stride", "padding", "dilation") if k in bound}
    if transposed:
        c_out = weight.shape[1] * groups
        if "output_padding" in bound:
            options["output_padding"] = bound["output_padding"]
        y = func(summed, box, None, groups=groups, **options)
    else:
        c_out = weight.shape[0]
        y = func(summed, box, None, groups=groups, **options)
    out_spatial = y.shape[2:]
    if groups == 1:
        # a real tensor, not a broadcast view: the model may write to it in place
        y = y.expand(n, c_out, *out_spatial).contiguous()
    else:
        y = y.unsqueeze(2).expand(n, groups, c_out // groups, *out_spatial)
        y = y.reshape(n, c_out, *out_spatial)
    return y.squeeze(0) if unbatched else y


def _computed(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


_BILINEAR = frozenset(
    {"matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "einsum", "baddbmm", "addmm", "bilinear"}
)


def _flat(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return [v for item in values for v in _flat(item)]
    return [values]


def _rescaled(value: Any) -> Any:
    """Computed tensors divided by their (detached) largest magnitude."""
    if isinstance(value, (list, tuple)):
        return type(value)(_rescaled(v) for v in value)
    if _computed(value):
        scale = value.detach().abs().max()
        return value / scale if float(scale) > 0 else value
    return value


def _attention_pattern(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """``softmax(q·kᵀ)·v`` with the linear stand-in for softmax and rescaled factors:
    each query reads every key and value (masks ignored: a superset). Written out,
    not the fused kernel, whose CPU backward returns NaN on large values."""
    q, k, v = _rescaled(tuple(args[:3]))
    scores = q @ k.transpose(-2, -1)
    scores = scores + scores.mean(-1, keepdim=True)
    pattern: torch.Tensor = _rescaled(scores) @ v
    return pattern


def _mean_along(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], dims: tuple[int, ...], out: Any
) -> Any:
    """``x + mean(x, dims)`` shaped as the op's output (values), with zero indices."""
    x = args[0]
    mean = x.mean(dim=dims, keepdim=True) if dims else x
    values_shape = tuple(out[0].shape) if isinstance(out, tuple) else tuple(out.shape)
    if values_shape == tuple(x.shape):
        values = x + mean
    elif len(values_shape) == x.dim():
        values = mean.expand(values_shape)
    else:
        values = mean.squeeze(dims).expand(values_shape) if dims else mean
    if isinstance(out, tuple):
        if name in ("std_mean", "var_mean"):
            return values, values
        return values, torch.zeros(values_shape, dtype=torch.long)
    if not out.is_floating_point():
        return out
    return values


class Linearised(TorchFunctionMode):
    """The linear stand-ins of the module doc, in force while the mode is on;
    ``include_statistics``: normalisation statistics count (their mean is added)."""

    def __init__(self, include_statistics: bool = False) -> None:
        super().__init__()
        self.include_statistics = include_statistics

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if func in _CONVS or func in _CONV_TRANSPOSES:
            return _box_conv(func, args, kwargs)
        if func in _POOLS:
            return _pool_pattern(func, args, kwargs)
        if func in _ADAPTIVE:
            return _adaptive_pattern(func, args, kwargs)
        if name in _IDENTITY_NAMES and args and isinstance(args[0], torch.Tensor):
            return _as_identity(func, args, kwargs)
        if name in _SUBTRACT and len(args) == 2:
            a, b = args
            return a + b if name not in ("rsub", "__rsub__") else b + a
        if name in _BILINEAR and sum(_computed(a) for a in _flat(args)) >= 2:
            # a product of two computed tensors (attention scores): the same support,
            # each factor scaled to at most 1 so that stacked blocks do not overflow
            return func(*_rescaled(args), **kwargs)
        if name == "scaled_dot_product_attention" and any(_computed(a) for a in args[:3]):
            return _attention_pattern(args, kwargs)
        if name in _PRODUCTS and len(args) == 2 and _computed(args[0]) and _computed(args[1]):
            a, b = args
            return a.add_(b) if name in ("mul_", "__imul__", "div_", "__itruediv__") else a + b
        op = op_name(func)
        if (op in _NORMS or op in _ALONG_DIM) and args and isinstance(args[0], torch.Tensor):
            with torch._C.DisableTorchFunction():
                out = func(*args, **kwargs)
            shape_in = tuple(args[0].shape)
            shape_out = tuple((out[0] if isinstance(out, tuple) else out).shape)
            effect = effect_of_call(op, args, kwargs, shape_in, shape_out)
            if isinstance(effect, Statistics):
                if not self.include_statistics or not effect.dims:
                    return args[0]
                return args[0] + args[0].mean(dim=effect.dims, keepdim=True)
            if isinstance(effect, Mix):
                return _mean_along(op, args, kwargs, effect.dims, out)
            return out
        if (
            name in _REDUCE_MAX
            and args
            and isinstance(args[0], torch.Tensor)
            and (len(args) > 1 or "dim" in kwargs)
        ):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
            mean = args[0].mean(dim=dim, keepdim=keepdim)
            return mean if name == "amax" else (mean, torch.zeros(mean.shape, dtype=torch.long))
        return func(*args, **kwargs)


def linearise(model: nn.Module, input_shape: Any, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A CPU copy (float64 unless ``dtype`` says otherwise) with positive constant
    weights and unit normalisation statistics, built from the meta copy: every
    parameter is a zero-memory constant (``full(()).expand(shape)``) — ``1/fan_in``
    for weights, 1 for biases and scales — and running means are 0, running
    variances 1."""
    work = materialized_copy(model, "meta", input_shape).eval()
    for module in work.modules():
        for name, param in module._parameters.items():
            if param is None:
                continue
            value = 1.0 / max(1, param[0].numel()) if param.dim() >= 2 else 1.0
            module._parameters[name] = _constant(value, param.shape, dtype)  # type: ignore[assignment]
        for name, buffer in module._buffers.items():
            if buffer is None:
                continue
            if buffer.is_floating_point():
                value = 0.0 if name == "running_mean" else 1.0
                module._buffers[name] = _constant(value, buffer.shape, dtype)
            else:
                module._buffers[name] = torch.zeros(buffer.shape, dtype=buffer.dtype)
    _real_plain_tensors(model, work)
    return work


def _real_plain_tensors(model: nn.Module, work: nn.Module) -> None:
    """A tensor held as a plain attribute (not a parameter or buffer: MONAI's
    ``self.grid``) is on meta in the copy, with no values to run on: the user's
    values, on the CPU, with their dtype (a forward that uses them in float32 is then
    measured in float32)."""
    originals = dict(model.named_modules(remove_duplicate=False))
    for name, module in work.named_modules(remove_duplicate=False):
        source = originals.get(name)
        if source is None:
            continue
        for key, value in list(module.__dict__.items()):
            if not isinstance(value, torch.Tensor) or value.device.type != "meta":
                continue
            real = source.__dict__.get(key)
            if isinstance(real, torch.Tensor) and real.device.type != "meta":
                module.__dict__[key] = real.detach().to("cpu", copy=True)


def _constant(
    value: float, shape: Sequence[int], dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    return torch.full((), value, dtype=dtype).expand(tuple(shape))
