"""Device and layout parity against the float64 reference (CPU here; CUDA where present)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from pytest_convcheck import (
    assert_compile_parity,
    assert_device_parity,
    assert_layout_parity,
)
from pytest_convcheck.parity import available_devices


@pytest.mark.parametrize("section", list(MODELS))
def test_article_models_match_the_float64_reference_on_cpu(section: str) -> None:
    factory, shape = MODELS[section]
    report = assert_device_parity(factory(), shape, devices=["cpu", "cuda", "mps"])
    present = [d for d in ("cpu", "cuda", "mps") if d in available_devices()]
    assert [r.device for r in report.results] == present
    assert all(r.worst[1] <= 1.0 for r in report.results)
    if not torch.cuda.is_available():
        assert "cuda" in report.skipped and "skipped (not available here): cuda" in str(report)


def test_strict_and_deterministic_modes_run() -> None:
    factory, shape = MODELS["s04_checkerboard_fix"]
    report = assert_device_parity(factory(), shape, strict=True, deterministic=True)
    assert not report.results[0].tf32


class LayoutDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.is_contiguous())


def test_a_layout_dependent_model_fails() -> None:
    with pytest.raises(AssertionError) as info:
        assert_layout_parity(LayoutDependent(), (1, 2, 4, 4))
    text = str(info.value)
    assert "channels-last weights and input: max |Δ|" in text
    assert "non-contiguous input (a strided view): max |Δ|" in text


class SecondOutputLayoutDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y = self.conv(x)
        return y, {"mask": y * float(x.is_contiguous())}


def test_layout_parity_compares_every_output() -> None:
    with pytest.raises(AssertionError) as info:
        assert_layout_parity(SecondOutputLayoutDependent(), (1, 2, 4, 4))
    text = str(info.value)
    assert "non-contiguous input (a strided view), output[1]['mask']: max |Δ|" in text
    assert "output[0]" not in text


class LossySecondOutput(nn.Module):
    """The second output loses precision in float32 only (a float16 round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        side = y.detach().half().float() if y.dtype == torch.float32 else y.detach()
        return y, side * 3.0


def test_device_parity_compares_every_output() -> None:
    with pytest.raises(AssertionError, match=r"worst output\[1\]"):
        assert_device_parity(LossySecondOutput(), (1, 1, 8, 8), devices=["cpu"])


class MutatesItsWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv.weight.data.mul_(1.5)
        return self.conv(x)


@pytest.mark.parametrize("check", [assert_device_parity, assert_layout_parity])
def test_a_forward_that_changes_its_weights_is_named_not_blamed_on_seeds(check) -> None:
    model = MutatesItsWeights()
    before = model.conv.weight.detach().clone()
    with pytest.raises(AssertionError) as info:
        check(model, (1, 1, 8, 8))
    text = str(info.value)
    assert "changes the model's own parameters or buffers in place" in text
    assert "(conv.weight)" in text and "random seeds" not in text
    assert torch.equal(model.conv.weight, before)  # on our copies only


def test_section_six_view_breaks_under_channels_last() -> None:
    # x.view(-1, 320) needs a contiguous tensor: a channels-last input makes it raise
    factory, shape = MODELS["s06_cnn"]
    with pytest.raises(AssertionError, match="forward raises RuntimeError: view size is not"):
        assert_layout_parity(factory(), shape)


@pytest.mark.parametrize("section", [s for s in MODELS if s != "s06_cnn"])
def test_other_article_models_are_layout_independent(section: str) -> None:
    factory, shape = MODELS[section]
    assert_layout_parity(factory(), shape)


def test_parity_leaves_the_model_alone() -> None:
    model = MODELS["s01_transposed_conv"][0]().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert_device_parity(model, (2, 1, 28, 28))
    assert_layout_parity(model, (2, 1, 28, 28))
    assert model.training and all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.gpu  # skipped without CUDA by the plugin, with the reason
@pytest.mark.parametrize("strict", [False, True], ids=["tf32-aware", "strict"])
def test_cuda_matches_the_reference(strict: bool, convcheck_device: str) -> None:
    for factory, shape in MODELS.values():
        report = assert_device_parity(factory(), shape, devices=[convcheck_device], strict=strict)
        assert report.results[0].device == convcheck_device


@pytest.mark.gpu
def test_cuda_layout_and_compile(convcheck_device: str) -> None:
    factory, shape = MODELS["s04_checkerboard_fix"]
    result = assert_compile_parity(factory(), shape, backend="aot_eager", device=convcheck_device)
    assert convcheck_device in str(result)
    report = assert_device_parity(factory(), shape, devices=[convcheck_device], deterministic=True)
    assert report.results


@pytest.mark.parametrize("section", ["s04_checkerboard_fix", "s06_cnn", "s10_conv_reuse"])
def test_compile_matches_eager(section: str) -> None:
    factory, shape = MODELS[section]
    result = assert_compile_parity(factory(), shape, backend="aot_eager")
    assert "compiled (aot_eager)" in str(result) and result.worst[1] <= 1.0


def test_compile_with_inductor_matches_eager() -> None:
    # the backend users get by default; about 20 s of C++ compilation on 2 cores
    factory, shape = MODELS["s06_cnn"]
    model = factory()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = assert_compile_parity(model, shape)
    assert "compiled (inductor)" in str(result)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_compile_parity_catches_a_wrong_compiler() -> None:
    def off_by_a_little(gm, example_inputs):  # a compiler backend with a bug
        def run(*args):
            return [out + 1e-2 for out in gm(*args)]

        return run

    with pytest.raises(AssertionError, match="differs from eager mode"):
        assert_compile_parity(nn.Conv2d(1, 2, 3), (1, 1, 8, 8), backend=off_by_a_little)


def test_compile_parity_skips_with_a_reason_where_dynamo_cannot_run(monkeypatch) -> None:
    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    with pytest.raises(pytest.skip.Exception, match="not supported on Python"):
        assert_compile_parity(nn.Conv2d(1, 1, 3), (1, 1, 8, 8))


class NoisyInEval(nn.Module):
    """F.dropout without training= stays on in eval mode; randn_like always draws."""

    def __init__(self, noise: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.noise == "dropout":
            return F.dropout(y, 0.5)
        return y + 0.1 * torch.randn_like(y)


@pytest.mark.parametrize("noise", ["dropout", "randn_like"])
@pytest.mark.parametrize("check", [assert_device_parity, assert_layout_parity])
def test_a_forward_that_draws_random_numbers_in_eval_mode_is_named(check, noise: str) -> None:
    with pytest.raises(AssertionError) as info:
        check(NoisyInEval(noise), (2, 1, 8, 8))
    text = str(info.value)
    assert "different outputs for different random seeds even in eval mode" in text
    assert f"random draws in forward: {noise} in forward" in text
    assert ("ignores model.eval()" in text) is (noise == "dropout")
    assert "training=self.training" in text
    assert "memory layout" not in text  # not blamed on the layout


class Alternating(nn.Module):
    """Switches its own mode at every call: no random numbers, yet no two runs agree."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.mode = "a"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.mode = "b" if self.mode == "a" else "a"
        y = self.conv(x)
        return y if self.mode == "a" else 2 * y


@pytest.mark.parametrize("check", [assert_device_parity, assert_layout_parity])
def test_a_forward_that_changes_its_modules_state_is_named(check) -> None:
    model = Alternating()
    with pytest.raises(AssertionError) as info:
        check(model, (2, 1, 8, 8))
    text = str(info.value)
    assert "forward changes attributes of its modules (mode: 'a' → 'b')" in text
    assert "random" not in text  # not blamed on random draws
    assert model.mode == "a"  # the checks ran on a copy


def test_dropout_modules_in_training_mode_are_switched_off_by_eval() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5), nn.Dropout2d(0.5)).train()
    assert_device_parity(model, (2, 1, 8, 8))
    assert_layout_parity(model, (2, 1, 8, 8))
    assert model.training and model[1].training  # the user's model keeps its mode


def test_meta_models_get_a_clean_error_from_the_checks_that_compute() -> None:
    from pytest_convcheck.errors import ModelStateError

    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(1, 2, 3))
    for check in (assert_device_parity, assert_layout_parity):
        with pytest.raises(ModelStateError, match=r"'0.weight' is on the meta device"):
            check(model, (1, 1, 8, 8))


def test_parity_result_reads_as_a_fraction_of_the_tolerance() -> None:
    report = assert_device_parity(nn.Conv2d(1, 2, 3), (1, 1, 8, 8), devices=["cpu"])
    assert "× the tolerance atol + rtol·max|reference|" in str(report.results[0])


class NearTie(nn.Module):
    """max of two equal convs, one scaled by 1 + 1e-9: a tie in float32 (the factor
    rounds to 1 and torch.maximum splits the gradient), a strict winner in float64
    — the kink that max-pooling and ReLU put into real networks, made certain."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3)
        self.b = nn.Conv2d(1, 2, 3)
        self.b.load_state_dict(self.a.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(self.a(x), self.b(x) * (1 + 1e-9))


class LossyFloat32(nn.Module):
    """A float32 path that rounds through bfloat16, as a lossy device would."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            x = x.to(torch.bfloat16).to(torch.float32)
        return self.pool(torch.relu(self.conv(x)))


def test_gradient_jumps_at_kinks_are_within_the_measured_noise_floor(monkeypatch) -> None:
    import pytest_convcheck.parity as parity

    # the elementwise tolerance alone fails the float32 run: half the gradient moved
    # (weights drawn from a fixed seed: which parameter's jump is the worst must not
    # depend on the tests that ran before in this worker)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = NearTie()
    monkeypatch.setattr(parity, "noise_floor", lambda *a, **k: {})
    with pytest.raises(AssertionError, match=r"[ab]\.(weight|bias) grad"):
        assert_device_parity(model, (2, 1, 8, 8), devices=["cpu"])
    monkeypatch.undo()
    report = assert_device_parity(model, (2, 1, 8, 8), devices=["cpu"])
    result = report.results[0]
    assert result.floors is not None and result.floors["a.weight grad"] > 0
    assert "noise floor" in str(result)


def test_the_noise_floor_does_not_hide_a_lossy_float32_path() -> None:
    with pytest.raises(AssertionError) as info:
        assert_device_parity(LossyFloat32(), (2, 1, 12, 12), devices=["cpu"])
    text = str(info.value)
    assert "above tolerance" in text and "noise floor" in text


def test_the_noise_floor_is_only_measured_when_the_tolerance_is_exceeded(monkeypatch) -> None:
    import pytest_convcheck.parity as parity

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured a noise floor for a model within tolerance")

    monkeypatch.setattr(parity, "noise_floor", fail)
    report = assert_device_parity(nn.Conv2d(1, 2, 3), (1, 1, 8, 8), devices=["cpu"])
    assert report.results[0].floors is None


class FixedDtypeInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.conv(x), torch.ones(2, 2, 1, 1))  # float32, whatever x is


@pytest.mark.parametrize("check", [assert_device_parity, assert_layout_parity])
def test_a_tensor_of_fixed_dtype_made_in_forward_is_explained(check) -> None:
    from pytest_convcheck.tracing import ModelRunError

    with pytest.raises(ModelRunError) as info:
        check(FixedDtypeInForward(), (1, 1, 6, 6))
    text = str(info.value)
    assert "FixedDtypeInForward.forward failed on a float64 cpu copy" in text
    assert "fix: create it with dtype=x.dtype" in text


def test_a_device_clash_in_forward_is_explained() -> None:
    from pytest_convcheck.tracing import ModelRunError, forward_failures

    with (
        pytest.raises(ModelRunError, match=r"(?s)on a fixed device.*fix: create it with device="),
        forward_failures(nn.Conv2d(1, 1, 1), "a test", torch.float32, "cuda:0"),
    ):
        raise RuntimeError(
            "Expected all tensors to be on the same device, but found at least two "
            "devices, cuda:0 and cpu!"
        )


class OverflowsInFloat32(nn.Module):
    """exp(90·x) − exp(90·x): inf − inf = NaN in float32, exactly 0 in float64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = torch.exp(90 * x.abs())
        return big - big.clone()


def test_a_nan_on_one_side_fails_parity() -> None:
    with pytest.raises(AssertionError, match=r"worst output, max \|Δ\| at inf×"):
        assert_device_parity(OverflowsInFloat32(), (1, 1, 4, 4), devices=["cpu"])


def test_parity_leaves_the_global_seeds_alone() -> None:
    model = nn.Conv2d(1, 2, 3)  # built first: its initialisation draws numbers
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    assert_device_parity(model, (1, 1, 6, 6), devices=["cpu"])
    assert_layout_parity(model, (1, 1, 6, 6))
    assert torch.equal(torch.get_rng_state(), before)
    if torch.cuda.is_available():  # seeded only on the CPU generator, inside fork_rng
        assert torch.cuda.initial_seed() == 1234
