"""Property tests: the rule table's formulas against torch itself.

For every family and 1, 2 and 3 spatial dims, ``output_shape`` must equal the
shape torch produces, and raise ``ShapeError`` exactly when torch raises.
Profiles (see ``tests/conftest.py``): ``ci`` (default, 2,000 examples per
family and dims) and ``deep`` (``HYPOTHESIS_PROFILE=deep``).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_convcheck import ShapeError, output_shape
from pytest_convcheck.strategies import FAMILIES, LayerCase, layer_cases

FAMILY_DIMS = [
    (family, dims)
    for family in FAMILIES
    for dims in ((2,) if family in ("pixel_shuffle", "unfold", "fold", "linear") else (1, 2, 3))
    if not (family == "lp_pool" and dims == 3 and not hasattr(torch.nn, "LPPool3d"))
]


def torch_outcome(case: LayerCase) -> tuple[int, ...] | Exception:
    """What torch does with the case on CPU: the output shape, or the exception."""
    x = torch.zeros(case.input_shape)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = case.layer(x, **dict(case.call_kwargs))
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        return error
    if isinstance(out, tuple):
        out = out[0]
    return tuple(out.shape)


def our_outcome(case: LayerCase) -> tuple[int, ...] | ShapeError:
    try:
        return output_shape(case.layer, case.input_shape, **dict(case.call_kwargs))
    except ShapeError as error:
        return error


def _empty_transposed_output(case: LayerCase, shape: tuple[int, ...]) -> bool:
    return bool(getattr(case.layer, "transposed", False)) and 0 in shape


def check_against_torch(case: LayerCase) -> None:
    expected = torch_outcome(case)
    got = our_outcome(case)
    if isinstance(expected, Exception):
        assert isinstance(got, ShapeError), (
            f"torch rejects {case} with {type(expected).__name__}: {expected}\n"
            f"but the rule predicts {got}"
        )
    elif _empty_transposed_output(case, expected):
        # torch's backends disagree on empty transposed-conv outputs; we always reject
        # them (see test_torch_quirks.py).
        assert isinstance(got, ShapeError) and "empty tensor" in str(got)
    else:
        assert not isinstance(got, ShapeError), (
            f"torch accepts {case} giving {expected}, but the rule raises: {got}"
        )
        assert got == expected, f"{case}: rule {got} != torch {expected}"


@pytest.mark.parametrize(("family", "dims"), FAMILY_DIMS, ids=[f"{f}-{d}d" for f, d in FAMILY_DIMS])
@given(data=st.data())
def test_rule_matches_torch(family: str, dims: int, data: st.DataObject) -> None:
    check_against_torch(data.draw(layer_cases(family, dims), label="case"))
