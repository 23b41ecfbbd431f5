"""The checks ``pytest --convcheck`` runs on a configured model: one function per
check name, in :data:`CHECKS`. Each takes the model, its :class:`ModelConfig` and
the run's :class:`RunContext`, and raises ``AssertionError`` (or
:class:`ShapeError`) with a message that names the model, the layer and the fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from pytest_convcheck.checkerboards import (
    assert_no_checkerboard,
    checkerboard,
    gradient_score,
    output_score,
)
from pytest_convcheck.config import ModelConfig
from pytest_convcheck.errors import ConvcheckConfigError, ShapeError
from pytest_convcheck.fields import assert_receptive_field
from pytest_convcheck.parity import assert_device_parity, assert_layout_parity
from pytest_convcheck.reports import report
from pytest_convcheck.shapes import (
    assert_batch_independent,
    assert_output_shape,
    nearby_hint,
)
from pytest_convcheck.snapshots import compare_snapshot, snapshot_text
from pytest_convcheck.tracing import trace
from pytest_convcheck.weight_sharing import assert_no_accidental_sharing


@dataclass(frozen=True)
class RunContext:
    """What a check needs from the run besides the model: the device to compare
    against the CPU reference (``None``: CPU only), the folder for pictures of
    failed checks, the snapshot folder and whether to rewrite snapshots."""

    device: str | None = None
    artifacts: Path | None = None
    snapshots: Path = Path("__snapshots__") / "convcheck"
    update_snapshots: bool = False


def _picture(context: RunContext, name: str, draw: Callable[[Path], object]) -> str:
    """Save a picture of a failed check into ``--convcheck-artifacts``; the line to
    append to the failure message."""
    if context.artifacts is None:
        return ""
    target = context.artifacts / f"{name}.png"
    try:
        context.artifacts.mkdir(parents=True, exist_ok=True)
        draw(target)
    except (ImportError, ValueError, RuntimeError) as error:  # no matplotlib, nothing to draw
        return f"\n  picture not saved: {error}"
    return f"\n  picture: {target}"


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
    kwargs = config.options.get("kwargs", {})
    try:
        model = factory(**kwargs)
    except Exception as error:
        called = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} raised "
            f"{type(error).__name__}: {error} when called as {attr.rsplit('.', 1)[-1]}"
            f"({called}).\n  fix: give the arguments it needs under kwargs in the model's "
            f"table, e.g. kwargs = {{ num_classes = 10 }} (ini: kwargs.num_classes=10), or "
            f"point factory at a function that builds the model."
        ) from error
    if not isinstance(model, nn.Module):
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory {config.factory!r} returned "
            f"{type(model).__name__}, not an nn.Module."
        )
    return model


def check_shapes(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The model runs on its input; the output has ``expect_output`` when given; the
    rule table and torch agree on every layer."""
    try:
        if config.expect_output is not None:
            result = assert_output_shape(model, config.input_shape, config.expect_output)
        else:
            result = trace(model, config.input_shape)
    except ShapeError as error:
        raise ShapeError(f"{error}{nearby_hint(model, config.input_shape)}") from None
    if result.output_shape is None:
        raise AssertionError(
            f"model {config.name!r}: forward returned no tensor (got None or no tensors).\n"
            f"  fix: return the output tensor (or a tuple or dict of tensors) from forward."
        )
    if result.disagreements:
        raise AssertionError(
            f"model {config.name!r}: the shape rules disagree with torch (please report):\n  "
            + "\n  ".join(result.disagreements)
        )


def check_batch(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """No sample of a batch influences another, and the batch size is kept."""
    assert_batch_independent(model, config.input_shape)


def check_receptive_field(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The field has no holes (gridding) and lies within the configured bounds
    (``receptive_field_min`` / ``_max`` / ``_exact``). With artifacts, a failure
    saves the measured effective receptive field (Luo et al. 2016) as a picture."""
    options = config.options

    def erf_picture(path: Path) -> object:
        from pytest_convcheck.measured_fields import effective_receptive_field

        return effective_receptive_field(model, config.input_shape).save_png(path)

    try:
        field = assert_receptive_field(
            model,
            config.input_shape,
            min_size=options.get("receptive_field_min"),
            max_size=options.get("receptive_field_max"),
            exact=options.get("receptive_field_exact"),
        )
    except AssertionError as error:
        picture = _picture(context, f"{config.name}-receptive_field", erf_picture)
        raise AssertionError(f"{error}{picture}") from None
    if field.holes:
        picture = _picture(context, f"{config.name}-receptive_field", erf_picture)
        raise AssertionError(
            f"{field.model}: its receptive field has holes — input positions inside the field "
            f"that no path reaches (gridding of stacked dilations): {field.hole_positions} "
            f"(offsets from the field's start, per axis).\n  fix: use dilation rates without a "
            f"common factor, e.g. 1, 2, 3 instead of 2, 2 or 2, 4, 8 (hybrid dilated convolution, "
            f"Wang et al. 2018), or put a dense conv between the dilated ones.\n{field}{picture}"
        )


def check_checkerboard(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """No checkerboard of the configured kinds (``checkerboard_kinds``; default
    ``["structural"]``: uneven kernel overlap). With artifacts, a failure saves the
    overlap tiles (structural, weights) or the spectrum (output, gradient)."""
    shape = config.input_shape
    for kind in config.options.get("checkerboard_kinds", ("structural",)):
        try:
            assert_no_checkerboard(model, shape, kind=kind)
        except AssertionError as error:
            draw: dict[str, Callable[[Path], object]] = {
                "structural": lambda p: checkerboard(model, shape).save_png(p),
                "weights": lambda p: checkerboard(model, shape).save_png(p),
                "output": lambda p: output_score(model, shape).save_png(p),
                "gradient": lambda p: gradient_score(model, shape).save_png(p),
            }
            picture = _picture(context, f"{config.name}-checkerboard-{kind}", draw[kind])
            raise AssertionError(f"{error}{picture}") from None


def check_parity(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """Forward outputs and gradients in float32 on the CPU (and on ``--convcheck-device``
    when given) match a float64 CPU reference of the same model."""
    devices = ["cpu"] if context.device in (None, "cpu") else ["cpu", str(context.device)]
    assert_device_parity(model, config.input_shape, devices)


def check_layout(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The output does not depend on memory layout (channels-last, strided views)."""
    assert_layout_parity(model, config.input_shape)


def check_snapshot(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The model's report equals its snapshot ``__snapshots__/convcheck/NAME.json``
    (written by ``--snapshot-update``)."""
    text = snapshot_text(
        report(model, config.input_shape, sharing_allow=config.options.get("sharing_allow", ()))
    )
    problem = compare_snapshot(
        context.snapshots / f"{config.name}.json", text, update=context.update_snapshots
    )
    if problem is not None:
        raise AssertionError(f"model {config.name!r}: {problem}")


def check_sharing(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """No accidental module aliasing (``[block] * n``); names in ``sharing_allow``
    are intended."""
    assert_no_accidental_sharing(
        model, config.input_shape, allow=config.options.get("sharing_allow", ())
    )


CHECKS: dict[str, Callable[[nn.Module, ModelConfig, RunContext], None]] = {
    "shapes": check_shapes,
    "batch": check_batch,
    "receptive_field": check_receptive_field,
    "checkerboard": check_checkerboard,
    "sharing": check_sharing,
    "parity": check_parity,
    "layout": check_layout,
    "snapshot": check_snapshot,
}
