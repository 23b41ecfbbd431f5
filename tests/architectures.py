"""A zoo of small architectures for the receptive-field and checkerboard tests.

``ZOO`` maps a name to ``(factory, input_shape)``. Each model is small (a few
channels) so that a measured field costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def conv(cin: int, cout: int, k: int | tuple[int, ...] = 3, **kw) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, **kw)


class Residual(nn.Module):
    def __init__(self, c: int, stride: int = 1, project: bool = False) -> None:
        super().__init__()
        cout = c * 2 if project else c
        self.conv1 = conv(c, cout, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(conv(c, cout, 1, stride=stride), nn.BatchNorm2d(cout))
            if project or stride != 1
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.reduce = conv(cin, mid, 1)
        self.conv = conv(mid, mid, 3, stride=stride, padding=1)
        self.expand = conv(mid, cout, 1)
        self.project = conv(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(F.relu(self.conv(F.relu(self.reduce(x)))))
        return F.relu(y + (x if self.project is None else self.project(x)))


class UNet(nn.Module):
    def __init__(self, upsample: str = "transpose") -> None:
        super().__init__()
        self.enc1 = nn.Sequential(conv(1, 4, padding=1), nn.ReLU(), conv(4, 4, padding=1))
        self.enc2 = nn.Sequential(conv(4, 8, padding=1), nn.ReLU(), conv(8, 8, padding=1))
        self.mid = nn.Sequential(conv(8, 8, padding=1), nn.ReLU())
        if upsample == "transpose":
            self.up2 = nn.ConvTranspose2d(8, 8, 2, stride=2)
            self.up1 = nn.ConvTranspose2d(8, 4, 2, stride=2)
        else:
            self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), conv(8, 8, 1))
            self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), conv(8, 4, 1))
        self.dec2 = conv(16, 8, padding=1)
        self.dec1 = conv(8, 1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        return self.dec1(torch.cat([self.up1(d2), e1], dim=1))


class Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = conv(2, 2, 1)
        self.b3 = nn.Sequential(conv(2, 2, 1), conv(2, 2, 3, padding=1))
        self.b5 = nn.Sequential(conv(2, 2, 1), conv(2, 2, 5, padding=2))
        self.pool = conv(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(F.max_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), pooled], dim=1)


class Causal1d(nn.Module):
    """WaveNet-style: left padding only, dilations 1, 2, 4, 8."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv1d(2, 2, 2, dilation=d) for d in (1, 2, 4, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(F.pad(x, (layer.dilation[0], 0))))
        return x


class DownUpSkip(nn.Module):
    """A strided conv, a nearest upsample back, and a skip add."""

    def __init__(self) -> None:
        super().__init__()
        self.down = conv(1, 2, 3, stride=2, padding=1)
        self.side = conv(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.down(x), scale_factor=2, mode="nearest")
        return up + self.side(x)


class MaxOverSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = conv(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) - F.avg_pool2d(self.conv(x), 3, stride=1, padding=1)


class ValidUNet(nn.Module):
    """Ronneberger et al.'s U-Net, two levels: unpadded convs, and skips centre-cropped
    by slicing before the concat."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Module:
            return nn.Sequential(conv(cin, cout), nn.ReLU(), conv(cout, cout), nn.ReLU())

        self.down = nn.ModuleList([block(1, 2), block(2, 2)])
        self.mid = block(2, 2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(2, 2, 2, stride=2) for _ in range(2)])
        self.dec = nn.ModuleList([block(4, 2), block(4, 2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.mid(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = up(x)
            top = (skip.shape[-2] - x.shape[-2]) // 2
            left = (skip.shape[-1] - x.shape[-1]) // 2
            crop = skip[..., top : top + x.shape[-2], left : left + x.shape[-1]]
            x = dec(torch.cat([crop, x], dim=1))
        return x


class StridedSlice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = conv(1, 2, 3)
        self.b = conv(2, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)[:, :, 1::2, ::3].narrow(-1, 1, 5))


class ImagePoolingASPP(nn.Module):
    """DeepLab-v3's ASPP head: dilated branches beside an image-pooling branch that
    pools to 1×1 and is upsampled back, so every output sees the whole input."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv(1, 2, 3, stride=2, padding=1)
        self.atrous = conv(2, 2, 3, padding=2, dilation=2)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(2, 2, 1))
        self.project = conv(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear")
        return self.project(torch.cat([self.atrous(x), pooled], dim=1))


class SqueezeExcite(nn.Module):
    """A conv whose channels are rescaled by a gate computed from the global mean."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv(1, 2, 3, padding=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(2, 2, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * self.gate(y)


def _dilated(dilations: tuple[int, ...], dims: int = 2) -> nn.Module:
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    return nn.Sequential(*[cls(1, 1, 3, padding=d, dilation=d) for d in dilations])


ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "plain": (
        lambda: nn.Sequential(conv(1, 2), nn.ReLU(), conv(2, 2), nn.ReLU(), conv(2, 1)),
        (1, 1, 24, 24),
    ),
    "strided": (
        lambda: nn.Sequential(conv(1, 2, stride=2), conv(2, 2, stride=2), conv(2, 1)),
        (1, 1, 40, 40),
    ),
    "vgg_like": (
        lambda: nn.Sequential(
            conv(1, 2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv(2, 2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv(2, 1, padding=1),
        ),
        (1, 1, 32, 32),
    ),
    "residual_identity": (
        lambda: nn.Sequential(conv(1, 4, padding=1), Residual(4), Residual(4)),
        (2, 1, 16, 16),
    ),
    "residual_projection": (
        lambda: nn.Sequential(conv(1, 4, padding=1), Residual(4, 2, True), Residual(8)),
        (2, 1, 24, 24),
    ),
    "bottleneck": (
        lambda: nn.Sequential(
            conv(1, 8, 7, stride=2, padding=3),
            nn.MaxPool2d(3, 2, 1),
            Bottleneck(8, 2, 8),
            Bottleneck(8, 4, 16, stride=2),
        ),
        (1, 1, 64, 64),
    ),
    "unet_transpose": (lambda: UNet("transpose"), (1, 1, 32, 32)),
    "unet_bilinear": (lambda: UNet("bilinear"), (1, 1, 32, 32)),
    "dilated_no_holes": (lambda: _dilated((1, 1, 2, 4, 8)), (1, 1, 80, 80)),
    "dilated_holes": (lambda: _dilated((2, 2)), (1, 1, 24, 24)),
    "dilated_gridding": (lambda: _dilated((2, 4, 8)), (1, 1, 64, 64)),
    "decoder_k4s2p1": (
        lambda: nn.Sequential(
            nn.ConvTranspose2d(1, 2, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(2, 1, 4, 2, 1)
        ),
        (1, 1, 8, 8),
    ),
    "decoder_k3s2": (
        lambda: nn.Sequential(nn.ConvTranspose2d(1, 2, 3, 2), nn.ConvTranspose2d(2, 1, 3, 2)),
        (1, 1, 6, 6),
    ),
    "decoder_dilated": (
        lambda: nn.Sequential(nn.ConvTranspose2d(1, 1, 3, 2, dilation=2)),
        (1, 1, 6, 6),
    ),
    "decoder_k1s2_gaps": (
        lambda: nn.Sequential(nn.ConvTranspose2d(1, 1, 1, 2), conv(1, 1, 1)),
        (1, 1, 6, 6),
    ),
    "conv1d": (
        lambda: nn.Sequential(nn.Conv1d(1, 2, 5), nn.MaxPool1d(2), nn.Conv1d(2, 2, 3, stride=2)),
        (1, 1, 64),
    ),
    "causal1d": (Causal1d, (1, 2, 48)),
    "dilated1d_holes": (lambda: _dilated((3, 3), dims=1), (1, 1, 40)),
    "conv3d": (
        lambda: nn.Sequential(
            nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv3d(2, 1, (1, 3, 3), stride=(1, 2, 2))
        ),
        (1, 1, 8, 12, 12),
    ),
    "pool3d": (
        lambda: nn.Sequential(nn.Conv3d(1, 2, 3), nn.MaxPool3d(2), nn.Conv3d(2, 1, 2)),
        (1, 1, 14, 14, 14),
    ),
    "asymmetric_kernels": (
        lambda: nn.Sequential(
            conv(1, 2, (1, 7), padding=(0, 3)), conv(2, 1, (7, 1), padding=(3, 0))
        ),
        (1, 1, 24, 24),
    ),
    "asymmetric_strides": (
        lambda: nn.Sequential(
            conv(1, 2, 3, stride=(1, 2)), conv(2, 1, (3, 5), stride=(2, 1), dilation=(1, 2))
        ),
        (1, 1, 30, 40),
    ),
    "pixel_shuffle": (
        lambda: nn.Sequential(
            conv(1, 8, 3, padding=1), nn.PixelShuffle(2), conv(2, 1, 3, padding=1)
        ),
        (1, 1, 10, 10),
    ),
    "pixel_unshuffle": (lambda: nn.Sequential(nn.PixelUnshuffle(2), conv(4, 1, 3)), (1, 1, 16, 16)),
    "resize_conv_nearest": (
        lambda: nn.Sequential(nn.Upsample(scale_factor=2), conv(1, 1, 3, padding=1)),
        (1, 1, 8, 8),
    ),
    "resize_conv_bilinear": (
        lambda: nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear"), conv(1, 1, 3, padding=1)
        ),
        (1, 1, 8, 8),
    ),
    "fractional_nearest": (
        lambda: nn.Sequential(conv(1, 1, 3, padding=1), nn.Upsample(scale_factor=1.5)),
        (1, 1, 12, 12),
    ),
    "avgpool_ceil_pad": (
        lambda: nn.Sequential(conv(1, 2, 3), nn.AvgPool2d(3, 2, 1, ceil_mode=True), conv(2, 1, 3)),
        (1, 1, 21, 21),
    ),
    "maxpool_dilated": (
        lambda: nn.Sequential(nn.MaxPool2d(3, 1, dilation=2), conv(1, 1, 3)),
        (1, 1, 20, 20),
    ),
    "depthwise_separable": (
        lambda: nn.Sequential(
            conv(2, 2, 5, groups=2, padding=2), conv(2, 4, 1), conv(4, 4, 3, groups=4)
        ),
        (1, 2, 20, 20),
    ),
    "inception": (Inception, (1, 2, 16, 16)),
    "reflect_padding": (
        lambda: nn.Sequential(
            conv(1, 2, 5, padding=2, padding_mode="reflect"),
            conv(2, 1, 3, padding=1, padding_mode="circular"),
        ),
        (1, 1, 20, 20),
    ),
    "adaptive_pool": (
        lambda: nn.Sequential(conv(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(4), conv(2, 1, 1)),
        (1, 1, 16, 16),
    ),
    "same_even_kernel": (
        lambda: nn.Sequential(
            conv(1, 1, 4, padding="same"), conv(1, 1, 2, padding="same", dilation=3)
        ),
        (1, 1, 20, 20),
    ),
    "down_up_skip": (DownUpSkip, (1, 1, 16, 16)),
    "aspp_image_pooling": (ImagePoolingASPP, (1, 1, 16, 16)),
    "unet_valid_crop": (ValidUNet, (1, 1, 60, 60)),
    "strided_slice": (StridedSlice, (1, 1, 24, 26)),
    "squeeze_excite": (SqueezeExcite, (1, 1, 12, 12)),
    "difference_of_paths": (MaxOverSpace, (1, 1, 16, 16)),
}
