"""One report per model: shapes, receptive field, checkerboard, sharing, parameters
and FLOPs, all from a single meta-device trace.

``report(model, input_shape)`` → :class:`ConvReport`. Its ``to_dict()`` is the
stable, JSON-serialisable form used by snapshots and ``--convcheck-report``: no
timings, no device, no weight values (the checkerboard verdict is the structural
one, which depends on the architecture only), floats rounded to 4 significant
digits, fractional strides written as ``"1/2"``.

``checkerboard.output_imbalance`` is the model's one checkerboard figure,
:attr:`~pytest_convcheck.checkerboards.CheckerboardReport.imbalance` (the largest
per-phase overlap ratio over each upsampling layer's own tile, the tile composed
from the input to it, and the output's), the number the summary table and the
failure text show. ``upsampling_layers`` lists transposed convs and pixel
shuffles (``imbalance``: their own tile's ratio) and interpolations (with their
``mode``; ratio 1).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import nn

from pytest_convcheck.checkerboards import format_imbalance
from pytest_convcheck.checkerboards import report_from_trace as checkerboard_of_trace
from pytest_convcheck.fields import field_of_trace
from pytest_convcheck.tracing import Trace, format_shape, gc_paused, trace, with_sizes
from pytest_convcheck.weight_sharing import sharing_from_trace

__all__ = ["ConvReport", "LayerRow", "checkerboard_text", "field_text", "report"]

SCHEMA = 1
"""Version of :meth:`ConvReport.to_dict`'s layout; bumped when keys change."""


@dataclass(frozen=True)
class LayerRow:
    """One row of the trace table with its parameters (of the module, counted once
    per call site) and FLOPs (multiply-adds × 2, from the rule table)."""

    name: str
    kind: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    parameters: int
    flops: int


@dataclass(frozen=True)
class ConvReport:
    """What pytest-convcheck knows about one model on one input shape."""

    model: str
    input_shape: tuple[int, ...]
    output_shape: Any
    layers: tuple[LayerRow, ...]
    parameters: int
    naive_parameters: int
    flops: int
    receptive_field: dict[str, Any]
    checkerboard: dict[str, Any]
    sharing: dict[str, Any]
    notes: tuple[str, ...] = ()
    inputs: str | None = None  # several inputs: all of them; input_shape is the primary's

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types, in a fixed key order (``inputs`` only for a
        forward with more than one plain float input)."""
        extra = {"inputs": self.inputs} if self.inputs else {}
        return {
            "schema": SCHEMA,
            "model": self.model,
            "input_shape": list(self.input_shape),
            **extra,
            "output_shape": _jsonable(self.output_shape),
            "parameters": self.parameters,
            "naive_parameters": self.naive_parameters,
            "flops": self.flops,
            "receptive_field": _jsonable(self.receptive_field),
            "checkerboard": _jsonable(self.checkerboard),
            "sharing": _jsonable(self.sharing),
            "layers": [
                {
                    "name": row.name,
                    "kind": row.kind,
                    "input": _jsonable(row.input_shape),
                    "output": _jsonable(row.output_shape),
                    "parameters": row.parameters,
                    "flops": row.flops,
                }
                for row in self.layers
            ],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON text, with lists of scalars (shapes) on one
        line; stable: equal reports give equal text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        return _SCALAR_LIST.sub(_one_line, text) + "\n"

    @property
    def field_text(self) -> str:
        """The receptive field in one cell (see :func:`field_text`)."""
        return field_text(self.receptive_field)

    @property
    def checkerboard_text(self) -> str:
        """The checkerboard verdict in one cell (see :func:`checkerboard_text`)."""
        return checkerboard_text(self.checkerboard)

    def __str__(self) -> str:
        shared = self.sharing
        lines = [
            f"{self.model} on input {self.inputs or format_shape(self.input_shape)} → "
            f"{format_shape(self.output_shape)}",
            f"  parameters {self.parameters:,} (per registered name {self.naive_parameters:,}), "
            f"FLOPs {self.flops:,}",
            f"  receptive field {self.field_text}; checkerboard {self.checkerboard_text}",
        ]
        if shared["reused"]:
            reused = ", ".join(f"{k} ×{v}" for k, v in shared["reused"].items())
            lines.append(f"  reused modules: {reused}")
        if shared["tied"]:
            lines.append(f"  tied parameters: {'; '.join(', '.join(g) for g in shared['tied'])}")
        if shared["suspicious"]:
            lines.append(
                "  suspicious aliases: " + "; ".join(", ".join(g) for g in shared["suspicious"])
            )
        header = ("layer", "kind", "input", "output", "params", "FLOPs")
        rows = [
            (
                r.name,
                r.kind,
                format_shape(r.input_shape),
                format_shape(r.output_shape),
                f"{r.parameters:,}",
                f"{r.flops:,}",
            )
            for r in self.layers
        ]
        widths = [max(len(row[c]) for row in (header, *rows)) for c in range(6)]
        for row in (header, *rows):
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


_SCALAR_LIST = re.compile(r'\[\s*((?:(?:-?[\d.e+-]+|true|false|null|"[^",\[\]{}]*")\s*,?\s*)+)\]')


def _one_line(match: re.Match[str]) -> str:
    return "[" + ", ".join(part.strip() for part in match.group(1).split(",") if part.strip()) + "]"


def field_text(field: dict[str, Any]) -> str:
    """A ``receptive_field`` entry of :meth:`ConvReport.to_dict` in one cell:
    ``212×212 (stride 32)``, ``all`` for an axis the output sees whole, ``HOLES``
    when positions inside the field are unreachable, ``+4 norm stats`` when four
    normalisation layers' statistics span the input (the size is the data path's),
    ``—`` when unknown."""
    if "error" in field:
        return "—"
    sizes = ["all" if w else str(s) for s, w in zip(field["size"], field["whole"], strict=True)]
    per_axis = [str(_jsonable(s)) for s in field["stride"]]
    strides = per_axis[0] if len(set(per_axis)) == 1 else "×".join(per_axis)
    text = f"{'×'.join(sizes)} (stride {strides})"
    if field.get("statistics"):
        # the data path's field; these norms' statistics span the input
        text += f" +{len(field['statistics'])} norm stats"
    return text + " HOLES" if field["holes"] else text


def checkerboard_text(board: dict[str, Any]) -> str:
    """A ``checkerboard`` entry of :meth:`ConvReport.to_dict` in one cell:
    ``no upsampling``; ``even (interpolation)`` when every upsampling layer
    interpolates (``nn.Upsample``, ``F.interpolate``: even by construction);
    ``even``; or ``UNEVEN ×`` the model's imbalance
    (:attr:`~pytest_convcheck.checkerboards.CheckerboardReport.imbalance`, its
    ``output_imbalance`` entry), written as the failure text writes it
    (:func:`~pytest_convcheck.checkerboards.format_imbalance`)."""
    layers = board["upsampling_layers"]
    if not layers:
        return "no upsampling"
    if board["structural"]:
        return f"UNEVEN ×{format_imbalance(float(board['output_imbalance']))}"
    if all("mode" in layer for layer in layers):
        return "even (interpolation)"
    return "even"


def _round(value: float) -> float | str:
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return float(f"{value:.4g}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return str(value)


def _layer_rows(result: Trace, model: nn.Module, node_flops: Sequence[int]) -> tuple[LayerRow, ...]:
    modules = dict(model.named_modules())
    counted: dict[int, int] = {}  # module id → parameters (a reused module is counted once)

    def parameters_of(module: nn.Module) -> int:
        found = counted.get(id(module))
        if found is None:
            params = module.parameters() if module._modules else module._parameters.values()
            found = counted[id(module)] = sum(
                p.numel() for p in {id(p): p for p in params if p is not None}.values()
            )
        return found

    rows = []
    for layer in result.layers:
        module = modules.get(layer.module) if layer.module is not None else None
        params = parameters_of(module) if module is not None else 0
        flops = sum(node_flops[i] for i in layer.nodes)
        rows.append(
            LayerRow(layer.name, layer.kind, layer.input_shape, layer.output_shape, params, flops)
        )
    return tuple(rows)


def report_from_trace(
    result: Trace, model: nn.Module, *, sharing_allow: Sequence[str] = ()
) -> ConvReport:
    """The report of a traced model."""
    notes: list[str] = []
    if result.inputs is not None and result.inputs.source.startswith("inferred"):
        notes.append(f"input {result.inputs.describe()} {result.inputs.source}")
    if result.fallback:
        notes.append(f"traced on CPU, not meta: {result.fallback}")
    notes += result.disagreements
    if result.spatial >= 1:
        try:
            field = field_of_trace(result, rows=False)
            receptive: dict[str, Any] = {
                "size": list(field.size),
                "stride": list(field.stride),
                "offset": list(field.offset),
                "whole": list(field.whole),
                "holes": field.holes,
            }
            if field.statistics:
                # normalisation layers whose statistics span the input (not counted)
                receptive["statistics"] = list(field.statistics)
                notes.append(field.statistics_note())
            notes += field.notes
        except (ValueError, KeyError) as error:
            receptive = {"error": str(error)}
        board = checkerboard_of_trace(result)
        checker: dict[str, Any] = {
            "structural": board.structural,
            # the model's one figure (CheckerboardReport.imbalance), not only the output's
            "output_imbalance": board.imbalance,
            "upsampling_layers": [
                {"name": t.name, "kind": t.kind, "imbalance": t.ratio} for t in board.layers
            ]
            + [
                {"name": i.name, "kind": i.kind, "mode": i.mode, "imbalance": i.ratio}
                for i in board.interpolations
            ],
        }
    else:
        receptive = {"error": "no spatial axes"}
        checker = {"structural": False, "output_imbalance": 1.0, "upsampling_layers": []}
    node_flops = [node.flops() for node in result.nodes]
    shared = sharing_from_trace(result, model, allow=sharing_allow, node_flops=node_flops)
    sharing_dict = {
        "reused": shared.reused,
        "tied": [list(g) for g in shared.shared],
        "suspicious": [list(s.names) for s in shared.suspicious],
        "unshared_parameters": shared.unshared_parameters,
    }
    return ConvReport(
        result.model,
        result.input_shape,
        result.output_shape,
        _layer_rows(result, with_sizes(model, result.inputs or result.input_shape), node_flops),
        shared.unique_parameters,
        shared.naive_parameters,
        shared.flops,
        receptive,
        checker,
        sharing_dict,
        tuple(dict.fromkeys(notes)),
        None if result.inputs is None or result.inputs.single else result.inputs.describe(),
    )


def report(
    model: nn.Module,
    input_shape: Any = None,
    *,
    sharing_allow: Sequence[str] = (),
    example_inputs: Any = None,
    input: int | str | None = None,
) -> ConvReport:
    """Trace ``model`` once on meta on an input of ``input_shape`` (batch and channel
    dims included) and report its shapes, receptive field, structural checkerboard
    verdict, weight sharing, parameters and FLOPs. The model is not changed."""
    with gc_paused():
        result = trace(model, input_shape, example_inputs=example_inputs, input=input)
        return report_from_trace(result, model, sharing_allow=sharing_allow)
