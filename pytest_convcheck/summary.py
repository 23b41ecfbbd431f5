"""The end of a ``--convcheck`` run: :class:`ConvcheckSummary` collects each model's
results from the test reports (also those pytest-xdist workers send), prints the
``convcheck summary`` table (its text: :mod:`pytest_convcheck.summary_table`),
reports and deletes unused snapshot files, and writes ``--convcheck-report``.

Items and fixtures send their facts to it as a ``user_properties`` entry under
:data:`FACTS_KEY`, so that they travel from xdist workers to the controller.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_convcheck.config import AVAILABLE_CHECKS, ModelConfig
from pytest_convcheck.errors import ConvcheckConfigError
from pytest_convcheck.options import invocation_path, load_configured_models
from pytest_convcheck.summary_table import DID_NOT_FINISH, legend, table_lines, table_rows

FACTS_KEY = "convcheck"
"""The ``user_properties`` key of the facts a check or ``convcheck_report`` records
(a dict: ``model``, ``check``, ``report``, and ``snapshot``/``findings`` when
known)."""


def _check_order(check: str) -> tuple[int, str]:
    known = AVAILABLE_CHECKS.index(check) if check in AVAILABLE_CHECKS else len(AVAILABLE_CHECKS)
    return known, check


def _generated(nodeid: str) -> tuple[str, str] | None:
    """(model, check) of a generated item's node id ``convcheck::NAME::CHECK``."""
    parts = nodeid.split("::")
    if len(parts) == 3 and parts[0] == "convcheck":
        return parts[1], parts[2]
    return None


class ConvcheckSummary:
    """Collects per-model results from test reports (also those xdist workers send)
    and prints the table at the end; writes ``--convcheck-report``.

    Outcomes come from the generated items' node ids (``convcheck::NAME::CHECK``),
    so a check whose worker crashed still counts; every selected check that never
    reported counts as "did not finish". Models (in configuration order, then the
    hand-written reports by name), checks and the ``failed`` lists are sorted, so
    the table and the JSON do not depend on the order in which xdist workers
    finish."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.models: dict[str, dict[str, Any]] = {}
        self.expected: set[str] = set()
        self.snapshots: dict[str, int] = {}
        self.report_problem: str | None = None
        self.unused: list[str] = []
        self.deleted: list[str] = []

    def _entry(self, model: str) -> dict[str, Any]:
        return self.models.setdefault(model, {"report": None, "checks": {}})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expected.update(item.nodeid for item in session.items if _generated(item.nodeid))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.expected.update(nodeid for nodeid in ids if _generated(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        generated = _generated(report.nodeid)
        if generated is not None:
            model, check = generated
            entry = self._entry(model)
            if report.when == "call":
                outcome = "allowed" if hasattr(report, "wasxfail") else report.outcome
                entry["checks"][check] = outcome
            elif report.when not in ("setup", "teardown"):  # xdist: its worker crashed
                entry["checks"][check] = DID_NOT_FINISH
            elif report.when == "setup" and report.outcome != "passed":
                entry["checks"][check] = report.outcome
        if report.when != "call":  # checks and fixtures record their facts while running
            return
        for key, facts in report.user_properties:
            if key != FACTS_KEY or not isinstance(facts, dict) or not facts.get("model"):
                continue
            entry = self._entry(facts["model"])
            if facts.get("report") is not None:
                entry["report"] = facts["report"]
            if facts.get("snapshot"):
                self.snapshots[facts["snapshot"]] = self.snapshots.get(facts["snapshot"], 0) + 1
            if facts.get("findings"):
                entry.setdefault("findings", {}).update(facts["findings"])
            if generated is None:  # a hand-written test's convcheck_report
                outcome = "allowed" if hasattr(report, "wasxfail") else report.outcome
                entry["checks"][facts["check"]] = outcome

    def _finish(self) -> None:
        """Checks that were selected and never reported did not finish."""
        for nodeid in self.expected:
            generated = _generated(nodeid)
            assert generated is not None
            model, check = generated
            self._entry(model)["checks"].setdefault(check, DID_NOT_FINISH)
        for entry in self.models.values():
            entry["checks"] = dict(
                sorted(entry["checks"].items(), key=lambda c: _check_order(c[0]))
            )
        order = {name: index for index, name in enumerate(self._configured_names())}
        self.models = dict(
            sorted(self.models.items(), key=lambda m: (order.get(m[0], len(order)), m[0]))
        )

    def _configured_names(self) -> list[str]:
        """The model names in configuration order (tables, ini lines, command line)."""
        try:
            models, errors = self._load()
        except ConvcheckConfigError:
            return []
        return [m.name for m in models] + sorted(errors)

    def _load(self) -> tuple[list[ModelConfig], dict[str, str]]:
        return load_configured_models(self.config)

    def rows(self) -> list[tuple[str, ...]]:
        """The table's rows (cells), one per model (see
        :func:`~pytest_convcheck.summary_table.table_rows`)."""
        return table_rows(self.models)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        snapshot_line = self._snapshot_line()
        if not self.models and not snapshot_line:
            return
        terminalreporter.section("convcheck summary")
        if self.models:
            rows = self.rows()
            for line in table_lines(rows):
                terminalreporter.write_line(line)
            everything = bool(self.config.getoption("convcheck_legend"))
            for line in legend(rows, everything=everything):
                terminalreporter.write_line(line)
            for line in self._inferred_inputs():
                terminalreporter.write_line(line)
        if snapshot_line:
            terminalreporter.write_line(snapshot_line)
        target = self.config.getoption("convcheck_report")
        if target and self.report_problem:
            terminalreporter.write_line(self.report_problem, red=True, bold=True)
        elif target:
            terminalreporter.write_line(f"convcheck report written to {target}")

    def _inferred_inputs(self) -> list[str]:
        """A line per model whose input was inferred, with the rule that chose it."""
        lines = []
        for name, entry in self.models.items():
            data = entry.get("report") or {}
            for note in data.get("notes", ()):
                if note.startswith("input ") and " inferred: " in note:
                    lines.append(f"{name}: {note}")
        return lines

    def _snapshot_line(self) -> str:
        """syrupy's count line for the snapshot check's files."""
        parts = []
        for status in ("passed", "written", "updated"):
            count = self.snapshots.get(status, 0)
            if count:
                parts.append(f"{count} convcheck snapshot{'s' if count != 1 else ''} {status}.")
        missing = self.snapshots.get("missing", 0)
        if missing:
            parts.append(
                f"{missing} convcheck snapshot{'s' if missing != 1 else ''} missing (skipped): "
                f"run pytest --convcheck --snapshot-update to start pinning."
            )
        if self.deleted:
            count = len(self.deleted)
            parts.append(
                f"{count} unused convcheck snapshot{'s' if count != 1 else ''} deleted "
                f"({', '.join(self.deleted)})."
            )
        if self.unused:
            count = len(self.unused)
            parts.append(
                f"{count} convcheck snapshot{'s' if count != 1 else ''} unused "
                f"({', '.join(self.unused)}): no configured model with the snapshot check has "
                f"that name. Re-run with --snapshot-update to delete "
                f"{'them' if count != 1 else 'it'}."
            )
        return " ".join(parts)

    def _unused_snapshots(self, update: bool) -> None:
        """Snapshot files of models no longer configured (or without the snapshot
        check): reported, and deleted with ``--snapshot-update``, as syrupy does."""
        folder = self.config.rootpath / "__snapshots__" / "convcheck"
        if not folder.is_dir():
            return
        try:
            models, errors = self._load()
        except ConvcheckConfigError:
            return  # the run reported it; never delete on a configuration we cannot read
        used = {m.name for m in models if "snapshot" in m.checks} | set(errors)
        for path in sorted(folder.glob("*.json")):
            if path.stem in used or not path.is_file():
                continue
            if update:
                path.unlink()
                self.deleted.append(path.name)
            else:
                self.unused.append(path.name)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._finish()
        if session.exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR):
            self._unused_snapshots(bool(self.config.getoption("update_snapshots", False)))
        target = self.config.getoption("convcheck_report")
        if not target:
            return
        path = invocation_path(self.config, str(target))
        text = json.dumps(report_data(self.models), indent=2, ensure_ascii=False) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            self.report_problem = (
                f"convcheck report NOT written to {target}: {type(error).__name__}: {error}"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def report_data(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``--convcheck-report`` JSON (schema 1) of the per-model results."""
    return {
        "schema": 1,
        "models": {
            name: {
                "checks": entry["checks"],
                "failed": [c for c, o in entry["checks"].items() if o == "failed"],
                **({"findings": entry["findings"]} if entry.get("findings") else {}),
                "report": entry["report"],
            }
            for name, entry in models.items()
        },
    }
