"""§二 PyTorch空洞卷积 — "dilated convolution in PyTorch".

The article says dilation gives a larger receptive field than an ordinary
convolution. The model: conv 5×5 → max-pool 2 → conv 5×5 with ``dilation=2``
(effective kernel 9) → max-pool 2.

On 28×28: 28 → 24 → 12 → 4 → 2.

Input it was written for: ``(1, 1, 28, 28)``.
"""

import torch.nn as nn
import torch.nn.functional as F

INPUT_SHAPE = (1, 1, 28, 28)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()  # noqa: UP008 - written as in the article
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5, dilation=2)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return x
