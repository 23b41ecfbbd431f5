"""Parity: every backend against an independent float64 CPU reference.

Comparing two fast backends with each other only tells you that they differ.
``assert_device_parity`` runs a copy of the model on each device in the working
dtype and compares its output and gradients (input and parameters) with a
float64 CPU run of the same copy. Tolerances start from the
``torch.testing.assert_close`` defaults of the dtype and grow with the size of
the reductions (error accumulates with √(terms)); on CUDA, TF32 convolutions
and matmuls (the default on Ampere and later) get a TF32-aware tolerance, and
``strict=True`` turns TF32 off for the run instead.

Gradients of networks with kinks (max-pool ties, ReLU at 0, ReLU6 at 6) jump
where float32 rounding flips a discrete choice: on a randomly initialised
VGG-16 or ResNet-50 a correct float32 CPU run is up to 5× over the elementwise
tolerance in some weight or input gradients. So where that tolerance is
exceeded, the check measures a *noise floor*: the float64 reference run again
(three times) with relative noise of ``ε·√fan`` (ε the unit roundoff of the working
precision: float32, or TF32 where it is on) added to every leaf module's
output; the tolerance of each tensor becomes the larger of the two, with the
floor counted ``FLOOR_FACTOR`` times. An honest float32 run stays within 1.22×
the floor on 8 torchvision models; one that rounds conv inputs to bfloat16 lands
559–59,200× over it (``python scripts/parity_noise_floor.py``).

A tolerance relative to a tensor's own size fails tensors that are exactly zero
in exact arithmetic: InstanceNorm (GroupNorm with one channel per group) removes
each channel's spatial mean, so the bias of the conv before it changes nothing and
its gradient is zero (with larger groups, the gradients of a group's biases sum
to zero), and float32 returns rounding noise the size of the terms it summed.
A conv's bias is a weight on a constant input of one: its gradient sums the same
output gradients as the weight's, so the rounding errors of both have one scale.
So the tolerance of the gradient of parameter ``m.p`` is
``atol + rtol·max_{q ∈ params(m)} max|ref(grad q)|`` (``_natural_scales``), and
that of an output or the input gradient ``atol + rtol·max|ref|``, as before. On
a conv → InstanceNorm → conv → GroupNorm stack (three blocks, 2×1×128×128,
float32 CPU, seeds 0–4) the normalised convs' bias gradients were 2.2–7.8× over
the old tolerance and are 0.04–0.20× under this one; a bias gradient 1% off in
float32 lands 906× over it.

``assert_layout_parity`` compares channels-last against contiguous weights and
inputs, and a non-contiguous input view against a contiguous one.

``assert_compile_parity`` compares ``torch.compile`` with eager mode (outputs and
gradients); it skips (``pytest.skip``) with the reason where the compiler cannot
run: dynamo unsupported on this Python, no C++ compiler for inductor, a backend
that fails to build.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_convcheck.inputs import Input, Inputs, as_inputs, missing_parameters
from pytest_convcheck.tracing import (
    ModelRunError,
    forward_failures,
    materialized_copy,
    missing_inputs_message,
    output_leaves,
    trace,
)

__all__ = [
    "ParityReport",
    "ParityResult",
    "assert_compile_parity",
    "assert_device_parity",
    "assert_layout_parity",
    "available_devices",
]

_DEFAULT_TOLERANCE = {  # torch.testing.assert_close defaults (rtol, atol)
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1.3e-6, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float16: (1e-3, 1e-5),
}
_TF32 = (1e-3, 1e-4)  # 10 mantissa bits
_UNIT_ROUNDOFF = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.bfloat16: 2.0**-8,
    torch.float16: 2.0**-11,
}
_TF32_ROUNDOFF = 2.0**-11
FLOOR_FACTOR = 4.0  # how many noise floors a device may differ by
_FLOOR_DRAWS = 3


def available_devices() -> list[str]:
    """``cpu`` and whichever of ``cuda`` and ``mps`` this torch can use."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


@dataclass(frozen=True)
class ParityResult:
    """One device's run against the float64 CPU reference."""

    device: str
    dtype: torch.dtype
    tf32: bool
    rtol: float
    atol: float
    errors: dict[str, float]  # output / input grad / parameter grads → max |Δ| / tolerance
    floors: dict[str, float] | None = None  # per tensor: the measured noise floor
    scales: dict[str, float] | None = None  # per tensor: what rtol multiplies (_natural_scales)

    @property
    def worst(self) -> tuple[str, float]:
        name = max(self.errors, key=lambda k: self.errors[k])
        return name, self.errors[name]

    def __str__(self) -> str:
        name, value = self.worst
        text = (
            f"{self.device} {str(self.dtype).removeprefix('torch.')}"
            f"{' (TF32 on)' if self.tf32 else ''}: worst {name}, max |Δ| at {value:.3g}× "
            f"the tolerance atol + rtol·max|reference| (for a parameter's gradient: the "
            f"largest over its module's parameters' gradients"
            + (
                f", {self.scales[name]:.3g} for {name}"
                if self.scales is not None and name in self.scales
                else ""
            )
            + f"; rtol {self.rtol:.2g}, atol {self.atol:.2g})"
        )
        if self.floors is not None:
            text += (
                f" or {FLOOR_FACTOR:g}× the noise floor ({self.floors.get(name, 0.0):.3g} for "
                f"{name}: how far the float64 reference moves under rounding-sized noise), "
                f"whichever is larger"
            )
        return text


@dataclass(frozen=True)
class ParityReport:
    """The devices compared with the float64 reference, and those skipped."""

    results: tuple[ParityResult, ...]
    skipped: tuple[str, ...]

    def __str__(self) -> str:
        lines = [str(r) for r in self.results]
        if self.skipped:
            lines.append(f"skipped (not available here): {', '.join(self.skipped)}")
        return "\n".join(lines)


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled and matmul
    torch.backends.cudnn.allow_tf32 = enabled and cudnn
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


# ops that draw from the random generator (as the trace names them)
_RANDOM_OPS = frozenset(
    {
        "alpha_dropout",
        "bernoulli",
        "bernoulli_",
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "exponential_",
        "feature_alpha_dropout",
        "multinomial",
        "normal",
        "normal_",
        "poisson",
        "rand",
        "rand_like",
        "randint",
        "randint_like",
        "randn",
        "randn_like",
        "randperm",
        "rrelu",
        "uniform_",
    }
)


def _random_draws(model: nn.Module, description: Any) -> list[str]:
    """The ops of ``model``'s forward (in its current mode) that draw random numbers,
    as ``"op in module"``; dropout modules that their own mode switches off are left
    out, functional dropout (which ignores ``eval()``) is kept."""
    modules = dict(model.named_modules())
    found = []
    for node in trace(model, description).nodes:
        if node.op not in _RANDOM_OPS:
            continue
        owner = modules.get(node.module or "")
        if isinstance(owner, nn.modules.dropout._DropoutNd) and not owner.training:
            continue
        where = f"'{node.module}'" if node.module else "forward"
        found.append(f"{node.op} in {where}")
    return list(dict.fromkeys(found))


Outputs = dict[str, torch.Tensor]
"""Every output tensor of a forward, by its place: ``output`` for a lone tensor,
``output[0]``, ``output['logits']``, ``output.logits`` … for nested tuples, lists,
dicts and dataclass-like outputs (``ModelOutput``)."""

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""The built positional and keyword arguments of one forward."""


def _outputs(value: Any) -> Outputs:
    return {f"output{path}": tensor for path, tensor in output_leaves(value)}


def _as_call(x: torch.Tensor | Call) -> Call:
    """A lone input tensor as the call ``model(x)``."""
    if isinstance(x, torch.Tensor):
        return (x,), {}
    return x


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


def _map_call(call: Call, fn: Callable[[str, torch.Tensor], Any]) -> Call:
    """``call`` with every input tensor ``t`` (nested in tuples, lists and dicts too)
    replaced by ``fn(label, t)``; labels as :func:`_call_tensors` gives them."""
    args, kwargs = call
    single = _single(call)
    new_args = tuple(
        _map_value(v, fn, "input" if single else f"input[{i}]") for i, v in enumerate(args)
    )
    new_kwargs = {k: _map_value(v, fn, f"input[{k!r}]") for k, v in kwargs.items()}
    return new_args, new_kwargs


def _single(call: Call) -> bool:
    args, kwargs = call
    return len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)


def _call_tensors(call: Call) -> list[tuple[str, torch.Tensor]]:
    """The input tensors of ``call`` by label: ``input`` for a lone tensor, else
    ``input[0]``, ``input['mask']``, ``input[1][0]`` … (positional indices, keyword
    names, places inside lists and dicts), in the order the inputs were built."""
    found: list[tuple[str, torch.Tensor]] = []

    def collect(path: str, tensor: torch.Tensor) -> torch.Tensor:
        found.append((path, tensor))
        return tensor

    _map_call(call, collect)
    return found


def _cast(call: Call, device: str | torch.device, dtype: torch.dtype) -> Call:
    """``call`` on ``device``, its floating inputs in ``dtype``; integer and boolean
    inputs keep their values and dtype."""

    def move(_: str, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point():
            return tensor.to(device=device, dtype=dtype)
        return tensor.to(device)

    return _map_call(call, move)


def _fresh(call: Call, *, grad: bool = False) -> Call:
    """Copies of every input tensor (a forward that writes into its input leaves ours
    alone); with ``grad``, the floating ones require a gradient."""

    def copy(_: str, tensor: torch.Tensor) -> torch.Tensor:
        new = tensor.detach().clone()
        return new.requires_grad_(True) if grad and new.is_floating_point() else new

    return _map_call(call, copy)


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


def _build(inputs: Inputs, seed: int = 0) -> tuple[Call, torch.Generator]:
    """``inputs`` built on CPU, floating ones in float64 (``Inputs.build``, ``seed``),
    and a generator that continues the random stream they were drawn from (for the
    output weights: for one input of a shape, ``x`` and the weights are the draws
    they always were)."""
    call = _cast(inputs.build(torch.float64, "cpu", seed=seed), "cpu", torch.float64)
    generator = torch.Generator().manual_seed(seed)
    for _, value in inputs.items():
        for item in _described_leaves(value):
            item.tensor(torch.float64, "cpu", generator)
    return call, generator


def _require_inputs(model: nn.Module, inputs: Inputs) -> None:
    """Fail with the missing parameters' names (and the config that gives them) when
    ``forward`` needs more inputs than described."""
    missing = missing_parameters(model.forward, inputs)
    if missing:
        raise ModelRunError(missing_inputs_message(model, inputs, missing))


def _call(model: nn.Module, call: Call) -> Any:
    args, kwargs = call
    return model(*args, **kwargs)


def _channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-d parameters and buffers channels-last, its 5-d ones
    channels-last-3d (``Module.to(memory_format=)`` converts one rank only)."""

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        if tensor.dim() == 5:
            return tensor.contiguous(memory_format=torch.channels_last_3d)
        return tensor

    return model._apply(convert)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    return {name: tensor.detach().clone() for name, tensor in named}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(torch.equal(a, b))


def _assert_repeatable(
    model: nn.Module, x: torch.Tensor | Call, label: str, description: Any = None
) -> Outputs:
    """Every output tensor of ``model`` (eval mode, a copy) on ``x`` (a tensor, or
    built ``(args, kwargs)`` of the inputs ``description`` says) under seed 0;
    fails when forward changes the model's own parameters or buffers (each call
    then sees other weights), or when a run under seed 1 differs: a forward that
    draws random numbers cannot be compared across devices, dtypes or layouts,
    since each draws other numbers."""
    call = _as_call(x)
    if description is None:
        description = tuple(call[0][0].shape)
    before = _state(model)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        first = _outputs(_call(model, _fresh(call)))
        after = dict(itertools.chain(model.named_parameters(), model.named_buffers()))
        changed = [n for n, t in before.items() if n in after and not _same(after[n], t)]
        if changed:
            raise AssertionError(
                f"{label}: forward changes the model's own parameters or buffers in place "
                f"in eval mode ({', '.join(changed[:5])}{' …' if len(changed) > 5 else ''}), "
                f"so every call computes with other weights and no two runs can be compared."
                f"\n  fix: do not write to parameters or buffers in forward (no .add_(), "
                f".copy_() or .data = on them); compute a new tensor instead, or update them "
                f"only when self.training is true."
            )
        torch.random.default_generator.manual_seed(1)  # CPU only: inside fork_rng(devices=[])
        second = _outputs(_call(model, _fresh(call)))
    delta = 0.0
    for name, value in first.items():
        other = second.get(name)
        if other is None or other.shape != value.shape or _same(value, other):
            continue
        delta = max(delta, _max_difference(value.double(), other.double()))
    if not delta:
        return first
    draws = _random_draws(model, description)
    functional = [d for d in draws if d.startswith(("dropout", "alpha_dropout", "feature_"))]
    raise AssertionError(
        f"{label}: forward gives different outputs for different random seeds even in "
        f"eval mode (max |Δ| between two runs = {delta:.3g}), so its results cannot be "
        f"compared across devices, dtypes or layouts: each draws other random numbers.\n"
        f"  random draws in forward: {', '.join(draws) or 'none traced (a generator or numpy?)'}"
        + (
            "\n  F.dropout(x, p) is on unless given training=: it ignores model.eval()."
            if functional
            else ""
        )
        + "\n  fix: let the randomness follow the mode — F.dropout(x, p, "
        "training=self.training), `if self.training: x = x + noise`, or an nn.Dropout "
        "module — so that the model is deterministic in eval mode, where these checks run."
    )


def _output_weights(sample: Outputs, generator: torch.Generator) -> Outputs:
    """Positive float64 weights per floating-point output, for one weighted-sum
    backward through all outputs."""
    return {
        name: torch.rand(value.shape, generator=generator, dtype=torch.float64) + 0.5
        for name, value in sample.items()
        if value.is_floating_point()
    }


def _run(model: nn.Module, x: torch.Tensor | Call, weights: Outputs) -> dict[str, torch.Tensor]:
    """Every output, the gradient of every floating input (``input grad`` for a lone
    tensor, else ``input[0] grad``, ``input['mask'] grad`` …) and the parameter
    gradients of one weighted-sum backward through all floating-point outputs on
    ``model`` (a copy of ours) called on ``x`` (a tensor or built ``(args, kwargs)``).
    The parameters' ``.grad`` is cleared first, so each run returns fresh tensors and
    a second run of the same copy does not add into the first one's."""
    owner = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: the same names
    for param in owner.parameters():
        param.grad = None
    call = _fresh(_as_call(x), grad=True)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        outputs = _outputs(_call(model, call))
    if not outputs:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    terms = [
        (out * weights[name].to(out.device, out.dtype)).sum()
        for name, out in outputs.items()
        if name in weights and out.requires_grad and out.shape == weights[name].shape
    ]
    if terms:
        torch.stack(terms).sum().backward()
    found = {name: out.detach() for name, out in outputs.items()}
    for name, tensor in _call_tensors(call):
        if tensor.grad is not None:
            found[f"{name}{_GRAD}"] = tensor.grad
    for name, param in owner.named_parameters():
        if param.grad is not None:
            found[f"{name} grad"] = param.grad
    return found


def _fan(model: nn.Module) -> int:
    """The most terms one output sums: the largest per-output-channel weight size."""
    return max(1, max((p[0].numel() for p in model.parameters() if p.dim() > 1), default=1))


def _tolerance(dtype: torch.dtype, fan: int, *, tf32: bool = False) -> tuple[float, float]:
    """(rtol, atol): the ``assert_close`` defaults of ``dtype`` (TF32's when ``tf32``),
    grown by √fan, since rounding error accumulates with √(terms per output)."""
    rtol, atol = _TF32 if tf32 else _DEFAULT_TOLERANCE.get(dtype, (1e-3, 1e-5))
    growth = math.sqrt(fan)
    return rtol * growth, atol * growth


_GRAD = " grad"
_INPUT_GRAD = "input grad"


def _is_input_grad(name: str) -> bool:
    """Whether ``name`` is the gradient of an input (``input grad``, ``input[1] grad``,
    ``input['mask'] grad``), not of a parameter."""
    return name == _INPUT_GRAD or (name.startswith("input[") and name.endswith(_GRAD))


def _natural_scales(expected: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per tensor of a ``_run``, the magnitude its rounding errors scale with:
    ``max|expected|`` for outputs and the input gradient; for the gradient of
    parameter ``m.p``, ``max over m's own parameters q of max|grad q|``.

    A bias is a weight on a constant input of one: its gradient sums the same output
    gradients as the weight's. After a normalisation over the spatial axes
    (InstanceNorm, GroupNorm) that sum is exactly zero, and float32 returns rounding
    noise of the size of the summed terms, not of zero; the module's other gradients
    carry that size."""
    own = {
        name: float(value.abs().max()) if value.is_floating_point() and value.numel() else 0.0
        for name, value in expected.items()
    }
    groups: dict[str, float] = {}
    for name, value in own.items():
        if name.endswith(_GRAD) and not _is_input_grad(name):
            module = name.removesuffix(_GRAD).rpartition(".")[0]
            groups[module] = max(groups.get(module, 0.0), value)
    scales = {}
    for name, value in own.items():
        if name.endswith(_GRAD) and not _is_input_grad(name):
            value = max(value, groups[name.removesuffix(_GRAD).rpartition(".")[0]])
        scales[name] = value
    return scales


def _relative_errors(
    got: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    rtol: float,
    atol: float,
    floors: dict[str, float] | None = None,
    *,
    scales: dict[str, float] | None = None,
) -> dict[str, float]:
    """max |got − expected| / max(atol + rtol·scale, FLOOR_FACTOR·floor) per tensor
    (≤ 1 passes); ``scale`` from ``scales`` (see :func:`_natural_scales`), else
    max |expected|."""
    errors = {}
    for name, value in expected.items():
        if name not in got:
            errors[name] = math.inf
            continue
        if not value.is_floating_point():  # integer or boolean outputs: exactly equal
            exact = got[name].shape == value.shape and _same(got[name].detach().cpu(), value)
            errors[name] = 0.0 if exact else math.inf
            continue
        found = got[name].detach().to("cpu", torch.float64)
        if found.shape != value.shape:
            errors[name] = math.inf
            continue
        if not value.numel():
            errors[name] = 0.0
            continue
        magnitude = scales[name] if scales is not None and name in scales else None
        if magnitude is None:
            magnitude = float(value.abs().max())
        scale = atol + rtol * magnitude
        if floors is not None:
            scale = max(scale, FLOOR_FACTOR * floors.get(name, 0.0))
        errors[name] = _max_difference(found, value.to(torch.float64)) / scale
    return errors


def _max_difference(found: torch.Tensor, expected: torch.Tensor) -> float:
    """max |found − expected|, where a NaN on one side only (float32 overflowing to
    inf − inf, say) counts as infinitely far and NaN on both sides as equal."""
    delta = (found - expected).abs()
    lone_nan = found.isnan() ^ expected.isnan()
    delta = torch.where(lone_nan, torch.inf, delta.nan_to_num(nan=0.0, posinf=torch.inf))
    return float(delta.max())


def _noise_floor(
    model: nn.Module,
    x: torch.Tensor | Call,
    weights: Outputs,
    expected: dict[str, torch.Tensor],
    roundoff: float,
) -> dict[str, float]:
    """Per tensor, the largest max |Δ| from ``expected`` over runs of ``model`` (a copy
    of ours) with relative noise ``roundoff·√fan`` added to each leaf module's output,
    fan being the module's per-output-channel weight size (1 without weights)."""
    generator = torch.Generator().manual_seed(1)

    def add_noise(module: nn.Module, args: Any, out: Any, scale: float) -> Any:
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            noise = torch.randn(out.shape, generator=generator, dtype=out.dtype)
            return out + out * (scale * noise.to(out.device))
        return out

    handles = []
    for module in model.modules():
        if next(module.children(), None) is not None:
            continue
        fan = max(
            (p[0].numel() for p in module.parameters(recurse=False) if p.dim() > 1), default=1
        )
        scale = roundoff * math.sqrt(fan)
        handles.append(
            module.register_forward_hook(lambda m, a, o, scale=scale: add_noise(m, a, o, scale))
        )
    floors = dict.fromkeys(expected, 0.0)
    try:
        for _ in range(_FLOOR_DRAWS):
            noisy = _run(model, x, weights)
            for name, value in expected.items():
                if name in noisy and noisy[name].shape == value.shape and value.numel():
                    delta = _max_difference(noisy[name].to(torch.float64), value.to(torch.float64))
                    floors[name] = max(floors[name], delta)
    finally:
        for handle in handles:
            handle.remove()
    return floors


def assert_device_parity(
    model: nn.Module,
    input_shape: Any = None,
    devices: Sequence[str] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    strict: bool = False,
    deterministic: bool = False,
    example_inputs: Callable[[], Any] | None = None,
) -> ParityReport:
    """Compare forward outputs and gradients on each device (default: every
    available one) in ``dtype`` with a float64 CPU reference of the same model.

    ``input_shape`` is any input description (a shape, shapes of positional or
    keyword inputs, :class:`~pytest_convcheck.inputs.Input`; or ``example_inputs=``,
    see :mod:`pytest_convcheck.inputs`): every device gets the same values, integer
    inputs identical, floating ones cast to its dtype. Every output tensor (nested
    tuples, dicts, ``ModelOutput``) is compared, and the gradients of every floating
    input and every parameter.

    ``strict`` turns TF32 off on CUDA (otherwise its tolerance is TF32-aware);
    ``deterministic`` runs under ``torch.use_deterministic_algorithms(True)`` and
    reports ops without a deterministic implementation instead of crashing. The
    model runs in eval mode on copies; the user's model is not touched.
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    _require_inputs(model, inputs)
    wanted = list(devices) if devices is not None else available_devices()
    usable = available_devices()
    skipped = [d for d in wanted if d.split(":")[0] not in usable]
    x, generator = _build(inputs)
    reference_model = materialized_copy(model, "cpu", inputs).double().eval()
    with forward_failures(model, "the float64 reference", torch.float64, "cpu"):
        sample = _assert_repeatable(reference_model, x, type(model).__name__, inputs)
    if not sample:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    weights = _output_weights(sample, generator)
    reference = _run(reference_model, x, weights)
    scales = _natural_scales(reference)
    fan = _fan(reference_model)
    floors_by_roundoff: dict[float, dict[str, float]] = {}
    results, failures = [], []
    for device in (d for d in wanted if d not in skipped):
        tf32 = (
            device.startswith("cuda")
            and not strict
            and (torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
        )
        rtol, atol = _tolerance(dtype, fan, tf32=bool(tf32))
        work = materialized_copy(model, "cpu", inputs).to(device=device, dtype=dtype).eval()
        guard = _deterministic() if deterministic else contextlib.nullcontext()
        try:
            with _tf32(not strict), guard, forward_failures(model, "device parity", dtype, device):
                got = _run(work, _cast(x, device, dtype), weights)
        except RuntimeError as error:
            if deterministic and "deterministic" in str(error):
                failures.append(f"{device}: no deterministic implementation: {error}")
                continue
            raise
        errors = _relative_errors(got, reference, rtol, atol, scales=scales)
        floors = None
        if max(errors.values()) > 1.0:
            roundoff = _TF32_ROUNDOFF if tf32 else _UNIT_ROUNDOFF.get(dtype, 2.0**-24)
            if roundoff not in floors_by_roundoff:
                floors_by_roundoff[roundoff] = _noise_floor(
                    reference_model, x, weights, reference, roundoff
                )
            floors = floors_by_roundoff[roundoff]
            errors = _relative_errors(got, reference, rtol, atol, floors, scales=scales)
        result = ParityResult(device, dtype, bool(tf32), rtol, atol, errors, floors, scales)
        results.append(result)
        if result.worst[1] > 1.0:
            failures.append(f"{result} — above tolerance")
    if failures:
        raise AssertionError(
            f"{type(model).__name__}: device parity against the float64 CPU reference failed:\n  "
            + "\n  ".join(failures)
            + (f"\n  (skipped, not available: {', '.join(skipped)})" if skipped else "")
            + "\n  fix: look for a step that loses precision in the working dtype (a cast "
            "to float16/bfloat16, a constant or eps below its resolution, a cancelling "
            "difference such as E[x²] − E[x]²); on CUDA, strict=True rules TF32 out."
        )
    return ParityReport(tuple(results), tuple(skipped))


def _attempt(model: nn.Module, call: Call) -> Outputs | str:
    """The model's output tensors, or the error it raised, as text."""
    try:
        return _outputs(_call(model, call))
    except RuntimeError as error:
        return f"forward raises RuntimeError: {str(error).splitlines()[0]}"


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _layout_variants(call: Call) -> tuple[Call | None, list[str], Call | None, list[str]]:
    """The channels-last variant of ``call`` (every floating 4-d input channels-last,
    every 5-d one channels-last-3d; ``None`` without such inputs) and the strided
    one (every floating input of rank ≥ 1 a non-contiguous view of the same values;
    ``None`` without floating inputs), each with the labels of the inputs changed.
    Integer and boolean inputs stay as they are."""
    last: list[str] = []
    strided: list[str] = []

    def channels_last(label: str, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point() or tensor.dim() not in (4, 5):
            return tensor
        last.append(label)
        fmt = torch.channels_last if tensor.dim() == 4 else torch.channels_last_3d
        return tensor.contiguous(memory_format=fmt)

    def view(label: str, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point() or tensor.dim() < 1:
            return tensor
        strided.append(label)
        wide = torch.zeros((*tensor.shape[:-1], tensor.shape[-1] * 2), dtype=tensor.dtype)
        wide[..., ::2] = tensor
        return wide[..., ::2]

    cl, sv = _map_call(call, channels_last), _map_call(call, view)
    return (cl if last else None), last, (sv if strided else None), strided


def _changed(what: str, labels: list[str], single: bool) -> str:
    if single:
        return what
    return f"{what}s ({', '.join(labels)})"


def assert_layout_parity(
    model: nn.Module,
    input_shape: Any = None,
    *,
    dtype: torch.dtype = torch.float64,
    example_inputs: Callable[[], Any] | None = None,
) -> None:
    """The outputs do not depend on memory layout: channels-last weights and inputs
    (every floating 4-d and 5-d input) and non-contiguous views of every floating
    input give the contiguous result, for every output tensor.

    ``input_shape`` is any input description (or ``example_inputs=``, see
    :mod:`pytest_convcheck.inputs`); integer and boolean inputs keep their layout."""
    __tracebackhide__ = True  # pytest shows the caller's line
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    _require_inputs(model, inputs)
    built, _ = _build(inputs)
    x = _cast(built, "cpu", dtype)
    single = _single(x)
    base = materialized_copy(model, "cpu", inputs).to(dtype).eval()
    with forward_failures(model, "the contiguous run of the layout check", dtype, "cpu"):
        expected = _assert_repeatable(base, x, type(model).__name__, inputs)
    last, last_labels, strided, strided_labels = _layout_variants(x)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        variants: dict[str, Outputs | str] = {}
        if last is not None:
            cl = _channels_last(materialized_copy(model, "cpu", inputs).to(dtype).eval())
            label = "channels-last weights and " + _changed("input", last_labels, single)
            variants[label] = _attempt(cl, last)
        if strided is not None:
            label = (
                "non-contiguous input (a strided view)"
                if single
                else f"non-contiguous inputs (strided views of {', '.join(strided_labels)})"
            )
            variants[label] = _attempt(base, strided)
    if not expected:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    _, atol = _DEFAULT_TOLERANCE.get(dtype, (1e-3, 1e-5))
    problems = []
    for label, outputs in variants.items():
        if isinstance(outputs, str):
            problems.append(f"{label}: {outputs}")
            continue
        for name, want in expected.items():
            where = f"{label}, {name}" if len(expected) > 1 else label
            got = outputs.get(name)
            if got is None or got.shape != want.shape:
                problems.append(
                    f"{where}: output shape {None if got is None else tuple(got.shape)}"
                )
                continue
            if not want.is_floating_point():
                if not _same(got, want):
                    problems.append(f"{where}: different values")
                continue
            error = _max_difference(got, want)
            if not error <= atol * max(1.0, float(want.abs().max()) if want.numel() else 1.0):
                problems.append(f"{where}: max |Δ| = {error:.3g}")
    if problems:
        whose = "input's" if single else "inputs'"
        raise AssertionError(
            f"{type(model).__name__}: the output depends on the {whose} memory layout:\n  "
            + "\n  ".join(problems)
            + "\n  fix: do not read tensor strides or data pointers in forward; use "
            "x.contiguous() before view(), or reshape() instead of view()."
        )


_COMPILER_MISSING = ("InvalidCxxCompiler", "CppCompileError", "CompilerNotFound")


def _compile_unavailable() -> str | None:
    """Why ``torch.compile`` cannot run here, or ``None``."""
    dynamo = getattr(torch, "_dynamo", None)
    if dynamo is None or not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    supported = getattr(dynamo, "is_dynamo_supported", None)
    if supported is not None and not supported():
        import sys

        return (
            f"torch.compile is not supported on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} with torch {torch.__version__}"
        )
    return None


def assert_compile_parity(
    model: nn.Module,
    input_shape: Any = None,
    *,
    backend: str | Callable[..., Any] = "inductor",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    backward: bool = True,
    example_inputs: Callable[[], Any] | None = None,
) -> ParityResult:
    """``torch.compile(model, backend=backend)`` gives eager mode's outputs (every
    output tensor) and (with ``backward``) the gradients of its floating inputs and
    parameters, within the dtype's ``torch.testing.assert_close`` tolerance grown by
    √(terms per output). ``input_shape`` is any input description (or
    ``example_inputs=``, see :mod:`pytest_convcheck.inputs`).

    Both run in eval mode on copies of the model on ``device``. Where the compiler
    cannot run (dynamo unsupported on this Python, no C++ compiler for inductor on
    CPU, a backend that fails to build), this calls ``pytest.skip`` with the reason.
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    import pytest

    reason = _compile_unavailable()
    if reason is not None:
        pytest.skip(reason)
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    _require_inputs(model, inputs)
    built, generator = _build(inputs)
    x = _cast(built, device, dtype)
    eager = materialized_copy(model, "cpu", inputs).to(device=device, dtype=dtype).eval()
    compiled_model = materialized_copy(model, "cpu", inputs).to(device=device, dtype=dtype).eval()
    sample = _assert_repeatable(eager, x, type(model).__name__, inputs)
    if not sample:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    weights = _output_weights(sample, generator)
    compiled = torch.compile(compiled_model, backend=backend, dynamic=False)
    expected = _run(eager, x, weights) if backward else sample
    try:
        if backward:
            got = _run(compiled, x, weights)  # type: ignore[arg-type]
        else:
            with torch.no_grad():
                got = _outputs(_call(compiled, x))  # type: ignore[arg-type]
    except Exception as error:  # the compiler's own failures are many types
        text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if any(name in text or name in repr(error) for name in _COMPILER_MISSING):
            pytest.skip(f"torch.compile(backend={backend!r}) cannot build here: {text}")
        if type(error).__name__ == "BackendCompilerFailed":
            pytest.skip(f"torch.compile(backend={backend!r}) failed to build: {text}")
        raise
    rtol, atol = _tolerance(dtype, _fan(eager))
    scales = _natural_scales(expected)
    errors = _relative_errors(got, expected, rtol, atol, scales=scales)
    floors = None
    if max(errors.values(), default=0.0) > 1.0 and backward:
        roundoff = _UNIT_ROUNDOFF.get(dtype, 2.0**-24)
        floors = _noise_floor(eager, x, weights, expected, roundoff)
        errors = _relative_errors(got, expected, rtol, atol, floors, scales=scales)
    label = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
    result = ParityResult(
        f"{device} compiled ({label})", dtype, False, rtol, atol, errors, floors, scales
    )
    if result.worst[1] > 1.0:
        raise AssertionError(
            f"{type(model).__name__}: torch.compile(backend={label!r}) differs from eager "
            f"mode: {result}\n  per tensor (error / tolerance): "
            + ", ".join(f"{k} {v:.3g}" for k, v in errors.items())
            + "\n  fix: look for Python side effects or data-dependent control flow in "
            "forward (they are traced once), or report the op to PyTorch."
        )
    return result
