"""The ``convcheck summary`` table's text: its cells (:func:`table_rows`), its lines
(:func:`table_lines`) and the legend of the words it uses (:func:`legend`). Pure
functions of the per-model results that
:class:`~pytest_convcheck.summary.ConvcheckSummary` collects; nothing here imports
torch.
"""

from __future__ import annotations

import re
from typing import Any

DID_NOT_FINISH = "did not finish"
"""The outcome of a selected check that never reported (its worker died, or the
run stopped)."""


SHARING_WIDTH = 60
"""The sharing column's widest cell; longer ones end with a count of what is left out."""


def sharing_text(shared: dict[str, Any], layers: list[dict[str, Any]]) -> str:
    """Aliases first (likely bugs), then reused modules that hold weights (reusing a
    stateless module such as torchvision's one ReLU per block shares nothing) and
    tied groups, counted; at most :data:`SHARING_WIDTH` characters (a long alias
    group shows its first names and how many it has, further groups a count)."""

    def holds_weights(name: str) -> bool:
        return any(
            row["parameters"]
            and (row["name"] == name or row["name"].startswith((f"{name}.", f"{name}#")))
            for row in layers
        )

    def alias(group: list[str], width: int) -> str:
        text = f"ALIAS {'='.join(group)}"
        if len(text) <= width:
            return text
        count = f"=… ({len(group)} names)"
        first = group[0]
        if len(f"ALIAS {first}{count}") > width:  # even one name is too long: cut it
            first = "…" + first[-max(8, width - len(count) - 7) :]
        shown = [first]
        for name in group[1:]:
            if len(f"ALIAS {'='.join([*shown, name])}{count}") > width:
                break
            shown.append(name)
        return f"ALIAS {'='.join(shown)}{count}"

    tail = f", {len(shared['tied'])} tied" if shared["tied"] else ""
    groups = [list(g) for g in shared["suspicious"]]
    if groups:
        more = (
            f", +{len(groups) - 1} alias{'es' if len(groups) > 2 else ''}"
            if len(groups) > 1
            else ""
        )
        return alias(groups[0], SHARING_WIDTH - len(more) - len(tail)) + more + tail
    reused = [(n, count) for n, count in shared["reused"].items() if holds_weights(n)]
    parts = [f"{name}×{count}" for name, count in reused[:2]]
    if len(reused) > 2:
        parts.append(f"+{len(reused) - 2} reused")
    text = ", ".join(parts)
    if len(text) + len(tail) > SHARING_WIDTH and reused:
        name, count = reused[0]
        first = f"{name}×{count}"
        if len(first) > SHARING_WIDTH - 16:
            first = f"{name[: SHARING_WIDTH - 20]}…×{count}"
        text = first + (f", +{len(reused) - 1} reused" if len(reused) > 1 else "")
    return (text + tail).lstrip(", ") or "—"


def checkerboard_cell(board: dict[str, Any], findings: dict[str, Any]) -> str:
    """The structural verdict (the text of
    :class:`~pytest_convcheck.reports.CheckerboardSummary`, read back from the
    report's ``checkerboard`` entry), followed by what a failed
    ``weights``/``output``/``gradient`` kind found, so that the table never says
    ``even`` alone where a checkerboard check failed."""
    from pytest_convcheck.reports import CheckerboardSummary

    text = str(CheckerboardSummary.from_dict(board))
    for kind, found in sorted(findings.get("checkerboard", {}).items()):
        text += f"; {kind.upper()} {found['figure']}"
    return text


LEGEND: tuple[tuple[str, str, str], ...] = (
    (
        "receptive field",
        r"\ball\b",
        "all: the output sees the whole input along that axis (flatten + Linear, global pool)",
    ),
    (
        "receptive field",
        r"\(stride ",
        "N×M (stride S): input pixels one output position sees, per axis; S input pixels per "
        "output step (1/4: four output steps per input pixel)",
    ),
    ("receptive field", r"HOLES", "HOLES: positions inside the field that no path reaches"),
    (
        "receptive field",
        r"norm stats",
        "+N norm stats: N norm layers' statistics span the input; the size is the data path's",
    ),
    (
        "checkerboard",
        r"UNEVEN",
        "UNEVEN ×R: kernel taps per output phase, max/min, at the worst layer or composed chain "
        "(a failure lists each layer's own imbalance; JSON: output_imbalance); even: ×1",
    ),
    (
        "checkerboard",
        r"WEIGHTS",
        "WEIGHTS s: failed 'weights' kind: spread of the weights' per-phase responses (over 0.05)",
    ),
    (
        "checkerboard",
        r"OUTPUT|GRADIENT",
        "OUTPUT p% / GRADIENT p%: failed kind: spectral energy at the stride frequencies (over 2%)",
    ),
    ("sharing", r"ALIAS", "ALIAS a=b: one module instance under several names ([block] * 3)"),
    ("sharing", r"×\d", "name×N: a module with weights called N times per forward"),
    ("sharing", r"tied", "N tied: groups of parameters that are one tensor"),
    ("failed", r"allowed", "allowed: failed, but in the model's allow list (reported as xfail)"),
    ("failed", DID_NOT_FINISH, f"{DID_NOT_FINISH}: its worker died or the run stopped"),
    ("", r"—", "—: nothing to report, or not known (the model did not run)"),
)
"""The summary table's words: (column, pattern in the column, definition)."""

COLUMNS = ("model", "output", "receptive field", "checkerboard", "sharing", "params", "FLOPs")
"""The table's columns that describe the model; the last column, ``failed``, lists
its failed checks."""

HEADER = (*COLUMNS, "failed")
"""The table's header row."""


def table_rows(models: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row of cells per model, from the per-model results (``report``: the
    model's report as a dict, or ``None``; ``checks``: check → outcome;
    ``findings``: what failed checks found). Imports torch when a model has a
    report."""
    from pytest_convcheck.reports import FieldSummary
    from pytest_convcheck.tracing import format_shape

    found: list[tuple[str, ...]] = []
    for name, entry in models.items():
        data = entry["report"]
        failed = [c for c, o in entry["checks"].items() if o == "failed"]
        allowed = [c for c, o in entry["checks"].items() if o == "allowed"]
        unfinished = [c for c, o in entry["checks"].items() if o == DID_NOT_FINISH]
        verdict = ", ".join(failed) if failed else "—"
        if allowed:
            verdict += f" (allowed: {', '.join(allowed)})"
        if unfinished:
            verdict += f" ({DID_NOT_FINISH}: {', '.join(unfinished)})"
        if data is None:
            found.append((name, "—", "—", "—", "—", "—", "—", verdict))
            continue
        found.append(
            (
                name,
                format_shape(data["output_shape"]),
                str(FieldSummary.from_dict(data["receptive_field"])),
                checkerboard_cell(data["checkerboard"], entry.get("findings", {})),
                sharing_text(data["sharing"], data["layers"]),
                f"{data['parameters']:,}",
                flops_text(data["flops"]),
                verdict,
            )
        )
    return found


def table_lines(rows: list[tuple[str, ...]]) -> list[str]:
    """The header and ``rows``, each column padded to its widest cell."""
    widths = [max(len(r[c]) for r in (HEADER, *rows)) for c in range(len(HEADER))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (HEADER, *rows)
    ]


def legend(rows: list[tuple[str, ...]], *, everything: bool = False) -> list[str]:
    """The legend under the summary table: the definition of each word the table uses
    (every word with ``everything``, ``--convcheck-legend``)."""
    index = {name: i for i, name in enumerate(HEADER)}
    lines = []
    for column, pattern, text in LEGEND:
        cells = [r[index[column]] for r in rows] if column else [c for r in rows for c in r[1:]]
        if everything or any(re.search(pattern, cell) for cell in cells):
            lines.append(f"  {text}")
    if not lines:
        return []
    return ["legend:", *lines]


def flops_text(flops: int) -> str:
    """A FLOP count with three significant digits and a unit (``1.23 M``)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return str(flops)
