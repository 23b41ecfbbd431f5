"""§十 PyTorch卷积层重用选取 — "reusing a convolution layer".

The article says that using the same conv layer in two places shares its weight
and bias between the two calls, and claims that this "speeds up computation".
Its code is cut off in the middle of ``__init__`` (after
``nn.Linear(260, 50``); the surviving part is the 1-D model of §八.

**The rest of this model is our completion, not the article's text.** In the
spirit of the prose we keep ``conv1``, ``conv2`` and ``fc1 = Linear(260, 50)``
as printed, add ``fc2 = Linear(50, 10)`` as in §八, and add one length-preserving
``conv3 = Conv1d(20, 20, kernel_size=3, padding=1)`` that ``forward`` calls
twice. Both calls use one weight and one bias: sharing halves conv3's
parameters, not its FLOPs, so it does not speed anything up.

Input (as §八, derived): ``(1, 1, 64)``.
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
        # --- our completion starts here (the article's text is cut off) ---
        self.fc2 = nn.Linear(50, 10)
        self.conv3 = nn.Conv1d(20, 20, kernel_size=3, padding=1)

    def forward(self, x):
        x = F.relu(F.max_pool1d(self.conv1(x), 2))
        x = F.relu(F.max_pool1d(self.conv2(x), 2))
        x = F.relu(self.conv3(x))  # first use of conv3
        x = F.relu(self.conv3(x))  # second use: same weight, same bias
        x = x.view(-1, 260)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return x
