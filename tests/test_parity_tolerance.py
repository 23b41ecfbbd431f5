"""Parity tolerances scale with what a tensor could carry, not with its own size.

The bias of a conv followed by InstanceNorm or GroupNorm has an exactly-zero true
gradient (the norm subtracts the per-channel mean, so a constant shift of a
channel changes nothing). float32 returns rounding noise of the size of the terms
it summed; a tolerance relative to that zero tensor failed correct models (MONAI's
UNet and BasicUNet at 1.95×). Real bugs must still fail.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_convcheck import assert_device_parity, assert_layout_parity


def block(cin: int, cout: int, dims: int = 2) -> nn.Sequential:
    conv = {2: nn.Conv2d, 3: nn.Conv3d}[dims]
    instance = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims]
    return nn.Sequential(
        conv(cin, cout, 3, padding=1),
        instance(cout, affine=True),
        nn.ReLU(),
        conv(cout, cout, 3, padding=1),
        nn.GroupNorm(4 if cout % 4 == 0 else 1, cout),
        nn.ReLU(),
    )


def normalised(dims: int = 2, *, seed: int = 0) -> nn.Sequential:
    """Three conv → InstanceNorm(affine) → ReLU → conv → GroupNorm → ReLU blocks and a
    1×1 head: the encoder blocks of MONAI's UNet/BasicUNet, small."""
    torch.manual_seed(seed)
    head = {2: nn.Conv2d, 3: nn.Conv3d}[dims](8, 1, 1)
    return nn.Sequential(block(1, 8, dims), block(8, 8, dims), block(8, 8, dims), head)


SHAPES = {2: (2, 1, 128, 128), 3: (1, 1, 24, 24, 24)}


@pytest.mark.parametrize(
    ("dims", "seed"), [(2, 0), (2, 1), (3, 1)], ids=["2d-seed0", "2d-seed1", "3d-seed1"]
)
def test_a_correct_normalised_model_passes(dims: int, seed: int) -> None:
    # before: 2.0.bias grad at 7.78× (2-D, seed 0), 3.74× (seed 1); 3-D 7.7×
    report = assert_device_parity(normalised(dims, seed=seed), SHAPES[dims], devices=["cpu"])
    result = report.results[0]
    assert result.worst[1] <= 1.0
    biases = [name for name in result.errors if name.endswith(".0.bias grad")]
    assert len(biases) == 3  # the normalised convs' biases were compared, not skipped


def test_the_bias_gradient_is_zero_and_its_tolerance_is_its_modules_scale() -> None:
    from pytest_convcheck import tolerances
    from pytest_convcheck.calls import output_tensors
    from pytest_convcheck.tracing import materialized_copy

    model, shape = normalised(), SHAPES[2]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    reference_model = materialized_copy(model, "cpu", shape).double().eval()
    with torch.no_grad():
        weights = tolerances.draw_output_weights(output_tensors(reference_model(x)), generator)
    reference = tolerances.run_with_gradients(reference_model, x, weights)
    weight, bias = reference["1.0.weight grad"], reference["1.0.bias grad"]
    assert float(bias.abs().max()) < 1e-9 * float(weight.abs().max())  # zero, up to float64
    scales = tolerances.natural_scales(reference)
    assert scales["1.0.bias grad"] == scales["1.0.weight grad"] == float(weight.abs().max())
    assert scales["output"] == float(reference["output"].abs().max())  # not a parameter
    got = tolerances.run_with_gradients(
        materialized_copy(model, "cpu", shape).float().eval(), x.float(), weights
    )
    rtol, atol = tolerances.tolerance(torch.float32, tolerances.largest_fan(reference_model))
    old = atol + rtol * float(bias.abs().max())
    assert tolerances.max_difference(got["1.0.bias grad"].double(), bias) > old  # failed before
    errors = tolerances.relative_errors(got, reference, rtol, atol, scales=scales)
    assert errors["1.0.bias grad"] <= 1.0


class LossyBiasGradient(torch.autograd.Function):
    """Identity forward; the gradient 1% too large: a backward kernel with a bug."""

    @staticmethod
    def forward(ctx: object, bias: torch.Tensor) -> torch.Tensor:
        return bias.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad * 1.01


class BiasBugInFloat32(nn.Conv2d):
    """A conv whose bias gradient is 1% off in float32 only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias
        if x.dtype == torch.float32 and bias is not None:
            bias = LossyBiasGradient.apply(bias)
        return self._conv_forward(x, self.weight, bias)


def test_a_wrong_bias_gradient_still_fails() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(normalised(), nn.ReLU(), BiasBugInFloat32(1, 2, 3, padding=1))
    with pytest.raises(AssertionError) as info:
        assert_device_parity(model, SHAPES[2], devices=["cpu"])
    assert "worst 2.bias grad" in str(info.value)


class RoundsThroughBfloat16(nn.Module):
    """A float32 path that rounds through bfloat16, as a lossy device would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16).to(x.dtype) if x.dtype == torch.float32 else x


class GroupNormWithFloat32Eps(nn.GroupNorm):
    """GroupNorm whose eps is 1e-2 in float32 only: a constant that differs by dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-2 if x.dtype == torch.float32 else self.eps
        return nn.functional.group_norm(x, self.num_groups, self.weight, self.bias, eps)


class LayoutDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 + float(x.is_contiguous()))


def test_planted_bugs_in_a_normalised_model_still_fail() -> None:
    model = normalised()
    model[1].insert(1, RoundsThroughBfloat16())
    with pytest.raises(AssertionError, match="above tolerance"):
        assert_device_parity(model, SHAPES[2], devices=["cpu"])
    model = normalised()
    model[2][4] = GroupNormWithFloat32Eps(4, 8)
    with pytest.raises(AssertionError, match="above tolerance"):
        assert_device_parity(model, SHAPES[2], devices=["cpu"])
    model = normalised()
    model.insert(0, LayoutDependent())
    assert_device_parity(model, (1, 1, 16, 16), devices=["cpu"])  # a layout bug, not a dtype one
    with pytest.raises(AssertionError, match="depends on the input's memory layout"):
        assert_layout_parity(model, (1, 1, 16, 16))


def test_the_tolerance_reads_as_the_modules_gradient_scale() -> None:
    report = assert_device_parity(normalised(), SHAPES[2], devices=["cpu"])
    text = str(report.results[0])
    assert "× the tolerance atol + rtol·max|reference|" in text
    assert "for a parameter's gradient: the largest over its module's parameters" in text


def test_a_bias_gradient_summing_many_positions_gets_their_tolerance() -> None:
    """A 3×3 conv's bias gradient on 2×3×80×80 sums 12,800 float32 terms: its rounding
    error is √12,800·u, not √27·u (the forward fan). On one thread this seed's float32
    bias gradient was 1.15× the forward-fan tolerance: a false failure."""
    from pytest_convcheck import assert_device_parity
    from pytest_convcheck.tolerances import gradient_growth

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
        )
        report = assert_device_parity(model, (2, 3, 80, 80), ["cpu"])
    finally:
        torch.set_num_threads(threads)
    assert report.results[0].growth == pytest.approx(
        {"0.weight grad": (12_800 / 27) ** 0.5, "0.bias grad": (12_800 / 27) ** 0.5}
    )
    growth = gradient_growth(["fc.weight"], [("fc", (64, 10))], fan=27)
    assert growth == pytest.approx({"fc.weight grad": (64 / 27) ** 0.5})
