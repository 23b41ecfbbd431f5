"""The rule table: geometry, output-shape formula and FLOPs of every conv-like op.

Each family of layers is one :class:`Rule` in :data:`RULES`. A rule turns a
module (``nn.Conv2d(...)``) or a functional call (``F.conv2d(x, w, ...)``) into a
*spec* — a small frozen dataclass holding the op's parameters — and the spec
knows its output shape, its geometry (for receptive fields and checkerboards)
and its FLOPs. Adding a layer type means adding one entry to :data:`RULES`.

The package, one module per family, each spec with its formula ("Shape:" in its
docstring), geometry, FLOPs and builders:

* :mod:`~pytest_convcheck.layers.base` — :class:`Spec`, :class:`Geometry`,
  :class:`InvalidSpec` and the argument and input checks the families share;
* :mod:`~pytest_convcheck.layers.conv` — convolution and transposed convolution;
* :mod:`~pytest_convcheck.layers.pool` — max/avg/LP and fractional pooling, max
  unpooling;
* :mod:`~pytest_convcheck.layers.adaptive_pool` — adaptive pooling;
* :mod:`~pytest_convcheck.layers.resample` — interpolation and pixel (un)shuffle;
* :mod:`~pytest_convcheck.layers.pad` — padding layers and ``F.pad``;
* :mod:`~pytest_convcheck.layers.unfold` — im2col/col2im and ``Tensor.unfold``;
* :mod:`~pytest_convcheck.layers.slicing` — ``x[a:b, ...]``, ``narrow`` and the
  shape of ``torch.cat``;
* :mod:`~pytest_convcheck.layers.indexing` — the index bounds of ``x[..., [0, 9]]``
  and ``index_select``, which meta tensors do not check;
* :mod:`~pytest_convcheck.layers.dense` — linear, flatten, matrix products;
* :mod:`~pytest_convcheck.layers.pointwise` — norms, softmax, dropout,
  activations and GLU;
* :mod:`~pytest_convcheck.layers.table` — :class:`Rule`, :data:`RULES` and the
  look-ups :func:`spec_for_module`, :func:`spec_for_call`, :func:`output_shape`.

The formulas are written from the documented semantics, never by asking torch:

* convolution (PyTorch ``nn.Conv*d`` docs; Dumoulin & Visin, arXiv 1603.07285)::

      out = floor((in + 2·p − d·(k − 1) − 1) / s) + 1

* transposed convolution (``nn.ConvTranspose*d`` docs)::

      out = (in − 1)·s − 2·p + d·(k − 1) + output_padding + 1,
      output_padding < max(s, d)

* pooling (``nn.MaxPool*d``/``nn.AvgPool*d`` docs, ``aten/src/ATen/native/Pool.h``)::

      out = floor_or_ceil((in + 2·p − d·(k − 1) − 1) / s) + 1
      with ceil_mode, the last window must start inside the input or the left
      padding: if (out − 1)·s ≥ in + p then out −= 1

* interpolation (``F.interpolate`` docs): ``out = size`` or ``floor(in · scale)``.

The property tests in ``tests/test_layers_property.py`` check every formula and
every rejection against torch itself.
"""

from pytest_convcheck.errors import ShapeError
from pytest_convcheck.layers.adaptive_pool import AdaptivePoolSpec
from pytest_convcheck.layers.base import (
    Geometry,
    InvalidSpec,
    PhaseTaps,
    Shape,
    Spec,
    is_lazy,
    torch_class_name,
)
from pytest_convcheck.layers.conv import ConvSpec
from pytest_convcheck.layers.dense import FlattenSpec, LinearSpec, MatmulSpec, broadcast_shapes
from pytest_convcheck.layers.pad import PadSpec
from pytest_convcheck.layers.pointwise import GLUSpec, ShapePreservingSpec
from pytest_convcheck.layers.pool import (
    FractionalPoolSpec,
    PoolSpec,
    UnpoolSpec,
    pool_output_size,
)
from pytest_convcheck.layers.resample import (
    INTERPOLATION_MODES,
    InterpolateSpec,
    PixelShuffleSpec,
)
from pytest_convcheck.layers.slicing import SliceItem, SliceSpec, concatenated_shape
from pytest_convcheck.layers.table import (
    FUNCTION_RULES,
    MODULE_RULES,
    RULES,
    Rule,
    output_shape,
    rule_for_module,
    spec_for_call,
    spec_for_module,
)
from pytest_convcheck.layers.unfold import TensorUnfoldSpec, UnfoldSpec

__all__ = [
    "FUNCTION_RULES",
    "INTERPOLATION_MODES",
    "MODULE_RULES",
    "RULES",
    "AdaptivePoolSpec",
    "ConvSpec",
    "FlattenSpec",
    "FractionalPoolSpec",
    "GLUSpec",
    "Geometry",
    "InterpolateSpec",
    "InvalidSpec",
    "LinearSpec",
    "MatmulSpec",
    "PadSpec",
    "PhaseTaps",
    "PixelShuffleSpec",
    "PoolSpec",
    "Rule",
    "Shape",
    "ShapeError",
    "ShapePreservingSpec",
    "SliceItem",
    "SliceSpec",
    "Spec",
    "TensorUnfoldSpec",
    "UnfoldSpec",
    "UnpoolSpec",
    "broadcast_shapes",
    "concatenated_shape",
    "is_lazy",
    "output_shape",
    "pool_output_size",
    "rule_for_module",
    "spec_for_call",
    "spec_for_module",
    "torch_class_name",
]
