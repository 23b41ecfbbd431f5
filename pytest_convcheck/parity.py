"""Parity: every backend against an independent float64 CPU reference.

Comparing two fast backends with each other only tells you that they differ.
``assert_device_parity`` runs a copy of the model on each device in the working
dtype and compares its output and gradients (input and parameters) with a
float64 CPU run of the same copy. Tolerances start from the
``torch.testing.assert_close`` defaults of the dtype and grow with the size of
the reductions (error accumulates with √(terms)); on CUDA, TF32 convolutions
and matmuls (the default on Ampere and later) get a TF32-aware tolerance, and
``strict=True`` turns TF32 off for the run instead. Where a tensor exceeds its
tolerance, the float64 reference's own *noise floor* under rounding-sized noise
is measured and counted too (gradients jump at kinks: max-pool ties, ReLU at 0),
and a parameter's gradient is measured against the scale of its module's
gradients (a bias gradient that is zero in exact arithmetic):
:mod:`pytest_convcheck.tolerances` says how and why.

Each comparison first checks that the model is repeatable
(``_assert_repeatable``): a forward that writes to its own parameters or draws
random numbers in eval mode cannot be compared across devices, dtypes or layouts.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_convcheck.calls import (
    Call,
    Outputs,
    as_call,
    build_call,
    call_model,
    cast_call,
    fresh_call,
    is_lone_tensor,
    map_call,
    output_tensors,
)
from pytest_convcheck.inputs import Inputs, as_inputs, missing_parameters
from pytest_convcheck.tolerances import (
    DEFAULT_TOLERANCE,
    FLOOR_FACTOR,
    TF32_ROUNDOFF,
    UNIT_ROUNDOFF,
    draw_output_weights,
    gradient_growth,
    largest_fan,
    max_difference,
    natural_scales,
    noise_floor,
    relative_errors,
    run_with_gradients,
    same_values,
    tolerance,
)
from pytest_convcheck.tracing import (
    ModelRunError,
    forward_failures,
    materialized_copy,
    missing_inputs_message,
    trace,
)
from pytest_convcheck.tracing.plans import is_plain_setting

__all__ = [
    "ParityReport",
    "ParityResult",
    "assert_compile_parity",
    "assert_device_parity",
    "assert_layout_parity",
    "available_devices",
]


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
    scales: dict[str, float] | None = None  # per tensor: what rtol multiplies (natural_scales)
    growth: dict[str, float] | None = None  # per parameter gradient (gradient_growth)

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
            + f"; rtol {self.rtol:.2g}, atol {self.atol:.2g}"
            + (
                f", both ×{self.growth[name]:.3g} for the terms its gradient sums"
                if self.growth and name in self.growth
                else ""
            )
            + ")"
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


def _require_inputs(model: nn.Module, inputs: Inputs) -> None:
    """Fail with the missing parameters' names (and the config that gives them) when
    ``forward`` needs more inputs than described."""
    missing = missing_parameters(model.forward, inputs)
    if missing:
        raise ModelRunError(missing_inputs_message(model, inputs, missing))


def _channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-d parameters and buffers channels-last, its 5-d ones
    channels-last-3d (``Module.to(memory_format=)`` converts one rank only)."""

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        if tensor.dim() == 5:
            return tensor.contiguous(memory_format=torch.channels_last_3d)
        return tensor

    # Module._apply is untyped in torch's stubs: its type, given where it is bound
    apply: Callable[[Callable[[torch.Tensor], torch.Tensor]], nn.Module] = model._apply
    return apply(convert)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    return {name: tensor.detach().clone() for name, tensor in named}


def _settings(model: nn.Module) -> dict[str, Any]:
    """Every module's plain settings (see :func:`is_plain_setting`) by dotted name:
    what a forward that keeps state between calls changes."""
    found = {}
    for prefix, module in model.named_modules():
        for key, value in module.__dict__.items():
            if key != "training" and is_plain_setting(value):
                found[f"{prefix}.{key}" if prefix else key] = value
    return found


def _assert_repeatable(
    model: nn.Module, x: torch.Tensor | Call, model_name: str, description: Any = None
) -> Outputs:
    """Every output tensor of ``model`` (eval mode, a copy) on ``x`` (a tensor, or
    built ``(args, kwargs)`` of the inputs ``description`` says) under seed 0;
    fails when forward changes the model's own parameters or buffers (each call
    then sees other weights), or when a run under seed 1 differs: a forward that
    draws random numbers cannot be compared across devices, dtypes or layouts,
    since each draws other numbers."""
    call = as_call(x)
    if description is None:
        description = tuple(call[0][0].shape)
    before = _state(model)
    settings = _settings(model)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        first = output_tensors(call_model(model, fresh_call(call)))
        now = _settings(model)
        moved = [(k, v, now.get(k)) for k, v in settings.items() if now.get(k, v) != v]
        moved += [(k, None, v) for k, v in now.items() if k not in settings]
        after = dict(itertools.chain(model.named_parameters(), model.named_buffers()))
        changed = [n for n, t in before.items() if n in after and not same_values(after[n], t)]
        if changed:
            raise AssertionError(
                f"{model_name}: forward changes the model's own parameters or buffers in place "
                f"in eval mode ({', '.join(changed[:5])}{' …' if len(changed) > 5 else ''}), "
                f"so every call computes with other weights and no two runs can be compared."
                f"\n  fix: do not write to parameters or buffers in forward (no .add_(), "
                f".copy_() or .data = on them); compute a new tensor instead, or update them "
                f"only when self.training is true."
            )
        torch.default_generator.manual_seed(1)  # CPU only: inside fork_rng(devices=[])
        second = output_tensors(call_model(model, fresh_call(call)))
    delta = 0.0
    for name, value in first.items():
        other = second.get(name)
        if other is None or other.shape != value.shape or same_values(value, other):
            continue
        delta = max(delta, max_difference(value.double(), other.double()))
    if not delta:
        return first
    if moved:
        listed = ", ".join(f"{k}: {old!r} → {new!r}" for k, old, new in moved[:3])
        raise AssertionError(
            f"{model_name}: forward changes attributes of its modules ({listed}"
            f"{' …' if len(moved) > 3 else ''}), and the next call computes something else "
            f"(max |Δ| between two runs = {delta:.3g}), so no two runs can be compared.\n"
            f"  fix: keep per-call state out of the modules (pass it to forward or compute it "
            f"from the input), or change it only while self.training is true."
        )
    draws = _random_draws(model, description)
    functional = [d for d in draws if d.startswith(("dropout", "alpha_dropout", "feature_"))]
    raise AssertionError(
        f"{model_name}: forward gives different outputs for different random seeds even in "
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
    call, generator = build_call(inputs)
    reference_model = materialized_copy(model, "cpu", inputs).double().eval()
    with forward_failures(model, "the float64 reference", torch.float64, "cpu"):
        sample = _assert_repeatable(reference_model, call, type(model).__name__, inputs)
    if not sample:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    output_weights = draw_output_weights(sample, generator)
    reference = run_with_gradients(reference_model, call, output_weights)
    scales = natural_scales(reference)
    fan = largest_fan(reference_model)
    growth = _gradient_growth(model, inputs, reference_model, fan)
    floors_by_roundoff: dict[float, dict[str, float]] = {}
    results, failures = [], []
    for device in (d for d in wanted if d not in skipped):
        tf32 = (
            device.startswith("cuda")
            and not strict
            and (torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
        )
        rtol, atol = tolerance(dtype, fan, tf32=bool(tf32))
        work = materialized_copy(model, "cpu", inputs).to(device=device, dtype=dtype).eval()
        guard = _deterministic() if deterministic else contextlib.nullcontext()
        try:
            with _tf32(not strict), guard, forward_failures(model, "device parity", dtype, device):
                got = run_with_gradients(work, cast_call(call, device, dtype), output_weights)
        except RuntimeError as error:
            if deterministic and "deterministic" in str(error):
                failures.append(f"{device}: no deterministic implementation: {error}")
                continue
            raise
        errors = relative_errors(got, reference, rtol, atol, scales=scales, growth=growth)
        floors = None
        if max(errors.values()) > 1.0:
            roundoff = TF32_ROUNDOFF if tf32 else UNIT_ROUNDOFF.get(dtype, 2.0**-24)
            if roundoff not in floors_by_roundoff:
                floors_by_roundoff[roundoff] = noise_floor(
                    reference_model, call, output_weights, reference, roundoff
                )
            floors = floors_by_roundoff[roundoff]
            errors = relative_errors(
                got, reference, rtol, atol, floors, scales=scales, growth=growth
            )
        result = ParityResult(device, dtype, bool(tf32), rtol, atol, errors, floors, scales, growth)
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


def _gradient_growth(
    model: nn.Module, inputs: Inputs, reference_model: nn.Module, fan: int
) -> dict[str, float]:
    """:func:`~pytest_convcheck.tolerances.gradient_growth` from a trace of ``model``
    (each leaf call's output shape); none when the model cannot be traced."""
    try:
        result = trace(model, inputs)
    except Exception:  # the parity runs report the model's own failures
        return {}
    shapes = [
        (row.module, row.output_shape)
        for row in result.layers
        if row.module is not None and row.output_shape is not None
    ]
    names = [name for name, _ in reference_model.named_parameters()]
    return gradient_growth(names, shapes, fan)


def _attempt(model: nn.Module, call: Call) -> Outputs | str:
    """The model's output tensors, or the error it raised, as text."""
    try:
        return output_tensors(call_model(model, call))
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
    last_labels: list[str] = []
    strided_labels: list[str] = []

    def channels_last(label: str, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point() or tensor.dim() not in (4, 5):
            return tensor
        last_labels.append(label)
        fmt = torch.channels_last if tensor.dim() == 4 else torch.channels_last_3d
        return tensor.contiguous(memory_format=fmt)

    def view(label: str, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point() or tensor.dim() < 1:
            return tensor
        strided_labels.append(label)
        wide = torch.zeros((*tensor.shape[:-1], tensor.shape[-1] * 2), dtype=tensor.dtype)
        wide[..., ::2] = tensor
        return wide[..., ::2]

    cl, sv = map_call(call, channels_last), map_call(call, view)
    return (
        (cl if last_labels else None),
        last_labels,
        (sv if strided_labels else None),
        strided_labels,
    )


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
    built, _ = build_call(inputs)
    call = cast_call(built, "cpu", dtype)
    single = is_lone_tensor(call)
    base = materialized_copy(model, "cpu", inputs).to(dtype).eval()
    with forward_failures(model, "the contiguous run of the layout check", dtype, "cpu"):
        expected = _assert_repeatable(base, call, type(model).__name__, inputs)
    last, last_labels, strided, strided_labels = _layout_variants(call)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        variants: dict[str, Outputs | str] = {}
        if last is not None:
            cl = _channels_last(materialized_copy(model, "cpu", inputs).to(dtype).eval())
            variant = "channels-last weights and " + _changed("input", last_labels, single)
            variants[variant] = _attempt(cl, last)
        if strided is not None:
            variant = (
                "non-contiguous input (a strided view)"
                if single
                else f"non-contiguous inputs (strided views of {', '.join(strided_labels)})"
            )
            variants[variant] = _attempt(base, strided)
    if not expected:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    _, atol = DEFAULT_TOLERANCE.get(dtype, (1e-3, 1e-5))
    problems = []
    for variant, outputs in variants.items():
        if isinstance(outputs, str):
            problems.append(f"{variant}: {outputs}")
            continue
        for name, want in expected.items():
            where = f"{variant}, {name}" if len(expected) > 1 else variant
            got = outputs.get(name)
            if got is None or got.shape != want.shape:
                problems.append(
                    f"{where}: output shape {None if got is None else tuple(got.shape)}"
                )
                continue
            if not want.is_floating_point():
                if not same_values(got, want):
                    problems.append(f"{where}: different values")
                continue
            error = max_difference(got, want)
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
    built, generator = build_call(inputs)
    call = cast_call(built, device, dtype)
    eager = materialized_copy(model, "cpu", inputs).to(device=device, dtype=dtype).eval()
    compiled_model = materialized_copy(model, "cpu", inputs).to(device=device, dtype=dtype).eval()
    sample = _assert_repeatable(eager, call, type(model).__name__, inputs)
    if not sample:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    output_weights = draw_output_weights(sample, generator)
    compiled = torch.compile(compiled_model, backend=backend, dynamic=False)
    expected = run_with_gradients(eager, call, output_weights) if backward else sample
    try:
        if backward:
            got = run_with_gradients(compiled, call, output_weights)  # type: ignore[arg-type]
        else:
            with torch.no_grad():
                got = output_tensors(call_model(compiled, call))  # type: ignore[arg-type]
    except Exception as error:  # the compiler's own failures are many types
        text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if any(name in text or name in repr(error) for name in _COMPILER_MISSING):
            pytest.skip(f"torch.compile(backend={backend!r}) cannot build here: {text}")
        if type(error).__name__ == "BackendCompilerFailed":
            pytest.skip(f"torch.compile(backend={backend!r}) failed to build: {text}")
        raise
    rtol, atol = tolerance(dtype, largest_fan(eager))
    scales = natural_scales(expected)
    errors = relative_errors(got, expected, rtol, atol, scales=scales)
    floors = None
    if max(errors.values(), default=0.0) > 1.0 and backward:
        roundoff = UNIT_ROUNDOFF.get(dtype, 2.0**-24)
        floors = noise_floor(eager, call, output_weights, expected, roundoff)
        errors = relative_errors(got, expected, rtol, atol, floors, scales=scales)
    backend_name = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
    result = ParityResult(
        f"{device} compiled ({backend_name})", dtype, False, rtol, atol, errors, floors, scales
    )
    if result.worst[1] > 1.0:
        raise AssertionError(
            f"{type(model).__name__}: torch.compile(backend={backend_name!r}) differs from eager "
            f"mode: {result}\n  per tensor (error / tolerance): "
            + ", ".join(f"{k} {v:.3g}" for k, v in errors.items())
            + "\n  fix: look for Python side effects or data-dependent control flow in "
            "forward (they are traced once), or report the op to PyTorch."
        )
    return result
