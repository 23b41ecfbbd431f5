"""§九 PyTorch一维卷积神经网络 — "a 1-D convolutional neural network".

For text classification and speech recognition; the code is exactly the model
of §八, so this module imports it instead of copying it. Input length derived
in :mod:`examples.article.s08_conv1d` (64–67; we use 64).

Input it was written for (derived): ``(1, 1, 64)``.
"""

from examples.article.s08_conv1d import INPUT_SHAPE, Net

__all__ = ["INPUT_SHAPE", "Net"]
