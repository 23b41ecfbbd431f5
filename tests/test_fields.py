"""Receptive fields: analytic (from the trace) against published numbers and against
autograd measurements on 40 architectures; the effective field; the assertion."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from architectures import ZOO
from torch import nn

from examples.article import MODELS
from examples.reference_models import alexnet_features, mobilenet_v1, resnet50, vgg16_features
from pytest_convcheck import (
    assert_receptive_field,
    effective_receptive_field,
    empirical_receptive_field,
    receptive_field,
)


def test_vgg16_pool5_matches_araujo_et_al() -> None:
    # Distill 2019, table: VGG-16 pool5 — size 212, stride 32, padding 90
    field = receptive_field(vgg16_features(), (1, 3, 224, 224))
    assert field.size == (212, 212)
    assert field.stride == (32, 32)
    assert field.offset == (-90, -90)
    assert not field.holes


def test_resnet50_matches_araujo_et_al() -> None:
    # Distill 2019: ResNet-50 (V1, stride on the first 1×1 conv of a stage) — size 483,
    # stride 32. Their effective padding (239) assumes TF "SAME" padding, which pads
    # stride-2 layers asymmetrically; PyTorch pads symmetrically, hence offset −241.
    v1 = resnet50()
    for stage in (v1.layer2, v1.layer3, v1.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    field = receptive_field(v1, (1, 3, 224, 224))
    assert (field.size, field.stride, field.offset) == ((483, 483), (32, 32), (-241, -241))
    # torchvision's layout (V1.5, stride on the 3×3 conv) sees less: 427
    assert receptive_field(resnet50(), (1, 3, 224, 224)).size == (427, 427)


def test_mobilenet_v1_and_alexnet_match_araujo_et_al() -> None:
    # Distill 2019: mobilenet_v1 — size 315, stride 32, effective padding 126. TF "SAME"
    # pads a stride-2 3×3 conv (0, 1) on even inputs; PyTorch pads (1, 1), which adds
    # 1 + 2 + 4 + 8 + 16 = 31 for the five stride-2 layers: offset −(126 + 31) = −157.
    field = receptive_field(mobilenet_v1(), (1, 3, 224, 224))
    assert (field.size, field.stride, field.offset) == ((315, 315), (32, 32), (-157, -157))
    # alexnet_v2: size 195, stride 32 (torchvision's AlexNet features have the same field)
    field = receptive_field(alexnet_features(), (1, 3, 224, 224))
    assert (field.size, field.stride) == ((195, 195), (32, 32))


def test_dilated_stack_matches_yu_and_koltun() -> None:
    # arXiv 1511.07122: 3×3 convs with dilations 1,1,2,4,8,16,1 grow 3,5,9,17,33,65,67
    model = nn.Sequential(
        *[nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in (1, 1, 2, 4, 8, 16, 1)]
    )
    field = receptive_field(model, (1, 1, 140, 140))
    assert [row.size[0] for row in field.layers] == [3, 5, 9, 17, 33, 65, 67]
    assert not field.holes


def test_gridding_holes_are_found_and_placed() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=2, dilation=2), nn.Conv2d(1, 1, 3, padding=2, dilation=2)
    )
    field = receptive_field(model, (1, 1, 32, 32))
    assert field.size == (9, 9) and field.holes
    assert field.hole_positions == ((1, 3, 5, 7), (1, 3, 5, 7))
    assert "holes at" in str(field)


@pytest.mark.parametrize("name", list(ZOO))
def test_analytic_field_equals_the_measured_one(name: str) -> None:
    factory, shape = ZOO[name]
    model = factory()
    measured = empirical_receptive_field(model, shape)
    analytic = receptive_field(model, measured.input_shape)
    assert measured.measured, "no output position was measured"
    for position, found in measured.measured.items():
        assert analytic.positions(position) == found, position
    assert measured.size == analytic.size
    assert measured.holes == analytic.holes
    if not measured.clipped:
        assert measured.stride == analytic.stride
        assert measured.offset == analytic.offset


def test_zoo_has_at_least_thirty_architectures() -> None:
    assert len(ZOO) >= 30


ARTICLE_FIELDS = {
    # section: (size, stride, offset, phase sizes of the first axis, global)
    "s01_transposed_conv": ((28, 28), (1, 1), (-12, -12), (28, 24, 24, 24), False),
    "s02_dilated_conv": ((24, 24), (4, 4), (0, 0), (24,), False),
    "s03_upsampling": ((20, 20), (1, 1), (-4, -4), (20, 16, 16, 20), False),
    "s04_checkerboard_fix": ((24, 24), (2, 2), (-8, -8), (24, 24), False),
    "s05_feature_visualisation": ((16, 16), (1, 1), (0, 0), (16, 16, 16, 16), False),
    "s07_deconvolution": ((16, 16), (1, 1), (0, 0), (16, 16, 16, 16), False),
    "s06_cnn": ((28, 28), (28, 28), (0, 0), (28,), True),
    "s08_conv1d": ((64,), (64,), (0,), (64,), True),
    "s09_cnn1d": ((64,), (64,), (0,), (64,), True),
    "s10_conv_reuse": ((64,), (64,), (0,), (64,), True),
}


@pytest.mark.parametrize("section", list(ARTICLE_FIELDS))
def test_article_fields(section: str) -> None:
    factory, shape = MODELS[section]
    size, stride, offset, phases, whole = ARTICLE_FIELDS[section]
    field = receptive_field(factory(), shape)
    assert (field.size, field.stride, field.offset) == (size, stride, offset)
    assert field.phase_sizes[0] == phases
    assert all(field.whole) is whole


def test_section_two_dilation_grows_the_field() -> None:
    # §二 claims dilation gives a larger field: 24 with dilation 2 against 16 without
    from examples.article.s02_dilated_conv import Net

    plain = Net()
    plain.conv2 = nn.Conv2d(10, 20, kernel_size=5)
    assert receptive_field(Net(), (1, 1, 28, 28)).size == (24, 24)
    assert receptive_field(plain, (1, 1, 28, 28)).size == (16, 16)


def test_fractional_stride_after_transposed_convs() -> None:
    model = nn.Sequential(
        nn.ConvTranspose2d(1, 1, 3, stride=2), nn.ConvTranspose2d(1, 1, 3, stride=2)
    )
    field = receptive_field(model, (1, 1, 6, 6))
    assert field.stride == (Fraction(1, 4), Fraction(1, 4))
    assert len(field.phase_sizes[0]) == 4 and max(field.phase_sizes[0]) == field.size[0]


def test_merge_of_different_strides_is_enumerated_exactly() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wide = nn.Conv2d(1, 1, 9)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x, 2) + self.wide(x)  # 16 → 8 both ways, strides 2 and 1

    field = receptive_field(Mixed(), (1, 1, 16, 16))
    # position j reads [2j, 2j+1] ∪ [j, j+8]: not periodic, so listed per position
    assert field.positions((0, 0)) == (tuple(range(9)), tuple(range(9)))
    assert field.positions((7, 7)) == (tuple(range(7, 16)), tuple(range(7, 16)))
    assert field.size == (9, 9) and not field.notes
    measured = empirical_receptive_field(Mixed(), (1, 1, 16, 16))
    assert measured.size == field.size


def test_assert_receptive_field_passes_and_fails_with_growth_advice() -> None:
    factory, shape = MODELS["s02_dilated_conv"]
    assert assert_receptive_field(
        factory(), shape, min_size=24, max_size=(24, 30), exact=24
    ).size == (24, 24)
    with pytest.raises(AssertionError) as info:
        assert_receptive_field(factory(), shape, min_size=40)
    text = str(info.value)
    assert "receptive field 24×24 is smaller than min_size 40×40" in text
    assert "conv2         Conv2d      1×20×4×4    22×22" in text
    assert (
        "conv2 (Conv2d, kernel (5, 5), dilation (2, 2), input stride 2×2): dilation +1 → +8" in text
    )
    with pytest.raises(AssertionError, match="larger than max_size"):
        assert_receptive_field(factory(), shape, max_size=10)
    with pytest.raises(ValueError, match="one number or 2"):
        assert_receptive_field(factory(), shape, exact=(1, 2, 3))


def test_empirical_field_says_when_the_field_cannot_fit() -> None:
    class FixedSize(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 5, padding=2)
            self.b = nn.Conv2d(1, 1, 5, padding=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)).view(1, 1, 8, 8)  # runs only at 8×8; the field is 9

    measured = empirical_receptive_field(FixedSize(), (1, 1, 8, 8))
    assert measured.clipped and measured.input_shape == (1, 1, 8, 8)
    assert "clipped" in str(measured)


def test_measurement_undercounts_without_linearisation_but_not_with_it() -> None:
    # a max-pool sends its gradient to one element; the measurement must still see 4×4
    model = nn.Sequential(nn.MaxPool2d(4))
    measured = empirical_receptive_field(model, (1, 1, 16, 16))
    assert measured.size == (4, 4)
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    model(x)[0, 0, 1, 1].backward()
    assert int((x.grad != 0).sum()) == 1  # the naive gradient sees one pixel


def test_measurement_leaves_the_model_alone() -> None:
    model = ZOO["residual_projection"][0]().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    empirical_receptive_field(model, (2, 1, 24, 24))
    effective_receptive_field(model, (1, 1, 24, 24), samples=2, weights="init")
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_effective_field_is_centred_and_grows_with_the_mass() -> None:
    model = ZOO["dilated_no_holes"][0]()
    erf = effective_receptive_field(model, (1, 1, 65, 65), samples=4)
    assert erf.grad_map.shape == (65, 65)
    assert erf.sides[0.2] <= erf.sides[0.5] <= erf.sides[0.99] <= 33
    assert "centred square holding 20%" in str(erf)
    with pytest.raises(ValueError, match="'current' or 'init'"):
        effective_receptive_field(model, (1, 1, 65, 65), weights="trained")


def test_effective_field_picture(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    erf = effective_receptive_field(ZOO["plain"][0](), (1, 1, 24, 24), samples=2)
    path = erf.save_png(tmp_path / "erf.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
