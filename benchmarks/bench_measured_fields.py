"""Time and peak memory of ``empirical_receptive_field`` on the trunks of ResNet-50,
DenseNet-121, Xception-41 and Inception-v3 at their natural sizes (#20: ≤ 2 s and
≤ 2 GB each). Needs ``timm`` (random weights, nothing downloaded); not run in CI.

    python -m benchmarks.bench_measured_fields
"""

from __future__ import annotations

import resource
import sys
import time

from torch import nn

from pytest_convcheck import MeasurementRefused, empirical_receptive_field, receptive_field

MODELS = (("resnet50", 224), ("densenet121", 224), ("xception41", 299), ("inception_v3", 299))


class Trunk(nn.Module):
    """A classifier's feature extractor (its spatial output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.model.forward_features(x)


def main() -> int:
    try:
        import timm
    except ImportError:
        print("timm is not installed: pip install --no-deps timm (and its pure-Python deps)")
        return 0
    for name, size in MODELS:
        model = Trunk(timm.create_model(name, pretrained=False).eval())
        shape = (1, 3, size, size)
        analytic = receptive_field(model, shape)
        start = time.perf_counter()
        try:
            measured = empirical_receptive_field(model, shape)
        except MeasurementRefused as error:
            print(f"{name:14} refused: {str(error).splitlines()[0]}")
            continue
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
        how = "clipped by the input" if measured.clipped else "whole field"
        print(
            f"{name:14} analytic {analytic.size[0]:>5}  measured {measured.size[0]:>5} on "
            f"{'×'.join(map(str, measured.input_shape[2:]))} ({how})  {seconds:.2f} s  "
            f"peak RSS {peak:.2f} GiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
