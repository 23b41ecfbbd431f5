"""The conformance suite: the installed torch, on a chosen device, against the
semantics this plugin relies on.

``pytest --convcheck-conformance [--convcheck-device cuda]`` runs one test item
per entry of :data:`CONFORMANCE`. Each entry draws property-based cases from
:mod:`pytest_convcheck.strategies` (``--convcheck-conformance-examples`` per item,
default 100) and checks one fact:

* ``shape_rules[FAMILY-Nd]``: the rule table's output shape equals torch's, and
  :class:`ShapeError` is raised exactly when torch raises (every family of
  :data:`~pytest_convcheck.strategies.FAMILIES`);
* ``reference[conv-Nd]`` / ``reference[conv_transpose-Nd]``: torch's conv and
  transposed conv (groups, dilation, every ``padding_mode``, ``output_padding``)
  equal the float64 index-arithmetic reference of :mod:`pytest_convcheck.reference`;
* ``adjoint[Nd]``: the transposed conv is the adjoint of the conv,
  ⟨Ax, y⟩ = ⟨x, Aᵀy⟩, and equals the conv's input gradient;
* ``dilation[Nd]``: a dilated kernel equals the zero-inserted kernel;
* ``groups[Nd]``: a grouped conv equals separate convs on the channel slices;
* ``cross_correlation``: the kernel is not flipped;
* ``pooling[max|avg]`` and ``interpolation``: torch equals the reference;
* ``transpose_is_not_inverse``: Aᵀ(Ax) ≠ x for a 1→10 channel, 5×5 MNIST encoder conv.

Every check runs the op under test on the device in float64 and the reference on
the CPU, so a failure means the backend disagrees with the documented semantics.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_convcheck.errors import ShapeError
from pytest_convcheck.layers import output_shape, spec_for_module
from pytest_convcheck.reference import (
    assert_conv_matches_reference,
    assert_transpose_is_adjoint,
    interpolate_reference,
    pool_reference,
    transpose_is_not_inverse,
)
from pytest_convcheck.strategies import FAMILIES, LayerCase, layer_cases
from pytest_convcheck.tracing import ModelRunError, trace

__all__ = [
    "CONFORMANCE",
    "FAMILY_DIMS",
    "check_rule_against_torch",
    "run_conformance",
    "torch_outcome",
]

_TWO_D_ONLY = ("pixel_shuffle", "unfold", "fold", "linear", "tensor_unfold")

FAMILY_DIMS: list[tuple[str, int]] = [
    (family, dims)
    for family in FAMILIES
    for dims in (
        (2,) if family in _TWO_D_ONLY else (2, 3) if family == "fractional_pool" else (1, 2, 3)
    )
    if not (family == "lp_pool" and dims == 3 and not hasattr(nn, "LPPool3d"))
]
"""Every (family, spatial dims) the shape rules are checked in."""

_ERRORS = (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError)


def torch_outcome(case: LayerCase, device: str = "cpu") -> tuple[int, ...] | Exception:
    """What torch does with the case on ``device``: the output shape, or the exception."""
    try:
        layer = case.layer if device == "cpu" else copy.deepcopy(case.layer).to(device)
        x = torch.zeros(case.input_shape, device=device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = layer(x, **dict(case.call_kwargs))
    except _ERRORS as error:
        return error
    if isinstance(out, tuple):
        out = out[0]
    return tuple(out.shape)


def check_rule_against_torch(case: LayerCase, device: str = "cpu") -> None:
    """``output_shape`` (for a layer with a rule) and, where ``case.traced``, ``trace``
    agree with torch on ``device``: the same shape, or a :class:`ShapeError` exactly
    when torch raises (but where torch disagrees with itself: see
    :func:`_torch_inconsistency`)."""
    expected = torch_outcome(case, device)
    # torch's circular padding that crops one side and wraps more than is left on the
    # other fails on an overlapping copy, depending on the memory layout: not a shape rule
    assume(not (isinstance(expected, Exception) and "single memory location" in str(expected)))
    verdicts: list[tuple[str, Any]] = []
    if spec_for_module(case.layer) is not None:
        try:
            got: Any = output_shape(case.layer, case.input_shape, **dict(case.call_kwargs))
        except ShapeError as error:
            got = error
        verdicts.append(("the rule", got))
    if case.traced or not verdicts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = trace(case.layer, case.input_shape, dtype=torch.float32).outputs[0][1]
        except (ShapeError, ModelRunError) as error:
            got = error
        verdicts.append(("the trace", got))
    for who, got in verdicts:
        if isinstance(expected, Exception):
            assert isinstance(got, (ShapeError, ModelRunError)), (
                f"torch ({device}) rejects {case} with {type(expected).__name__}: {expected}\n"
                f"but {who} predicts {got}"
            )
        elif isinstance(got, ShapeError) and _torch_inconsistency(case, expected, got):
            pass
        else:
            assert not isinstance(got, Exception), (
                f"torch ({device}) accepts {case} giving {expected}, but {who} raises: {got}"
            )
            assert got == expected, f"{case}: {who} gives {got} != torch ({device}) {expected}"


def _torch_inconsistency(case: LayerCase, expected: tuple[int, ...], got: ShapeError) -> bool:
    """Where torch's CPU kernels disagree with each other, the rule keeps the
    documented verdict (``tests/test_torch_quirks.py`` pins each case):

    * an empty feature map: a transposed conv's backends, replicate padding in 1-D
      against 3-D — the rule always refuses it, as no model wants one;
    * dilation 0 in a transposed conv: the batched oneDNN path accepts some kernels,
      the unbatched input is refused — the rule refuses both.
    """
    if 0 in expected[1:] and "empty" in str(got):
        return True
    layer: Any = case.layer
    return (
        getattr(layer, "transposed", False)
        and min(layer.dilation) == 0
        and "dilation must be ≥ 1" in str(got)
    )


def _runs_in_float64(case: LayerCase) -> bool:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layer = copy.deepcopy(case.layer).double()
            layer(torch.zeros(case.input_shape, dtype=torch.float64), **dict(case.call_kwargs))
    except _ERRORS:
        return False
    return True


def _conv_case(case: LayerCase, dims: int) -> bool:
    return (
        not case.call_kwargs
        and not isinstance(getattr(case.layer, "padding", 0), str)
        and len(case.input_shape) == dims + 2
        and _runs_in_float64(case)
    )


# --------------------------------------------------------------------------- checks
# Each check takes (device, data) and draws what it needs from ``data``.

Check = Callable[[str, st.DataObject], None]


def _shape_rules(family: str, dims: int) -> Check:
    def check(device: str, data: st.DataObject) -> None:
        check_rule_against_torch(data.draw(layer_cases(family, dims), label="case"), device)

    return check


def _reference(family: str, dims: int) -> Check:
    def check(device: str, data: st.DataObject) -> None:
        case = data.draw(layer_cases(family, dims), label="case")
        assume(_conv_case(case, dims))
        assert_conv_matches_reference(case.layer, case.input_shape, device=device)

    return check


def _adjoint(dims: int) -> Check:
    def check(device: str, data: st.DataObject) -> None:
        case = data.draw(layer_cases("conv", dims), label="case")
        assume(_conv_case(case, dims) and getattr(case.layer, "padding_mode", "") == "zeros")
        assert isinstance(case.layer, nn.modules.conv._ConvNd)
        assert_transpose_is_adjoint(case.layer, case.input_shape, device=device)

    return check


_CONV_F = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _dilation(dims: int) -> Check:
    def check(device: str, data: st.DataObject) -> None:
        kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(dims))
        dilation = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
        size = tuple(
            d * (k - 1) + 1 + data.draw(st.integers(0, 4))
            for k, d in zip(kernel, dilation, strict=True)
        )
        seed = data.draw(st.integers(0, 2**16))
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((1, 2, *size), generator=gen, dtype=torch.float64)
        w = torch.randn((3, 2, *kernel), generator=gen, dtype=torch.float64)
        inserted = torch.zeros(
            (3, 2, *(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))),
            dtype=torch.float64,
        )
        inserted[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
        conv = _CONV_F[dims]
        got = conv(x.to(device), w.to(device), dilation=dilation).cpu()
        expected = conv(x, inserted)
        error = float((got - expected).abs().max())
        assert error < 1e-9, (
            f"{device}: conv with kernel {kernel}, dilation {dilation} differs from the "
            f"zero-inserted kernel by {error:.3g}"
        )

    return check


def _groups(dims: int) -> Check:
    def check(device: str, data: st.DataObject) -> None:
        groups = data.draw(st.integers(1, 4))
        cin, cout = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
        kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
        size = tuple(k + data.draw(st.integers(0, 4)) for k in kernel)
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
        x = torch.randn((2, groups * cin, *size), generator=gen, dtype=torch.float64)
        w = torch.randn((groups * cout, cin, *kernel), generator=gen, dtype=torch.float64)
        conv = _CONV_F[dims]
        got = conv(x.to(device), w.to(device), groups=groups).cpu()
        separate = torch.cat(
            [
                conv(x[:, g * cin : (g + 1) * cin], w[g * cout : (g + 1) * cout])
                for g in range(groups)
            ],
            dim=1,
        )
        error = float((got - separate).abs().max())
        assert error < 1e-9, (
            f"{device}: groups={groups} differs from {groups} separate convs by {error:.3g}"
        )

    return check


def _cross_correlation(device: str, data: st.DataObject) -> None:
    x = torch.arange(25.0, dtype=torch.float64).reshape(1, 1, 5, 5)
    kernel = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    got = float(F.conv2d(x.to(device), kernel.to(device))[0, 0, 0, 0])
    assert got == 0 * 1 + 1 * 2 + 5 * 3 + 6 * 4, (
        f"{device}: conv2d of [[0,1],[5,6]] with [[1,2],[3,4]] gives {got}, expected 41 "
        f"(cross-correlation; a flipped kernel gives {0 * 4 + 1 * 3 + 5 * 2 + 6 * 1})"
    )


def _pooling(mode: str) -> Check:
    def check(device: str, data: st.DataObject) -> None:
        dims = data.draw(st.integers(1, 3))
        kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(dims))
        stride = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
        padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
        size = tuple(k + data.draw(st.integers(0, 5)) for k in kernel)
        include = data.draw(st.booleans())
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
        x = torch.randn((2, 2, *size), generator=gen, dtype=torch.float64)
        op: Any = getattr(F, f"{mode}_pool{dims}d")
        options = {"count_include_pad": include} if mode == "avg" else {}
        got = op(x.to(device), kernel, stride, padding, **options).cpu()
        expected = pool_reference(x, kernel, stride, padding, mode, include)
        assert got.shape == expected.shape and float((got - expected).abs().max()) < 1e-9, (
            f"{device}: {mode}_pool{dims}d(kernel={kernel}, stride={stride}, "
            f"padding={padding}) differs from the reference"
        )

    return check


def _interpolation(device: str, data: st.DataObject) -> None:
    dims = data.draw(st.integers(1, 3))
    mode = data.draw(st.sampled_from(["nearest", "linear"]))
    align = data.draw(st.booleans()) if mode == "linear" else False
    size_in = tuple(data.draw(st.integers(1, 8)) for _ in range(dims))
    size_out = tuple(data.draw(st.integers(1, 12)) for _ in range(dims))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    x = torch.randn((1, 2, *size_in), generator=gen, dtype=torch.float64)
    torch_mode = mode if mode == "nearest" else ("linear", "bilinear", "trilinear")[dims - 1]
    options = {} if mode == "nearest" else {"align_corners": align}
    got = F.interpolate(x.to(device), size=size_out, mode=torch_mode, **options).cpu()
    expected = interpolate_reference(x, size_out, mode, align)
    error = float((got - expected).abs().max())
    assert error < 1e-9, (
        f"{device}: interpolate {size_in} → {size_out} mode={torch_mode} "
        f"align_corners={align} differs from the reference by {error:.3g}"
    )


def _not_inverse(device: str, data: st.DataObject) -> None:
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    conv = nn.Conv2d(1, 10, 5)  # an MNIST autoencoder's encoder conv
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.2)
    gap = transpose_is_not_inverse(conv, (1, 1, 28, 28))
    assert gap.relative_error > 0.1, str(gap)


CONFORMANCE: dict[str, Check] = {
    **{f"shape_rules[{f}-{d}d]": _shape_rules(f, d) for f, d in FAMILY_DIMS},
    **{
        f"reference[{f}-{d}d]": _reference(f, d)
        for f in ("conv", "conv_transpose")
        for d in (1, 2, 3)
    },
    **{f"adjoint[{d}d]": _adjoint(d) for d in (1, 2, 3)},
    **{f"dilation[{d}d]": _dilation(d) for d in (1, 2, 3)},
    **{f"groups[{d}d]": _groups(d) for d in (1, 2, 3)},
    "cross_correlation": _cross_correlation,
    "pooling[max]": _pooling("max"),
    "pooling[avg]": _pooling("avg"),
    "interpolation": _interpolation,
    "transpose_is_not_inverse": _not_inverse,
}
"""The conformance checks by item name."""

_SINGLE = {"cross_correlation"}


def run_conformance(name: str, device: str = "cpu", examples: int = 100) -> None:
    """Run one conformance check with ``examples`` hypothesis examples on ``device``
    (raises ``AssertionError`` with the falsifying case)."""
    try:
        check = CONFORMANCE[name]
    except KeyError:
        raise ValueError(
            f"unknown conformance check {name!r}; known: {', '.join(CONFORMANCE)}"
        ) from None
    runner = settings(
        max_examples=1 if name in _SINGLE else examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )(given(data=st.data())(lambda data: check(device, data)))
    runner()
