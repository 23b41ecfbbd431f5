"""The conformance suite as users run it, device selection, and the gpu marker."""

from __future__ import annotations

import pytest
import torch

from pytest_convcheck.conformance import CONFORMANCE, run_conformance
from pytest_convcheck.devices import DeviceUnavailable, resolve_device


def test_conformance_suite_passes_on_this_torch(pytester: pytest.Pytester) -> None:
    # the whole suite wired as users run it, in an empty project on CPU; 3 examples per
    # item: the rule families themselves are fuzzed by tests/test_layers_property.py,
    # and the README's figure is the full run (100 examples per item)
    result = pytester.runpytest_inprocess(
        "--convcheck-conformance", "--convcheck-conformance-examples", "3", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=len(CONFORMANCE))
    result.stdout.fnmatch_lines([f"collected {len(CONFORMANCE)} items"])


def test_conformance_on_a_missing_device_skips_with_the_reason(pytester: pytest.Pytester):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the suite would run")
    result = pytester.runpytest_inprocess(
        "--convcheck-conformance", "--convcheck-device", "cuda", "-rs", "-k", "cross_correlation"
    )
    result.assert_outcomes(skipped=1, deselected=len(CONFORMANCE) - 1)
    result.stdout.fnmatch_lines(["*device 'cuda' requested, but torch * sees no CUDA device*"])


def test_a_broken_backend_fails_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.nn.functional.conv2d

    def flipped(x, w, *args, **kwargs):  # a backend that convolves instead of correlating
        return real(x, w.flip(-1, -2), *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", flipped)
    with pytest.raises(AssertionError, match="expected 41"):
        run_conformance("cross_correlation")


def test_unknown_conformance_name() -> None:
    with pytest.raises(ValueError, match="unknown conformance check 'nope'"):
        run_conformance("nope")


def test_each_xdist_worker_gets_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    seen = []
    for worker in ("gw0", "gw1", "gw2", "gw3", "gw5"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        seen.append(resolve_device("cuda"))
    assert seen == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:1"]
    assert resolve_device("cuda:2") == "cuda:2"  # an explicit index is kept
    with pytest.raises(DeviceUnavailable, match="4 CUDA device"):
        resolve_device("cuda:7")
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert resolve_device("cuda") == "cuda:0"


def test_device_names() -> None:
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="no CUDA device"):
            resolve_device("cuda")


GPU_TESTS = """
import pytest

@pytest.mark.gpu
def test_on_gpu():
    pass

def test_anywhere(convcheck_device):
    assert convcheck_device in ("cpu", "cuda:0", "mps")
"""


def test_gpu_marker_skips_without_cuda_or_fails_when_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pytester.makepyfile(test_gpu=GPU_TESTS)
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs a CUDA device; torch * sees none*"])
    result = pytester.runpytest_inprocess("-rs", "--convcheck-device", "cuda")
    result.assert_outcomes(skipped=2)  # the fixture skips too: the device is not here
    monkeypatch.setenv("CONVCHECK_REQUIRE_GPU", "1")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, errors=1)  # fails in setup: an error, exit code 1
    result.stdout.fnmatch_lines(["*CONVCHECK_REQUIRE_GPU=1 requires one*"])
