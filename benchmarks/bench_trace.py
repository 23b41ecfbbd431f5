"""Benchmark: ``trace`` against ``torchinfo.summary`` and a bare meta-device forward.

VGG-16's feature stack (13 convs, 5 max-pools; built here, no torchvision) at
224×224 and 1024×1024, batch 1. Prints median wall times, the speed-up over
torchinfo, and the process's peak-RSS growth during the traces (meta tensors
allocate nothing, so it must not grow with resolution).

Run from the repository root: ``python -m benchmarks.bench_trace`` (or ``tox -e bench``).
"""

from __future__ import annotations

import copy
import resource
import statistics
import time
from collections.abc import Callable

import torch

from examples.reference_models import vgg16_features
from pytest_convcheck import report, trace


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import torchinfo

    torch.set_num_threads(2)
    model = vgg16_features().eval()
    meta_model = copy.deepcopy(model).to("meta")
    trace(model, (1, 3, 32, 32))  # one-time meta initialisation, not counted
    rss_before = peak_rss_mib()
    rows = []
    for size in (224, 1024):
        shape = (1, 3, size, size)
        t_trace = median_time(lambda shape=shape: trace(model, shape), 100)
        t_report = median_time(lambda shape=shape: report(model, shape), 100)
        x_meta = torch.empty(shape, device="meta")
        t_meta = median_time(lambda x=x_meta: meta_model(x), 100)
        rows.append((size, shape, t_trace, t_meta, t_report))
    rss_after_traces = peak_rss_mib()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"peak RSS growth during traces at 224 and 1024: {rss_after_traces - rss_before:.1f} MiB")
    for size, shape, t_trace, t_meta, t_report in rows:
        repeats = 5 if size == 224 else 2
        t_info = median_time(
            lambda shape=shape: torchinfo.summary(model, shape, verbose=0, device="cpu"), repeats
        )
        print(
            f"{size}×{size}: trace {t_trace * 1e3:.2f} ms | bare meta forward {t_meta * 1e3:.2f} ms"
            f" (trace/bare {t_trace / t_meta:.2f}×) | torchinfo {t_info * 1e3:.0f} ms"
            f" → trace is {t_info / t_trace:.0f}× faster"
        )
        print(
            f"{size}×{size}: report (trace + field + checkerboard + sharing) "
            f"{t_report * 1e3:.2f} ms = {t_report / t_meta:.2f}× the bare meta forward"
        )


if __name__ == "__main__":
    main()
