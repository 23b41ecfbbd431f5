"""Walk PyTorch's own test samples through the rule table and the trace.

torch's test-suite describes every operator with an ``OpInfo`` (sample inputs
that must work, error inputs that must raise) and every module with a
``ModuleInfo`` (constructor and forward arguments). This walk takes those of
every op family in the rule table and checks, in float32 on the CPU:

* a sample torch runs: :func:`pytest_convcheck.trace` (and, for modules,
  :func:`pytest_convcheck.output_shape`) gives the same output shapes;
* a sample or error input torch rejects: the trace raises one of the exported
  errors (``ShapeError``, ``ModelRunError``, ``ModelStateError``), never a
  shape and never another exception.

Run as a script (``tests/test_opinfo.py`` runs it in a subprocess: importing
``torch.testing._internal`` disables torch's global backend flags and loads its own
hypothesis profile, which must not leak into the rest of the suite)::

    python tests/opinfo_walk.py            # prints the counts and every finding
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from pytest_convcheck import ModelRunError, ModelStateError, ShapeError, output_shape, trace
from pytest_convcheck.layers import FUNCTION_RULES, MODULE_RULES

EXPORTED = (ShapeError, ModelRunError, ModelStateError)

# OpInfo names of ops the rule table covers that do not resolve to a rule's function
# by name (private aten entry points, lambdas around a public function).
EXTRA_OPS = frozenset(
    {
        "_upsample_bilinear2d_aa",
        "einsum",
        "nn.functional.scaled_dot_product_attention",
        "nn.functional.fractional_max_pool2d",
        "nn.functional.fractional_max_pool3d",
        "nn.functional.upsample_bilinear",
        "nn.functional.upsample_nearest",
        "nn.functional.glu",
        "nn.functional.softmin",
        "nn.functional.lp_pool1d",
        "nn.functional.lp_pool2d",
        "nn.functional.lp_pool3d",
        "nn.functional.fold",
        "unfold",
    }
)
# Samples outside what the plugin traces: the model input is a float tensor, and
# these OpInfo entries exercise other machinery (autograd-only variants).
SKIPPED_VARIANTS = frozenset(
    {
        ("nn.functional.max_unpool1d", "grad"),
        ("nn.functional.max_unpool2d", "grad"),
        ("nn.functional.max_unpool3d", "grad"),
    }
)


def _resolve(name: str) -> Any:
    obj: Any = torch
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def covered_opinfos() -> list[Any]:
    """The OpInfos of ops with a rule in the table."""
    from torch.testing._internal.common_methods_invocations import op_db

    found = []
    for op in op_db:
        if (op.name, op.variant_test_name) in SKIPPED_VARIANTS:
            continue
        target = _resolve(op.name)
        method = getattr(torch.Tensor, op.name, None)
        if op.name in EXTRA_OPS or target in FUNCTION_RULES or method in FUNCTION_RULES:
            found.append(op)
    return found


def covered_moduleinfos() -> list[Any]:
    """The ModuleInfos of module classes with a rule in the table."""
    from torch.testing._internal.common_modules import module_db

    return [m for m in module_db if m.module_cls in MODULE_RULES]


class _Call(nn.Module):
    """``op(*args, **kwargs)`` as a model: every tensor argument is a buffer, so the
    trace copies it to meta like a model's weights. The model input is unused."""

    def __init__(self, op: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        super().__init__()
        self.op = op
        self.slots: list[str] = []
        self.template = (self._stash(args), self._stash(kwargs))

    def _stash(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            name = f"t{len(self.slots)}"
            self.register_buffer(name, value)
            self.slots.append(name)
            return ("__tensor__", name)
        if isinstance(value, tuple):
            return tuple(self._stash(v) for v in value)
        if isinstance(value, list):
            return [self._stash(v) for v in value]
        if isinstance(value, dict):
            return {k: self._stash(v) for k, v in value.items()}
        return value

    def _fill(self, value: Any) -> Any:
        if isinstance(value, tuple):
            if len(value) == 2 and value[0] == "__tensor__":
                return getattr(self, value[1])
            return tuple(self._fill(v) for v in value)
        if isinstance(value, list):
            return [self._fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self._fill(v) for k, v in value.items()}
        return value

    def forward(self, _unused: torch.Tensor) -> Any:
        args, kwargs = self._fill(self.template)
        return self.op(*args, **kwargs)


def _shapes(value: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape),)
    if isinstance(value, (tuple, list)):
        return tuple(itertools.chain.from_iterable(_shapes(v) for v in value))
    if isinstance(value, dict):
        return _shapes(list(value.values()))
    return ()


def _torch_outcome(run: Callable[[], Any]) -> tuple[tuple[int, ...], ...] | BaseException:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _shapes(run())
    except Exception as error:
        return error


def _trace_outcome(model: nn.Module) -> tuple[tuple[int, ...], ...] | BaseException:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = trace(model, (1,))
    except Exception as error:
        return error
    return tuple(shape for _, shape in result.outputs)


@dataclass
class Tally:
    """Counts and findings of one walk."""

    samples: int = 0
    accepted: int = 0
    rejected: int = 0
    error_inputs: int = 0
    module_inputs: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return self.samples + self.error_inputs + self.module_inputs


def _describe(op_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def short(v: Any) -> str:
        if isinstance(v, torch.Tensor):
            return f"T{tuple(v.shape)}"
        if isinstance(v, (list, tuple)):
            inner = ", ".join(short(x) for x in v)
            return f"[{inner}]" if isinstance(v, list) else f"({inner})"
        return repr(v)

    parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
    return f"{op_name}({', '.join(parts)})"


def _compare(label: str, expected: Any, got: Any, tally: Tally) -> None:
    if isinstance(got, BaseException) and not isinstance(got, EXPORTED):
        tally.findings.append(f"{label}: crash {type(got).__name__}: {got}")
    elif isinstance(expected, BaseException):
        if not isinstance(got, BaseException):
            tally.findings.append(
                f"{label}: torch raises {type(expected).__name__}: "
                f"{str(expected).splitlines()[0] if str(expected) else ''} but we give {got}"
            )
    elif isinstance(got, BaseException):
        tally.findings.append(
            f"{label}: torch gives {expected} but we raise {type(got).__name__}: "
            f"{str(got).splitlines()[0]}"
        )
    elif got != expected:
        tally.findings.append(f"{label}: torch gives {expected}, we give {got}")


def _op_samples(op: Any) -> Iterator[Any]:
    yield from op.sample_inputs("cpu", torch.float32, requires_grad=False)


def walk_ops(ops: list[Any], tally: Tally, limit: int | None = None) -> None:
    """Sample and error inputs of ``ops``; at most ``limit`` samples per op."""
    for op in ops:
        name = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")
        for sample in itertools.islice(_op_samples(op), limit):
            args = (sample.input, *sample.args)
            label = _describe(name, args, sample.kwargs)
            expected = _torch_outcome(partial(op.op, *args, **sample.kwargs))
            got = _trace_outcome(_Call(op.op, args, dict(sample.kwargs)))
            tally.samples += 1
            if isinstance(expected, BaseException):
                tally.rejected += 1
            else:
                tally.accepted += 1
            _compare(label, expected, got, tally)
        if op.error_inputs_func is None:
            continue
        for error_input in op.error_inputs("cpu"):
            sample = error_input.sample_input
            args = (sample.input, *sample.args)
            label = "error input " + _describe(name, args, sample.kwargs)
            got = _trace_outcome(_Call(op.op, args, dict(sample.kwargs)))
            tally.error_inputs += 1
            if not isinstance(got, EXPORTED):
                tally.findings.append(
                    f"{label}: torch raises {error_input.error_type.__name__} "
                    f"({error_input.error_regex!r}) but we give "
                    f"{got if not isinstance(got, BaseException) else repr(got)}"
                )


def walk_modules(infos: list[Any], tally: Tally, limit: int | None = None) -> None:
    """Constructor and forward inputs of ``infos``: ``output_shape`` and ``trace`` of
    the module agree with its CPU forward."""
    for info in infos:
        cls = info.module_cls
        inputs = info.module_inputs_func(
            info, device="cpu", dtype=torch.float32, requires_grad=False, training=False
        )
        for module_input in itertools.islice(inputs, limit):
            ctor = module_input.constructor_input
            fwd = module_input.forward_input
            if len(fwd.args) != 1 or fwd.kwargs or not isinstance(fwd.args[0], torch.Tensor):
                continue
            x = fwd.args[0]
            if x.dtype != torch.float32:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = cls(*ctor.args, **ctor.kwargs).eval()
            except Exception:
                continue
            label = f"{_describe(cls.__name__, ctor.args, ctor.kwargs)} on {tuple(x.shape)}"
            expected = _torch_outcome(partial(module, x))
            tally.module_inputs += 1
            try:
                predicted: Any = (output_shape(module, tuple(x.shape)),)
            except Exception as error:
                predicted = error
            # output_shape gives one shape: that of the first output (max pooling's
            # indices have the same shape)
            first = expected[:1] if isinstance(expected, tuple) else expected
            _compare(label + " [output_shape]", first, predicted, tally)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = trace(module, tuple(x.shape), dtype=x.dtype)
                    traced: Any = tuple(s for _, s in result.outputs)
            except Exception as error:
                traced = error
            _compare(label + " [trace]", expected, traced, tally)


def walk_module_errors(infos: list[Any], tally: Tally) -> None:
    """ModuleInfos' error inputs that fail in forward: ``output_shape`` and ``trace``
    refuse them with an exported error."""
    from torch.testing._internal.common_modules import ModuleErrorEnum

    for info in infos:
        if info.module_error_inputs_func is None:
            continue
        errors = info.module_error_inputs_func(
            info, device="cpu", dtype=torch.float32, requires_grad=False, training=True
        )
        for error_input in errors:
            if error_input.error_on != ModuleErrorEnum.FORWARD_ERROR:
                continue
            inputs = error_input.module_error_input
            ctor, fwd = inputs.constructor_input, inputs.forward_input
            module = info.module_cls(*ctor.args, **ctor.kwargs)
            x = fwd.args[0]
            label = (
                f"error input {_describe(info.module_cls.__name__, ctor.args, ctor.kwargs)} "
                f"on {tuple(x.shape)}"
            )
            tally.error_inputs += 1
            for what, verdict in (
                ("output_shape", _outcome(lambda m=module, x=x: output_shape(m, tuple(x.shape)))),
                ("trace", _outcome(lambda m=module, x=x: trace(m, tuple(x.shape), dtype=x.dtype))),
            ):
                if not isinstance(verdict, EXPORTED):
                    tally.findings.append(
                        f"{label} [{what}]: torch raises {error_input.error_type.__name__} "
                        f"({error_input.error_regex!r}) but we give {verdict!r}"
                    )


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run()
    except Exception as error:
        return error


def walk(limit: int | None = None) -> Tally:
    """The whole walk; ``limit`` caps the samples per op and module."""
    tally = Tally()
    walk_ops(covered_opinfos(), tally, limit)
    walk_modules(covered_moduleinfos(), tally, limit)
    walk_module_errors(covered_moduleinfos(), tally)
    return tally


def main(argv: list[str]) -> None:
    """``python tests/opinfo_walk.py [--json] [LIMIT]``: the counts and every finding,
    as text or as one JSON object (what ``tests/test_opinfo.py`` reads)."""
    import json
    import time

    as_json = "--json" in argv
    numbers = [a for a in argv if a != "--json"]
    start = time.perf_counter()
    tally = Tally()
    ops = covered_opinfos()
    infos = covered_moduleinfos()
    walk_ops(ops, tally, int(numbers[0]) if numbers else None)
    walk_modules(infos, tally)
    walk_module_errors(infos, tally)
    seconds = time.perf_counter() - start
    if as_json:
        names = sorted({op.name for op in ops})
        modules = sorted({info.module_cls.__name__ for info in infos})
        print(json.dumps(vars(tally) | {"ops": names, "modules": modules, "seconds": seconds}))
        return
    for line in tally.findings:
        print(line)
    print(
        f"{tally.samples} op samples ({tally.accepted} accepted, {tally.rejected} rejected "
        f"by torch), {tally.error_inputs} error inputs, {tally.module_inputs} module inputs; "
        f"{len(tally.findings)} findings in {seconds:.1f} s"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
