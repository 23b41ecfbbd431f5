"""The plugin's per-run state: :class:`ConvcheckSession`, one per pytest config.

What the generated items share within a run (the model reports computed once per
process, the item that reports a model that cannot be built) lives on this object,
stored in the config's stash, never in a module global: two runs in one process
(``pytester.runpytest_inprocess``) each get their own. Under pytest-xdist every
worker has its own config, so its own session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class ConvcheckSession:
    """The state one pytest run of ``--convcheck`` shares between its items.

    ``reports`` caches, per model name, the model's report as a dict (``None`` when
    the model cannot be traced), computed once per process by the first check that
    runs it. ``first_items`` holds, per model name, the node id of the model's first
    selected check item: the one that fails when the model cannot be built or does
    not run at its input (the others skip, pointing at it)."""

    reports: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    first_items: dict[str, str] = field(default_factory=dict)
    run_failures: dict[str, str] = field(default_factory=dict)
    """Per model name, why the model does not run at its described input (its trace
    failed): the first item reports it, the others skip."""

    def clear(self) -> None:
        """Forget every cached report and first item (a new session starts afresh)."""
        self.reports.clear()
        self.first_items.clear()
        self.run_failures.clear()


_SESSION_KEY = pytest.StashKey[ConvcheckSession]()


def convcheck_session(config: pytest.Config) -> ConvcheckSession:
    """The :class:`ConvcheckSession` of ``config``, created on first use."""
    return config.stash.setdefault(_SESSION_KEY, ConvcheckSession())
