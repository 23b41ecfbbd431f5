"""Pictures of failed checks (the ``plots`` extra). Importing this module never
imports matplotlib or torch; :func:`pyplot` imports matplotlib, with a clear error
without it.

Each picture shows the finding of its own check — not a neighbouring one:

===========================  ==============================================================
check (kind)                 picture
===========================  ==============================================================
shapes                       :func:`shape_trace_picture`: the spatial sizes along depth, the
                             expected output marked, the layers that set the wrong size
batch                        :func:`batch_picture`: which output sample depends on which
                             input sample (largest gradient), the diagonal is allowed
receptive_field              :func:`field_picture`: the input positions one output position
                             reads, the holes marked ×, the configured bounds drawn
checkerboard, structural     :func:`tiles_picture`: kernel taps per output phase, per
                             upsampling layer and composed at the output
checkerboard, weights        :func:`phase_gains_picture`: each output phase's response to a
                             constant input, per channel, per upsampling layer
checkerboard, output         :func:`spectrum_picture`: the model's output on a smooth input
/ gradient                   (or the input gradient) next to its power spectrum, the stride
                             frequencies marked
===========================  ==============================================================

Every image has a colour bar and axis labels, every figure a title and a one-line
caption with the number that failed. :class:`Picture` keeps the title, the caption
and the facts it shows (``facts``: e.g. the marked frequencies), and writes them
into the PNG's text chunks (``Title``, ``Description``, ``convcheck``: JSON), so a
test or a CI job can tell which finding a PNG shows.

The figures are ``matplotlib.figure.Figure`` objects on their own Agg canvas: no
``matplotlib.use`` and no pyplot, so drawing a picture never switches the
process's backend or leaves a figure in pyplot's list of open figures.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Picture",
    "batch_picture",
    "erf_picture",
    "field_picture",
    "phase_gains_picture",
    "pyplot",
    "read_png_text",
    "shape_trace_picture",
    "spectrum_picture",
    "stride_frequencies",
    "tiles_picture",
]


class _Figures:
    """The two pyplot calls the pictures use, on free-standing Agg figures."""

    def __init__(self, figure_class: Any, canvas_class: Any) -> None:
        self._figure = figure_class
        self._canvas = canvas_class

    def figure(self, figsize: tuple[float, float] | None = None) -> Any:
        figure = self._figure(figsize=figsize)
        self._canvas(figure)
        return figure

    def subplots(
        self,
        nrows: int = 1,
        ncols: int = 1,
        *,
        figsize: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Any]:
        figure = self.figure(figsize)
        return figure, figure.subplots(nrows, ncols, **kwargs)

    def close(self, figure: Any) -> None:
        """Nothing to release: the figure is not registered anywhere."""


def pyplot() -> Any:
    """An object with pyplot's ``subplots``, ``figure`` and ``close`` that draws on
    free-standing figures with the Agg canvas (headless, backend untouched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "pictures need matplotlib: pip install 'pytest-convcheck[plots]'"
        ) from error
    return _Figures(Figure, FigureCanvasAgg)


@dataclass
class Picture:
    """A drawn figure and what it shows: ``title`` (what was checked), ``caption``
    (one line with the number that failed), ``facts`` (JSON-able: the finding's
    kind, its figure, marked frequencies, …)."""

    figure: Any
    title: str
    caption: str
    facts: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        """The PNG text chunks this picture writes."""
        return {
            "Title": self.title,
            "Description": self.caption,
            "Software": "pytest-convcheck",
            "convcheck": json.dumps(self.facts, sort_keys=True, default=str),
        }

    def png(self, dpi: int = 100) -> bytes:
        """The picture as PNG bytes, its title, caption and facts in text chunks."""
        buffer = io.BytesIO()
        self.figure.savefig(
            buffer, format="png", dpi=dpi, bbox_inches="tight", metadata=self.metadata()
        )
        return buffer.getvalue()

    def save(self, path: str | Path, dpi: int = 100) -> Path:
        target = Path(path)
        target.write_bytes(self.png(dpi))
        return target


def read_png_text(data: bytes | str | Path) -> dict[str, str]:
    """The text chunks (``tEXt``, ``iTXt``, ``zTXt``) of a PNG: what
    :meth:`Picture.png` wrote."""
    import struct
    import zlib

    raw = data if isinstance(data, bytes) else Path(data).read_bytes()
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    found: dict[str, str] = {}
    at = 8
    while at + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[at : at + 4])
        kind = raw[at + 4 : at + 8]
        body = raw[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            found[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")  # language tag
            _, _, text = rest.partition(b"\0")  # translated keyword
            found[key.decode("utf-8")] = (zlib.decompress(text) if compressed else text).decode(
                "utf-8"
            )
        elif kind == b"IEND":
            break
    return found


def _finish(figure: Any, title: str, caption: str, facts: dict[str, Any]) -> Picture:
    """Title on top, the one-line caption under the panels (room kept for it)."""
    figure.suptitle(title, fontsize=10, fontweight="bold")
    lines = max(1, math.ceil(len(caption) * 5.2 / (figure.get_figwidth() * 72)))
    room = min(0.3, (0.09 + 0.035 * lines) * 3.8 / figure.get_figheight())
    figure.tight_layout(rect=(0, room, 1, 1))
    figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8.5, wrap=True)
    return Picture(figure, title, caption, facts)


def _colorbar(figure: Any, image: Any, axes: Any, label: str) -> Any:
    bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def _tile(counts: Sequence[Sequence[float]]) -> list[list[float]]:
    """The 2-D tile of per-axis phase counts (rows: first axis); a 1-D count is one
    row, a 3-D one shows its last two axes."""
    axes = list(counts)
    if not axes:
        return [[1.0]]
    if len(axes) == 1:
        return [list(axes[0])]
    rows, cols = axes[-2], axes[-1]
    return [[float(a) * float(b) for b in cols] for a in rows]


def _annotate(axes: Any, tile: list[list[float]], *, dark_high: bool = False) -> None:
    """Write each cell's value on it (small tiles only), in a colour that reads on
    the cell (``dark_high``: the colour map is dark at high values)."""
    if len(tile) * len(tile[0]) > 64:
        return
    top = max(max(row) for row in tile) or 1.0
    for i, row in enumerate(tile):
        for j, value in enumerate(row):
            text = f"{value:.3g}"
            axes.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="black" if (value > 0.6 * top) != dark_high else "white",
            )


def _ratio_text(value: float) -> str:
    if math.isinf(value):
        return "∞ (a phase gets no tap)"
    return f"{value:.4g}"


# --------------------------------------------------------------------------- checkerboard


def tiles_picture(board: Any) -> Picture:
    """Structural checkerboard (:class:`~pytest_convcheck.checkerboards.CheckerboardReport`):
    for each uneven upsampling layer (at most three, the worst first) its own tile
    of kernel taps per output phase, and the tile composed at the model's output."""
    plt = pyplot()
    layers = sorted(board.layers, key=lambda t: -max(t.ratio, t.composed_ratio))
    shown = [t for t in layers if max(t.ratio, t.composed_ratio) > 1 + 1e-9][:3] or layers[:1]
    panels: list[tuple[str, list[list[float]], str, str]] = [
        (
            f"{t.name}: own tile\nkernel {t.kernel}, stride {t.stride}, dilation {t.dilation}",
            _tile(t.counts),
            f"imbalance ×{_ratio_text(t.ratio)}",
            "kernel taps per output phase",
        )
        for t in shown
    ]
    if board.output_counts:
        panels.append(
            (
                "composed at the output\n(all-ones network, constant input)",
                _tile(board.output_counts),
                f"imbalance ×{_ratio_text(board.output_ratio)}",
                "response per output phase (relative)",
            )
        )
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (name, tile, ratio, unit) in zip(axes[0], panels, strict=True):
        image = ax.imshow(tile, cmap="viridis", vmin=0)
        _annotate(ax, tile)
        ax.set_title(f"{name}\n{ratio}", fontsize=8)
        ax.set_xlabel("output phase along the last axis (x mod s)", fontsize=7)
        ax.set_ylabel(
            "output phase along the axis before" if len(tile) > 1 else "(1-D: one row)",
            fontsize=7,
        )
        ax.set_xticks(range(len(tile[0])))
        ax.set_yticks(range(len(tile)))
        ax.tick_params(labelsize=7)
        _colorbar(figure, image, ax, unit)
    worst = shown[0].name if shown else "the output"
    caption = (
        f"uneven overlap: imbalance ×{_ratio_text(board.imbalance)} (max/min taps per output "
        f"phase; even = ×1), worst at {worst}. Look for: tiles that are not flat."
        if board.structural
        else "even overlap: imbalance ×1, every output phase gets the same number of taps"
    )
    facts = {
        "check": "checkerboard",
        "kind": "structural",
        "imbalance": board.imbalance,
        "layers": [t.name for t in shown],
    }
    return _finish(figure, f"structural checkerboard of {board.model}", caption, facts)


def phase_gains_picture(board: Any, *, threshold: float, weights: str = "") -> Picture:
    """``weights`` checkerboard: per upsampling layer with weights, each output
    channel's response (the sum of the taps that reach that phase) to a constant
    input, divided by the mean absolute response; an even row is artifact-free."""
    plt = pyplot()
    layers = [t for t in board.layers if t.weights is not None]
    layers.sort(key=lambda t: -t.weights.score)
    shown = layers[:3]
    if not shown:
        raise ValueError("no upsampling layer with weights to draw")
    figure, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.8), squeeze=False)
    for ax, tile in zip(axes[0], shown, strict=True):
        table = tile.weights.responses.double()
        scale = float(table.abs().mean()) or 1.0
        spread = table.max(1).values - table.min(1).values
        order = spread.argsort(descending=True)[:24].sort().values  # the worst channels
        data = (table[order] / scale).tolist()
        image = ax.imshow(data, cmap="coolwarm", aspect="auto")
        ax.set_title(
            f"{tile.name} ({tile.kind}, kernel {tile.kernel}, stride {tile.stride})\n"
            f"spread score {tile.weights.score:.3g}",
            fontsize=8,
        )
        ax.set_xlabel("output phase (row-major over the tile)", fontsize=7)
        ax.set_ylabel("output channel", fontsize=7)
        ax.set_xticks(range(table.shape[1]))
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels([str(int(c)) for c in order], fontsize=6)
        ax.tick_params(labelsize=7)
        _colorbar(figure, image, ax, "response to a constant input / mean |response|")
    failed = board.weight_score > threshold
    caption = (
        f"{'weights paint a checkerboard: ' if failed else ''}spread score "
        f"{board.weight_score:.3g} {'>' if failed else '≤'} {threshold} (max − min over phases, "
        f"over the mean |response|), worst at {shown[0].name}"
        f"{'; ' + weights if weights else ''}. Look for: rows that are not one colour."
    )
    facts = {
        "check": "checkerboard",
        "kind": "weights",
        "score": board.weight_score,
        "threshold": threshold,
        "layers": [t.name for t in shown],
    }
    return _finish(figure, f"per-phase gains of the weights of {board.model}", caption, facts)


def stride_frequencies(shape: Sequence[int], period: Sequence[int]) -> list[list[int]]:
    """Per axis of a spectrum of ``shape``, the frequency indices ``m·N/P`` (m ≥ 1)
    that the stride-frequency score counts, shifted as ``fftshift`` shifts them."""
    marks: list[list[int]] = []
    for n, p in zip(shape[-len(period) :] if period else (), period, strict=True):
        if p <= 1 or n // p < 1:
            marks.append([])
            continue
        step = n // p
        marks.append(sorted(((m * step) + n // 2) % n for m in range(1, p)))
    return marks


def _signal_panel(figure: Any, ax: Any, signal: Any, kind: str, where: str) -> None:
    """The output (or input gradient) as an image: channel 0, the middle slice of 3-D."""
    image = signal.detach().double()
    while image.dim() > 2 and image.shape[0] == 1:
        image = image[0]
    while image.dim() > 2:
        image = image[image.shape[0] // 2] if image.dim() > 3 else image[0]
    if image.dim() == 1:
        ax.plot(image.numpy(), lw=0.8)
        ax.set_xlabel("position", fontsize=7)
        ax.set_ylabel("value", fontsize=7)
    else:
        shown = ax.imshow(image.numpy(), cmap="gray")
        ax.set_xlabel("x (pixels)", fontsize=7)
        ax.set_ylabel("y (pixels)", fontsize=7)
        _colorbar(figure, shown, ax, "value" if kind == "output" else "∂ loss / ∂ input")
    ax.set_title(f"{where} (channel 0)", fontsize=8)


def spectrum_picture(
    signal: Any,
    score: Any,
    *,
    kind: str,
    model: str,
    threshold: float,
    weights: str = "",
) -> Picture:
    """``output``/``gradient`` checkerboard: ``signal`` (the model's output on a smooth
    input, or the input gradient: a tensor ``(N, C, *spatial)``; ``None``: the
    spectrum alone) as an image, next to its log power spectrum (``score.spectrum``)
    with the stride frequencies marked ×."""
    import torch

    plt = pyplot()
    spectrum = score.spectrum
    if spectrum is None:
        raise ValueError("no spectrum to draw: the signal has no stride frequencies")
    power = torch.fft.fftshift(spectrum).log1p()
    while power.dim() > 2:
        power = power.sum(0)
    period = tuple(score.period)[-power.dim() :] if score.period else ()
    marks = stride_frequencies(tuple(power.shape), period)
    where = "output on a smooth input" if kind == "output" else "input gradient"
    if signal is None:
        figure, right = plt.subplots(figsize=(4.6, 3.8))
        panels = [right]
    else:
        figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.8))
        panels = [left, right]
        _signal_panel(figure, left, signal, kind, where)
    if power.dim() == 1:
        right.plot(power.numpy(), lw=0.8)
        for x in marks[0] if marks else ():
            right.axvline(x, color="red", ls="--", lw=0.8)
        right.set_xlabel("frequency index (DC in the middle)", fontsize=7)
        right.set_ylabel("log(1 + power)", fontsize=7)
    else:
        shown = right.imshow(power.numpy(), cmap="magma")
        centre = (power.shape[0] // 2, power.shape[1] // 2)
        rows = marks[0] if len(marks) == 2 else []
        cols = marks[1] if len(marks) == 2 else []
        for y in rows:  # the score counts these whole rows and columns
            right.axhline(y, color="cyan", ls=":", lw=0.6)
        for x in cols:
            right.axvline(x, color="cyan", ls=":", lw=0.6)
        points = [
            (x, y) for y in [centre[0], *rows] for x in [centre[1], *cols] if (y, x) != centre
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            right.scatter(xs, ys, marker="x", s=40, c="cyan", linewidths=1.2)
        right.set_xlabel("frequency along x (DC in the middle)", fontsize=7)
        right.set_ylabel("frequency along y", fontsize=7)
        _colorbar(figure, shown, right, "log(1 + power)")
    right.set_title(f"power spectrum, stride frequencies m·N/P marked (P = {period})", fontsize=8)
    for ax in panels:
        ax.tick_params(labelsize=7)
    verdict = "above" if score.score > threshold else "within"
    caption = (
        f"{score.score:.1%} of the {where}'s spectral energy (DC excluded) lies at the stride "
        f"frequencies, {verdict} the {threshold:.0%} a smooth {kind} stays under"
        f"{'; ' + weights if weights else ''}. Look for: a regular grid in the image, bright "
        f"peaks at the × marks."
    )
    facts = {
        "check": "checkerboard",
        "kind": kind,
        "score": score.score,
        "threshold": threshold,
        "period": list(period),
        "marked_frequencies": marks,
    }
    return _finish(figure, f"{kind} checkerboard of {model}", caption, facts)


# --------------------------------------------------------------------------- fields


def field_picture(
    field_: Any,
    index: Sequence[int],
    *,
    bounds: dict[str, Any] | None = None,
    finding: str = "",
) -> Picture:
    """``receptive_field``: the input positions output position ``index`` reads (per
    axis, their product), the holes inside the field marked ×, the field's extent
    and the configured bounds (``receptive_field_min``/``_max``/``_exact``) as
    squares centred on it."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    spatial = len(field_.size)
    positions = field_.positions(tuple(index))
    extent = field_.input_shape[-spatial:]
    if spatial == 1:
        positions, extent = ((0,), *positions), (1, *extent)
    elif spatial > 2:
        positions, extent = positions[-2:], extent[-2:]
    rows, cols = positions[0], positions[1]
    grid = [[0.0] * extent[1] for _ in range(extent[0])]
    for y in rows:
        for x in cols:
            grid[y][x] = 1.0
    holes: list[tuple[int, int]] = []
    if rows and cols:
        missing_rows = [y for y in range(rows[0], rows[-1] + 1) if y not in set(rows)]
        missing_cols = [x for x in range(cols[0], cols[-1] + 1) if x not in set(cols)]
        holes = [(y, x) for y in range(rows[0], rows[-1] + 1) for x in missing_cols]
        holes += [(y, x) for y in missing_rows for x in cols]
    figure, ax = plt.subplots(figsize=(4.8, 4.4))
    shown = ax.imshow(grid, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if holes:
        ys, xs = zip(*holes, strict=True)
        ax.scatter(xs, ys, marker="x", c="red", s=18 if len(holes) < 400 else 4, linewidths=1)
    if rows and cols:
        ax.add_patch(
            Rectangle(
                (cols[0] - 0.5, rows[0] - 0.5),
                cols[-1] - cols[0] + 1,
                rows[-1] - rows[0] + 1,
                fill=False,
                ec="black",
                lw=1,
                label="field",
            )
        )
        middle = ((cols[0] + cols[-1]) / 2, (rows[0] + rows[-1]) / 2)
        for (name, value), colour in zip(
            (bounds or {}).items(), ("green", "orange", "purple"), strict=False
        ):
            sizes = [value] * 2 if isinstance(value, int) else list(value)[-2:]
            if len(sizes) == 1:
                sizes = [1, sizes[0]]
            ax.add_patch(
                Rectangle(
                    (middle[0] - sizes[-1] / 2, middle[1] - sizes[0] / 2),
                    sizes[-1],
                    sizes[0],
                    fill=False,
                    ec=colour,
                    lw=1.2,
                    ls="--",
                    label=f"{name} {value}",
                )
            )
        ax.legend(fontsize=6, loc="upper right")
    ax.set_xlabel("input x (pixels)", fontsize=7)
    ax.set_ylabel("input y (pixels)" if spatial > 1 else "(1-D)", fontsize=7)
    ax.tick_params(labelsize=7)
    _colorbar(figure, shown, ax, "read by the output position (1) or not (0)")
    ax.set_title(f"input positions read by output position {tuple(index)}", fontsize=8)
    size = "×".join(map(str, field_.size))
    caption = finding or (
        f"receptive field {size}"
        + (f"; {len(holes)} positions inside it are read by no path (holes ×)" if holes else "")
    )
    facts = {
        "check": "receptive_field",
        "size": list(field_.size),
        "holes": len(holes),
        "index": list(index),
        "bounds": bounds or {},
    }
    return _finish(figure, f"receptive field of {field_.model}", caption, facts)


def erf_picture(effective: Any) -> Picture:
    """Luo et al.'s effective receptive field
    (:class:`~pytest_convcheck.measured_fields.EffectiveField`): the mean gradient
    magnitude map, with the centred squares holding 20/50/99 % of its mass."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    data = effective.grad_map.detach().double()
    if data.dim() == 1:
        data = data.unsqueeze(0)
    while data.dim() > 2:
        data = data.sum(0)
    figure, ax = plt.subplots(figsize=(4.8, 4.4))
    shown = ax.imshow(data.numpy(), cmap="magma")
    centre = tuple(effective.centre)[-2:] if len(effective.centre) >= 2 else (0, *effective.centre)
    for (fraction, side), colour in zip(
        sorted(effective.sides.items()), ("cyan", "lime", "white"), strict=False
    ):
        ax.add_patch(
            Rectangle(
                (centre[-1] - side / 2, centre[0] - side / 2 if data.shape[0] > 1 else -0.5),
                side,
                side if data.shape[0] > 1 else 1,
                fill=False,
                ec=colour,
                lw=1,
                label=f"{int(fraction * 100)}% of the mass: {side}",
            )
        )
    if effective.sides:
        ax.legend(fontsize=6, loc="upper right")
    ax.set_xlabel("input x (pixels)", fontsize=7)
    ax.set_ylabel("input y (pixels)", fontsize=7)
    ax.tick_params(labelsize=7)
    _colorbar(figure, shown, ax, "mean |∂ centre output / ∂ input|")
    ax.set_title(f"{effective.weights} weights, input {tuple(effective.input_shape)}", fontsize=8)
    parts = ", ".join(f"{int(q * 100)}%: {s}" for q, s in sorted(effective.sides.items()))
    caption = f"effective receptive field: centred squares holding {parts} of the gradient mass"
    facts = {"check": "effective_receptive_field", "sides": dict(effective.sides)}
    return _finish(figure, f"effective receptive field of {effective.model}", caption, facts)


# --------------------------------------------------------------------------- shapes, batch


@dataclass(frozen=True)
class _Point:
    name: str
    kind: str
    output_shape: tuple[int, ...]


def shape_trace_picture(
    rows: Sequence[Any], *, model: str, expected: Sequence[int | None] | None, finding: str
) -> Picture:
    """``shapes``: the spatial size of every layer's output along depth (one line per
    spatial axis), channels on a second axis, the expected output marked."""
    plt = pyplot()
    shaped = [r for r in rows if r.output_shape is not None and len(r.output_shape) >= 2]
    if not shaped:
        raise ValueError("no layer with an output shape to draw")
    first = shaped[0].input_shape
    if first is not None and len(first) >= 2:  # the model's input as the first point
        shaped.insert(0, _Point("input", "input", first))
    spatial = max(len(r.output_shape) - 2 for r in shaped)
    figure, ax = plt.subplots(figsize=(max(5.0, 0.32 * len(shaped) + 2.5), 3.8))
    xs = list(range(len(shaped)))
    for axis in range(spatial):
        ys = [
            r.output_shape[2 + axis] if len(r.output_shape) - 2 > axis else math.nan for r in shaped
        ]
        ax.plot(
            xs,
            ys,
            marker="os^"[axis % 3],
            ms=4 - axis,
            lw=1.2,
            ls=("-", "--", ":")[axis % 3],
            label=f"spatial axis {axis}",
        )
    channels = ax.twinx()
    channels.bar(xs, [r.output_shape[1] for r in shaped], alpha=0.15, color="grey")
    channels.set_ylabel("channels (bars)", fontsize=7)
    channels.tick_params(labelsize=6)
    if expected is not None and len(expected) > 2:
        for axis, want in enumerate(expected[2:]):
            if want not in (None, -1):
                ax.axhline(want, color=f"C{axis}", ls="--", lw=0.8, gid="expected")
                ax.annotate(
                    f"expected {want}",
                    (xs[-1], want),
                    fontsize=7,
                    color=f"C{axis}",
                    xytext=(4, 4),
                    textcoords="offset points",
                )
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r.name or r.kind}" for r in shaped], rotation=60, ha="right", fontsize=6)
    ax.set_xlabel("layer (in call order)", fontsize=7)
    ax.set_ylabel("output size per spatial axis", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=6, loc="best")
    facts = {
        "check": "shapes",
        "sizes": [list(r.output_shape) for r in shaped],
        "expected": list(expected) if expected is not None else None,
    }
    return _finish(figure, f"shape trace of {model}", finding, facts)


def batch_picture(influence: Sequence[Sequence[float]], *, model: str, finding: str) -> Picture:
    """``batch``: ``influence[i][j]``, the largest gradient of output sample ``i`` with
    respect to input sample ``j``; only the diagonal may be non-zero."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(4.4, 3.8))
    shown = ax.imshow(influence, cmap="Reds", vmin=0)
    _annotate(ax, [list(map(float, row)) for row in influence], dark_high=True)
    n = len(influence)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("input sample j", fontsize=7)
    ax.set_ylabel("output sample i", fontsize=7)
    ax.tick_params(labelsize=7)
    _colorbar(figure, shown, ax, "max |∂ output_i / ∂ input_j|")
    ax.set_title("which samples each output depends on (only the diagonal may be)", fontsize=8)
    off = max((float(influence[i][j]) for i in range(n) for j in range(n) if i != j), default=0.0)
    facts = {"check": "batch", "off_diagonal": off, "samples": n}
    return _finish(figure, f"batch independence of {model}", finding, facts)
