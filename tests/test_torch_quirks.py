"""Places where torch 2.13 disagrees with its own documentation or with itself,
pinned so that a change in torch shows up here. Each test says what the docs say,
what torch does, and what the rule table does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_convcheck import ShapeError, output_shape


def test_empty_transposed_conv_output_depends_on_the_backend() -> None:
    # Docs: out = (in−1)·s − 2p + d(k−1) + output_padding + 1, nothing about out = 0.
    # torch: the slow path raises "Output size is too small"; the grouped path, on
    # torch 2.13 (this project's CPU machines), raises with one intra-op thread (as
    # this suite runs, tests/conftest.py) and returns an empty tensor with more; torch
    # 2.11 raised (seen on the lent GPU host's CPU). The rule rejects an empty output
    # always.
    single = nn.ConvTranspose2d(1, 1, 1, padding=(0, 1))
    grouped = nn.ConvTranspose2d(2, 2, 1, padding=(0, 1), groups=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        single(torch.zeros(1, 1, 3, 2))
    if torch.__version__.startswith("2.13"):
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            with pytest.raises(RuntimeError, match="Output size is too small"):
                grouped(torch.zeros(1, 2, 3, 2))
            torch.set_num_threads(2)
            assert tuple(grouped(torch.zeros(1, 2, 3, 2)).shape) == (1, 2, 3, 0)
        finally:
            torch.set_num_threads(threads)
    else:  # not pinned on other versions: either outcome, never a wrong shape
        try:
            assert tuple(grouped(torch.zeros(1, 2, 3, 2)).shape) == (1, 2, 3, 0)
        except RuntimeError as error:
            assert "Output size is too small" in str(error)
    for layer, shape in ((single, (1, 1, 3, 2)), (grouped, (1, 2, 3, 2))):
        with pytest.raises(ShapeError, match="empty tensor or raises"):
            output_shape(layer, shape)


def test_lppool1d_with_a_tuple_kernel_fails_inside_torch() -> None:
    # Docs: kernel_size "a single int". A 1-tuple constructs fine and then fails in mul().
    layer = nn.LPPool1d(2, (3,))
    with pytest.raises(TypeError, match="mul"):
        layer(torch.ones(1, 1, 6))
    with pytest.raises(ShapeError, match="kernel_size must be a single int"):
        output_shape(layer, (1, 1, 6))


def test_avg_pool3d_needs_the_unpadded_input_to_hold_a_kernel() -> None:
    # Docs formula with ceil_mode gives out = 1 here; avg_pool3d additionally checks
    # input ≥ kernel (padding not counted), which avg_pool2d does not.
    layer3d = nn.AvgPool3d(2, ceil_mode=True)
    layer2d = nn.AvgPool2d(2, ceil_mode=True)
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        layer3d(torch.zeros(1, 1, 1, 1, 1))
    assert tuple(layer2d(torch.zeros(1, 1, 1, 1)).shape) == (1, 1, 1, 1)
    with pytest.raises(ShapeError, match="smaller than the kernel size"):
        output_shape(layer3d, (1, 1, 1, 1, 1))
    assert output_shape(layer2d, (1, 1, 1, 1)) == (1, 1, 1, 1)


def test_area_interpolation_accepts_an_empty_output() -> None:
    # Other modes raise "Input and output sizes should be greater than 0"; 'area' is
    # adaptive average pooling, which returns an empty tensor.
    area = nn.Upsample(scale_factor=0.5, mode="area")
    nearest = nn.Upsample(scale_factor=0.5, mode="nearest")
    assert tuple(area(torch.zeros(1, 1, 1, 1)).shape) == (1, 1, 0, 0)
    with pytest.raises(RuntimeError):
        nearest(torch.zeros(1, 1, 1, 1))
    assert output_shape(area, (1, 1, 1, 1)) == (1, 1, 0, 0)
    with pytest.raises(ShapeError):
        output_shape(nearest, (1, 1, 1, 1))


def test_group_norm_needs_more_than_one_value_per_group_even_in_eval() -> None:
    layer = nn.GroupNorm(1, 1).eval()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(torch.zeros(1, 1, 1))
    with pytest.raises(ShapeError, match="more than 1 value per group"):
        output_shape(layer, (1, 1, 1))


def test_flop_counter_counts_a_grouped_weight_gradient_groups_times_too_high() -> None:
    # torch/utils/flop_counter.py, conv_backward_flop: the weight gradient is counted
    # as one conv of the whole input with the whole output gradient, ignoring groups
    # ("I skip those for the sake of brevity"). Each group's weight gradient only
    # sees its own channels, so the true count is 1/groups of that. The rule table
    # counts the forward's MACs for it (layers.ConvSpec.backward_flops).
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_convcheck.benchmarking import benchmark_flops

    for groups in (1, 4, 16):
        layer = nn.Conv2d(16, 16, 3, groups=groups, bias=False)
        x = torch.zeros(2, 16, 10, 10, requires_grad=True)
        forward = benchmark_flops(layer, (2, 16, 10, 10))
        with FlopCounterMode(display=False) as counter:
            layer(x).sum().backward()
        # forward + grad-input (each the forward's count) + grad-weight × groups
        assert counter.get_total_flops() == forward * (2 + groups)
        assert benchmark_flops(layer, (2, 16, 10, 10), backward=True) == 3 * forward


torch_2_13 = pytest.mark.skipif(
    not torch.__version__.startswith("2.13"), reason="pinned on torch 2.13 (this project's CI)"
)


@torch_2_13
def test_dilation_zero_in_a_batched_transposed_conv_passes_through_onednn() -> None:
    # Docs and ConvUtils.h: dilation > 0. torch 2.13: the batched input of a transposed
    # conv goes to oneDNN, which takes dilation 0 for some kernels; the unbatched input
    # of the same layer is refused. The rule refuses both.
    layer = nn.ConvTranspose2d(1, 1, 1, dilation=0)
    assert tuple(layer(torch.zeros(2, 1, 3, 3)).shape) == (2, 1, 3, 3)
    with pytest.raises(RuntimeError, match="dilation should be greater than zero"):
        layer(torch.zeros(1, 3, 3))
    for shape in ((2, 1, 3, 3), (1, 3, 3)):
        with pytest.raises(ShapeError, match="dilation must be ≥ 1"):
            output_shape(layer, shape)


@torch_2_13
def test_replicate_padding_to_an_empty_output_depends_on_the_rank() -> None:
    # torch 2.13: ReplicationPad1d refuses an output of size 0, ReplicationPad3d makes
    # one (its check needs only one axis ≥ 1). The rule refuses an empty feature map.
    with pytest.raises(RuntimeError, match="too small"):
        nn.ReplicationPad1d((-1, -1))(torch.zeros(1, 1, 2))
    pad3d = nn.ReplicationPad3d((-1, -1, 0, 0, 0, 0))
    assert tuple(pad3d(torch.zeros(1, 1, 2, 2, 2)).shape) == (1, 1, 2, 2, 0)
    with pytest.raises(ShapeError, match="an empty output"):
        output_shape(pad3d, (1, 1, 2, 2, 2))


@torch_2_13
def test_fractional_max_pool_bounds_differ_between_2d_and_3d() -> None:
    # FractionalMaxPool2d.cpp: out + k − 1 ≤ in; FractionalMaxPool3d.cpp: out + k − 1 < in.
    # The rule follows each.
    pool2d = nn.FractionalMaxPool2d(2, output_size=3)
    pool3d = nn.FractionalMaxPool3d(2, output_size=3)
    assert tuple(pool2d(torch.zeros(1, 1, 4, 4)).shape) == (1, 1, 3, 3)
    with pytest.raises(RuntimeError, match="too large"):
        pool3d(torch.zeros(1, 1, 4, 4, 4))
    assert output_shape(pool2d, (1, 1, 4, 4)) == (1, 1, 3, 3)
    with pytest.raises(ShapeError, match="must be < in"):
        output_shape(pool3d, (1, 1, 4, 4, 4))


@torch_2_13
def test_circular_padding_that_crops_and_wraps_fails_on_memory_overlap() -> None:
    # Cropping one side and wrapping more than is left from the other: torch 2.13 fails
    # on an overlapping copy for one channel and succeeds for two. A memory-layout
    # accident, not a shape rule: the rule accepts (the conformance fuzz skips these).
    layer = nn.CircularPad1d((-1, 2))
    with pytest.raises(RuntimeError, match="single memory location"):
        layer(torch.zeros(1, 1, 2))
    assert tuple(layer(torch.zeros(2, 2)).shape) == (2, 3)
    assert output_shape(layer, (1, 1, 2)) == (1, 1, 3)


@torch_2_13
def test_flop_counter_misses_cpu_flash_attention_and_degenerate_products() -> None:
    # torch.utils.flop_counter counts aten.bmm/mm/addmm/baddbmm/convolution: 4-D
    # attention on the CPU runs _scaled_dot_product_flash_attention_for_cpu, which it
    # does not count, and einsum runs a product that sums nothing as a mul (0 FLOPs).
    from torch.utils.flop_counter import FlopCounterMode

    q = torch.zeros(2, 3, 4, 5)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 0
    with FlopCounterMode(display=False) as counter:
        torch.einsum("i,j->ij", torch.zeros(3), torch.zeros(4))
    assert counter.get_total_flops() == 0


def test_meta_decompositions_that_import_dynamo_are_not_run_by_the_trace() -> None:
    # torch 2.13: on meta, biased F.linear (an addmm decomposition), linear
    # interpolation, adaptive average pooling and cat run Python decompositions
    # wrapped in torch._disable_dynamo, whose first call imports torch._dynamo (0.7 s
    # on this project's machines). Their rules stand in for the meta kernel
    # (Rule.trusted_on_meta; recorder.concatenated), so tracing a model made of them
    # imports nothing more.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        import torch
        from torch import nn
        from pytest_convcheck import trace

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.up = nn.Upsample(scale_factor=2, mode="bilinear")
                self.pool = nn.AdaptiveAvgPool2d(4)
                self.head = nn.Linear(32, 10)

            def forward(self, x):
                x = self.pool(self.up(x))
                return self.head(torch.cat([x, x], 1).flatten(1))

        assert trace(Model(), (1, 1, 4, 4)).output_shape == (1, 10)
        print("torch._dynamo" in sys.modules)
        w, b = torch.empty(4, 8, device="meta"), torch.empty(4, device="meta")
        torch.nn.functional.linear(torch.empty(1, 8, device="meta"), w, b)
        print("torch._dynamo" in sys.modules)
        """
    )
    # the last lines check the premise: torch's own meta kernel does import it
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]


def test_meta_convolution_drops_channels_last() -> None:
    # torch 2.13: a CPU convolution keeps a channels-last input (or weight)
    # channels-last; its meta kernel returns row-major strides, and so do torch's meta
    # kernels of reflect/replicate padding. The trace follows the meta kernels: it
    # does not model memory layout (a restriding attempt broke LayerNorm, softmax and
    # 3-D float64 convolutions, which CPU returns row-major). Layout-dependent failures
    # are the `layout` check's: it runs the model for real, channels-last.
    x = torch.zeros(2, 3, 6, 8).contiguous(memory_format=torch.channels_last)
    w = torch.zeros(4, 3, 3, 3)
    cpu = torch.nn.functional.conv2d(x, w)
    meta = torch.nn.functional.conv2d(x.to("meta"), w.to("meta"))
    assert not cpu.is_contiguous() and cpu.is_contiguous(memory_format=torch.channels_last)
    assert meta.is_contiguous()
