"""Plans: a call replayed from what an identical call recorded gives the same trace.

A module's call on a tensor of a shape seen before for a module of the same tree
signature (class, plain attributes, parameter shapes, children) is replayed from
its plan; a model traced again on the same input is replayed whole, without a
copy. Each test compares a replayed trace with one recorded cold (caches empty).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.article import MODELS
from pytest_convcheck import trace, tracing
from tests.zoo import ZOO


def _facts(result: tracing.Trace) -> tuple[Any, ...]:
    return (
        result.nodes,
        result.layers,
        result.calls,
        result.outputs,
        result.output_nodes,
        result.output_shape,
        result.disagreements,
    )


def _cold_then_warm(model: nn.Module, shape: Any) -> tuple[tracing.Trace, tracing.Trace]:
    tracing.caches.clear()
    cold = trace(model, shape)
    return cold, trace(model, shape)


CASES = [pytest.param(c.build, c.input_shape, id=c.name) for c in ZOO] + [
    pytest.param(factory, shape, id=f"article-{name}") for name, (factory, shape) in MODELS.items()
]


@pytest.mark.parametrize(("factory", "shape"), CASES)
def test_a_replayed_trace_equals_the_recorded_one(factory: Any, shape: Any) -> None:
    torch.manual_seed(0)
    cold, warm = _cold_then_warm(factory().eval(), shape)
    assert _facts(warm) == _facts(cold)
    fresh = trace(factory().eval(), shape)  # another instance, same configuration
    assert _facts(fresh) == _facts(cold)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.conv(x)) * 2


class _Repeated(nn.Module):
    """Equal blocks, a block applied twice, a shared activation, a child called
    directly by its parent: replay must keep call counts and row names."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(_Block(), _Block(), _Block())
        self.again = _Block()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.blocks(x))
        x = self.again(self.again(x))
        x = self.act(self.again.conv(x))
        return torch.cat([x, x], 1)


def test_repeated_and_shared_blocks_replay_with_their_counts() -> None:
    model = _Repeated()
    cold, warm = _cold_then_warm(model, (1, 4, 8, 8))
    assert _facts(warm) == _facts(cold)
    assert cold.calls["again"] == 2 and cold.calls["again.conv"] == 3 and cold.calls["act"] == 2
    assert [r.name for r in cold.layers].count("again.mul") == 1
    assert [r.name for r in cold.layers].count("again.mul#2") == 1
    assert {"blocks.0.add", "blocks.1.add", "blocks.2.add"} <= {r.name for r in cold.layers}


def test_a_repeated_trace_copies_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _Repeated()
    first = trace(model, (1, 4, 8, 8))

    def refuse(*_: Any) -> None:
        raise AssertionError("copied")

    monkeypatch.setattr(tracing.run, "copy_with", refuse)  # where trace() looks it up
    assert _facts(trace(model, (1, 4, 8, 8))) == _facts(first)


def test_a_changed_attribute_or_hook_is_not_replayed() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2))
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 3, 3)
    model[1].ceil_mode = True
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 4, 4)
    model[0].padding = (1, 1)
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 5, 5)
    handle = model[0].register_forward_hook(lambda m, i, o: o[..., 1:, 1:])
    try:
        assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 4, 4)
    finally:
        handle.remove()
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 5, 5)


def test_a_model_with_a_non_plain_attribute_is_traced_each_time() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)
            self.sizes = {"crop": [object()]}  # holds an object: never replayed

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = len(self.sizes["crop"])
            return self.conv(x)[..., c:, c:]

    model = Scaled()
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 6, 6)
    model.sizes["crop"].append(object())
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 5, 5)


def test_clear_makes_the_next_trace_cold() -> None:
    trace(nn.Conv2d(1, 1, 3), (1, 1, 5, 5))
    assert tracing.caches.plans
    tracing.caches.clear()
    assert not tracing.caches.plans and not tracing.caches.verified and not tracing.caches.trees


def test_a_dict_of_plain_data_is_part_of_the_signature() -> None:
    class Configured(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)
            self.cfg = {"crop": 1, "mean": (0.5,), "name": "x"}  # as timm's pretrained_cfg

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = self.cfg["crop"]
            return self.conv(x)[..., c:, c:]

    model = Configured()
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 6, 6)
    assert tracing.tree_signatures(model)[""] is not None
    model.cfg["crop"] = 2
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 5, 5)


def test_a_report_again_is_equal_and_sees_a_new_tie() -> None:
    from pytest_convcheck import report

    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    first = report(model, (1, 2, 9, 9))
    assert report(model, (1, 2, 9, 9)).to_dict() == first.to_dict()
    assert first.sharing.tied == ()
    model[2].weight = model[0].weight  # tied between the two reports
    tied = report(model, (1, 2, 9, 9))
    assert tied.sharing.tied == (("0.weight", "2.weight"),)
    assert tied.parameters == first.parameters - 2 * 2 * 3 * 3
    other = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))  # same plan
    assert report(other, (1, 2, 9, 9)).to_dict() == first.to_dict()


def test_a_report_again_sees_parameters_made_to_share_memory() -> None:
    from pytest_convcheck import report

    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    assert report(model, (1, 2, 9, 9)).sharing.tied == ()
    model[2].weight.data = model[0].weight.data  # same Parameter objects, one memory
    assert report(model, (1, 2, 9, 9)).sharing.tied == (("0.weight", "2.weight"),)


def test_a_forward_set_on_the_instance_is_never_replayed() -> None:
    import types

    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU())
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 7, 7)

    def cropped(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self[1](self[0](x))[..., 1:, 1:]

    model.forward = types.MethodType(cropped, model)  # type: ignore[method-assign]
    assert tracing.tree_signatures(model)[""] is None
    assert trace(model, (1, 1, 9, 9)).output_shape == (1, 1, 6, 6)
    other = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU())  # the class's forward
    assert trace(other, (1, 1, 9, 9)).output_shape == (1, 1, 7, 7)


# ---------------------------------------------------------------- found by a red team


def _no_replay(model: nn.Module, shape: Any) -> tracing.Trace:
    """A trace with replay off: every call executed (the truth for replay)."""
    remember = tracing.caches.remember_plan
    tracing.caches.clear()
    tracing.caches.remember_plan = lambda key, plan: None  # type: ignore[method-assign]
    try:
        return trace(model, shape)
    finally:
        del tracing.caches.remember_plan
        tracing.caches.clear()
        assert tracing.caches.remember_plan == remember


class _Up(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.factor = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor)


class _TwoScales(nn.Module):
    """One block called twice with an attribute changed in between."""

    def __init__(self) -> None:
        super().__init__()
        self.up = _Up()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.up.factor = 2
        a = self.up(x)
        self.up.factor = 4
        return a, self.up(x)


def test_an_attribute_set_during_forward_stops_replay() -> None:
    for _ in range(2):
        assert trace(_TwoScales(), (1, 1, 8, 8)).output_shape == ((1, 1, 16, 16), (1, 1, 32, 32))


class _OwnSetattr(_Up):
    """A block whose class defines its own ``__setattr__`` (as some libraries do)."""

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)


class _TwoScalesOwnSetattr(_TwoScales):
    def __init__(self) -> None:
        super().__init__()
        self.up = _OwnSetattr()


def test_an_attribute_set_through_a_class_own_setattr_stops_replay() -> None:
    for _ in range(2):
        result = trace(_TwoScalesOwnSetattr(), (1, 1, 8, 8))
        assert result.output_shape == ((1, 1, 16, 16), (1, 1, 32, 32))


def test_the_watch_leaves_every_class_as_it_was() -> None:
    # the watch wraps __setattr__ on the copy's classes for the run only
    before = {cls: cls.__dict__.get("__setattr__") for cls in (_TwoScales, _Up, _OwnSetattr)}
    trace(_TwoScalesOwnSetattr(), (1, 1, 8, 8))
    trace(_TwoScales(), (1, 1, 8, 8))
    assert {cls: cls.__dict__.get("__setattr__") for cls in before} == before
    assert nn.Module.__setattr__.__qualname__ == "Module.__setattr__"


class _WithExtras(nn.Module):
    def __init__(self, extra: tuple[nn.Module, ...] = ()) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.extra = extra  # a tuple holding a module: not plain data

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        for module in self.extra:
            x = module(x)
        return x


def test_a_tuple_holding_a_module_is_never_part_of_a_signature() -> None:
    trace(_WithExtras(), (1, 2, 16, 16))  # teaches the class's attribute names
    side = nn.Conv2d(2, 2, 3)
    model = _WithExtras((side,))
    assert trace(model, (1, 2, 16, 16)).output_shape == (1, 2, 14, 14)
    side.stride = (2, 2)
    assert trace(model, (1, 2, 16, 16)).output_shape == (1, 2, 7, 7)


class _Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) + 1


class _PooledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = _Pooled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.block(x)[..., :4, :4].repeat(1, 1, 2, 2))


def test_functional_rows_of_a_block_called_twice_are_numbered() -> None:
    truth = [r.name for r in _no_replay(_PooledTwice(), (1, 1, 8, 8)).layers]
    assert truth[-2:] == ["block.max_pool2d#2", "block.add#2"]
    for _ in range(2):
        assert [r.name for r in trace(_PooledTwice(), (1, 1, 8, 8)).layers] == truth


class _Transposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU())
        self.second = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(x) + self.first(x.mT).mT


def test_tensor_properties_are_ops_of_the_graph() -> None:
    truth = _no_replay(_Transposed(), (1, 1, 16, 16))
    convs = [n for n in truth.nodes if n.op == "conv2d"]
    assert convs[0].inputs[0] == tracing.MODEL_INPUT  # second(x) reads the input
    assert truth.nodes[convs[1].inputs[0]].op == "mT"  # first(x.mT) reads x.mT
    assert sum(n.op == "mT" for n in truth.nodes) == 2
    for _ in range(2):
        assert _facts(trace(_Transposed(), (1, 1, 16, 16))) == _facts(truth)


class _Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.view(x.shape[0], -1))


class _FlatTransposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = _Flat()
        self.b = _Flat()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x.transpose(2, 3))


def test_a_call_on_other_strides_is_not_replayed() -> None:
    from pytest_convcheck import ShapeError

    with pytest.raises(ShapeError, match="view in 'b'"):
        trace(_FlatTransposed(), (1, 1, 8, 8))
