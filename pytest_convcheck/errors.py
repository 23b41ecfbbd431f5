"""Exceptions of pytest-convcheck, and :func:`problem`, the standard message they
carry. Importing this module never imports torch.

The user-facing exceptions live here; the modules that raise them re-export them
under their old homes (``pytest_convcheck.tracing.ModelRunError``,
``pytest_convcheck.devices.DeviceUnavailable``,
``pytest_convcheck.benchmark_comparison.ComparisonError``), so every import keeps
working and names one class.
"""

from __future__ import annotations

__all__ = [
    "ComparisonError",
    "ConvcheckConfigError",
    "DeviceUnavailable",
    "MeasurementRefused",
    "ModelRunError",
    "ModelStateError",
    "ShapeError",
    "problem",
]


class ShapeError(ValueError):
    """An input shape that a layer (or a whole model) cannot take.

    Raised exactly where torch would reject the input. The message names the
    layer, the formula with the numbers filled in, and what to change.
    """


class ConvcheckConfigError(ValueError):
    """A ``[tool.convcheck]`` section or ``--convcheck-*`` option that is malformed."""


class ModelStateError(ValueError):
    """A model whose state keeps a check from running (e.g. meta tensors, which have
    shapes but no values). The message names the model, the tensor and the fix."""


class MeasurementRefused(ValueError):
    """A measurement that would exceed its budget (memory) or cannot measure what it
    is asked to. The message says what it would need, why, and what to do instead."""


class ModelRunError(RuntimeError):
    """The model's own code failed (not a torch op rejecting a shape)."""


class DeviceUnavailable(RuntimeError):
    """The requested device does not exist here; the message says why (a skip reason)."""


class ComparisonError(ValueError):
    """The runs cannot be compared; the message says why and what to do."""


def problem(label: str | None, what: str, *, fix: str, cause: str | None = None) -> str:
    """The standard message of a problem, as every error of the plugin writes it::

        LABEL: WHAT
          cause: CAUSE
          fix: FIX

    ``label`` names where it happened (a layer, ``MaxPool2d 'encoder.pool'``; a
    model); ``None`` when the caller adds it. ``what`` says what is wrong, with the
    formula and its numbers filled in where there is one (``out = floor((in + 2p −
    d(k−1) − 1)/s) + 1 = floor((3 + 0 − 4 − 1)/1) + 1 = -1``), ending with its own
    punctuation. ``cause`` (optional) says the likely reason, ``fix`` what to
    change. No line is wrapped; the text is the message, verbatim."""
    lines = [f"{label}: {what}" if label else what]
    if cause is not None:
        lines.append(f"  cause: {cause}")
    lines.append(f"  fix: {fix}")
    return "\n".join(lines)
