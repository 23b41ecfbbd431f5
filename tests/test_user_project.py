"""``examples/user_project`` run as its users run it (pytester in-process; xdist in a subprocess):
exact outcomes, the key failure lines, the summary (once, also under xdist), the
JSON report and the pictures of failed checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).parent.parent / "examples" / "user_project"


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    for item in PROJECT.iterdir():
        if item.name in ("__pycache__", ".pytest_cache"):
            continue
        target = pytester.path / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(item, target)
    return pytester


FAILED = [
    "FAILED tests/test_models.py::test_decoder_restores_28x28 - AssertionError*",
    "FAILED convcheck::decoder::shapes - *",
    "FAILED convcheck::decoder::checkerboard - *",
    "FAILED convcheck::upsampler::checkerboard - *",
    "FAILED convcheck::encoder::sharing - *",
]


def test_planted_bugs_are_found_and_the_sound_model_passes(user_project: pytest.Pytester):
    result = user_project.runpytest_inprocess("--convcheck", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=16, failed=5)
    result.stdout.fnmatch_lines(FAILED, consecutive=False)
    result.stdout.fnmatch_lines(
        [
            "*model 'decoder'*check 'shapes'*",
            "*expected output 2×1×28×28 for input 2×16×7×7, got 2×1×37×37*",
            "*up2 (ConvTranspose2d): 2×8×17×17 → 2×1×37×37*",
        ]
    )
    result.stdout.fnmatch_lines(["*up (ConvTranspose2d, kernel (3, 3), stride (2, 2)*imbalance 4"])
    result.stdout.fnmatch_lines(["*`?block? ? 3`*share one set of weights*"])
    text = result.stdout.str()
    assert text.count("convcheck summary") == 1
    assert "INTERNALERROR" not in text
    result.stdout.fnmatch_lines(
        [
            "*model*output*receptive field*checkerboard*sharing*params*FLOPs*failed",
            "classifier *2×10*9,098*—",
            "decoder *2×1×37×37*UNEVEN ×2.56*shapes, checkerboard",
            "upsampler *UNEVEN ×4 *checkerboard",
            "encoder *ALIAS blocks.0=blocks.1=blocks.2*sharing",
        ],
        consecutive=False,
    )


def test_without_the_flag_only_hand_written_tests_run(user_project: pytest.Pytester):
    result = user_project.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    assert "convcheck summary" not in result.stdout.str()


def test_xdist_gives_the_same_outcomes_and_one_summary(user_project: pytest.Pytester):
    result = user_project.runpytest_subprocess("--convcheck", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=16, failed=5)
    text = result.stdout.str()
    assert text.count("convcheck summary") == 1
    for name in ("classifier", "decoder", "upsampler", "encoder"):
        assert sum(line.startswith(f"{name} ") for line in text.splitlines()) == 1


def test_json_report(user_project: pytest.Pytester):
    result = user_project.runpytest_inprocess(
        "--convcheck", "--convcheck-report", "out/report.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=16, failed=5)
    data = json.loads((user_project.path / "out" / "report.json").read_text())
    models = data["models"]
    assert models["decoder"]["failed"] == ["shapes", "checkerboard"]
    assert models["classifier"]["failed"] == []
    assert models["classifier"]["report"]["parameters"] == 9_098
    assert models["decoder"]["report"]["output_shape"] == [2, 1, 37, 37]
    assert models["encoder"]["report"]["sharing"]["suspicious"] == [
        ["blocks.0", "blocks.1", "blocks.2"]
    ]
    assert models["test_classifier_report"]["checks"] == {"report": "passed"}


def test_artifacts_hold_pictures_of_failed_checks(user_project: pytest.Pytester):
    pytest.importorskip("matplotlib")
    result = user_project.runpytest_inprocess(
        "--convcheck",
        "--convcheck-artifacts",
        "pictures",
        "-k",
        "checkerboard",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1, failed=2, deselected=18)
    pictures = sorted(p.name for p in (user_project.path / "pictures").iterdir())
    assert pictures == [
        "decoder-checkerboard-structural.png",
        "upsampler-checkerboard-structural.png",
    ]
    result.stdout.fnmatch_lines(["*picture: pictures/upsampler-checkerboard-structural.png"])
