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

__all__ = [
    "ConvReportExtension",
    "compare_snapshot",
    "inside",
    "snapshot_text",
    "update_or_compare",
]


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


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused (``ValueError``) unless it stays inside ``folder``:
    no write of this plugin leaves its folder, whatever a model is called."""
    path = folder / name
    root = folder.resolve()
    resolved = path.resolve()
    if resolved == root or not resolved.is_relative_to(root) or Path(name).name != name:
        raise ValueError(f"{name!r} would leave the folder {folder}; refused")
    return path


def _read(path: Path) -> tuple[str | None, str | None]:
    """The snapshot's text, or why it cannot be read (a folder, not UTF-8, …)."""
    if path.is_dir():
        return None, (
            f"the snapshot path {path} is a folder, not a file.\n  fix: remove or rename the "
            f"folder, then run pytest --convcheck --snapshot-update."
        )
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError as error:
        return None, (
            f"the snapshot {path} is not UTF-8 text ({error.reason} at byte {error.start}): "
            f"not a file this plugin wrote.\n  fix: delete it and run pytest --convcheck "
            f"--snapshot-update, or restore it from version control."
        )
    except OSError as error:
        return None, f"cannot read the snapshot {path}: {error.strerror or error}"


def update_or_compare(path: Path, text: str, *, update: bool) -> tuple[str, str | None]:
    """Compare ``text`` with the snapshot at ``path`` (with ``update``: write it).
    Returns the status — ``"passed"``, ``"written"`` (new), ``"updated"``,
    ``"missing"`` (no snapshot yet, not updating) or ``"failed"`` — and the message
    (``None`` unless missing or failed)."""
    exists = path.exists()
    stored, problem = _read(path) if exists else (None, None)
    if update:
        if stored == text:
            return "passed", None
        if exists and path.is_dir():
            return "failed", problem
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            return "failed", f"cannot write the snapshot {path}: {error.strerror or error}"
        return ("updated" if exists else "written"), None
    if problem is not None:
        return "failed", problem
    if not exists:
        return "missing", (
            f"no snapshot at {path} yet.\n  fix: run pytest --convcheck --snapshot-update to "
            f"start pinning (it writes the file; review it and commit it)."
        )
    if stored == text:
        return "passed", None
    diff = difflib.unified_diff(
        (stored or "").splitlines(), text.splitlines(), "snapshot", "now", lineterm="", n=2
    )
    return "failed", (
        f"the report differs from the snapshot at {path}:\n"
        + "\n".join(diff)
        + "\n  fix: if the change is intended, run pytest --convcheck --snapshot-update and "
        "commit the new snapshot."
    )


def compare_snapshot(path: Path, text: str, *, update: bool) -> str | None:
    """Compare ``text`` with the snapshot at ``path``; with ``update``, write it.
    Returns ``None`` when they match (or were written), else the failure message
    with a unified diff."""
    return update_or_compare(path, text, update=update)[1]
