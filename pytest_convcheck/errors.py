"""Exceptions of pytest-convcheck. Importing this module never imports torch."""

from __future__ import annotations


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
