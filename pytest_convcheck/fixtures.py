"""The fixtures pytest-convcheck gives hand-written tests: ``convcheck_device`` (the
device to run on), ``convcheck_report`` (a model's report, added to the
``--convcheck`` summary) and ``conv_benchmark`` (a pytest-benchmark timing of a
layer or model with FLOPs and roofline figures). :mod:`pytest_convcheck.plugin`
imports them, so pytest finds them in the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_convcheck.options import device_or_skip, requested_device
from pytest_convcheck.summary import FACTS_KEY

if TYPE_CHECKING:
    from pytest_convcheck.benchmarking import ConvBenchmark
    from pytest_convcheck.reports import ConvReport


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

    requested = requested_device(request.config)
    device = device_or_skip(request.config, requested or default_device())
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
            assert not r.checkerboard.structural
    """
    from pytest_convcheck.reports import report

    def make(model: Any, input_shape: Sequence[int], **options: Any) -> ConvReport:
        value = report(model, input_shape, **options)
        request.node.user_properties.append(
            (
                FACTS_KEY,
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

    for path, saved_runs in _compared_runs(request.config).items():
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


def _compared_runs(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """The saved runs ``--benchmark-compare`` loaded: per file, benchmark name → saved
    result (empty without pytest-benchmark or without the option).

    pytest-benchmark documents no API for them. Its ``BenchmarkSession`` is
    registered as the plugin ``"pytest-benchmark"`` (a public lookup, which also
    works where pytest-benchmark is disabled: ``None``), and it keeps the loaded runs
    in its public attribute ``compared_mapping``; this is the one place that reads
    it."""
    session = config.pluginmanager.get_plugin("pytest-benchmark")
    mapping = getattr(session, "compared_mapping", None)
    return mapping or {}
