"""§四 PyTorch反卷积出现棱角 — "jagged edges from transposed convolution".

The article says the checkerboard ("jagged edges") of transposed convs is
removed "by a suitable kernel and stride" and offers this model as the fix:
``ConvTranspose2d(k=2, s=2)`` (kernel divisible by stride: even overlap) then
``ConvTranspose2d(k=5, s=1)`` (stride 1: no phases at all).

That is half true: an even overlap removes the *structural* cause, but the
weights can still paint the pattern (Aitken et al., arXiv 1707.02937).

On 28×28: 28 → 24 → 12 → 8 → 4 → 8 → 12.

Input it was written for: ``(1, 1, 28, 28)``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SHAPE = (1, 1, 28, 28)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()  # noqa: UP008 - written as in the article
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.up = nn.ConvTranspose2d(20, 10, kernel_size=2, stride=2)
        self.conv_trans = nn.ConvTranspose2d(10, 1, kernel_size=5)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.up(x))
        x = torch.sigmoid(self.conv_trans(x))
        return x
