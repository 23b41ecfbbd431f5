"""The plugin's analyses on the zoo of hand-built architectures (``tests/zoo.py``).

For every model of the zoo:

* the analytic field contains the real model's gradient support (random weights
  and inputs, float64), at corners, the centre and a few random output positions;
* the measured field equals the analytic one, for both readings of
  normalisation statistics (and is never empty);
* the trace's output shapes are those of the real CPU forward;
* the statistics the field names are those of norms over spatial axes, and a
  model whose data path is global has a global field;

and ``pytest --convcheck`` on all of them (one subprocess) fails none.

The gradient support is computed here, independently of the plugin
(:func:`gradient_support`, itself checked on layers with known support).
"""

from __future__ import annotations

import functools
import json
import random
import textwrap
from fractions import Fraction
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from zoo import ZOO, ZooCase, case

from pytest_convcheck import empirical_receptive_field, receptive_field, trace

IDS = [c.name for c in ZOO]

# --------------------------------------------------------------------------- helpers


def tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of a model's output (nested tuples, lists, dict values), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors(item)]
    return []


@functools.cache
def _built(name: str) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return case(name).build().eval()


def model_of(zc: ZooCase) -> nn.Module:
    """The case's model, built with a fixed seed, in eval mode (the analyses never
    change it; one build per process)."""
    return _built(zc.name)


@functools.cache
def analytic(name: str, shape: tuple[int, ...], include_statistics: bool):
    return receptive_field(_built(name), shape, include_statistics=include_statistics)


def output_positions(
    extents: tuple[int, ...], seed: str, n_random: int = 3
) -> list[tuple[int, ...]]:
    """Every corner, the centre and ``n_random`` random positions of an output map."""
    rng = random.Random(seed)
    corners = list(product(*[sorted({0, e - 1}) for e in extents]))
    centre = tuple(e // 2 for e in extents)
    randoms = [tuple(rng.randrange(e) for e in extents) for _ in range(n_random)]
    return list(dict.fromkeys([*corners, centre, *randoms]))


def gradient_support(
    model: nn.Module, x: torch.Tensor, positions: list[tuple[int, ...]]
) -> dict[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Per output position (spatial index of the first output), the input positions
    with a non-zero gradient, per spatial axis (the support projected on each axis:
    nonzero over batch, channels and the other axes).

    The output's batch and channel entries at the position are summed with random
    positive weights: a plain sum can cancel structurally (a softmax over channels
    sums to one)."""
    x = x.detach().clone().requires_grad_(True)
    out = tensors(model(x))[0]
    generator = torch.Generator().manual_seed(1)
    result = {}
    for pos in positions:
        target = out[(slice(None), slice(None), *pos)]
        weights = torch.rand(target.shape, generator=generator, dtype=target.dtype) + 0.5
        (grad,) = torch.autograd.grad((target * weights).sum(), x, retain_graph=True)
        mask = grad.ne(0).any(dim=0).any(dim=0)  # spatial axes only
        per_axis = []
        for axis in range(mask.dim()):
            others = tuple(a for a in range(mask.dim()) if a != axis)
            line = mask.any(dim=others) if others else mask
            per_axis.append(tuple(int(i) for i in torch.nonzero(line).flatten()))
        result[pos] = tuple(per_axis)
    return result


def _double_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double().eval()


def _random_input(zc: ZooCase) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(zc.input_shape, generator=generator, dtype=torch.float64)


def _spaced(values: tuple[int, ...]) -> str:
    if len(values) > 12:
        return f"{values[:5]}…{values[-5:]} ({len(values)} positions)"
    return str(values)


# --------------------------------------------------------------------------- the helper itself


def test_gradient_support_helper_on_known_layers():
    conv = nn.Conv2d(1, 2, 3, padding=1).double()
    x = torch.randn(2, 1, 9, 9, dtype=torch.float64)
    found = gradient_support(conv, x, [(4, 4), (0, 0), (8, 3)])
    assert found[(4, 4)] == ((3, 4, 5), (3, 4, 5))
    assert found[(0, 0)] == ((0, 1), (0, 1))
    assert found[(8, 3)] == ((7, 8), (2, 3, 4))
    # strided and dilated along one axis each
    conv = nn.Conv2d(1, 1, 3, stride=(2, 1), dilation=(1, 2)).double()
    found = gradient_support(conv, x, [(1, 1)])
    assert found[(1, 1)] == ((2, 3, 4), (1, 3, 5))
    # a softmax over channels sums to one: a plain sum would have no support
    softmax = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Softmax(dim=1)).double()
    assert gradient_support(softmax, x, [(2, 2)])[(2, 2)] == ((2,), (2,))
    # a 1-D and a 3-D case
    conv1d = nn.Conv1d(1, 1, 5, padding=2).double()
    assert gradient_support(conv1d, torch.randn(1, 1, 20, dtype=torch.float64), [(10,)]) == {
        (10,): ((8, 9, 10, 11, 12),)
    }
    pool3d = nn.AvgPool3d(2).double()
    found = gradient_support(pool3d, torch.randn(1, 1, 6, 6, 6, dtype=torch.float64), [(1, 0, 2)])
    assert found[(1, 0, 2)] == ((2, 3), (0, 1), (4, 5))


def test_the_zoo_is_big_and_runs_on_cpu():
    assert len(ZOO) >= 40
    assert len({c.family for c in ZOO}) >= 20
    for zc in ZOO:
        assert zc.input_shape[0] == 2
        assert tensors(model_of(zc)(torch.randn(zc.input_shape))), zc.name


# --------------------------------------------------------------------------- 1. containment


@pytest.mark.parametrize("zc", ZOO, ids=IDS)
def test_field_contains_gradient_support(zc: ZooCase):
    model = model_of(zc)
    x = _random_input(zc)
    work = _double_copy(model)
    with torch.no_grad():
        out = tensors(work(x))[0]
    spatial_out = out.dim() - 2
    if spatial_out < 1:  # a classifier: one position, depending on the input somewhere
        (grad,) = torch.autograd.grad(work(x.requires_grad_(True)).sum(), x)
        assert grad.ne(0).any(), f"{zc.name}: the output depends on no input"
        return
    assert spatial_out == zc.spatial, f"{zc.name}: the zoo keeps the spatial rank"
    positions = output_positions(tuple(out.shape[2:]), zc.name)
    support = gradient_support(work, x, positions)
    readings = (True,) if zc.spans_statistics else (False, True)
    for include_statistics in readings:
        field = analytic(zc.name, zc.input_shape, include_statistics)
        for pos, per_axis in support.items():
            assert all(per_axis), f"{zc.name}: output {pos} depends on no input (empty support)"
            expected = field.positions(pos)
            for axis, (real, claimed) in enumerate(zip(per_axis, expected, strict=True)):
                missing = sorted(set(real) - set(claimed))
                assert not missing, (
                    f"{zc.name} (include_statistics={include_statistics}): output position {pos}, "
                    f"spatial axis {axis}: the real gradient reaches input positions {missing} "
                    f"outside the analytic field.\n  real support {_spaced(real)}\n  analytic "
                    f"{_spaced(claimed)}\n{field}"
                )


# --------------------------------------------------------------------------- 2. measured = analytic


@pytest.mark.parametrize("include_statistics", [False, True], ids=["data", "stats"])
@pytest.mark.parametrize("zc", ZOO, ids=IDS)
def test_measured_equals_analytic(zc: ZooCase, include_statistics: bool):
    model = model_of(zc)
    measured = empirical_receptive_field(
        model, zc.input_shape, include_statistics=include_statistics
    )
    assert all(isinstance(s, int) and s >= 1 for s in measured.size), (
        f"{zc.name}: measured size {measured.size} has an empty (0) or non-integer axis\n{measured}"
    )
    assert measured.measured, f"{zc.name}: no output position was measured"
    for pos, per_axis in measured.measured.items():
        assert all(per_axis), f"{zc.name}: output {pos} measured with an empty field {per_axis}"
    shape = tuple(measured.input_shape)
    field = analytic(zc.name, shape, include_statistics)
    if zc.exact_field:
        assert measured.size == field.size, (
            f"{zc.name} (include_statistics={include_statistics}) on input {shape}: measured "
            f"size {measured.size} != analytic {field.size}\n{measured}\n{field}"
        )
    else:  # the analytic field over-approximates at the measured positions
        assert all(m <= a for m, a in zip(measured.size, field.size, strict=True)), (
            f"{zc.name}: measured {measured.size} exceeds analytic {field.size}"
        )


# --------------------------------------------------------------------------- 3. trace = CPU forward


@pytest.mark.parametrize("zc", ZOO, ids=IDS)
def test_trace_matches_cpu_forward(zc: ZooCase):
    model = model_of(zc)
    result = trace(model, zc.input_shape)
    with torch.no_grad():
        real = [tuple(t.shape) for t in tensors(model(torch.randn(zc.input_shape)))]
    assert result.outputs, f"{zc.name}: the trace saw no output"
    assert tuple(result.outputs[0][1]) == real[0], f"{zc.name}: first output\n{result}"
    assert [tuple(s) for _, s in result.outputs] == real, f"{zc.name}\n{result}"
    assert result.output_shape == (real[0] if len(real) == 1 else tuple(real))


# --------------------------------------------------------------------------- statistics, global


@pytest.mark.parametrize("zc", ZOO, ids=IDS)
def test_statistics_and_global_fields(zc: ZooCase):
    extents = zc.input_shape[2:]
    everything = tuple(tuple(range(e)) for e in extents)
    with_stats = analytic(zc.name, zc.input_shape, True)
    data = analytic(zc.name, zc.input_shape, False)
    if zc.spans_statistics:
        assert with_stats.statistics, f"{zc.name}: a norm's statistics span space\n{with_stats}"
    else:
        assert with_stats.statistics == (), (
            f"{zc.name}: no normalisation here spans a spatial axis (LayerNorm over channels, "
            f"BatchNorm in eval mode do not), yet the field names {with_stats.statistics}"
        )
    with torch.no_grad():
        out = tensors(model_of(zc)(torch.randn(zc.input_shape)))[0]
    spatial_out = tuple(out.shape[2:])
    for field, must in (
        (with_stats, zc.spans_statistics or zc.global_field),
        (data, zc.global_field),
    ):
        if not must:
            continue
        if not spatial_out:
            assert all(field.whole), f"{zc.name}: a classifier's field is global\n{field}"
            continue
        for pos in output_positions(spatial_out, zc.name, n_random=1):
            assert field.positions(pos) == everything, (
                f"{zc.name}: output {pos} depends on the whole input, the field says "
                f"{[_spaced(p) for p in field.positions(pos)]}\n{field}"
            )


# --------------------------------------------------------------------------- hand-computed fields


def _softmax_w_positions(field) -> None:
    assert field.positions((5, 7)) == ((4, 5, 6), tuple(range(16)))


def _circular_wraps(field) -> None:
    # the corner's 5×5 field, padded circularly, wraps to the far rows and columns
    assert field.positions((0, 0)) == ((0, 1, 2, 14, 15), (0, 1, 2, 14, 15))


EXPECTED: list[tuple[str, bool, dict[str, Any]]] = [
    # conv 3×3 → softmax over W: the W axis is whole, H keeps the conv's 3
    ("softmax_w", False, {"size": (3, 16), "whole": (False, True), "check": _softmax_w_positions}),
    ("softmax_h", False, {"size": (16, 3), "whole": (True, False)}),
    ("cumsum_w", False, {"size": (3, 16), "whole": (False, True)}),
    # space-to-depth by view/permute (s = 4), then a 3×3 conv: 3·4 = 12, stride 4
    ("s2d_view_tresnet", False, {"size": (12, 12), "stride": (4, 4)}),
    ("s2d_reshape", False, {"size": (6, 6), "stride": (2, 2)}),
    ("s2d_pixel_unshuffle", False, {"size": (6, 6), "stride": (2, 2)}),
    # YOLOv5's Focus: four strided slices, concatenated: a space-to-depth too
    ("s2d_focus_yolov5", False, {"size": (6, 6), "stride": (2, 2)}),
    # ConvNeXt: dw 7×7 and LayerNorm over channels (by permute, or channels-last
    # nn.LayerNorm + Linear MLP): 7, and no statistics over space
    ("convnext_block_ln2d", True, {"size": (7, 7), "stride": (1, 1), "statistics": ()}),
    ("convnext_block_channels_last", True, {"size": (7, 7), "stride": (1, 1), "statistics": ()}),
    # layer scale either side of a 3×3 stride-2 conv
    ("layerscale_gamma_first", False, {"size": (3, 3), "stride": (2, 2)}),
    ("layerscale_gamma_last", False, {"size": (3, 3), "stride": (2, 2)}),
    # ECA: the gate comes from the global mean (the Conv1d runs over channels)
    ("eca_block", False, {"whole": (True, True)}),
    ("eca_pooled", False, {"whole": (True, True)}),
    # conv → GroupNorm → conv: data path 5×5, statistics the whole input
    ("conv_groupnorm_conv", False, {"size": (5, 5), "stride": (1, 1), "holes": False}),
    (
        "conv_groupnorm_conv",
        True,
        {"size": (16, 16), "whole": (True, True), "statistics": ("norm",)},
    ),
    ("conv_instancenorm_conv", True, {"size": (16, 16), "statistics": ("norm",)}),
    # dilated stacks: 2, 2, 2 grids (13 with holes), HDC 1, 2, 5 does not (17);
    # Yu & Koltun's context module grows to 67
    ("gridding_222", False, {"size": (13, 13), "holes": True}),
    ("hdc_125", False, {"size": (17, 17), "holes": False}),
    ("context_module_yu_koltun", False, {"size": (67, 67), "holes": False}),
    ("gridding_1d_24", False, {"size": (13,), "holes": True}),
    ("wavenet_causal", False, {"size": (16,), "stride": (1,)}),
    # TasNet: encoder kernel 16 stride 8, transposed decoder: two frames, 24 samples
    ("tasnet_encdec", False, {"size": (24,), "stride": (1,)}),
    # ESPCN: head 5×5, conv 3×3, pixel shuffle ×2, tail 3×3 → 8, stride 1/2
    ("d2s_pixel_shuffle", False, {"size": (8, 8), "stride": (Fraction(1, 2),) * 2}),
    ("d2s_view_permute", False, {"size": (8, 8), "stride": (Fraction(1, 2),) * 2}),
    # strided slice ::2 between two 3×3 convs: 3 + 2·2 = 7, stride 2
    ("strided_slice_2", False, {"size": (7, 7), "stride": (2, 2)}),
    # padding modes: circular wraps around, reflection stays inside (7 + 2 + 2 = 11)
    ("circular_pad_conv", False, {"size": (5, 5), "check": _circular_wraps}),
    ("cyclegan_reflect_resblock", False, {"size": (11, 11), "stride": (1, 1)}),
]


@pytest.mark.parametrize(
    ("name", "include_statistics", "expected"),
    EXPECTED,
    ids=[f"{n}-{'stats' if s else 'data'}" for n, s, _ in EXPECTED],
)
def test_expected_fields(name: str, include_statistics: bool, expected: dict[str, Any]):
    zc = case(name)
    field = receptive_field(model_of(zc), zc.input_shape, include_statistics=include_statistics)
    for key, value in expected.items():
        if key == "check":
            value(field)
            continue
        found = getattr(field, key)
        if key == "statistics":
            found = tuple(found)
        assert found == value, f"{name}: {key} {found!r}, expected {value!r}\n{field}"


# --------------------------------------------------------------------------- 4. the plugin


PLUGIN_CHECKS = [
    "shapes",
    "batch",
    "receptive_field",
    "checkerboard",
    "sharing",
    "parity",
    "layout",
]


def test_plugin_finds_no_false_failure_in_the_zoo(pytester: pytest.Pytester):
    """``pytest --convcheck`` with every zoo model and the default checks (no
    snapshot), in one subprocess: nothing fails; the findings the zoo expects
    (a structural checkerboard, gridding holes) are reported as allowed."""
    pytester.makepyfile(zoo_models=(Path(__file__).parent / "zoo.py").read_text())
    tables = []
    for zc in ZOO:
        table = f"""
        [tool.convcheck.models.{zc.name}]
        factory = "zoo_models:build"
        input = {list(zc.input_shape)}
        kwargs = {{ name = "{zc.name}" }}
        checks = {json.dumps(PLUGIN_CHECKS)}
        """
        if zc.allow:
            table += f"allow = {json.dumps(list(zc.allow))}\n"
        tables.append(textwrap.dedent(table))
    pytester.makefile(".toml", pyproject="\n".join(tables))
    result = pytester.runpytest_subprocess("--convcheck", "-p", "no:cacheprovider", "-rfEx")
    outcomes = result.parseoutcomes()
    text = result.stdout.str()
    failed = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, "\n".join(failed)
    assert outcomes.get("passed", 0) + outcomes.get("xfailed", 0) == len(PLUGIN_CHECKS) * len(ZOO)
    expected_findings = {f"convcheck::{zc.name}::{check}" for zc in ZOO for check in zc.allow}
    reported = {line.split()[1] for line in text.splitlines() if line.startswith("XFAIL")}
    assert reported == expected_findings, (
        f"allowed findings: expected {sorted(expected_findings)}, reported {sorted(reported)}"
    )
