"""The article's ten models (``examples/article``, as configured in the root
``pyproject.toml``) at batch 32, forward and forward + backward."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_convcheck.checks import build_model
from pytest_convcheck.config import load_models

MODELS, ERRORS = load_models(Path(__file__).parents[1] / "pyproject.toml", [], None)
assert not ERRORS, ERRORS


@pytest.mark.parametrize("config", MODELS, ids=[m.name for m in MODELS])
@pytest.mark.parametrize("pass_", ["forward", "forward_backward"])
def test_article_model(conv_benchmark, benchmark, config, pass_):
    benchmark.group = f"article {pass_}"
    shape = (32, *config.input_shape[1:])
    result = conv_benchmark(build_model(config), shape, backward=pass_ == "forward_backward")
    assert result.flops > 0
