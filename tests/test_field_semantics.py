"""What the receptive field means on real architectures: normalisation statistics,
ops without a rule, bounded and aligned measurements (issue #16)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_convcheck import (
    MeasurementRefused,
    assert_receptive_field,
    checkerboard,
    empirical_receptive_field,
    receptive_field,
    report,
    valid_input_sizes,
)
from pytest_convcheck.config import model_from_table, table_from_ini_line


class ConvGroupNormConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.b = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.norm(self.a(x)))


def test_group_norm_statistics_are_named_and_counted_on_request() -> None:
    data_path = receptive_field(ConvGroupNormConv(), (2, 1, 32, 32))
    assert data_path.size == (5, 5) and data_path.statistics == ("norm",)
    assert "statistics of 1 normalisation layer(s) (norm)" in str(data_path)
    counted = receptive_field(ConvGroupNormConv(), (2, 1, 32, 32), include_statistics=True)
    assert counted.size == (32, 32) and all(counted.whole)
    for include in (False, True):
        measured = empirical_receptive_field(
            ConvGroupNormConv(), (2, 1, 32, 32), include_statistics=include
        )
        expected = receptive_field(
            ConvGroupNormConv(), measured.input_shape, include_statistics=include
        )
        assert measured.size == expected.size


def test_channel_layer_norm_is_per_position_and_measurable() -> None:
    class LayerNorm2d(nn.Module):  # ConvNeXt's: permute, LayerNorm over channels, permute
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 7, padding=3, groups=4)
            self.norm = nn.LayerNorm(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.norm(self.conv(x).permute(0, 2, 3, 1))
            return y.permute(0, 3, 1, 2)

    field = receptive_field(LayerNorm2d(), (2, 4, 24, 24), include_statistics=True)
    assert field.size == (7, 7) and field.statistics == ()
    measured = empirical_receptive_field(LayerNorm2d(), (2, 4, 24, 24))
    assert measured.size == (7, 7)  # not 0: the stand-in keeps the gradient alive


def test_failure_text_and_report_say_which_statistics_span_the_input() -> None:
    with pytest.raises(AssertionError, match=r"statistics of 1 normalisation layer\(s\) \(norm\)"):
        assert_receptive_field(ConvGroupNormConv(), (2, 1, 32, 32), min_size=8)
    assert_receptive_field(ConvGroupNormConv(), (2, 1, 32, 32), min_size=8, include_statistics=True)
    found = report(ConvGroupNormConv(), (2, 1, 32, 32))
    data = found.to_dict()
    assert data["receptive_field"]["statistics"] == ["norm"]
    assert "+1 norm stats" in str(found)


def test_config_switch_for_statistics() -> None:
    table = {"factory": "m:Net", "input": [1, 1, 8, 8], "receptive_field_statistics": True}
    assert model_from_table("net", table, "here").options["receptive_field_statistics"] is True
    name, line = table_from_ini_line("net m:Net 1,1,8,8 receptive_field_statistics=true")
    assert model_from_table(name, line, "ini").options["receptive_field_statistics"] is True
    with pytest.raises(ValueError, match="must be true or false"):
        model_from_table("net", {**table, "receptive_field_statistics": "yes"}, "here")


class Warp(nn.Module):
    """A conv, then an op the rule table does not know (grid_sample)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        theta = torch.eye(2, 3).unsqueeze(0).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(y.shape), align_corners=False)
        return F.grid_sample(y, grid, align_corners=False)


def test_an_op_without_a_rule_never_shrinks_the_field_and_says_so() -> None:
    field = receptive_field(Warp(), (1, 1, 16, 16))
    assert field.whole == (True, True) and field.size == (16, 16)
    assert any(
        "no rule for grid_sampler" in note or "no rule for grid_sample" in note
        for note in field.notes
    ), field.notes


@pytest.mark.parametrize(
    ("op", "whole"),
    [
        (lambda y: y.softmax(-1), (False, True)),
        (lambda y: y.cumsum(2), (True, False)),
        (lambda y: y.sort(-1).values, (False, True)),
        (lambda y: y.flip(-1), (False, True)),
        (lambda y: torch.roll(y, 1, 2), (True, False)),
        (lambda y: y.topk(16, dim=-1).values, (False, True)),
    ],
    ids=["softmax_w", "cumsum_h", "sort_w", "flip_w", "roll_h", "topk_w"],
)
def test_ops_along_a_spatial_dim_mix_exactly_that_dim(op, whole) -> None:  # type: ignore[no-untyped-def]
    class Along(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return op(self.conv(x))

    field = receptive_field(Along(), (1, 1, 16, 16))
    assert field.whole == whole
    assert field.size == tuple(16 if w else 3 for w in whole)


def test_measurement_refuses_above_its_memory_budget() -> None:
    model = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(8)])
    with pytest.raises(MeasurementRefused, match="over the budget") as info:
        empirical_receptive_field(model, (1, 4, 64, 64), max_memory=2**20)
    assert "fix:" in str(info.value) and "receptive_field" in str(info.value)
    assert empirical_receptive_field(model, (1, 4, 64, 64)).size == (17, 17)


class PoolUNet(nn.Module):
    """Three poolings and skip concatenations, upsampled to the skip's size: runs at
    any size, with a geometry that differs off the multiples of 8."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.ModuleList(nn.Conv2d(2, 2, 3, padding=1) for _ in range(3))
        self.up = nn.ModuleList(nn.Conv2d(4, 2, 3, padding=1) for _ in range(3))
        self.stem = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for conv in self.down:
            skips.append(x)
            x = F.max_pool2d(conv(x), 2)
        for conv, skip in zip(self.up, reversed(skips), strict=True):
            x = conv(torch.cat([F.interpolate(x, size=skip.shape[-2:]), skip], 1))
        return x


@pytest.mark.parametrize("side", [16, 21, 30])
def test_measurement_picks_sizes_the_model_handles_alike(side: int) -> None:
    # the field (40) does not fit: the measurement enlarges the input to a multiple
    # of 8, where the U-Net's geometry is its regular one (stride 1, not 16/21)
    measured = empirical_receptive_field(PoolUNet(), (1, 1, side, side))
    analytic = receptive_field(PoolUNet(), measured.input_shape)
    assert all(size % 8 == 0 for size in measured.input_shape[2:]), measured.input_shape
    assert measured.stride == analytic.stride == (1, 1)
    assert measured.size == analytic.size == (40, 40)


def test_valid_sizes_follow_instance_norm_runtime_rule() -> None:
    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.InstanceNorm3d(cout))

    model = nn.Sequential(
        block(1, 2), nn.MaxPool3d(2), block(2, 2), nn.MaxPool3d(2), block(2, 2)
    ).eval()
    sizes = range(1, 24)
    real = []
    for n in sizes:
        try:
            model(torch.zeros(1, 1, 4, 4, n))
            real.append(n)
        except (RuntimeError, ValueError):
            pass
    assert valid_input_sizes(model, (1, 1, 4, 4, 8), sizes=sizes) == real
    assert 4 not in real  # 4 → 1×1×1 at the bottom: instance norm refuses


def test_eca_report_shows_a_field() -> None:
    class ECA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.gate = nn.Conv1d(1, 1, 3, padding=1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            b, c = y.shape[:2]
            w = self.gate(y.mean((2, 3)).view(b, 1, c)).view(b, c, 1, 1).sigmoid()
            return y * w

    data = report(ECA(), (2, 3, 16, 16)).to_dict()["receptive_field"]
    assert "error" not in data and data["whole"] == [True, True]


# ---------------------------------------------------------------- found by the library sweep


def test_global_pool_after_a_dropped_border_row_is_not_the_whole_input() -> None:
    # timm's inception_v3: an unpadded stride-2 conv never reads the last row
    model = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.AdaptiveAvgPool2d(1)).eval()
    field = receptive_field(model, (1, 1, 8, 8))
    assert field.size == (7, 7) and field.whole == (False, False)
    assert empirical_receptive_field(model, (1, 1, 8, 8)).size == (7, 7)


class Attention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)
        scores = (q.transpose(1, 2) @ k).softmax(-1)
        return x + (v @ scores.transpose(1, 2)).view(b, c, h, w)


class FusedAttention(Attention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (t.transpose(1, 2) for t in self.qkv(x).flatten(2).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("block", [Attention, FusedAttention])
def test_stacked_attention_is_measured_not_overflowed(block: type[nn.Module]) -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), *[block(8) for _ in range(8)]).eval()
    assert empirical_receptive_field(model, (1, 1, 16, 16)).size == (16, 16)


def test_checkerboard_of_a_model_whose_layers_have_another_rank() -> None:
    class Spectrogram(nn.Module):  # a 1-D signal made 2-D (HDemucs)
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.unsqueeze(1)).flatten(1, 2)

    assert not checkerboard(Spectrogram().eval(), (1, 4, 32)).structural
    assert report(Spectrogram().eval(), (1, 4, 32)).to_dict()["checkerboard"]["structural"] is False


def test_measurement_of_an_output_with_fewer_spatial_axes() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Flatten(2)).eval()
    measured = empirical_receptive_field(model, (1, 1, 8, 8))
    assert measured.size == (7, 7)
    assert any("whole output was measured" in note for note in measured.notes)


def test_a_field_too_large_to_fit_the_budget_is_measured_clipped() -> None:
    # field 65: the fitted input (72²) is over a small budget, the given 24² is not
    model = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(32)])
    fitted_cost = empirical_receptive_field(model, (1, 1, 24, 24))
    assert fitted_cost.size == (65, 65) and not fitted_cost.clipped
    measured = empirical_receptive_field(model, (1, 1, 24, 24), max_memory=400_000)
    assert measured.clipped and measured.input_shape == (1, 1, 24, 24)
    assert measured.size == (24, 24)
    assert any("measured on the given input, clipped" in note for note in measured.notes)


def test_a_measurement_through_a_quantised_latent_is_refused_with_the_cut() -> None:
    """A forward that rounds and casts to uint8 (diffusers' AutoencoderTiny) has no
    gradient to measure: a refusal that names the cut, not autograd's RuntimeError."""
    from pytest_convcheck import MeasurementRefused, empirical_receptive_field

    class Quantised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode = nn.Conv2d(1, 1, 3, padding=1)
            self.decode = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            latent = self.encode(x).clamp(0, 1).mul(255).round().to(torch.uint8)
            return self.decode(latent.float() / 255)

    with pytest.raises(MeasurementRefused, match=r"round, to\(torch.uint8\).*\n  fix: rely on"):
        empirical_receptive_field(Quantised(), (1, 1, 16, 16))


class Branches(nn.Module):
    """A dense 3×3 branch and a dilated stack (holes at odd offsets), concatenated
    along channels, then the output chosen by ``pick``."""

    def __init__(self, pick: object) -> None:
        super().__init__()
        self.dense = nn.Conv2d(1, 2, 3, padding=1)
        self.dilated = nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=2, dilation=2), nn.Conv2d(1, 1, 3, padding=2, dilation=2)
        )
        self.pick = pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = torch.cat([self.dense(x), self.dilated(x)], 1)
        return self.pick(torch.relu(both))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "pick", "size", "holes"),
    [
        # a slice within one part reads that part's field, not the union
        ("dense part", lambda t: t[:, :2], (3, 3), ()),
        ("one dense channel", lambda t: t[:, 1:2], (3, 3), ()),
        ("dilated part", lambda t: t[:, 2:], (9, 9), (1, 3, 5, 7)),
        ("narrow", lambda t: t.narrow(1, 2, 1), (9, 9), (1, 3, 5, 7)),
        ("nested cat", lambda t: torch.cat([t, t[:, :1]], 1)[:, 3:], (3, 3), ()),
        # across parts, or mixed by a later op: the union (holes where neither reads)
        ("both parts", lambda t: t[:, 1:], (9, 9), (1, 7)),
        ("every part", lambda t: t, (9, 9), (1, 7)),
        ("summed", lambda t: t.sum(1, keepdim=True)[:, :1], (9, 9), (1, 7)),
    ],
)
def test_a_channel_slice_of_a_concatenation_reads_its_parts_field(
    name: str, pick: object, size: tuple[int, int], holes: tuple[int, ...]
) -> None:
    model = Branches(pick)
    field = receptive_field(model, (1, 1, 32, 32))
    measured = empirical_receptive_field(model, (1, 1, 32, 32))
    assert (field.size, measured.size) == (size, size), name
    expected = (holes, holes) if holes else ((), ())
    assert field.hole_positions == measured.hole_positions == expected


@pytest.mark.parametrize(
    "crop",
    [
        lambda t: t[..., :16, :16],
        lambda t: t[:, :, :16],
        lambda t: t.narrow(3, 0, 16),
        lambda t: t[..., 8:24, ::2],
    ],
)
def test_a_crop_keeps_the_field_of_what_it_crops(crop: object) -> None:
    """``x[..., :h, :w]`` (trimming a decoder's output to its skip) reads positions
    0…h−1: it mixes nothing (it was taken as mixing the axis: a global field)."""
    model = Branches(lambda t: crop(t[:, :2]))  # type: ignore[operator]
    field = receptive_field(model, (1, 1, 32, 32))
    assert field.size == empirical_receptive_field(model, (1, 1, 32, 32)).size == (3, 3)
    assert not any(field.whole)


class Resample(nn.Module):
    def __init__(self, mode: str, factor: float, recompute: bool | None) -> None:
        super().__init__()
        self.mode, self.factor, self.recompute = mode, factor, recompute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x,
            scale_factor=(self.factor, 1.0),
            mode=self.mode,
            recompute_scale_factor=self.recompute,
        )


@pytest.mark.parametrize("recompute", [None, True])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize(("factor", "rows"), [(0.5, 37), (1.5, 25), (2.5, 13), (0.7, 30), (3, 7)])
def test_resampling_by_a_scale_factor_reads_where_torch_reads(
    mode: str, factor: float, rows: int, recompute: bool | None
) -> None:
    """torch's kernels place output j at ``(j + ½)/scale_factor`` when a factor is given
    (``in·factor`` need not be an integer: 37 rows × 0.5 → 18 rows reading 2j, 2j + 1),
    at ``(j + ½)·in/out`` when it is recomputed: every input a row really reads is in
    its field, and in the interior nothing else."""
    from test_zoo import gradient_support

    model = Resample(mode, factor, recompute)
    shape = (1, 1, rows, 6)
    field = receptive_field(model, shape)
    out_rows = int(rows * factor)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    support = gradient_support(model, x, [(j, 3) for j in range(out_rows)])
    for j in range(out_rows):
        real, claimed = set(support[(j, 3)][0]), set(field.positions((j, 3))[0])
        assert real <= claimed, (j, sorted(real), sorted(claimed))
        if min(claimed) > 0 and max(claimed) < rows - 1 and mode != "bicubic":
            assert real == claimed, (j, sorted(real), sorted(claimed))


def test_a_stacked_branch_picked_by_index_reads_its_own_field() -> None:
    model = Branches(lambda t: torch.stack([t[:, :1], t[:, 2:]])[0])
    field = receptive_field(model, (1, 1, 32, 32))
    assert field.size == empirical_receptive_field(model, (1, 1, 32, 32)).size == (3, 3)


def test_a_split_of_a_concatenation_is_the_union_and_says_so() -> None:
    """``split``/``chunk`` outputs are one node to the trace: each piece is given the
    union of the parts' fields (an over-statement), and a note says so and how to keep
    a part's own field; parts with equal fields need no note."""
    field = receptive_field(Branches(lambda t: t.split(2, 1)[0]), (1, 1, 32, 32))
    assert field.size == (9, 9)
    assert any("splits a concatenation" in note and "x[:, a:b]" in note for note in field.notes)
    dense = Branches(lambda t: torch.cat([t[:, :1], t[:, 1:2]], 1).chunk(2, 1)[0])
    same = receptive_field(dense, (1, 1, 32, 32))
    assert same.size == (3, 3)
    assert not any("splits a concatenation" in note for note in same.notes)


def test_an_axis_cut_to_one_position_and_resized_reads_that_position_everywhere() -> None:
    class Column(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(x.narrow(3, 6, 1), (16, 7))

    field = receptive_field(Column(), (1, 1, 16, 20))
    assert all(field.positions((3, j))[1] == (6,) for j in range(7))  # not 6 + j
    # one field for every position: one output step spans the input (not "stride 0")
    assert field.stride[1] == empirical_receptive_field(Column(), (1, 1, 16, 20)).stride[1] == 20


def test_a_window_along_flattened_axes_is_noted_as_mixing_them() -> None:
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[2:]
            return self.conv(x.flatten(2)).unflatten(2, (h, w))

    field = receptive_field(Flat(), (1, 1, 12, 14))
    assert any("several spatial axes" in note for note in field.notes)
    measured = empirical_receptive_field(Flat(), (1, 1, 12, 14))
    assert all(a >= m for a, m in zip(field.size, measured.size, strict=True))


class _CroppedGate(nn.Module):
    """An SE-style gate (x · σ(mean(x))) on the first 9 rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.narrow(2, 0, 9)
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


class _BroadcastCorner(nn.Module):
    """A branch cut to its corner position, broadcast and added to a 3×3 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x[:, :, :1, :1]


@pytest.mark.parametrize("model", [_CroppedGate(), _BroadcastCorner()], ids=["gate", "corner"])
def test_a_merge_with_one_field_for_every_position_is_whole_and_says_so(
    model: nn.Module,
) -> None:
    """An operand without positions along an axis (a gate on a crop, a broadcast
    corner) adds its one field to every position: not periodic, so the axis is taken
    as whole, with a note. Every input a position really reads is in its field. (An
    enumeration over the extent was tried: it carried the fixed field into later
    layers' padding, and fields came out larger than the input.)"""
    from test_zoo import gradient_support

    shape = (1, 1, 36, 19)
    field = receptive_field(model, shape)
    assert field.whole[0] and any("single field for all of them" in n for n in field.notes)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    positions = [(0, 3), (4, 9), (8, 18)]
    support = gradient_support(model.double(), x, positions)
    for position in positions:
        assert set(support[position][0]) <= set(field.positions(position)[0]), position


def test_measured_holes_are_those_of_the_first_measured_position_that_has_some() -> None:
    """A transposed conv's phases differ: one has a hole. The measurement, like the
    analytic field, reports it (it read the first measured position only)."""
    layer = nn.ConvTranspose1d(1, 1, 4, stride=3, padding=1, dilation=2, output_padding=2)
    analytic = receptive_field(layer, (1, 1, 21))
    measured = empirical_receptive_field(layer, (1, 1, 21))
    assert analytic.hole_positions == measured.hole_positions == ((1,),)


def test_attention_after_dropped_samples_reads_only_the_samples_it_reaches() -> None:
    """An op that mixes every position (attention) reads what its input read: a stride-4
    framing of 10 samples reaches samples 0–7, not the whole input."""

    class Frames(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frames = nn.Conv1d(1, 4, kernel_size=4, stride=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.frames(x).transpose(1, 2).unsqueeze(1)
            return F.scaled_dot_product_attention(q, q, q).squeeze(1).transpose(1, 2)

    field = receptive_field(Frames(), (1, 1, 10))
    assert not field.whole[0] and field.positions((0,)) == (tuple(range(8)),)
    assert empirical_receptive_field(Frames(), (1, 1, 10)).size == field.size == (8,)


class _Checkpointed(nn.Module):
    """Activation checkpointing when the input requires grad, as timm's dense layers."""

    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.conv, self.reentrant = nn.Conv2d(2, 2, 3, padding=1), reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self.conv, x, use_reentrant=self.reentrant)  # type: ignore[no-any-return]
        return self.conv(x)


@pytest.mark.parametrize("reentrant", [False, True])
def test_a_checkpointed_forward_is_refused_with_the_fix(reentrant: bool) -> None:
    model = _Checkpointed(reentrant)
    assert receptive_field(model, (1, 2, 8, 8)).size == (3, 3)
    with pytest.raises(
        MeasurementRefused, match=r"checkpointing.*\n  fix: .*set_grad_checkpointing"
    ):
        empirical_receptive_field(model, (1, 2, 8, 8))


def test_a_forward_that_casts_to_float32_is_measured_in_float32() -> None:
    """MONAI's vector quantiser casts its input with .float(): a float64 copy clashes."""

    class Quantised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Conv2d(1, 4, 3, padding=1)
            self.codebook = nn.Parameter(torch.randn(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.enc(x).float()
            flat = h.permute(0, 2, 3, 1).reshape(-1, 4)
            out = torch.mm(flat, self.codebook).reshape(h.shape[0], h.shape[2], h.shape[3], 4)
            return out.permute(0, 3, 1, 2)

    measured = empirical_receptive_field(Quantised(), (1, 1, 8, 8))
    assert measured.size == receptive_field(Quantised(), (1, 1, 8, 8)).size == (3, 3)
    assert any("measured in float32" in note for note in measured.notes)


def test_a_contraction_reads_every_operands_field() -> None:
    """``q @ k.T`` with queries from the left half and keys from the whole input: each
    output reads every key, so the whole input (the first operand's field alone would
    under-state it)."""

    class HalfQuery(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = x[..., :8].flatten(2).transpose(1, 2)
            k = x.flatten(2).transpose(1, 2)
            return (q @ k.transpose(1, 2)).sum(-1).reshape(1, 1, 16, 8)

    field = receptive_field(HalfQuery(), (1, 1, 16, 16))
    assert field.positions((3, 3)) == (tuple(range(16)), tuple(range(16)))
    assert any("multiplies tensors that both depend on the input" in n for n in field.notes)
    assert empirical_receptive_field(HalfQuery(), (1, 1, 16, 16)).size == field.size


def test_a_plain_tensor_attribute_is_measured_with_its_values() -> None:
    """MONAI's GlobalNet keeps a grid as a plain attribute and moves it in forward: the
    linearised copy (built on meta) runs with the user's values, not a meta tensor."""

    class Grid(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.grid = torch.zeros(2, 8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.grid = self.grid.to(device=x.device)
            return self.conv(x) - self.grid

    model = Grid()
    assert empirical_receptive_field(model, (1, 1, 8, 8)).size == (3, 3)
    assert model.grid.device.type == "cpu"
