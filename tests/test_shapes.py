"""Shape assertions, valid input sizes and batch independence, pinned on the article."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from pytest_convcheck import (
    ShapeError,
    assert_batch_independent,
    assert_output_shape,
    output_shape,
    trace,
    valid_input_sizes,
)

ARTICLE_OUTPUTS = {
    "s01_transposed_conv": (1, 1, 25, 25),
    "s02_dilated_conv": (1, 20, 2, 2),
    "s03_upsampling": (1, 20, 16, 16),
    "s04_checkerboard_fix": (1, 1, 12, 12),
    "s05_feature_visualisation": (1, 1, 16, 16),
    "s06_cnn": (1, 10),
    "s07_deconvolution": (1, 1, 16, 16),
    "s08_conv1d": (1, 10),
    "s09_cnn1d": (1, 10),
    "s10_conv_reuse": (1, 10),
}


@pytest.mark.parametrize("section", list(ARTICLE_OUTPUTS))
def test_article_output_shapes(section: str) -> None:
    factory, shape = MODELS[section]
    result = assert_output_shape(factory(), shape, ARTICLE_OUTPUTS[section])
    assert result.disagreements == ()
    assert result.fallback is None


def test_section_one_does_not_give_back_28_by_28() -> None:
    factory, shape = MODELS["s01_transposed_conv"]
    with pytest.raises(AssertionError) as info:
        assert_output_shape(factory(), shape, (1, 1, 28, 28))
    text = str(info.value)
    assert "expected output 1×1×28×28" in text and "got 1×1×25×25" in text
    setters = text.split("The spatial size was set by:")[1].split("fix:")[0]
    assert "conv2_trans (ConvTranspose2d): 1×20×4×4 → 1×10×11×11" in setters
    assert "conv1_trans (ConvTranspose2d): 1×10×11×11 → 1×1×25×25" in setters
    assert "(11−1)·2 − 0 + 1·(5−1) + 0 + 1 = 25" in setters
    assert "conv1 " not in setters  # the encoder is not blamed
    assert "Per-layer trace:" in text and "max_pool2d#2" in text


def test_wildcards_in_expected_shape() -> None:
    factory, shape = MODELS["s01_transposed_conv"]
    assert_output_shape(factory(), shape, (None, 1, -1, 25))


def test_section_six_accepts_widths_28_to_31() -> None:
    # 28 → conv5 24 → pool 12 → conv5 8 → pool 4; 20·4·4 = 320 needs floor((floor((W−4)/2)−4)/2) = 4
    factory, shape = MODELS["s06_cnn"]
    assert valid_input_sizes(factory(), shape, dim=-1) == [28, 29, 30, 31]
    assert valid_input_sizes(factory(), shape, dim=2, sizes=range(20, 40)) == [28, 29, 30, 31]


def test_section_eight_accepts_lengths_64_to_67() -> None:
    factory, shape = MODELS["s08_conv1d"]
    assert valid_input_sizes(factory(), shape) == [64, 65, 66, 67]


def test_valid_input_sizes_rejects_the_batch_dim() -> None:
    factory, shape = MODELS["s06_cnn"]
    with pytest.raises(ValueError, match="batch dim"):
        valid_input_sizes(factory(), shape, dim=0)


def test_fully_convolutional_model_accepts_every_size_that_fits() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    assert valid_input_sizes(model, (1, 1, 8, 8), sizes=range(1, 10)) == [4, 5, 6, 7, 8, 9]


def test_section_six_at_32_mixes_a_batch_of_16_into_25_rows() -> None:
    factory, _ = MODELS["s06_cnn"]
    with pytest.raises(AssertionError) as info:
        assert_batch_independent(factory(), (16, 1, 32, 32))
    text = str(info.value)
    assert "a batch of 16 went in, output 25×10 came out" in text
    assert "view in 'forward': 16×20×5×5 → 25×320" in text
    assert "x.flatten(1)" in text


@pytest.mark.parametrize(
    "section", ["s06_cnn", "s08_conv1d", "s10_conv_reuse", "s01_transposed_conv"]
)
def test_article_models_are_batch_independent_at_their_input(section: str) -> None:
    factory, shape = MODELS[section]
    assert_batch_independent(factory(), (4, *shape[1:]))


class BatchMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=0, keepdim=True)


def test_cross_talk_through_a_batch_reduction_is_caught() -> None:
    with pytest.raises(AssertionError, match="output of sample 0 depends on other samples"):
        assert_batch_independent(BatchMean(), (4, 1, 6, 6))


def test_batchnorm_in_training_is_named_not_crashed_on() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), BatchMean()).train()
    with pytest.raises(AssertionError) as info:
        assert_batch_independent(model, (4, 1, 6, 6))
    assert "1 (BatchNorm in training mode) mix the batch by design" in str(info.value)
    assert_batch_independent(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train(), (4, 1, 6, 6)
    )


def test_batch_check_leaves_the_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert_batch_independent(model, (4, 1, 6, 6))
    assert model.training and model[1].training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


# --------------------------------------------------------------------------- output_shape


def test_output_shape_errors_name_the_formula_numbers_and_fix() -> None:
    with pytest.raises(ShapeError) as info:
        output_shape(nn.Conv2d(1, 4, 5, dilation=2), (1, 1, 8, 30))
    text = str(info.value)
    assert "Conv2d: kernel larger than the padded input along H" in text
    assert "8 + 0 = 8 < dilation·(kernel−1)+1 = 2·(5−1)+1 = 9" in text
    assert "fix: feed at least 9 along H" in text
    assert isinstance(info.value, ValueError)


def test_output_shape_channel_mismatch() -> None:
    with pytest.raises(ShapeError, match=r"expected 3 input channels \(in_channels=3\), got 1"):
        output_shape(nn.Conv2d(3, 4, 3), (2, 1, 8, 8))


def test_output_shape_of_an_unknown_layer_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no shape rule for LSTM"):
        output_shape(nn.LSTM(3, 3), (1, 3, 3))


def test_conv_transpose_output_size_argument() -> None:
    layer = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1)
    assert output_shape(layer, (1, 1, 4, 4), output_size=(8, 8)) == (1, 1, 8, 8)
    assert tuple(layer(torch.zeros(1, 1, 4, 4), output_size=(8, 8)).shape) == (1, 1, 8, 8)
    with pytest.raises(ShapeError, match=r"output_size 9 along H is out of reach: .* gives 7\.\.8"):
        output_shape(layer, (1, 1, 4, 4), output_size=(9, 9))


def test_lazy_layers_take_any_channel_count_and_stay_lazy() -> None:
    layer = nn.LazyConv2d(4, 3)
    assert output_shape(layer, (1, 7, 8, 8)) == (1, 4, 6, 6)
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(2))
    assert trace(model, (2, 3, 8, 8)).output_shape == (2, 2)
    assert model[0].has_uninitialized_params()  # the user's model was not materialised


def test_same_padding_with_even_kernel_and_reflect_mode() -> None:
    layer = nn.Conv2d(1, 1, 4, padding="same", padding_mode="reflect", dilation=2)
    assert output_shape(layer, (1, 1, 9, 9)) == tuple(layer(torch.zeros(1, 1, 9, 9)).shape)
    with pytest.raises(ShapeError, match="reflect padding"):
        output_shape(layer, (1, 1, 3, 9))
    with pytest.raises(RuntimeError):
        layer(torch.zeros(1, 1, 3, 9))


def test_functional_calls_are_checked_too() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(x, 5)

    with pytest.raises(ShapeError, match=r"max_pool2d.*output size along H is too small"):
        trace(Net(), (1, 1, 3, 3))


def test_nearby_inputs_finds_the_sizes_a_two_stage_model_takes() -> None:
    from pytest_convcheck.shapes import nearby_inputs, same_spatial_size

    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),
        nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.ConvTranspose2d(2, 2, 2, stride=2),
        nn.ConvTranspose2d(2, 1, 2, stride=2),
    )
    # a generous budget: the exact lists must not depend on the machine's load
    assert nearby_inputs(model, (1, 1, 30, 30), same_spatial_size, budget_s=120) == [
        (1, 1, 24, 24),
        (1, 1, 28, 28),
        (1, 1, 32, 32),
        (1, 1, 36, 36),
    ]
    # every size runs: the nearest four, the input itself left out
    assert nearby_inputs(model, (1, 1, 30, 30), budget_s=120) == [
        (1, 1, 28, 28),
        (1, 1, 29, 29),
        (1, 1, 31, 31),
        (1, 1, 32, 32),
    ]


def test_assert_output_shape_names_the_nearest_inputs_that_come_out_at_their_size() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ConvTranspose2d(2, 1, 2, stride=2)
    )
    with pytest.raises(AssertionError) as info:
        assert_output_shape(model, (1, 1, 9, 9), (1, 1, 9, 9))
    text = str(info.value)
    assert "got 1×1×10×10" in text
    assert "at which the model gives an output of the input's size: 1×1×6×6, 1×1×8×8, " in text
    assert text.index("inputs near") < text.index("Per-layer trace:")
