"""Published architectures built by hand (no torchvision), for tests and benchmarks.

* ``vgg16_features()`` — the 13 convolutions and 5 max-pools of VGG-16
  (Simonyan & Zisserman, arXiv 1409.1556), up to pool5.
* ``resnet50()`` — ResNet-50 (He et al., arXiv 1512.03385) with the stride on
  the 3×3 convolution of each first bottleneck ("v1.5", as torchvision builds
  it), up to the last stage; ``head=True`` adds global pooling and the classifier.
* ``mobilenet_v1(width)`` — MobileNet-v1 (Howard et al., arXiv 1704.04861): a
  3×3 stride-2 conv and 13 depthwise-separable blocks, up to the last block;
  ``width`` divides the channel counts (the geometry is what the tests need).
* ``alexnet_features()`` — AlexNet's five convolutions and three max-pools as
  torchvision builds them (Krizhevsky et al. 2012; "one weird trick" variant).
"""

from __future__ import annotations

import torch
from torch import nn

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, head: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        cin = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = []
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
            if head
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x if self.head is None else self.head(x)


def resnet50(head: bool = False) -> ResNet50:
    return ResNet50(head=head)


# MobileNet-v1: (output channels, stride) of the 13 depthwise-separable blocks
MOBILENET_V1 = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *[(512, 1)] * 5,
    (1024, 2),
    (1024, 1),
]


def mobilenet_v1(width: int = 8) -> nn.Sequential:
    def bn_relu(channels: int) -> list[nn.Module]:
        return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]

    channels = 32 // width
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 2, 1, bias=False), *bn_relu(channels)]
    for out, stride in MOBILENET_V1:
        out //= width
        layers += [
            nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False),
            *bn_relu(channels),
            nn.Conv2d(channels, out, 1, bias=False),
            *bn_relu(out),
        ]
        channels = out
    return nn.Sequential(*layers)


def alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
