"""The checkerboard words and figure: one imbalance, the same in the summary table,
the JSON report and the failure text; interpolation upsamplers are named as such."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pytest_convcheck import assert_no_checkerboard, checkerboard, report
from pytest_convcheck.reports import checkerboard_text


def transposed_then_conv() -> nn.Module:
    # the k=3, s=2 transposed conv's own tile is 2×1 per axis (×4); the 3×3 conv after
    # it smooths the composed response at the output to ×1.5625
    return nn.Sequential(
        nn.ConvTranspose2d(4, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)
    )


def figure_in_failure(model: nn.Module, shape: tuple[int, ...]) -> str:
    with pytest.raises(AssertionError) as info:
        assert_no_checkerboard(model, shape)
    found = re.search(r"structural checkerboard, imbalance ×(\S+)", str(info.value))
    assert found, str(info.value)
    return found.group(1)


@pytest.mark.parametrize(
    ("factory", "shape", "expected"),
    [
        (transposed_then_conv, (1, 4, 8, 8), 4.0),
        (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2), (1, 1, 8, 8), 4.0),
        # two k=5, s=2 layers: each 3×2 per axis (×2.25), composed 2.56 (§一 of the article)
        (
            lambda: nn.Sequential(
                nn.ConvTranspose2d(1, 2, 5, stride=2), nn.ConvTranspose2d(2, 1, 5, stride=2)
            ),
            (1, 1, 6, 6),
            2.56,
        ),
        # 3-D, k=3, s=2: 2×1 on each of three axes
        (lambda: nn.ConvTranspose3d(1, 1, 3, stride=2), (1, 1, 4, 4, 4), 8.0),
    ],
    ids=["k3s2-then-conv", "k3s2", "two-k5s2", "3d-k3s2"],
)
def test_one_imbalance_figure_everywhere(factory, shape, expected: float) -> None:
    from pytest_convcheck.checkerboards import format_imbalance

    model = factory()
    result = report(model, shape)
    data = json.loads(result.to_json())
    in_json = data["checkerboard"]["output_imbalance"]
    table = checkerboard_text(data["checkerboard"])  # what the plugin's summary shows
    in_table = re.fullmatch(r"UNEVEN ×(\S+)", table)
    assert in_table, table
    in_report_text = re.search(r"checkerboard UNEVEN ×(\S+)", str(result))
    assert in_report_text, str(result)
    in_failure = figure_in_failure(factory(), shape)
    assert in_table.group(1) == in_report_text.group(1) == in_failure
    assert float(in_failure) == in_json == pytest.approx(expected)
    assert checkerboard(model, shape).imbalance == pytest.approx(expected)
    assert format_imbalance(checkerboard(model, shape).imbalance) == in_failure


def test_the_plugins_checkerboard_check_shows_the_same_figure() -> None:
    from pytest_convcheck.checks import RunContext, check_checkerboard
    from pytest_convcheck.config import ModelConfig

    shape = (1, 4, 8, 8)
    config = ModelConfig("decoder", "tests:none", shape, checks=("checkerboard",))
    with pytest.raises(AssertionError, match=r"structural checkerboard, imbalance ×4\n"):
        check_checkerboard(transposed_then_conv(), config, RunContext())
    assert checkerboard_text(report(transposed_then_conv(), shape).to_dict()["checkerboard"]) == (
        "UNEVEN ×4"
    )


def test_a_hole_reads_the_same_everywhere() -> None:
    model = nn.ConvTranspose2d(1, 1, 1, stride=2)  # phase 1 gets no tap
    data = report(model, (1, 1, 4, 4)).to_dict()
    assert checkerboard_text(data["checkerboard"]) == "UNEVEN ×∞"
    assert figure_in_failure(model, (1, 1, 4, 4)) == "∞"


class NearestDecoder(nn.Module):
    """A resize-convolution decoder (diffusers' VAE, MONAI, smp): nearest ×2, conv."""

    def __init__(self, mode: str = "nearest", functional: bool = False) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.mode, self.functional = mode, functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.functional:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode=self.mode))
        return self.conv(self.up(x))


@pytest.mark.parametrize(
    ("mode", "functional"),
    [("nearest", False), ("bilinear", False), ("nearest", True), ("bilinear", True)],
    ids=["Upsample-nearest", "Upsample-bilinear", "interpolate-nearest", "interpolate-bilinear"],
)
def test_an_interpolation_upsampler_is_even_by_interpolation(mode: str, functional: bool) -> None:
    model, shape = NearestDecoder(mode, functional), (1, 4, 8, 8)
    result = report(model, shape)
    data = result.to_dict()
    assert checkerboard_text(data["checkerboard"]) == "even (interpolation)"
    assert result.checkerboard_text == "even (interpolation)"
    assert "checkerboard even (interpolation)" in str(result)
    assert not data["checkerboard"]["structural"]
    (layer,) = data["checkerboard"]["upsampling_layers"]
    assert layer["mode"] == mode and layer["imbalance"] == 1.0
    board = checkerboard(model, shape)
    assert "no upsampling layers" not in str(board)
    assert "overlap even (interpolation)" in str(board)
    assert f", {mode}): interpolation 8→16, 8→16" in str(board)


def test_transposed_and_interpolation_together_is_plain_even() -> None:
    model = nn.Sequential(
        nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1), nn.Upsample(scale_factor=2)
    )
    assert report(model, (1, 4, 8, 8)).checkerboard_text == "even"


def test_a_model_without_upsampling_still_says_so() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    assert report(model, (1, 1, 8, 8)).checkerboard_text == "no upsampling"
    downsample = nn.Sequential(nn.Upsample(scale_factor=0.5), nn.Conv2d(1, 1, 3))
    assert report(downsample, (1, 1, 8, 8)).checkerboard_text == "no upsampling"
