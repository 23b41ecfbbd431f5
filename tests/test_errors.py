"""The exceptions' one home (pytest_convcheck.errors) and the standard message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_convcheck import errors
from pytest_convcheck.errors import ShapeError, problem


def test_a_problem_reads_label_what_and_fix() -> None:
    text = problem(
        "MaxPool2d 'pool'",
        "padding=2 along W must be at most half the kernel size (kernel_size // 2 = 3 // 2 = 1).",
        fix="use padding ≤ 1 or a larger kernel.",
    )
    assert text == (
        "MaxPool2d 'pool': padding=2 along W must be at most half the kernel size "
        "(kernel_size // 2 = 3 // 2 = 1).\n  fix: use padding ≤ 1 or a larger kernel."
    )


def test_a_problem_without_label_starts_with_what_and_a_cause_comes_before_the_fix() -> None:
    alone = problem(None, "needs output_size.", fix="give it.")
    assert alone == "needs output_size.\n  fix: give it."
    assert problem("Net", "forward failed.", cause="a CPU constant.", fix="use x.device.") == (
        "Net: forward failed.\n  cause: a CPU constant.\n  fix: use x.device."
    )


def test_pool_messages_are_problems() -> None:
    from pytest_convcheck.layers.pool import PoolSpec

    spec = PoolSpec("MaxPool2d", "max", 2, (3, 3), (1, 1), (2, 0), (1, 1))
    with pytest.raises(ShapeError) as raised:
        spec.output_shape((1, 1, 8, 8), "pool")
    assert str(raised.value) == problem(
        "MaxPool2d 'pool'",
        "padding=2 along H must be at most half the kernel size (kernel_size // 2 = 3 // 2 = 1).",
        fix="use padding ≤ 1 or a larger kernel.",
    )


def test_user_facing_exceptions_live_in_errors_and_keep_their_old_imports() -> None:
    from pytest_convcheck import ModelRunError
    from pytest_convcheck.benchmark_comparison import ComparisonError
    from pytest_convcheck.devices import DeviceUnavailable
    from pytest_convcheck.tracing import ModelRunError as traced
    from pytest_convcheck.tracing.failures import ModelRunError as failed

    assert ModelRunError is traced is failed is errors.ModelRunError
    assert DeviceUnavailable is errors.DeviceUnavailable
    assert ComparisonError is errors.ComparisonError
    # the bases callers catch them by
    assert issubclass(errors.ModelRunError, RuntimeError)
    assert issubclass(errors.DeviceUnavailable, RuntimeError)
    assert issubclass(errors.ComparisonError, ValueError)


def test_errors_never_imports_torch() -> None:
    code = "import sys, pytest_convcheck.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
