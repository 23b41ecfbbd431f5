"""How far a run of a model is from a reference run, and how far it may be.

The parity checks (:mod:`pytest_convcheck.parity`) compare one run of a model with
another: :func:`run_with_gradients` gives every output of one forward and the
gradients of one weighted-sum backward through them (the weights drawn by
:func:`draw_output_weights`), and :func:`relative_errors` divides each tensor's
largest difference (:func:`max_difference`) by its tolerance.

Tolerances start from the ``torch.testing.assert_close`` defaults of the dtype
(:data:`DEFAULT_TOLERANCE`; :data:`TF32_TOLERANCE` where TF32 is on) and grow with
the size of the reductions (:func:`tolerance`: error accumulates with √(terms)).

Gradients of networks with kinks (max-pool ties, ReLU at 0, ReLU6 at 6) jump
where float32 rounding flips a discrete choice: on a randomly initialised
VGG-16 or ResNet-50 a correct float32 CPU run is up to 5× over the elementwise
tolerance in some weight or input gradients. So where that tolerance is
exceeded, the check measures a *noise floor* (:func:`noise_floor`): the float64
reference run again (three times) with relative noise of ``ε·√fan`` (ε the unit
roundoff of the working precision: float32, or TF32 where it is on) added to
every leaf module's output; the tolerance of each tensor becomes the larger of
the two, with the floor counted :data:`FLOOR_FACTOR` times. An honest float32 run
stays within 1.22× the floor on 8 torchvision models; one that rounds conv inputs
to bfloat16 lands 559–59,200× over it (``python scripts/parity_noise_floor.py``).

A tolerance relative to a tensor's own size fails tensors that are exactly zero
in exact arithmetic: InstanceNorm (GroupNorm with one channel per group) removes
each channel's spatial mean, so the bias of the conv before it changes nothing and
its gradient is zero (with larger groups, the gradients of a group's biases sum
to zero), and float32 returns rounding noise the size of the terms it summed.
A conv's bias is a weight on a constant input of one: its gradient sums the same
output gradients as the weight's, so the rounding errors of both have one scale.
So the tolerance of the gradient of parameter ``m.p`` is
``atol + rtol·max_{q ∈ params(m)} max|ref(grad q)|`` (:func:`natural_scales`), and
that of an output or the input gradient ``atol + rtol·max|ref|``. On a conv →
InstanceNorm → conv → GroupNorm stack (three blocks, 2×1×128×128, float32 CPU,
seeds 0–4) the normalised convs' bias gradients were 2.2–7.8× over a tolerance
relative to their own size and are 0.04–0.20× under this one; a bias gradient 1%
off in float32 lands 906× over it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pytest_convcheck.calls import (
    Call,
    Outputs,
    as_call,
    call_model,
    call_tensors,
    fresh_call,
    output_tensors,
)

Shape = tuple[int, ...]

__all__ = [
    "DEFAULT_TOLERANCE",
    "FLOOR_FACTOR",
    "GRAD",
    "TF32_ROUNDOFF",
    "TF32_TOLERANCE",
    "UNIT_ROUNDOFF",
    "draw_output_weights",
    "gradient_growth",
    "largest_fan",
    "max_difference",
    "natural_scales",
    "noise_floor",
    "relative_errors",
    "run_with_gradients",
    "same_values",
    "tolerance",
]

DEFAULT_TOLERANCE = {  # torch.testing.assert_close defaults (rtol, atol)
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1.3e-6, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float16: (1e-3, 1e-5),
}
TF32_TOLERANCE = (1e-3, 1e-4)  # (rtol, atol) of TF32's 10 mantissa bits
UNIT_ROUNDOFF = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.bfloat16: 2.0**-8,
    torch.float16: 2.0**-11,
}
TF32_ROUNDOFF = 2.0**-11
FLOOR_FACTOR = 4.0  # how many noise floors a device may differ by
_FLOOR_DRAWS = 3  # noisy runs per noise floor: the floor is the largest difference

GRAD = " grad"
"""The suffix of a gradient's name: ``"conv.weight grad"``, ``"input[0] grad"``."""
_INPUTGRAD = "input grad"  # the gradient of a lone input tensor


def draw_output_weights(sample: Outputs, generator: torch.Generator) -> Outputs:
    """Positive float64 weights per floating-point output of ``sample`` (one forward's
    outputs), for one weighted-sum backward through all outputs."""
    return {
        name: torch.rand(value.shape, generator=generator, dtype=torch.float64) + 0.5
        for name, value in sample.items()
        if value.is_floating_point()
    }


def run_with_gradients(
    model: nn.Module, x: torch.Tensor | Call, output_weights: Outputs
) -> dict[str, torch.Tensor]:
    """Every output, the gradient of every floating input (``input grad`` for a lone
    tensor, else ``input[0] grad``, ``input['mask'] grad`` …) and the parameter
    gradients of one backward of the sum of the floating-point outputs weighted by
    ``output_weights`` (:func:`draw_output_weights`) on ``model`` (a copy of ours) called on
    ``x`` (a tensor or built ``(args, kwargs)``). The parameters' ``.grad`` is
    cleared first, so each run returns fresh tensors and a second run of the same
    copy does not add into the first one's."""
    owner = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: the same names
    for param in owner.parameters():
        param.grad = None
    call = fresh_call(as_call(x), grad=True)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        outputs = output_tensors(call_model(model, call))
    if not outputs:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    terms = [
        (out * output_weights[name].to(out.device, out.dtype)).sum()
        for name, out in outputs.items()
        if name in output_weights and out.requires_grad and out.shape == output_weights[name].shape
    ]
    if terms:
        torch.autograd.backward(torch.stack(terms).sum())
    found = {name: out.detach() for name, out in outputs.items()}
    for name, tensor in call_tensors(call):
        if tensor.grad is not None:
            found[f"{name}{GRAD}"] = tensor.grad
    for name, param in owner.named_parameters():
        if param.grad is not None:
            found[f"{name}{GRAD}"] = param.grad
    return found


def gradient_growth(
    parameter_names: Sequence[str], output_shapes: Sequence[tuple[str, Shape]], fan: int
) -> dict[str, float]:
    """Per parameter gradient, how much further than :func:`tolerance`'s √fan its
    rounding error grows: each element of a layer's weight (or bias) gradient sums
    one term per output position of the layer and per sample — N·H·W for a conv on
    N×C×H×W, N for a linear layer on N×C — of every call (``output_shapes``: each
    call's module name and output shape); √(terms/fan) where that exceeds 1.

    The forward fan (a 3×3×3 conv: 27) says nothing of that sum (2×80×80 = 12,800
    terms for its bias), where float32 loses about √12,800·u relative."""
    terms: dict[str, int] = {}
    for module, shape in output_shapes:
        if len(shape) >= 2 and shape[1]:
            terms[module] = terms.get(module, 0) + math.prod(shape) // shape[1]
    growth = {}
    for name in parameter_names:
        count = terms.get(name.rpartition(".")[0], 0)
        if count > fan:
            growth[f"{name}{GRAD}"] = math.sqrt(count / fan)
    return growth


def largest_fan(model: nn.Module) -> int:
    """The most terms one output sums: the largest per-output-channel weight size."""
    return max(1, max((p[0].numel() for p in model.parameters() if p.dim() > 1), default=1))


def tolerance(dtype: torch.dtype, fan: int, *, tf32: bool = False) -> tuple[float, float]:
    """(rtol, atol): the ``assert_close`` defaults of ``dtype`` (TF32's when ``tf32``),
    grown by √fan, since rounding error accumulates with √(terms per output)."""
    rtol, atol = TF32_TOLERANCE if tf32 else DEFAULT_TOLERANCE.get(dtype, (1e-3, 1e-5))
    growth = math.sqrt(fan)
    return rtol * growth, atol * growth


def _is_input_grad(name: str) -> bool:
    """Whether ``name`` is the gradient of an input (``input grad``, ``input[1] grad``,
    ``input['mask'] grad``), not of a parameter."""
    return name == _INPUTGRAD or (name.startswith("input[") and name.endswith(GRAD))


def natural_scales(expected: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per tensor of a :func:`run_with_gradients`, the magnitude its rounding errors
    scale with: ``max|expected|`` for outputs and the input gradient; for the
    gradient of parameter ``m.p``, ``max over m's own parameters q of max|grad q|``.

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
        if name.endswith(GRAD) and not _is_input_grad(name):
            module = name.removesuffix(GRAD).rpartition(".")[0]
            groups[module] = max(groups.get(module, 0.0), value)
    scales = {}
    for name, value in own.items():
        if name.endswith(GRAD) and not _is_input_grad(name):
            value = max(value, groups[name.removesuffix(GRAD).rpartition(".")[0]])
        scales[name] = value
    return scales


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Exactly equal: shape, dtype and values (NaN equal to NaN)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(torch.equal(a, b))


def max_difference(found: torch.Tensor, expected: torch.Tensor) -> float:
    """max |found − expected|, where a NaN on one side only (float32 overflowing to
    inf − inf, say) counts as infinitely far and NaN on both sides as equal."""
    delta = (found - expected).abs()
    lone_nan = found.isnan() ^ expected.isnan()
    delta = torch.where(lone_nan, torch.inf, delta.nan_to_num(nan=0.0, posinf=torch.inf))
    return float(delta.max())


def relative_errors(
    got: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    rtol: float,
    atol: float,
    floors: dict[str, float] | None = None,
    *,
    scales: dict[str, float] | None = None,
    growth: dict[str, float] | None = None,
) -> dict[str, float]:
    """max |got − expected| / max(g·(atol + rtol·scale), FLOOR_FACTOR·floor) per tensor
    (≤ 1 passes); ``scale`` from ``scales`` (see :func:`natural_scales`), else
    max |expected|; ``g`` from ``growth`` (see :func:`gradient_growth`), else 1."""
    errors = {}
    for name, value in expected.items():
        if name not in got:
            errors[name] = math.inf
            continue
        if not value.is_floating_point():  # integer or boolean outputs: exactly equal
            exact = got[name].shape == value.shape and same_values(got[name].detach().cpu(), value)
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
        scale = (atol + rtol * magnitude) * (growth.get(name, 1.0) if growth else 1.0)
        if floors is not None:
            scale = max(scale, FLOOR_FACTOR * floors.get(name, 0.0))
        errors[name] = max_difference(found, value.to(torch.float64)) / scale
    return errors


def noise_floor(
    model: nn.Module,
    x: torch.Tensor | Call,
    output_weights: Outputs,
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
            noisy = run_with_gradients(model, x, output_weights)
            for name, value in expected.items():
                if name in noisy and noisy[name].shape == value.shape and value.numel():
                    delta = max_difference(noisy[name].to(torch.float64), value.to(torch.float64))
                    floors[name] = max(floors[name], delta)
    finally:
        for handle in handles:
            handle.remove()
    return floors
