"""Spectral checkerboard measurement: the share of a signal's energy at the stride
frequencies, with the model's current weights.

Two views, each run on a CPU copy of the model in eval mode:

* **output** — the model's output on a smooth input (:func:`smooth_input`), and
  the share of its spectral energy at the stride frequencies ``m·N/P``
  (:func:`output_score`);
* **gradient** — the same measure on the gradient with respect to the input
  (:func:`gradient_score`): strided convolutions and max-pooling put the pattern
  there.

:func:`stride_energy` is the measure itself; the period ``P`` of each axis comes
from the trace (the composed phase counts of
:mod:`pytest_convcheck.checkerboard_overlap`, or the strides of the field's maps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_convcheck.checkerboard_overlap import phase_counts
from pytest_convcheck.inputs import as_inputs
from pytest_convcheck.tracing import (
    MODEL_INPUT,
    Trace,
    first_tensor,
    forward_failures,
    materialized_copy,
    trace,
)

__all__ = [
    "SPECTRAL_THRESHOLD",
    "SpectralScore",
    "gradient_score",
    "output_score",
    "smooth_input",
    "stride_energy",
]

SPECTRAL_THRESHOLD = 0.02
"""``kind="output"``/``"gradient"`` fail when more than 2% of the non-DC spectral
energy sits at the stride frequencies. Calibrated in ``tests/test_checkerboard.py``:
artifact-free upsamplers (resize-convolution with random weights, ICNR sub-pixel,
flat k=4/s=2 and k=2/s=2 transposed convs, a conv–pool encoder upsampled by nearest
then bilinear interpolation) stay below 1%; flat k=3/s=2 transposed convs, one-hot
kernels, random sub-pixel convs and an encoder–decoder whose two transposed convs
have kernel 5 and stride 2 score above 5%."""


@dataclass(frozen=True)
class SpectralScore:
    """Share of non-DC spectral energy at the stride frequencies ``m·N/P``."""

    score: float
    period: tuple[int, ...]
    spectrum: torch.Tensor | None = None

    def save_png(self, path: str | Path, signal: torch.Tensor | None = None) -> Path:
        """The log power spectrum with the stride frequencies marked ×, next to
        ``signal`` when given (the output or gradient it was measured on), with
        colour bars, axis labels and a caption holding the score (needs the
        ``plots`` extra: matplotlib; see :func:`pytest_convcheck.pictures.spectrum_picture`)."""
        from pytest_convcheck.pictures import spectrum_picture

        picture = spectrum_picture(
            signal, self, kind="output", model="the model", threshold=SPECTRAL_THRESHOLD
        )
        return picture.save(path)


def smooth_input(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A smooth test image: a constant plus a few low-frequency cosines per axis."""
    spatial = len(shape) - 2
    grids = torch.meshgrid(
        *[torch.linspace(0.0, 1.0, n, dtype=torch.float64) for n in shape[2:]], indexing="ij"
    )
    pattern = torch.ones(shape[2:], dtype=torch.float64)
    for axis, grid in enumerate(grids):
        pattern = pattern + 0.3 * torch.cos(2 * math.pi * (axis + 1) * grid / 2)
    if spatial == 0:
        return torch.ones(shape, dtype=dtype)
    return pattern.expand(tuple(shape)).to(dtype).clone()


def stride_energy(signal: torch.Tensor, period: Sequence[int]) -> SpectralScore:
    """Share of the non-DC energy of ``signal`` (…, *spatial) at the frequencies
    ``m·N/P`` (m ≥ 1) of any axis whose period P > 1, after a Hann window on every
    spatial axis (so that the image's borders do not leak onto those frequencies).
    Axes holding fewer than 4 periods are skipped: their "stride frequencies" cover
    most of the spectrum (a resampling by an odd ratio, e.g. 31 → 16 → 31, has
    P = 31)."""
    spatial = len(period)
    if spatial == 0 or signal.dim() < spatial:
        return SpectralScore(0.0, tuple(period))
    period = tuple(
        p if p <= n // 4 else 1 for p, n in zip(period, signal.shape[-spatial:], strict=True)
    )
    if all(p <= 1 for p in period):
        return SpectralScore(0.0, tuple(period))
    crop = [n - n % p if p > 1 else n for n, p in zip(signal.shape[-spatial:], period, strict=True)]
    view = signal
    for axis, size in enumerate(crop):
        view = view.narrow(view.dim() - spatial + axis, 0, size)
    view = view.to(torch.float64)
    view = view - view.mean(dim=tuple(range(-spatial, 0)), keepdim=True)
    for axis, size in enumerate(crop):
        # a Hann window: without it the jump where the image wraps around (and the
        # zero padding at its borders) leaks energy onto every frequency, and a
        # resize-convolution read 2–10 % at the stride frequencies
        window = torch.hann_window(size, periodic=False, dtype=torch.float64)
        shape = [1] * view.dim()
        shape[view.dim() - spatial + axis] = size
        view = view * window.reshape(shape)
    spectrum = torch.fft.fftn(view, dim=tuple(range(-spatial, 0))).abs() ** 2
    spectrum = spectrum.reshape(-1, *spectrum.shape[-spatial:]).sum(0)
    total = float(spectrum.sum())
    if total <= 0.0:
        return SpectralScore(0.0, tuple(period), spectrum)
    mask = torch.zeros(spectrum.shape, dtype=torch.bool)
    for axis, (n, p) in enumerate(zip(crop, period, strict=True)):
        if p <= 1:
            continue
        step = n // p
        hits = torch.zeros(n, dtype=torch.bool)
        hits[step::step] = True
        shape = [1] * spatial
        shape[axis] = n
        mask = mask | hits.reshape(shape).expand(spectrum.shape)
    return SpectralScore(float(spectrum[mask].sum()) / total, tuple(period), spectrum)


def _output_period(result: Trace) -> tuple[int, ...]:
    counts = phase_counts(result)
    out = result.output_nodes[0] if result.output_nodes else MODEL_INPUT
    axes = counts.get(out)
    return tuple(c.period for c in axes) if axes else ()


def output_score(model: nn.Module, input_shape: Any) -> SpectralScore:
    """Stride-frequency energy of the model's output on a smooth input (CPU copy, eval;
    a smooth primary input, the others drawn as described)."""
    inputs = as_inputs(input_shape)
    shape = inputs.shape
    period = _output_period(trace(model, inputs))
    work = materialized_copy(model, "cpu", inputs).float().eval()
    args, kwargs = inputs.build(torch.float32, "cpu", primary=smooth_input(shape))
    with (
        forward_failures(model, "the output spectrum", torch.float32, "cpu"),
        torch.no_grad(),
        torch.random.fork_rng(devices=[]),
    ):
        out = first_tensor(work(*args, **kwargs))
    if out is None:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    return stride_energy(out, period[-(out.dim() - 2) :] if out.dim() > 2 else ())


def gradient_score(model: nn.Module, input_shape: Any) -> SpectralScore:
    """Stride-frequency energy of the input gradient of a smooth loss on the output
    (CPU copy, eval): strided convolutions and max-pooling put the pattern here."""
    from pytest_convcheck.fields import node_maps

    inputs = as_inputs(input_shape)
    shape = inputs.shape
    maps, _ = node_maps(trace(model, inputs))
    spatial = len(shape) - 2
    period = [1] * spatial
    for axes in maps.values():
        for axis, axis_map in enumerate(axes):
            stride = Fraction(axis_map.advance, axis_map.period)
            if not axis_map.whole and stride.denominator == 1:
                period[axis] = max(period[axis], int(stride))
    work = materialized_copy(model, "cpu", inputs).float().eval()
    x = smooth_input(shape).requires_grad_(True)
    args, kwargs = inputs.build(torch.float32, "cpu", primary=x)
    with (
        forward_failures(model, "the gradient spectrum", torch.float32, "cpu"),
        torch.random.fork_rng(devices=[]),
    ):
        out = first_tensor(work(*args, **kwargs))
    if out is None:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    weight = smooth_input(tuple(out.shape)) if out.dim() > 2 else torch.ones_like(out)
    (grad,) = torch.autograd.grad((out * weight).sum(), x)
    return stride_energy(grad, tuple(period))
