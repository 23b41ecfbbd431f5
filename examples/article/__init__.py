"""The ten models of the article behind the project (see ``shared/seed``).

``MODELS`` maps a section name to ``(factory, input_shape)``; each factory
returns a fresh model, and the input shape is the one the section was written
for (for §八–§十, derived from ``Linear(260, …)``; see ``s08_conv1d``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from examples.article import (
    s01_transposed_conv,
    s02_dilated_conv,
    s03_upsampling,
    s04_checkerboard_fix,
    s05_feature_visualisation,
    s06_cnn,
    s07_deconvolution,
    s08_conv1d,
    s09_cnn1d,
    s10_conv_reuse,
)

if TYPE_CHECKING:
    from torch import nn

_SECTIONS = (
    s01_transposed_conv,
    s02_dilated_conv,
    s03_upsampling,
    s04_checkerboard_fix,
    s05_feature_visualisation,
    s06_cnn,
    s07_deconvolution,
    s08_conv1d,
    s09_cnn1d,
    s10_conv_reuse,
)

MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    module.__name__.rsplit(".", 1)[-1]: (module.Net, module.INPUT_SHAPE) for module in _SECTIONS
}

__all__ = ["MODELS"]
