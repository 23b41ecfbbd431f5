"""The test items that ``pytest --convcheck`` generates, and how they run.

:class:`ConvcheckItem` is one check of one configured model
(``convcheck::NAME::CHECK``): it builds the model (once per process), computes its
report (once per process, kept in the run's
:class:`~pytest_convcheck.session.ConvcheckSession`), runs the check under its time
limit and turns what goes wrong into a message, never a traceback.
:class:`ConformanceItem` is one item of ``--convcheck-conformance``. Importing this
module never imports torch; running an item does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_convcheck.config import ModelConfig
from pytest_convcheck.errors import ConvcheckConfigError
from pytest_convcheck.options import check_timeout, device_or_skip, run_context
from pytest_convcheck.session import convcheck_session
from pytest_convcheck.summary import FACTS_KEY
from pytest_convcheck.time_limit import CheckTimeout, time_limit


class ConvcheckCollector(pytest.Collector):
    """The parent of the generated items (node id ``convcheck`` or
    ``convcheck-conformance``)."""

    def collect(self) -> list[pytest.Item]:  # items are created in modifyitems
        return []


def _skip(reason: str) -> None:
    """Skip a generated item (:func:`~pytest_convcheck.plugin.pytest_runtest_makereport`
    reports it at the item, ``SKIPPED [1] convcheck::NAME::CHECK: …``, not at a line
    of this plugin)."""
    pytest.skip(reason)


class ConvcheckFailure(Exception):
    """A failed check: its message is the whole report (no traceback)."""


class GeneratedItem(pytest.Item):
    """An item made by this plugin: a failure shows its message, not a traceback."""

    prefix = "convcheck"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (ConvcheckFailure, pytest.xfail.Exception)):
            # an allowed check's xfail carries the whole report too: a traceback of
            # the plugin's own frames would say nothing (and cost 0.1 s to draw)
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.prefix}::{self.name}"


class ConvcheckItem(GeneratedItem):
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
        first_items = convcheck_session(self.config).first_items
        first = first_items.get(self.model.name if self.model else "", self.nodeid)
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
        self.user_properties.append((FACTS_KEY, facts))
        header = (
            f"[convcheck] model {config.name!r} ({config.factory}, input "
            f"{config.input_text()}), check {self.check!r}:\n"
        )
        seconds, limit = check_timeout(self.config, config)
        try:  # a model that cannot be built is never allowed away
            with time_limit(seconds):
                model = checks.cached_model(config)
        except ConvcheckConfigError as error:
            self._cannot_build(header, str(error))
            return
        except CheckTimeout:
            checks.remember_failure(
                config,
                f"model {config.name!r}: the factory {config.factory!r} did not finish within "
                f"{seconds:g} s ({limit}).\n  fix: make the factory faster (no downloads or "
                f"training in it), or raise the limit.",
            )
            self._cannot_build(header, checks.cached_failure(config))
            return
        context = run_context(self.config, self.check)
        first = convcheck_session(self.config).first_items.get(config.name, self.nodeid)
        others_skipped = ""
        try:
            with time_limit(seconds):
                facts["report"] = _report_dict(self.config, config, model)
                failure = convcheck_session(self.config).run_failures.get(config.name)
                if failure is not None and first != self.nodeid:
                    _skip(
                        f"model {config.name!r} does not run at its input "
                        f"{config.input_text()}: see {first} ({failure.splitlines()[0]})"
                    )
                if failure is not None:
                    others_skipped = (
                        "\n  (the model's other checks are skipped: they need it to run at "
                        "its input)"
                    )
                    if self.check != "shapes":  # its message adds the sizes that work
                        raise ModelRunError(failure)
                checks.require_tensor_output(config, facts["report"])
                checks.CHECKS[self.check](model, config, context)
        except (
            AssertionError,
            ShapeError,
            ModelRunError,
            ModelStateError,
            CheckTimeout,
            SystemExit,
            MemoryError,
        ) as error:
            text = f"{header}{_failure_text(error, config, self.check, seconds, limit)}"
            text += others_skipped
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
                text = f"{header}{user}{others_skipped}"
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
    if isinstance(error, CheckTimeout):
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


def _report_dict(
    pytest_config: pytest.Config, config: ModelConfig, model: Any
) -> dict[str, Any] | None:
    """The model's report as a dict, computed once per process and run (``None`` when
    the model cannot be traced: its checks say why)."""
    reports = convcheck_session(pytest_config).reports
    if config.name not in reports:
        from pytest_convcheck.checks import model_inputs, sharing_allow
        from pytest_convcheck.reports import report

        try:
            inputs = model_inputs(config)
            value = report(model, inputs, sharing_allow=sharing_allow(model, config))
            reports[config.name] = value.to_dict()
        except (Exception, SystemExit):  # the checks report the failure with context
            reports[config.name] = None
            failure = _run_failure(config, model)
            if failure is not None:
                convcheck_session(pytest_config).run_failures[config.name] = failure
    return reports[config.name]


def _run_failure(config: ModelConfig, model: Any) -> str | None:
    """Why the model does not run at its described input (its trace raises a
    :class:`~pytest_convcheck.errors.ShapeError` or a ``ModelRunError``); ``None``
    when it runs (the report failed in an analysis: each check says its own)."""
    from pytest_convcheck.checks import model_inputs, user_error
    from pytest_convcheck.errors import ShapeError
    from pytest_convcheck.tracing import ModelRunError, trace

    try:
        trace(model, model_inputs(config))
    except (ShapeError, ModelRunError) as error:
        # an input without batch and channel axes: the configuration's fault, said so
        return user_error(error, config) or str(error) or type(error).__name__
    except (Exception, SystemExit):
        return None
    return None


class ConformanceItem(GeneratedItem):
    """One conformance check (see :mod:`pytest_convcheck.conformance`)."""

    prefix = "convcheck-conformance"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("convcheck")

    def runtest(self) -> None:
        from pytest_convcheck.conformance import run_conformance

        device = device_or_skip(self.config, "cpu")
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
