"""Benchmark: receptive fields of a 50-layer residual network (ResNet-50, built by hand).

* analytic: ``field_of_trace`` on a trace of ResNet-50 at 224×224 (target ≤ 5 ms
  after warm-up);
* measured: ``empirical_receptive_field`` at the smallest input that holds the
  field (target ≤ 2 s on this CPU).

Run from the repository root: ``python -m benchmarks.bench_fields`` (or ``tox -e bench``).
"""

from __future__ import annotations

import statistics
import time

import torch

from examples.reference_models import resnet50
from pytest_convcheck import empirical_receptive_field, trace
from pytest_convcheck.fields import field_of_trace


def main() -> None:
    torch.set_num_threads(2)
    model = resnet50().eval()
    result = trace(model, (1, 3, 224, 224))
    print(f"ResNet-50: {len(result.nodes)} traced ops, {len(result.layers)} rows")
    field_of_trace(result)  # warm-up
    times = []
    for _ in range(50):
        start = time.perf_counter()
        field = field_of_trace(result)
        times.append(time.perf_counter() - start)
    print(
        f"analytic field from the trace: median {statistics.median(times) * 1e3:.2f} ms "
        f"(size {field.size}, stride {field.stride}, offset {field.offset})"
    )
    start = time.perf_counter()
    measured = empirical_receptive_field(model, (1, 3, 224, 224))
    elapsed = time.perf_counter() - start
    print(
        f"measured field: {elapsed:.2f} s at input {measured.input_shape} "
        f"(size {measured.size}, clipped={measured.clipped}, "
        f"{len(measured.measured)} output positions)"
    )


if __name__ == "__main__":
    main()
