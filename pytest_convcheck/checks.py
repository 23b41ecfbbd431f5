"""The checks ``pytest --convcheck`` runs on a configured model: one function per
check name, in :data:`CHECKS`. Each takes the model, its :class:`ModelConfig` and
the run's :class:`RunContext`, and raises ``AssertionError`` (or
:class:`ShapeError`) with a message that names the model, the layer and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pytest_convcheck.checkerboards import (
    ICNR_FIX,
    assert_no_checkerboard,
    checkerboard,
    geometry_fix,
)
from pytest_convcheck.config import ModelConfig
from pytest_convcheck.configured_models import (
    FACTORY_SEED,
    build_model,
    cached_failure,
    cached_model,
    forget_models,
    load_weights,
    model_inputs,
    remember_failure,
)
from pytest_convcheck.errors import ShapeError
from pytest_convcheck.fields import assert_receptive_field
from pytest_convcheck.inputs import Inputs
from pytest_convcheck.parity import assert_device_parity, assert_layout_parity
from pytest_convcheck.reports import report
from pytest_convcheck.shapes import (
    assert_batch_independent,
    assert_output_shape,
    nearby_hint,
)
from pytest_convcheck.snapshots import inside, snapshot_text, update_or_compare
from pytest_convcheck.tracing import trace
from pytest_convcheck.weight_sharing import assert_no_accidental_sharing

if TYPE_CHECKING:
    from pytest_convcheck.pictures import Picture


__all__ = [
    "CHECKS",
    "CheckSkipped",
    "RunContext",
    "batch_influence",
    "build_model",
    "cached_failure",
    "cached_model",
    "check_batch",
    "check_checkerboard",
    "check_layout",
    "check_parity",
    "check_receptive_field",
    "check_shapes",
    "check_sharing",
    "check_snapshot",
    "forget_models",
    "load_weights",
    "model_inputs",
    "remember_failure",
    "require_tensor_output",
    "sharing_allow",
    "user_error",
    "weights_in_use",
]


@dataclass(frozen=True)
class RunContext:
    """What a check needs from the run besides the model: the device to compare
    against the CPU reference (``None``: CPU only), the folder for pictures of
    failed checks, the snapshot folder and whether to rewrite snapshots."""

    device: str | None = None
    artifacts: Path | None = None
    snapshots: Path = Path("__snapshots__") / "convcheck"
    update_snapshots: bool = False
    snapshot_strict: bool = False  # a missing snapshot fails (else: skipped)
    pictures_in_memory: bool = False  # draw pictures for the HTML report (pytest-html)
    notes: dict[str, Any] = field(default_factory=dict)  # facts for the summary
    attachments: list[tuple[str, bytes | str]] = field(default_factory=list)  # (name, PNG/text)


class CheckSkipped(Exception):
    """A check that cannot say anything yet (a model without a snapshot): the item is
    skipped with this message."""


def _picture(context: RunContext, name: str, draw: Callable[[], Picture]) -> str:
    """Draw the picture of a failed check (``draw`` makes a
    :class:`~pytest_convcheck.pictures.Picture`) and save it into
    ``--convcheck-artifacts`` and/or keep it for the HTML report (pytest-html); the
    line to append to the failure message. A picture that cannot be drawn never
    hides the finding: the message says why and the check fails (or is allowed)
    for its own reason."""
    if context.artifacts is None and not context.pictures_in_memory:
        return ""
    try:
        target = inside(context.artifacts, f"{name}.png") if context.artifacts else None
        picture = draw()
        data = picture.png()
        if target is not None and context.artifacts is not None:
            context.artifacts.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if context.pictures_in_memory:
            context.attachments.append((f"{name}.png: {picture.caption}", data))
    except (ImportError, ValueError, RuntimeError, OSError, TypeError) as error:  # matplotlib?
        return f"\n  picture not saved: {error}"
    return f"\n  picture: {target}" if target is not None else ""


def require_tensor_output(config: ModelConfig, data: dict[str, Any] | None) -> None:
    """Every check reads the model's output: one that holds no tensor (``None``, a
    str, an int) fails each of them with that reason. ``data``: the model's report
    as a dict (``None`` when it could not be made: the check says why)."""
    if data is not None and data.get("output_shape") is None:
        raise AssertionError(
            f"model {config.name!r}: forward returned no tensor (None, or a value holding no "
            f"tensors such as a str or an int), so there is nothing to check.\n  fix: return "
            f"the output tensor (or a tuple or dict of tensors) from forward."
        )


_OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory")


def user_error(error: Exception, config: ModelConfig) -> str | None:
    """The message for an error that the model or its configuration caused, not this
    plugin (``None``: likely a gap in pytest-convcheck)."""
    text = str(error)
    if isinstance(error, RuntimeError) and any(w in text.lower() for w in _OUT_OF_MEMORY):
        return (
            f"model {config.name!r}: out of memory with input {config.input_text()} "
            f"({text.splitlines()[0] if text else type(error).__name__}).\n  fix: use a "
            f"smaller input (the checks run the model on the CPU)."
        )
    if (
        config.inputs is None
        and config.input_shape
        and len(config.input_shape) < 2
        and isinstance(error, (ValueError, TypeError, IndexError))
    ):
        return (
            f"model {config.name!r}: input {list(config.input_shape)} has "
            f"{len(config.input_shape)} axis; the checks need at least a batch and a channel "
            f"axis ({type(error).__name__}: {text.splitlines()[0] if text else ''}).\n  fix: "
            f"give the full shape, e.g. input = [1, 1, 28, 28]."
        )
    return None


def sharing_allow(model: nn.Module, config: ModelConfig) -> tuple[str, ...]:
    """``sharing_allow`` with each container name expanded to the modules under it
    (``"blocks"`` allows ``blocks.0=blocks.1=blocks.2``)."""
    allowed = tuple(config.options.get("sharing_allow", ()))
    if not allowed:
        return allowed
    names = [n for n, _ in model.named_modules(remove_duplicate=False)]
    found = list(allowed)
    for prefix in allowed:
        found += [n for n in names if n.startswith(f"{prefix}.")]
    return tuple(dict.fromkeys(found))


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def check_shapes(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The model runs on its input; the output has ``expect_output`` when given; the
    rule table and torch agree on every layer. A wrong output size draws the shape
    trace (sizes along depth, the expected size marked)."""
    try:
        if config.expect_output is not None:
            result = assert_output_shape(model, model_inputs(config), config.expect_output)
        else:
            result = trace(model, model_inputs(config))
    except ShapeError as error:
        raise ShapeError(f"{error}{nearby_hint(model, model_inputs(config))}") from None
    except AssertionError as error:
        text = str(error)
        if "fix" not in text:
            text += (
                "\n  fix: if the model is right, set expect_output to the shape it gives; "
                "otherwise change the layers above that set the wrong size."
            )
        finding = _first_line(error)

        def draw() -> Picture:
            from pytest_convcheck.pictures import shape_trace_picture

            expected = config.expect_output
            single = isinstance(expected, tuple) and all(isinstance(s, int) for s in expected)
            return shape_trace_picture(
                trace(model, model_inputs(config)).layers,
                model=config.name,
                expected=expected if single else None,
                finding=finding,
            )

        picture = _picture(context, f"{config.name}-shapes", draw)
        raise AssertionError(f"{text}{picture}") from None
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


def batch_influence(model: nn.Module, config: ModelConfig, samples: int = 8) -> list[list[float]]:
    """``[i][j]``: the largest |gradient| of (a random weighting of) output sample ``i``
    with respect to primary input sample ``j``, on a float64 CPU copy, for the first
    ``samples`` samples. Only the diagonal may be non-zero."""
    from pytest_convcheck.tracing import first_tensor, materialized_copy

    inputs = model_inputs(config)
    work = materialized_copy(model, "cpu", inputs).double()
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in work.modules()):
        work.eval()  # as the batch check does: batch statistics mix a batch by design
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)
        x = torch.randn(inputs.shape, dtype=torch.float64, requires_grad=True)
        args, kwargs = inputs.build(torch.float64, "cpu", primary=x)
        out = first_tensor(work(*args, **kwargs))
        if out is None or out.dim() < 1 or out.shape[0] != x.shape[0]:
            raise ValueError("the output does not keep the batch: no per-sample picture")
        weight = torch.randn(out.shape, dtype=torch.float64)
    n = min(samples, x.shape[0])
    rows = []
    for i in range(n):
        (grad,) = torch.autograd.grad(
            (out[i] * weight[i]).sum(), x, retain_graph=True, allow_unused=True
        )
        if grad is None:
            grad = torch.zeros_like(x)
        rows.append([float(grad[j].abs().max()) for j in range(n)])
    return rows


def check_batch(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """No sample of a batch influences another, and the batch size is kept. A failure
    draws which output sample depends on which input sample."""
    try:
        assert_batch_independent(model, model_inputs(config))
    except AssertionError as error:
        finding = _first_line(error)

        def draw() -> Picture:
            from pytest_convcheck.pictures import batch_picture

            influence = batch_influence(model, config)
            return batch_picture(influence, model=config.name, finding=finding)

        picture = _picture(context, f"{config.name}-batch", draw)
        raise AssertionError(f"{error}{picture}") from None


_FIELD_BOUNDS = ("receptive_field_min", "receptive_field_max", "receptive_field_exact")


def check_receptive_field(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The field has no holes (gridding) and lies within the configured bounds
    (``receptive_field_min`` / ``_max`` / ``_exact``; ``receptive_field_statistics``
    counts normalisation statistics). With artifacts (or an HTML report), a failure
    draws the input positions the centre output reads, the holes marked and the
    bounds drawn."""
    options = config.options
    statistics = bool(options.get("receptive_field_statistics", False))

    def draw(finding: str) -> Callable[[], Picture]:
        def make() -> Picture:
            from pytest_convcheck.fields import receptive_field
            from pytest_convcheck.pictures import field_picture

            found = receptive_field(model, model_inputs(config), include_statistics=statistics)
            spatial = len(found.size)
            out = next((r.output_shape for r in reversed(found.layers) if r.output_shape), None)
            index = (
                tuple(s // 2 for s in out[-spatial:])
                if out is not None and len(out) >= spatial + 2
                else (0,) * spatial
            )
            bounds = {
                k.removeprefix("receptive_field_"): options[k]
                for k in _FIELD_BOUNDS
                if k in options
            }
            return field_picture(found, index, bounds=bounds, finding=finding)

        return make

    try:
        field = assert_receptive_field(
            model,
            model_inputs(config),
            min_size=options.get("receptive_field_min"),
            max_size=options.get("receptive_field_max"),
            exact=options.get("receptive_field_exact"),
            include_statistics=statistics,
        )
    except AssertionError as error:
        picture = _picture(context, f"{config.name}-receptive_field", draw(_first_line(error)))
        raise AssertionError(f"{error}{picture}") from None
    if field.holes:
        finding = (
            f"receptive field {'×'.join(map(str, field.size))} has holes: offsets "
            f"{field.hole_positions} per axis inside it are read by no path (gridding)"
        )
        picture = _picture(context, f"{config.name}-receptive_field", draw(finding))
        raise AssertionError(
            f"{field.model}: its receptive field has holes — input positions inside the field "
            f"that no path reaches (gridding of stacked dilations): {field.hole_positions} "
            f"(offsets from the field's start, per axis).\n  fix: use dilation rates without a "
            f"common factor, e.g. 1, 2, 3 instead of 2, 2 or 2, 4, 8 (hybrid dilated convolution, "
            f"Wang et al. 2018), or put a dense conv between the dilated ones.\n{field}{picture}"
        )


def weights_in_use(config: ModelConfig) -> str:
    """Which weights the weight-dependent checks saw, for their messages."""
    if config.weights is not None:
        return f"the weights of {config.options.get('weights')} (weights = ...)"
    return (
        f"the factory's random initial weights (seed {FACTORY_SEED}); to check a trained "
        f'checkpoint, set weights = "path.pt" in the model\'s table'
    )


def check_checkerboard(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """No checkerboard of the configured kinds (``checkerboard_kinds``; default
    ``["structural"]``: uneven kernel overlap). The ``weights``, ``output`` and
    ``gradient`` kinds read the model's weights (the factory's random ones unless
    ``weights = "path.pt"``). A failure draws its own finding: the overlap tiles
    (structural), the per-phase gains (weights), or the output / input gradient on
    a smooth input next to its spectrum with the stride frequencies marked."""
    from pytest_convcheck.checkerboards import SPECTRAL_THRESHOLD, WEIGHT_THRESHOLD

    shape = model_inputs(config)
    findings: dict[str, Any] = {}  # a failed kind's figure, for the summary and the JSON
    for kind in config.options.get("checkerboard_kinds", ("structural",)):
        if kind == "structural":
            try:
                assert_no_checkerboard(model, shape, kind="structural")
            except AssertionError as error:

                def tiles() -> Picture:
                    from pytest_convcheck.pictures import tiles_picture

                    return tiles_picture(checkerboard(model, shape))

                picture = _picture(context, f"{config.name}-checkerboard-structural", tiles)
                raise AssertionError(f"{error}{picture}") from None
            continue
        board = checkerboard(model, shape)
        if kind == "weights":
            if board.weight_score <= WEIGHT_THRESHOLD:
                continue
            findings["weights"] = {
                "score": round(board.weight_score, 4),
                "figure": f"{board.weight_score:.3g}",
                "threshold": WEIGHT_THRESHOLD,
            }
            context.notes["findings"] = {"checkerboard": findings}
            raise AssertionError(_weights_message(board, config, context, WEIGHT_THRESHOLD))
        signal, score = _spectral(model, shape, kind)
        if score.score <= SPECTRAL_THRESHOLD:
            continue
        findings[kind] = {
            "score": round(score.score, 4),
            "figure": f"{score.score:.1%}",
            "threshold": SPECTRAL_THRESHOLD,
        }
        context.notes["findings"] = {"checkerboard": findings}
        where = "output on a smooth input" if kind == "output" else "input gradient"
        weights = weights_in_use(config)

        def spectrum(
            kind: str = kind, signal: Any = signal, score: Any = score, weights: str = weights
        ) -> Picture:
            from pytest_convcheck.pictures import spectrum_picture

            return spectrum_picture(
                signal,
                score,
                kind=kind,
                model=config.name,
                threshold=SPECTRAL_THRESHOLD,
                weights=weights.split(";")[0],
            )

        picture = _picture(context, f"{config.name}-checkerboard-{kind}", spectrum)
        lines = [
            f"model {config.name!r}: a checkerboard in the {where}: {score.score:.1%} of its "
            f"spectral energy (DC excluded) lies at the stride frequencies m·N/P (P = "
            f"{score.period}); a smooth {kind} keeps it under {SPECTRAL_THRESHOLD:.0%}.",
            f"  weights: {weights}.",
        ]
        if kind == "gradient":
            lines.append(
                "  (strided convolutions and max-pooling send gradients to every s-th input "
                "position: the pattern is in what the model learns from)"
            )
        if board.structural:
            lines.append(
                f"  the overlap is uneven too (imbalance ×{board.imbalance:.4g}):\n"
                + geometry_fix(board)
            )
        elif kind == "gradient":
            lines.append(
                "  fix: give strided convs a kernel that is a multiple of their stride, use "
                "blur-pooling (anti-aliased downsampling) instead of stride-2 max-pooling, or "
                "accept it when the gradient pattern does not show in training."
            )
        else:
            lines.append(ICNR_FIX)
        raise AssertionError("\n".join(lines) + picture)


def _spectral(model: nn.Module, inputs: Inputs, kind: str) -> tuple[torch.Tensor | None, Any]:
    """The score of ``kind`` (``output``/``gradient``) and the signal it was measured
    on, for the picture (``None`` where it cannot be recomputed)."""
    from pytest_convcheck.checkerboards import (
        gradient_score,
        output_score,
        smooth_input,
    )
    from pytest_convcheck.tracing import first_tensor, materialized_copy

    score = output_score(model, inputs) if kind == "output" else gradient_score(model, inputs)
    if score.score <= 0:
        return None, score
    try:  # the same computation as the score's, kept for the picture
        work = materialized_copy(model, "cpu", inputs).float().eval()
        x = smooth_input(inputs.shape).requires_grad_(kind == "gradient")
        args, kwargs = inputs.build(torch.float32, "cpu", primary=x)
        with torch.random.fork_rng(devices=[]):
            out = first_tensor(work(*args, **kwargs))
        if out is None:
            return None, score
        if kind == "output":
            return out.detach(), score
        weight = smooth_input(tuple(out.shape)) if out.dim() > 2 else torch.ones_like(out)
        (grad,) = torch.autograd.grad((out * weight).sum(), x)
        return grad, score
    except Exception:  # the picture then shows the spectrum alone
        return None, score


def _weights_message(board: Any, config: ModelConfig, context: RunContext, threshold: float) -> str:
    """The ``weights`` failure: per layer, the spread of its phase responses; which
    weights were read; the fix that fits (geometry when the overlap is uneven too,
    else initialisation)."""
    bad = [t for t in board.layers if t.weights is not None and t.weights.score > threshold]
    weights = weights_in_use(config)
    lines = [
        f"model {config.name!r}: the weights respond unevenly per output phase to a constant "
        f"input (spread score {board.weight_score:.3g} > {threshold}): they paint a "
        f"checkerboard{' even though the overlap is even' if not board.structural else ''}.",
        f"  weights: {weights}.",
    ]
    for t in bad:
        responses = t.weights.responses
        worst = int((responses.max(1).values - responses.min(1).values).argmax())
        row = ", ".join(f"{v:.3g}" for v in responses[worst].tolist())
        lines.append(
            f"  {t.name} ({t.kind}, kernel {t.kernel}, stride {t.stride}): spread score "
            f"{t.weights.score:.3g}; channel {worst}, response per output phase: {row}"
        )
    lines.append(
        "  (spread score: max − min of a channel's per-phase responses over the mean "
        "|response|; 0 for ICNR or flat kernels)"
    )
    lines.append(
        f"  the overlap is uneven too (imbalance ×{board.imbalance:.4g}):\n" + geometry_fix(board)
        if board.structural
        else ICNR_FIX
    )

    def gains() -> Picture:
        from pytest_convcheck.pictures import phase_gains_picture

        return phase_gains_picture(board, threshold=threshold, weights=weights.split(";")[0])

    picture = _picture(context, f"{config.name}-checkerboard-weights", gains)
    return "\n".join(lines) + picture


def check_parity(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """Forward outputs and gradients in float32 on the CPU (and on ``--convcheck-device``
    when given) match a float64 CPU reference of the same model."""
    devices = ["cpu"] if context.device in (None, "cpu") else ["cpu", str(context.device)]
    assert_device_parity(model, model_inputs(config), devices)


def check_layout(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The output does not depend on memory layout (channels-last, strided views)."""
    assert_layout_parity(model, model_inputs(config))


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def check_snapshot(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """The model's report equals its snapshot ``__snapshots__/convcheck/NAME.json``
    (written by ``--snapshot-update``)."""
    text = snapshot_text(
        report(model, model_inputs(config), sharing_allow=sharing_allow(model, config))
    )
    path = inside(context.snapshots, f"{config.name}.json")
    status, problem = update_or_compare(path, text, update=context.update_snapshots)
    context.notes["snapshot"] = status
    if status == "missing" and not context.snapshot_strict:
        raise CheckSkipped(
            f"model {config.name!r}: no snapshot yet ({_shown(path)}): run pytest --convcheck "
            f"--snapshot-update to start pinning (--convcheck-snapshot-strict fails instead)"
        )
    if problem is not None:
        raise AssertionError(f"model {config.name!r}: {problem}")


def check_sharing(model: nn.Module, config: ModelConfig, context: RunContext) -> None:
    """No accidental module aliasing (``[block] * n``); names in ``sharing_allow``
    are intended."""
    try:
        assert_no_accidental_sharing(
            model, model_inputs(config), allow=sharing_allow(model, config)
        )
    except AssertionError as error:
        text = str(error).replace(
            "(intended? pass allow=[...] with one of the names)",
            f"(intended? list one of the names, or the container holding them, in the model's "
            f'sharing_allow, e.g. sharing_allow = ["{_container(str(error))}"])',
        )
        raise AssertionError(text) from None


def _container(message: str) -> str:
    """The container of the first aliased module named in a sharing failure."""
    import re

    found = re.search(r"`([\w.]+)`", message)
    name = found.group(1) if found else "blocks"
    return name.rsplit(".", 1)[0] if "." in name else name


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
