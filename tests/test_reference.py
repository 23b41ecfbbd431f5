"""The float64 reference against torch, and the semantic facts of convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from pytest_convcheck.reference import (
    assert_conv_matches_reference,
    assert_transpose_is_adjoint,
    conv_reference,
    interpolate_reference,
    pool_reference,
    transpose_is_not_inverse,
)


def test_convolution_is_cross_correlation_not_flipped() -> None:
    x = torch.arange(25.0, dtype=torch.float64).reshape(1, 1, 5, 5)
    kernel = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    got = F.conv2d(x, kernel)
    assert torch.equal(got, conv_reference(x, kernel))
    assert float(got[0, 0, 0, 0]) == 0 * 1 + 1 * 2 + 5 * 3 + 6 * 4  # no flip
    flipped = conv_reference(x, kernel.flip(-1, -2))
    assert not torch.allclose(got, flipped)


def test_dilation_equals_a_zero_inserted_kernel() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 11, 11, dtype=torch.float64)
    kernel = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    inserted = torch.zeros(3, 2, 5, 5, dtype=torch.float64)
    inserted[:, :, ::2, ::2] = kernel
    assert torch.allclose(F.conv2d(x, kernel, dilation=2), F.conv2d(x, inserted))


def test_groups_split_channels_into_independent_convolutions() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    weight = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    grouped = F.conv2d(x, weight, groups=2)
    separate = torch.cat([F.conv2d(x[:, :2], weight[:3]), F.conv2d(x[:, 2:], weight[3:])], dim=1)
    assert torch.allclose(grouped, separate)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 4, 3, stride=2, padding=1),
        nn.Conv1d(2, 2, 5, dilation=2, padding=3),
        nn.Conv3d(2, 4, (1, 3, 3), stride=(1, 2, 1), groups=2),
    ],
    ids=["2d-stride", "1d-dilated", "3d-grouped"],
)
def test_transpose_is_the_adjoint_and_the_input_gradient(conv: nn.Module) -> None:
    shape = {1: (1, 2, 17), 2: (1, 3, 9, 8), 3: (1, 2, 3, 7, 6)}[conv.weight.dim() - 2]
    assert assert_transpose_is_adjoint(conv, shape) < 1e-12


def test_transpose_is_not_the_inverse_as_the_article_claims() -> None:
    # §一: "the inverse process that maps outputs back to inputs"
    conv = MODELS["s01_transposed_conv"][0]().conv1  # Conv2d(1, 10, 5)
    gap = transpose_is_not_inverse(conv, (1, 1, 28, 28))
    assert gap.relative_error > 0.5
    assert "adjoint of the convolution, not its inverse" in str(gap)


def test_a_flipped_kernel_conv_fails_the_reference() -> None:
    class Flipped(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight.flip(-1, -2), self.bias, self.stride, self.padding)

    with pytest.raises(AssertionError, match="largest difference"):
        assert_conv_matches_reference(Flipped(2, 3, 3), (1, 2, 6, 6))
    assert_conv_matches_reference(nn.Conv2d(2, 3, 3), (1, 2, 6, 6))


@pytest.mark.parametrize("mode", ["max", "avg", "avg-exclude-pad"])
def test_pooling_matches_the_reference(mode: str) -> None:
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    if mode == "max":
        expected = F.max_pool2d(x, 3, 2, 1)
        got = pool_reference(x, 3, 2, 1, "max")
    else:
        include = mode == "avg"
        expected = F.avg_pool2d(x, 3, 2, 1, count_include_pad=include)
        got = pool_reference(x, 3, 2, 1, "avg", include)
    assert torch.allclose(got, expected)


@pytest.mark.parametrize(
    ("mode", "align"), [("nearest", False), ("bilinear", False), ("bilinear", True)]
)
def test_interpolation_matches_the_reference(mode: str, align: bool) -> None:
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64)
    options = {} if mode == "nearest" else {"align_corners": align}
    expected = F.interpolate(x, size=(13, 5), mode=mode, **options)
    assert torch.allclose(interpolate_reference(x, (13, 5), mode, align), expected)
