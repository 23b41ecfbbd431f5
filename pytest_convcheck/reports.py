"""One report per model: shapes, receptive field, checkerboard, sharing, parameters
and FLOPs, all from a single meta-device trace.

``report(model, input_shape)`` → :class:`ConvReport`. Its ``to_dict()`` is the
stable, JSON-serialisable form used by snapshots and ``--convcheck-report``: no
timings, no device, no weight values (the checkerboard verdict is the structural
one, which depends on the architecture only), floats rounded to 4 significant
digits, fractional strides written as ``"1/2"``.

The report holds one typed section per analysis — :class:`FieldSummary`,
:class:`CheckerboardSummary`, :class:`SharingSummary` — each with its JSON entry
(``entries()``, the only place its keys are named) and its one text (``str()``,
the cell that ``str(report)`` and the ``convcheck summary`` table both show; the
table reads it back from the JSON with ``from_dict``). ``report.checkerboard["structural"]``
still reads a section as the dict it used to be. The totals are the report's own:
``flops`` is the sum of its layer rows, ``parameters`` the sharing analysis's count
with each tensor once.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import nn

from pytest_convcheck.checkerboards import CheckerboardReport, format_imbalance
from pytest_convcheck.checkerboards import report_from_trace as checkerboard_of_trace
from pytest_convcheck.fields import ReceptiveField, field_of_trace
from pytest_convcheck.module_index import ModuleIndex
from pytest_convcheck.tracing import Trace, format_shape, gc_paused, trace, with_parameter_shapes
from pytest_convcheck.weight_sharing import SharingReport, sharing_from_trace

__all__ = [
    "CheckerboardSummary",
    "ConvReport",
    "FieldSummary",
    "LayerRow",
    "SharingSummary",
    "UpsamplingLayer",
    "checkerboard_text",
    "field_text",
    "report",
]

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

    def entries(self) -> dict[str, Any]:
        """The row's entry of ``to_dict()["layers"]``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "input": _jsonable(self.input_shape),
            "output": _jsonable(self.output_shape),
            "parameters": self.parameters,
            "flops": self.flops,
        }


class _Section:
    """A report section that still reads as the dict it used to be
    (``report.checkerboard["structural"]``): ``section[key]`` is
    ``section.entries()[key]``, unrounded."""

    def entries(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.entries()[key]


@dataclass(frozen=True)
class FieldSummary(_Section):
    """The receptive field as the report keeps it: per spatial axis ``size``,
    ``stride`` (a ``Fraction`` after upsampling), ``offset`` and ``whole`` (the
    output sees the whole axis); ``holes``; ``statistics``, the normalisation layers
    whose statistics span the input (not counted in the size). ``error`` says why
    there is no field (no spatial axes, an op the analysis cannot follow)."""

    size: tuple[int, ...] = ()
    stride: tuple[Fraction | int, ...] = ()
    offset: tuple[Any, ...] = ()
    whole: tuple[bool, ...] = ()
    holes: bool = False
    statistics: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def of(cls, field: ReceptiveField) -> FieldSummary:
        """The section of an analysed field (:func:`~pytest_convcheck.fields.field_of_trace`)."""
        return cls(
            tuple(field.size),
            tuple(field.stride),
            tuple(field.offset),
            tuple(field.whole),
            field.holes,
            tuple(field.statistics),
        )

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> FieldSummary:
        """The section back from its ``to_dict()`` entry (``"1/2"`` strides become
        fractions again)."""
        if "error" in entry:
            return cls(error=str(entry["error"]))
        return cls(
            tuple(entry["size"]),
            tuple(Fraction(s) if isinstance(s, str) else s for s in entry["stride"]),
            tuple(entry.get("offset", ())),
            tuple(entry["whole"]),
            bool(entry["holes"]),
            tuple(entry.get("statistics", ())),
        )

    def entries(self) -> dict[str, Any]:
        """The ``receptive_field`` entry of ``to_dict()`` (``statistics`` only when
        some norm's statistics span the input), unrounded."""
        if self.error is not None:
            return {"error": self.error}
        found: dict[str, Any] = {
            "size": list(self.size),
            "stride": list(self.stride),
            "offset": list(self.offset),
            "whole": list(self.whole),
            "holes": self.holes,
        }
        if self.statistics:
            found["statistics"] = list(self.statistics)
        return found

    def __str__(self) -> str:
        """The field in one cell: ``212×212 (stride 32)``, ``all`` for an axis the
        output sees whole, ``HOLES`` when positions inside the field are unreachable,
        ``+4 norm stats`` when four normalisation layers' statistics span the input
        (the size is the data path's), ``—`` when unknown."""
        if self.error is not None:
            return "—"
        sizes = ["all" if w else str(s) for s, w in zip(self.size, self.whole, strict=True)]
        per_axis = [str(_jsonable(s)) for s in self.stride]
        strides = per_axis[0] if len(set(per_axis)) == 1 else "×".join(per_axis)
        text = f"{'×'.join(sizes)} (stride {strides})"
        if self.statistics:
            text += f" +{len(self.statistics)} norm stats"
        return text + " HOLES" if self.holes else text


@dataclass(frozen=True)
class UpsamplingLayer:
    """An upsampling layer of the checkerboard section: a transposed conv or pixel
    shuffle (``imbalance``: its own tile's ratio), or an interpolation (with its
    ``mode``; ratio 1)."""

    name: str
    kind: str
    imbalance: float
    mode: str | None = None  # interpolations only

    def entries(self) -> dict[str, Any]:
        """The layer's entry of ``upsampling_layers``."""
        mode = {} if self.mode is None else {"mode": self.mode}
        return {"name": self.name, "kind": self.kind, **mode, "imbalance": self.imbalance}


@dataclass(frozen=True)
class CheckerboardSummary(_Section):
    """The structural checkerboard verdict as the report keeps it: ``structural``,
    ``imbalance`` (the model's one figure,
    :attr:`~pytest_convcheck.checkerboards.CheckerboardReport.imbalance`; JSON
    ``output_imbalance``) and the upsampling ``layers``."""

    structural: bool = False
    imbalance: float = 1.0
    layers: tuple[UpsamplingLayer, ...] = ()

    @classmethod
    def of(cls, board: CheckerboardReport) -> CheckerboardSummary:
        """The section of a checkerboard analysis (the model's one figure, not only
        the output's)."""
        layers = [UpsamplingLayer(t.name, t.kind, t.ratio) for t in board.layers]
        layers += [UpsamplingLayer(i.name, i.kind, i.ratio, i.mode) for i in board.interpolations]
        return cls(board.structural, board.imbalance, tuple(layers))

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> CheckerboardSummary:
        """The section back from its ``to_dict()`` entry (``"inf"`` is ∞ again)."""
        return cls(
            bool(entry["structural"]),
            float(entry.get("output_imbalance", 1.0)),
            tuple(
                UpsamplingLayer(
                    layer.get("name", ""),
                    layer.get("kind", ""),
                    float(layer.get("imbalance", 1.0)),
                    layer.get("mode"),
                )
                for layer in entry["upsampling_layers"]
            ),
        )

    def entries(self) -> dict[str, Any]:
        """The ``checkerboard`` entry of ``to_dict()``, unrounded."""
        return {
            "structural": self.structural,
            "output_imbalance": self.imbalance,
            "upsampling_layers": [layer.entries() for layer in self.layers],
        }

    def __str__(self) -> str:
        """The verdict in one cell: ``no upsampling``; ``even (interpolation)`` when
        every upsampling layer interpolates (``nn.Upsample``, ``F.interpolate``: even
        by construction); ``even``; or ``UNEVEN ×`` the model's imbalance, written as
        the failure text writes it
        (:func:`~pytest_convcheck.checkerboards.format_imbalance`)."""
        if not self.layers:
            return "no upsampling"
        if self.structural:
            return f"UNEVEN ×{format_imbalance(self.imbalance)}"
        if all(layer.mode is not None for layer in self.layers):
            return "even (interpolation)"
        return "even"


@dataclass(frozen=True)
class SharingSummary(_Section):
    """Weight sharing as the report keeps it: ``reused`` (module → calls, when more
    than one), ``tied`` (groups of parameter names that are one tensor),
    ``suspicious`` (groups of module names that are one instance, likely by
    accident), and the parameter counts of
    :class:`~pytest_convcheck.weight_sharing.SharingReport` (only
    ``unshared_parameters`` is in the JSON entry; the others are the report's
    ``parameters`` and ``naive_parameters``)."""

    reused: dict[str, int]
    tied: tuple[tuple[str, ...], ...]
    suspicious: tuple[tuple[str, ...], ...]
    unique_parameters: int
    naive_parameters: int
    unshared_parameters: int

    @classmethod
    def of(cls, shared: SharingReport) -> SharingSummary:
        """The section of a sharing analysis."""
        return cls(
            shared.reused,
            shared.tied,
            tuple(s.names for s in shared.suspicious),
            shared.unique_parameters,
            shared.naive_parameters,
            shared.unshared_parameters,
        )

    def entries(self) -> dict[str, Any]:
        """The ``sharing`` entry of ``to_dict()``."""
        return {
            "reused": dict(self.reused),
            "tied": [list(g) for g in self.tied],
            "suspicious": [list(g) for g in self.suspicious],
            "unshared_parameters": self.unshared_parameters,
        }

    def lines(self) -> list[str]:
        """The lines of ``str(report)`` about sharing (none when nothing is shared)."""
        found = []
        if self.reused:
            found.append(
                "reused modules: " + ", ".join(f"{k} ×{v}" for k, v in self.reused.items())
            )
        if self.tied:
            found.append(f"tied parameters: {'; '.join(', '.join(g) for g in self.tied)}")
        if self.suspicious:
            found.append("suspicious aliases: " + "; ".join(", ".join(g) for g in self.suspicious))
        return found


@dataclass(frozen=True)
class ConvReport:
    """What pytest-convcheck knows about one model on one input shape."""

    model: str
    input_shape: tuple[int, ...]
    output_shape: Any
    layers: tuple[LayerRow, ...]
    receptive_field: FieldSummary
    checkerboard: CheckerboardSummary
    sharing: SharingSummary
    notes: tuple[str, ...] = ()
    inputs: str | None = None  # several inputs: all of them; input_shape is the primary's

    @property
    def parameters(self) -> int:
        """Parameters of the model, each tensor counted once (tied ones too)."""
        return self.sharing.unique_parameters

    @property
    def naive_parameters(self) -> int:
        """Parameters counted per registered name (what tools that walk
        ``named_parameters(remove_duplicate=False)`` report)."""
        return self.sharing.naive_parameters

    @property
    def flops(self) -> int:
        """FLOPs of one forward: the sum of the layer rows (every call counted)."""
        return sum(row.flops for row in self.layers)

    @property
    def field_text(self) -> str:
        """The receptive field in one cell (see :class:`FieldSummary`)."""
        return str(self.receptive_field)

    @property
    def checkerboard_text(self) -> str:
        """The checkerboard verdict in one cell (see :class:`CheckerboardSummary`)."""
        return str(self.checkerboard)

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
            "receptive_field": _jsonable(self.receptive_field.entries()),
            "checkerboard": _jsonable(self.checkerboard.entries()),
            "sharing": _jsonable(self.sharing.entries()),
            "layers": [row.entries() for row in self.layers],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON text, with lists of scalars (shapes) on one
        line; stable: equal reports give equal text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        return _SCALAR_LIST.sub(_one_line, text) + "\n"

    def __str__(self) -> str:
        lines = [
            f"{self.model} on input {self.inputs or format_shape(self.input_shape)} → "
            f"{format_shape(self.output_shape)}",
            f"  parameters {self.parameters:,} (per registered name {self.naive_parameters:,}), "
            f"FLOPs {self.flops:,}",
            f"  receptive field {self.field_text}; checkerboard {self.checkerboard_text}",
        ]
        lines += [f"  {line}" for line in self.sharing.lines()]
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


def field_text(field: FieldSummary | Mapping[str, Any]) -> str:
    """The receptive field in one cell (:meth:`FieldSummary.__str__`), of the section
    or of its ``to_dict()`` entry."""
    return str(field if isinstance(field, FieldSummary) else FieldSummary.from_dict(field))


def checkerboard_text(board: CheckerboardSummary | Mapping[str, Any]) -> str:
    """The checkerboard verdict in one cell (:meth:`CheckerboardSummary.__str__`), of
    the section or of its ``to_dict()`` entry."""
    if isinstance(board, CheckerboardSummary):
        return str(board)
    return str(CheckerboardSummary.from_dict(board))


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


def _layer_rows(
    result: Trace, index: ModuleIndex, node_flops: Sequence[int]
) -> tuple[LayerRow, ...]:
    modules = dict(index.modules)
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


def _field_section(result: Trace, notes: list[str]) -> FieldSummary:
    """The receptive field of a trace with spatial axes; its notes go to ``notes``."""
    try:
        field = field_of_trace(result, rows=False)
    except (ValueError, KeyError) as error:
        return FieldSummary(error=str(error))
    if field.statistics:
        notes.append(field.statistics_note())
    notes += field.notes
    return FieldSummary.of(field)


def _model_sections(
    result: Trace, model: nn.Module, allow: tuple[str, ...]
) -> tuple[tuple[LayerRow, ...], SharingSummary]:
    """The layer rows and the sharing section: what the report reads off the model
    besides its trace. Kept with the trace's analyses (:attr:`Trace.analyses`) under
    the identity of every module and parameter tensor (:meth:`ModuleIndex.identity`),
    which, with the trace, is all they depend on: a model reported again on the same
    input is not walked twice."""
    node_flops = result.analyses.get("node_flops")
    if node_flops is None:
        node_flops = result.analyses["node_flops"] = tuple(node.flops() for node in result.nodes)
    index = ModuleIndex.of(model)
    key = None if index.lazy else ("model sections", index.identity(), allow)
    known = result.analyses.get(key) if key is not None else None
    if known is not None:
        return known  # type: ignore[no-any-return]
    shared = sharing_from_trace(result, model, allow=allow, node_flops=node_flops, index=index)
    if index.lazy:  # parameters counted on a copy whose lazy layers have their shapes
        index = ModuleIndex.of(with_parameter_shapes(model, result.inputs or result.input_shape))
    found = (_layer_rows(result, index, node_flops), SharingSummary.of(shared))
    if key is not None:
        stale = [k for k in result.analyses if isinstance(k, tuple) and k[0] == "model sections"]
        for old in stale[:-7]:  # models reported from this plan: the last eight are kept
            del result.analyses[old]
        result.analyses[key] = found
    return found


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
        receptive = _field_section(result, notes)
        checker = CheckerboardSummary.of(checkerboard_of_trace(result))
    else:
        receptive = FieldSummary(error="no spatial axes")
        checker = CheckerboardSummary()
    rows, sharing = _model_sections(result, model, tuple(sharing_allow))
    return ConvReport(
        result.model,
        result.input_shape,
        result.output_shape,
        rows,
        receptive,
        checker,
        sharing,
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
