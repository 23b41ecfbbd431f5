"""Models of a small project. ``Classifier`` is sound; the other three carry the bugs
teams ship most often (each planted on purpose, see the comments)."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A sound MNIST classifier: flatten keeps the batch, every layer has its weights."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


class Decoder(nn.Module):
    """Planted bug: 7 → 14 → 28 was intended, but kernel 5 without padding gives
    7 → 17 → 37 (each ConvTranspose2d(k=5, s=2) gives (in − 1)·2 + 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(16, 8, 5, stride=2)
        self.up2 = nn.ConvTranspose2d(8, 1, 5, stride=2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up2(torch.relu(self.up1(z))))


class Upsampler(nn.Module):
    """Planted bug: a 3×3 kernel with stride 2 overlaps unevenly (2 taps on even
    output pixels, 1 on odd ones): a checkerboard (Odena et al. 2016)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class Encoder(nn.Module):
    """Planted bug: ``[block] * 3`` repeats one instance, so the three stages share
    one set of weights."""

    def __init__(self) -> None:
        super().__init__()
        block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.blocks = nn.Sequential(*[block] * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))
