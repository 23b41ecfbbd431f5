"""Structural checkerboard analysis: how evenly each upsampling layer spreads its
kernel taps over the output phases, by its geometry and by its current weights.

A transposed convolution with kernel k, stride s and dilation d sends
``#{t < k : d·t ≡ r (mod s)}`` kernel taps to output phase r (Odena, Dumoulin &
Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016). The counts are
even exactly when ``s | k`` and ``gcd(d, s) = 1``; in 2-D and 3-D the tile is the
outer product of the per-axis counts and the imbalances multiply.

One figure per model, :attr:`CheckerboardReport.imbalance`, is what the summary
table (``UNEVEN ×2.56``), ``to_dict()``/``--convcheck-report``
(``output_imbalance``) and the failure text (``imbalance ×2.56``) all show,
written by :func:`format_imbalance`: the largest max/min ratio of per-phase
overlap over every upsampling layer's own tile, the tile composed from the model
input to that layer, and the tile composed at the output. Interpolation
(``nn.Upsample``, ``F.interpolate``) upsamples evenly by construction: every
output phase's weights sum to one; it is listed (``even (interpolation)``), never
uneven.

Two views, both from the trace:

* **structural** — per upsampling layer, its own overlap tile; and, per axis,
  the tile of the *composed* geometry from the model input to that layer (the
  response of an all-ones network to a constant input, :func:`phase_counts`), so
  that compounding across chained layers is measured, not guessed;
* **weights** — with the current weights, each output phase's response to a
  constant input (the sum of the taps of that phase, per channel). Even overlap
  does not stop weights from producing the pattern (Aitken et al., "Checkerboard
  artifact free sub-pixel convolution", arXiv 1707.02937); ICNR-initialised or
  flat kernels score zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_convcheck.fields import data_inputs, transposed_phase_taps
from pytest_convcheck.inputs import as_inputs
from pytest_convcheck.layers import (
    ConvSpec,
    InterpolateSpec,
    PhaseTaps,
    PixelShuffleSpec,
    PoolSpec,
    Spec,
)
from pytest_convcheck.tracing import MODEL_INPUT, Trace, TraceLayer, TraceNode, trace

__all__ = [
    "EVEN_TOLERANCE",
    "WEIGHT_THRESHOLD",
    "CheckerboardReport",
    "Interpolation",
    "LayerTile",
    "PhaseCounts",
    "PhaseWeights",
    "checkerboard",
    "format_imbalance",
    "overlap_counts",
    "phase_counts",
    "report_from_trace",
]

EVEN_TOLERANCE = 1e-9  # a ratio within this of 1 is even (float sums of equal taps)
WEIGHT_THRESHOLD = 0.05
"""``kind="weights"`` fails when some channel's phase responses differ by more than
5% of the mean absolute response (see :class:`PhaseWeights`)."""


def overlap_counts(kernel: int, stride: int, dilation: int = 1) -> tuple[int, ...]:
    """Taps landing on each output phase of a 1-D transposed conv:
    ``#{t < k : d·t ≡ r (mod s)}`` for r = 0..s−1 (Odena et al. 2016)."""
    counts = [0] * stride
    for t in range(kernel):
        counts[(dilation * t) % stride] += 1
    return tuple(counts)


def format_imbalance(value: float) -> str:
    """An imbalance as every report writes it: 4 significant digits (``2.56``,
    ``1.849``, ``4``), ``∞`` when a phase gets no tap. ``to_dict()`` stores the
    same 4 digits as a number (``"inf"`` for ∞)."""
    if math.isinf(value):
        return "∞"
    return f"{value:.4g}"


def _ratio(counts: Sequence[float]) -> float:
    low, high = min(counts), max(counts)
    if high <= 0:
        return 1.0
    return math.inf if low <= 0 else high / low


# --------------------------------------------------------------------------- composed counts


@dataclass(frozen=True)
class PhaseCounts:
    """Per axis: the response of an all-ones network to a constant input, per
    output phase. Output ``j = q·period + r`` receives ``totals[r]``."""

    period: int
    advance: int
    totals: tuple[float, ...]

    @staticmethod
    def flat() -> PhaseCounts:
        return PhaseCounts(1, 1, (1.0,))

    def at(self, i: int) -> float:
        return self.totals[i % self.period]

    def then(
        self, period: int, advance: int, taps: Sequence[Sequence[tuple[int, float]]]
    ) -> PhaseCounts:
        """Apply a layer whose output ``j = q·period + r`` sums ``weight × input[q·advance + x]``
        over ``(x, weight)`` in ``taps[r]``."""
        k = self.period // math.gcd(advance, self.period)
        new_period = period * k
        new_advance = (k * advance // self.period) * self.advance
        totals = []
        for r in range(new_period):
            q, phase = divmod(r, period)
            base = q * advance
            totals.append(sum(w * self.at(base + x) for x, w in taps[phase]))
        peak = max((abs(t) for t in totals), default=1.0) or 1.0
        return PhaseCounts(new_period, new_advance, tuple(t / peak for t in totals))

    def merge(self, other: PhaseCounts) -> PhaseCounts | None:
        if self.advance * other.period != other.advance * self.period:
            return None
        period = math.lcm(self.period, other.period)
        totals = tuple(self.at(r) + other.at(r) for r in range(period))
        peak = max(abs(t) for t in totals) or 1.0
        return PhaseCounts(
            period, self.advance * (period // self.period), tuple(t / peak for t in totals)
        )

    @property
    def ratio(self) -> float:
        return _ratio(self.totals)


def _layer_taps(node: TraceNode, spatial: int) -> PhaseTaps | None:
    """Per axis (period, advance, taps with weights) of a node, from its spec
    (:meth:`~pytest_convcheck.layers.Spec.phase_taps`); ``None`` if pointwise; an
    empty list when the spatial structure ends. Ops without phase geometry (no rule,
    products, unpooling, …) end it where their spatial sizes change."""
    spec = node.spec
    in_shape = node.input_shapes[0] if node.input_shapes else None
    out_shape = node.output_shape
    if (
        spec is not None
        and in_shape is not None
        and out_shape is not None
        and type(spec).phase_taps is not Spec.phase_taps
    ):
        taps = spec.phase_taps(in_shape, out_shape)
        if not taps:
            return taps
        return taps[-spatial:] if len(taps) >= spatial else []
    if (
        in_shape
        and out_shape
        and (
            len(out_shape) < spatial + 2
            or tuple(in_shape[-spatial:]) != tuple(out_shape[-spatial:])
        )
    ):
        return []
    return None


def phase_counts(result: Trace) -> dict[int, tuple[PhaseCounts, ...] | None]:
    """Per node, the composed per-axis phase counts from the model input; ``None``
    once the spatial structure has ended."""
    spatial = result.spatial
    flat = tuple(PhaseCounts.flat() for _ in range(spatial))
    counts: dict[int, tuple[PhaseCounts, ...] | None] = {MODEL_INPUT: flat}
    for node in result.nodes:
        sources = [counts[p] for p in data_inputs(node, counts)]
        live = [s for s in sources if s is not None]
        if not sources:
            counts[node.node_id] = flat
            continue
        if not live:
            counts[node.node_id] = None
            continue
        merged = live[0]
        for other in live[1:]:
            combined = []
            for a, b in zip(merged, other, strict=True):
                joined = a.merge(b)
                combined.append(a if joined is None else joined)
            merged = tuple(combined)
        if (
            isinstance(node.spec, (ConvSpec, PoolSpec))
            and not getattr(node.spec, "transposed", False)
            and len(node.spec.stride) == len(merged)
            and all(m.period == 1 for m in merged)
        ):
            # a conv or pool of a one-phase input: one phase out, the stride multiplies
            counts[node.node_id] = tuple(
                PhaseCounts(1, m.advance * s, m.totals)
                for m, s in zip(merged, node.spec.stride, strict=True)
            )
            continue
        layer = _layer_taps(node, spatial)
        if layer is None:
            counts[node.node_id] = merged
        elif not layer:
            counts[node.node_id] = None
        else:
            counts[node.node_id] = tuple(
                m.then(period, advance, taps)
                for m, (period, advance, taps) in zip(merged, layer, strict=True)
            )
    return counts


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class PhaseWeights:
    """Per output channel, the response of each output phase to a constant input
    with the layer's current weights. ``score`` is the largest per-channel spread
    (max − min over phases) relative to the mean absolute response."""

    responses: torch.Tensor  # (out_channels, phases)
    score: float


@dataclass(frozen=True)
class LayerTile:
    """One upsampling layer: its own overlap tile and the composed tile at its output."""

    name: str
    kind: str
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]  # per axis, taps per phase (its own geometry)
    ratio: float  # max/min over its own tile (inf: a phase gets no tap)
    composed: tuple[tuple[float, ...], ...]  # per axis, phase totals from the model input
    composed_ratio: float
    weights: PhaseWeights | None = None

    @property
    def even(self) -> bool:
        return self.ratio <= 1.0 + EVEN_TOLERANCE

    @property
    def tile(self) -> list[list[int]] | list[int]:
        """The 2-D tile (rows × columns of phases); per-axis counts for 1-D/3-D."""
        if len(self.counts) == 2:
            return [[a * b for b in self.counts[1]] for a in self.counts[0]]
        return list(self.counts[0]) if len(self.counts) == 1 else [list(c) for c in self.counts]

    def describe(self) -> str:
        """One line: geometry, own tile and its imbalance; the composed imbalance
        where it differs from the own one (chained layers compound)."""
        ratio = format_imbalance(self.ratio)
        if math.isinf(self.ratio):
            ratio += " (a phase gets no tap: a hole)"
        text = (
            f"{self.name} ({self.kind}, kernel {self.kernel}, stride {self.stride}, dilation "
            f"{self.dilation}): taps per phase {self.counts}, tile {self.tile}, imbalance {ratio}"
        )
        if self.composed_ratio > 1 + EVEN_TOLERANCE and not math.isclose(
            self.composed_ratio, self.ratio, rel_tol=EVEN_TOLERANCE
        ):
            text += f"; composed from the input: imbalance {format_imbalance(self.composed_ratio)}"
        return text


@dataclass(frozen=True)
class Interpolation:
    """One interpolation upsampling (``nn.Upsample``, ``F.interpolate``): output
    phase r of an axis reads a few inputs with weights summing to one, so its own
    tile (the response to a constant input, per phase) is flat: imbalance 1."""

    name: str
    kind: str
    mode: str
    sizes: tuple[tuple[int, int], ...]  # per axis (input, output)
    ratio: float  # max/min over its own tile: 1 (computed, not assumed)

    def describe(self) -> str:
        sizes = ", ".join(f"{a}→{b}" for a, b in self.sizes)
        return (
            f"{self.name} ({self.kind}, {self.mode}): interpolation {sizes}; every output "
            f"phase's weights sum to 1, imbalance {format_imbalance(self.ratio)}"
        )


@dataclass(frozen=True)
class CheckerboardReport:
    """Checkerboard analysis of one model (or layer)."""

    model: str
    input_shape: tuple[int, ...] | None
    layers: tuple[LayerTile, ...]
    output_counts: tuple[tuple[float, ...], ...]
    output_ratio: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    interpolations: tuple[Interpolation, ...] = ()

    @property
    def imbalance(self) -> float:
        """The model's one checkerboard figure, shown by the summary table, the JSON
        report and the failure text alike::

            imbalance = max( max_L ratio(own tile of L), max_L ratio(composed tile at L),
                             ratio(composed tile at the output) )

        over the upsampling layers L (transposed convs with a stride > 1, pixel
        shuffles), where ``ratio(tile) = Π_axis max_r c_r / min_r c_r`` of the
        per-phase totals ``c_r`` (∞ when a phase gets nothing: a hole). The own tile
        counts taps, ``#{t < k : d·t ≡ r (mod s)}``; the composed tile is the
        response of the all-ones network from the model input. 1 when nothing
        upsamples or everything upsamples evenly; ``structural`` is exactly
        ``imbalance > 1``. The worst place, not the output alone: later layers can
        smooth the output's figure (×1.5625 after a k=3/s=2 transposed conv and a
        3×3 conv) while the layer itself paints ×4."""
        ratios = [self.output_ratio]
        for tile in self.layers:
            ratios += [tile.ratio, tile.composed_ratio]
        return max(ratios)

    @property
    def structural(self) -> bool:
        """Some upsampling layer, or the composed chain at some layer or at the
        output, has an uneven overlap tile: ``imbalance > 1``."""
        return self.imbalance > 1 + EVEN_TOLERANCE

    @property
    def weight_score(self) -> float:
        scores = [t.weights.score for t in self.layers if t.weights is not None]
        return max(scores, default=0.0)

    def __str__(self) -> str:
        verdict = (
            f"uneven (structural checkerboard), imbalance ×{format_imbalance(self.imbalance)}"
            if self.structural
            else "even (interpolation)"
            if self.interpolations and not self.layers
            else "even"
        )
        lines = [f"checkerboard analysis of {self.model}: overlap {verdict}"]
        for tile in self.layers:
            line = f"  {tile.describe()}"
            if tile.weights is not None:
                line += f"; weights score {tile.weights.score:.3g}"
            lines.append(line)
        lines += [f"  {i.describe()}" for i in self.interpolations]
        if not self.layers and not self.interpolations:
            lines.append("  no upsampling layers")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def save_png(self, path: str | Path, kind: str = "structural") -> Path:
        """The overlap tiles (``kind="structural"``) or the per-phase gains of the
        weights (``kind="weights"``) as a picture with colour bars, axis labels and a
        caption holding the figure (needs the ``plots`` extra: matplotlib; see
        :mod:`pytest_convcheck.pictures`)."""
        from pytest_convcheck.pictures import phase_gains_picture, tiles_picture

        if kind == "weights":
            return phase_gains_picture(self, threshold=WEIGHT_THRESHOLD).save(path)
        return tiles_picture(self).save(path)


def _interpolating(node: TraceNode, spatial: int) -> bool:
    """An ``nn.Upsample``/``F.interpolate`` node that makes some spatial axis larger."""
    if not isinstance(node.spec, InterpolateSpec) or not node.input_shapes or spatial < 1:
        return False
    size_in, size_out = node.input_shapes[0], node.output_shape
    if not size_out or len(size_in) < spatial or len(size_out) < spatial:
        return False
    return any(b > a for a, b in zip(size_in[-spatial:], size_out[-spatial:], strict=True))


def _upsampling(node: TraceNode) -> bool:
    """A layer that spreads inputs over output phases (its spec says so)."""
    return bool(getattr(node.spec, "upsamples", False))


def _phase_weights(
    node: TraceNode, result: Trace, modules: dict[str, nn.Module]
) -> PhaseWeights | None:
    """Per output channel and phase, the response to a constant input with the
    current weights of the module that ran ``node`` (a transposed conv, or the
    conv feeding a pixel shuffle)."""
    spec = node.spec
    module = modules.get(node.module)
    if isinstance(spec, ConvSpec) and isinstance(module, nn.modules.conv._ConvTransposeNd):
        summed = module.weight.detach().to("cpu", torch.float64).sum(0)  # (out/groups, *k)
        per_axis = [
            transposed_phase_taps(k, s, p, d)
            for k, s, (p, _), d in zip(
                spec.kernel, spec.stride, spec.padding_pairs(), spec.dilation, strict=True
            )
        ]
        responses = []
        for combo in _product(per_axis):
            block = summed
            for axis, taps in enumerate(combo):
                block = block.index_select(axis + 1, torch.tensor(taps, dtype=torch.long))
            responses.append(block.reshape(block.shape[0], -1).sum(1))
        table = torch.stack(responses, dim=1)  # (out, phases)
        return PhaseWeights(table, _spread(table))
    if isinstance(spec, PixelShuffleSpec) and not spec.inverse:
        producer = next((result.nodes[i] for i in node.inputs if i is not None and i >= 0), None)
        conv = modules.get(producer.module) if producer is not None else None
        if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed:
            return None
        r = spec.factor
        weight = conv.weight.detach().to("cpu", torch.float64)  # (C·r², in, *k)
        per_out = weight.reshape(weight.shape[0], -1).sum(1)  # response to a constant input
        table = per_out.reshape(-1, r * r)  # output channel c·r² + phase
        return PhaseWeights(table, _spread(table))
    return None


def _product(per_axis: list[list[list[int]]]) -> list[tuple[list[int], ...]]:
    combos: list[tuple[list[int], ...]] = [()]
    for phases in per_axis:
        combos = [(*c, taps) for c in combos for taps in phases]
    return combos


def _spread(table: torch.Tensor) -> float:
    scale = float(table.abs().mean())
    if scale == 0.0:
        return 0.0
    return float((table.max(dim=1).values - table.min(dim=1).values).max()) / scale


def checkerboard(
    model_or_layer: nn.Module,
    input_shape: Any = None,
    *,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> CheckerboardReport:
    """Structural and weight analysis of every upsampling layer of a model (or of one
    layer: ``input_shape`` may then be omitted for a transposed conv). For several
    inputs (see :mod:`pytest_convcheck.inputs`), the phases are those of the primary
    input's positions (``input=``)."""
    model = model_or_layer
    if input_shape is None and example_inputs is not None:
        input_shape = as_inputs(example_inputs=example_inputs, input=input)
    if input_shape is None:
        if not isinstance(model, nn.modules.conv._ConvTransposeNd):
            raise ValueError(
                f"checkerboard({type(model).__name__}) needs an input_shape, e.g. "
                f"checkerboard(model, (1, 3, 64, 64)); only a transposed conv layer can be "
                f"analysed without one"
            )
        dims = len(model.kernel_size)
        input_shape = (1, model.in_channels, *([8] * dims))
    result = trace(model, input_shape, input=input)
    return report_from_trace(result, model)


def report_from_trace(result: Trace, model: nn.Module | None = None) -> CheckerboardReport:
    """The checkerboard report of a traced model (weights read from ``model``); the
    structural one (no model) is computed once per trace and per plan it is replayed
    from (:attr:`Trace.analyses`)."""
    if model is not None:
        return _report_from_trace(result, model)
    known = result.analyses.get("checkerboard")
    if known is None:
        known = result.analyses["checkerboard"] = _report_from_trace(result, None)
    return known


def _report_from_trace(result: Trace, model: nn.Module | None) -> CheckerboardReport:
    spatial = result.spatial
    counts = phase_counts(result)
    modules = dict(model.named_modules()) if model is not None else {}
    rows = {i: layer for layer in result.layers for i in layer.nodes}
    tiles = []
    interpolations = []
    notes = []
    for node in result.nodes:
        if _interpolating(node, spatial):
            interpolations.append(_interpolation_of(node, rows.get(node.node_id), spatial))
            continue
        if not _upsampling(node):
            continue
        spec = node.spec
        if isinstance(spec, ConvSpec):
            kernel, stride, dilation = spec.kernel, spec.stride, spec.dilation
            own = tuple(
                overlap_counts(k, s, d) for k, s, d in zip(kernel, stride, dilation, strict=True)
            )
            kind = {1: "ConvTranspose1d", 2: "ConvTranspose2d", 3: "ConvTranspose3d"}[spec.dims]
        else:
            assert isinstance(spec, PixelShuffleSpec)
            kernel, stride, dilation = (1,) * spatial, (spec.factor,) * spatial, (1,) * spatial
            own = tuple((1,) * spec.factor for _ in range(spatial))
            kind = "PixelShuffle"
        ratio = math.prod(_ratio(c) for c in own)
        composed_axes = counts.get(node.node_id)
        composed = tuple(c.totals for c in composed_axes) if composed_axes else ()
        composed_ratio = math.prod(c.ratio for c in composed_axes) if composed_axes else 1.0
        weights = _phase_weights(node, result, modules)
        if weights is None and isinstance(spec, ConvSpec):
            notes.append(f"{node.module or node.op}: weights not found (a functional call)")
        tiles.append(
            LayerTile(
                node.module or node.op,
                kind,
                kernel,
                stride,
                dilation,
                own,
                ratio,
                composed,
                composed_ratio,
                weights,
            )
        )
    out = result.output_nodes[0] if result.output_nodes else MODEL_INPUT
    out_counts = counts.get(out)
    output_counts = tuple(c.totals for c in out_counts) if out_counts else ()
    output_ratio = math.prod(c.ratio for c in out_counts) if out_counts else 1.0
    return CheckerboardReport(
        result.model,
        result.input_shape,
        tuple(tiles),
        output_counts,
        output_ratio,
        tuple(dict.fromkeys(notes)),
        tuple(interpolations),
    )


def _interpolation_of(node: TraceNode, row: TraceLayer | None, spatial: int) -> Interpolation:
    """The interpolation entry of ``node``: its own tile from its taps on a flat input."""
    spec = node.spec
    assert isinstance(spec, InterpolateSpec)
    size_in, size_out = node.input_shapes[0][-spatial:], (node.output_shape or ())[-spatial:]
    ratio = 1.0
    for period, advance, taps in _layer_taps(node, spatial) or []:
        ratio *= PhaseCounts.flat().then(period, advance, taps).ratio
    return Interpolation(
        row.name if row is not None else node.module or node.op,
        row.kind if row is not None else spec.kind,
        spec.mode,
        tuple(zip(size_in, size_out, strict=True)),
        ratio,
    )
