"""Benchmark: checkerboard analysis.

* structural analysis (``report_from_trace``) of a 6-layer transposed-conv decoder,
  from its trace (target ≤ 1 ms after warm-up);
* the output spectral test (``output_score``) at 256×256 (target ≤ 1 s).

Run from the repository root: ``python -m benchmarks.bench_checkerboard``.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from pytest_convcheck import trace
from pytest_convcheck.checkerboards import output_score, report_from_trace


def decoder() -> nn.Sequential:
    """Six upsampling layers: 4×4 → 256×256, mixed kernels (some uneven)."""
    layers: list[nn.Module] = []
    channels = [64, 48, 32, 24, 16, 8, 3]
    kernels = [4, 3, 4, 5, 4, 3]
    for cin, cout, k in zip(channels, channels[1:], kernels, strict=False):
        layers += [
            nn.ConvTranspose2d(cin, cout, k, stride=2, padding=(k - 1) // 2, output_padding=k % 2),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers[:-1])


def main() -> None:
    torch.set_num_threads(2)
    model = decoder().eval()
    result = trace(model, (1, 64, 4, 4))
    print(f"decoder: {result.input_shape} → {result.output_shape}, {len(result.nodes)} ops")
    for label, owner in (("structural", None), ("structural + weights", model)):
        report_from_trace(result, owner)  # warm-up
        times = []
        for _ in range(200):
            start = time.perf_counter()
            report = report_from_trace(result, owner)
            times.append(time.perf_counter() - start)
        print(
            f"{label} analysis from the trace: median {statistics.median(times) * 1e3:.3f} ms "
            f"(structural={report.structural}, {len(report.layers)} upsampling layers)"
        )
    shape = (1, 64, 4, 4)
    output_score(model, shape)
    start = time.perf_counter()
    score = output_score(model, shape)
    print(
        f"output spectral test at {tuple(result.output_shape)}: "
        f"{time.perf_counter() - start:.3f} s "
        f"(score {score.score:.3f})"
    )


if __name__ == "__main__":
    main()
