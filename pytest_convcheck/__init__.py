"""pytest-convcheck: check the semantics of convolutional PyTorch models.

The public API is loaded lazily (PEP 562): ``import pytest_convcheck`` and
loading the pytest plugin never import torch. Each name below is imported from
its module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ShapeError": "pytest_convcheck.errors",
    "ModelStateError": "pytest_convcheck.errors",
    "MeasurementRefused": "pytest_convcheck.errors",
    "ModelRunError": "pytest_convcheck.errors",
    "output_shape": "pytest_convcheck.layers",
    "Geometry": "pytest_convcheck.layers",
    "trace": "pytest_convcheck.tracing",
    "Input": "pytest_convcheck.inputs",
    "Inputs": "pytest_convcheck.inputs",
    "Trace": "pytest_convcheck.tracing",
    "TraceLayer": "pytest_convcheck.tracing",
    "assert_output_shape": "pytest_convcheck.shapes",
    "valid_input_sizes": "pytest_convcheck.shapes",
    "input_size_rule": "pytest_convcheck.input_sizes",
    "SizeRule": "pytest_convcheck.input_sizes",
    "assert_batch_independent": "pytest_convcheck.shapes",
    "receptive_field": "pytest_convcheck.fields",
    "assert_receptive_field": "pytest_convcheck.fields",
    "ReceptiveField": "pytest_convcheck.fields",
    "empirical_receptive_field": "pytest_convcheck.measured_fields",
    "effective_receptive_field": "pytest_convcheck.measured_fields",
    "MeasuredField": "pytest_convcheck.measured_fields",
    "EffectiveField": "pytest_convcheck.measured_fields",
    "checkerboard": "pytest_convcheck.checkerboards",
    "assert_no_checkerboard": "pytest_convcheck.checkerboards",
    "CheckerboardReport": "pytest_convcheck.checkerboards",
    "sharing": "pytest_convcheck.weight_sharing",
    "SharingReport": "pytest_convcheck.weight_sharing",
    "assert_weights_shared": "pytest_convcheck.weight_sharing",
    "assert_no_accidental_sharing": "pytest_convcheck.weight_sharing",
    "assert_ties_preserved": "pytest_convcheck.weight_sharing",
    "assert_gradients_accumulate": "pytest_convcheck.weight_sharing",
    "assert_conv_matches_reference": "pytest_convcheck.reference",
    "assert_transpose_is_adjoint": "pytest_convcheck.reference",
    "transpose_is_not_inverse": "pytest_convcheck.reference",
    "assert_device_parity": "pytest_convcheck.parity",
    "assert_layout_parity": "pytest_convcheck.parity",
    "assert_compile_parity": "pytest_convcheck.parity",
    "report": "pytest_convcheck.reports",
    "ConvReport": "pytest_convcheck.reports",
    "benchmark_flops": "pytest_convcheck.benchmarking",
    "ConvBenchmark": "pytest_convcheck.benchmarking",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads lazily
    from pytest_convcheck.checkerboards import (  # noqa: F401
        CheckerboardReport,
        assert_no_checkerboard,
        checkerboard,
    )
    from pytest_convcheck.errors import MeasurementRefused, ShapeError  # noqa: F401
    from pytest_convcheck.fields import (  # noqa: F401
        ReceptiveField,
        assert_receptive_field,
        receptive_field,
    )
    from pytest_convcheck.input_sizes import SizeRule, input_size_rule  # noqa: F401
    from pytest_convcheck.inputs import Input, Inputs  # noqa: F401
    from pytest_convcheck.layers import Geometry, output_shape  # noqa: F401
    from pytest_convcheck.measured_fields import (  # noqa: F401
        EffectiveField,
        MeasuredField,
        effective_receptive_field,
        empirical_receptive_field,
    )
    from pytest_convcheck.parity import (  # noqa: F401
        assert_compile_parity,
        assert_device_parity,
        assert_layout_parity,
    )
    from pytest_convcheck.reference import (  # noqa: F401
        assert_conv_matches_reference,
        assert_transpose_is_adjoint,
        transpose_is_not_inverse,
    )
    from pytest_convcheck.reports import ConvReport, report  # noqa: F401
    from pytest_convcheck.shapes import (  # noqa: F401
        assert_batch_independent,
        assert_output_shape,
        valid_input_sizes,
    )
    from pytest_convcheck.tracing import Trace, TraceLayer, trace  # noqa: F401
    from pytest_convcheck.weight_sharing import (  # noqa: F401
        SharingReport,
        assert_gradients_accumulate,
        assert_no_accidental_sharing,
        assert_ties_preserved,
        assert_weights_shared,
        sharing,
    )


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_convcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
