"""Source of the small user models that the pytester tests write into their projects
(``mymodels.py``): sound ones and ones with the bugs the plugin must report."""

MODELS_PY = """
import torch
from torch import nn
import torch.nn.functional as F


class Good(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 1, 2, stride=2)

    def forward(self, x):
        return self.up(F.max_pool2d(self.conv(x), 2))


class ShortDecoder(Good):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 1, 3, stride=2)


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 5)
        self.fc = nn.Linear(2 * 24 * 24, 3)

    def forward(self, x):
        return self.fc(self.conv(x).view(-1, 2 * 24 * 24))


class Gridded(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 3, padding=2, dilation=2)
        self.b = nn.Conv2d(1, 1, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.b(self.a(x))


def repeated():
    block = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())
    return nn.Sequential(*[block] * 3)


def broken():
    raise RuntimeError("no weights file")


def not_a_model():
    return 42
"""
