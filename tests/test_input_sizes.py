"""Valid input sizes as a rule (issue #20): exact against brute force."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from pytest_convcheck import (
    ShapeError,
    assert_output_shape,
    input_size_rule,
    trace,
    valid_input_sizes,
)
from pytest_convcheck.tracing import ModelRunError
from tests.zoo import ZOO


def _brute(model: nn.Module, shape: tuple[int, ...], dim: int, sizes: range) -> list[int]:
    """The sizes at which a trace runs and keeps the batch, one trace per size."""
    found = []
    for n in sizes:
        s = list(shape)
        s[dim] = n
        try:
            result = trace(model, tuple(s))
        except (ShapeError, ModelRunError):
            continue
        if all(out[0] == shape[0] for _, out in result.outputs):
            found.append(n)
    return found


def _runs_on_cpu(model: nn.Module, shape: tuple[int, ...], sizes: range) -> list[int]:
    """The sizes of the last dim at which a CPU forward runs."""
    found = []
    with torch.no_grad():
        for n in sizes:
            try:
                model(torch.zeros(*shape[:-1], n))
            except RuntimeError:
                continue
            found.append(n)
    return found


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
    assert rule.valid(range(1, 100)) == _brute(model, shape, -1, range(1, 100))
    assert rule.method == "replayed from one trace"
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
    brute = _brute(PoolUNet(), (1, 1, 32, 32), -1, range(1, 80))
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
    brute = _brute(Odd(), (1, 1, 32), -1, range(1, 120))
    assert rule.valid(range(1, 120)) == brute
    assert "(mod" in rule.describe() or "every size" in rule.describe()


def test_the_shapes_failure_prints_the_rule() -> None:
    factory, shape = MODELS["s01_transposed_conv"]
    with pytest.raises(AssertionError, match=r"sizes it takes along width \(dim 3\): every size"):
        assert_output_shape(factory(), shape, (1, 1, 28, 28))


def test_bad_dim_is_refused() -> None:
    with pytest.raises(ValueError, match="not a spatial dim"):
        input_size_rule(PoolUNet(), (1, 1, 32, 32), 0)


# zoo models whose code reads a size that changes at sizes the layers take: traced at
# each size (others read sizes too, e.g. InstanceNorm's check of the spatial numel,
# but their reads only change where a layer refuses the input anyway)
READS_SIZES = {
    "eca_block", "eca_k5", "eca_resnet", "se_linear", "s2d_view_tresnet", "s2d_reshape",
    "d2s_view_permute", "nonlocal", "nonlocal_subsampled", "vae_decoder_attention",
    "fpn_nearest_size_odd", "crop_slice_narrow", "shufflenet_v1", "shufflenet_v2",
    "spatial_softmax", "aspp_image_pooling", "unet_valid_crop", "unet_pad_bilinear_odd",
}  # fmt: skip


@pytest.mark.parametrize("case", ZOO, ids=lambda c: c.name)
def test_rule_of_the_zoo_equals_brute_force(case: object) -> None:
    model = case.build()  # type: ignore[attr-defined]
    shape = case.input_shape  # type: ignore[attr-defined]
    top = 48 if len(shape) == 5 else 72
    rule = input_size_rule(model, shape, -1, limit=4 * top)
    assert rule.valid(range(1, top)) == _brute(model, shape, -1, range(1, top))
    replayed = rule.method == "replayed from one trace"
    assert replayed == (case.name not in READS_SIZES), rule.method  # type: ignore[attr-defined]


class ReadsWidth(nn.Module):
    """Pads to an even width only when the width is odd: a choice made in Python."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1))
        return F.max_pool2d(self.conv(x), 2).view(x.shape[0], -1)[:, :40]


def test_a_model_reading_its_width_is_traced_and_exact() -> None:
    rule = input_size_rule(ReadsWidth(), (2, 1, 8, 16), -1, limit=200)
    assert rule.method.startswith("traced at each size: the model's code reads a size")
    assert rule.valid(range(1, 90)) == _brute(ReadsWidth(), (2, 1, 8, 16), -1, range(1, 90))


def test_valid_input_sizes_agrees_with_the_rule_past_what_was_examined() -> None:
    rule = input_size_rule(PoolUNet(), (1, 1, 32, 32), -1)
    sizes = range(1000, 1100)
    assert valid_input_sizes(PoolUNet(), (1, 1, 32, 32), -1, sizes=sizes) == rule.valid(sizes)
    assert rule.valid(sizes) == [n for n in sizes if n % 8 == 0]


class Relayouts(nn.Module):
    """view with -1, reshape with a tuple, flatten by keywords: shapes computed in
    Python by the replay, each refusing what torch refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        self.head = nn.Linear(4 * 3 * 7, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).contiguous()
        y = y.view(2, 4, -1).reshape((2, 4, 3, -1))
        y = torch.flatten(y, start_dim=1, end_dim=-1)
        return self.head(y.flatten(1))


def test_relayouts_replayed_in_python_match_torch() -> None:
    rule = input_size_rule(Relayouts(), (2, 1, 7, 15), -1, limit=200)
    assert rule.method == "replayed from one trace"
    assert rule.valid(range(1, 60)) == _brute(Relayouts(), (2, 1, 7, 15), -1, range(1, 60))
    assert rule.describe() == "15–16"


# ---------------------------------------------------------------- found by a red team


class WindowAssert(nn.Module):
    """Window attention's guard: a Python assertion with a period of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] % 8 == 0
        return self.conv(x)


class ViewAfterTranspose(nn.Module):
    """view() of a transposed tensor works only while a dim has size 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).transpose(2, 3).view(1, -1)


class ThroughProperties(nn.Module):
    """The data path runs through x.mT and x.data."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, 1, 1)
        self.second = nn.Conv2d(1, 1, (5, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x.data).mT)


class StorageBranch(nn.Module):
    """Branches on the bytes of the input's storage: a size read."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.untyped_storage().nbytes() > 4 * 2 * 16 * 16:
            x = F.max_pool2d(x, 2)
        return self.conv(x)


@pytest.mark.parametrize(
    ("model", "shape", "dim"),
    [
        (WindowAssert(), (1, 1, 16, 24), -1),
        (ViewAfterTranspose(), (1, 1, 3, 8), -2),
        (ThroughProperties(), (1, 1, 8, 16), -1),
        (StorageBranch(), (1, 2, 16, 24), -1),
    ],
    ids=["assert-mod-8", "view-after-transpose", "mT-and-data", "storage-branch"],
)
def test_rules_of_models_that_escaped_the_replay_equal_brute_force(
    model: nn.Module, shape: tuple[int, ...], dim: int
) -> None:
    rule = input_size_rule(model, shape, dim, limit=300)
    assert rule.valid(range(1, 90)) == _brute(model, shape, dim, range(1, 90))


class _FractionalScales(nn.Module):
    """Two branches resampled by ratios that are no stride (20 inputs per 7 outputs),
    concatenated: their sizes agree where floating-point rounding lets them."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.down = nn.Conv1d(3, 3, 3, 2, padding=1)
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.interpolate(self.down(x), scale_factor=self.a)
        return torch.cat([left, F.interpolate(x, scale_factor=self.b)], 1)


@pytest.mark.parametrize(("a", "b"), [(0.7, 0.35), (0.6, 0.3), (1.5, 0.75)])
def test_ratios_that_are_no_stride_are_examined_size_by_size(a: float, b: float) -> None:
    # the strides' period (2) is no period here, and with 0.7 none holds: 0.7 · 90 is
    # 62.99… in floating point, so width 179 is valid though 159 and 199 are not
    model = _FractionalScales(a, b)
    rule = input_size_rule(model, (2, 3, 40), -1)
    sizes = range(1, 260)
    assert rule.valid(sizes) == _runs_on_cpu(model, (2, 3, 40), sizes)
    assert len(rule.describe()) < 400  # long lists of runs are cut short


def test_a_scale_not_exact_in_binary_states_no_size_past_those_examined() -> None:
    rule = input_size_rule(_FractionalScales(0.7, 0.35), (2, 3, 40), -1, limit=600)
    assert rule.threshold > rule.checked_to == 600
    assert "is not exact in binary" in rule.method
    assert "(no period found up to 600)" in rule.describe()
    with pytest.raises(ValueError, match="valid_input_sizes"):
        rule.is_valid(601)


class _UpByTwoAndAHalf(nn.Module):
    """Valid where the upsampled length is even: every 16 sizes, 8 of them. At length
    4 the ×2.5 upsampling turns 1 into 2, which reads as an integer ratio."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv1d(1, 1, 4, stride=4)
        self.halve = nn.Conv1d(1, 1, 2, stride=2)
        self.up = nn.ConvTranspose1d(1, 1, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.interpolate(self.down(x), scale_factor=2.5)
        return z + self.up(self.halve(z))


def test_a_scale_factor_is_read_off_its_rule_not_the_traced_sizes() -> None:
    model = _UpByTwoAndAHalf()
    rule = input_size_rule(model, (1, 1, 4), -1)
    sizes = range(1, 120)
    assert rule.valid(sizes) == _runs_on_cpu(model, (1, 1, 4), sizes)
    assert rule.describe() == "n ≡ 0, 1, 2, 3, 4, 5, 6, 7 (mod 16), n ≥ 4"


def test_an_output_formula_is_stated_only_where_it_holds() -> None:
    # a fit to one period's samples: ⌊0.7·⌊n/2⌋⌋ − 2 fits no k·⌊(n + c)/L⌋ + d
    model = nn.Sequential(nn.Conv1d(2, 2, 3, 2), nn.Upsample(scale_factor=0.7), nn.Conv1d(2, 2, 3))
    rule = input_size_rule(model, (1, 2, 64), -1, limit=400)
    text = rule.describe()
    if "; output " in text:  # whatever is stated must hold at every valid size
        formula = text.split("; output ")[1]
        with torch.no_grad():
            for n in rule.valid(range(1, 200)):
                out = model(torch.zeros(1, 2, n)).shape[-1]
                expr = formula.replace("⌊", "((").replace("⌋", "))").replace("·", "*")
                assert eval(expr.replace("−", "-").replace("/", "//"), {"n": n}) == out


class _RoundTrip(nn.Module):
    """Down by 0.7 and back: runs where the round trip restores the length."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(F.interpolate(x, scale_factor=0.7), scale_factor=1 / 0.7)
        return x + y


def test_a_model_failing_at_the_described_size_gets_the_rule_of_one_that_works() -> None:
    # without a trace nothing tells the scale factors: a window of traced sizes made
    # "10, 20, …, 70" look like all there is
    model = _RoundTrip()
    rule = input_size_rule(model, (1, 2, 64), -1, limit=500)
    assert "at size 60 (the model does not run at 1×2×64)" in rule.method
    sizes = range(1, 300)
    brute = _runs_on_cpu(model, (1, 2, 64), sizes)
    assert rule.valid(sizes) == brute
    assert 80 in brute and 290 in brute


class _TwoLevels(nn.Module):
    """Two poolings, two upsamplings, two concatenations: lengths divisible by 4."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = F.max_pool2d(x, 2)
        up = F.interpolate(F.max_pool2d(half, 2), scale_factor=2)
        return torch.cat([F.interpolate(torch.cat([up, half], 1), scale_factor=2), x], 1)


def test_each_axis_rule_holds_the_other_axes_at_a_size_that_works() -> None:
    from pytest_convcheck.shapes import nearby_hint

    text = nearby_hint(_TwoLevels(), (1, 1, 30, 30))
    # at 30×30 both axes fail: each axis alone would "take no size"
    assert "no size" not in text
    assert "height (dim 2), the other axes as in 1×1×28×28: multiples of 4 from 4" in text
    assert "width (dim 3), the other axes as in 1×1×28×28: multiples of 4 from 4" in text


class _DownIfLong(nn.Module):
    """Halves inputs of 64 and more, then a kernel of 40: 40–63 and 80 on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] >= 64:
            x = F.avg_pool1d(x, 2)
        return self.conv(x)


class _UpIfShort(nn.Module):
    """Resizes inputs under 32 to 32 before two stride-2 convs: output 7 only there."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(1, 1, 3, stride=2), nn.Conv1d(1, 1, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 32:
            x = F.interpolate(x, size=32)
        return self.convs(x)


def test_a_rule_traced_size_by_size_holds_over_every_size_it_traced() -> None:
    """Sizes traced to observe the period are checked against the rule, and so is the
    output formula (it held for a dozen sizes, and was stated for all)."""
    rule = input_size_rule(_DownIfLong(), (2, 1, 50))
    assert rule.method.startswith("traced at each size")
    assert rule.valid(range(1, 200)) == _runs_on_cpu(_DownIfLong(), (2, 1, 50), range(1, 200))
    assert rule.describe().startswith("40–63 and every size from 80")
    assert "n − 39" not in rule.describe()  # true below 64 only
    short = input_size_rule(_UpIfShort(), (2, 1, 64))
    assert short.outputs == ""  # 7 up to 32, then ⌊(n − 3)/4⌋


def test_an_output_formula_says_from_where_it_holds() -> None:
    class Halves(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[..., ::2] + F.max_pool1d(x, 2)  # at 3: 2 + 1, broadcast

    rule = input_size_rule(Halves(), (2, 1, 64))
    assert rule.describe() == "2–3 and multiples of 2 from 4; output n/2 for n ≥ 4"
