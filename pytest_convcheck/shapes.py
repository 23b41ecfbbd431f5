"""Shape checks of whole models, built on :func:`pytest_convcheck.tracing.trace`.

* :func:`assert_output_shape` — the output shape, with the per-layer trace and
  the layers that set the wrong size in the failure message;
* :func:`valid_input_sizes` — the sizes along one dim at which the model runs
  *and* keeps its batch dimension;
* :func:`assert_batch_independent` — no sample of a batch influences another
  (``view(-1, N)`` at a wrong size, batch-wide statistics, …): it lives in
  :mod:`pytest_convcheck.batch_independence` and is re-exported here;
* :func:`nearby_inputs` and :func:`nearby_hint` — the inputs near a failing one
  at which the model runs, for the failure messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from pytest_convcheck.batch_independence import assert_batch_independent, batch_kept
from pytest_convcheck.errors import ShapeError
from pytest_convcheck.input_sizes import input_size_rule
from pytest_convcheck.inputs import as_inputs
from pytest_convcheck.layers import ConvSpec, PoolSpec, Shape
from pytest_convcheck.tracing import (
    ModelRunError,
    Trace,
    TraceLayer,
    format_shape,
    trace,
)

__all__ = ["assert_batch_independent", "assert_output_shape", "valid_input_sizes"]


def _matches(expected: Sequence[int | None], got: Shape) -> bool:
    return len(expected) == len(got) and all(
        e is None or e == -1 or e == g for e, g in zip(expected, got, strict=True)
    )


def _expected_leaves(expected: Any, path: str = "") -> list[tuple[str, Any]]:
    """``(path, shape)`` per output of a nested expectation, with the paths of
    :attr:`Trace.outputs` (``[0]``, ``['logits']``, ``[1]['mask']``)."""
    if isinstance(expected, Mapping):
        found = []
        for key, value in expected.items():
            found += _expected_leaves(value, f"{path}[{key!r}]")
        return found
    if isinstance(expected, (list, tuple)) and expected and not isinstance(expected[0], int):
        found = []
        for i, value in enumerate(expected):
            if value is None or (
                isinstance(value, (list, tuple))
                and value
                and isinstance(value[0], (int, type(None)))
            ):
                found.append((f"{path}[{i}]", value))
            else:
                found += _expected_leaves(value, f"{path}[{i}]")
        return found
    return [(path or "output", expected)]


def assert_output_shape(
    model: nn.Module,
    input_shape: Any,
    expected: Any,
    *,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> Trace:
    """Assert that ``model`` maps ``input_shape`` (any input description, see
    :mod:`pytest_convcheck.inputs`) to ``expected`` (``None`` or ``-1`` in
    ``expected`` match any size; for a model with several outputs, a sequence of
    shapes, one per output in order, or shapes nested as the output is — a dict of
    them for a dict output). Returns the trace.

    On failure the ``AssertionError`` shows the per-layer trace (name, kind,
    in → out) and the layers that last changed the spatial size, with their
    formula and numbers.
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    result = trace(model, input_shape, example_inputs=example_inputs, input=input)
    got = result.output_shape
    model_name = type(model).__name__
    nested = isinstance(expected, Mapping) or (
        isinstance(expected, (list, tuple)) and any(isinstance(e, Mapping) for e in expected)
    )
    if nested:
        wanted = _expected_leaves(expected)
        outputs = dict(result.outputs)
        if set(outputs) == {p for p, _ in wanted} and all(
            _matches(tuple(e), outputs[p]) for p, e in wanted
        ):
            return result
        got_text = ", ".join(f"{p} {format_shape(s)}" for p, s in result.outputs) or "no tensor"
        want_text = ", ".join(f"{p} {format_shape(tuple(e))}" for p, e in wanted)
        raise AssertionError(
            f"{model_name}: expected outputs {want_text} for input "
            f"{_describe_inputs(result)}, got {got_text}.\n  fix: expect one shape per output, "
            f"nested as forward returns them, e.g. expect_output = "
            f"{_example_expectation(result)}.\n{result.table()}"
        )
    expected_t = tuple(expected)
    single = isinstance(got, tuple) and bool(got) and isinstance(got[0], int)
    model_name = type(model).__name__
    if expected_t and isinstance(expected_t[0], (list, tuple)):  # one shape per output
        shapes = [got] if single else list(got or ())
        if len(shapes) == len(expected_t) and all(
            _matches(tuple(e), g)  # type: ignore[arg-type]
            for e, g in zip(expected_t, shapes, strict=True)
        ):
            return result
        raise AssertionError(
            f"{model_name}: expected outputs "
            f"{', '.join(format_shape(tuple(e)) for e in expected_t)} for input "
            f"{format_shape(result.input_shape)}, got {format_shape(got)}.\n{result.table()}"
        )
    if single and _matches(expected_t, got):  # type: ignore[arg-type]
        return result
    if not single and got:
        named = ", ".join(
            f"{name or i} {format_shape(shape)}" for i, (name, shape) in enumerate(result.outputs)
        ) or format_shape(got)
        example = [list(shape) for _, shape in result.outputs]
        raise AssertionError(
            f"{model_name}: forward returns {len(got)} tensors ({named}) for input "
            f"{format_shape(result.input_shape)}, but the expected output "
            f"{format_shape(expected_t)} is one shape.\n  fix: expect one shape per output, in "
            f"order, e.g. expect_output = "
            f"{example}, or check a wrapper whose forward returns one tensor."
        )
    lines = [
        f"{model_name}: expected output {format_shape(expected_t)} for input "
        f"{format_shape(result.input_shape)}, got {format_shape(got)}."
    ]
    culprits = _size_setters(result, expected_t)
    if culprits:
        lines.append("The spatial size was set by:")
        for row in culprits:
            lines.append(
                f"  {row.name} ({row.kind}): {format_shape(row.input_shape)} → "
                f"{format_shape(row.output_shape)}{_formula(row)}"
            )
        lines.append(_fix_hint(culprits, expected_t))
    if all(isinstance(e, int) and e >= 0 for e in expected_t) and (
        expected_t[2:] == tuple(result.input_shape[2:]) and len(expected_t) > 2
    ):
        hint = nearby_hint(model, result.inputs or result.input_shape, same_spatial_size)
        if hint:
            lines.append(hint.lstrip("\n"))
    lines.append("Per-layer trace:")
    mark = result.layers.index(culprits[-1]) if culprits else None
    lines.append(result.table(mark=mark))
    raise AssertionError("\n".join(lines))


def _spatial(shape: Shape | None, rank: int) -> Shape | None:
    if shape is None or len(shape) != rank or rank < 3:
        return None
    return shape[2:]


def _size_setters(result: Trace, expected: tuple[int | None, ...]) -> list[TraceLayer]:
    """Rows that changed the spatial size on the way to the output, back to the last
    change in the other direction (the decoder of an encoder/decoder)."""
    rank = len(expected)
    rows = [r for r in result.layers if _spatial(r.output_shape, rank) is not None]
    changers = [
        r
        for r in rows
        if _spatial(r.input_shape, rank) is not None
        and _spatial(r.input_shape, rank) != _spatial(r.output_shape, rank)
    ]
    if not changers:
        return []

    def grows(row: TraceLayer) -> bool:
        before, after = _spatial(row.input_shape, rank), _spatial(row.output_shape, rank)
        assert before is not None and after is not None
        return sum(after) > sum(before)

    direction = grows(changers[-1])
    picked: list[TraceLayer] = []
    for row in reversed(changers):
        if grows(row) != direction:
            break
        picked.append(row)
    return list(reversed(picked))


def _formula(row: TraceLayer) -> str:
    spec = row.spec
    if row.input_shape is None or row.output_shape is None:
        return ""
    if isinstance(spec, ConvSpec):
        i = row.input_shape[-spec.dims]
        k, s, d = spec.kernel[0], spec.stride[0], spec.dilation[0]
        if spec.transposed:
            p = spec.padding[0] if not isinstance(spec.padding, str) else 0
            op = spec.output_padding[0]
            return (
                f"   [(in−1)·s − 2p + d(k−1) + output_padding + 1 = ({i}−1)·{s} − {2 * p} "
                f"+ {d}·({k}−1) + {op} + 1 = {row.output_shape[-spec.dims]}]"
            )
        if not isinstance(spec.padding, str):
            p = spec.padding[0]
            return (
                f"   [floor((in + 2p − d(k−1) − 1)/s) + 1 = floor(({i} + {2 * p} − "
                f"{d * (k - 1)} − 1)/{s}) + 1 = {row.output_shape[-spec.dims]}]"
            )
    if isinstance(spec, PoolSpec):
        i = row.input_shape[-spec.dims]
        return (
            f"   [{'ceil' if spec.ceil_mode else 'floor'}((in + 2p − d(k−1) − 1)/s) + 1, "
            f"in={i}, k={spec.kernel[0]}, s={spec.stride[0]}, p={spec.padding[0]}]"
        )
    return ""


def _fix_hint(culprits: list[TraceLayer], expected: tuple[int | None, ...]) -> str:
    last = culprits[-1]
    assert last.output_shape is not None
    want, got = expected[2:], last.output_shape[2:]
    spec = last.spec
    if isinstance(spec, ConvSpec) and spec.transposed and all(w is not None for w in want):
        pairs = [(int(w), g) for w, g in zip(want, got, strict=False) if w not in (None, -1)]
        gaps = {w - g for w, g in pairs}
        if len(gaps) == 1:
            (gap,) = gaps
            word = "short" if gap > 0 else "too many"
            off = (
                f"{abs(gap)} {word} on every spatial axis ({pairs[0][1]} instead of {pairs[0][0]})"
            )
        else:
            off = "; ".join(
                f"axis {i}: {abs(w - g)} {'short' if w > g else 'too many'} ({g} instead of {w})"
                for i, (w, g) in enumerate(pairs)
                if w != g
            )
        return (
            f"  fix: the output is {off}; "
            f"each transposed conv gives (in−1)·s − 2p + d(k−1) + output_padding + 1, so "
            f"choose kernel/padding/output_padding per stage so that it inverts its encoder "
            f"stage, pass output_size= to forward(), or end with "
            f"F.interpolate(size={tuple(w for w in want)})."
        )
    return (
        "  fix: change the kernel/stride/padding of the layers above so that they produce "
        f"{format_shape(tuple(w for w in want))}, or resize explicitly with "
        "F.interpolate(size=...)."
    )


def _describe_inputs(result: Trace) -> str:
    return (
        result.inputs.describe() if result.inputs is not None else format_shape(result.input_shape)
    )


def _example_expectation(result: Trace) -> str:
    """The outputs the model gave, written as an ``expect_output`` value."""
    if len(result.outputs) == 1 and result.outputs[0][0] == "output":
        return str(list(result.outputs[0][1]))
    return "; ".join(f"{path} = {list(shape)}" for path, shape in result.outputs)


def valid_input_sizes(
    model: nn.Module,
    input_shape: Any,
    dim: int = -1,
    sizes: Iterable[int] = range(1, 257),
    *,
    example_inputs: Any = None,
    input: int | str | None = None,
) -> list[int]:
    """Sorted sizes along ``dim`` of the primary input (other dims and inputs as
    described, see :mod:`pytest_convcheck.inputs`) at which the model runs *and* its
    output keeps the input's batch size.

    Read off the model's :func:`~pytest_convcheck.input_sizes.input_size_rule` (one
    trace replayed over one period past a threshold), so any range costs the same;
    sizes past what the rule could settle (no period up to its limit) are traced."""
    inputs = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    base = list(inputs.shape)
    if not -len(base) <= dim < len(base):
        raise ValueError(f"dim {dim} is out of range for input_shape {tuple(base)}")
    if dim % len(base) == 0:
        raise ValueError("dim 0 is the batch dim; pick a spatial dim such as -1")
    wanted = sorted({n for n in sizes if n >= 1})
    if not wanted:
        return []
    rule = input_size_rule(model, inputs, dim)
    settled = rule.threshold <= rule.checked_to
    valid = [n for n in wanted if (settled or n <= rule.checked_to) and rule.is_valid(n)]
    for size in (n for n in wanted if not settled and n > rule.checked_to):
        shape = list(base)
        shape[dim] = size
        try:
            result = trace(model, inputs.with_shape(shape))
        except (ShapeError, ModelRunError):
            continue
        if batch_kept(result, base[0]):
            valid.append(size)
    return sorted(valid)


def nearby_inputs(
    model: nn.Module,
    input_shape: Any,
    accept: Callable[[Trace], bool] | None = None,
    *,
    radius: int = 16,
    most: int = 4,
    budget_s: float = 3.0,
) -> list[Shape]:
    """Input shapes near ``input_shape`` (each spatial size moved by the same offset,
    up to ``radius``) at which the model runs, keeps its batch and, when given, the
    trace passes ``accept`` — nearest first, at most ``most``.

    Offsets move every spatial axis together, so that a square input stays square and
    a model that needs all sizes divisible by 2^stages finds them in one search. The
    search stops after ``budget_s`` seconds (a model that cannot run on meta is
    traced on CPU, for real)."""
    inputs = as_inputs(input_shape)
    base = inputs.shape
    found: list[Shape] = []
    offsets = sorted(range(-radius, radius + 1), key=lambda d: (abs(d), d))
    deadline = time.perf_counter() + budget_s
    for offset in offsets[1:]:
        if time.perf_counter() > deadline:
            break
        spatial = [size + offset for size in base[2:]]
        if any(size < 1 for size in spatial):
            continue
        shape = (*base[:2], *spatial)
        try:
            result = trace(model, inputs.with_shape(shape))
        except (ShapeError, ModelRunError):
            continue
        if batch_kept(result, base[0]) and (accept is None or accept(result)):
            found.append(shape)
            if len(found) == most:
                break
    return sorted(found)


def nearby_hint(
    model: nn.Module, input_shape: Any, accept: Callable[[Trace], bool] | None = None
) -> str:
    """A message line naming the nearest inputs at which the model runs (with
    ``accept``: at which it gives its own size back), or ``""`` when none is near."""
    try:
        shapes = nearby_inputs(model, input_shape, accept)
    except Exception:  # a hint must never hide the failure it explains
        return ""
    described = as_inputs(input_shape).shape
    # each axis's rule with the others at a size that works: at the described ones a
    # failing axis would make every other axis "take no size"
    nearest = min(
        shapes,
        key=lambda s: sum(abs(a - b) for a, b in zip(s, described, strict=False)),
        default=None,
    )
    rules = _size_rules(model, input_shape, nearest)
    if not shapes:
        return rules
    what = "gives an output of the input's size" if accept is not None else "runs"
    listed = ", ".join("×".join(map(str, shape)) for shape in shapes)
    return (
        f"\n  inputs near {'×'.join(map(str, as_inputs(input_shape).shape))} at which the "
        f"model {what}: "
        f"{listed}.\n  fix: feed such a size (pad or crop the data), or make the model take "
        f"any size (padding, output_size= or F.interpolate to the skip's size)."
    ) + rules


def _size_rules(model: nn.Module, input_shape: Any, working: Shape | None = None) -> str:
    """The sizes the model takes along each spatial axis, as rules (see
    :func:`~pytest_convcheck.input_sizes.input_size_rule`), or ``""``; with the other
    axes as in ``working`` (an input that runs) where given and unlike the described
    one."""
    from pytest_convcheck.input_sizes import describe_sizes

    inputs = as_inputs(input_shape)
    held = ""
    if working is not None and tuple(working) != tuple(inputs.shape):
        inputs = inputs.with_shape(list(working))
        held = f", the other axes as in {'×'.join(map(str, working))}"
    try:
        lines = describe_sizes(model, inputs)
    except Exception:  # a hint must never hide the failure it explains
        return ""
    return "".join(
        f"\n  sizes it takes along {line.replace(': ', f'{held}: ', 1)}" for line in lines
    )


def same_spatial_size(result: Trace) -> bool:
    """An ``accept`` for :func:`nearby_inputs`: the (first) output has the input's
    spatial size, as a segmentation or autoencoder model must."""
    out = result.output_shape
    first = out[0] if out and isinstance(out[0], tuple) else out
    return bool(first) and tuple(first[2:]) == tuple(result.input_shape[2:])  # type: ignore[index]
