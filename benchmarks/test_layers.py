"""Conv layers, forward and forward + backward, at two sizes, contiguous and (for
2-d and 3-d inputs) channels-last. Each result's ``extra_info`` holds the rule
table's ``flops``, the achieved ``gflops`` and the ``roofline`` fraction."""

from __future__ import annotations

import pytest

from benchmarks.layer_cases import CASES

PARAMS = [
    pytest.param(case, size, layout, id=f"{case.name}-{size}-{layout}")
    for case in CASES
    for size in case.shapes
    for layout in (("contiguous", "channels_last") if case.rank in (4, 5) else ("contiguous",))
]


@pytest.mark.parametrize("case, size, layout", PARAMS)
@pytest.mark.parametrize("pass_", ["forward", "forward_backward"])
def test_layer(conv_benchmark, benchmark, case, size, layout, pass_):
    benchmark.group = f"{case.name} {pass_}"
    result = conv_benchmark(
        case.build(),
        case.input_shape(size),
        backward=pass_ == "forward_backward",
        channels_last=layout == "channels_last",
    )
    assert result.flops > 0
