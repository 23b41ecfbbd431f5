"""Each failed check draws the picture of its own finding (issue #19): the figure's
title and one-line caption name it and hold the number that failed, every image
has a colour bar and axis labels, the spectra mark the stride frequencies. The
PNG carries the same in its text chunks. With pytest-html, the pictures and the
trace table are attached to the failing items of the report."""

from __future__ import annotations

import base64
import html
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pytest.importorskip("matplotlib", reason="pictures need the plots extra (matplotlib)")

from pytest_convcheck.checks import CHECKS, RunContext
from pytest_convcheck.config import ModelConfig
from pytest_convcheck.pictures import (
    Picture,
    read_png_text,
    stride_frequencies,
)


class MixesBatch(nn.Module):
    """Adds the batch mean: every sample reads every other one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + y.mean(0, keepdim=True)


def _flat_k4s2() -> nn.Module:
    torch.manual_seed(0)
    return nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1)  # even overlap, random weights


# name → (model, input, check, options, expect_output, words in title, words in caption)
CASES: dict[str, tuple[Any, ...]] = {
    "structural": (
        lambda: nn.ConvTranspose2d(1, 1, 3, stride=2),
        (1, 1, 8, 8),
        "checkerboard",
        {"checkerboard_kinds": ("structural",)},
        None,
        "structural checkerboard",
        "imbalance ×4",
    ),
    "weights": (
        _flat_k4s2,
        (1, 2, 8, 8),
        "checkerboard",
        {"checkerboard_kinds": ("weights",)},
        None,
        "per-phase gains of the weights",
        "spread score",
    ),
    "output": (
        _flat_k4s2,
        (1, 2, 16, 16),
        "checkerboard",
        {"checkerboard_kinds": ("output",)},
        None,
        "output checkerboard",
        "of the output on a smooth input's spectral energy",
    ),
    "gradient": (
        lambda: nn.Conv2d(1, 2, 1, stride=2),
        (1, 1, 32, 32),
        "checkerboard",
        {"checkerboard_kinds": ("gradient",)},
        None,
        "gradient checkerboard",
        "of the input gradient's spectral energy",
    ),
    "holes": (
        lambda: nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, dilation=2)),
        (1, 1, 16, 16),
        "receptive_field",
        {},
        None,
        "receptive field of",
        "has holes",
    ),
    "bounds": (
        lambda: nn.Conv2d(1, 1, 3),
        (1, 1, 9, 9),
        "receptive_field",
        {"receptive_field_min": 5},
        None,
        "receptive field of",
        "smaller than min_size 5×5",
    ),
    "shapes": (
        lambda: nn.ConvTranspose2d(1, 1, 5, stride=2),
        (1, 1, 7, 7),
        "shapes",
        {},
        (1, 1, 14, 14),
        "shape trace of",
        "expected output 1×1×14×14 for input 1×1×7×7, got 1×1×17×17",
    ),
    "batch": (
        MixesBatch,
        (4, 1, 6, 6),
        "batch",
        {},
        None,
        "batch independence of",
        "depends on other samples of the batch",
    ),
}


def _fail(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **context: Any
) -> tuple[str, RunContext, list[Picture]]:
    """Run the case's check to its failure; the message, the run's context and the
    pictures it drew (kept while it saves them as it always does)."""
    import pytest_convcheck.checks as checks

    factory, shape, check, options, expect, _, _ = CASES[name]
    config = ModelConfig(f"pictures-{name}", f"tests:{name}", shape, expect, options=options)
    run = RunContext(artifacts=tmp_path, **context)
    drawn: list[Picture] = []
    original = checks._picture

    def keep(context: RunContext, picture_name: str, draw: Any) -> str:
        def drawing() -> Picture:
            drawn.append(draw())
            return drawn[-1]

        return original(context, picture_name, drawing)

    monkeypatch.setattr(checks, "_picture", keep)
    with pytest.raises(AssertionError) as info:
        CHECKS[check](factory(), config, run)
    return str(info.value), run, drawn


def _assert_readable(picture_axes: list[Any]) -> None:
    """Every image panel has axis labels and a colour bar labelled with its unit."""
    images = [ax for ax in picture_axes if ax.get_images()]
    assert images, "no image in the figure"
    for ax in images:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
    bars = [ax for ax in picture_axes if ax.get_label() == "<colorbar>"]
    assert len(bars) >= len(images)
    assert all(bar.get_ylabel() for bar in bars)


@pytest.mark.parametrize("name", list(CASES))
def test_a_failed_check_draws_the_picture_of_its_own_finding(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    *_, title_words, caption_words = CASES[name]
    message, run, [picture] = _fail(name, tmp_path, monkeypatch, pictures_in_memory=True)
    # the saved PNG says which finding it shows
    check = CASES[name][2]
    suffix = f"-{check}" + (f"-{name}" if check == "checkerboard" else "")
    path = tmp_path / f"pictures-{name}{suffix}.png"
    assert f"picture: {path}" in message
    text = read_png_text(path)
    assert title_words in text["Title"], text
    assert caption_words in text["Description"], text
    facts = json.loads(text["convcheck"])
    assert facts["check"] == check
    if check == "checkerboard":
        assert facts["kind"] == name  # the weights picture is not the structural tiles
    # the same PNG is kept for the HTML report, labelled with its caption
    [(label, data)] = [a for a in run.attachments if isinstance(a[1], bytes)]
    assert data == path.read_bytes() and label.endswith(text["Description"])
    # the figure: its title, its one-line caption, colour bars and axis labels
    figure = picture.figure
    assert figure._suptitle is not None and figure._suptitle.get_text() == text["Title"]
    assert text["Description"] in [t.get_text() for t in figure.texts]
    if name == "shapes":  # a line plot: sizes along depth, the expected size marked
        [ax, *_] = figure.axes
        assert ax.get_xlabel() == "layer (in call order)"
        marked = {float(line.get_ydata()[0]) for line in ax.lines if line.get_gid() == "expected"}
        assert marked == {14.0}
        assert ax.get_xticklabels()[0].get_text() == "input"
    else:
        _assert_readable(figure.axes)
    if name == "holes":  # every hole of the centre output's field is marked ×
        [ax, *_] = figure.axes
        [crosses] = ax.collections
        assert len(crosses.get_offsets()) == facts["holes"] == 9 * 9 - 5 * 5


def test_the_spectrum_marks_the_stride_frequencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message, _, [picture] = _fail("output", tmp_path, monkeypatch)
    facts = picture.facts
    # a 32×32 output of a stride-2 upsampler: P = 2, the frequency N/2 (fftshifted: 0)
    assert facts["period"] == [2, 2]
    assert facts["marked_frequencies"] == [[0], [0]] == stride_frequencies((32, 32), (2, 2))
    assert f"{facts['score']:.1%}" in message
    # P = 4 on 48 samples: m·N/P = 12, 24, 36, shifted by 24 (DC in the middle)
    assert stride_frequencies((48,), (4,)) == [[0, 12, 36]]
    # the marks are drawn: × at (0, centre), (centre, 0) and (0, 0), around the DC at 16
    spectrum_axes = picture.figure.axes[1]
    [points] = spectrum_axes.collections
    assert sorted(map(tuple, points.get_offsets().tolist())) == [(0, 0), (0, 16), (16, 0)]


def test_weight_findings_say_which_weights_and_the_fix_that_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message, run, _ = _fail("output", tmp_path, monkeypatch)
    assert "the factory's random initial weights (seed 0)" in message
    assert 'set weights = "path.pt"' in message
    assert "ICNR" in message
    assert "ConvTranspose2d(k=4, s=2, p=1)" not in message  # it already is that layer
    assert run.notes["findings"]["checkerboard"]["output"]["figure"] in message


def test_pictures_are_attached_to_failing_items_of_a_pytest_html_report(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_html", reason="the attachment needs pytest-html (html extra)")
    pytester.makepyfile(
        upsampler=textwrap.dedent(
            """
            from torch import nn

            def Upsampler():
                return nn.ConvTranspose2d(1, 1, 3, stride=2)
            """
        )
    )
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(
            """
            [tool.convcheck.models.up]
            factory = "upsampler:Upsampler"
            input = [1, 1, 8, 8]
            checks = ["shapes", "checkerboard"]
            """
        ),
    )
    pytester.syspathinsert()  # in-process: the model module imports from the project
    result = pytester.runpytest_inprocess(
        "--convcheck", "--html=report.html", "--self-contained-html", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    page = (pytester.path / "report.html").read_text()
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob is not None
    tests = json.loads(html.unescape(blob.group(1)))["tests"]
    [passed] = tests["convcheck::up::shapes"]
    assert passed["extras"] == []
    [failed] = tests["convcheck::up::checkerboard"]
    picture, table = failed["extras"]
    assert picture["format_type"] == "image"
    assert picture["name"].startswith(
        "up-checkerboard-structural.png: uneven overlap: imbalance ×4"
    )
    png = base64.b64decode(picture["content"].removeprefix("data:image/png;base64,"))
    assert "imbalance ×4" in read_png_text(png)["Description"]
    assert table["name"] == "trace table" and table["format_type"] == "text"
