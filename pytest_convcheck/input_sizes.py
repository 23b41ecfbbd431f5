"""Which input sizes a model takes, stated as a rule: ``n ≡ 0 (mod 32), n ≥ 32``.

Every layer maps a size ``n`` to ``⌊(n + a)/s⌋ + b`` (conv, pooling) or ``s·n + b``
(transposed conv, upsampling by a factor): composed along a path, the output size
depends on ``n mod L`` and grows linearly in ``n`` once every layer has at least
one output position, where ``L`` is the least common multiple of the strides the
input meets. A merge (a U-Net's skip concatenation) holds exactly when its paths'
sizes agree, which then depends on ``n mod L`` only; a flatten feeding a linear
layer holds for one ``n`` or a short window. So the set of valid sizes is a
finite set below a threshold ``T``, and beyond it periodic with period ``L``:

    valid(n) = valid(n + L)   for n ≥ T

:func:`input_size_rule` traces (on meta) the sizes below ``T + 2L`` to find the
threshold and the residues, checks the period twice over, and states the rule
with the output size as a formula of the input size. Sizes past what it traced
follow from the period; :meth:`SizeRule.valid` answers any range without
running the model. A model whose own code makes a size-dependent choice (an
``if`` on the width) may break the period: the rule says up to which size it
was checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from torch import nn

from pytest_convcheck.errors import ShapeError
from pytest_convcheck.inputs import Inputs, as_inputs
from pytest_convcheck.layers import InterpolateSpec
from pytest_convcheck.size_program import NotReplayable, SizeProgram
from pytest_convcheck.tracing import ModelRunError, Trace, trace

__all__ = ["SizeRule", "input_size_rule"]


@dataclass(frozen=True)
class SizeRule:
    """The valid sizes of one input dim: ``exceptions`` (valid sizes below
    ``threshold``) and, from ``threshold`` on, the sizes whose remainder modulo
    ``period`` is in ``residues`` (none: a finite set). ``outputs``: the output's
    size along the same axis as a formula of ``n`` (``""`` when the output has
    another rank); ``checked_to``: the largest size traced."""

    model: str
    dim: int
    period: int
    threshold: int
    residues: tuple[int, ...]
    exceptions: tuple[int, ...]
    outputs: str
    checked_to: int
    method: str = "replayed from one trace"
    """How the sizes were examined: ``"replayed from one trace"``, or ``"traced at
    each size: <why>"``."""

    def is_valid(self, n: int) -> bool:
        """Whether size ``n`` is valid. A rule that found no period knows nothing
        past the sizes it examined: asked about one, it raises ``ValueError``."""
        if n < self.threshold:
            return n in self.exceptions
        if self.threshold > self.checked_to:  # n is past every size examined
            raise ValueError(
                f"{self.model}: sizes along dim {self.dim} were examined up to "
                f"{self.checked_to} and follow no period there, so size {n} is not known.\n"
                f"  fix: use valid_input_sizes(...), which traces sizes past the rule, or "
                f"input_size_rule(..., limit={max(n, 2 * self.checked_to)})."
            )
        return n % self.period in self.residues

    def valid(self, sizes: Iterable[int]) -> list[int]:
        """The valid sizes among ``sizes``, without running the model."""
        return sorted({n for n in sizes if n >= 1 and self.is_valid(n)})

    def describe(self) -> str:
        """The rule in words: ``widths 28–31``, ``multiples of 8 from 8``,
        ``n ≡ 1, 5 (mod 8), n ≥ 9``; with the output size as a formula."""
        parts = []
        if self.exceptions:
            parts.append(_ranges(self.exceptions))
        if self.residues:
            first = self.threshold + min((r - self.threshold) % self.period for r in self.residues)
            if self.period == 1:
                parts.append(f"every size from {first}")
            elif self.residues == (0,):
                parts.append(f"multiples of {self.period} from {first}")
            else:
                residues = ", ".join(map(str, self.residues))
                parts.append(f"n ≡ {residues} (mod {self.period}), n ≥ {first}")
        text = " and ".join(parts) if parts else "no size"
        if self.outputs:
            text += f"; output {self.outputs}"
        if not self.residues and self.threshold > self.checked_to:
            text += f" (no period found up to {self.checked_to})"
        elif self.residues and self.method.startswith("traced at each size"):
            # the model's own code decides: the period is observed, not derived
            text += f" (observed up to {self.checked_to})"
        return text


def _ranges(values: Iterable[int], most: int = 8) -> str:
    """Sizes as runs (``3–4, 6–10``); past ``most`` runs, the first ones and a count."""
    ordered = sorted(values)
    runs: list[list[int]] = []
    for v in ordered:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs[:most])
    if len(runs) > most:
        text += f", … ({len(ordered)} sizes in {len(runs)} runs)"
    return text


@dataclass(frozen=True)
class _Periodicity:
    """What the layers tell of the period of validity along one input axis."""

    period: int
    """The least common multiple of the integer strides the axis meets (and of the
    numerators of the ratios of its resamplings): a period to try."""
    exact: bool
    """Whether validity is known to repeat with ``period``: no resampling by a
    scale factor that is not an integer."""
    provable: bool
    """Whether it repeats at all past the sizes examined: every scale factor is a
    fraction exact in binary (0.5, 1.5, 2.5), so ``⌊n·s⌋`` is computed exactly."""
    why: str = ""
    """The scale factor that proves no period, in words."""


def _period(result: Trace, axis: int) -> _Periodicity:
    """The period of validity along input axis ``axis`` as far as the trace's layers
    tell it (see :class:`_Periodicity`). A resampling's scale factor is read off its
    rule, not off the sizes at the traced input (where 2.5 can look like 2)."""
    from pytest_convcheck.fields import node_maps

    maps, _ = node_maps(result)
    found, exact, why = 1, True, ""
    for axes in maps.values():
        if axis >= len(axes):
            continue
        m = axes[axis]
        if m.whole or m.advance <= 0 or m.period <= 0:
            continue
        ratio = Fraction(m.advance, m.period)
        if ratio.numerator == 1:
            continue  # an upsampled path: its ratio is no stride
        exact = exact and ratio.denominator == 1
        if ratio.numerator <= 4096:
            found = math.lcm(found, ratio.numerator)
        else:
            exact = False
    provable = True
    for node in result.nodes:
        spec = node.spec
        if not isinstance(spec, InterpolateSpec) or spec.scale_factor is None:
            continue
        scales = spec.scale_factor
        for factor in scales if isinstance(scales, (tuple, list)) else (scales,):
            fraction = Fraction(float(factor))
            if fraction.denominator == 1:
                continue
            exact = False
            if fraction.denominator > 1 << 16:  # not exact in binary, or close to it
                provable = False
                why = f"scale factor {float(factor):g} is not exact in binary"
            elif fraction.denominator <= 4096:
                found = math.lcm(found, fraction.denominator)
    return _Periodicity(found, exact, provable, why)


def _out_size(outputs: Outputs, axis_from_end: int, rank: int) -> int | None:
    """The (first) output's size along the input's axis, when it keeps the input's rank."""
    first = outputs[0] if outputs else None
    if not first or len(first) != rank:
        return None
    return first[-axis_from_end]


def input_size_rule(
    model: nn.Module,
    input_shape: Any = None,
    dim: int = -1,
    *,
    example_inputs: Any = None,
    input: int | str | None = None,
    limit: int = 4096,
) -> SizeRule:
    """The sizes along ``dim`` of the primary input (other dims and inputs as
    described, see :mod:`pytest_convcheck.inputs`) at which the model runs and
    keeps its batch, as a :class:`SizeRule`; ``limit`` bounds the sizes examined.

    One trace at the described size is replayed at the others
    (:class:`~pytest_convcheck.size_program.SizeProgram`: formulas and shape
    functions, no model code); a model whose code reads a size that changes, or
    that cannot run on meta, is traced at each size instead
    (:attr:`SizeRule.method` says which)."""
    inputs = as_inputs(input_shape, example_inputs=example_inputs, input=input)
    base = list(inputs.shape)
    if not -len(base) <= dim < len(base) or dim % len(base) == 0:
        raise ValueError(
            f"dim {dim} is not a spatial dim of input {tuple(base)}.\n  fix: pick a spatial dim "
            f"such as -1."
        )
    try:
        reference: Trace | None = trace(model, inputs)
    except (ShapeError, ModelRunError):
        reference = None
    if reference is not None:
        try:
            program = SizeProgram(reference)
            return _rule(model, inputs, dim, limit, reference, _replayed(program, base, dim))
        except NotReplayable as why:
            reason = str(why)
    else:
        reason = f"the model does not run at {inputs.describe()}"
    traced = replace(
        _rule(
            model,
            inputs,
            dim,
            limit,
            reference,
            _traced(model, inputs, base, dim),
            strides_only=False,
        ),
        method=f"traced at each size: {reason}",
    )
    if reference is not None:
        return traced
    # Without a trace the layers' strides and scale factors are unknown, and a window
    # of sizes proves no period: start again from the size nearest the described one
    # at which the model runs, whose trace tells them.
    seen = traced.valid(range(1, traced.checked_to + 1))
    if not seen:
        return traced
    working = min(seen, key=lambda n: (abs(n - base[dim]), n))
    shape = list(base)
    shape[dim] = working
    rule = input_size_rule(model, inputs.with_shape(shape), dim, limit=limit)
    return replace(rule, method=f"{rule.method}, at size {working} ({reason})")


Outputs = tuple[tuple[int, ...], ...]


def _replayed(program: SizeProgram, base: list[int], dim: int) -> Callable[[int], Outputs | None]:
    """Outputs per size from the program; raises :class:`NotReplayable` as soon as a
    size read by the model's code differs from the traced one."""
    traced = program.run(tuple(base)).reads

    def at(n: int) -> Outputs | None:
        shape = list(base)
        shape[dim] = n
        found = program.run(tuple(shape))
        for read, (then, now) in zip(
            program.trace.size_reads, zip(traced, found.reads, strict=True), strict=True
        ):
            if now is not None and now != then:
                node, axis = read
                where = "the input" if node < 0 else program.trace.nodes[node].module or "forward"
                raise NotReplayable(
                    f"the model's code reads a size of a tensor in {where} "
                    f"({'its shape' if axis is None else f'dim {axis}'}) that changes with the "
                    f"input size ({then} at {base[dim]}, {now} at {n})"
                )
        return found.outputs

    return at


def _traced(
    model: nn.Module, inputs: Inputs, base: list[int], dim: int
) -> Callable[[int], Outputs | None]:
    def at(n: int) -> Outputs | None:
        shape = list(base)
        shape[dim] = n
        try:
            result = trace(model, inputs.with_shape(shape))
        except (ShapeError, ModelRunError):
            return None
        return tuple(s for _, s in result.outputs)

    return at


def _rule(
    model: nn.Module,
    inputs: Inputs,
    dim: int,
    limit: int,
    reference: Trace | None,
    outputs_at: Callable[[int], Outputs | None],
    *,
    strides_only: bool = True,
) -> SizeRule:
    """The rule from validity at sizes 1, 2, …: with ``strides_only`` (a replayed
    trace: only layers decide) the period is the strides' least common multiple;
    otherwise (the model's code reads sizes: an ``assert n % 8 == 0`` is a period of
    its own) the smallest period that repeats three times over a longer window."""
    base = list(inputs.shape)
    rank = len(base)
    axis = (dim % rank) - (rank - inputs.spatial)
    cache: dict[int, Outputs | None] = {}

    def run(n: int) -> Outputs | None:
        if n not in cache:
            found = outputs_at(n)
            if found is not None and not _batch_kept(found, base[0]):
                found = None
            cache[n] = found
        return cache[n]

    known = (
        _period(reference, axis)
        if reference is not None and axis >= 0
        else _Periodicity(1, True, True)
    )
    period, exact = known.period, known.exact
    observed = 0  # the sizes examined to observe the period: the rule must hold there
    if not strides_only or not exact:
        period, observed = _observed_period(run, period, base[dim], limit)
    # A threshold past which validity repeats with the period, checked twice over. A
    # flatten feeding a linear layer takes a window of at most one period of sizes
    # (e.g. 28–31) wherever the described size is: where no size repeats, the window
    # examined grows to cover the described size; where sizes repeat twice over, no
    # such window is at work, and the described size only has to agree with the rule.
    # A scale factor that is no integer: every size up to the limit is examined, and
    # a period is stated only where it holds over all of them; where the factor is
    # not exact in binary (0.7 · 90 is 62.99…) none is stated past the limit.
    n_max = min(limit, max(4 * period + 8, observed)) if exact else limit
    while True:
        valid = {n: run(n) is not None for n in range(1, n_max + 1)}
        # the smallest t from which valid(n) = valid(n + period) up to n_max, if it
        # leaves two periods to see it
        last = next((n for n in range(n_max - period, 0, -1) if valid[n] != valid[n + period]), 0)
        threshold = last + 1 if last + 1 <= n_max - 2 * period else None
        if n_max >= limit:
            break
        if threshold is not None:
            t = threshold
            repeating = any(valid[n] for n in range(t, t + period))
            described = base[dim] <= n_max - 2 * period
            n = base[dim]
            predicted = valid[n] if n < t else valid[t + (n - t) % period]
            if (repeating or described) and predicted == (run(n) is not None):
                break
        n_max = min(limit, max(n_max * 2, base[dim] + 4 * period + 8))
    name = type(model).__name__
    if threshold is None or not known.provable:  # no period: list what was seen
        seen = tuple(n for n in range(1, n_max + 1) if valid[n])
        rule = SizeRule(name, dim, period, n_max + 1, (), seen, "", n_max)
        return replace(rule, method=f"{rule.method} ({known.why})") if known.why else rule
    residues = tuple(sorted({n % period for n in range(threshold, threshold + period) if valid[n]}))
    examined = [n for n in range(threshold, n_max + 1) if valid[n]]
    back = rank - (dim % rank)
    outputs, formula = _fit_output(run, threshold, period, residues, back, rank, examined)
    if formula is not None:  # fitted from the threshold on: where does it hold below?
        wrong = [
            n
            for n in range(1, threshold)
            if valid[n] and _out_size(run(n) or (), back, rank) != formula(n)
        ]
        if wrong:
            outputs += f" for n ≥ {max(wrong) + 1}"
    # the smallest period the residues repeat with (every size: period 1)
    for smaller in (d for d in range(1, period + 1) if period % d == 0):
        reduced = {r % smaller for r in residues}
        if len(reduced) * (period // smaller) == len(residues):
            residues, period = tuple(sorted(reduced)), smaller
            break
    # sizes just below the threshold that continue the periodic part belong to it
    while threshold > 1 and valid[threshold - 1] == ((threshold - 1) % period in residues):
        threshold -= 1
    exceptions = tuple(n for n in range(1, threshold) if valid[n])
    return SizeRule(name, dim, period, threshold, residues, exceptions, outputs, n_max)


def _observed_period(
    run: Callable[[int], Outputs | None], strides: int, described: int, limit: int
) -> tuple[int, int]:
    """The smallest period (a multiple of ``strides`` or not) with which validity
    repeats over the second half of the sizes up to ``top = max(described, 64) +
    4·64``, three periods at least; and ``top`` (the rule is then checked against
    every size up to it: a model that branches on a size can break the period
    anywhere in it)."""
    top = min(limit, max(described, 64, strides) + 4 * max(64, strides))
    valid = [False] + [run(n) is not None for n in range(1, top + 1)]
    for p in range(1, top // 4 + 1):
        # from some threshold t on, valid[n] == valid[n + p], for three periods at least
        start = top - p
        while start >= 1 and valid[start] == valid[start + p]:
            start -= 1
        if start + 1 <= min(top - 3 * p, top // 2):  # over half the window at least
            return p, top
    return strides, top


def _fit_output(
    run: Callable[[int], Outputs | None],
    threshold: int,
    period: int,
    residues: tuple[int, ...],
    back: int,
    rank: int,
    examined: Iterable[int] = (),
) -> tuple[str, Callable[[int], Fraction | int] | None]:
    """The output's size along the axis as ``k·⌊(n + c)/L⌋ + d`` (``k·n + d`` for
    ``L = 1``), fitted to one size of each residue class and the next period's and
    checked at every valid size ``examined``: the formula in words and as a
    function; ``("", None)`` when the output has another rank or fits no such
    formula."""
    sizes = list(examined)
    none: tuple[str, None] = ("", None)

    def holds(formula: Callable[[int], Fraction | int]) -> bool:
        return all(_out_size(run(n) or (), back, rank) == formula(n) for n in sizes)

    samples = []
    for r in residues:
        n = threshold + (r - threshold) % period
        a, b = run(n), run(n + period)
        ya = _out_size(a, back, rank) if a is not None else None
        yb = _out_size(b, back, rank) if b is not None else None
        if ya is None or yb is None:
            return none
        samples.append((n, ya, yb))
    steps = {yb - ya for _, ya, yb in samples}
    if not samples or len(steps) != 1:
        return none
    (k,) = steps
    if k == 0:
        values = {ya for _, ya, _ in samples}
        if len(values) != 1:
            return none
        value = values.pop()

        def constant(n: int) -> int:
            return value

        return (str(value), constant) if holds(constant) else none
    slope = Fraction(k, period)
    linear = {ya - slope * n for n, ya, _ in samples}
    if len(linear) == 1:  # exact on the valid sizes: no floor needed
        d = linear.pop()

        def line(n: int) -> Fraction | int:
            return slope * n + d

        if not holds(line):
            return none
        core = "n" if slope.numerator == 1 else f"{slope.numerator}·n"
        core += f"/{slope.denominator}" if slope.denominator != 1 else ""
        return (core if d == 0 else f"{core} {'+' if d > 0 else '−'} {abs(d)}"), line
    for c in range(period):
        offsets = {ya - k * ((n + c) // period) for n, ya, _ in samples}
        if len(offsets) != 1:
            continue
        offset = offsets.pop()

        def floored(n: int, c: int = c, offset: int = offset) -> int:
            return k * ((n + c) // period) + offset

        if not holds(floored):
            continue
        core = "n" if period == 1 else f"⌊(n + {c})/{period}⌋" if c else f"⌊n/{period}⌋"
        core = core if k == 1 else f"{k}·{core}"
        return (
            core if offset == 0 else f"{core} {'+' if offset > 0 else '−'} {abs(offset)}"
        ), floored
    return none


def _batch_kept(shapes: Outputs, batch: int) -> bool:
    return bool(shapes) and all(len(s) >= 1 and s[0] == batch for s in shapes)


def describe_sizes(model: nn.Module, inputs: Inputs, limit: int = 256) -> list[str]:
    """Per spatial axis of the primary input, its rule in words (for messages)."""
    rank = len(inputs.shape)
    names = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
    labels = names.get(inputs.spatial, tuple(f"dim {d}" for d in range(inputs.spatial)))
    lines = []
    for label, dim in zip(labels, range(rank - inputs.spatial, rank), strict=True):
        rule = input_size_rule(model, inputs, dim, limit=limit)
        lines.append(f"{label} (dim {dim}): {rule.describe()}")
    return lines
