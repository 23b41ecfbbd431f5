"""The rule table is the authority: a layer its formula or argument checks reject is
refused by ``output_shape`` and ``trace`` alike, whatever torch's meta kernels say;
bad arguments get a message that names the argument and the rule, never a crash."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from pytest_convcheck import (
    ModelRunError,
    ShapeError,
    input_size_rule,
    output_shape,
    report,
    trace,
)
from pytest_convcheck.layers import concatenated_shape


class Call(nn.Module):
    """``fn(x)`` as a model, for functional calls with fixed weights."""

    def __init__(self, fn: Callable[[torch.Tensor], object], **buffers: torch.Tensor):
        super().__init__()
        self.fn = fn
        for name, value in buffers.items():
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> object:
        return self.fn(self, x)


# (layer factory, input shape, words the message must contain); torch's CPU kernels
# reject each, while its meta kernels returned a shape (or the old rules crashed)
REFUSED: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], str]] = [
    (
        "negative padding",
        lambda: nn.Conv2d(3, 8, 2, stride=4, padding=-1),
        (1, 3, 16, 16),
        "padding must be ≥ 0",
    ),
    ("dilation 0", lambda: nn.Conv2d(1, 1, 3, dilation=0), (1, 1, 16, 16), "dilation must be ≥ 1"),
    ("kernel 0", lambda: nn.Conv2d(1, 1, 0), (1, 1, 16, 16), "kernel_size must be ≥ 1"),
    (
        "output_padding 2 > stride",
        lambda: nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=2),
        (1, 8, 8, 8),
        "output_padding=2 along H must be smaller",
    ),
    (
        "output_padding 1 at stride 1",
        lambda: nn.ConvTranspose2d(8, 3, 3, output_padding=1),
        (1, 8, 8, 8),
        "max(stride, dilation)",
    ),
    (
        "negative output_padding",
        lambda: nn.ConvTranspose2d(8, 3, 3, stride=2, output_padding=-1),
        (1, 8, 8, 8),
        "output_padding must be ≥ 0",
    ),
    ("stride 0", lambda: nn.Conv2d(1, 1, 3, stride=0), (1, 1, 16, 16), "stride must be ≥ 1"),
    ("stride -1", lambda: nn.Conv2d(1, 1, 3, stride=-1), (1, 1, 16, 16), "stride must be ≥ 1"),
    (
        "conv3d dilation [-1]",
        lambda: nn.Conv3d(1, 1, 3, dilation=[-1]),
        (1, 1, 8, 8, 8),
        "dilation must be ≥ 1",
    ),
    (
        "conv3d padding [-1]",
        lambda: nn.Conv3d(1, 1, 3, padding=[-1]),
        (1, 1, 8, 8, 8),
        "padding must be ≥ 0",
    ),
    (
        "transposed padding='same'",
        lambda: nn.ConvTranspose2d(2, 2, 3, padding="same"),
        (1, 2, 8, 8),
        "padding='same' is not supported for transposed convolutions",
    ),
    ("adaptive pool of an empty axis", lambda: nn.AdaptiveAvgPool2d(2), (1, 1, 0, 4), "zero-size"),
    (
        "adaptive output -1",
        lambda: nn.AdaptiveAvgPool2d((-1, 2)),
        (1, 1, 4, 4),
        "output_size must be ≥ 0",
    ),
    ("PixelShuffle(0)", lambda: nn.PixelShuffle(0), (1, 4, 4, 4), "upscale_factor must be ≥ 1"),
    ("Unfold stride 0", lambda: nn.Unfold(2, stride=0), (1, 1, 4, 4), "stride must be ≥ 1"),
    ("MaxPool stride 0", lambda: nn.MaxPool2d(2, stride=0), (1, 1, 4, 4), "stride"),
    (
        "bilinear on 3-D",
        lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
        (1, 1, 4),
        "needs a 4-D input",
    ),
    ("circular pad on 1-D", lambda: nn.CircularPad2d(1), (4,), "expected a 3-D or 4-D input"),
    (
        "InstanceNorm of one position",
        lambda: nn.InstanceNorm2d(4),
        (2, 4, 1, 1),
        "more than 1 spatial element",
    ),
    (
        "BatchNorm eps 0 in training",
        lambda: nn.BatchNorm2d(4, eps=0.0),
        (2, 4, 3, 3),
        "eps=0.0 must be positive",
    ),
    ("GLU of an odd dim", lambda: nn.GLU(1), (2, 5, 4), "needs an even size"),
    ("Softmax dim 3 of a 3-D input", lambda: nn.Softmax(dim=3), (2, 5, 4), "dim 3 is out of range"),
    (
        "conv2d out_channels not divisible by groups",
        lambda: Call(lambda m, x: F.conv2d(x, m.w, groups=2), w=torch.zeros(3, 2, 3, 3)),
        (1, 4, 8, 8),
        "out_channels=3 is not divisible by groups=2",
    ),
    (
        "conv2d with a 3-D weight",
        lambda: Call(lambda m, x: F.conv2d(x, m.w), w=torch.zeros(3, 2, 3)),
        (1, 2, 8, 8),
        "needs a 4-D weight",
    ),
    (
        "conv2d with groups 0",
        lambda: Call(lambda m, x: F.conv2d(x, m.w, groups=0), w=torch.zeros(3, 2, 3, 3)),
        (1, 2, 8, 8),
        "groups must be ≥ 1",
    ),
    (
        "conv2d padding='bogus'",
        lambda: Call(lambda m, x: F.conv2d(x, m.w, padding="bogus"), w=torch.zeros(3, 2, 3, 3)),
        (1, 2, 8, 8),
        "padding='bogus' is not supported",
    ),
    (
        "conv2d padding='same' with stride 2",
        lambda: Call(
            lambda m, x: F.conv2d(x, m.w, stride=2, padding="same"), w=torch.zeros(3, 2, 3, 3)
        ),
        (1, 2, 8, 8),
        "not supported for strided convolutions",
    ),
    (
        "conv2d bias of the wrong size",
        lambda: Call(
            lambda m, x: F.conv2d(x, m.w, m.b), w=torch.zeros(3, 2, 3, 3), b=torch.zeros(4)
        ),
        (1, 2, 8, 8),
        "bias of shape (4,) does not fit out_channels=3",
    ),
    (
        "dropout p 1.5",
        lambda: Call(lambda m, x: F.dropout(x, 1.5)),
        (2, 3),
        "dropout probability has to be between 0 and 1",
    ),
    (
        "hardtanh min > max",
        lambda: Call(lambda m, x: F.hardtanh(x, 0.5, -0.5)),
        (2, 3),
        "min_val=0.5 is greater than max_val=-0.5",
    ),
    (
        "gelu approximate='asdf'",
        lambda: Call(lambda m, x: F.gelu(x, approximate="asdf")),
        (2, 3),
        "approximate='asdf'",
    ),
    (
        "matmul with mismatched inner sizes",
        lambda: Call(lambda m, x: x @ m.w, w=torch.zeros(5, 2)),
        (2, 4),
        "inner sizes 4 and 5",
    ),
    (
        "bmm of 2-D operands",
        lambda: Call(lambda m, x: torch.bmm(x, m.w), w=torch.zeros(4, 2)),
        (2, 4),
        "expects two 3-D batches of matrices",
    ),
    (
        "einsum with a size clash",
        lambda: Call(lambda m, x: torch.einsum("ij,jk->ik", x, m.w), w=torch.zeros(5, 2)),
        (2, 4),
        "label 'j' has size 5",
    ),
    (
        "attention with mismatched widths",
        lambda: Call(
            lambda m, x: F.scaled_dot_product_attention(x, m.k, m.k), k=torch.zeros(1, 6, 5)
        ),
        (1, 3, 4),
        "must agree on E",
    ),
    (
        "Tensor.unfold beyond the dim",
        lambda: Call(lambda m, x: x.unfold(2, 9, 1)),
        (1, 2, 8),
        "window size 9 exceeds dim 2 of size 8",
    ),
    (
        "fractional pool kernel too large",
        lambda: nn.FractionalMaxPool2d(5, output_size=3),
        (1, 1, 6, 6),
        "too large",
    ),
    (
        "max_unpool with an output_size out of reach",
        lambda: Call(
            lambda m, x: F.max_unpool2d(
                *F.max_pool2d(x, 2, return_indices=True), 2, output_size=(11, 11)
            )
        ),
        (1, 1, 8, 8),
        "out of reach",
    ),
]


@pytest.mark.parametrize(
    ("factory", "shape", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_torch_refuses_and_so_do_output_shape_and_trace(
    factory: Callable[[], nn.Module], shape: tuple[int, ...], words: str
) -> None:
    layer = factory()
    with pytest.raises(Exception):  # noqa: B017 - any CPU error: torch refuses
        layer(torch.zeros(shape))
    with pytest.raises(ShapeError, match=None) as traced:
        trace(layer, shape, dtype=torch.float32)
    assert words in str(traced.value)
    assert "\n  fix: " in str(traced.value), "a refusal says what to change"
    if not isinstance(layer, Call):
        with pytest.raises(ShapeError) as predicted:
            output_shape(layer, shape)
        assert words in str(predicted.value)


def test_max_pool_with_and_without_indices_are_two_layers() -> None:
    x = (1, 1, 8, 8)
    assert trace(nn.MaxPool2d(2), x).output_shape == (1, 1, 4, 4)
    assert trace(nn.MaxPool2d(2, return_indices=True), x).output_shape == (
        (1, 1, 4, 4),
        (1, 1, 4, 4),
    )
    assert trace(nn.AdaptiveMaxPool2d(3), x).output_shape == (1, 1, 3, 3)
    assert trace(nn.AdaptiveMaxPool2d(3, return_indices=True), x).output_shape == (
        (1, 1, 3, 3),
        (1, 1, 3, 3),
    )


class SegNetStage(nn.Module):
    """SegNet's encoder–decoder pair (Badrinarayanan et al., arXiv 1511.00561): a plain
    pool beside a pool with indices, and the indices feeding MaxUnpool2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.plain = nn.MaxPool2d(2)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.out = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        context = nn.functional.interpolate(self.plain(y), scale_factor=2.0)
        pooled, indices = self.pool(y)
        restored = self.unpool(pooled, indices, output_size=y.shape)
        return self.out(torch.cat([restored, context], 1))


def test_segnet_unpooling_traces_to_the_cpu_shape() -> None:
    model = SegNetStage()
    for shape in ((2, 3, 16, 16), (1, 3, 10, 14)):
        assert trace(model, shape).output_shape == tuple(model(torch.randn(shape)).shape)
    # 15 rows pool to 7: the unpooling restores 15 (within 2·7 ± 2), the nearest
    # interpolation gives 14, and the concatenation fails, on the CPU as in the trace
    with pytest.raises(ShapeError, match=r"cat in 'forward' rejects its input"):
        trace(SegNetStage(), (2, 3, 15, 16))


def test_no_private_exception_leaves_trace() -> None:
    # the meta run fails, the CPU rerun fails too: the caller sees an exported error
    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # needs values: not on meta
                return x
            return F.interpolate(x, scale_factor=2, mode="bilinear")

    with pytest.raises((ShapeError, ModelRunError)) as error:
        trace(DataDependent(), (1, 1, 4))
    assert type(error.value).__module__ == "pytest_convcheck.errors" or isinstance(
        error.value, ModelRunError
    )


def test_same_input_same_verdict_from_output_shape_and_trace() -> None:
    layer = nn.CircularPad2d(1)
    with pytest.raises(ShapeError) as a:
        output_shape(layer, (4,))
    with pytest.raises(ShapeError) as b:
        trace(layer, (4,))
    assert str(a.value) == str(b.value)


def test_a_user_subclass_of_a_torch_layer_keeps_its_rule() -> None:
    class MyPool(nn.MaxPool2d):
        pass

    class MyPad(nn.ReflectionPad2d):
        pass

    assert output_shape(MyPool(2), (1, 1, 8, 8)) == (1, 1, 4, 4)
    assert output_shape(MyPad(1), (1, 1, 8, 8)) == (1, 1, 10, 10)


def test_shapes_check_fails_for_layers_torch_refuses(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        mymodels=textwrap.dedent(
            """
            from torch import nn

            def negative_padding():
                return nn.Sequential(nn.Conv2d(3, 8, 2, stride=4, padding=-1))

            def zero_dilation():
                return nn.Sequential(nn.Conv2d(3, 8, 3, dilation=0))
            """
        )
    )
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(
            """
            [tool.convcheck.models.negative_padding]
            factory = "mymodels:negative_padding"
            input = [2, 3, 16, 16]
            checks = ["shapes"]

            [tool.convcheck.models.zero_dilation]
            factory = "mymodels:zero_dilation"
            input = [2, 3, 16, 16]
            checks = ["shapes"]
            """
        ),
    )
    result = pytester.runpytest_inprocess("--convcheck", "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*padding must be ≥ 0 along every axis*", "*dilation must be ≥ 1 along every axis*"]
    )
    assert "INTERNALERROR" not in result.stdout.str()


def test_a_dtype_clash_is_the_models_not_a_rule_gap() -> None:
    class FixedKernel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = torch.ones(2, 1, 3, 3)  # not a buffer: .double() leaves it

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.kernel)

    model = FixedKernel()
    with pytest.raises(RuntimeError, match="expected scalar type Double but found Float"):
        model(torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ShapeError) as error:  # torch's meta kernel does not check dtypes
        trace(model, (1, 1, 8, 8), dtype=torch.float64)
    text = str(error.value)
    assert "the input is float64 but the weight is float32" in text
    assert "fix: register it with nn.Parameter or register_buffer" in text
    assert "please report" not in text


def test_lazy_layers_built_under_float64_trace_in_float64() -> None:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.LazyLinear(2))
    finally:
        torch.set_default_dtype(default)
    assert trace(model, (2, 3, 8, 8)).output_shape == (2, 4, 6, 2)
    assert report(model, (2, 3, 8, 8)).output_shape == (2, 4, 6, 2)


_MODE_RANKS = {
    "nearest": (3, 4, 5),
    "nearest-exact": (3, 4, 5),
    "linear": (3,),
    "bilinear": (4,),
    "bicubic": (4,),
    "trilinear": (5,),
    "area": (3, 4, 5),
}
_DTYPES = (
    torch.uint8,
    torch.int8,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.float16,
    torch.float64,
)


@pytest.mark.parametrize("mode", sorted(_MODE_RANKS))
def test_interpolation_takes_the_dtypes_torch_takes(mode: str) -> None:
    # interpolation is not executed on meta (its meta kernel costs a torch._dynamo
    # import): the rule alone must refuse every input dtype torch's CPU kernel refuses
    for rank in _MODE_RANKS[mode]:
        for dtype in _DTYPES:
            x = torch.zeros((1, 1) + (4,) * (rank - 2)).to(dtype)
            try:
                F.interpolate(x, scale_factor=2, mode=mode)
                torch_refuses = False
            except (RuntimeError, NotImplementedError):
                torch_refuses = True
            model = Call(
                lambda _, t, dtype=dtype: F.interpolate(t.to(dtype), scale_factor=2, mode=mode)
            )
            if torch_refuses:
                with pytest.raises(ShapeError, match=f"mode='{mode}' does not take"):
                    trace(model, tuple(x.shape))
            else:
                assert trace(model, tuple(x.shape)).output_shape == (1, 1) + (8,) * (rank - 2)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pooling_takes_the_dtypes_torch_takes(kind: str, dims: int) -> None:
    # adaptive average pooling is not executed on meta, whose kernels take any dtype
    fn = getattr(F, f"adaptive_{kind}_pool{dims}d")
    for dtype in (*_DTYPES, torch.complex64):
        for size in (1, 2):
            x = torch.zeros((1, 1) + (4,) * dims).to(dtype)
            try:
                fn(x, size)
                torch_refuses = False
            except (RuntimeError, NotImplementedError):
                torch_refuses = True
            model = Call(lambda _, t, dtype=dtype, size=size: fn(t.to(dtype), size))
            if torch_refuses:
                with pytest.raises(ShapeError, match="adaptive pooling does not take"):
                    trace(model, tuple(x.shape))
            else:
                assert trace(model, tuple(x.shape)).output_shape == (1, 1) + (size,) * dims


@st.composite
def _concatenations(draw: st.DrawFn) -> tuple[list[tuple[int, ...]], int]:
    rank = draw(st.integers(1, 4))
    base = draw(st.lists(st.integers(0, 4), min_size=rank, max_size=rank))
    dim = draw(st.integers(-rank - 1, rank))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        if draw(st.booleans()) and rank:
            shape[draw(st.integers(0, rank - 1))] = draw(st.integers(0, 4))
        if draw(st.integers(0, 9)) == 0:
            shape = shape[:-1] or [2, 2]
        shapes.append(tuple(shape))
    return shapes, dim


@given(_concatenations())
def test_concatenated_shape_is_torch_cats(case: tuple[list[tuple[int, ...]], int]) -> None:
    # cat is not executed on meta, nor replayed there: concatenated_shape stands in
    shapes, dim = case
    assume(all(s != (0,) for s in shapes))  # torch's legacy skip, left to torch
    try:
        expected: tuple[int, ...] | None = tuple(
            torch.cat([torch.zeros(s) for s in shapes], dim).shape
        )
    except (RuntimeError, IndexError):
        expected = None
    try:
        got: tuple[int, ...] | None = concatenated_shape("cat", shapes, dim)
    except ShapeError:
        got = None
    assert got == expected
    model = Call(
        lambda _, x, shapes=shapes, dim=dim: torch.cat([x.new_zeros(s) for s in shapes], dim)
    )
    if expected is None:
        with pytest.raises(ShapeError):
            trace(model, (1,))
    else:
        assert trace(model, (1,)).output_shape == expected


_CL = torch.channels_last


def _fn(fn: Callable[..., object], **params: torch.Tensor) -> nn.Module:
    model = Call(fn)
    for name, value in params.items():
        model.register_parameter(name, nn.Parameter(value, requires_grad=False))
    return model


# Calls torch's CPU kernels or argument parser refuse, which the rules of the ops not
# executed on meta (interpolation, linear, adaptive average pooling, cat) must not
# pass: each was found passing while those rules first stood in for the meta kernel.
_REFUSED_BY_TORCH = {
    "linear, 1-D weight with a bias": (
        _fn(lambda m, x: F.linear(x, m.w, m.b), w=torch.zeros(3), b=torch.zeros(1)),
        (2, 3),
    ),
    "linear, bias of another dtype": (
        _fn(lambda m, x: F.linear(x, m.w, m.b), w=torch.zeros(4, 3), b=torch.zeros(4).double()),
        (2, 3),
    ),
    "linear, bool input": (
        _fn(lambda m, x: F.linear(x.bool(), m.w), w=torch.zeros(4, 3).bool()),
        (2, 3),
    ),
    "interpolate, an empty channel dim": (
        Call(lambda _, x: F.interpolate(x[:, :0], scale_factor=2)),
        (2, 3, 4, 4),
    ),
    "interpolate, recompute_scale_factor with a size": (
        nn.Upsample(size=8, recompute_scale_factor=True),
        (2, 3, 4, 4),
    ),
    "interpolate, a float size": (
        Call(lambda _, x: F.interpolate(x, size=(7.0, 7.0))),
        (2, 3, 4, 4),
    ),
    "interpolate, a tensor size": (
        Call(lambda _, x: F.interpolate(x, size=torch.tensor([5, 5]))),
        (2, 3, 4, 4),
    ),
    "interpolate, a tensor scale": (
        Call(lambda _, x: F.interpolate(x, scale_factor=torch.tensor(2.0))),
        (2, 3, 4, 4),
    ),
    "interpolate, align_corners not a bool": (
        Call(lambda _, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners="yes")),
        (2, 3, 4, 4),
    ),
    "interpolate, float8": (
        Call(lambda _, x: F.interpolate(x.to(torch.float8_e4m3fn), scale_factor=2)),
        (2, 3, 4, 4),
    ),
    "adaptive_avg_pool2d, output_size None": (
        Call(lambda _, x: F.adaptive_avg_pool2d(x, None)),
        (2, 3, 5, 5),
    ),
    "adaptive_avg_pool2d, a 1-tuple for two axes": (
        Call(lambda _, x: F.adaptive_avg_pool2d(x, (2,))),
        (2, 3, 5, 5),
    ),
    "adaptive_avg_pool2d, a bool size": (
        Call(lambda _, x: F.adaptive_avg_pool2d(x, True)),
        (2, 3, 5, 5),
    ),
    "adaptive_avg_pool2d, complex with a kept axis": (
        Call(lambda _, x: F.adaptive_avg_pool2d(x.cfloat(), (None, 1))),
        (2, 3, 5, 5),
    ),
    "interpolate of a 1×1 channels-last image, then view": (
        Call(lambda _, x: F.interpolate(x.to(memory_format=_CL), size=(2, 2)).view(2, -1)),
        (2, 3, 1, 1),
    ),
    "adaptive_avg_pool2d of a 1×1 channels-last image, then view": (
        Call(lambda _, x: F.adaptive_avg_pool2d(x.to(memory_format=_CL), 2).view(2, -1)),
        (2, 3, 1, 1),
    ),
    "a sum of channels-last tensors, then view": (
        Call(lambda _, x: (x.contiguous(memory_format=_CL) + 1).view(2, -1)),
        (2, 3, 6, 8),
    ),
    "cat of one-channel channels-last images, then view": (
        Call(lambda _, x: torch.cat([x.to(memory_format=_CL)] * 2, 1).view(2, -1)),
        (2, 1, 3, 3),
    ),
}


@pytest.mark.parametrize("case", sorted(_REFUSED_BY_TORCH))
def test_calls_torch_refuses_are_refused_by_the_trace(case: str) -> None:
    model, shape = _REFUSED_BY_TORCH[case]
    with pytest.raises((RuntimeError, TypeError, ValueError, NotImplementedError)):
        model(torch.zeros(shape))
    for _ in range(2):  # the second trace reuses verified outcomes: it must refuse too
        with pytest.raises((ShapeError, ModelRunError)):
            trace(model, shape)


def test_channels_last_outputs_are_not_replayed_as_row_major() -> None:
    # a verified call is materialised row-major: calls on other strides are not kept
    model = Call(lambda _, x: F.interpolate(x.to(memory_format=_CL), scale_factor=2).view(2, -1))
    for _ in range(2):
        with pytest.raises(ShapeError, match="view"):
            trace(model, (2, 3, 4, 4))


def test_a_verified_call_is_not_reused_for_arguments_of_another_type() -> None:
    # 8 == 8.0 == True-ish in Python, not to torch's argument parser; a verified
    # outcome is kept per argument type, and never for a size given as a tensor
    ints = Call(lambda _, x: F.interpolate(x, size=(8, 8)))
    floats = Call(lambda _, x: F.interpolate(x, size=(8.0, 8.0)))
    assert trace(ints, (1, 3, 4, 4)).output_shape == (1, 3, 8, 8)
    with pytest.raises(ShapeError):
        trace(floats, (1, 3, 4, 4))
    eight = Call(lambda _, x: F.interpolate(x, size=(torch.tensor(8), 9)))
    five = Call(lambda _, x: F.interpolate(x, size=(torch.tensor(5), 9)))
    assert trace(eight, (1, 3, 4, 4)).output_shape == (1, 3, 8, 9)
    assert trace(five, (1, 3, 4, 4)).output_shape == (1, 3, 5, 9)


def test_channels_last_models_trace_as_they_run() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(192, 2))
    model = model.to(memory_format=_CL)
    assert tuple(model(torch.zeros(2, 3, 6, 8)).shape) == trace(model, (2, 3, 6, 8)).output_shape


def test_numpy_sizes_are_read_as_torch_reads_them() -> None:
    import numpy as np

    for model, shape, expected in (
        (nn.AdaptiveAvgPool1d(np.int32(2)), (1, 3, 5), (1, 3, 2)),
        (nn.Upsample(size=np.int64(8)), (1, 3, 5, 7), (1, 3, 8, 8)),
        (
            Call(lambda _, x: F.interpolate(x[:0], scale_factor=np.float64(2))),
            (2, 3, 4, 4),
            (0, 3, 8, 8),
        ),
    ):
        assert tuple(model(torch.zeros(shape)).shape) == expected
        assert trace(model, shape).output_shape == expected


_INDEXED = {
    "list": lambda _, x: x[..., [0, 2, 9]],
    "nested list": lambda _, x: x[:, :, [[0, 1], [2, 7]]],
    "negative": lambda _, x: x[..., [-6]],
    "tensor": lambda _, x: x[..., torch.tensor([0, 5])],
    "index_select": lambda _, x: x.index_select(-1, torch.arange(6)),
    "torch.index_select": lambda _, x: torch.index_select(x, 2, torch.tensor([7])),
}
_IN_RANGE = {
    "after None": lambda _, x: x[None, ..., [4, -5]],
    "channels": lambda _, x: x[:, [2, 1, 0]],
    "bool mask": lambda _, x: x[..., torch.ones(5, dtype=torch.bool)],
    "int then list": lambda _, x: x[0, :, [1, 4]],
}


@pytest.mark.parametrize("case", sorted(_INDEXED))
def test_an_index_out_of_range_is_refused_although_meta_does_not_check(case: str) -> None:
    """Meta tensors have no data, so torch's meta kernels check no index bounds: the
    trace checks them, names the index and the dim, and the rule replays it."""
    model = Call(_INDEXED[case])
    with pytest.raises(IndexError):
        model(torch.zeros(1, 3, 5))
    with pytest.raises(ShapeError, match=r"index -?\d+ is out of range for dim 2 of size 5"):
        trace(model, (1, 3, 5))
    rule = input_size_rule(model, (1, 3, 12))
    with torch.no_grad():
        brute = [n for n in range(1, 30) if _runs(model, (1, 3, n))]
    assert rule.valid(range(1, 30)) == brute


@pytest.mark.parametrize("case", sorted(_IN_RANGE))
def test_indices_in_range_trace_as_they_run(case: str) -> None:
    model = Call(_IN_RANGE[case])
    assert trace(model, (1, 3, 5)).output_shape == tuple(model(torch.zeros(1, 3, 5)).shape)


def _runs(model: nn.Module, shape: tuple[int, ...]) -> bool:
    try:
        model(torch.zeros(shape))
    except (IndexError, RuntimeError):
        return False
    return True
