"""The conv layers the suite times: one builder per case, and two input sizes each.

Sizes are the 28×28 and 56×56 stages of a ResNet-style network at batch 8 (1-d
and 3-d cases scaled to similar work), so each call takes milliseconds on a
2-core CPU and a run of the whole suite stays within a few minutes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

SLOWDOWN_VARIABLE = "CONVCHECK_BENCH_SLOWDOWN"


@dataclass(frozen=True)
class LayerCase:
    name: str
    build: Callable[[], nn.Module]
    shapes: dict[str, tuple[int, ...]]  # size label → input shape

    def input_shape(self, size: str) -> tuple[int, ...]:
        """The input of ``size``; 1.5× the batch (1.5× the work, same benchmark name)
        when this case is the injected slowdown."""
        batch, *rest = self.shapes[size]
        if os.environ.get(SLOWDOWN_VARIABLE) == self.name:
            batch = batch * 3 // 2
        return (batch, *rest)

    @property
    def rank(self) -> int:
        return len(next(iter(self.shapes.values())))


_2D = {"28px": (8, 64, 28, 28), "56px": (8, 64, 56, 56)}

CASES = [
    LayerCase(
        "conv1d_k3",
        lambda: nn.Conv1d(64, 64, 3, padding=1),
        {"784": (8, 64, 784), "3136": (8, 64, 3136)},
    ),
    LayerCase("conv2d_k3", lambda: nn.Conv2d(64, 64, 3, padding=1), _2D),
    LayerCase(
        "conv3d_k3",
        lambda: nn.Conv3d(32, 32, 3, padding=1),
        {"8x14px": (2, 32, 8, 14, 14), "8x28px": (2, 32, 8, 28, 28)},
    ),
    LayerCase(
        "conv_transpose2d_k4s2",
        lambda: nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
        {"14px": (8, 64, 14, 14), "28px": (8, 64, 28, 28)},
    ),
    LayerCase("dilated2d_k3d2", lambda: nn.Conv2d(64, 64, 3, padding=2, dilation=2), _2D),
    LayerCase("grouped2d_k3g8", lambda: nn.Conv2d(64, 64, 3, padding=1, groups=8), _2D),
    LayerCase(
        "depthwise2d_k3",
        lambda: nn.Conv2d(64, 64, 3, padding=1, groups=64),
        _2D,
    ),
    LayerCase("pointwise2d_k1", lambda: nn.Conv2d(64, 128, 1), _2D),
]
