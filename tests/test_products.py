"""Matrix products in the rule table: shapes and FLOPs against torch itself.

``matmul``/``@``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``einsum`` and
``scaled_dot_product_attention``: the trace gives torch's output shape or refuses
where torch raises, and each op's FLOPs equal ``torch.utils.flop_counter``'s
(2 per multiply-accumulate) plus one per element of an added input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pytest_convcheck import ModelRunError, ShapeError, report, trace


class Product(nn.Module):
    """``op(x, *operands)`` with the other operands as buffers."""

    def __init__(self, op: Callable[..., torch.Tensor], *operands: torch.Tensor) -> None:
        super().__init__()
        self.op = op
        for i, t in enumerate(operands):
            self.register_buffer(f"t{i}", t)
        self.count = len(operands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, *(getattr(self, f"t{i}") for i in range(self.count)))


def _counted(run: Callable[[], torch.Tensor]) -> tuple[tuple[int, ...], int] | Exception:
    try:
        with FlopCounterMode(display=False) as counter, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run()
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        return error
    return tuple(out.shape), counter.get_total_flops()


def _check(op: Callable[..., torch.Tensor], x: torch.Tensor, *others: torch.Tensor, adds: int = 0):
    expected = _counted(lambda: op(x, *others))
    model = Product(op, *others)
    try:
        result = trace(model, tuple(x.shape))
    except (ShapeError, ModelRunError) as error:
        assert isinstance(expected, Exception), f"torch gives {expected}, the trace: {error}"
        return
    assert not isinstance(expected, Exception), (
        f"torch raises {expected!r}, the trace gives {result.output_shape}"
    )
    shape, flops = expected
    assert result.output_shape == shape
    (node,) = [n for n in result.nodes if n.spec is not None]
    got = node.flops()
    assert got - adds == flops, f"{op}: ours {got} − {adds} != flop_counter {flops}"


dims = st.integers(1, 5)


@given(
    left=st.lists(dims, min_size=2, max_size=4),
    right=st.lists(dims, min_size=2, max_size=4),
    mismatch=st.booleans(),
)
def test_matmul_broadcasts_and_counts_like_torch(left, right, mismatch) -> None:
    if not mismatch:
        right[-2] = left[-1]
    _check(torch.matmul, torch.zeros(left), torch.zeros(right))
    _check(lambda a, b: a @ b, torch.zeros(left), torch.zeros(right))


@given(n=dims, m=dims, p=dims, b=dims, other=dims, form=st.sampled_from(["mm", "bmm"]))
def test_mm_and_bmm(n, m, p, b, other, form) -> None:
    if form == "mm":
        _check(torch.mm, torch.zeros(n, m), torch.zeros(other if other != 1 else m, p))
    else:
        _check(torch.bmm, torch.zeros(b, n, m), torch.zeros(b, m, p))
        _check(torch.bmm, torch.zeros(b, n, m), torch.zeros(other, m, p))


@given(n=dims, m=dims, p=dims, b=dims, bias=st.sampled_from(["full", "row", "scalar", "bad"]))
def test_addmm_and_baddbmm_count_the_added_input(n, m, p, b, bias) -> None:
    shapes = {"full": (n, p), "row": (p,), "scalar": (), "bad": (n + 1, p)}
    added = torch.zeros(shapes[bias])
    _check(
        lambda x, a, c: torch.addmm(x, a, c),
        added,
        torch.zeros(n, m),
        torch.zeros(m, p),
        adds=n * p,
    )
    _check(
        lambda x, a, c: torch.baddbmm(x, a, c),
        added,
        torch.zeros(b, n, m),
        torch.zeros(b, m, p),
        adds=b * n * p,
    )


EQUATIONS = [
    "ij,jk->ik",
    "bij,bjk->bik",
    "ij,jk->i",
    "i,j->ij",
    "bhid,bhjd->bhij",
    "...ij,...jk->...ik",
    "ij,jk,kl->il",
    "bchw,bc->bhw",
    "ii->i",
    "ij->ji",
    "ij,kj",
]


@given(equation=st.sampled_from(EQUATIONS), data=st.data())
def test_einsum_shapes_and_flops(equation, data) -> None:
    sizes = {c: data.draw(dims, label=c) for c in "bchijklwd"}
    lhs = equation.split("->")[0]
    operands = []
    for term in lhs.split(","):
        if "..." in term:
            lead = data.draw(st.lists(dims, max_size=2), label="broadcast dims")
            operands.append(torch.zeros(*lead, *(sizes[c] for c in term.replace("...", ""))))
        else:
            operands.append(torch.zeros(*(sizes[c] for c in term)))
    if data.draw(st.booleans(), label="clash") and operands[0].dim():
        bad = list(operands[0].shape)
        bad[-1] += 1
        operands[0] = torch.zeros(bad)
    _check(lambda *ops: torch.einsum(equation, *ops), *operands)


sizes = st.integers(2, 5)  # torch multiplies all-1 products elementwise, uncounted


@given(
    batch=st.lists(dims, min_size=1, max_size=2),
    length=sizes,
    keys=sizes,
    width=sizes,
    out=sizes,
    clash=st.booleans(),
)
def test_attention_shapes_and_flops(batch, length, keys, width, out, clash) -> None:
    # torch's CPU flash kernel (4-D inputs) is not in flop_counter's table: the count
    # is taken from the same attention with the batch dims merged (its math path)
    q = torch.zeros(math.prod(batch), length, width)
    k = torch.zeros(math.prod(batch), keys, width + clash)
    v = torch.zeros(math.prod(batch), keys, out)
    _check(F.scaled_dot_product_attention, q, k, v)
    expected = _counted(lambda: F.scaled_dot_product_attention(q, k, v))
    model = Product(
        F.scaled_dot_product_attention, k.reshape(*batch, keys, -1), v.reshape(*batch, keys, out)
    )
    try:
        result = trace(model, (*batch, length, width))
    except ShapeError:
        assert isinstance(expected, Exception)
        return
    assert not isinstance(expected, Exception)
    assert result.output_shape == (*batch, length, out)
    assert sum(n.flops() for n in result.nodes) == expected[1]


class NonLocalNet(nn.Module):
    """A conv net with a non-local (self-attention) block (Wang et al., "Non-local
    Neural Networks", CVPR 2018, embedded Gaussian): θ, φ, g 1×1 convs, softmax of
    θᵀφ over positions, the weighted g, a 1×1 conv back and the residual."""

    def __init__(self, c: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.theta = nn.Conv2d(c, c // 2, 1)
        self.phi = nn.Conv2d(c, c // 2, 1)
        self.g = nn.Conv2d(c, c // 2, 1)
        self.back = nn.Conv2d(c // 2, c, 1)
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # B, HW, C/2
        phi = self.phi(x).flatten(2)  # B, C/2, HW
        g = self.g(x).flatten(2).transpose(1, 2)  # B, HW, C/2
        attention = torch.softmax(torch.bmm(theta, phi), dim=-1)  # B, HW, HW
        y = torch.matmul(attention, g).transpose(1, 2).reshape(b, -1, h, w)
        x = x + self.back(y)
        x = self.head(x)
        return self.fc(x.mean((2, 3)))


def test_a_conv_net_with_attention_counts_what_flop_counter_counts() -> None:
    model = NonLocalNet().eval()
    shape = (2, 3, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(shape))
    expected = counter.get_total_flops()
    got = report(model, shape).flops
    # conv and linear add one FLOP per output element for their bias, pooling one per
    # window element: the only differences from flop_counter's matmul-and-conv count
    assert abs(got - expected) / expected < 0.01, (got, expected)
    products = sum(n.flops() for n in trace(model, shape).nodes if n.op in ("bmm", "matmul"))
    assert products > 0.2 * expected  # θᵀφ and the weighted g: a quarter of the work
