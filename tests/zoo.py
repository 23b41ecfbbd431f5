"""A zoo of hand-built conv architectures patterned after real model families.

Plain torch only, small (a few channels, small inputs) so that every analysis of
every model runs in milliseconds on a CPU. Each entry of :data:`ZOO` is a
:class:`ZooCase`; :func:`build` makes a model by its case name (the pytester test
writes this file into its project and points every model's factory at
``zoo_models:build`` with ``kwargs = { name = "..." }``).

The families follow the code of the libraries they come from (timm, torchvision,
MONAI, diffusers, Asteroid/Conv-TasNet, YOLOv5, TResNet, ESPCN/EDSR, ...), with
the idioms that make receptive fields hard: relayouts by ``view``/``permute``,
normalisation over channels written by hand, gates computed from global means,
attention by ``matmul``, dim-aware ops (softmax, cumsum) over a spatial axis.

Flags of a case:

``exact_field``
    the measured receptive field must equal the analytic one (for both readings
    of normalisation statistics); false where the analytic field is a documented
    over-approximation at the positions the measurement picks (``cumsum``: the
    field of position ``j`` is ``0..j``, the analytic one the whole axis).
``spans_statistics``
    a normalisation layer's statistics (GroupNorm, InstanceNorm, ...) span the
    spatial axes: with ``include_statistics=True`` the field covers every spatial
    axis, and ``ReceptiveField.statistics`` names the layers.
``global_field``
    the data path alone already makes every output depend on the whole input
    (a gate from a global mean, attention, a classifier head).
``allow``
    checks of ``pytest --convcheck`` that are right to flag this model (a
    structural checkerboard, gridding holes): reported, not failed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- helpers


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


# --------------------------------------------------------------------------- ECA (timm)


class EcaModule(nn.Module):
    """timm's ``EcaModule``: a 1-D conv over the channel axis of the global mean."""

    def __init__(
        self, channels: int, kernel_size: int | None = None, gamma: int = 2, beta: int = 1
    ):
        super().__init__()
        if kernel_size is None:  # timm: adaptive kernel size from the channel count
            t = int(abs(math.log(channels, 2) + beta) / gamma)
            kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.conv(y)
        y = y.sigmoid().view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


class EcaPooled(EcaModule):
    """The original ECA-Net code: adaptive average pooling, squeeze/transpose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.adaptive_avg_pool2d(x, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * torch.sigmoid(y)


class EcaBlock(nn.Module):
    def __init__(self, pooled: bool = False, kernel_size: int | None = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.eca = (EcaPooled if pooled else EcaModule)(8, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eca(self.conv(x))


class EcaBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.eca = EcaModule(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.eca(self.conv2(self.conv1(x))) + self.down(x))


class EcaResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_relu(3, 8, 3, 2)
        self.layer1 = EcaBasicBlock(8, 8, 1)
        self.layer2 = EcaBasicBlock(8, 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(self.stem(x)))


# --------------------------------------------------------------------------- squeeze-excite


class SqueezeExcite(nn.Module):
    """torchvision's ``SqueezeExcitation`` (1×1 convs on the pooled map)."""

    def __init__(self, c: int, reduction: int = 4, gate: Callable[..., Any] = torch.sigmoid):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // reduction, 1), 1)
        self.fc2 = nn.Conv2d(max(c // reduction, 1), c, 1)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(F.relu(self.fc1(s))))


class SqueezeExciteLinear(nn.Module):
    """The SENet paper's code: mean, two Linear layers, view back to N×C×1×1."""

    def __init__(self, c: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(c, c // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(c // reduction, c, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.fc(x.mean((2, 3))).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEBlock(nn.Module):
    def __init__(self, cin: int, cout: int, linear: bool = False):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout)
        self.se = SqueezeExciteLinear(cout) if linear else SqueezeExcite(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv(x))


class SEStack(nn.Module):
    def __init__(self, depth: int = 1, linear: bool = False):
        super().__init__()
        self.blocks = nn.Sequential(*[SEBlock(3 if i == 0 else 8, 8, linear) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


# --------------------------------------------------------------------------- layer scale


class LayerScale(nn.Module):
    """``gamma.view(1, -1, 1, 1) * conv(x)`` (``gamma_first``) or ``conv(x) * gamma``
    with ``gamma`` of shape C×1×1."""

    def __init__(self, gamma_first: bool = True, stride: int = 1, residual: bool = False):
        super().__init__()
        self.gamma_first = gamma_first
        self.residual = residual
        self.conv = nn.Conv2d(4, 4, 3, stride, 1)
        shape = (4,) if gamma_first else (4, 1, 1)
        self.gamma = nn.Parameter(torch.full(shape, 0.5) + 0.1 * torch.randn(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma_first:
            y = self.gamma.view(1, -1, 1, 1) * self.conv(x)
        else:
            y = self.conv(x) * self.gamma
        return x + y if self.residual else y


class LayerScaleStack(nn.Module):
    """Three residual layer-scaled blocks, alternating both orders (CaiT-style)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(
            LayerScale(True, residual=True),
            LayerScale(False, residual=True),
            LayerScale(True, residual=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


# --------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of an N×C×H×W map, by permute → F.layer_norm → permute."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock2d(nn.Module):
    """timm's ``ConvNeXtBlock`` with ``conv_mlp=True``: LayerNorm2d and 1×1 convs."""

    def __init__(self, c: int, kernel: int = 7):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, kernel, padding=kernel // 2, groups=c)
        self.norm = LayerNorm2d(c)
        self.pw1 = nn.Conv2d(c, 4 * c, 1)
        self.pw2 = nn.Conv2d(4 * c, c, 1)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw2(F.gelu(self.pw1(self.norm(self.conv_dw(x)))))
        return x + self.gamma.view(1, -1, 1, 1) * y


class ConvNeXtBlockLast(nn.Module):
    """The official ConvNeXt block: dw 7×7, then channels-last LayerNorm and a
    Linear MLP, layer scale, permute back, residual."""

    def __init__(self, c: int, kernel: int = 7):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, kernel, padding=kernel // 2, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return shortcut + x


class ConvNeXtTiny(nn.Module):
    """Stem (4×4 stride 4 + LayerNorm2d), two blocks, a downsampling layer, one block."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        block = ConvNeXtBlockLast if channels_last else ConvNeXtBlock2d
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 4, 4), LayerNorm2d(8))
        self.stage1 = nn.Sequential(block(8), block(8))
        self.down = nn.Sequential(LayerNorm2d(8), nn.Conv2d(8, 16, 2, 2))
        self.stage2 = block(16, kernel=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage2(self.down(self.stage1(self.stem(x))))


def convnext_block(channels_last: bool = False) -> nn.Module:
    return (ConvNeXtBlockLast if channels_last else ConvNeXtBlock2d)(4)


# --------------------------------------------------------------------------- norm U-Nets


def _norm(kind: str, c: int, dims: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(2, c)
    if kind == "instance":  # MONAI's default norm: InstanceNorm, affine=False
        return (nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d)(c)
    return (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(c)


class ConvNormAct(nn.Module):
    """MONAI's ``Convolution``: conv → norm → activation (PReLU by default)."""

    def __init__(self, cin: int, cout: int, dims: int, norm: str, stride: int = 1):
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.conv = conv(cin, cout, 3, stride, 1)
        self.norm = _norm(norm, cout, dims)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class NormUNet(nn.Module):
    """A two-level MONAI-style U-Net: strided conv down, transposed conv up, concat."""

    def __init__(self, dims: int = 2, norm: str = "instance"):
        super().__init__()
        up = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        final = nn.Conv3d if dims == 3 else nn.Conv2d
        self.enc1 = ConvNormAct(1, 4, dims, norm)
        self.enc2 = ConvNormAct(4, 8, dims, norm, stride=2)
        self.bottom = ConvNormAct(8, 8, dims, norm, stride=2)
        self.up2 = up(8, 8, 2, 2)
        self.dec2 = ConvNormAct(16, 4, dims, norm)
        self.up1 = up(4, 4, 2, 2)
        self.dec1 = ConvNormAct(8, 4, dims, norm)
        self.out = final(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        b = self.bottom(e2)
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


class ConvGroupNormConv(nn.Module):
    def __init__(self, norm: str = "group"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4) if norm == "group" else nn.InstanceNorm2d(4, affine=True)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.silu(self.norm(self.conv1(x))))


# --------------------------------------------------------------------------- space-to-depth


class SpaceToDepthView(nn.Module):
    """TResNet's ``SpaceToDepth``: view → permute → view, block size ``bs``."""

    def __init__(self, bs: int = 4):
        super().__init__()
        self.bs = bs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        bs = self.bs
        x = x.view(n, c, h // bs, bs, w // bs, bs)
        x = x.permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(n, c * bs * bs, h // bs, w // bs)


class SpaceToDepthReshape(nn.Module):
    """The same with reshape and the other channel order (channel-major)."""

    def __init__(self, bs: int = 2):
        super().__init__()
        self.bs = bs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        bs = self.bs
        x = x.reshape(n, c, h // bs, bs, w // bs, bs).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(n, c * bs * bs, h // bs, w // bs)


class SpaceToDepthNet(nn.Module):
    def __init__(self, how: str = "view", bs: int = 4):
        super().__init__()
        cin = 3 * bs * bs
        if how == "view":
            self.s2d: nn.Module = SpaceToDepthView(bs)
        elif how == "reshape":
            self.s2d = SpaceToDepthReshape(bs)
        else:
            self.s2d = nn.PixelUnshuffle(bs)
        self.conv = nn.Conv2d(cin, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.s2d(x))


class Focus(nn.Module):
    """YOLOv5's ``Focus``: four strided slices concatenated on channels, then a conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 8, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat(
            [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1
        )
        return self.conv(x)


# --------------------------------------------------------------------------- depth-to-space


class DepthToSpaceView(nn.Module):
    """ONNX ``DepthToSpace`` in DCR mode: view → permute → reshape."""

    def __init__(self, r: int = 2):
        super().__init__()
        self.r = r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        r = self.r
        x = x.view(n, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // (r * r), h * r, w * r)


class SubPixelUpsampler(nn.Module):
    """ESPCN / EDSR: conv → depth-to-space (PixelShuffle or view/permute), ``stages`` times."""

    def __init__(self, how: str = "shuffle", stages: int = 1, r: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, 4, 5, padding=2)
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [
                nn.Conv2d(4, 4 * r * r, 3, padding=1),
                nn.PixelShuffle(r) if how == "shuffle" else DepthToSpaceView(r),
            ]
        self.up = nn.Sequential(*layers)
        self.tail = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.up(torch.tanh(self.head(x))))


# --------------------------------------------------------------------------- non-local


class NonLocal2d(nn.Module):
    """Wang et al.'s embedded-Gaussian non-local block (flatten, matmul, softmax)."""

    def __init__(self, c: int, sub_sample: bool = False):
        super().__init__()
        inter = max(c // 2, 1)
        self.inter = inter
        self.theta = nn.Conv2d(c, inter, 1)
        self.phi = nn.Conv2d(c, inter, 1)
        self.g = nn.Conv2d(c, inter, 1)
        self.w = nn.Conv2d(inter, c, 1)
        self.sub_sample = sub_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        phi, g = self.phi(x), self.g(x)
        if self.sub_sample:
            phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
        theta = self.theta(x).view(b, self.inter, -1).permute(0, 2, 1)
        phi = phi.view(b, self.inter, -1)
        attn = F.softmax(torch.matmul(theta, phi), dim=-1)
        g = g.view(b, self.inter, -1).permute(0, 2, 1)
        y = torch.matmul(attn, g).permute(0, 2, 1).contiguous().view(b, self.inter, h, w)
        return x + self.w(y)


class NonLocalNet(nn.Module):
    def __init__(self, sub_sample: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.block = NonLocal2d(8, sub_sample)
        self.head = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.conv(x)))


# --------------------------------------------------------------------------- VAE decoder


class ResnetBlockGN(nn.Module):
    """diffusers' ``ResnetBlock2D``: GroupNorm → SiLU → conv, twice, plus shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(2, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(2, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class AttnBlockGN(nn.Module):
    """The VAE's mid-block attention: GroupNorm, q/k/v 1×1 convs, bmm, softmax."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.GroupNorm(2, c, eps=1e-6)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q = self.q(n).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(n).reshape(b, c, h * w)
        attn = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)
        v = self.v(n).reshape(b, c, h * w)
        out = torch.bmm(v, attn.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj(out)


class VAEDecoder(nn.Module):
    def __init__(self, attention: bool = False):
        super().__init__()
        self.conv_in = nn.Conv2d(4, 8, 3, padding=1)
        self.mid = nn.Sequential(
            ResnetBlockGN(8, 8), AttnBlockGN(8) if attention else nn.Identity()
        )
        self.up_block = ResnetBlockGN(8, 4)
        self.up_conv = nn.Conv2d(4, 4, 3, padding=1)
        self.norm_out = nn.GroupNorm(2, 4, eps=1e-6)
        self.conv_out = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up_block(self.mid(self.conv_in(z)))
        h = self.up_conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


# --------------------------------------------------------------------------- TasNet


class TasNet(nn.Module):
    """A TasNet encoder/decoder: Conv1d(kernel L, stride L/2) → ReLU → ConvTranspose1d.

    ``separator``: ``None`` (encoder/decoder only), ``"gln"`` (Conv-TasNet TCN with
    global layer norm = GroupNorm(1, C)) or ``"cln"`` (channel-wise LayerNorm by
    transpose → nn.LayerNorm → transpose)."""

    def __init__(self, separator: str | None = None, kernel: int = 16, filters: int = 8):
        super().__init__()
        stride = kernel // 2
        self.encoder = nn.Conv1d(1, filters, kernel, stride, bias=False)
        self.decoder = nn.ConvTranspose1d(filters, 1, kernel, stride, bias=False)
        self.separator = separator
        if separator is not None:
            self.bottleneck = nn.Conv1d(filters, 8, 1)
            self.blocks = nn.ModuleList(TCNBlock(8, d, separator) for d in (1, 2, 4, 8))
            self.mask = nn.Conv1d(8, filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.relu(self.encoder(x))
        if self.separator is not None:
            y = self.bottleneck(w)
            for block in self.blocks:
                y = block(y)
            w = w * torch.sigmoid(self.mask(y))
        return self.decoder(w)


class ChannelLayerNorm1d(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class TCNBlock(nn.Module):
    """Conv-TasNet's 1-D conv block: 1×1 → PReLU → norm → dilated depthwise → PReLU →
    norm → 1×1, residual."""

    def __init__(self, c: int, dilation: int, norm: str):
        super().__init__()
        hidden = 2 * c

        def make_norm() -> nn.Module:
            return nn.GroupNorm(1, hidden) if norm == "gln" else ChannelLayerNorm1d(hidden)

        self.inp = nn.Conv1d(c, hidden, 1)
        self.act1 = nn.PReLU()
        self.norm1 = make_norm()
        self.dw = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation, groups=hidden)
        self.act2 = nn.PReLU()
        self.norm2 = make_norm()
        self.out = nn.Conv1d(hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(self.act1(self.inp(x)))
        y = self.norm2(self.act2(self.dw(y)))
        return x + self.out(y)


class WaveNetCausal(nn.Module):
    """Causal dilated Conv1d stack (dilations 1, 2, 4, 8), left padding by F.pad,
    gated activations and residuals."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv1d(1, 4, 1)
        self.filters = nn.ModuleList(nn.Conv1d(4, 4, 2, dilation=d) for d in (1, 2, 4, 8))
        self.gates = nn.ModuleList(nn.Conv1d(4, 4, 2, dilation=d) for d in (1, 2, 4, 8))
        self.dilations = (1, 2, 4, 8)
        self.out = nn.Conv1d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for d, f, g in zip(self.dilations, self.filters, self.gates, strict=True):
            p = F.pad(h, (d, 0))
            h = h + torch.tanh(f(p)) * torch.sigmoid(g(p))
        return self.out(h)


# --------------------------------------------------------------------------- dilated stacks


class DilatedStack(nn.Module):
    def __init__(self, dilations: tuple[int, ...] | list[int] = (2, 2, 2), dims: int = 2):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.convs = nn.ModuleList(
            conv(1 if i == 0 else 4, 4, 3, padding=d, dilation=d) for i, d in enumerate(dilations)
        )
        self.head = conv(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = F.relu(c(x))
        return self.head(x)


# --------------------------------------------------------------------------- FPN


class FPN(nn.Module):
    """A detection-style FPN over a three-stage backbone (strides 2, 4, 8): lateral
    1×1 convs, top-down nearest upsampling and add, 3×3 output convs. ``size_mode``
    upsamples to the lateral's size (torchvision's FeaturePyramidNetwork, which
    copes with odd sizes) and returns an ordered dict; otherwise ``scale_factor=2``
    and a tuple. The finest map comes first."""

    def __init__(self, size_mode: bool = False):
        super().__init__()
        self.c1 = conv_bn_relu(3, 4, 3, 2)
        self.c2 = conv_bn_relu(4, 8, 3, 2)
        self.c3 = conv_bn_relu(8, 8, 3, 2)
        self.lateral = nn.ModuleList(nn.Conv2d(c, 4, 1) for c in (4, 8, 8))
        self.output = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(3))
        self.size_mode = size_mode

    def forward(self, x: torch.Tensor) -> Any:
        f1 = self.c1(x)
        f2 = self.c2(f1)
        f3 = self.c3(f2)
        lat = [layer(f) for layer, f in zip(self.lateral, (f1, f2, f3), strict=True)]
        tops = [lat[2]]
        for lateral in (lat[1], lat[0]):
            if self.size_mode:
                up = F.interpolate(tops[-1], size=lateral.shape[-2:], mode="nearest")
            else:
                up = F.interpolate(tops[-1], scale_factor=2, mode="nearest")
            tops.append(lateral + up)
        p3, p2, p1 = (conv(t) for conv, t in zip(self.output, tops, strict=True))
        if self.size_mode:
            return OrderedDict([("p1", p1), ("p2", p2), ("p3", p3)])
        return p1, p2, p3


# --------------------------------------------------------------------------- classifiers


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class TinyResNet(nn.Module):
    """torchvision's ResNet layout at toy width; ``head=False`` returns the trunk's map."""

    def __init__(self, head: bool = True, classes: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, 2)
        self.head = head
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        if not self.head:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyVGG(nn.Module):
    """VGG's layout: (conv-conv-pool) × 3, flatten, a Linear head."""

    def __init__(self, size: int = 32, classes: int = 5):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in (4, 8, 8):
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, 2),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(8 * (size // 8) ** 2, 16), nn.ReLU(True), nn.Dropout(), nn.Linear(16, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- MobileNet


class DepthwiseSeparable(nn.Module):
    """MobileNet-v1: dw 3×3 → BN → ReLU → pw 1×1 → BN → ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = conv_bn_relu(cin, cin, 3, stride, groups=cin)
        self.pw = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class InvertedResidual(nn.Module):
    """MobileNet-v2/v3: expand 1×1 → dw k×k → (SE) → project 1×1, residual when it fits."""

    def __init__(
        self, cin: int, cout: int, stride: int, expand: int = 4, kernel: int = 3, v3: bool = False
    ):
        super().__init__()
        hidden = cin * expand
        act: type[nn.Module] = nn.Hardswish if v3 else nn.ReLU6
        self.expand = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()
        )
        self.dw = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            act(),
        )
        self.se = SqueezeExcite(hidden, 4, F.hardsigmoid) if v3 else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class MobileNet(nn.Module):
    def __init__(self, version: int = 1):
        super().__init__()
        self.stem = conv_bn_relu(3, 8, 3, 2)
        if version == 1:
            self.blocks = nn.Sequential(DepthwiseSeparable(8, 8, 1), DepthwiseSeparable(8, 16, 2))
        else:
            v3 = version == 3
            k = 5 if v3 else 3
            self.blocks = nn.Sequential(
                InvertedResidual(8, 8, 1, kernel=k, v3=v3),
                InvertedResidual(8, 12, 2, kernel=k, v3=v3),
                InvertedResidual(12, 12, 1, kernel=k, v3=v3),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


# --------------------------------------------------------------------------- slicing


class StridedSlice(nn.Module):
    """conv → ``x[:, :, start::step, start::step]`` → conv."""

    def __init__(self, start: int = 0, step: int = 2):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 3, padding=1)
        self.start, self.step = start, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)[:, :, self.start :: self.step, self.start :: self.step]
        return self.b(y)


class CropSlice(nn.Module):
    """Valid convs with a centre crop by slicing and an off-centre crop (narrow)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3)
        self.b = nn.Conv2d(4, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)[..., 2:-2, 1:-3]
        return self.b(y.narrow(2, 1, y.shape[2] - 2))


# --------------------------------------------------------------------------- channel shuffle


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: view → transpose → view."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnitV1(nn.Module):
    """ShuffleNet-v1 unit: group 1×1 → shuffle → dw 3×3 → group 1×1; residual add
    (stride 1) or concat with an average-pooled shortcut (stride 2)."""

    def __init__(self, c: int = 8, groups: int = 2, stride: int = 1):
        super().__init__()
        self.groups, self.stride = groups, stride
        self.g1 = nn.Conv2d(c, c, 1, groups=groups, bias=False)
        self.dw = nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False)
        self.g2 = nn.Conv2d(c, c, 1, groups=groups, bias=False)  # stride 2: concat → 2c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(F.relu(self.g1(x)), self.groups)
        y = self.g2(self.dw(y))
        if self.stride == 1:
            return F.relu(x + y)
        return F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), y], 1))


class ShuffleUnitV2(nn.Module):
    """ShuffleNet-v2 unit: ``chunk(2, dim=1)``, one branch convolved, concat, shuffle;
    stride 2: both branches convolved."""

    def __init__(self, c: int = 8, stride: int = 1):
        super().__init__()
        self.stride = stride
        half = c // 2
        cin = half if stride == 1 else c
        self.branch2 = nn.Sequential(
            conv_bn_relu(cin, half, 1),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False),
            nn.BatchNorm2d(half),
            conv_bn_relu(half, half, 1),
        )
        self.branch1 = (
            nn.Sequential(
                nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False),
                nn.BatchNorm2d(c),
                conv_bn_relu(c, half, 1),
            )
            if stride == 2
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNet(nn.Module):
    def __init__(self, version: int = 1):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        if version == 1:
            self.units = nn.Sequential(ShuffleUnitV1(8, 2, 1), ShuffleUnitV1(8, 2, 2))
        else:
            self.units = nn.Sequential(ShuffleUnitV2(8, 2), ShuffleUnitV2(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.stem(x))


# --------------------------------------------------------------------------- softmax, cumsum


class ConvSoftmax(nn.Module):
    """conv 3×3 → softmax over ``dim`` (a spatial axis), or over the flattened
    spatial axes (``dim="spatial"``: a spatial softmax, as in keypoint heads)."""

    def __init__(self, dim: int | str = -1):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.dim == "spatial":
            b, c, h, w = y.shape
            return F.softmax(y.view(b, c, h * w), dim=-1).view(b, c, h, w)
        return torch.softmax(y, dim=int(self.dim))


class ConvCumsum(nn.Module):
    """conv 3×3 → cumsum along W (``integral``: along H then W, an integral image,
    followed by a conv)."""

    def __init__(self, integral: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.integral = integral
        self.after = nn.Conv2d(2, 2, 3, padding=1) if integral else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = y.cumsum(dim=2).cumsum(dim=3) if self.integral else torch.cumsum(y, dim=-1)
        return self.after(y)


# --------------------------------------------------------------------------- ASPP


class ASPPPooling(nn.Sequential):
    """torchvision's image-pooling branch: global average → 1×1 conv → BN → ReLU →
    bilinear upsampling back to the map's size."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, rates: tuple[int, ...] | list[int] = (2, 4, 6), pooling: bool = True):
        super().__init__()
        self.stem = conv_bn_relu(3, 8, 3, 2)
        branches: list[nn.Module] = [conv_bn_relu(8, 4, 1)]
        for r in rates:
            branches.append(
                nn.Sequential(
                    nn.Conv2d(8, 4, 3, padding=r, dilation=r, bias=False),
                    nn.BatchNorm2d(4),
                    nn.ReLU(),
                )
            )
        if pooling:
            branches.append(ASPPPooling(8, 4))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Conv2d(4 * len(branches), 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.project(torch.cat([b(x) for b in self.convs], dim=1))


# --------------------------------------------------------------------------- transposed decoders


class DeconvDecoder(nn.Module):
    """A DCGAN-style decoder: three ConvTranspose2d (kernel ``k``, stride 2).
    ``k=4, padding=1`` overlaps evenly; ``k=3`` (with ``output_padding=1``) does not:
    the classic checkerboard."""

    def __init__(self, k: int = 4):
        super().__init__()
        pad, out_pad = (1, 0) if k == 4 else (1, 1)
        self.layers = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, k, 2, pad, out_pad)
            for c_in, c_out in ((8, 4), (4, 4), (4, 1))
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            z = layer(z)
            if i < len(self.layers) - 1:
                z = F.leaky_relu(z, 0.2)
        return torch.tanh(z)


# --------------------------------------------------------------------------- crop U-Nets


def _double_conv(cin: int, cout: int, padding: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=padding),
        nn.ReLU(inplace=True),
    )


def center_crop(skip: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _, _, h, w = target.shape
    dy = (skip.shape[2] - h) // 2
    dx = (skip.shape[3] - w) // 2
    return skip[:, :, dy : dy + h, dx : dx + w]


class CropUNet(nn.Module):
    """Ronneberger et al.'s U-Net at depth 2: valid convs, max-pooling, 2×2 up-convs,
    centre crop of the skip and concat (60×60 → 20×20)."""

    def __init__(self):
        super().__init__()
        self.d1 = _double_conv(1, 4, 0)
        self.d2 = _double_conv(4, 8, 0)
        self.bottom = _double_conv(8, 8, 0)
        self.up2 = nn.ConvTranspose2d(8, 8, 2, 2)
        self.u2 = _double_conv(16, 8, 0)
        self.up1 = nn.ConvTranspose2d(8, 4, 2, 2)
        self.u1 = _double_conv(8, 4, 0)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.d1(x)
        s2 = self.d2(F.max_pool2d(s1, 2))
        b = self.bottom(F.max_pool2d(s2, 2))
        u = self.up2(b)
        u = self.u2(torch.cat([center_crop(s2, u), u], 1))
        u = self.up1(u)
        u = self.u1(torch.cat([center_crop(s1, u), u], 1))
        return self.out(u)


class PadUNet(nn.Module):
    """milesial/Pytorch-UNet: padded convs, bilinear upsampling, ``F.pad`` of the
    upsampled map to the skip's (odd) size, concat."""

    def __init__(self):
        super().__init__()
        self.inc = _double_conv(1, 4, 1)
        self.down1 = _double_conv(4, 8, 1)
        self.down2 = _double_conv(8, 8, 1)
        self.up1 = _double_conv(16, 4, 1)
        self.up2 = _double_conv(8, 4, 1)
        self.outc = nn.Conv2d(4, 2, 1)

    @staticmethod
    def _up(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = F.interpolate(x1, scale_factor=2, mode="bilinear", align_corners=True)
        dy = x2.size(2) - x1.size(2)
        dx = x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return torch.cat([x2, x1], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        y = self.up1(self._up(x3, x2))
        y = self.up2(self._up(y, x1))
        return self.outc(y)


# --------------------------------------------------------------------------- padding modes


class CircularConv(nn.Module):
    """Two 3×3 convs with ``padding_mode="circular"`` (periodic domains: climate and
    panorama models): the field of a border position wraps to the opposite side."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular")
        self.b = nn.Conv2d(4, 1, 3, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


class CycleGANResBlock(nn.Module):
    """CycleGAN's ResnetBlock: ReflectionPad2d → conv → InstanceNorm → ReLU, twice, with
    a residual; behind a 7×7 reflection-padded stem."""

    def __init__(self, c: int = 4):
        super().__init__()
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, c, 7), nn.InstanceNorm2d(c), nn.ReLU(True)
        )
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return y + self.block(y)


# --------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class ZooCase:
    """One model of the zoo: ``factory(**kwargs)`` builds it; ``input_shape`` includes
    batch and channels. See the module docstring for the flags."""

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    exact_field: bool = True
    spans_statistics: bool = False
    global_field: bool = False
    allow: tuple[str, ...] = ()

    def build(self) -> nn.Module:
        return self.factory(**self.kwargs)

    @property
    def spatial(self) -> int:
        return len(self.input_shape) - 2


def _c(
    name: str, factory: Callable[..., nn.Module], shape: tuple[int, ...], **flags: Any
) -> ZooCase:
    kwargs = flags.pop("kwargs", {})
    return ZooCase(name, factory, shape, kwargs, **flags)


IMG = (2, 3, 32, 32)
GRAY = (2, 1, 16, 16)

ZOO: list[ZooCase] = [
    # ECA (timm)
    _c("eca_block", EcaBlock, (2, 3, 16, 16), family="eca", global_field=True),
    _c(
        "eca_pooled",
        EcaBlock,
        (2, 3, 16, 16),
        kwargs={"pooled": True},
        family="eca",
        global_field=True,
    ),
    _c(
        "eca_k5",
        EcaBlock,
        (2, 3, 16, 16),
        kwargs={"kernel_size": 5},
        family="eca",
        global_field=True,
    ),
    _c("eca_resnet", EcaResNet, IMG, family="eca", global_field=True),
    # squeeze-and-excitation
    _c("se_block", SEStack, IMG, family="se", global_field=True),
    _c("se_linear", SEStack, IMG, kwargs={"linear": True}, family="se", global_field=True),
    _c("se_stack12", SEStack, (2, 3, 16, 16), kwargs={"depth": 12}, family="se", global_field=True),
    # layer scale
    _c(
        "layerscale_gamma_first",
        LayerScale,
        (2, 4, 16, 16),
        kwargs={"gamma_first": True, "stride": 2},
        family="layerscale",
    ),
    _c(
        "layerscale_gamma_last",
        LayerScale,
        (2, 4, 16, 16),
        kwargs={"gamma_first": False, "stride": 2},
        family="layerscale",
    ),
    _c("layerscale_residual_stack", LayerScaleStack, (2, 4, 16, 16), family="layerscale"),
    # ConvNeXt
    _c("convnext_block_ln2d", convnext_block, (2, 4, 16, 16), family="convnext"),
    _c(
        "convnext_block_channels_last",
        convnext_block,
        (2, 4, 16, 16),
        kwargs={"channels_last": True},
        family="convnext",
    ),
    _c("convnext_tiny_ln2d", ConvNeXtTiny, (2, 3, 64, 64), family="convnext"),
    _c(
        "convnext_tiny_channels_last",
        ConvNeXtTiny,
        (2, 3, 64, 64),
        kwargs={"channels_last": True},
        family="convnext",
    ),
    # norm U-Nets (MONAI style)
    _c(
        "unet_instancenorm_2d",
        NormUNet,
        GRAY,
        kwargs={"dims": 2, "norm": "instance"},
        family="norm-unet",
        spans_statistics=True,
    ),
    _c(
        "unet_groupnorm_2d",
        NormUNet,
        GRAY,
        kwargs={"dims": 2, "norm": "group"},
        family="norm-unet",
        spans_statistics=True,
    ),
    _c(
        "unet_instancenorm_3d",
        NormUNet,
        (2, 1, 8, 8, 8),
        kwargs={"dims": 3, "norm": "instance"},
        family="norm-unet",
        spans_statistics=True,
    ),
    _c(
        "unet_groupnorm_3d",
        NormUNet,
        (2, 1, 8, 8, 8),
        kwargs={"dims": 3, "norm": "group"},
        family="norm-unet",
        spans_statistics=True,
    ),
    _c(
        "unet_batchnorm_3d",
        NormUNet,
        (2, 1, 8, 8, 8),
        kwargs={"dims": 3, "norm": "batch"},
        family="norm-unet",
    ),
    _c("conv_groupnorm_conv", ConvGroupNormConv, GRAY, family="norm-unet", spans_statistics=True),
    _c(
        "conv_instancenorm_conv",
        ConvGroupNormConv,
        GRAY,
        kwargs={"norm": "instance"},
        family="norm-unet",
        spans_statistics=True,
    ),
    # space-to-depth
    _c(
        "s2d_view_tresnet",
        SpaceToDepthNet,
        IMG,
        kwargs={"how": "view", "bs": 4},
        family="space-to-depth",
    ),
    _c(
        "s2d_reshape",
        SpaceToDepthNet,
        IMG,
        kwargs={"how": "reshape", "bs": 2},
        family="space-to-depth",
    ),
    _c(
        "s2d_pixel_unshuffle",
        SpaceToDepthNet,
        IMG,
        kwargs={"how": "unshuffle", "bs": 2},
        family="space-to-depth",
    ),
    _c("s2d_focus_yolov5", Focus, IMG, family="space-to-depth"),
    # depth-to-space
    _c("d2s_pixel_shuffle", SubPixelUpsampler, (2, 3, 16, 16), family="depth-to-space"),
    _c(
        "d2s_view_permute",
        SubPixelUpsampler,
        (2, 3, 16, 16),
        kwargs={"how": "view"},
        family="depth-to-space",
    ),
    _c(
        "d2s_edsr_x4",
        SubPixelUpsampler,
        (2, 3, 8, 8),
        kwargs={"stages": 2},
        family="depth-to-space",
    ),
    # non-local attention
    _c("nonlocal", NonLocalNet, (2, 3, 16, 16), family="non-local", global_field=True),
    _c(
        "nonlocal_subsampled",
        NonLocalNet,
        (2, 3, 16, 16),
        kwargs={"sub_sample": True},
        family="non-local",
        global_field=True,
    ),
    # VAE decoder (diffusers)
    _c("vae_decoder", VAEDecoder, (2, 4, 8, 8), family="vae", spans_statistics=True),
    _c(
        "vae_decoder_attention",
        VAEDecoder,
        (2, 4, 8, 8),
        kwargs={"attention": True},
        family="vae",
        spans_statistics=True,
        global_field=True,
    ),
    # TasNet / Conv-TasNet / WaveNet (1-D)
    _c("tasnet_encdec", TasNet, (2, 1, 512), family="tasnet"),
    _c(
        "conv_tasnet_gln",
        TasNet,
        (2, 1, 512),
        kwargs={"separator": "gln"},
        family="tasnet",
        spans_statistics=True,
    ),
    _c("conv_tasnet_cln", TasNet, (2, 1, 512), kwargs={"separator": "cln"}, family="tasnet"),
    _c("wavenet_causal", WaveNetCausal, (2, 1, 128), family="tasnet"),
    # dilated stacks
    _c(
        "gridding_222",
        DilatedStack,
        GRAY,
        kwargs={"dilations": [2, 2, 2]},
        family="dilated",
        allow=("receptive_field",),
    ),
    _c("hdc_125", DilatedStack, (2, 1, 24, 24), kwargs={"dilations": [1, 2, 5]}, family="dilated"),
    _c(
        "context_module_yu_koltun",
        DilatedStack,
        (2, 1, 32, 32),
        kwargs={"dilations": [1, 1, 2, 4, 8, 16, 1]},
        family="dilated",
    ),
    _c(
        "gridding_1d_24",
        DilatedStack,
        (2, 1, 64),
        kwargs={"dilations": [2, 4], "dims": 1},
        family="dilated",
        allow=("receptive_field",),
    ),
    _c(
        "hdc_3d_123",
        DilatedStack,
        (2, 1, 12, 12, 12),
        kwargs={"dilations": [1, 2, 3], "dims": 3},
        family="dilated",
    ),
    # FPN
    _c("fpn_nearest_x2", FPN, IMG, family="fpn"),
    # nearest upsampling 8 → 15 (period 15/8) merged with the stride-2 lateral: an
    # add of unequal strides, exact all the same (23)
    _c("fpn_nearest_size_odd", FPN, (2, 3, 30, 30), kwargs={"size_mode": True}, family="fpn"),
    # classifiers
    _c("resnet_tiny", TinyResNet, IMG, family="classifier", global_field=True),
    _c("resnet_trunk", TinyResNet, IMG, kwargs={"head": False}, family="classifier"),
    _c("vgg_tiny", TinyVGG, IMG, family="classifier", global_field=True),
    # MobileNet
    _c("mobilenet_v1", MobileNet, IMG, kwargs={"version": 1}, family="mobilenet"),
    _c("mobilenet_v2", MobileNet, IMG, kwargs={"version": 2}, family="mobilenet"),
    _c(
        "mobilenet_v3_se",
        MobileNet,
        IMG,
        kwargs={"version": 3},
        family="mobilenet",
        global_field=True,
    ),
    # strided slicing
    _c("strided_slice_2", StridedSlice, (2, 2, 16, 16), family="slicing"),
    _c(
        "strided_slice_offset_3",
        StridedSlice,
        (2, 2, 18, 18),
        kwargs={"start": 1, "step": 3},
        family="slicing",
    ),
    _c("crop_slice_narrow", CropSlice, (2, 2, 16, 16), family="slicing"),
    # channel shuffle
    _c("shufflenet_v1", ShuffleNet, IMG, kwargs={"version": 1}, family="shuffle"),
    _c("shufflenet_v2", ShuffleNet, IMG, kwargs={"version": 2}, family="shuffle"),
    # softmax and cumsum over spatial dims
    _c("softmax_w", ConvSoftmax, GRAY, family="dim-aware"),
    _c("softmax_h", ConvSoftmax, GRAY, kwargs={"dim": 2}, family="dim-aware"),
    _c(
        "spatial_softmax",
        ConvSoftmax,
        GRAY,
        kwargs={"dim": "spatial"},
        family="dim-aware",
        global_field=True,
    ),
    _c("cumsum_w", ConvCumsum, GRAY, family="dim-aware", exact_field=False),
    _c(
        "integral_image",
        ConvCumsum,
        GRAY,
        kwargs={"integral": True},
        family="dim-aware",
        exact_field=False,
    ),
    # ASPP
    _c("aspp_image_pooling", ASPP, IMG, family="aspp", global_field=True),
    # rates 2, 4, 6 after a stride-2 stem leave input positions no path reaches (the
    # backbone of a real DeepLab hides them): the plugin is right to report holes
    _c(
        "aspp_no_pooling",
        ASPP,
        IMG,
        kwargs={"pooling": False},
        family="aspp",
        allow=("receptive_field",),
    ),
    # transposed-conv decoders
    _c("deconv_k4s2_even", DeconvDecoder, (2, 8, 4, 4), family="deconv"),
    _c(
        "deconv_k3s2_checkerboard",
        DeconvDecoder,
        (2, 8, 4, 4),
        kwargs={"k": 3},
        family="deconv",
        allow=("checkerboard",),
    ),
    # padding modes
    _c("circular_pad_conv", CircularConv, GRAY, family="padding"),
    _c(
        "cyclegan_reflect_resblock",
        CycleGANResBlock,
        (2, 3, 16, 16),
        family="padding",
        spans_statistics=True,
    ),
    # U-Nets with crop or pad and concat
    _c("unet_valid_crop", CropUNet, (2, 1, 60, 60), family="crop-unet"),
    _c("unet_pad_bilinear_odd", PadUNet, (2, 1, 30, 30), family="crop-unet"),
]

_BY_NAME = {case.name: case for case in ZOO}
assert len(_BY_NAME) == len(ZOO), "zoo names must be unique"


def build(name: str) -> nn.Module:
    """The zoo model called ``name`` (the pytester project's factory)."""
    return _BY_NAME[name].build()


def case(name: str) -> ZooCase:
    return _BY_NAME[name]
