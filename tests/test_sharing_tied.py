"""Tied modules whose parameters differ in shape, and stateless modules under two names.

A tied autoencoder ties the encoder conv's weight to the decoder's transposed conv
(both 8×1×3×3), but their biases (8 and 1 values) cannot be one tensor:
``assert_weights_shared`` asks for every parameter that *could* be tied.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_convcheck import (
    assert_no_accidental_sharing,
    assert_weights_shared,
    report,
    sharing,
)


class TiedAutoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(1, 8, 3)
        self.dec = nn.ConvTranspose2d(8, 1, 3)
        self.dec.weight = self.enc.weight  # (8, 1, 3, 3) both; biases (8,) and (1,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.relu(self.enc(x)))


def test_a_tied_autoencoder_is_shared_where_it_can_be() -> None:
    model = TiedAutoencoder()
    result = assert_weights_shared(model, "enc", "dec")
    assert result.tied == (("enc.weight", "dec.weight"),)
    assert result.untied == ()
    text = str(result)
    assert "tied: enc.weight and dec.weight, one tensor of shape (8, 1, 3, 3)" in text
    assert "note: enc.bias (8,) and dec.bias (1,) cannot be tied (different shapes)" in text
    # the other direction: an intended tie is not accidental sharing
    assert sharing(model, (1, 1, 8, 8)).tied == (("enc.weight", "dec.weight"),)
    assert assert_no_accidental_sharing(model, (1, 1, 8, 8)).suspicious == ()
    assert report(model, (1, 1, 8, 8)).sharing.suspicious == ()


class TwoConvs(nn.Module):
    """Same-shaped enc and dec (8 → 8): weight and bias could both be tied."""

    def __init__(self, tie_weight: bool = True, tie_bias: bool = False) -> None:
        super().__init__()
        self.enc = nn.Conv2d(8, 8, 3, padding=1)
        self.dec = nn.ConvTranspose2d(8, 8, 3, padding=1)
        if tie_weight:
            self.dec.weight = self.enc.weight
        if tie_bias:
            self.dec.bias = self.enc.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


def test_a_parameter_that_could_be_tied_and_is_not_fails_with_its_names_and_fix() -> None:
    with pytest.raises(AssertionError) as info:
        assert_weights_shared(TwoConvs(), "enc", "dec")
    text = str(info.value)
    assert "expected enc and dec to share every parameter of the same shape" in text
    assert "not tied: enc.bias and dec.bias are separate tensors, both of shape (8,)" in text
    assert "tied: enc.weight and dec.weight, one tensor of shape (8, 8, 3, 3)" in text
    assert text.splitlines()[-1] == "  fix: tie it by assignment: model.dec.bias = model.enc.bias"
    assert_weights_shared(TwoConvs(tie_bias=True), "enc", "dec")


def test_nothing_tied_fails_even_when_nothing_could_be() -> None:
    class Unrelated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Conv2d(1, 8, 3)
            self.dec = nn.ConvTranspose2d(8, 2, 3)  # weight (8, 2, 3, 3): no shape in common

    with pytest.raises(AssertionError) as info:
        assert_weights_shared(Unrelated(), "enc", "dec")
    text = str(info.value)
    assert "no parameter of dec is tied to enc" in text
    assert "enc.weight (8, 1, 3, 3) and dec.weight (8, 2, 3, 3) cannot be tied" in text
    assert text.splitlines()[-1].startswith("  fix: ")
    with pytest.raises(AssertionError) as info:
        assert_weights_shared(TwoConvs(tie_weight=False), "enc", "dec")
    text = str(info.value)
    assert "no parameter of dec is tied to enc" in text
    assert "model.dec.weight = model.enc.weight" in text
    assert "model.dec.bias = model.enc.bias" in text


def test_nested_names_get_an_assignment_that_runs() -> None:
    model = nn.Sequential(nn.Sequential(nn.Conv2d(2, 2, 3)), nn.Conv2d(2, 2, 3))
    with pytest.raises(AssertionError) as info:
        assert_weights_shared(model, "0.0", "1")
    fix = str(info.value).splitlines()[-1]
    assert fix.startswith("  fix: tie them by assignment: model[1].weight = model[0][0].weight")
    exec(fix.split(": ", 2)[2].replace("; ", "\n"), {"model": model})
    assert_weights_shared(model, "0.0", "1")


def test_a_stateless_module_under_two_names_is_a_note_in_analysis_and_plugin() -> None:
    # one ReLU registered as `act` and as `final.0` (MONAI's SegResNet): nothing shared
    from pytest_convcheck.checks import RunContext, check_sharing
    from pytest_convcheck.config import ModelConfig
    from pytest_convcheck.summary_table import sharing_text

    class SharedActivation(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.final = nn.Sequential(self.act, nn.Conv2d(4, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.final(self.act(self.conv(x)))

    model, shape = SharedActivation(), (1, 1, 8, 8)
    analysis = sharing(model, shape)
    assert analysis.suspicious == () and ("act", "final.0") in analysis.aliases
    assert "suspicious" not in str(analysis)
    config = ModelConfig("shared_activation", "tests:none", shape, checks=("sharing",))
    check_sharing(model, config, RunContext())  # the plugin's sharing check passes
    data = report(model, shape).to_dict()
    assert data["sharing"]["suspicious"] == []
    assert "ALIAS" not in sharing_text(data["sharing"], data["layers"])
