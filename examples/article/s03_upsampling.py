"""§三 PyTorch反卷积上采样 — "upsampling with transposed convolution".

Despite the title, the model upsamples by interpolation, not by a transposed
conv: conv → pool → conv → pool → ``Upsample(×2, nearest)`` →
``Upsample(×2, bilinear)``. Interpolation has no kernel overlap, so no
structural checkerboard.

On 28×28: 28 → 24 → 12 → 8 → 4 → 8 → 16.

Input it was written for: ``(1, 1, 28, 28)``.
"""

import torch.nn as nn
import torch.nn.functional as F

INPUT_SHAPE = (1, 1, 28, 28)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()  # noqa: UP008 - written as in the article
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear")

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = self.up1(x)
        x = self.up2(x)
        return x
