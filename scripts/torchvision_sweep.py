"""Run every analysis over torchvision's models and print one line per model.

Not part of the test suite (torchvision is not a dependency): a sweep for finding
what the analyses get wrong on published architectures. Each line gives the traced
output shape, the receptive field (size, stride, holes), the structural checkerboard
verdict, the weight-sharing findings and the report's time; a failing analysis
prints its exception instead. Detection and optical-flow models are skipped (they
take lists of images or image pairs).

    python scripts/torchvision_sweep.py [MODEL ...]

On the development machines torchvision's wheel must match torch (0.28 for torch
2.13); models need no weights (``weights=None``), so nothing is downloaded.
"""

from __future__ import annotations

import sys
import time
import warnings

import torch

import pytest_convcheck as cc

_SKIPPED = (
    "raft",
    "fasterrcnn",
    "fcos",
    "keypointrcnn",
    "maskrcnn",
    "retinanet",
    "ssd",
    "quantized",
)
_VIDEO = ("r3d", "mc3", "r2plus1d", "s3d", "mvit", "swin3d")


def input_shape(name: str) -> tuple[int, ...]:
    if name.startswith(_VIDEO):
        return (
            (1, 3, 16, 224, 224)
            if name.startswith(("mvit", "swin3d", "s3d"))
            else (1, 3, 16, 112, 112)
        )
    return (1, 3, 299, 299) if "inception" in name else (1, 3, 224, 224)


def build(name: str) -> torch.nn.Module:
    import torchvision.models as tvm

    try:
        return tvm.get_model(name, weights=None, weights_backbone=None).eval()
    except TypeError:  # classification models take no weights_backbone
        return tvm.get_model(name, weights=None).eval()


def sweep_one(name: str) -> str:
    try:
        model = build(name)
    except Exception as error:
        return f"{name} | BUILD {type(error).__name__}: {error}"
    shape = input_shape(name)
    cells = [name]
    try:
        cells.append(f"output {cc.trace(model, shape).output_shape}")
        field = cc.receptive_field(model, shape)
        cells.append(f"field {field.size} stride {field.stride} holes {field.holes}")
        cells.append(f"uneven {cc.checkerboard(model, shape).structural}")
        shared = cc.sharing(model, shape)
        cells.append(f"aliases {len(shared.suspicious)} tied {len(shared.shared)}")
        start = time.perf_counter()
        cc.report(model, shape).to_dict()
        cells.append(f"report {(time.perf_counter() - start) * 1e3:.0f} ms")
    except Exception as error:
        cells.append(f"{type(error).__name__}: {str(error)[:300]}")
    return " | ".join(cells)


def main(names: list[str]) -> None:
    import torchvision.models as tvm

    warnings.filterwarnings("ignore")
    for name in names or tvm.list_models():
        if name.startswith(_SKIPPED):
            continue
        print(sweep_one(name), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
