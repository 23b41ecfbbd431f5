"""§五 PyTorch反卷积可视化特征 — "visualising features with transposed convolution".

The article says transposed convs map an input back to its feature maps and
activations, to see what a CNN has learned. The model: conv → pool → conv →
pool → ``ConvTranspose2d(k=2, s=2)`` → ``ConvTranspose2d(k=2, s=2)``.

On 28×28: 28 → 24 → 12 → 8 → 4 → 8 → 16 (not 28: the decoder does not undo
the encoder).

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
        self.up1 = nn.ConvTranspose2d(20, 10, kernel_size=2, stride=2)
        self.up2 = nn.ConvTranspose2d(10, 1, kernel_size=2, stride=2)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = self.up1(x)
        x = self.up2(x)
        return x
