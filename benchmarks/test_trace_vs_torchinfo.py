"""The shape engine's speed as a benchmark: ``trace`` and ``report`` of VGG-16's
feature stack against ``torchinfo.summary`` (which runs the model on real
tensors) and against a bare forward on the meta device, at 224×224."""

from __future__ import annotations

import copy

import pytest
import torch

from examples.reference_models import vgg16_features
from pytest_convcheck import report, trace

SHAPE = (1, 3, 224, 224)


@pytest.fixture(scope="module")
def vgg() -> torch.nn.Module:
    model = vgg16_features().eval()
    trace(model, (1, 3, 32, 32))  # the first meta call in a process initialises torch's meta
    return model


def test_trace(benchmark, vgg):
    benchmark.group = "shape summary of VGG-16 at 224²"
    assert benchmark(trace, vgg, SHAPE).output_shape == (1, 512, 7, 7)


def test_report(benchmark, vgg):
    benchmark.group = "shape summary of VGG-16 at 224²"
    assert benchmark(report, vgg, SHAPE).output_shape == (1, 512, 7, 7)


def test_bare_meta_forward(benchmark, vgg):
    benchmark.group = "shape summary of VGG-16 at 224²"
    meta = copy.deepcopy(vgg).to("meta")
    x = torch.empty(SHAPE, device="meta")
    assert benchmark(meta, x).shape == (1, 512, 7, 7)


def test_torchinfo_summary(benchmark, vgg):
    torchinfo = pytest.importorskip("torchinfo")
    benchmark.group = "shape summary of VGG-16 at 224²"
    # torchinfo runs the real model (about 0.15 s) with hooks: a fixed 15 rounds
    # instead of pytest-benchmark's default second, so its mean is stable
    result = benchmark.pedantic(
        torchinfo.summary,
        args=(vgg, SHAPE),
        kwargs={"verbose": 0, "device": "cpu"},
        rounds=15,
        warmup_rounds=1,
    )
    assert result.total_params == sum(p.numel() for p in vgg.parameters())
