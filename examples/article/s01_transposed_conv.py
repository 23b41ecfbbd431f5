"""§一 PyTorch反卷积函数 — "PyTorch's transposed-convolution function".

The article introduces ``nn.ConvTranspose2d`` as "the inverse process that maps
earlier outputs back to the input" and shows this encoder/decoder for 1×28×28
MNIST images.

What a careful reader finds (and what the project's tests pin):

* transposed convolution is the *adjoint* of convolution, not its inverse;
* the decoder does not give back a 28×28 image: 28 → 24 → 12 → 8 → 4 on the way
  down, then ``(4−1)·2 + 5 = 11`` and ``(11−1)·2 + 5 = 25`` on the way up —
  the output is 25×25;
* both transposed convs have kernel 5 and stride 2 (5 is not divisible by 2),
  so their outputs carry a structural checkerboard.

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
        self.conv2_trans = nn.ConvTranspose2d(20, 10, kernel_size=5, stride=2)
        self.conv1_trans = nn.ConvTranspose2d(10, 1, kernel_size=5, stride=2)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.conv2_trans(x))
        x = torch.sigmoid(self.conv1_trans(x))
        return x
