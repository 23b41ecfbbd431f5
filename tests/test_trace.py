"""The meta-device trace: graph, names, fallbacks, and leaving the model alone."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pytest_convcheck.layers.pool as pool_rules
from pytest_convcheck import trace
from pytest_convcheck.tracing import MODEL_INPUT


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.project = nn.Conv2d(4, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn(self.conv1(x)))
        y = self.conv2(y) + x
        return torch.cat([y, x], dim=1) + self.project(x)


def test_branches_and_merges_are_in_the_graph() -> None:
    result = trace(Residual(), (2, 4, 8, 8))
    assert result.output_shape == (2, 8, 8, 8)
    ops = [n.op for n in result.nodes]
    assert ops.count("add") == 2 and "cat" in ops
    conv1 = next(n for n in result.nodes if n.module == "conv1")
    assert conv1.inputs[0] == MODEL_INPUT
    first_add = next(n for n in result.nodes if n.op == "add")
    conv2 = next(n for n in result.nodes if n.module == "conv2")
    assert first_add.inputs == (conv2.node_id, MODEL_INPUT)
    cat = next(n for n in result.nodes if n.op == "cat")
    assert cat.inputs == (first_add.node_id, MODEL_INPUT)
    names = [row.name for row in result.layers]
    assert names == ["conv1", "bn", "relu", "conv2", "add", "cat", "project", "add#2"]
    assert result.output_nodes == (result.nodes[-1].node_id,)


def test_conv_nodes_carry_their_geometry() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, (3, 5), stride=(1, 2), dilation=(2, 1), padding=(1, 0)))
    node = next(n for n in trace(model, (1, 1, 16, 16)).nodes if n.spec is not None)
    geometry = node.spec.geometry()
    assert geometry.kernel == (3, 5) and geometry.stride == (1, 2)
    assert geometry.dilation == (2, 1) and geometry.padding == ((1, 1), (0, 0))
    assert geometry.effective_kernel == (5, 5)


def test_trace_leaves_the_model_alone() -> None:
    model = Residual().train()
    model.conv1.register_forward_hook(lambda *a: None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [id(p) for p in model.parameters()]
    rng = torch.get_rng_state()
    trace(model, (2, 4, 8, 8))
    assert [id(p) for p in model.parameters()] == params
    assert all(p.device.type == "cpu" for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.training and model.bn.training
    assert len(model.conv1._forward_hooks) == 1 and not model.conv2._forward_hooks
    assert torch.equal(torch.get_rng_state(), rng)
    assert not nn.modules.module._global_forward_hooks
    assert not nn.modules.module._global_forward_pre_hooks
    assert "forward" not in vars(model) and "forward" not in vars(model.conv1)


def test_large_resolution_costs_no_memory() -> None:
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    assert trace(model, (8, 3, 8192, 8192)).output_shape == (8, 64, 4096, 4096)


def test_data_dependent_model_falls_back_to_cpu() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y if y.sum().item() > -1e9 else -y

    result = trace(Gate(), (1, 1, 6, 6))
    assert result.output_shape == (1, 2, 4, 4)
    assert result.fallback and result.device == "cpu"
    assert "ran on CPU" in str(result)


def test_tuple_and_dict_outputs() -> None:
    class Two(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"a": x[:, :1], "b": F.avg_pool2d(x, 2)}

    result = trace(Two(), (1, 2, 4, 4))
    assert result.output_shape == ((1, 1, 4, 4), (1, 2, 2, 2))
    assert [p for p, _ in result.outputs] == ["['a']", "['b']"]


def test_shared_module_calls_are_counted() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.conv(x))

    result = trace(Twice(), (1, 2, 5, 5))
    assert result.calls["conv"] == 2
    assert [row.name for row in result.layers] == ["conv", "conv"]


def test_rule_disagreement_with_torch_is_reported(monkeypatch) -> None:
    real = pool_rules.pool_output_size
    monkeypatch.setattr(pool_rules, "pool_output_size", lambda *a: real(*a) + 1)
    result = _cold_trace(nn.Sequential(nn.MaxPool2d(2)), (1, 1, 8, 8))
    assert result.output_shape == (1, 1, 4, 4)
    assert any("rule predicts 1×1×5×5, torch gives 1×1×4×4" in d for d in result.disagreements)


def test_model_error_that_is_not_a_shape_error() -> None:
    import pytest

    from pytest_convcheck.tracing import ModelRunError

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise KeyError("missing head")

    with pytest.raises(ModelRunError, match=r"Broken\.forward failed on input"):
        trace(Broken(), (1, 1, 4, 4))


def test_view_that_does_not_fit_is_a_shape_error() -> None:
    import pytest

    from examples.article import MODELS
    from pytest_convcheck import ShapeError

    with pytest.raises(ShapeError, match=r"view in 'forward' rejects its input \(1×20×5×4\)"):
        trace(MODELS["s06_cnn"][0](), (1, 1, 32, 28))


def _cold_trace(model: nn.Module, shape: tuple[int, ...]):
    from pytest_convcheck import tracing

    tracing.caches.clear()
    return trace(model, shape)


def _reflect_stack() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
        nn.ReLU(inplace=True),
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
        nn.BatchNorm2d(2),
        nn.MaxPool2d(2, return_indices=False),
        nn.ConvTranspose2d(2, 1, 2, stride=2),
    )


def test_warm_traces_equal_cold_traces() -> None:
    from examples.article import MODELS

    cases = [(f(), s) for f, s in MODELS.values()]
    cases += [(Residual(), (2, 4, 8, 8)), (_reflect_stack(), (1, 2, 8, 8))]
    for model, shape in cases:
        cold = _cold_trace(model, shape)
        warm = trace(model, shape)
        assert warm.nodes == cold.nodes, type(model).__name__
        assert warm.layers == cold.layers
        assert warm.calls == cold.calls and warm.output_shape == cold.output_shape


def test_replayed_layers_keep_their_own_names_and_links() -> None:
    model = _reflect_stack()
    _cold_trace(model, (1, 2, 8, 8))
    result = trace(model, (1, 2, 8, 8))
    assert [row.name for row in result.layers] == ["0", "1", "2", "3", "4", "5"]
    pads = [n for n in result.nodes if n.op == "pad"]
    convs = [n for n in result.nodes if n.op == "conv2d"]
    assert [n.module for n in pads] == ["0", "2"]
    assert convs[0].inputs[0] == pads[0].node_id and convs[1].inputs[0] == pads[1].node_id
    relu = next(n for n in result.nodes if n.module == "1")
    assert pads[1].inputs[0] == relu.node_id  # the in-place relu's output feeds layer 2


def test_copy_does_not_share_mutable_state_with_the_model() -> None:
    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)
            self.seen: list[tuple[int, ...]] = []
            self.scale = torch.ones(1)  # a plain tensor attribute

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(tuple(x.shape))
            return self.conv(x) * self.scale

    model = Counting()
    assert trace(model, (1, 1, 5, 5)).output_shape == (1, 1, 3, 3)
    assert model.seen == [] and model.scale.device.type == "cpu"


def test_tied_parameters_stay_tied_in_the_copy() -> None:
    from pytest_convcheck.tracing.copying import copy_with

    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight
    copy = copy_with(model, "meta")
    assert copy[0].weight is copy[1].weight and copy[0].weight.device.type == "meta"
    assert copy[0].bias is not copy[1].bias


def test_lazy_model_through_every_copy_stays_lazy_with_its_hooks() -> None:
    from pytest_convcheck import assert_batch_independent, empirical_receptive_field, sharing

    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(2))
    hooks = dict(model[0]._forward_pre_hooks)
    trace(model, (2, 3, 8, 8))
    trace(model, (2, 3, 8, 8))
    assert sharing(model, (2, 3, 8, 8)).unique_parameters == 3 * 4 * 9 + 4 + 4 * 36 * 2 + 2
    assert_batch_independent(model, (2, 3, 8, 8))
    empirical_receptive_field(model, (2, 3, 8, 8))
    assert dict(model[0]._forward_pre_hooks) == hooks
    assert model[0].has_uninitialized_params() and type(model[0]) is nn.LazyConv2d


def test_lazy_model_trace_shows_its_layers_not_their_initialisation() -> None:
    from pytest_convcheck import report

    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(2))
    assert [row.name for row in trace(model, (2, 3, 8, 8)).layers] == ["0", "1", "2"]
    result = report(model, (2, 3, 8, 8))
    assert [(row.name, row.parameters) for row in result.layers] == [
        ("0", 3 * 4 * 9 + 4),
        ("1", 0),
        ("2", 4 * 36 * 2 + 2),
    ]
    assert model[0].has_uninitialized_params()


def test_in_place_residual_add_through_every_analysis() -> None:
    from pytest_convcheck import empirical_receptive_field, receptive_field

    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            y += x
            return F.relu(y)

    measured = empirical_receptive_field(InPlace(), (1, 4, 8, 8))
    assert measured.size == receptive_field(InPlace(), (1, 4, 8, 8)).size == (3, 3)


# --------------------------------------------------------------------------- slicing

from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pytest_convcheck.errors import ShapeError  # noqa: E402
from pytest_convcheck.layers import SliceSpec, spec_for_call  # noqa: E402

_bound = st.one_of(st.none(), st.integers(-12, 12))
_slices = st.builds(slice, _bound, _bound, st.one_of(st.none(), st.integers(1, 4)))


@st.composite
def _indexed(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[object, ...]]:
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=1, max_size=5)))
    front = draw(st.lists(_slices, max_size=len(shape)))
    back = draw(st.lists(_slices, max_size=len(shape) - len(front)))
    index = (*front, Ellipsis, *back) if draw(st.booleans()) else tuple(front)
    return shape, index


@given(_indexed())
def test_slice_rule_matches_torch(case: tuple[tuple[int, ...], tuple[object, ...]]) -> None:
    shape, index = case
    spec = spec_for_call(torch.Tensor.__getitem__, (torch.empty(shape), index), {})
    assert isinstance(spec, SliceSpec)
    assert spec.output_shape(shape) == tuple(torch.empty(shape)[index].shape)


@given(
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=4).map(tuple),
    dim=st.integers(-4, 3),
    start=st.integers(-10, 10),
    length=st.integers(0, 10),
)
def test_narrow_rule_matches_torch(
    shape: tuple[int, ...], dim: int, start: int, length: int
) -> None:
    assume(-len(shape) <= dim < len(shape))  # else torch's own dim error; no rule for it
    x = torch.empty(shape)
    spec = spec_for_call(torch.narrow, (x, dim, start, length), {})
    assert isinstance(spec, SliceSpec)
    try:
        expected: tuple[int, ...] | None = tuple(x.narrow(dim, start, length).shape)
    except (RuntimeError, IndexError):
        expected = None
    if expected is None:
        try:
            spec.output_shape(shape)
        except ShapeError:
            return
        raise AssertionError(f"torch rejects narrow({dim}, {start}, {length}) of {shape}")
    assert spec.output_shape(shape) == expected


def test_indexing_without_a_rule_still_runs() -> None:
    class Picks(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0] + x[:, [1]].squeeze(1) + x[..., None][..., 0][:, 1]

    result = trace(Picks(), (2, 3, 4, 4))
    assert result.output_shape == (2, 4, 4) and not result.disagreements


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_the_traced_copy_is_freed_when_the_trace_returns(device: str) -> None:
    """Without waiting for the cyclic collector: a CPU copy holds a second set of the
    model's weights."""
    import gc

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 1, 3))

    def convs() -> int:
        return sum(type(o) is nn.Conv2d for o in gc.get_objects())

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        before = convs()
        trace(model, (1, 1, 16, 17), device=device)
        assert convs() == before
    finally:
        if enabled:
            gc.enable()


class _FeatureHooks:
    """timm's ``FeatureHooks``, reduced: a forward hook bound to a helper that keeps
    each hooked module's output."""

    def __init__(self, module: nn.Module) -> None:
        self.store: dict[str, torch.Tensor] = {}
        module.register_forward_hook(functools.partial(self.collect, "a"))

    def collect(self, name: str, module: nn.Module, args: object, out: torch.Tensor) -> None:
        self.store[name] = out


class _FeatureNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.hooks = _FeatureHooks(self.a)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.b(self.a(x))
        out, self.hooks.store = list(self.hooks.store.values()), {}
        return out


class _SelfHooked(nn.Module):
    """A hook that is a method of the module it is registered on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)
        self.seen: list[tuple[int, ...]] = []
        self.register_forward_hook(self.remember)

    def remember(self, module: nn.Module, args: object, out: torch.Tensor) -> None:
        self.seen.append(tuple(out.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_hooks_bound_to_objects_act_on_the_copy_not_the_users_model(device: str) -> None:
    """A hook bound to a helper (timm's FeatureHookNet) or to the module itself runs on
    the copy's objects: the trace sees the features, the user's model is untouched."""
    model = _FeatureNet()
    result = trace(model, (1, 3, 8, 8), device=device)
    assert [shape for _, shape in result.outputs] == [(1, 4, 8, 8)]
    assert model.hooks.store == {}
    copy.deepcopy(model)  # still copyable: no meta tensor left in it
    hooked = _SelfHooked()
    trace(hooked, (1, 1, 8, 8), device=device)
    assert hooked.seen == []


class _LengthFromCpu(nn.Module):
    """torchaudio's Emformer, reduced: a length computed on a CPU tensor of its own and
    read with .item() (a shape-preserving op and a sum on it, then a cat)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = torch.relu(torch.full((x.shape[0],), 6, dtype=torch.long) + 1)
        both = torch.cat([lengths, lengths])
        k = int(torch.max(both).item())
        return self.conv(x)[..., :k] * (torch.arange(k) < k)


def test_the_models_own_cpu_tensors_are_computed_not_stood_in_for() -> None:
    """Only meta tensors get stand-ins: a value the forward reads from its own CPU
    tensor is real (an empty stand-in gave garbage: a wrong width, or a bogus refusal)."""
    model = _LengthFromCpu()
    for _ in range(2):  # the second trace replays what the first recorded
        assert trace(model, (2, 4, 10)).output_shape == tuple(model(torch.zeros(2, 4, 10)).shape)
