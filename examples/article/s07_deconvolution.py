"""§七 反卷积 PyTorch — "deconvolution in PyTorch".

The article defines "a deconvolutional network" for segmentation, detection
and reconstruction; its code is exactly the model of §五, so this module
imports it instead of copying it.

Input it was written for: ``(1, 1, 28, 28)``.
"""

from examples.article.s05_feature_visualisation import INPUT_SHAPE, Net

__all__ = ["INPUT_SHAPE", "Net"]
