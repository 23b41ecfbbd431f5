"""An independent float64 reference for convolution-like ops, from index arithmetic.

Nothing here calls the op under test: padding is an index map, each kernel tap
is a strided slice of the padded input, channels are contracted with
``torch.einsum`` (a matrix product), and interpolation is a per-axis matrix
built from the documented source-index formulas. The semantic checks compare
torch against these references and state, with numbers, what convolution is
and is not:

* convolution is cross-correlation (no kernel flip);
* groups split the channels into independent convolutions;
* dilation equals a zero-inserted kernel;
* every ``padding_mode`` pads as documented;
* the transposed convolution is the adjoint of the convolution
  (⟨Ax, y⟩ = ⟨x, Aᵀy⟩) and equals the gradient of the convolution with respect
  to its input — and it is not its inverse (tutorials often call it "the inverse
  process" of a convolution): ``transpose_is_not_inverse`` measures how far
  Aᵀ(Ax) lands from x.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "InverseGap",
    "assert_conv_matches_reference",
    "assert_transpose_is_adjoint",
    "conv_reference",
    "conv_transpose_reference",
    "interpolate_reference",
    "pad_reference",
    "pool_reference",
    "transpose_is_not_inverse",
]


def _tuple(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(int(v) for v in value)


def _source_index(i: int, size: int, mode: str) -> int | None:
    """Where padded position ``i`` (may be outside 0..size−1) reads from; ``None``: zero."""
    if 0 <= i < size:
        return i
    if mode == "zeros" or mode == "constant":
        return None
    if mode == "replicate":
        return min(max(i, 0), size - 1)
    if mode == "circular":
        return i % size
    if mode == "reflect":
        period = 2 * (size - 1)
        j = abs(i) % period if period else 0
        return period - j if j >= size else j
    raise ValueError(f"unknown padding mode {mode!r}")


def pad_reference(
    x: torch.Tensor, pads: Sequence[tuple[int, int]], mode: str = "zeros"
) -> torch.Tensor:
    """Pad the last ``len(pads)`` dims by ``(before, after)`` pairs, as an index map."""
    out = x
    dims = len(pads)
    for axis, (before, after) in enumerate(pads):
        dim = x.dim() - dims + axis
        size = out.shape[dim]
        sources = [_source_index(i, size, mode) for i in range(-before, size + after)]
        index = torch.tensor([0 if s is None else s for s in sources], dtype=torch.long)
        taken = out.index_select(dim, index)
        mask_shape = [1] * out.dim()
        mask_shape[dim] = len(sources)
        mask = torch.tensor([s is not None for s in sources], dtype=out.dtype).reshape(mask_shape)
        out = taken * mask
    return out


def _taps(kernel: Sequence[int]) -> list[tuple[int, ...]]:
    """Every kernel position (t₁, …, t_n)."""
    return [tuple(int(i) for i in tap) for tap in itertools.product(*[range(k) for k in kernel])]


def _tap_positions(
    tap: Sequence[int], dilation: Sequence[int], stride: Sequence[int], count: Sequence[int]
) -> tuple[slice, ...]:
    """The index of the ``count`` positions, one per output (conv) or input
    (transposed conv) element, that kernel tap ``tap`` meets along each spatial
    axis: ``t·d, t·d + s, …``; batch and channel axes whole."""
    return (
        slice(None),
        slice(None),
        *(
            slice(t * d, t * d + (n - 1) * s + 1, s)
            for t, d, s, n in zip(tap, dilation, stride, count, strict=True)
        ),
    )


def conv_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """N-d convolution (cross-correlation) of batched ``x`` (N, C, *S), in float64:
    ``out[n, o, j] = b[o] + Σ_c Σ_t w[o, c, t] · x_pad[n, g·C/G + c, j·s + t·d]``."""
    x64, w64 = x.double(), weight.double()
    dims = w64.dim() - 2
    s, p, d = _tuple(stride, dims), _tuple(padding, dims), _tuple(dilation, dims)
    padded = pad_reference(x64, [(q, q) for q in p], padding_mode)
    kernel = w64.shape[2:]
    out_size = [(padded.shape[2 + a] - d[a] * (kernel[a] - 1) - 1) // s[a] + 1 for a in range(dims)]
    n, c_in = x64.shape[:2]
    c_out = w64.shape[0]
    cg_in, cg_out = c_in // groups, c_out // groups
    out = torch.zeros((n, c_out, *out_size), dtype=torch.float64)
    tap: tuple[int, ...]
    for tap in _taps(kernel):
        window = padded[_tap_positions(tap, d, s, out_size)]
        for g in range(groups):
            part = window[:, g * cg_in : (g + 1) * cg_in]
            at: tuple[slice | int, ...] = (slice(None), slice(None), *tap)
            taps = w64[g * cg_out : (g + 1) * cg_out][at]
            out[:, g * cg_out : (g + 1) * cg_out] += torch.einsum("oc,nc...->no...", taps, part)
    if bias is not None:
        out += bias.double().reshape(1, -1, *([1] * dims))
    return out


def conv_transpose_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """N-d transposed convolution, in float64, by scattering: input ``i`` adds
    ``x[i]·w[t]`` at ``i·s + t·d − p``; ``weight`` is (C_in, C_out/G, *k)."""
    x64, w64 = x.double(), weight.double()
    dims = w64.dim() - 2
    s, p = _tuple(stride, dims), _tuple(padding, dims)
    op, d = _tuple(output_padding, dims), _tuple(dilation, dims)
    n, c_in, *size = x64.shape
    kernel = w64.shape[2:]
    cg_in, cg_out = c_in // groups, w64.shape[1]
    full = [(size[a] - 1) * s[a] + d[a] * (kernel[a] - 1) + 1 + op[a] for a in range(dims)]
    out = torch.zeros((n, cg_out * groups, *full), dtype=torch.float64)
    tap: tuple[int, ...]
    for tap in _taps(kernel):
        target = _tap_positions(tap, d, s, size)
        for g in range(groups):
            part = x64[:, g * cg_in : (g + 1) * cg_in]
            index: tuple[slice | int, ...] = (slice(None), slice(None), *tap)
            taps = w64[g * cg_in : (g + 1) * cg_in][index]
            contribution = torch.einsum("co,nc...->no...", taps, part)
            view = out[:, g * cg_out : (g + 1) * cg_out]
            view[target] += contribution
    crop = (
        slice(None),
        slice(None),
        *(slice(p[a], full[a] - p[a] if p[a] else None) for a in range(dims)),
    )
    out = out[crop]
    if bias is not None:
        out = out + bias.double().reshape(1, -1, *([1] * dims))
    return out


def pool_reference(
    x: torch.Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    mode: str = "max",
    count_include_pad: bool = True,
) -> torch.Tensor:
    """Max or average pooling (floor mode) in float64, from strided slices."""
    x64 = x.double()
    dims = x64.dim() - 2
    k = _tuple(kernel, dims)
    s = _tuple(stride if stride is not None else k, dims)
    p = _tuple(padding, dims)
    fill = -math.inf if mode == "max" else 0.0
    padded = (
        F.pad(x64, [q for pair in reversed(p) for q in (pair, pair)], value=fill) if any(p) else x64
    )
    ones = pad_reference(torch.ones_like(x64), [(q, q) for q in p])
    out_size = [(padded.shape[2 + a] - k[a]) // s[a] + 1 for a in range(dims)]
    windows, counts = [], []
    for tap in _taps(k):
        index = (
            slice(None),
            slice(None),
            *(slice(tap[a], tap[a] + (out_size[a] - 1) * s[a] + 1, s[a]) for a in range(dims)),
        )
        windows.append(padded[index])
        counts.append(ones[index])
    stacked = torch.stack(windows)
    if mode == "max":
        return stacked.max(0).values
    total = stacked.sum(0)
    if count_include_pad:
        return total / math.prod(k)
    return total / torch.stack(counts).sum(0)


def _axis_matrix(size_in: int, size_out: int, mode: str, align_corners: bool) -> torch.Tensor:
    """(size_out × size_in) interpolation weights along one axis, from the documented
    source-index formulas (``aten/src/ATen/native/UpSample.h``)."""
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    for j in range(size_out):
        if mode == "nearest":
            matrix[j, min(math.floor(j * Fraction(size_in, size_out)), size_in - 1)] = 1.0
            continue
        if align_corners:
            x = j * Fraction(size_in - 1, size_out - 1) if size_out > 1 else Fraction(0)
        else:
            x = max(
                (j + Fraction(1, 2)) * Fraction(size_in, size_out) - Fraction(1, 2), Fraction(0)
            )
        lo = min(math.floor(x), size_in - 1)
        hi = min(lo + 1, size_in - 1)
        frac = float(x - lo)
        matrix[j, lo] += 1.0 - frac
        matrix[j, hi] += frac
    return matrix


def interpolate_reference(
    x: torch.Tensor, size: Sequence[int], mode: str = "nearest", align_corners: bool = False
) -> torch.Tensor:
    """Nearest or (bi/tri)linear interpolation to ``size``, as one matrix per axis."""
    out = x.double()
    for axis, target in enumerate(size):
        matrix = _axis_matrix(out.shape[2 + axis], target, mode, align_corners)
        out = torch.movedim(torch.tensordot(out, matrix, dims=([2 + axis], [1])), -1, 2 + axis)
    return out


# --------------------------------------------------------------------------- assertions


def assert_conv_matches_reference(
    layer: nn.Module, input_shape: Sequence[int], *, seed: int = 0, device: str = "cpu"
) -> None:
    """A conv or transposed-conv layer (any dims, groups, dilation, padding mode) run
    on ``device`` in float64 agrees with the float64 CPU reference on a random input
    (largest difference ≤ 1e-9)."""
    __tracebackhide__ = True  # pytest shows the caller's line
    generator = torch.Generator().manual_seed(seed)
    work = _layer_copy(layer)
    x = torch.randn(tuple(input_shape), generator=generator, dtype=torch.float64)
    with torch.no_grad():
        got = _layer_copy(layer).to(device)(x.to(device)).cpu()
        expected = _reference_of(work, x)
    m = work
    error = float((got - expected).abs().max()) if got.shape == expected.shape else math.inf
    if not error <= 1e-9:  # NaN fails too
        raise AssertionError(
            f"{m!r} on input {tuple(input_shape)}: torch gives shape {tuple(got.shape)}, the "
            f"reference {tuple(expected.shape)}; largest difference {error:.3g} (float64)"
        )


def _reference_of(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        stride, padding, dilation = _ints(m)
        expected = conv_transpose_reference(
            x, m.weight, m.bias, stride, padding, tuple(m.output_padding), m.groups, dilation
        )
    elif isinstance(m, nn.modules.conv._ConvNd):
        stride, padding, dilation = _ints(m)
        expected = conv_reference(
            x, m.weight, m.bias, stride, padding, dilation, m.groups, m.padding_mode
        )
    else:
        raise TypeError(f"a conv layer is needed, got {type(m).__name__}")
    return expected


def _ints(
    conv: nn.modules.conv._ConvNd,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """stride, padding, dilation of a conv layer as int tuples."""
    if isinstance(conv.padding, str):
        raise ValueError(
            f"{conv!r}: string padding {conv.padding!r}; build the layer with the equivalent "
            f"integer padding to compare it with the reference"
        )
    return tuple(conv.stride), tuple(conv.padding), tuple(conv.dilation)


def _layer_copy(layer: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(layer).double()


def assert_transpose_is_adjoint(
    conv: nn.modules.conv._ConvNd,
    input_shape: Sequence[int],
    *,
    seed: int = 0,
    device: str = "cpu",
) -> float:
    """⟨conv(x), y⟩ = ⟨x, convᵀ(y)⟩ in float64 (the dot-product test), with A the
    float64 reference conv and convᵀ torch's transposed conv on ``device`` sharing
    ``conv``'s weight, and convᵀ(y) equal to the gradient of ⟨conv(x), y⟩ with respect
    to x. Returns the relative adjoint error."""
    __tracebackhide__ = True  # pytest shows the caller's line
    generator = torch.Generator().manual_seed(seed)
    w = conv.weight.detach().double()
    stride, padding, dilation = _ints(conv)
    x = torch.randn(
        tuple(input_shape), generator=generator, dtype=torch.float64, requires_grad=True
    )
    y_shape = conv_reference(x.detach(), w, None, stride, padding, dilation, conv.groups).shape
    y = torch.randn(tuple(y_shape), generator=generator, dtype=torch.float64)
    ax = conv_reference(x, w, None, stride, padding, dilation, conv.groups)
    sizes = [
        (s - 1) * st - 2 * p + d * (k - 1) + 1
        for s, st, p, d, k in zip(y_shape[2:], stride, padding, dilation, w.shape[2:], strict=True)
    ]
    output_padding = [a - b for a, b in zip(input_shape[2:], sizes, strict=True)]
    transposed = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[w.dim() - 2]
    aty = transposed(
        y.to(device), w.to(device), None, stride, padding, output_padding, conv.groups, dilation
    ).cpu()
    lhs = float((ax * y).sum().detach())
    rhs = float((x.detach() * aty).sum())
    (grad,) = torch.autograd.grad((ax * y).sum(), x)
    relative = abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)
    if not relative <= 1e-10:  # NaN fails too
        raise AssertionError(
            f"dot-product test failed: <Ax, y> = {lhs:.12g} but <x, Aᵀy> = {rhs:.12g} "
            f"(relative {relative:.3g})"
        )
    gap = float((grad - aty).abs().max())
    if not gap <= 1e-9:  # NaN fails too
        raise AssertionError(
            f"the transposed conv differs from the input gradient of the conv by {gap:.3g}"
        )
    return relative


@dataclass(frozen=True)
class InverseGap:
    """How far the transposed conv is from inverting the conv: ``relative_error`` is
    ‖Aᵀ(Ax) − x‖ / ‖x‖ for the layer's weights and a random x."""

    relative_error: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def __str__(self) -> str:
        return (
            f"Aᵀ(Ax) misses x by {self.relative_error:.0%} (‖Aᵀ(Ax) − x‖/‖x‖) for an input of "
            f"{self.input_shape}: the transposed convolution is the adjoint of the convolution, "
            f"not its inverse"
        )


def transpose_is_not_inverse(
    conv: nn.modules.conv._ConvNd, input_shape: Sequence[int], *, seed: int = 0
) -> InverseGap:
    """Measure ‖Aᵀ(Ax) − x‖/‖x‖ for ``conv`` (A) and its transposed conv with the same
    weight (Aᵀ): an inverse would give 0."""
    generator = torch.Generator().manual_seed(seed)
    w = conv.weight.detach().double()
    stride, padding, dilation = _ints(conv)
    x = torch.randn(tuple(input_shape), generator=generator, dtype=torch.float64)
    ax = conv_reference(x, w, None, stride, padding, dilation, conv.groups)
    sizes = [
        (s - 1) * st - 2 * p + d * (k - 1) + 1
        for s, st, p, d, k in zip(ax.shape[2:], stride, padding, dilation, w.shape[2:], strict=True)
    ]
    output_padding = [a - b for a, b in zip(input_shape[2:], sizes, strict=True)]
    back = conv_transpose_reference(
        ax, w, None, stride, padding, output_padding, conv.groups, dilation
    )
    error = float((back - x).norm() / x.norm())
    return InverseGap(error, tuple(input_shape), tuple(ax.shape))
