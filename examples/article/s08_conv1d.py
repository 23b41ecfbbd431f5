"""§八 PyTorch一维卷积 — "1-D convolution in PyTorch".

For text and signals: ``Conv1d(1, 10, 5)`` → pool 2 → ``Conv1d(10, 20, 5)`` →
pool 2 → ``x.view(-1, 260)`` → ``Linear(260, 50)`` → ``Linear(50, 10)``.

The article never states the input length. We derive it from ``Linear(260, …)``:
260 = 20 channels × T, so T = 13 positions must reach the flatten. Walking the
layers back with ``out = floor((in − k)/s) + 1``:

* pool 2:   ``floor(a/2) = 13``           ⇒ a ∈ {26, 27}
* conv k=5: ``a = b − 4``                  ⇒ b ∈ {30, 31}
* pool 2:   ``floor(c/2) = b``             ⇒ c ∈ {60, …, 63}
* conv k=5: ``c = L − 4``                  ⇒ L ∈ {64, …, 67}

so the model works for signal lengths 64–67 only; we use the smallest, 64.
At other lengths ``view(-1, 260)`` mixes samples of a batch, like §六.

Input it was written for (derived): ``(1, 1, 64)``.
"""

import torch.nn as nn
import torch.nn.functional as F

INPUT_SHAPE = (1, 1, 64)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()  # noqa: UP008 - written as in the article
        self.conv1 = nn.Conv1d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv1d(10, 20, kernel_size=5)
        self.fc1 = nn.Linear(260, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool1d(self.conv1(x), 2))
        x = F.relu(F.max_pool1d(self.conv2(x), 2))
        x = x.view(-1, 260)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return x
