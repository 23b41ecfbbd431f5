"""§六 PyTorch卷积神经网络 — "a convolutional neural network in PyTorch".

The classic MNIST CNN: conv 5×5 → pool → conv 5×5 → pool → ``x.view(-1, 320)``
→ ``Linear(320, 50)`` → ``Linear(50, 10)``.

The flattened size is hard-coded: 20 channels × 4 × 4 = 320 holds only when
both spatial sizes are 28–31. At any other size ``view(-1, 320)`` does not
fail: it silently folds pixels of one sample into extra "samples" (or samples
into each other), so the batch dimension changes — e.g. 32×32 with a batch of
16 gives 25 rows.

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
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return x
