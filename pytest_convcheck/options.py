"""What a run asks of pytest-convcheck: the ``--convcheck*`` command-line options
and ``convcheck_*`` ini keys (:func:`add_options`), and their reading: the report
and picture paths (refused before the run when unusable), the configured models,
the device, the time limit of a check and the settings a check runs with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_convcheck.config import ModelConfig, load_models

if TYPE_CHECKING:
    from pytest_convcheck.checks import RunContext

DEFAULT_TIMEOUT = 300.0
"""The default ``--convcheck-timeout``: seconds per generated check."""


def add_options(parser: pytest.Parser) -> None:
    """Declare the ``--convcheck*`` options and the ``convcheck_*`` ini keys."""
    group = parser.getgroup("convcheck", "convolution semantics checks (pytest-convcheck)")
    group.addoption(
        "--convcheck",
        action="store_true",
        default=False,
        help="check the models configured in [tool.convcheck.models.*] of pyproject.toml "
        "(and --convcheck-model): one test item per model and check.",
    )
    group.addoption(
        "--convcheck-model",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="a model factory to check (repeatable); needs --convcheck-input.",
    )
    group.addoption(
        "--convcheck-input",
        action="append",
        default=[],
        metavar="N,C,H,W",
        help="input shape for --convcheck-model, e.g. 2,1,28,28: one for all models, or "
        "one per --convcheck-model, paired in order.",
    )
    group.addoption(
        "--convcheck-device",
        default=None,
        metavar="DEVICE",
        help="device for the parity check, the conformance suite and the convcheck_device "
        "fixture: cpu, cuda (one GPU per xdist worker), cuda:N or mps.",
    )
    group.addoption(
        "--convcheck-require-device",
        action="store_true",
        default=False,
        help="fail, instead of skip, the checks and tests that need --convcheck-device "
        "when that device is not available (for GPU jobs in CI).",
    )
    group.addoption(
        "--convcheck-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"time limit of one generated check, model building included (default "
        f"{DEFAULT_TIMEOUT:g}; 0: none); a model's own 'timeout' key takes precedence.",
    )
    group.addoption(
        "--convcheck-conformance",
        action="store_true",
        default=False,
        help="run the conformance suite: the installed torch on --convcheck-device (default "
        "cpu) against the documented semantics of conv, pooling and upsampling.",
    )
    group.addoption(
        "--convcheck-conformance-examples",
        type=int,
        default=100,
        metavar="N",
        help="hypothesis examples per conformance item (default 100).",
    )
    group.addoption(
        "--convcheck-report",
        default=None,
        metavar="PATH",
        help="write the per-model summary of a --convcheck run as JSON to PATH.",
    )
    group.addoption(
        "--convcheck-artifacts",
        default=None,
        metavar="DIR",
        help="save pictures of failed checks (checkerboard tiles and spectra, effective "
        "receptive fields) into DIR; needs the plots extra (matplotlib).",
    )

    group.addoption(
        "--convcheck-snapshot-strict",
        action="store_true",
        default=None,
        help="fail, instead of skip, the snapshot check of a model that has no snapshot yet "
        "(for CI, once the snapshots are committed); also the ini option "
        "convcheck_snapshot_strict = true.",
    )
    group.addoption(
        "--convcheck-legend",
        action="store_true",
        default=False,
        help="print the full legend of the convcheck summary table (by default only the "
        "words the table uses are explained).",
    )

    parser.addini(
        "convcheck_snapshot_strict",
        type="bool",
        default=False,
        help="fail the snapshot check of a model without a snapshot (default: skip it with "
        "'run pytest --convcheck --snapshot-update to start pinning').",
    )
    parser.addini(
        "convcheck_models",
        type="linelist",
        default=[],
        help="models for --convcheck, one per line: NAME MODULE:FACTORY N,C,H,W "
        "[key=value ...] (the ini-file form of [tool.convcheck.models.NAME]).",
    )


def invocation_path(config: pytest.Config, value: str) -> Path:
    """``value`` (a path option) resolved against the folder pytest was started in."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def as_given(config: pytest.Config, value: str) -> Path:
    """The path as the user wrote it while the working directory is still the one
    pytest was started in (messages show it so), else resolved against that."""
    if Path.cwd() == Path(config.invocation_params.dir):
        return Path(value).expanduser()
    return invocation_path(config, value)


def _first_existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def refuse_unusable_paths(config: pytest.Config) -> None:
    """``--convcheck-report`` and ``--convcheck-artifacts`` must be usable before the
    run starts: a usage error (exit 4) now beats a lost report after the run."""
    report = config.getoption("convcheck_report")
    if report:
        path = invocation_path(config, str(report))
        existing = _first_existing(path)
        problem = None
        if path.is_dir():
            problem = "is a directory"
        elif existing == path and not os.access(path, os.W_OK):
            problem = "is not writable"
        elif existing != path and not existing.is_dir():
            problem = f"lies under {existing}, which is a file, not a directory"
        elif existing != path and not os.access(existing, os.W_OK | os.X_OK):
            problem = f"cannot be created: {existing} is not writable"
        if problem:
            raise pytest.UsageError(
                f"--convcheck-report {report}: {path} {problem}.\n  fix: give the path of a "
                f"JSON file in a writable folder, e.g. --convcheck-report convcheck.json."
            )
    artifacts = config.getoption("convcheck_artifacts")
    if artifacts:
        path = invocation_path(config, str(artifacts))
        existing = _first_existing(path)
        problem = None
        if path.exists() and not path.is_dir():
            problem = "is a file, not a folder"
        elif not existing.is_dir():
            problem = f"lies under {existing}, which is a file, not a folder"
        elif not os.access(existing, os.W_OK | os.X_OK):
            problem = f"is not writable ({existing})"
        if problem:
            raise pytest.UsageError(
                f"--convcheck-artifacts {artifacts}: {path} {problem}.\n  fix: give a folder "
                f"for the pictures (it is created when missing), e.g. --convcheck-artifacts "
                f"convcheck-pictures."
            )


def _pyproject(config: pytest.Config) -> Path | None:
    """The project's ``pyproject.toml``: pytest's ini file when it is one, else the
    one in the rootdir (``None``: there is none)."""
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def load_configured_models(config: pytest.Config) -> tuple[list[ModelConfig], dict[str, str]]:
    """The configured models; factories resolve against the project's folder."""
    return load_models(
        _pyproject(config),
        config.getoption("convcheck_model"),
        config.getoption("convcheck_input"),
        list(config.getini("convcheck_models")),
        root=config.rootpath,
    )


def requested_device(config: pytest.Config) -> str | None:
    """``--convcheck-device`` as given (``None`` without it)."""
    value = config.getoption("convcheck_device")
    return str(value) if value else None


def device_or_skip(config: pytest.Config, default: str | None) -> str | None:
    """The concrete device of ``--convcheck-device`` for this process (one GPU per
    xdist worker), ``default`` without the option; skips when it is unavailable."""
    from pytest_convcheck.devices import DeviceUnavailable, resolve_device

    requested = requested_device(config) or default
    if requested is None:
        return None
    try:
        return resolve_device(requested)
    except DeviceUnavailable as error:
        if config.getoption("convcheck_require_device") and requested_device(config):
            pytest.fail(
                f"{error}; --convcheck-require-device turns this skip into a failure.\n  fix: "
                f"run on a machine with that device (check the job's GPU and the CUDA build "
                f"of torch), or drop --convcheck-require-device.",
                pytrace=False,
            )
        pytest.skip(str(error))
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)


def run_context(config: pytest.Config, check: str) -> RunContext:
    """The run's settings for ``check`` (only ``parity`` resolves the device, so that
    an unavailable ``--convcheck-device`` skips that check alone). Imports torch."""
    from pytest_convcheck.checks import RunContext

    artifacts = config.getoption("convcheck_artifacts")
    update = bool(config.getoption("update_snapshots", False))
    strict = config.getoption("convcheck_snapshot_strict")
    if strict is None:
        strict = bool(config.getini("convcheck_snapshot_strict"))
    return RunContext(
        device=device_or_skip(config, None) if check == "parity" else None,
        artifacts=as_given(config, str(artifacts)) if artifacts else None,
        snapshots=config.rootpath / "__snapshots__" / "convcheck",
        update_snapshots=update,
        snapshot_strict=bool(strict),
        pictures_in_memory=_html_report_wanted(config),
    )


def _html_report_wanted(config: pytest.Config) -> bool:
    """pytest-html is active and writes a report: failed checks attach their pictures."""
    return bool(config.getoption("htmlpath", None)) and config.pluginmanager.hasplugin("html")


def check_timeout(config: pytest.Config, model: ModelConfig) -> tuple[float | None, str]:
    """The time limit of one check of ``model`` in seconds (``None``: none) and where
    it comes from, for messages: the model's own ``timeout`` key, else
    ``--convcheck-timeout``."""
    own = model.options.get("timeout")
    if own is not None:
        return float(own), f"timeout = {own:g} in the model's configuration"
    value = float(config.getoption("convcheck_timeout") or 0.0)
    return (value or None), f"--convcheck-timeout {value:g}"
