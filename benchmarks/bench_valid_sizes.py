"""Benchmark: valid input sizes in closed form against running the model, and torch.export.

For each model, the widths 1–512 it takes (height and channels as described; the
1-D models, whose forward costs less than one trace, also over 1–4096):

- **running the model**: a CPU forward at every width (``torch.no_grad``), a width
  is valid when the forward returns a tensor that keeps the batch;
- **closed form**: :func:`pytest_convcheck.input_size_rule` (one meta trace replayed
  at each width of one period past a threshold) and ``SizeRule.valid`` over the range;
- **torch.export** with a dynamic ``Dim`` on the width: what it suggests and how long
  it takes (it states constraints as ``w = 8*_w``; a window such as 28–31 it cannot
  state).

Prints the times, the speed-up, whether the two lists agree, and the rule.

Run from the repository root: ``python -m benchmarks.bench_valid_sizes``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from examples.reference_models import resnet50
from pytest_convcheck import input_size_rule
from pytest_convcheck.tracing import caches

WIDTHS = range(1, 513)
# the 1-D models cost 0.1 ms a forward: over 1–512 running them is cheaper than one
# trace, so they are also timed over a wider range (the closed form's cost does not
# grow with it)
WIDE = range(1, 4097)


class SmallUNet(nn.Module):
    """A 3-level U-Net (8/16/32 channels, max-pool down, nearest up, concatenated skips)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.ReLU())
            for a, b in ((3, 8), (8, 16), (16, 32))
        )
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.ReLU())
            for a, b in ((64, 16), (32, 8), (16, 8))
        )
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0), skip], 1))
        return self.head(x)


def brute_force(
    model: nn.Module, shape: tuple[int, ...], widths: range = WIDTHS
) -> tuple[list[int], float]:
    valid = []
    gc.collect()  # the garbage of what ran before is not this measurement's
    start = time.perf_counter()
    with torch.no_grad():
        for w in widths:
            try:
                out = model(torch.zeros(*shape[:-1], w))
            except Exception:
                continue
            if isinstance(out, torch.Tensor) and out.shape[0] == shape[0]:
                valid.append(w)
    return valid, time.perf_counter() - start


def closed_form(
    model: nn.Module, shape: tuple[int, ...], widths: range = WIDTHS
) -> tuple[list[int], float, str, str]:
    """The rule of a model this process has not traced (caches cleared), in a process
    that has run torch's meta kernels before (their first call imports and compiles
    decompositions: ~0.8 s once per process)."""
    caches.clear()
    gc.collect()  # the garbage of what ran before is not this measurement's
    start = time.perf_counter()
    rule = input_size_rule(model, shape, -1)
    valid = rule.valid(widths)
    return valid, time.perf_counter() - start, rule.describe(), rule.method


def exported(model: nn.Module, shape: tuple[int, ...]) -> tuple[str, float]:
    from torch.export import Dim, export

    start = time.perf_counter()
    try:
        export(
            model,
            (torch.zeros(shape),),
            dynamic_shapes=({len(shape) - 1: Dim("w", min=1, max=512)},),
        )
        text = "accepted every width 1–512"
    except Exception as error:
        text = str(error)
        fixes = text.partition("Suggested fixes:")[2].strip().split("\n\n")[0]
        lines = [line.strip() for line in fixes.splitlines() if line.strip()]
        text = "suggests " + "; ".join(lines) if lines else text.splitlines()[0]
    return text[:140], time.perf_counter() - start


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cases: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("small U-Net", SmallUNet, (1, 3, 64, 64)),
        ("ResNet-50 (trunk+head)", lambda: resnet50(head=True), (1, 3, 32, 224)),
        *[(name, factory, shape) for name, (factory, shape) in sorted(MODELS.items())],
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, widths 1–512")
    # the process's first meta kernels, 2-D and 1-D
    input_size_rule(SmallUNet(), (1, 3, 16, 16), -1)
    input_size_rule(nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2), nn.ReLU()), (1, 1, 16), -1)
    for name, factory, shape in cases:
        model = factory().eval()
        brute, t_brute = brute_force(model, shape)
        valid, t_rule, text, method = closed_form(model, shape)
        agree = "agree" if brute == valid else f"DISAGREE ({len(brute)} vs {len(valid)})"
        print(
            f"{name}: running the model {t_brute * 1e3:.0f} ms | closed form "
            f"{t_rule * 1e3:.1f} ms → {t_brute / t_rule:.0f}× faster, {agree} | {text} "
            f"[{method}]"
        )
        if len(shape) == 3:
            brute, t_brute = brute_force(model, shape, WIDE)
            valid, t_rule, _, _ = closed_form(model, shape, WIDE)
            agree = "agree" if brute == valid else f"DISAGREE ({len(brute)} vs {len(valid)})"
            print(
                f"    widths 1–4096: running the model {t_brute * 1e3:.0f} ms | closed form "
                f"{t_rule * 1e3:.1f} ms → {t_brute / t_rule:.0f}× faster, {agree}"
            )
        if name in ("small U-Net", "s01_transposed_conv", "s06_cnn"):
            suggestion, t_export = exported(model, shape)
            print(f"    torch.export Dim: {t_export * 1e3:.0f} ms: {suggestion}")


if __name__ == "__main__":
    main()
