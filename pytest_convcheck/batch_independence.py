"""Batch independence: a model keeps its batch size, and no sample of a batch
influences another sample's output.

:func:`assert_batch_independent` checks both: on meta, that every output's batch
dim equals the input's (``x.view(-1, N)`` at a wrong input size folds samples
together, :func:`batch_kept`); on a CPU copy, that the gradient of one sample's
outputs with respect to every other sample is zero, and, for integer and boolean
inputs (which carry no gradient), that changing the other samples' values leaves
the sample's outputs as they were (cross-talk through batch-wide statistics,
reductions over dim 0, lookups across samples).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from pytest_convcheck.calls import (
    Call,
    build_call,
    call_model,
    call_tensors,
    fresh_call,
    is_lone_tensor,
    map_call,
    output_tensors,
)
from pytest_convcheck.inputs import Input, Inputs, as_inputs
from pytest_convcheck.tolerances import max_difference
from pytest_convcheck.tracing import Trace, format_shape, forward_failures, materialized_copy, trace

__all__ = ["assert_batch_independent", "batch_kept"]


def batch_kept(result: Trace, batch: int) -> bool:
    """Every output of the traced run has ``batch`` as its first dim."""
    shapes = [s for _, s in result.outputs]
    return bool(shapes) and all(len(s) >= 1 and s[0] == batch for s in shapes)


def _batch_changer(result: Trace, batch: int) -> str:
    """The first op that took a tensor with the batch size and returned another."""
    for node in result.nodes:
        if not node.input_shapes or node.output_shape is None:
            continue
        data = [
            shape
            for shape, src in zip(node.input_shapes, node.inputs, strict=False)
            if src is not None
        ] or list(node.input_shapes[:1])
        if any(s and s[0] == batch for s in data) and (
            not node.output_shape or node.output_shape[0] != batch
        ):
            where = node.module or "forward"
            return (
                f"{node.op} in {where!r}: {', '.join(format_shape(s) for s in data)} → "
                f"{format_shape(node.output_shape)}"
            )
    return "an op in forward"


_BATCH_MIXERS = (nn.modules.batchnorm._BatchNorm,)


def assert_batch_independent(
    model: nn.Module,
    input_shape: Any = None,
    *,
    atol: float = 0.0,
    example_inputs: Callable[[], Any] | None = None,
    input: int | str | None = None,
) -> None:
    """Assert that the model keeps the batch size and that no sample of a batch
    influences another sample's output.

    Two checks: (1) on meta, every output's batch dim equals the input's (catches
    ``x.view(-1, N)`` at a wrong input size); (2) on a CPU copy, the gradient of
    sample *i*'s outputs with respect to every other sample is zero (catches
    cross-talk through the batch). BatchNorm in training mode mixes a batch by
    design: those layers are named in a note and checked in eval mode.

    ``input_shape`` is any input description (or ``example_inputs=``, see
    :mod:`pytest_convcheck.inputs`); the batch is the first dim of the primary input
    (``input=``: an index or a name), and every input whose first dim is that batch
    size is batched with it: (2) differentiates every floating one and, since an
    integer or boolean input (token ids, timesteps, masks) carries no gradient,
    changes the other samples' values of each of those and compares the outputs.
    Every output tensor is checked.
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    inputs = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    shape = inputs.shape
    if len(shape) < 2:
        where = "" if inputs.single else f" ({inputs.primary_name()}, the primary input)"
        raise ValueError(f"input_shape {shape}{where} needs a batch dim and a channel dim")
    batch = max(shape[0], 2)
    full = inputs.with_batch(batch)
    name = type(model).__name__
    result = trace(model, full)
    if not batch_kept(result, batch):
        got = ", ".join(format_shape(s) for _, s in result.outputs) or "no tensor"
        raise AssertionError(
            f"{name}: a batch of {batch} went in, output {got} came out — the batch "
            f"dimension changed at {_batch_changer(result, batch)}.\n  Samples of the "
            f"batch are being folded into each other (typically x.view(-1, N) with N "
            f"hard-coded for another input size).\n  fix: flatten per sample with "
            f"x.flatten(1) or x.view(x.size(0), -1), and size the next Linear to match "
            f"(or use nn.LazyLinear).\nPer-layer trace:\n{result.table()}"
        )
    _assert_no_cross_talk(model, full, atol)


def _batched(inputs: Inputs) -> list[bool]:
    """Per input tensor (in the order ``Inputs.build`` draws them): whether its first
    dim is the batch, i.e. whether ``Inputs.with_batch`` resizes it."""
    batch = inputs.shape[0]
    flags: list[bool] = []

    def walk(value: Any) -> None:
        if isinstance(value, Input):
            flags.append(bool(value.shape) and value.shape[0] == batch)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for _, value in inputs.items():
        walk(value)
    return flags


def _forward(work: nn.Module, call: Call, state: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """One forward of our copy under seed 0, from the parameters and buffers it had
    at the start (a forward that updates its own state sees the same state each time),
    on copies of the inputs."""
    with torch.no_grad():
        for tensor, saved in state:
            tensor.copy_(saved)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        return call_model(work, fresh_call(call))


def _assert_no_cross_talk(model: nn.Module, inputs: Inputs, atol: float) -> None:
    # a small batch on CPU is enough: cross-talk does not depend on the batch size
    n = min(inputs.shape[0], 3)
    batched = _batched(inputs)
    small = inputs.with_batch(n)
    work = materialized_copy(model, "cpu", small).double()
    mixers = [k for k, m in work.named_modules() if isinstance(m, _BATCH_MIXERS) and m.training]
    for key, m in work.named_modules():
        if key in mixers:
            m.eval()
    for p in work.parameters():
        p.requires_grad_(False)
    state = [
        (t, t.detach().clone())
        for t in (*work.parameters(), *work.buffers())
        if t.device.type != "meta"
    ]
    call, _ = build_call(small)
    labels = [label for label, _ in call_tensors(call)]
    is_batched = dict(zip(labels, batched, strict=True))
    name = type(model).__name__
    single_input = is_lone_tensor(call)
    note = (
        f"\n  note: {', '.join(mixers)} (BatchNorm in training mode) mix the batch by design "
        f"and were checked in eval mode."
        if mixers
        else ""
    )

    def track(label: str, tensor: torch.Tensor) -> torch.Tensor:
        if is_batched[label] and tensor.is_floating_point():
            return tensor.detach().clone().requires_grad_(True)
        return tensor

    graded = map_call(call, track)
    with (
        forward_failures(model, "the batch check's gradients", torch.float64, "cpu"),
        torch.random.fork_rng(devices=[]),
    ):
        torch.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        out = output_tensors(call_model(work, graded))
    per_sample = {k: t for k, t in out.items() if t.dim() >= 1 and t.shape[0] == n}
    leaves = {k: t for k, t in per_sample.items() if t.is_floating_point() and t.requires_grad}
    floating = [(label, t) for label, t in call_tensors(graded) if t.requires_grad]
    if leaves and floating:
        _gradient_cross_talk(name, leaves, floating, n, atol, note, single_input)
    integers = [
        label
        for label, t in call_tensors(call)
        if is_batched[label] and not t.is_floating_point() and not t.is_complex()
    ]
    if integers:
        base = {k: t.detach() for k, t in per_sample.items()}
        _value_cross_talk(work, small, call, integers, base, state, atol, note)


def _subject(label: str, outputs: Mapping[str, torch.Tensor]) -> str:
    return "the output" if len(outputs) == 1 else label


def _gradient_cross_talk(
    name: str,
    leaves: dict[str, torch.Tensor],
    floating: list[tuple[str, torch.Tensor]],
    n: int,
    atol: float,
    note: str,
    single_input: bool,
) -> None:
    """Fail when the gradient of sample ``i``'s outputs reaches another sample of a
    floating input; names the first output (of several) that does."""
    tensors = [t for _, t in floating]
    for sample in (0, n - 1):
        total = sum(
            (t[sample].sum() for t in leaves.values()), torch.zeros((), dtype=torch.float64)
        )
        grads = torch.autograd.grad(total, tensors, retain_graph=True, allow_unused=True)
        for (label, _), grad in zip(floating, grads, strict=True):
            if grad is None:
                continue
            leak = _leak(grad, sample)
            if leak <= atol:  # a NaN gradient is a dependency too
                continue
            culprit, leak = _leaking_output(leaves, label, dict(floating), sample, atol, leak)
            subject = _subject(culprit, leaves)
            of = "" if single_input else f" of {label}"
            raise AssertionError(
                f"{name}: {subject} of sample {sample} depends on other samples of the "
                f"batch (largest gradient of sample {sample}'s {subject.removeprefix('the ')} "
                f"w.r.t. another sample{of}: {leak:.3g}).\n  Some op mixes the batch: a "
                f"reduction or normalisation over dim 0, a view/reshape that moves data "
                f"across samples, or a module state updated during forward.\n  fix: reduce "
                f"over non-batch dims only."
                f"{note}"
            )


def _leak(grad: torch.Tensor, sample: int) -> float:
    """The largest gradient outside ``sample`` (NaN where one is NaN: a dependency too,
    so compare with ``not leak <= atol``)."""
    others = torch.cat([grad[:sample], grad[sample + 1 :]])
    return others.abs().max().item() if others.numel() else 0.0


def _leaking_output(
    leaves: dict[str, torch.Tensor],
    label: str,
    inputs: dict[str, torch.Tensor],
    sample: int,
    atol: float,
    total_leak: float,
) -> tuple[str, float]:
    """Which output leaks: the first whose own gradient reaches another sample."""
    if len(leaves) == 1:
        return next(iter(leaves)), total_leak
    for key, t in leaves.items():
        (grad,) = torch.autograd.grad(
            t[sample].sum(), inputs[label], retain_graph=True, allow_unused=True
        )
        if grad is not None and not (leak := _leak(grad, sample)) <= atol:
            return key, leak
    return "the outputs", total_leak


def _value_cross_talk(
    work: nn.Module,
    small: Inputs,
    call: Call,
    integers: list[str],
    base: dict[str, torch.Tensor],
    state: list[tuple[torch.Tensor, torch.Tensor]],
    atol: float,
    note: str,
) -> None:
    """Integer and boolean inputs carry no gradient: change the values of every
    sample but one of each and fail when that sample's outputs change."""
    name = type(work).__name__
    n = small.shape[0]
    given = dict(call_tensors(call))
    redrawn = [dict(call_tensors(build_call(small, seed)[0])) for seed in (1, 2, 3)]
    skipped = []
    for label in integers:
        original = given[label]
        for sample in (0, n - 1):
            keep = torch.zeros(original.shape[0], dtype=torch.bool)
            keep[sample] = True
            keep = keep.reshape(-1, *([1] * (original.dim() - 1)))
            candidates = (torch.where(keep, original, other[label]) for other in redrawn)
            changed = next((c for c in candidates if not torch.equal(c, original)), None)
            if changed is None:
                skipped.append(label)
                break
            swapped = map_call(call, _swap(label, changed))
            with forward_failures(work, "the batch check's perturbation", torch.float64, "cpu"):
                got = output_tensors(_forward(work, swapped, state))
            for key, want in base.items():
                found = got.get(key)
                if found is None or found.shape != want.shape:
                    continue
                delta, scale = _sample_change(found[sample], want[sample])
                if not delta <= max(atol, 1e-10 * max(1.0, scale)):
                    kind = str(original.dtype).removeprefix("torch.")
                    which = "the input" if label == "input" else label
                    raise AssertionError(
                        f"{name}: {_subject(key, base)} of sample {sample} depends on other "
                        f"samples of the batch: it changes by {delta:.3g} when only the "
                        f"values of the other samples of {which} change ({kind}, so no "
                        f"gradient: the check changed its values).\n  Some op mixes the "
                        f"batch: a reduction or normalisation over dim 0, an index or "
                        f"embedding looked up across samples, or a view/reshape that moves "
                        f"data across samples.\n  fix: reduce over non-batch dims only, and "
                        f"index per sample.{note}"
                    )
    if skipped:
        warnings.warn(
            f"{name}: the batch check left out {', '.join(dict.fromkeys(skipped))}: an "
            f"integer input whose range holds one value cannot be changed, and carries no "
            f"gradient, so its cross-talk was not checked.",
            stacklevel=4,
        )


def _swap(label: str, changed: torch.Tensor) -> Callable[[str, torch.Tensor], torch.Tensor]:
    """A ``map_call`` function putting ``changed`` in place of the input ``label``."""

    def swap(path: str, tensor: torch.Tensor) -> torch.Tensor:
        return changed if path == label else tensor

    return swap


def _sample_change(found: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """max |found − want| (an integer output: 0 or ∞) and max |want|."""
    if not want.is_floating_point():
        return (0.0 if torch.equal(found, want) else math.inf), 1.0
    if not want.numel():
        return 0.0, 1.0
    scale = float(want.abs().max().nan_to_num(nan=0.0, posinf=0.0))
    return max_difference(found.double(), want.double()), scale
