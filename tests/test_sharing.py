"""Weight sharing: reuse, ties, aliases, gradients of reused modules, tie survival."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from examples.article import MODELS
from pytest_convcheck import (
    assert_gradients_accumulate,
    assert_no_accidental_sharing,
    assert_ties_preserved,
    assert_weights_shared,
    sharing,
)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(6, 6)
        self.decode = nn.Linear(6, 6)
        self.decode.weight = self.encode.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(torch.relu(self.encode(x)))


def block() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())


def test_section_ten_reuse_is_counted_not_flagged() -> None:
    factory, shape = MODELS["s10_conv_reuse"]
    report = sharing(factory(), shape)
    assert report.calls["conv3"] == 2 and report.reused == {"conv3": 2}
    assert report.tied == () and report.suspicious == ()
    # conv1 60 + conv2 1,020 + conv3 1,220 + fc1 13,050 + fc2 510 parameters
    assert report.unique_parameters == report.naive_parameters == 15_860
    assert report.unshared_parameters == 15_860 + 1_220  # a second conv3 would add 1,220
    # §十 claims reuse speeds things up: conv3 costs twice its single-call FLOPs
    single = 2 * (20 * 3 * 20 * 13) + 20 * 13  # 2·MACs + bias per call, L = 13
    assert report.flops_by_module["conv3"] == 2 * single == 62_920
    assert report.flops == 150_220
    assert "reuse saves parameters, not compute" in str(report)
    assert_no_accidental_sharing(factory(), shape)


def test_repeated_block_is_flagged_with_the_fix() -> None:
    model = nn.Sequential(*[block()] * 3)
    with pytest.raises(AssertionError) as info:
        assert_no_accidental_sharing(model, (1, 2, 8, 8))
    text = str(info.value)
    assert "`0`, `1` and `2` are one Sequential object: `[block] * 3`" in text
    assert "build each with its own constructor call" in text
    assert_no_accidental_sharing(model, (1, 2, 8, 8), allow=["1"])
    assert_no_accidental_sharing(nn.Sequential(*[block() for _ in range(3)]), (1, 2, 8, 8))


def test_module_list_and_two_attributes_are_flagged() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            shared = block()
            self.stages = nn.ModuleList([shared] * 2)
            self.head = shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.stages[1](self.stages[0](x)))

    report = sharing(Twice(), (1, 2, 8, 8))
    assert report.aliases == (("stages.0", "stages.1", "head"),)
    assert "registered under 3 names" in str(report.suspicious[0])


def test_tied_weights_are_one_group_and_the_tie_is_checked() -> None:
    model = Tied()
    report = sharing(model, (2, 6))
    assert report.tied == (("encode.weight", "decode.weight"),)
    assert report.shared is report.tied  # the name README.md documents
    assert report.suspicious == ()
    assert report.unique_parameters == 36 + 6 + 6
    assert report.naive_parameters == 36 * 2 + 12
    assert_weights_shared(model, "encode.weight", "decode.weight")
    model.decode.weight = nn.Parameter(model.encode.weight.detach().clone())  # cut the tie
    with pytest.raises(AssertionError, match="separate tensors with equal values: the tie was cut"):
        assert_weights_shared(model, "encode.weight", "decode.weight")


def test_assert_weights_shared_by_module_names() -> None:
    reused = MODELS["s10_conv_reuse"][0]()
    # conv1 (1 → 10) and conv2 (10 → 20): no parameter of the same shape, none tied
    with pytest.raises(
        AssertionError, match=r"conv1\.weight \(10, 1, 5\) and conv2\.weight \(20, 10, 5\) cannot"
    ):
        assert_weights_shared(reused, "conv1", "conv2")
    with pytest.raises(KeyError, match="no module or parameter 'conv9'"):
        assert_weights_shared(reused, "conv1", "conv9")
    with pytest.raises(ValueError, match="at least two"):
        assert_weights_shared(reused, "conv1")


def test_no_double_counting_unlike_torchinfo() -> None:
    # torchinfo issues 322/377: shared parameters are counted once per module
    torchinfo = pytest.importorskip("torchinfo")
    model = Tied()
    ours = sharing(model, (2, 6)).unique_parameters
    assert ours == sum(p.numel() for p in model.parameters()) == 48
    assert torchinfo.summary(model, (2, 6), verbose=0).total_params == 84  # 36 counted twice


def test_gradient_of_a_reused_module_is_the_sum_of_its_uses() -> None:
    factory, shape = MODELS["s10_conv_reuse"]
    assert_gradients_accumulate(factory(), (2, *shape[1:]), "conv3")
    assert_gradients_accumulate(factory(), shape)  # every reused module
    with pytest.raises(AssertionError, match="'conv1' is called 1× in forward, not reused"):
        assert_gradients_accumulate(factory(), shape, "conv1")
    with pytest.raises(AssertionError, match="no module is called more than once"):
        assert_gradients_accumulate(MODELS["s06_cnn"][0](), MODELS["s06_cnn"][1])


def test_ties_survive_copy_save_cast_and_a_step() -> None:
    assert_ties_preserved(Tied())
    assert_ties_preserved(MODELS["s10_conv_reuse"][0]())  # nothing tied: nothing to break


def test_a_tie_that_load_state_dict_breaks_is_reported() -> None:
    class Fragile(Tied):
        def load_state_dict(self, state, strict=True, assign=False):  # type: ignore[override]
            result = super().load_state_dict(state, strict, assign)
            self.decode.weight = nn.Parameter(self.decode.weight.detach().clone())
            return result

    with pytest.raises(
        AssertionError, match=r"after state_dict save/load: encode\.weight, decode\.weight"
    ):
        assert_ties_preserved(Fragile())


def test_sharing_leaves_the_model_alone() -> None:
    model = Tied().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sharing(model, (2, 6))
    assert_ties_preserved(model)
    assert_gradients_accumulate(MODELS["s10_conv_reuse"][0](), (1, 1, 64))
    assert model.training and model.decode.weight is model.encode.weight
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_aliasing_a_module_without_weights_is_a_note_not_a_suspicion() -> None:
    # MONAI's SegResNet registers one activation as `act` and inside `final`; UNETR one
    # Identity twice: nothing is shared, so nothing is suspicious
    class SharedActivation(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.final = nn.Sequential(nn.Conv2d(4, 1, 1), self.act)

        def forward(self, x):
            return self.final(self.act(self.conv(x)))

    report = assert_no_accidental_sharing(SharedActivation(), (1, 1, 8, 8))
    assert report.suspicious == ()
    assert ("act", "final.1") in report.aliases
    repeated = nn.Sequential(*[nn.Conv2d(2, 2, 3, padding=1)] * 2)
    assert sharing(repeated, (1, 2, 8, 8)).suspicious  # weights: still suspicious
