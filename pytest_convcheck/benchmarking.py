"""Benchmarks of conv layers and models on top of pytest-benchmark: the work a
forward (and backward) pass does by the rule table, the rate achieved, and that
rate as a fraction of this machine's measured matmul peak.

**FLOPs** (:func:`benchmark_flops`): the sum over every op of the model's meta
trace of its rule-table count (:meth:`pytest_convcheck.layers.Spec.flops`): a
multiply-accumulate is 2 FLOPs, a bias add 1, a pooling window element 1.
With ``backward=True`` each op's backward count is added
(:meth:`~pytest_convcheck.layers.Spec.backward_flops`): for a conv or linear
layer the input gradient and the weight gradient take the forward's MACs each
and the bias gradient one add per output element, so forward + backward is
about 3× the forward (Kaplan et al., arXiv 2001.08361, §2.1: "6N" per token
against "2N" forward). ``torch.utils.flop_counter`` counts only the
multiply-accumulates of convs and matmuls (no bias, no pooling); the tests check
the two counts against each other layer by layer.

**GFLOP/s** = FLOPs / mean seconds per call. **Roofline** = GFLOP/s ÷ the peak
of this device and dtype, the best rate of a square matmul measured once per
process (:func:`matmul_peak`) — the compute roof of Williams, Waterman &
Patterson, "Roofline", CACM 52(4), 2009. A conv far below 1 is memory-bound or
runs a poor kernel; depthwise convs are the classic case.

The timed call runs on a copy of the model on the target device: the user's
model keeps its parameters, buffers, gradients, device, mode and hooks. Forward
runs under ``torch.no_grad()``; forward + backward computes the gradients of the
input and of every parameter that requires one with ``torch.autograd.grad``
(nothing accumulates into ``.grad``). On CUDA each call ends with
``torch.cuda.synchronize()``, so the timer sees the kernels, not their launch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_convcheck.calls import call_tensors, map_call, output_tensors
from pytest_convcheck.errors import ShapeError
from pytest_convcheck.inputs import Inputs, as_inputs
from pytest_convcheck.tracing import materialized_copy, trace

__all__ = [
    "ConvBenchmark",
    "MatmulPeak",
    "benchmark_flops",
    "environment",
    "forget_peaks",
    "matmul_peak",
    "measured_peaks",
    "prepare_step",
    "run_conv_benchmark",
]


@dataclass(frozen=True)
class MatmulPeak:
    """The best rate of an ``size × size`` matmul on ``device`` in ``dtype``."""

    device: str
    dtype: str
    size: int
    gflops: float
    tf32: bool | None  # CUDA float32 only: whether matmuls may use TF32

    def __str__(self) -> str:
        tf32 = "" if self.tf32 is None else f", TF32 {'on' if self.tf32 else 'off'}"
        return (
            f"matmul peak on {self.device} {self.dtype}: {self.gflops:,.0f} GFLOP/s "
            f"({self.size}×{self.size}, best of 5{tf32})"
        )


@dataclass(frozen=True)
class ConvBenchmark:
    """What one conv benchmark measured. ``seconds``, ``gflops`` and ``roofline``
    are ``None`` when pytest-benchmark did not time the call (``--benchmark-disable``,
    or under pytest-xdist, where it turns itself off)."""

    flops: int
    seconds: float | None
    gflops: float | None
    roofline: float | None
    peak: MatmulPeak | None
    extra_info: Mapping[str, Any]


_PEAKS: dict[tuple[str, str], MatmulPeak] = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: str = "cpu", dtype: torch.dtype = torch.float32) -> MatmulPeak:
    """The compute roof of ``device`` for ``dtype``: the best of 5 timed ``n × n``
    matmuls (``2n³`` FLOPs each), ``n`` doubled from 512 until one takes 20 ms (at
    most 4096 on CPU, 16384 elsewhere). Measured once per process and cached."""
    key = (str(device), str(dtype).removeprefix("torch."))
    if key in _PEAKS:
        return _PEAKS[key]
    target = torch.device(device)
    limit = 4096 if target.type == "cpu" else 16384
    size = 512
    generator = torch.Generator().manual_seed(0)  # the global generator stays untouched
    while True:
        a = torch.randn(size, size, generator=generator, dtype=dtype).to(target)
        b = torch.randn(size, size, generator=generator, dtype=dtype).to(target)
        a @ b
        _sync(target)
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            _sync(target)
            best = min(best, time.perf_counter() - start)
        if best >= 0.02 or size >= limit:
            break
        size *= 2
    tf32 = (
        bool(torch.backends.cuda.matmul.allow_tf32)
        if target.type == "cuda" and dtype == torch.float32
        else None
    )
    peak = MatmulPeak(key[0], key[1], size, 2 * size**3 / best / 1e9, tf32)
    _PEAKS[key] = peak
    return peak


def measured_peaks() -> list[MatmulPeak]:
    """The peaks measured in this process so far (for the end-of-run line)."""
    return list(_PEAKS.values())


def forget_peaks() -> None:
    """Forget the measured peaks: the next :func:`matmul_peak` measures again (as a
    fresh process would)."""
    _PEAKS.clear()


def environment(device: str) -> str:
    """What timings may be compared across: the device kind and, for a GPU, its
    name. Saved with every benchmark; a comparison across environments is refused."""
    target = torch.device(device)
    if target.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(target)}"
    return target.type


def _described(inputs: Inputs) -> str:
    """The inputs as messages name them: ``(2, 3, 8, 8)`` for one shape."""
    return str(tuple(inputs.shape)) if inputs.single else inputs.describe()


def benchmark_flops(
    model: nn.Module,
    input_shape: Any = None,
    *,
    backward: bool = False,
    example_inputs: Callable[[], Any] | None = None,
) -> int:
    """FLOPs of one forward (``backward=True``: forward + backward) pass of ``model``
    on ``input_shape`` (any input description, or ``example_inputs=``: see
    :mod:`pytest_convcheck.inputs`), from the rule table over one meta trace (see the
    module docstring for what is counted). Raises :class:`~pytest_convcheck.ShapeError`
    when the model rejects the shape."""
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    result = trace(model, inputs)
    if result.disagreements:
        raise ShapeError(
            f"{type(model).__name__} on input {_described(inputs)}: the rule table and torch's "
            f"meta kernels disagree, so neither the FLOPs nor the run can be trusted:\n  "
            + "\n  ".join(result.disagreements)
        )
    total = sum(node.flops() for node in result.nodes)
    if backward:
        total += sum(node.backward_flops() for node in result.nodes)
    return total


def _dtype(model: nn.Module, dtype: torch.dtype | None) -> torch.dtype:
    """``dtype``, else the model's floating-point parameter dtype, else float32."""
    if dtype is not None:
        return dtype
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _memory_format(channels_last: bool, rank: int, label: str) -> torch.memory_format:
    if not channels_last:
        return torch.contiguous_format
    if rank == 4:
        return torch.channels_last
    if rank == 5:
        return torch.channels_last_3d
    raise ValueError(
        f"{label}: channels_last needs a 4-d (N, C, H, W) or 5-d (N, C, D, H, W) input, got "
        f"{rank}-d.\n  fix: drop channels_last=True for this shape (1-d convs have no "
        f"channels-last layout in torch)."
    )


def _check_channels_last(inputs: Inputs, label: str) -> None:
    """``channels_last`` needs a floating input of rank 4 or 5 to lay out."""
    if inputs.single:
        _memory_format(True, len(inputs.shape), label)
        return
    ranks = [len(item.shape) for _, item in inputs.tensors() if item.floating and len(item.shape)]
    if not any(rank in (4, 5) for rank in ranks):
        raise ValueError(
            f"{label}: channels_last needs a floating 4-d (N, C, H, W) or 5-d (N, C, D, H, W) "
            f"input, and {inputs.describe()} has none.\n  fix: drop channels_last=True for "
            f"these inputs (1-d convs have no channels-last layout in torch)."
        )


def _channels_last_model(model: nn.Module) -> nn.Module:
    """4-d parameters and buffers channels-last, 5-d ones channels-last-3d."""

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() in (4, 5):
            return tensor.contiguous(memory_format=_memory_format(True, tensor.dim(), ""))
        return tensor

    # Module._apply is untyped in torch's stubs: its type, given where it is bound
    apply: Callable[[Callable[[torch.Tensor], torch.Tensor]], nn.Module] = model._apply
    return apply(convert)


def _laid_out(label: str, tensor: torch.Tensor) -> torch.Tensor:
    """A floating 4-d or 5-d input channels-last(-3d); any other input as it is."""
    if tensor.is_floating_point() and tensor.dim() in (4, 5):
        return tensor.contiguous(memory_format=_memory_format(True, tensor.dim(), label))
    return tensor


def prepare_step(
    model: nn.Module,
    input_shape: Any = None,
    *,
    backward: bool = False,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    seed: int = 0,
    example_inputs: Callable[[], Any] | None = None,
) -> Callable[[], None]:
    """The call to time: one forward (under ``no_grad``) or one forward + backward
    of a copy of ``model`` on ``device``, on fixed random inputs built from
    ``input_shape`` (any input description, or ``example_inputs=``: see
    :mod:`pytest_convcheck.inputs`; floating inputs in ``dtype`` unless described
    with their own, integer ones as described); synchronised on CUDA. With
    ``channels_last``, the weights and every floating 4-d and 5-d input are
    channels-last. Forward + backward takes the gradients of every floating input and
    every parameter that requires one, through every floating output. The user's
    model is not touched."""
    label = type(model).__name__
    target = torch.device(device)
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    if channels_last:
        _check_channels_last(inputs, label)
    dtype = _dtype(model, dtype)
    try:
        net = materialized_copy(model, str(target), inputs, dtype)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(
            f"{label}: cannot be copied for benchmarking ({type(error).__name__}: {error}); "
            f"the benchmark runs on a copy so that your model is left as it is.\n  fix: make "
            f"the model deep-copyable (no open files, generators or locks as attributes)."
        ) from error
    net = net.to(dtype=dtype)
    if channels_last:
        net = _channels_last_model(net)
    call = inputs.build(dtype, target, seed=seed)
    if channels_last:
        call = map_call(call, _laid_out)
    args, kwargs = call

    if not backward:

        def forward() -> None:
            with torch.no_grad():
                net(*args, **kwargs)
            _sync(target)

        return forward

    for _, tensor in call_tensors(call):
        if tensor.is_floating_point():
            tensor.requires_grad_(True)
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    leaves = [
        *(t for _, t in call_tensors(call) if t.requires_grad),
        *(p for p in net.parameters() if p.requires_grad),
    ]
    outputs = _differentiable(net(*args, **kwargs))
    if not outputs:
        raise ValueError(
            f"{label}: no output of forward depends on the input or a parameter that "
            f"requires grad, so there is no backward pass to time.\n  fix: benchmark with "
            f"backward=False."
        )
    grads = [torch.randn(o.shape, generator=generator).to(o) for o in outputs]

    def forward_backward() -> None:
        outs = _differentiable(net(*args, **kwargs))
        torch.autograd.grad(outs, leaves, grads, allow_unused=True)
        _sync(target)

    return forward_backward


def _differentiable(value: Any) -> list[torch.Tensor]:
    """The output tensors that a backward can start from."""
    return [t for t in output_tensors(value).values() if t.requires_grad]


def _own_random_streams(target: torch.device) -> Any:
    """A forward that draws random numbers (dropout in training mode) draws them
    from a forked generator: the process's random streams are as they were."""
    cuda = [target.index or torch.cuda.current_device()] if target.type == "cuda" else []
    return torch.random.fork_rng(devices=cuda)


def run_conv_benchmark(
    benchmark: Any,
    model: nn.Module,
    input_shape: Any = None,
    *,
    backward: bool = False,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    warmup: float = 0.2,
    example_inputs: Callable[[], Any] | None = None,
) -> ConvBenchmark:
    """Time ``model`` (an ``nn.Module``, one layer or a whole model) on
    ``input_shape`` (any input description, or ``example_inputs=``: see
    :mod:`pytest_convcheck.inputs`) with pytest-benchmark's ``benchmark`` fixture and
    record in its ``extra_info``: ``input_shape`` (the primary input's), ``inputs``
    (for a forward with several: every input described), ``flops``, ``gflops``,
    ``roofline``, ``peak_gflops``, ``environment``, ``device``, ``dtype``, ``layout``,
    ``backward``, ``torch``, ``threads`` (intra-op threads).

    Before timing, the call runs for ``warmup`` seconds, at least 3 times: first
    calls build kernels and caches (oneDNN primitives, allocator pools, cuDNN
    plans). Under ``--benchmark-disable`` (and under xdist) pytest-benchmark runs
    it once, untimed, without warm-up: then only ``flops`` is recorded."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"conv_benchmark needs an nn.Module (a layer or a model), got "
            f"{type(model).__name__}.\n  fix: wrap a function in an nn.Module whose forward "
            f"calls it."
        )
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    flops = benchmark_flops(model, inputs, backward=backward)
    target = torch.device(device)
    with _own_random_streams(target):
        step = prepare_step(
            model,
            inputs,
            backward=backward,
            device=device,
            dtype=dtype,
            channels_last=channels_last,
        )
    used_dtype = _dtype(model, dtype)
    info: dict[str, Any] = {
        "input_shape": list(inputs.shape),
        "flops": flops,
        "backward": backward,
        "device": str(target),
        "environment": environment(device),
        "dtype": str(used_dtype).removeprefix("torch."),
        "layout": "channels_last" if channels_last else "contiguous",
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
    }
    if not inputs.single:
        info["inputs"] = inputs.describe()
    with _own_random_streams(target):
        if getattr(benchmark, "enabled", True):
            calls, start = 0, time.perf_counter()
            while calls < 3 or time.perf_counter() - start < warmup:
                step()
                calls += 1
        benchmark(step)
    benchmark.extra_info.update(info)
    stats = getattr(benchmark, "stats", None)
    if not stats:
        return ConvBenchmark(flops, None, None, None, None, benchmark.extra_info)
    seconds = float(stats.stats.mean)
    gflops = flops / seconds / 1e9
    peak = matmul_peak(str(target), used_dtype)
    roofline = gflops / peak.gflops
    benchmark.extra_info.update(
        gflops=round(gflops, 3), roofline=round(roofline, 4), peak_gflops=round(peak.gflops, 1)
    )
    return ConvBenchmark(flops, seconds, gflops, roofline, peak, benchmark.extra_info)
