"""Benchmark: ``trace`` and ``report`` against ``torchinfo.summary``, side by side.

Models: VGG-16's feature stack and ResNet-50 (built here, ``examples.reference_models``),
and, when timm is importable, timm's resnet18, densenet121, mobilenetv3_large_100 and
efficientnet_b0 (``pretrained=False``: nothing is downloaded); 224×224, batch 1.

For each model, best of N wall times (one process, torch warmed up):

- **torchinfo**: ``torchinfo.summary(model, shape, device="cpu", verbose=0)``, warm;
- **trace, new input**: a trace at an input size this process has not traced
  before (225², 226², …): every op intercepted, conv/pool executed on meta the
  first time their shapes are seen, the model copied to meta;
- **trace, repeat**: the same model and input again: replayed from the plan the
  first trace recorded (no copy, no forward; see ``pytest_convcheck.tracing``);
- **report, repeat**: trace + receptive field + checkerboard + sharing + FLOPs.

Prints each time, the ratios to torchinfo and report/trace, and the peak-RSS
growth of tracing VGG-16 at 224² and 1024² (meta tensors allocate nothing).

Run from the repository root: ``python -m benchmarks.bench_trace`` (or ``tox -e bench``).
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from examples.reference_models import resnet50, vgg16_features
from pytest_convcheck import report, trace


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` calls after a warm-up; the garbage a previous measurement
    left (torchinfo's hooks and records) is collected first, so that it is not paid
    by the next one's collections."""
    gc.collect()
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def models() -> Iterator[tuple[str, Callable[[], nn.Module]]]:
    yield "vgg16 features", vgg16_features
    yield "resnet50", lambda: resnet50(head=True)
    try:
        import timm
    except ImportError:
        print(
            "(timm is not installed: resnet18, densenet121, mobilenetv3, efficientnet_b0 skipped)"
        )
        return
    for name in ("resnet18", "densenet121", "mobilenetv3_large_100", "efficientnet_b0"):
        yield f"timm {name}", lambda name=name: timm.create_model(name, pretrained=False)


def row(name: str, model: nn.Module) -> str:
    """One table row: the model's times and ratios at 224², batch 1."""
    import torchinfo

    shape = (1, 3, 224, 224)
    t_info = best_time(lambda: torchinfo.summary(model, shape, verbose=0, device="cpu"), 3)
    sizes = iter(range(225, 10_000))
    t_new = best_time(lambda: trace(model, (1, 3, next(sizes), 224)), 3)
    t_trace = best_time(lambda: trace(model, shape), 50)
    t_report = best_time(lambda: report(model, shape), 10)
    return (
        f"{name} | {t_info * 1e3:.1f} ms | {t_new * 1e3:.1f} ms | {t_trace * 1e3:.2f} ms | "
        f"{t_report * 1e3:.1f} ms | {t_info / t_trace:.0f}× | {t_info / t_report:.1f}× | "
        f"{t_report / t_trace:.1f}×"
    )


def main() -> None:
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, 224×224")
    header = (
        "model | torchinfo | trace, new input | trace, repeat | report, repeat | "
        "torchinfo/trace (repeat) | torchinfo/report | report/trace"
    )
    print(header)
    print("|".join("---" for _ in header.split("|")))
    for name, factory in models():
        print(row(name, factory().eval()))
    vgg = vgg16_features().eval()
    before = peak_rss_mib()
    for size in (224, 1024):
        trace(vgg, (1, 3, size, size))
    print(f"peak RSS growth tracing VGG-16 at 224² and 1024²: {peak_rss_mib() - before:.1f} MiB")


if __name__ == "__main__":
    main()
