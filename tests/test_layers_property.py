"""Property tests: the rule table's formulas against torch itself.

For every family and 1, 2 and 3 spatial dims, ``output_shape`` must equal the
shape torch produces, and raise ``ShapeError`` exactly when torch raises.
Profiles (see ``tests/conftest.py``): ``ci`` (default, 200 examples per
family and dims), ``dev`` (50) and ``deep`` (``HYPOTHESIS_PROFILE=deep``, 10,000).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_convcheck.conformance import FAMILY_DIMS, check_rule_against_torch
from pytest_convcheck.strategies import layer_cases


@pytest.mark.parametrize(("family", "dims"), FAMILY_DIMS, ids=[f"{f}-{d}d" for f, d in FAMILY_DIMS])
@given(data=st.data())
def test_rule_matches_torch(family: str, dims: int, data: st.DataObject) -> None:
    check_rule_against_torch(data.draw(layer_cases(family, dims), label="case"))
