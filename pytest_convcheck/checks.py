"""The checks ``pytest --convcheck`` runs on a configured model: one function per
check name, in :data:`CHECKS`. Each takes the model and its :class:`ModelConfig`
and raises ``AssertionError`` (or :class:`ShapeError`) with a message that names
the model, the layer and the fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from pytest_convcheck.checkerboards import assert_no_checkerboard
from pytest_convcheck.config import ModelConfig
from pytest_convcheck.errors import ConvcheckConfigError
from pytest_convcheck.fields import assert_receptive_field
from pytest_convcheck.shapes import assert_batch_independent, assert_output_shape
from pytest_convcheck.tracing import trace
from pytest_convcheck.weight_sharing import assert_no_accidental_sharing


def build_model(config: ModelConfig) -> nn.Module:
    """Import ``config.factory`` and call it; the result must be an ``nn.Module``."""
    module_name, _, attr = config.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: cannot import {module_name!r} for factory "
            f"{config.factory!r} ({error}).\n  fix: install the package (pip install -e .) or "
            f"add its folder to pytest's 'pythonpath' ini option."
        ) from None
    factory = module
    for part in attr.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise ConvcheckConfigError(
                f"model {config.name!r}: {module_name!r} has no attribute {attr!r} "
                f"(factory {config.factory!r})."
            ) from None
    if not callable(factory):
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} is not callable."
        )
    try:
        model = factory()
    except Exception as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} raised "
            f"{type(error).__name__}: {error}.\n  fix: the factory must build the model with "
            f"no arguments."
        ) from error
    if not isinstance(model, nn.Module):
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} returned "
            f"{type(model).__name__}, not an nn.Module."
        )
    return model


def check_shapes(model: nn.Module, config: ModelConfig) -> None:
    """The model runs on its input; the output has ``expect_output`` when given; the
    rule table and torch agree on every layer."""
    if config.expect_output is not None:
        result = assert_output_shape(model, config.input_shape, config.expect_output)
    else:
        result = trace(model, config.input_shape)
    if result.disagreements:
        raise AssertionError(
            f"model {config.name!r}: the shape rules disagree with torch (please report):\n  "
            + "\n  ".join(result.disagreements)
        )


def check_batch(model: nn.Module, config: ModelConfig) -> None:
    """No sample of a batch influences another, and the batch size is kept."""
    assert_batch_independent(model, config.input_shape)


def check_receptive_field(model: nn.Module, config: ModelConfig) -> None:
    """The field has no holes (gridding) and lies within the configured bounds
    (``receptive_field_min`` / ``_max`` / ``_exact``)."""
    options = config.options
    field = assert_receptive_field(
        model,
        config.input_shape,
        min_size=options.get("receptive_field_min"),
        max_size=options.get("receptive_field_max"),
        exact=options.get("receptive_field_exact"),
    )
    if field.holes:
        raise AssertionError(
            f"{field.model}: its receptive field has holes — input positions inside the field "
            f"that no path reaches (gridding of stacked dilations): {field.hole_positions} "
            f"(offsets from the field's start, per axis).\n  fix: use dilation rates without a "
            f"common factor, e.g. 1, 2, 3 instead of 2, 2 or 2, 4, 8 (hybrid dilated convolution, "
            f"Wang et al. 2018), or put a dense conv between the dilated ones.\n{field}"
        )


def check_checkerboard(model: nn.Module, config: ModelConfig) -> None:
    """No checkerboard of the configured kinds (``checkerboard_kinds``; default
    ``["structural"]``: uneven kernel overlap)."""
    for kind in config.options.get("checkerboard_kinds", ("structural",)):
        assert_no_checkerboard(model, config.input_shape, kind=kind)


def check_sharing(model: nn.Module, config: ModelConfig) -> None:
    """No accidental module aliasing (``[block] * n``); names in ``sharing_allow``
    are intended."""
    assert_no_accidental_sharing(
        model, config.input_shape, allow=config.options.get("sharing_allow", ())
    )


CHECKS: dict[str, Callable[[nn.Module, ModelConfig], None]] = {
    "shapes": check_shapes,
    "batch": check_batch,
    "receptive_field": check_receptive_field,
    "checkerboard": check_checkerboard,
    "sharing": check_sharing,
}
