"""Snapshots of :class:`~pytest_convcheck.reports.ConvReport` with syrupy.

In a hand-written test::

    from pytest_convcheck import report
    from pytest_convcheck.snapshots import ConvReportExtension

    def test_decoder_report(snapshot):
        assert report(Decoder(), (1, 1, 28, 28)) == snapshot(extension_class=ConvReportExtension)

writes ``__snapshots__/<test file>/<test name>.json`` on ``pytest --snapshot-update``
and compares with it afterwards. The text is :meth:`ConvReport.to_json`: stable,
device-independent, without timings or weight values. The ``snapshot`` check of
``pytest --convcheck`` writes the same text to
``__snapshots__/convcheck/<model>.json`` under the root directory.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

__all__ = ["ConvReportExtension", "compare_snapshot", "snapshot_text"]


def snapshot_text(data: Any) -> str:
    """A report (or anything with ``to_json``/``to_dict``, or plain JSON data) as the
    snapshot's text."""
    if hasattr(data, "to_json"):
        return str(data.to_json())
    if hasattr(data, "to_dict"):
        data = data.to_dict()
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


class ConvReportExtension(SingleFileSnapshotExtension):
    """One ``.json`` file per snapshot, holding ``ConvReport.to_json()``."""

    _write_mode = WriteMode.TEXT
    file_extension = "json"  # syrupy ≥ 5
    _file_extension = "json"  # syrupy 4

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return snapshot_text(data)


def compare_snapshot(path: Path, text: str, *, update: bool) -> str | None:
    """Compare ``text`` with the snapshot at ``path``; with ``update``, write it.
    Returns ``None`` when they match (or were written), else the failure message
    with a unified diff."""
    if update:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return None
    if not path.is_file():
        return (
            f"no snapshot at {path}.\n  fix: run pytest --convcheck --snapshot-update once, "
            f"review the new file and commit it."
        )
    stored = path.read_text(encoding="utf-8")
    if stored == text:
        return None
    diff = difflib.unified_diff(
        stored.splitlines(), text.splitlines(), "snapshot", "now", lineterm="", n=2
    )
    return (
        f"the report differs from the snapshot at {path}:\n"
        + "\n".join(diff)
        + "\n  fix: if the change is intended, run pytest --convcheck --snapshot-update and "
        "commit the new snapshot."
    )
