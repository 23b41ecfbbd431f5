"""Checkerboard artifacts: the check and its four views, from cheapest to most
empirical.

* **structural** — uneven kernel overlap of upsampling layers, per layer and
  composed from the model input (:mod:`pytest_convcheck.checkerboard_overlap`,
  :func:`checkerboard`);
* **weights** — current weights that respond unevenly per output phase to a
  constant input, even where the overlap is even (the same module);
* **output** — stride-frequency energy in the model's output on a smooth input
  (:mod:`pytest_convcheck.checkerboard_spectra`, :func:`output_score`);
* **gradient** — the same in the gradient with respect to the input
  (:func:`gradient_score`).

:func:`assert_no_checkerboard` fails on the view it is asked for, with the layers
at fault and a fix: a kernel that fits its stride where the overlap is uneven,
ICNR initialisation (Aitken et al. 2017) or resize-convolution where it is even.
The analyses' names are re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from pytest_convcheck.checkerboard_overlap import (
    EVEN_TOLERANCE,
    WEIGHT_THRESHOLD,
    CheckerboardReport,
    Interpolation,
    LayerTile,
    PhaseCounts,
    PhaseWeights,
    checkerboard,
    format_imbalance,
    overlap_counts,
    phase_counts,
    report_from_trace,
)
from pytest_convcheck.checkerboard_spectra import (
    SPECTRAL_THRESHOLD,
    SpectralScore,
    gradient_score,
    output_score,
    smooth_input,
    stride_energy,
)
from pytest_convcheck.inputs import as_inputs

__all__ = [
    "EVEN_TOLERANCE",
    "ICNR_FIX",
    "SPECTRAL_THRESHOLD",
    "WEIGHT_THRESHOLD",
    "CheckerboardReport",
    "Interpolation",
    "LayerTile",
    "PhaseCounts",
    "PhaseWeights",
    "SpectralScore",
    "assert_no_checkerboard",
    "checkerboard",
    "format_imbalance",
    "geometry_fix",
    "gradient_score",
    "output_score",
    "overlap_counts",
    "phase_counts",
    "report_from_trace",
    "smooth_input",
    "stride_energy",
]


def _rounded(counts: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(f"{c:.4g}") for c in axis) for axis in counts)


_FIXES = (
    "  fix: use a kernel size divisible by the stride (e.g. ConvTranspose2d(k=4, s=2, p=1)), "
    "or resize-convolution (nn.Upsample(scale_factor=s, mode='nearest') then a stride-1 conv), "
    "or initialise sub-pixel convolutions with ICNR (Aitken et al. 2017)."
)

ICNR_FIX = (
    "  fix: the overlap is even, so the weights paint the pattern: initialise the upsampler "
    "with ICNR (Aitken et al. 2017: every output phase starts from the same kernel) or "
    "another phase-even initialisation, or use resize-convolution (nn.Upsample(scale_factor="
    "s, mode='nearest') then a stride-1 conv); training with the pattern in the loss also "
    "removes it."
)
"""The fix when the overlap is even and the pattern comes from the weights."""


def geometry_fix(board: CheckerboardReport) -> str:
    """The fix for uneven overlap, naming the uneven layers and a kernel that fits."""
    uneven = [t for t in board.layers if not t.even]
    if not uneven:
        return ICNR_FIX
    names = ", ".join(
        f"{t.name} (kernel {t.kernel[-1]}, stride {t.stride[-1]}: try kernel "
        f"{max(t.stride[-1], t.stride[-1] * round(t.kernel[-1] / t.stride[-1]))})"
        for t in uneven[:3]
    )
    return (
        f"  fix: make the kernel of {names} a multiple of its stride (e.g. kernel 4, stride 2, "
        f"padding 1), or use resize-convolution (nn.Upsample then a stride-1 conv)."
    )


def _fix_for(model: nn.Module, inputs: Any) -> str:
    """ICNR when every upsampling layer overlaps evenly, else the geometry fix."""
    try:
        board = checkerboard(model, inputs)
    except Exception:  # the fix line must never hide the finding
        return _FIXES
    if not board.layers:
        return _FIXES
    return ICNR_FIX if not board.structural else geometry_fix(board)


def assert_no_checkerboard(
    model: nn.Module,
    input_shape: Any = None,
    *,
    kind: str = "structural",
    example_inputs: Any = None,
    input: int | str | None = None,
) -> CheckerboardReport | SpectralScore:
    """Assert that the model does not produce checkerboard artifacts of ``kind``:
    ``"structural"`` (uneven kernel overlap), ``"weights"`` (current weights respond
    unevenly per phase), ``"output"`` (stride-frequency energy in the output on a
    smooth input), ``"gradient"`` (the same in the input gradient)."""
    __tracebackhide__ = True  # pytest shows the caller's line
    name = type(model).__name__
    if input_shape is not None or example_inputs is not None:
        input_shape = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    if kind in ("structural", "weights"):
        report = checkerboard(model, input_shape)
        if kind == "structural" and report.structural:
            bad = [t for t in report.layers if not t.even or t.composed_ratio > 1 + EVEN_TOLERANCE]
            lines = [
                f"{name}: uneven kernel overlap — a structural checkerboard, imbalance "
                f"×{format_imbalance(report.imbalance)}",
                "  (expected every output phase to receive the same overlap, imbalance 1; "
                "imbalance: the largest max/min of per-phase overlap over each upsampling "
                "layer's own tile, the tile composed from the input to it, and the output's)",
            ]
            lines += [f"  {t.describe()}" for t in bad]
            if not math.isclose(report.output_ratio, report.imbalance, rel_tol=EVEN_TOLERANCE):
                lines.append(
                    f"  the composed upsampling chain at the output: per-axis phase totals "
                    f"{_rounded(report.output_counts)}, imbalance "
                    f"{format_imbalance(report.output_ratio)}"
                )
            lines.append(
                "  (taps per phase r: #{t < k : d·t ≡ r mod s}; even exactly when s | k "
                "and gcd(d, s) = 1)"
            )
            lines.append(_FIXES)
            raise AssertionError("\n".join(lines))
        if kind == "weights" and report.weight_score > WEIGHT_THRESHOLD:
            bad = [t for t in report.layers if t.weights and t.weights.score > WEIGHT_THRESHOLD]
            lines = [
                f"{name}: the current weights respond unevenly per output phase to a constant "
                f"input — they paint a checkerboard even where the overlap is even."
            ]
            for t in bad:
                assert t.weights is not None
                worst = int(
                    (t.weights.responses.max(1).values - t.weights.responses.min(1).values).argmax()
                )
                row = ", ".join(f"{v:.3g}" for v in t.weights.responses[worst].tolist())
                lines.append(
                    f"  {t.describe()}; spread score {t.weights.score:.3g} > {WEIGHT_THRESHOLD} "
                    f"(channel {worst}: per-phase response {row})"
                )
            lines.append(
                "  fix: initialise with ICNR (every phase gets the same kernel), or use "
                "resize-convolution; an even overlap alone does not prevent this."
            )
            raise AssertionError("\n".join(lines))
        return report
    if kind in ("output", "gradient"):
        score = (
            output_score(model, input_shape)
            if kind == "output"
            else gradient_score(model, input_shape)
        )
        if score.score > SPECTRAL_THRESHOLD:
            where = "the output on a smooth input" if kind == "output" else "the input gradient"
            raise AssertionError(
                f"{name}: {score.score:.1%} of the spectral energy of {where} sits at the "
                f"stride frequencies m·N/P (P = {score.period}), above "
                f"{SPECTRAL_THRESHOLD:.0%}: a checkerboard pattern (with the model's current "
                f"weights).\n{_fix_for(model, input_shape)}"
            )
        return score
    raise ValueError(
        f"unknown checkerboard kind {kind!r}; use 'structural', 'weights', 'output' or 'gradient'"
    )
