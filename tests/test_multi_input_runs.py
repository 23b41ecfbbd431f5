"""The real-run checks (batch, parity, layout, compile, gradients of reused modules,
benchmarks) on forwards that take more than one float tensor: an image and a mask,
a sample and an integer timestep, keyword and dict inputs, token ids, and a forward
returning ``(tensor, dict)``; and planted bugs that only a second input or a second
output shows."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from pytest_convcheck import (
    assert_batch_independent,
    assert_compile_parity,
    assert_device_parity,
    assert_gradients_accumulate,
    assert_layout_parity,
    assert_no_accidental_sharing,
    sharing,
)
from pytest_convcheck.benchmarking import prepare_step, run_conv_benchmark
from pytest_convcheck.inputs import Input
from pytest_convcheck.tracing import ModelRunError

# --------------------------------------------------------------------------- models


class ImageMask(nn.Module):
    """Inpainting-style: one conv over the concatenation of an image and its mask,
    then a refinement conv applied twice (reused)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.refine = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 3, 1)

    def features(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(torch.cat([image, mask], 1)))
        return self.refine(F.relu(self.refine(h)))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image, mask))


class TimestepUNet(nn.Module):
    """A diffusion-style U-Net: ``forward(sample, timestep)`` with an ``nn.Embedding``
    of the integer timestep added to the features; the middle conv is reused."""

    def __init__(self) -> None:
        super().__init__()
        self.time = nn.Embedding(1000, 16)
        self.inp = nn.Conv2d(4, 16, 3, padding=1)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1)
        self.out = nn.Conv2d(32, 4, 3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = self.time(timestep)[:, :, None, None]
        skip = F.silu(self.inp(sample) + t)
        h = F.silu(self.down(skip))
        h = self.mid(F.silu(self.mid(h))) + t
        return self.out(torch.cat([self.up(h), skip], 1))


class KeywordInputs(nn.Module):
    """A training batch unpacked as keywords, ``model(**batch)``: two views through
    one shared encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 8, 3, padding=1)
        self.depth = nn.Conv2d(1, 8, 3, padding=1)
        self.fuse = nn.Conv2d(16, 2, 1)

    def forward(
        self, image: torch.Tensor, other: torch.Tensor, depth: torch.Tensor
    ) -> torch.Tensor:
        a, b = self.encoder(image), self.encoder(other)
        return self.fuse(torch.cat([a + b, self.depth(depth)], 1))


class DictExtras(nn.Module):
    """``forward(image, extras)`` with a dict of further inputs (a float depth map and
    integer class labels), as diffusers' ``added_cond_kwargs``; a lazy head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 8, 3, padding=1)
        self.depth = nn.Conv2d(1, 8, 3, padding=1)
        self.label = nn.Embedding(10, 8)
        self.head = nn.LazyConv2d(2, 1)

    def forward(self, image: torch.Tensor, extras: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.encoder(image) + self.depth(extras["depth"])
        h = self.encoder(image.flip(-1)) * 0.5 + h  # the encoder once more: reused
        return self.head(h + self.label(extras["label"])[:, :, None, None])


def dict_extras_inputs() -> tuple[tuple[Any, ...], dict[str, Any]]:
    extras = {"depth": torch.rand(2, 1, 16, 16), "label": torch.tensor([3, 7])}
    return (torch.randn(2, 3, 16, 16), extras), {}


class DictBatch(nn.Module):
    """``forward(batch)`` with a dict of tensors and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(batch["left"]) + self.encoder(batch["right"])


def dict_batch_inputs() -> tuple[tuple[Any, ...], dict[str, Any]]:
    return ({"left": torch.randn(2, 3, 8, 8), "right": torch.randn(2, 3, 8, 8)},), {}


class TokenConv1d(nn.Module):
    """Token ids → ``nn.Embedding`` → (N, C, L) → Conv1d (reused) → per-token logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.head = nn.Conv1d(16, 8, 1)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids).transpose(1, 2)
        return self.conv(F.relu(self.conv(h)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(ids))


class TensorAndDict(nn.Module):
    """A segmentation map and a dict of auxiliary outputs; the head is reused."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 8, 3, padding=1)
        self.classes = nn.Conv2d(8, 5, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = F.relu(self.stem(x))
        edges = self.head(h)
        features = self.head(F.relu(edges))
        return self.classes(features), {"edges": edges, "pooled": features.mean((2, 3))}


IMAGE_MASK = ((2, 3, 16, 16), (2, 1, 16, 16))
TIMESTEP = {"sample": (2, 4, 16, 16), "timestep": Input((2,), dtype="int64", high=1000)}
TOKENS = Input((2, 64), dtype="int64", high=100)

CASES = [
    pytest.param(ImageMask, {"input_shape": IMAGE_MASK}, "refine", id="image-mask"),
    pytest.param(TimestepUNet, {"input_shape": TIMESTEP}, "mid", id="timestep-unet"),
    pytest.param(
        KeywordInputs,
        {
            "input_shape": {
                "image": (2, 3, 16, 16),
                "other": (2, 3, 16, 16),
                "depth": (2, 1, 16, 16),
            }
        },
        "encoder",
        id="keyword-inputs",
    ),
    pytest.param(DictExtras, {"example_inputs": dict_extras_inputs}, "encoder", id="dict-extras"),
    pytest.param(TokenConv1d, {"input_shape": TOKENS}, "conv", id="token-conv1d"),
    pytest.param(TensorAndDict, {"input_shape": (2, 3, 16, 16)}, "head", id="tensor-and-dict"),
]


# --------------------------------------------------------------------------- correct models


@pytest.mark.parametrize(("factory", "described", "reused"), CASES)
def test_batch_independent(factory: Callable[[], nn.Module], described: dict, reused: str) -> None:
    assert_batch_independent(factory(), **described)


@pytest.mark.parametrize(("factory", "described", "reused"), CASES)
def test_device_parity(factory: Callable[[], nn.Module], described: dict, reused: str) -> None:
    model = factory()
    before = {k: v.clone() for k, v in model.state_dict().items() if not is_lazy(v)}
    report = assert_device_parity(model, devices=["cpu", "cuda"], **described)
    assert report.results[0].device == "cpu" and report.results[0].worst[1] <= 1.0
    if not torch.cuda.is_available():
        assert report.skipped == ("cuda",)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("factory", "described", "reused"), CASES)
def test_layout_parity(factory: Callable[[], nn.Module], described: dict, reused: str) -> None:
    assert_layout_parity(factory(), **described)


@pytest.mark.parametrize(("factory", "described", "reused"), CASES)
def test_gradients_accumulate(
    factory: Callable[[], nn.Module], described: dict, reused: str
) -> None:
    model = factory()
    assert reused in sharing(model, **described).reused
    assert_no_accidental_sharing(model, **described)
    assert_gradients_accumulate(model, **described)
    assert_gradients_accumulate(model, name=reused, **described)


class StubBenchmark:
    """pytest-benchmark's fixture as far as run_conv_benchmark uses it."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.extra_info: dict[str, object] = {}
        self.stats: object = None
        self.calls = 0

    def __call__(self, step: Callable[[], None]) -> None:
        step()
        self.calls += 1


@pytest.mark.parametrize(("factory", "described", "reused"), CASES)
def test_benchmark_forward(factory: Callable[[], nn.Module], described: dict, reused: str) -> None:
    bench = StubBenchmark(enabled=False)
    result = run_conv_benchmark(bench, factory(), **described)
    assert bench.calls == 1 and result.flops > 0
    assert "inputs" in bench.extra_info or factory is TensorAndDict
    prepare_step(factory(), backward=True, **described)()


def test_parity_compares_every_floating_input_gradient_and_every_output() -> None:
    report = assert_device_parity(TimestepUNet(), TIMESTEP, devices=["cpu"])
    names = set(report.results[0].errors)
    assert "input['sample'] grad" in names and "time.weight grad" in names
    assert not any("timestep" in name for name in names)  # integer: no gradient
    report = assert_device_parity(DictExtras(), example_inputs=dict_extras_inputs, devices=["cpu"])
    assert {"input[0] grad", "input[1]['depth'] grad"} <= set(report.results[0].errors)
    report = assert_device_parity(TensorAndDict(), (2, 3, 16, 16), devices=["cpu"])
    assert {"output[0]", "output[1]['edges']", "output[1]['pooled']", "input grad"} <= set(
        report.results[0].errors
    )


def test_compile_parity_on_several_inputs() -> None:
    result = assert_compile_parity(TimestepUNet(), TIMESTEP, backend="aot_eager")
    assert "input['sample'] grad" in result.errors and result.worst[1] <= 1.0


def test_channels_last_benchmark_lays_out_the_image_inputs_only() -> None:
    bench = StubBenchmark(enabled=False)
    run_conv_benchmark(bench, TimestepUNet(), TIMESTEP, backward=True, channels_last=True)
    assert bench.extra_info["layout"] == "channels_last"
    assert bench.extra_info["input_shape"] == [2, 4, 16, 16]
    with pytest.raises(ValueError, match="channels_last needs a floating 4-d") as info:
        prepare_step(TokenConv1d(), TOKENS, channels_last=True)
    assert "fix:" in str(info.value)


def test_a_forward_missing_an_input_is_named() -> None:
    with pytest.raises(ModelRunError, match="needs 1 more input") as info:
        assert_device_parity(TimestepUNet(), (2, 4, 16, 16), devices=["cpu"])
    assert "timestep" in str(info.value) and "fix:" in str(info.value)


def test_a_forward_taking_only_a_dict() -> None:
    assert_batch_independent(DictBatch(), example_inputs=dict_batch_inputs)
    assert_layout_parity(DictBatch(), example_inputs=dict_batch_inputs)
    report = assert_device_parity(DictBatch(), example_inputs=dict_batch_inputs, devices=["cpu"])
    assert {"input[0]['left'] grad", "input[0]['right'] grad"} <= set(report.results[0].errors)
    assert_gradients_accumulate(DictBatch(), name="encoder", example_inputs=dict_batch_inputs)
    run_conv_benchmark(StubBenchmark(enabled=False), DictBatch(), example_inputs=dict_batch_inputs)


# --------------------------------------------------------------------------- planted bugs


class SecondOutputMixesSamples(ImageMask):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> Any:
        h = self.features(image, mask)
        return self.head(h), {"aux": h.flip(0)}  # sample i's aux is sample n−1−i's


class MaskMixesSamples(ImageMask):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image, mask.mean(0, keepdim=True).expand_as(mask)))


class TimestepMixesSamples(TimestepUNet):
    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> Any:
        out = super().forward(sample, timestep)
        batch_time = self.time(timestep).mean(0)  # every sample sees every timestep
        return out, out + batch_time[:4, None, None]


class TokensMixSamples(TokenConv1d):
    def forward(self, ids: torch.Tensor) -> Any:
        h = self.hidden(ids)
        return self.head(h), h.roll(1, 0)


class SecondOutputReadsLayout(ImageMask):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> Any:
        y = self.head(self.features(image, mask))
        return y, {"aux": y * float(image.is_contiguous())}


class SecondInputLayout(ImageMask):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> Any:
        y = self.head(self.features(image, mask))
        return y, y * float(mask.is_contiguous())  # a (N, 1, H, W) mask: strides only


def test_a_second_output_that_mixes_samples_fails_the_batch_check() -> None:
    with pytest.raises(AssertionError) as info:
        assert_batch_independent(SecondOutputMixesSamples(), IMAGE_MASK)
    text = str(info.value)
    assert "output[1]['aux'] of sample 0 depends on other samples" in text
    assert "w.r.t. another sample of input[0]" in text and "fix:" in text


def test_a_second_input_that_mixes_samples_fails_the_batch_check() -> None:
    with pytest.raises(AssertionError, match=r"another sample of input\[1\]: "):
        assert_batch_independent(MaskMixesSamples(), IMAGE_MASK)


@pytest.mark.parametrize(
    ("model", "described", "culprit"),
    [
        (TimestepMixesSamples(), TIMESTEP, "input['timestep']"),
        (TokensMixSamples(), TOKENS, "the input"),
    ],
    ids=["timestep", "token-ids"],
)
def test_mixing_through_an_integer_input_fails_the_batch_check(
    model: nn.Module, described: Any, culprit: str
) -> None:
    with pytest.raises(AssertionError) as info:
        assert_batch_independent(model, described)
    text = str(info.value)
    assert "output[1] of sample 0 depends on other samples of the batch" in text
    assert f"the other samples of {culprit} change (int64, so no gradient" in text
    assert "fix:" in text


def test_a_second_output_that_reads_the_layout_fails_layout_parity() -> None:
    with pytest.raises(AssertionError) as info:
        assert_layout_parity(SecondOutputReadsLayout(), IMAGE_MASK)
    text = str(info.value)
    assert "the output depends on the inputs' memory layout" in text
    assert (
        "channels-last weights and inputs (input[0], input[1]), output[1]['aux']: max |Δ|" in text
    )
    assert "non-contiguous inputs (strided views of input[0], input[1]), output[1]['aux']" in text
    assert "output[0]" not in text and "fix:" in text


def test_every_floating_input_gets_a_strided_view() -> None:
    with pytest.raises(
        AssertionError, match=r"strided views of input\[0\], input\[1\]\), output\[1\]"
    ):
        assert_layout_parity(SecondInputLayout(), IMAGE_MASK)


def test_integer_inputs_keep_their_layout() -> None:
    class ReadsTimestepLayout(TimestepUNet):
        def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            return super().forward(sample, timestep) * float(timestep.is_contiguous())

    assert_layout_parity(ReadsTimestepLayout(), TIMESTEP)


class LossyMaskGradient(torch.autograd.Function):
    """Identity forward; in float32 the gradient 1% too large: a backward with a bug
    on the second input's path only."""

    @staticmethod
    def forward(ctx: Any, mask: torch.Tensor) -> torch.Tensor:
        return mask.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * 1.01 if grad.dtype == torch.float32 else grad


class MaskGradientBug(ImageMask):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(image, LossyMaskGradient.apply(mask))


class LossySecondOutput(ImageMask):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> Any:
        y = super().forward(image, mask)
        side = y.detach().bfloat16().float() if y.dtype == torch.float32 else y.detach()
        return y, {"side": side}


@pytest.mark.parametrize(
    ("model", "worst"),
    [(MaskGradientBug(), r"input\[1\] grad"), (LossySecondOutput(), r"output\[1\]\['side'\]")],
    ids=["second-input-gradient", "second-output"],
)
def test_device_parity_catches_a_bug_in_a_second_input_or_output(
    model: nn.Module, worst: str
) -> None:
    with pytest.raises(AssertionError, match=f"worst {worst}") as info:
        assert_device_parity(model, IMAGE_MASK, devices=["cpu"])
    assert "fix:" in str(info.value)


# --------------------------------------------------------------------------- ModelOutput-like


@dataclasses.dataclass
class DataclassOutput:
    sample: torch.Tensor
    aux: torch.Tensor | None = None


class TupleLike:
    """An output object that only offers ``to_tuple()``."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def to_tuple(self) -> tuple[torch.Tensor, ...]:
        return self.tensors


class ReturnsObjects(nn.Module):
    def __init__(self, kind: str, *, layout_bug: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.kind, self.layout_bug = kind, layout_bug

    def forward(self, x: torch.Tensor) -> Any:
        y = self.conv(x)
        second = y * float(x.is_contiguous()) if self.layout_bug else y.square()
        if self.kind == "dataclass":
            return DataclassOutput(y, second)
        return TupleLike(y, second)


@pytest.mark.parametrize(
    ("kind", "second"), [("dataclass", "output.aux"), ("to_tuple", "output[1]")]
)
def test_dataclass_and_to_tuple_outputs_are_compared_field_by_field(kind: str, second: str) -> None:
    report = assert_device_parity(ReturnsObjects(kind), (2, 3, 8, 8), devices=["cpu"])
    assert second in report.results[0].errors
    assert_layout_parity(ReturnsObjects(kind), (2, 3, 8, 8))
    with pytest.raises(AssertionError, match=f"strided view\\), {re.escape(second)}: max"):
        assert_layout_parity(ReturnsObjects(kind, layout_bug=True), (2, 3, 8, 8))


def test_batch_check_on_a_dataclass_output() -> None:
    assert_batch_independent(ReturnsObjects("dataclass"), (2, 3, 8, 8))
