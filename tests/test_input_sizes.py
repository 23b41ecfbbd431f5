"""Valid input sizes as a rule (issue #20): exact against brute force."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from pytest_convcheck import assert_output_shape, input_size_rule, valid_input_sizes

ARTICLE = {
    "s01_transposed_conv": "every size from 16; output 4·⌊n/4⌋ − 3",
    "s06_cnn": "28–31",
    "s08_conv1d": "64–67",
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rule_of_the_article_models_equals_brute_force(name: str) -> None:
    factory, shape = MODELS[name]
    model = factory()
    rule = input_size_rule(model, shape, -1, limit=160)
    assert rule.valid(range(1, 100)) == valid_input_sizes(model, shape, -1, sizes=range(1, 100))
    if name in ARTICLE:
        assert rule.describe() == ARTICLE[name]


class PoolUNet(nn.Module):
    def __init__(self, pools: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(2, 2, 3, padding=1) for _ in range(pools))
        self.up = nn.ModuleList(nn.Conv2d(4, 2, 3, padding=1) for _ in range(pools))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for conv in self.down:
            skips.append(x)
            x = F.max_pool2d(conv(x), 2)
        for conv, skip in zip(self.up, reversed(skips), strict=True):
            x = conv(torch.cat([F.interpolate(x, scale_factor=2.0), skip], 1))
        return x


def test_a_three_pool_unet_takes_multiples_of_eight() -> None:
    rule = input_size_rule(PoolUNet(), (1, 1, 32, 32), -1)
    assert rule.describe() == "multiples of 8 from 8; output n"
    assert rule.valid(range(1, 1000)) == list(range(8, 1000, 8))
    brute = valid_input_sizes(PoolUNet(), (1, 1, 32, 32), -1, sizes=range(1, 80))
    assert rule.valid(range(1, 80)) == brute


def test_odd_residues_and_exceptions() -> None:
    class Odd(nn.Module):  # a valid conv, then a merge with a stride-2 path
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv1d(1, 1, 3, stride=2)
            self.b = nn.Conv1d(1, 1, 5, stride=2, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    rule = input_size_rule(Odd(), (1, 1, 32), -1, limit=200)
    brute = valid_input_sizes(Odd(), (1, 1, 32), -1, sizes=range(1, 120))
    assert rule.valid(range(1, 120)) == brute
    assert "(mod" in rule.describe() or "every size" in rule.describe()


def test_the_shapes_failure_prints_the_rule() -> None:
    factory, shape = MODELS["s01_transposed_conv"]
    with pytest.raises(AssertionError, match=r"sizes it takes along width \(dim 3\): every size"):
        assert_output_shape(factory(), shape, (1, 1, 28, 28))


def test_bad_dim_is_refused() -> None:
    with pytest.raises(ValueError, match="not a spatial dim"):
        input_size_rule(PoolUNet(), (1, 1, 32, 32), 0)
