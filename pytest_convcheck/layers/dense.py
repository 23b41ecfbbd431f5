"""Dense ops, where the spatial structure ends or every position meets every other:
:class:`LinearSpec` (``nn.Linear``, ``F.linear``), :class:`FlattenSpec`
(``nn.Flatten``, ``nn.Unflatten``, ``torch.flatten``) and :class:`MatmulSpec`
(``matmul``/``@``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``einsum``,
``scaled_dot_product_attention``), with :func:`broadcast_shapes` and the builders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pytest_convcheck.effects import Contract, Effect, Mix, Relayout, Unknown
from pytest_convcheck.errors import ShapeError, problem
from pytest_convcheck.layers.base import (
    KERNEL_FLOATS,
    PhaseTaps,
    Shape,
    Spec,
    check_same_dtype,
    is_lazy,
    layer_label,
    numel,
    shape_of,
    wrap_dim,
)


def broadcast_shapes(label: str, *shapes: Shape) -> Shape:
    """NumPy/torch broadcasting (torch docs, "Broadcasting semantics"): align from
    the right; per dim the sizes must be equal or 1."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-rank, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(sizes) > 1:
            raise ShapeError(
                problem(
                    label,
                    f"shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast: dim "
                    f"{i} has sizes {sorted(sizes)} (each must be 1 or equal).",
                    fix="reshape or expand one operand so that the sizes match.",
                )
            )
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _fits(label: str, what: str, shape: Shape, target: Shape) -> None:
    """``shape`` must broadcast to ``target`` without changing it (``Tensor.expand``)."""
    if len(shape) > len(target) or broadcast_shapes(label, shape, target) != target:
        raise ShapeError(
            problem(
                label,
                f"{what} of shape {tuple(shape)} cannot be broadcast to the result's shape "
                f"{tuple(target)}.",
                fix=f"give {what} a shape that expands to {tuple(target)}.",
            )
        )


@dataclass(frozen=True)
class LinearSpec(Spec):
    """``nn.Linear`` / ``F.linear``: (*, in_features) → (*, out_features).

    Shape:
        - Input: ``(*, in_features)``, at least 1-D (any last dim for a lazy layer).
        - Output: ``(*, out_features)``; ``(*)`` for ``F.linear`` with a 1-D weight.
          A bias given to ``F.linear`` must broadcast to the output.

    Source: the ``nn.Linear`` / ``F.linear`` docs.
    """

    kind: str
    in_features: int | None
    out_features: int
    bias: bool = True
    vector: bool = False  # F.linear with a 1-D weight: the last dim is contracted away
    bias_shape: tuple[int, ...] | None = None  # F.linear(..., bias): must broadcast
    weight_dtype: torch.dtype | None = None  # F.linear(x, weight): must be the input's dtype
    bias_dtype: torch.dtype | None = None  # F.linear(x, weight, bias): the input's dtype too

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """Every output feature reads every input feature (the last dim)."""
        return (
            Mix((len(input_shape) - 1,), tuple(output_shape)) if input_shape else Unknown(self.kind)
        )

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """The spatial structure ends here."""
        return []

    def check_dtype(self, dtype: torch.dtype, name: str | None = None) -> None:
        """The weight and a bias of another dtype than the input, and a bool input,
        are refused (torch's CPU matrix products; its meta kernels take them)."""
        label = layer_label(self.kind, name)
        check_same_dtype(label, dtype, self.weight_dtype)
        if self.bias_dtype is not None and self.bias_dtype != dtype:
            raise ShapeError(
                problem(
                    label,
                    f"the input is {str(dtype).removeprefix('torch.')} but the bias is "
                    f"{str(self.bias_dtype).removeprefix('torch.')}; they must have one dtype.",
                    fix="create the bias with dtype=x.dtype, or register it as a parameter.",
                )
            )
        if dtype == torch.bool:
            raise ShapeError(
                problem(
                    label,
                    "a bool input has no matrix product.",
                    fix="convert the input first: x.float().",
                )
            )

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        if len(input_shape) == 0:
            raise ShapeError(
                problem(
                    label,
                    "input must have at least one dimension.",
                    fix="add a dim, e.g. x.unsqueeze(0).",
                )
            )
        out = (*input_shape[:-1], self.out_features) if not self.vector else input_shape[:-1]
        if self.in_features is not None and input_shape[-1] != self.in_features:
            flat = numel(input_shape[1:]) if len(input_shape) > 1 else input_shape[-1]
            raise ShapeError(
                problem(
                    label,
                    f"expected the last dim to be in_features={self.in_features}, got input of "
                    f"shape {tuple(input_shape)} (last dim {input_shape[-1]}).",
                    fix=f"flatten to (N, {flat}) with x.flatten(1) and build the layer with "
                    f"in_features={flat}, or use nn.LazyLinear.",
                )
            )
        if self.bias_shape is not None:
            _fits(label, "bias", self.bias_shape, tuple(out))
        return tuple(out)

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        macs = numel(output_shape) * input_shape[-1]
        return 2 * macs + (numel(output_shape) if self.bias else 0)

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """``grad_x = grad_y · W`` and ``grad_W = grad_yᵀ · x`` take the forward's MACs
        each; the bias gradient one add per output element."""
        macs = numel(output_shape) * input_shape[-1]
        return 4 * macs + (numel(output_shape) if self.bias else 0)


def linear_from_module(module: nn.Module) -> LinearSpec:
    m: Any = module
    lazy = is_lazy(module)
    return LinearSpec(
        type(module).__name__,
        None if lazy else int(m.in_features),
        int(m.out_features),
        m.bias is not None,
    )


def linear_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> LinearSpec:
    bound = dict(zip(("input", "weight", "bias"), args, strict=False)) | kwargs
    weight, bias = bound["weight"], bound.get("bias")
    if weight.dim() not in (1, 2):
        raise ShapeError(
            problem(
                None,
                f"weight of shape {tuple(weight.shape)} must be 2-D (out_features, in_features) "
                "or 1-D (in_features,).",
                fix="reshape the weight.",
            )
        )
    return LinearSpec(
        "linear",
        int(weight.shape[-1]),
        int(weight.shape[0]) if weight.dim() == 2 else 1,
        bias is not None,
        vector=weight.dim() == 1,
        bias_shape=tuple(bias.shape) if isinstance(bias, torch.Tensor) else None,
        weight_dtype=weight.dtype,
        bias_dtype=bias.dtype if isinstance(bias, torch.Tensor) else None,
    )


def plain_linear_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Whether the rule's output stands for torch's on this ``F.linear`` call (see
    :attr:`~pytest_convcheck.layers.table.Rule.trusted_on_meta`): a floating input of
    at least one dim, a 2-D weight and no bias or a 1-D bias of ``out_features``, all
    of one dtype. Any other call (a 1-D weight, a broadcast bias) is left to torch,
    whose matrix products refuse combinations the rule does not model."""
    if func is not F.linear or len(args) > 3 or set(kwargs) - {"input", "weight", "bias"}:
        return False
    bound = dict(zip(("input", "weight", "bias"), args, strict=False)) | kwargs
    x, weight, bias = bound.get("input"), bound.get("weight"), bound.get("bias")
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        return False
    if x.dtype not in KERNEL_FLOATS or x.dim() < 1 or weight.dim() != 2:
        return False
    if weight.dtype != x.dtype:
        return False
    return bias is None or (
        isinstance(bias, torch.Tensor)
        and bias.dtype == x.dtype
        and tuple(bias.shape) == (weight.shape[0],)
    )


@dataclass(frozen=True)
class FlattenSpec(Spec):
    """``nn.Flatten(start_dim, end_dim)`` / ``torch.flatten``; ``nn.Unflatten(dim, sizes)``.

    Shape:
        - Flatten: ``(*, S_start, …, S_end, *)`` → ``(*, S_start · … · S_end, *)``,
          ``start_dim ≤ end_dim``; a 0-D input gives ``(1,)``.
        - Unflatten: ``(*, S_dim, *)`` → ``(*, U_1, …, U_n, *)`` with
          ``U_1 · … · U_n = S_dim``; one ``U_i`` may be ``-1``, inferred.

    Source: the ``nn.Flatten``, ``nn.Unflatten`` and ``torch.flatten`` docs.
    """

    kind: str
    start_dim: int = 1
    end_dim: int = -1
    unflatten: tuple[int, ...] | None = None  # nn.Unflatten: sizes; start_dim is its dim

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """A row-major reshape."""
        return Relayout((("reshape", tuple(output_shape)),))

    def phase_taps(self, input_shape: Shape, output_shape: Shape) -> PhaseTaps:
        """The spatial structure ends here."""
        return []

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        label = layer_label(self.kind, name)
        rank = len(input_shape)
        if self.unflatten is not None:
            dim = wrap_dim(label, self.start_dim, rank, input_shape, wrap_scalar=False)
            sizes = list(self.unflatten)
            if sizes.count(-1) > 1:
                raise ShapeError(
                    problem(
                        label,
                        f"only one size may be -1, got {tuple(sizes)}.",
                        fix="give every size but one.",
                    )
                )
            known = numel([s for s in sizes if s != -1])
            total = input_shape[dim]
            if -1 in sizes:
                if known == 0 or total % known:
                    raise ShapeError(
                        problem(
                            label,
                            f"cannot unflatten dim {dim} of size {total} into {tuple(sizes)}: "
                            f"{total} is not divisible by {known}.",
                            fix="choose sizes whose product divides the dim.",
                        )
                    )
                sizes[sizes.index(-1)] = total // known
            elif known != total:
                raise ShapeError(
                    problem(
                        label,
                        f"sizes {tuple(sizes)} multiply to {known}, but dim {dim} of input "
                        f"{tuple(input_shape)} has size {total}.",
                        fix=f"choose sizes whose product is {total}.",
                    )
                )
            return (*input_shape[:dim], *sizes, *input_shape[dim + 1 :])
        if rank == 0:
            return (1,)
        start = wrap_dim(label, self.start_dim, rank, input_shape)
        end = wrap_dim(label, self.end_dim, rank, input_shape)
        if start > end:
            raise ShapeError(
                problem(
                    label,
                    f"start_dim {self.start_dim} comes after end_dim {self.end_dim} for a {rank}"
                    f"-D input of shape {tuple(input_shape)}.",
                    fix="use start_dim ≤ end_dim.",
                )
            )
        return (*input_shape[:start], numel(input_shape[start : end + 1]), *input_shape[end + 1 :])


def flatten_from_module(module: nn.Module) -> FlattenSpec:
    m: Any = module
    if isinstance(module, nn.Unflatten):
        return FlattenSpec(
            "Unflatten", int(m.dim), unflatten=tuple(int(s) for s in m.unflattened_size)
        )
    return FlattenSpec("Flatten", int(m.start_dim), int(m.end_dim))


def flatten_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> FlattenSpec:
    bound = dict(zip(("input", "start_dim", "end_dim"), args, strict=False)) | kwargs
    return FlattenSpec("flatten", int(bound.get("start_dim", 0)), int(bound.get("end_dim", -1)))


@dataclass(frozen=True)
class MatmulSpec(Spec):
    """Matrix products, as torch documents them: ``matmul`` (``@``, with 1-D promotion
    and batch broadcasting), ``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``einsum`` and
    ``scaled_dot_product_attention``. ``operands`` holds every tensor argument's shape
    in the op's order; ``flops`` counts 2 per multiply-accumulate of the product (as
    ``torch.utils.flop_counter`` does) plus 1 per element of an added input
    (``addmm``/``baddbmm``), as conv and linear count their bias.

    Shape:
        - ``matmul``: ``(…, n, m) @ (…, m, p)`` → ``(…, n, p)``, the batch dims
          broadcast; a 1-D operand is promoted to a matrix, and the promoted dim
          removed from the result.
        - ``mm``: ``(n, m) × (m, p)`` → ``(n, p)``; ``bmm``: ``(b, n, m) × (b, m, p)``
          → ``(b, n, p)``; ``addmm``/``baddbmm``: the product's shape, to which the
          added input must broadcast.
        - ``einsum``: the sizes of the output labels (a size-1 label broadcasts).
        - ``scaled_dot_product_attention``: query ``(…, L, E)``, key ``(…, S, E)``,
          value ``(…, S, Ev)`` → ``(…, L, Ev)``, the batch dims broadcast.

    Source: the docs of ``torch.matmul``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``,
    ``einsum`` and ``F.scaled_dot_product_attention``.
    """

    kind: str
    form: str  # matmul | mm | bmm | addmm | baddbmm | einsum | sdpa
    operands: tuple[Shape, ...]
    equation: str = ""
    causal_mask: bool = False  # sdpa: is_causal together with attn_mask
    gqa: bool = False

    reads_every_input: ClassVar[bool] = True

    def effect(self, input_shape: Shape, output_shape: Shape) -> Effect:
        """``a @ b`` sums over ``a``'s last dim and ``b``'s second-to-last; other
        forms (einsum, attention, ``addmm``) are taken as mixing everything."""
        if self.form in ("matmul", "mm", "bmm") and all(len(s) >= 2 for s in self.operands):
            return Contract(tuple(output_shape))
        return Unknown(self.kind)

    def output_shape(self, input_shape: Shape, name: str | None = None) -> Shape:
        return self._plan(layer_label(self.kind, name))[0]

    def flops(self, input_shape: Shape, output_shape: Shape) -> int:
        return self._plan(self.kind)[1]

    def backward_flops(self, input_shape: Shape, output_shape: Shape) -> int:
        """Both operands' gradients are products of the same size as the forward."""
        return 2 * self.flops(input_shape, output_shape)

    def _plan(self, label: str) -> tuple[Shape, int]:
        """(output shape, FLOPs)."""
        ops = self.operands
        if self.form == "einsum":
            return _einsum(label, self.equation, ops)
        if self.form == "sdpa":
            return self._attention(label)
        if self.form in ("addmm", "baddbmm"):
            rank = 2 if self.form == "addmm" else 3
            out, flops = _product(label, ops[1], ops[2], rank)
            _fits(label, "input", ops[0], out)
            return out, flops + numel(out)
        if self.form in ("mm", "bmm"):
            return _product(label, ops[0], ops[1], 2 if self.form == "mm" else 3)
        return _matmul(label, ops[0], ops[1])

    def _attention(self, label: str) -> tuple[Shape, int]:
        q, k, v = self.operands[:3]
        if min(len(q), len(k), len(v)) < 2:
            raise ShapeError(
                problem(
                    label,
                    f"query, key and value need at least 2 dims (…, L, E), got {tuple(q)}, "
                    f"{tuple(k)}, {tuple(v)}.",
                    fix="give query, key and value the shape (…, L, E).",
                )
            )
        if q[-1] != k[-1] or k[-2] != v[-2]:
            raise ShapeError(
                problem(
                    label,
                    f"query (…, L, E) = {tuple(q)}, key (…, S, E) = {tuple(k)} and value (…, S, "
                    f"Ev) = {tuple(v)} must agree on E (query and key) and S (key and value).",
                    fix="project query and key to the same width, and give key and value the same "
                    "length.",
                )
            )
        kb, vb = k[:-2], v[:-2]
        if self.gqa and len(q) >= 3 and len(k) >= 3 and len(v) >= 3:
            heads = q[-3]
            for what, shape in (("key", k), ("value", v)):
                if shape[-3] == 0 or heads % shape[-3]:
                    raise ShapeError(
                        problem(
                            label,
                            f"with enable_gqa the query's {heads} heads must be a multiple of the "
                            f"{what}'s {shape[-3]}.",
                            fix="make the query's head count a multiple of the key's and value's.",
                        )
                    )
            kb, vb = (*k[:-3], heads), (*v[:-3], heads)
        batch = broadcast_shapes(label, q[:-2], kb, vb)
        length, width, keys, out_width = q[-2], q[-1], k[-2], v[-1]
        if len(self.operands) > 3:
            _fits(label, "attn_mask", self.operands[3], (*batch, length, keys))
        if self.causal_mask:
            raise ShapeError(
                problem(
                    label,
                    "attn_mask and is_causal=True together are not supported.",
                    fix="drop one (a causal mask is what is_causal builds).",
                )
            )
        b = numel(batch)
        return (*batch, length, out_width), 2 * b * length * keys * (width + out_width)


def _product(label: str, a: Shape, b: Shape, rank: int) -> tuple[Shape, int]:
    """``mm`` (rank 2) and ``bmm`` (rank 3): no broadcasting, no promotion."""
    what = "matrices" if rank == 2 else "batches of matrices"
    if len(a) != rank or len(b) != rank:
        raise ShapeError(
            problem(
                label,
                f"expects two {rank}-D {what}, got {tuple(a)} and {tuple(b)}.",
                fix="use torch.matmul (or @), which promotes and broadcasts.",
            )
        )
    if rank == 3 and a[0] != b[0]:
        raise ShapeError(
            problem(
                label,
                f"batch sizes differ: {a[0]} and {b[0]} (shapes {tuple(a)}, {tuple(b)}).",
                fix="give both operands the same batch, or use torch.matmul, which broadcasts.",
            )
        )
    if a[-1] != b[-2]:
        raise ShapeError(
            problem(
                label,
                f"shapes {tuple(a)} and {tuple(b)} cannot be multiplied: the inner sizes {a[-1]} "
                f"and {b[-2]} differ.",
                fix="transpose an operand or project it to the same width.",
            )
        )
    out = (*a[:-1], b[-1])
    return out, 2 * numel(out) * a[-1]


def _matmul(label: str, a: Shape, b: Shape) -> tuple[Shape, int]:
    """``torch.matmul`` (docs): 1-D operands are promoted (a row before, a column
    after) and the promoted dim removed again; batch dims broadcast."""
    if not a or not b:
        raise ShapeError(
            problem(
                label,
                f"both arguments to matmul need at least 1 dim, got {tuple(a)} and {tuple(b)}.",
                fix="multiply scalars with *.",
            )
        )
    left = (1, *a) if len(a) == 1 else a
    right = (*b, 1) if len(b) == 1 else b
    if left[-1] != right[-2]:
        raise ShapeError(
            problem(
                label,
                f"shapes {tuple(a)} and {tuple(b)} cannot be multiplied: the inner sizes "
                f"{left[-1]} and {right[-2]} differ.",
                fix="transpose an operand or project it to the same width.",
            )
        )
    batch = broadcast_shapes(label, left[:-2], right[:-2])
    rows = () if len(a) == 1 else (left[-2],)
    cols = () if len(b) == 1 else (right[-1],)
    return (*batch, *rows, *cols), 2 * numel(batch) * left[-2] * left[-1] * right[-1]


def _einsum_terms(equation: str, ops: tuple[Shape, ...]) -> tuple[list[list[str]], list[str]]:
    """Input terms and the output term as lists of labels, ``...`` expanded to one
    label per broadcast dim (``'.0'``, ``'.1'``, … from the left of the widest)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ops):
        raise ShapeError(
            problem(
                None,
                f"einsum: the equation {equation!r} has {len(terms)} operand term(s) but "
                f"{len(ops)} operand(s) were given.",
                fix="give one term per operand, separated by commas.",
            )
        )
    widest = 0
    for term, shape in zip(terms, ops, strict=True):
        letters = term.replace("...", "")
        if not all(c.isalpha() for c in letters) or term.count("...") > 1:
            raise ShapeError(
                problem(
                    None,
                    f"einsum: invalid subscripts {term!r} in {equation!r}.",
                    fix="use letters and at most one ... per term.",
                )
            )
        if "..." in term:
            width = len(shape) - len(letters)
            if width < 0:
                raise ShapeError(
                    problem(
                        None,
                        f"einsum: term {term!r} has more labels than operand {tuple(shape)} has "
                        "dims.",
                        fix="one label per dim.",
                    )
                )
            widest = max(widest, width)
        elif len(letters) != len(shape):
            raise ShapeError(
                problem(
                    None,
                    f"einsum: term {term!r} has {len(letters)} labels but operand {tuple(shape)} "
                    f"has {len(shape)} dims.",
                    fix="give one label per dim (or use ...).",
                )
            )
    expanded = []
    for term, shape in zip(terms, ops, strict=True):
        head, dots, tail = term.partition("...")
        width = len(shape) - len(head) - len(tail) if dots else 0
        expanded.append([*head, *(f".{widest - width + i}" for i in range(width)), *tail])
    if arrow:
        left, dots, right = rhs.partition("...")
        if not all(c.isalpha() for c in left + right):
            raise ShapeError(
                problem(
                    None,
                    f"einsum: invalid output subscripts {rhs!r}.",
                    fix="use letters and at most one ... after ->.",
                )
            )
        out = [*left, *(f".{i}" for i in range(widest) if dots), *right]
    else:
        counts: dict[str, int] = {}
        for term_labels in expanded:
            for label in term_labels:
                counts[label] = counts.get(label, 0) + 1
        out = [f".{i}" for i in range(widest)] + sorted(
            c for c, n in counts.items() if n == 1 and not c.startswith(".")
        )
    return expanded, out


def _einsum(label: str, equation: str, ops: tuple[Shape, ...]) -> tuple[Shape, int]:
    """``torch.einsum``: each label has one size (1 broadcasts); the output has the
    output labels' sizes. FLOPs as torch contracts it (``aten/.../Linear.cpp``), left
    to right in pairs, each a ``bmm`` over the labels the pair shares or keeps:
    2·∏ sizes of the pair's labels, after labels of one operand only (in neither the
    output nor another operand) are summed away first, free of multiplications; a
    pair that sums nothing of size > 1 is an elementwise product, 0 FLOPs."""
    try:
        terms, out = _einsum_terms(equation, ops)
    except ShapeError as error:
        raise ShapeError(f"{label}: {str(error).removeprefix('einsum: ')}") from None
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, ops, strict=True):
        for name, size in zip(term, shape, strict=True):
            known = sizes.get(name, 1)
            if size != 1 and known != 1 and size != known:
                raise ShapeError(
                    problem(
                        label,
                        f"label {name!r} has size {size} in one operand and {known} in another ("
                        f"{equation!r} on {', '.join(str(tuple(o)) for o in ops)}).",
                        fix="make the sizes of the label agree (or 1, which broadcasts).",
                    )
                )
            sizes[name] = max(known, size) if size == 1 or known == 1 else size
    for name in out:
        if name not in sizes:
            raise ShapeError(
                problem(
                    label,
                    f"output label {name!r} appears in no operand.",
                    fix="use only labels of the operands after ->.",
                )
            )
        if out.count(name) > 1:
            raise ShapeError(
                problem(
                    label,
                    f"output label {name!r} appears more than once.",
                    fix="name each output label once.",
                )
            )
    # a label of size 1 in an operand is broadcast there: that operand does not have it
    labels = [
        {c for c, size in zip(term, shape, strict=True) if size > 1}
        for term, shape in zip(terms, ops, strict=True)
    ]

    def kept(j: int) -> set[str]:
        # a label of one operand only, and not of the output, is summed out first
        others = set(out).union(*(labels[o] for o in range(len(labels)) if o != j))
        return labels[j] & others

    flops = 0
    live = kept(0)
    for i in range(1, len(terms)):
        right = kept(i)
        later = set(out).union(*labels[i + 1 :])
        summed = (live & right) - later
        if numel([sizes[c] for c in summed]) > 1:
            flops += 2 * numel([sizes[c] for c in live | right])
        # else: nothing is summed, an elementwise product (torch multiplies), 0 FLOPs
        # as for every elementwise op
        live = (live | right) - summed
    return tuple(sizes[c] for c in out), flops


_MATMUL_FORMS = {
    "matmul": "matmul",
    "__matmul__": "matmul",
    "__rmatmul__": "matmul",
    "mm": "mm",
    "bmm": "bmm",
    "addmm": "addmm",
    "baddbmm": "baddbmm",
}


def matmul_from_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> MatmulSpec:
    name = getattr(func, "__name__", "matmul")
    if name == "einsum":
        equation, *rest = args
        operands = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        if not isinstance(equation, str) or not all(isinstance(t, torch.Tensor) for t in operands):
            raise ValueError("einsum's sublist form: torch computes its shape")
        return MatmulSpec(name, "einsum", tuple(shape_of(t) for t in operands), equation)
    if name == "scaled_dot_product_attention":
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
        bound = dict(zip(names, args, strict=False)) | kwargs
        mask = bound.get("attn_mask")
        qkv = [shape_of(bound[k]) for k in ("query", "key", "value")]
        if isinstance(mask, torch.Tensor):
            qkv.append(shape_of(mask))
        return MatmulSpec(
            name,
            "sdpa",
            tuple(qkv),
            causal_mask=mask is not None and bool(bound.get("is_causal", False)),
            gqa=bool(bound.get("enable_gqa", False)),
        )
    form = _MATMUL_FORMS[name]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    tensors += [v for k, v in kwargs.items() if isinstance(v, torch.Tensor) and k != "out"]
    count = 3 if form in ("addmm", "baddbmm") else 2
    if len(tensors) != count:
        raise ValueError("an unusual call signature")
    operands = tuple(shape_of(t) for t in tensors)
    return MatmulSpec(name, form, operands[::-1] if name == "__rmatmul__" else operands)
