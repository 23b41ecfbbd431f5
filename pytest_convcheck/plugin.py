"""pytest hooks of pytest-convcheck: options, markers, fixtures, the generated check
items, the end-of-run summary and the JSON report.

Loading this plugin never imports torch. Without ``--convcheck`` (or
``--convcheck-conformance``) it adds no items; with it, every configured model
(``[tool.convcheck.models.NAME]`` in ``pyproject.toml``, or ``--convcheck-model``)
gets one test item per check, named ``convcheck::NAME::CHECK``, and the run ends
with a table per model. Under pytest-xdist the workers send each item's report
to the controller (as ``user_properties``), which prints the table once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_convcheck.config import AVAILABLE_CHECKS, ModelConfig, load_models
from pytest_convcheck.errors import ConvcheckConfigError

if TYPE_CHECKING:
    from pytest_convcheck.benchmarking import ConvBenchmark
    from pytest_convcheck.reports import ConvReport

_PROPERTY = "convcheck"
_REPORTS: dict[str, dict[str, Any] | None] = {}  # per process: model name → report dict
_DEFAULT_TIMEOUT = 300.0
DID_NOT_FINISH = "did not finish"


def pytest_addoption(parser: pytest.Parser) -> None:
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
        default=_DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"time limit of one generated check, model building included (default "
        f"{_DEFAULT_TIMEOUT:g}; 0: none); a model's own 'timeout' key takes precedence.",
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "convcheck: a check generated by pytest --convcheck (or written with its API)"
    )
    config.addinivalue_line(
        "markers",
        "gpu: needs a CUDA device; skipped without one (failed instead when "
        "CONVCHECK_REQUIRE_GPU=1)",
    )
    if hasattr(config, "workerinput"):
        return
    _refuse_unusable_paths(config)
    if config.getoption("convcheck"):
        config.pluginmanager.register(ConvcheckSummary(config), "convcheck-summary")


def _invocation_path(config: pytest.Config, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def _as_given(config: pytest.Config, value: str) -> Path:
    """The path as the user wrote it while the working directory is still the one
    pytest was started in (messages show it so), else resolved against that."""
    if Path.cwd() == Path(config.invocation_params.dir):
        return Path(value).expanduser()
    return _invocation_path(config, value)


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _refuse_unusable_paths(config: pytest.Config) -> None:
    """``--convcheck-report`` and ``--convcheck-artifacts`` must be usable before the
    run starts: a usage error (exit 4) now beats a lost report after the run."""
    report = config.getoption("convcheck_report")
    if report:
        path = _invocation_path(config, str(report))
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
        path = _invocation_path(config, str(artifacts))
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


def pytest_sessionstart(session: pytest.Session) -> None:
    _REPORTS.clear()  # a second session in one process (pytester in-process) starts afresh
    checks = sys.modules.get("pytest_convcheck.checks")
    if checks is not None:
        checks.forget_models()


def _pyproject(config: pytest.Config) -> Path | None:
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


# --------------------------------------------------------------------------- collection


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    generated: list[pytest.Item] = []
    if config.getoption("convcheck"):
        generated += _model_items(session, config)
    if config.getoption("convcheck_conformance"):
        generated += _conformance_items(session)
    if generated:
        items.extend(generated)
        # report them as collected, so that "collected N items" and -k count them
        session.ihook.pytest_collectreport(
            report=pytest.CollectReport("convcheck", "passed", None, list(generated))
        )


def _load(config: pytest.Config) -> tuple[list[ModelConfig], dict[str, str]]:
    """The configured models; factories resolve against the project's folder."""
    return load_models(
        _pyproject(config),
        config.getoption("convcheck_model"),
        config.getoption("convcheck_input"),
        list(config.getini("convcheck_models")),
        root=config.rootpath,
    )


def _import_problem(config: pytest.Config, model: ModelConfig) -> str | None:
    """Why the model's factory (or ``example_inputs``) cannot be imported, found at
    collection (``None``: it imports). Importing is deterministic, so every xdist
    worker collects the same items."""
    from pytest_convcheck.config import import_factory, import_object

    # no time limit here: interrupting an import (torch's, say) midway would leave a
    # half-initialised module behind; pytest does not time-limit importing tests either
    try:
        import_factory(model)
        if model.example_inputs:
            import_object(model, model.example_inputs, "example_inputs")
    except ConvcheckConfigError as error:
        return str(error)
    return None


def _model_items(session: pytest.Session, config: pytest.Config) -> list[pytest.Item]:
    collector = ConvcheckCollector.from_parent(session, name="convcheck", nodeid="convcheck")
    try:
        models, errors = _load(config)
    except ConvcheckConfigError as error:
        return [ConvcheckItem.from_parent(collector, name="config", error=str(error))]
    if not models and not errors:
        return [
            ConvcheckItem.from_parent(
                collector,
                name="config",
                error="--convcheck found no models: add [tool.convcheck.models.NAME] tables "
                'to pyproject.toml (factory = "pkg.module:Net", input = [1, 1, 28, 28]) or '
                "pass --convcheck-model pkg.module:Net --convcheck-input 1,1,28,28.",
            )
        ]
    items: list[pytest.Item] = []
    for model in models:
        problem = _import_problem(config, model)
        blocked = None
        if problem is not None:  # reported once, by the model's config item
            blocked = f"convcheck::{model.name}::config"
            items.append(
                ConvcheckItem.from_parent(
                    collector, name=f"{model.name}::config", model=model, error=problem
                )
            )
        items += [
            ConvcheckItem.from_parent(
                collector,
                name=f"{model.name}::{check}",
                model=model,
                check=check,
                blocked=blocked,
            )
            for check in model.checks
        ]
    items += [
        ConvcheckItem.from_parent(collector, name=f"{name}::config", error=error)
        for name, error in errors.items()
    ]
    return items


def _conformance_items(session: pytest.Session) -> list[pytest.Item]:
    from pytest_convcheck.conformance import CONFORMANCE  # imports torch: only when asked

    collector = ConvcheckCollector.from_parent(
        session, name="convcheck-conformance", nodeid="convcheck-conformance"
    )
    return [ConformanceItem.from_parent(collector, name=name) for name in CONFORMANCE]


_FIRST_ITEM: dict[str, str] = {}
"""Per process: model name → node id of its first selected check item (the one that
reports a model that cannot be built)."""


def pytest_collection_finish(session: pytest.Session) -> None:
    _FIRST_ITEM.clear()
    for item in session.items:
        if isinstance(item, ConvcheckItem) and item.model is not None:
            _FIRST_ITEM.setdefault(item.model.name, item.nodeid)


class ConvcheckCollector(pytest.Collector):
    """The parent of the generated items (node id ``convcheck`` or
    ``convcheck-conformance``)."""

    def collect(self) -> list[pytest.Item]:  # items are created in modifyitems
        return []


def _skip(reason: str) -> None:
    """Skip a generated item (:func:`pytest_runtest_makereport` reports it at the
    item, ``SKIPPED [1] convcheck::NAME::CHECK: …``, not at a line of this plugin)."""
    pytest.skip(reason)


class ConvcheckFailure(Exception):
    """A failed check: its message is the whole report (no traceback)."""


def _requested_device(config: pytest.Config) -> str | None:
    value = config.getoption("convcheck_device")
    return str(value) if value else None


def _device_or_skip(config: pytest.Config, default: str | None) -> str | None:
    """The concrete device of ``--convcheck-device`` for this process (one GPU per
    xdist worker), ``default`` without the option; skips when it is unavailable."""
    from pytest_convcheck.devices import DeviceUnavailable, resolve_device

    requested = _requested_device(config) or default
    if requested is None:
        return None
    try:
        return resolve_device(requested)
    except DeviceUnavailable as error:
        if config.getoption("convcheck_require_device") and _requested_device(config):
            pytest.fail(
                f"{error}; --convcheck-require-device turns this skip into a failure.\n  fix: "
                f"run on a machine with that device (check the job's GPU and the CUDA build "
                f"of torch), or drop --convcheck-require-device.",
                pytrace=False,
            )
        pytest.skip(str(error))
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)


def _context(config: pytest.Config, check: str) -> Any:
    """The run's settings for ``check`` (only ``parity`` resolves the device, so that
    an unavailable ``--convcheck-device`` skips that check alone)."""
    from pytest_convcheck.checks import RunContext

    artifacts = config.getoption("convcheck_artifacts")
    update = bool(getattr(config.option, "update_snapshots", False))
    strict = config.getoption("convcheck_snapshot_strict")
    if strict is None:
        strict = bool(config.getini("convcheck_snapshot_strict"))
    return RunContext(
        device=_device_or_skip(config, None) if check == "parity" else None,
        artifacts=_as_given(config, str(artifacts)) if artifacts else None,
        snapshots=config.rootpath / "__snapshots__" / "convcheck",
        update_snapshots=update,
        snapshot_strict=bool(strict),
        pictures_in_memory=_html_report_wanted(config),
    )


def _html_report_wanted(config: pytest.Config) -> bool:
    """pytest-html is active and writes a report: failed checks attach their pictures."""
    return bool(getattr(config.option, "htmlpath", None)) and config.pluginmanager.hasplugin("html")


class _Timeout(BaseException):
    """Raised into a check that ran past its time limit (a BaseException, so that a
    forward's ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_Timeout` in this thread after ``seconds``. With SIGALRM free (no
    pytest-timeout signal timer running) an interval timer, which also interrupts
    ``time.sleep``; otherwise a watchdog thread that raises asynchronously in this
    thread at its next Python instruction (it cannot interrupt one long C call)."""
    if not seconds or seconds <= 0:
        yield
        return
    free = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if free:

        def expire(signum: int, frame: Any) -> None:
            raise _Timeout

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    import ctypes  # only here: plain runs do not pay for it

    target = ctypes.c_ulong(threading.get_ident())
    lock, done = threading.Lock(), threading.Event()
    state = {"active": True, "fired": False}

    def watch() -> None:
        if done.wait(seconds):
            return
        with lock:
            if state["active"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_Timeout))

    watcher = threading.Thread(target=watch, name="convcheck-timeout", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
            if state["fired"]:  # not yet delivered: withdraw it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
        done.set()
        watcher.join()


def _timeout(item: pytest.Item, config: ModelConfig) -> tuple[float | None, str]:
    own = config.options.get("timeout")
    if own is not None:
        return float(own), f"timeout = {own:g} in the model's configuration"
    value = float(item.config.getoption("convcheck_timeout") or 0.0)
    return (value or None), f"--convcheck-timeout {value:g}"


class _GeneratedItem(pytest.Item):
    """An item made by this plugin: a failure shows its message, not a traceback."""

    prefix = "convcheck"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ConvcheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.prefix}::{self.name}"


class ConvcheckItem(_GeneratedItem):
    """One check of one configured model."""

    def __init__(
        self,
        *,
        model: ModelConfig | None = None,
        check: str = "",
        error: str | None = None,
        blocked: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.check = check
        self.error = error
        self.blocked = blocked
        self.attachments: list[tuple[str, bytes | str]] = []  # for pytest-html
        self.add_marker("convcheck")

    def _cannot_build(self, header: str, message: str) -> None:
        """A model that cannot be built fails once: the first selected item of the
        model (the same in every xdist worker) fails with the message; the others
        skip, pointing at it. ``allow`` never turns this into a pass."""
        first = _FIRST_ITEM.get(self.model.name if self.model else "", self.nodeid)
        if first == self.nodeid:
            raise ConvcheckFailure(
                f"{header}{message}\n  (the model's other checks are skipped: they need the model)"
            )
        _skip(
            f"model {self.model.name if self.model else ''!r} could not be built: see {first} "
            f"({message.splitlines()[0]})"
        )

    def runtest(self) -> None:
        if self.error is not None:
            raise ConvcheckFailure(self.error)
        config = self.model
        assert config is not None
        if self.blocked is not None:
            _skip(
                f"model {config.name!r} has a configuration error, reported once by {self.blocked}"
            )
        from pytest_convcheck import checks  # imports torch: only when a check runs
        from pytest_convcheck.errors import ModelStateError, ShapeError
        from pytest_convcheck.tracing import ModelRunError

        facts: dict[str, Any] = {"model": config.name, "check": self.check, "report": None}
        self.user_properties.append((_PROPERTY, facts))
        header = (
            f"[convcheck] model {config.name!r} ({config.factory}, input "
            f"{config.input_text()}), check {self.check!r}:\n"
        )
        seconds, limit = _timeout(self, config)
        try:  # a model that cannot be built is never allowed away
            with _time_limit(seconds):
                model = checks.cached_model(config)
        except ConvcheckConfigError as error:
            self._cannot_build(header, str(error))
            return
        except _Timeout:
            checks.remember_failure(
                config,
                f"model {config.name!r}: the factory {config.factory!r} did not finish within "
                f"{seconds:g} s ({limit}).\n  fix: make the factory faster (no downloads or "
                f"training in it), or raise the limit.",
            )
            self._cannot_build(header, checks.cached_failure(config))
            return
        context = _context(self.config, self.check)
        try:
            with _time_limit(seconds):
                facts["report"] = _report_dict(config, model)
                checks.require_tensor_output(config, facts["report"])
                checks.CHECKS[self.check](model, config, context)
        except (
            AssertionError,
            ShapeError,
            ModelRunError,
            ModelStateError,
            _Timeout,
            SystemExit,
            MemoryError,
        ) as error:
            text = f"{header}{_failure_text(error, config, self.check, seconds, limit)}"
            if context.pictures_in_memory:
                context.attachments.append(("trace table", _trace_table(config, model)))
            if self.check in config.allow:
                pytest.xfail(f"allowed in config (reported, not failed): {text}")
            raise ConvcheckFailure(text) from None
        except ConvcheckConfigError as error:
            raise ConvcheckFailure(f"{header}{error}") from None
        except checks.CheckSkipped as skipped:
            _skip(str(skipped))
        except Exception as error:  # an analysis that cannot handle this model
            user = checks.user_error(error, config)
            if user is not None:
                text = f"{header}{user}"
                if self.check in config.allow:
                    pytest.xfail(f"allowed in config (reported, not failed): {text}")
                raise ConvcheckFailure(text) from None
            raise ConvcheckFailure(
                f"{header}pytest-convcheck could not analyse this model: "
                f"{type(error).__name__}: {error}\n  This is likely a gap in pytest-convcheck, "
                f"not in your model: please report it with the model's code. Until then, "
                f"leave {self.check!r} out of the model's checks (or put it in allow)."
            ) from None
        finally:
            if context.notes:
                facts.update(context.notes)
            self.attachments = list(context.attachments)


def _failure_text(
    error: BaseException, config: ModelConfig, check: str, seconds: float | None, limit: str
) -> str:
    if isinstance(error, _Timeout):
        return (
            f"model {config.name!r}: check {check!r} did not finish within {seconds:g} s "
            f"({limit}).\n  fix: use a smaller input, leave {check!r} out of the model's "
            f"checks, or raise the limit."
        )
    if isinstance(error, SystemExit):
        return (
            f"model {config.name!r}: forward called sys.exit({error.code!r}) while check "
            f"{check!r} ran it.\n  fix: raise an exception instead of exiting the process."
        )
    if isinstance(error, MemoryError):
        return (
            f"model {config.name!r}: out of memory with input {config.input_text()}.\n"
            f"  fix: use a smaller input (the checks run the model on the CPU)."
        )
    text = str(error)
    if type(error).__name__ == "ModelRunError" and "fix" not in text:
        text += (
            "\n  fix: the model's own forward raised this, on the input above; it fails the "
            "same way outside pytest-convcheck (call the model on torch.randn of that shape "
            "to see its traceback)."
        )
    return text


def _trace_table(config: ModelConfig, model: Any) -> str:
    """The model's report as text (the per-layer trace table) for the HTML report."""
    from pytest_convcheck.checks import model_inputs, sharing_allow
    from pytest_convcheck.reports import report

    try:
        return str(report(model, model_inputs(config), sharing_allow=sharing_allow(model, config)))
    except Exception as error:  # the failure text already says why the model cannot run
        return f"no trace table: {type(error).__name__}: {error}"


def _report_dict(config: ModelConfig, model: Any) -> dict[str, Any] | None:
    """The model's report as a dict, computed once per process (``None`` when the
    model cannot be traced: its checks say why)."""
    if config.name not in _REPORTS:
        from pytest_convcheck.checks import model_inputs, sharing_allow
        from pytest_convcheck.reports import report

        try:
            inputs = model_inputs(config)
            value = report(model, inputs, sharing_allow=sharing_allow(model, config))
            _REPORTS[config.name] = value.to_dict()
        except (Exception, SystemExit):  # the checks report the failure with context
            _REPORTS[config.name] = None
    return _REPORTS[config.name]


class ConformanceItem(_GeneratedItem):
    """One conformance check (see :mod:`pytest_convcheck.conformance`)."""

    prefix = "convcheck-conformance"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("convcheck")

    def runtest(self) -> None:
        from pytest_convcheck.conformance import run_conformance

        device = _device_or_skip(self.config, "cpu")
        examples = max(1, int(self.config.getoption("convcheck_conformance_examples")))
        try:
            run_conformance(self.name, str(device), examples)
        except AssertionError as error:
            notes = "\n".join(getattr(error, "__notes__", []))
            raise ConvcheckFailure(
                f"[convcheck-conformance] {self.name} on {device} with torch "
                f"{_torch_version()}:\n{error}\n{notes}"
            ) from None


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


# --------------------------------------------------------------------------- reports


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A finding of this plugin's API in a user's test shows the user's line and the
    message, not the plugin's own frames (as ``__tracebackhide__`` does, for every
    frame of the package; ``--fulltrace`` shows them). Generated items: a skip is
    reported at the item's node id; a failure carries the check's pictures and trace
    table to pytest-html (``extras``) when it runs."""
    if call.excinfo is not None and not item.config.getoption("fulltrace", False):
        _hide_plugin_frames(call.excinfo)
    report = yield
    if not isinstance(item, ConvcheckItem):
        return report
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        report.longrepr = (item.nodeid, None, report.longrepr[2])
    if report.when == "call" and (report.failed or hasattr(report, "wasxfail")):
        _attach_to_html(item, report)
    return report


_PACKAGE = str(Path(__file__).resolve().parent)
_FINDINGS = ("ModelRunError", "ModelStateError", "MeasurementRefused", "ShapeError")


def _hide_plugin_frames(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Unlink the traceback entries inside pytest_convcheck from a finding (an
    ``AssertionError`` or one of this plugin's errors) raised through its API, so
    that pytest shows the user's line and the message. Frames outside the package
    (the user's test, the user's forward) stay; a crash of the plugin itself (any
    other exception) keeps every frame, to be reported."""
    error = excinfo.value
    if not isinstance(error, AssertionError) and type(error).__name__ not in _FINDINGS:
        return
    head = excinfo.tb
    if not head.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        previous, node = head, head.tb_next
        while node is not None:
            following = node.tb_next
            if node.tb_frame.f_code.co_filename.startswith(_PACKAGE):
                previous.tb_next = following  # skip this frame
            else:
                previous = node
            node = following
        excinfo.traceback = pytest.ExceptionInfo.from_exc_info((type(error), error, head)).traceback


def _attach_to_html(item: ConvcheckItem, report: pytest.TestReport) -> None:
    """Add the failed check's pictures (PNG) and the model's trace table (text) to
    pytest-html's ``extras`` of the report (nothing without pytest-html)."""
    if not item.attachments or not item.config.pluginmanager.hasplugin("html"):
        return
    try:
        import pytest_html
    except ImportError:
        return
    import base64

    extras = list(getattr(report, "extras", []))
    for name, content in item.attachments:
        if isinstance(content, bytes):
            extras.append(pytest_html.extras.png(base64.b64encode(content).decode(), name))
        else:
            extras.append(pytest_html.extras.text(content, name))
    report.extras = extras  # type: ignore[attr-defined]  # pytest-html reads it


# --------------------------------------------------------------------------- GPU marker


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    import torch

    if torch.cuda.is_available():
        return
    reason = f"needs a CUDA device; torch {torch.__version__} sees none"
    if os.environ.get("CONVCHECK_REQUIRE_GPU") == "1":
        pytest.fail(f"{reason}, and CONVCHECK_REQUIRE_GPU=1 requires one", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def convcheck_device(request: pytest.FixtureRequest) -> str:
    """The device for hand-written tests: ``--convcheck-device`` when given, else this
    worker's GPU when CUDA is available (one GPU per xdist worker), else ``cpu``.
    Skips the test when the requested device is not available.

    Example::

        def test_decoder_on_device(convcheck_device):
            model = Decoder().to(convcheck_device)
            assert model(torch.zeros(1, 1, 28, 28, device=convcheck_device)).shape[-1] == 28
    """
    from pytest_convcheck.devices import default_device

    requested = _requested_device(request.config)
    device = _device_or_skip(request.config, requested or default_device())
    return str(device)


@pytest.fixture
def convcheck_report(
    request: pytest.FixtureRequest,
) -> Callable[..., ConvReport]:
    """A factory: ``convcheck_report(model, input_shape, sharing_allow=())`` returns the
    model's :class:`~pytest_convcheck.reports.ConvReport` (one meta trace) and adds it
    to the ``--convcheck`` summary and ``--convcheck-report`` under the test's name.

    Example::

        def test_decoder(convcheck_report):
            r = convcheck_report(Decoder(), (1, 1, 28, 28))
            assert r.output_shape == (1, 1, 28, 28)
            assert not r.checkerboard["structural"]
    """
    from pytest_convcheck.reports import report

    def make(model: Any, input_shape: Sequence[int], **options: Any) -> ConvReport:
        value = report(model, input_shape, **options)
        request.node.user_properties.append(
            (
                _PROPERTY,
                {"model": request.node.name, "check": "report", "report": value.to_dict()},
            )
        )
        return value

    return make


@pytest.fixture
def conv_benchmark(request: pytest.FixtureRequest) -> Callable[..., ConvBenchmark]:
    """``conv_benchmark(layer_or_model, input_shape, *, backward=False, dtype=None,
    channels_last=False, warmup=0.2, device=None)`` times one forward (or forward +
    backward) pass with pytest-benchmark on ``device`` (default: the
    ``convcheck_device`` fixture's) and records ``flops``
    (rule table), ``gflops``, ``roofline`` (fraction of the measured matmul peak),
    the device's ``environment`` and the layout in the benchmark's ``extra_info``.

    A comparison (``--benchmark-compare``) with a saved run from another
    environment (CPU against GPU, or two GPU models) fails the test instead of
    reporting a meaningless speed-up. Under ``--benchmark-disable`` and under
    pytest-xdist the call runs once, untimed.

    Example::

        def test_decoder_speed(conv_benchmark):
            result = conv_benchmark(Decoder(), (8, 1, 28, 28), backward=True)
            assert result.flops > 0
    """
    from pytest_convcheck.benchmarking import run_conv_benchmark
    from pytest_convcheck.tracing import ModelRunError

    try:
        benchmark = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        pytest.fail(
            "conv_benchmark needs pytest-benchmark's 'benchmark' fixture, and pytest-benchmark "
            "is not active (is it disabled with -p no:benchmark?).\n  fix: install "
            "pytest-benchmark (a dependency of pytest-convcheck) and do not disable it.",
            pytrace=False,
        )
    device = request.getfixturevalue("convcheck_device")
    used = False

    def run(model: Any, input_shape: Sequence[int], **options: Any) -> ConvBenchmark:
        __tracebackhide__ = True
        nonlocal used
        if used:
            pytest.fail(
                f"{request.node.nodeid}: conv_benchmark can run once per test (one "
                f"pytest-benchmark result per test).\n  fix: parametrize the test over the "
                f"layers or inputs instead.",
                pytrace=False,
            )
        used = True
        chosen = str(options.pop("device", device))
        try:
            result = run_conv_benchmark(benchmark, model, input_shape, device=chosen, **options)
        except (ValueError, TypeError, ModelRunError) as error:  # ShapeError is a ValueError
            problem = f"conv_benchmark: {error}"
        else:
            problem = ""
        if problem:  # failed outside the except block: no chained torch traceback
            pytest.fail(problem, pytrace=False)
        _refuse_foreign_comparison(request, benchmark.fullname, result.extra_info["environment"])
        return result

    return run


def _refuse_foreign_comparison(request: pytest.FixtureRequest, name: str, here: str) -> None:
    """Fail when ``--benchmark-compare`` loaded a saved result of this benchmark that
    was measured in another environment, and drop it so it is not compared."""
    from pytest_convcheck.benchmark_comparison import saved_environment

    session = getattr(request.config, "_benchmarksession", None)
    for path, saved_runs in (getattr(session, "compared_mapping", None) or {}).items():
        saved = saved_runs.get(name)
        there = None if saved is None else saved_environment(saved)
        if there is None or there == here:
            continue
        del saved_runs[name]
        pytest.fail(
            f"{name}: --benchmark-compare loaded {path}, measured on {there!r}; this run is on "
            f"{here!r}. Timings of different devices are never compared.\n  fix: keep one "
            f"storage per environment, e.g. --benchmark-storage=.benchmarks/"
            f"{here.split(':')[0]}, and compare runs within it.",
            pytrace=False,
        )


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per matmul peak measured for roofline figures in this process."""
    module = sys.modules.get("pytest_convcheck.benchmarking")
    for peak in module.measured_peaks() if module is not None else ():
        terminalreporter.write_line(f"convcheck roofline: {peak}")


# --------------------------------------------------------------------------- summary


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
            if key != _PROPERTY or not isinstance(facts, dict) or not facts.get("model"):
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
        return _load(self.config)

    def rows(self) -> list[tuple[str, ...]]:
        from pytest_convcheck.reports import field_text
        from pytest_convcheck.tracing import format_shape

        rows: list[tuple[str, ...]] = []
        for name, entry in self.models.items():
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
                rows.append((name, "—", "—", "—", "—", "—", "—", verdict))
                continue
            rows.append(
                (
                    name,
                    format_shape(data["output_shape"]),
                    field_text(data["receptive_field"]),
                    _checkerboard_cell(data["checkerboard"], entry.get("findings", {})),
                    _sharing_text(data["sharing"], data["layers"]),
                    f"{data['parameters']:,}",
                    _flops_text(data["flops"]),
                    verdict,
                )
            )
        return rows

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        snapshot_line = self._snapshot_line()
        if not self.models and not snapshot_line:
            return
        terminalreporter.section("convcheck summary")
        if self.models:
            header = (
                "model",
                "output",
                "receptive field",
                "checkerboard",
                "sharing",
                "params",
                "FLOPs",
                "failed",
            )
            rows = self.rows()
            widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
            for row in (header, *rows):
                terminalreporter.write_line(
                    "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                )
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
            self._unused_snapshots(bool(getattr(self.config.option, "update_snapshots", False)))
        target = self.config.getoption("convcheck_report")
        if not target:
            return
        path = _invocation_path(self.config, str(target))
        data = {
            "schema": 1,
            "models": {
                name: {
                    "checks": entry["checks"],
                    "failed": [c for c, o in entry["checks"].items() if o == "failed"],
                    **({"findings": entry["findings"]} if entry.get("findings") else {}),
                    "report": entry["report"],
                }
                for name, entry in self.models.items()
            },
        }
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            self.report_problem = (
                f"convcheck report NOT written to {target}: {type(error).__name__}: {error}"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


SHARING_WIDTH = 60
"""The sharing column's widest cell; longer ones end with a count of what is left out."""


def _sharing_text(shared: dict[str, Any], layers: list[dict[str, Any]]) -> str:
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


def _checkerboard_cell(board: dict[str, Any], findings: dict[str, Any]) -> str:
    """The structural verdict (:func:`~pytest_convcheck.reports.checkerboard_text`),
    followed by what a failed ``weights``/``output``/``gradient`` kind found, so that
    the table never says ``even`` alone where a checkerboard check failed."""
    from pytest_convcheck.reports import checkerboard_text

    text = checkerboard_text(board)
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

_COLUMNS = ("model", "output", "receptive field", "checkerboard", "sharing", "params", "FLOPs")


def legend(rows: list[tuple[str, ...]], *, everything: bool = False) -> list[str]:
    """The legend under the summary table: the definition of each word the table uses
    (every word with ``everything``, ``--convcheck-legend``)."""
    import re

    index = {name: i for i, name in enumerate((*_COLUMNS, "failed"))}
    lines = []
    for column, pattern, text in LEGEND:
        cells = [r[index[column]] for r in rows] if column else [c for r in rows for c in r[1:]]
        if everything or any(re.search(pattern, cell) for cell in cells):
            lines.append(f"  {text}")
    if not lines:
        return []
    return ["legend:", *lines]


def _flops_text(flops: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return str(flops)
