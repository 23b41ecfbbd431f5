"""ModuleIndex walks a model once and yields what torch's recursive walks yield."""

from __future__ import annotations

import pytest
from torch import nn

from examples.reference_models import resnet50
from pytest_convcheck.module_index import ModuleIndex
from tests.zoo import ZOO


def _shared_and_tied() -> nn.Module:
    act = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(1, 1, 1), act, nn.Sequential(act, nn.Linear(2, 2)), None)
    model.again = model[0]  # one module under two names
    model[2][1].weight = model[0].weight  # type: ignore[assignment]  # wrong shape is fine here
    return model


MODELS = [pytest.param(c.build, id=c.name) for c in ZOO] + [
    pytest.param(lambda: resnet50(head=True), id="resnet50"),
    pytest.param(_shared_and_tied, id="shared-and-tied"),
    pytest.param(lambda: nn.Sequential(nn.LazyConv2d(2, 3), nn.ReLU()), id="lazy"),
]


@pytest.mark.parametrize("factory", MODELS)
def test_the_index_yields_what_torch_yields(factory: object) -> None:
    model = factory()  # type: ignore[operator]
    index = ModuleIndex.of(model)
    torch_modules = list(model.named_modules(remove_duplicate=False))
    assert [n for n, _ in index.modules] == [n for n, _ in torch_modules]
    assert all(a is b for (_, a), (_, b) in zip(index.modules, torch_modules, strict=True))
    torch_parameters = list(model.named_parameters(remove_duplicate=False))
    assert [n for n, _ in index.parameters] == [n for n, _ in torch_parameters]
    assert all(a is b for (_, a), (_, b) in zip(index.parameters, torch_parameters, strict=True))
    lazy = nn.modules.lazy.LazyModuleMixin
    assert index.lazy == any(isinstance(m, lazy) for m in model.modules())
