"""Zero-config models (issue #22): hub specs (``timm:NAME``, ``torchvision:NAME``,
``path/to/file.py:Factory``) and inputs inferred from the model. The libraries are
stub packages written into the test project: CI needs neither."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_convcheck.errors import ConvcheckConfigError
from pytest_convcheck.inferred_inputs import infer_inputs

STUB_TIMM = """
from torch import nn

_MODELS = ("tiny_net",)


def list_models():
    return list(_MODELS)


class TinyNet(nn.Module):
    def __init__(self, num_classes=10, in_chans=3):
        super().__init__()
        self.pretrained_cfg = {"input_size": (in_chans, 48, 48)}
        self.features = nn.Sequential(nn.Conv2d(in_chans, 4, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def create_model(name, pretrained=False, **kwargs):
    assert not pretrained, "the plugin must never ask for pretrained weights"
    if name not in _MODELS:
        raise RuntimeError(f"Unknown model ({name})")
    return TinyNet(**kwargs)
"""

STUB_TORCHVISION_MODELS = """
from torch import nn


def list_models():
    return ["small_cnn"]


class _Weights:
    class DEFAULT:
        meta = {"min_size": (80, 80)}


def get_model_weights(name):
    return _Weights


def get_model(name, weights=None, **kwargs):
    assert weights is None, "the plugin must never ask for weights"
    num_classes = kwargs.get("num_classes", 1000)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, num_classes),
    )
"""

NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
"""

CHECKS = '["shapes", "batch", "receptive_field", "checkerboard", "sharing", "parity", "layout"]'


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "stubs" / "timm").mkdir(parents=True)
    (pytester.path / "stubs" / "timm" / "__init__.py").write_text(STUB_TIMM)
    (pytester.path / "stubs" / "torchvision" / "models").mkdir(parents=True)
    (pytester.path / "stubs" / "torchvision" / "__init__.py").write_text("")
    (pytester.path / "stubs" / "torchvision" / "models" / "__init__.py").write_text(
        STUB_TORCHVISION_MODELS
    )
    (pytester.path / "nets").mkdir()
    (pytester.path / "nets" / "models.py").write_text(NETS)
    return pytester


def _run(project: pytest.Pytester, *args: str, stubs: bool = True) -> pytest.RunResult:
    import os

    env = dict(os.environ)
    if stubs:
        env["PYTHONPATH"] = str(project.path / "stubs")
    else:
        env.pop("PYTHONPATH", None)
    cmd = [
        "python",
        "-m",
        "pytest",
        "--convcheck",
        "-p",
        "no:cacheprovider",
        "-q",
        *args,
    ]
    import subprocess
    import sys

    cmd[0] = sys.executable
    done = subprocess.run(cmd, cwd=project.path, env=env, capture_output=True, text=True)
    return pytest.RunResult(done.returncode, done.stdout.splitlines(), done.stderr.splitlines(), 0)


def test_hub_specs_and_inferred_inputs_run_every_check(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        f"""
[tool.convcheck.models.timm_tiny]
factory = "timm:tiny_net"
kwargs = {{ num_classes = 5 }}
checks = {CHECKS}

[tool.convcheck.models.tv_small]
factory = "torchvision:small_cnn"
kwargs = {{ num_classes = 3 }}
checks = {CHECKS}

[tool.convcheck.models.by_file]
factory = "nets/models.py:Net"
checks = {CHECKS}
"""
    )
    result = _run(project, "--convcheck-report", "report.json")
    text = result.stdout.str()
    assert result.ret == 0, text
    assert "21 passed" in text
    import json

    models = json.loads((project.path / "report.json").read_text())["models"]
    reports = (
        {m["name"]: m["report"] for m in models}
        if isinstance(models, list)
        else {name: entry["report"] for name, entry in models.items()}
    )
    # kwargs reach the libraries' factories; timm's input_size chose the input
    assert reports["timm_tiny"]["output_shape"] == [2, 5]
    assert reports["timm_tiny"]["input_shape"] == [2, 3, 48, 48]
    assert reports["tv_small"]["output_shape"] == [2, 3]


def test_command_line_models_with_their_own_inputs(project: pytest.Pytester) -> None:
    result = _run(
        project,
        "--convcheck-model",
        "timm:tiny_net",
        "--convcheck-model",
        "nets/models.py:Net@2,3,40,40",
        "-k",
        "shapes",
    )
    text = result.stdout.str()
    assert result.ret == 0, text
    assert "2 passed" in text


def test_a_missing_library_gives_the_install_hint(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        '[tool.convcheck.models.m]\nfactory = "timm:tiny_net"\ncheck = ["shapes"]\n'.replace(
            "check =", "checks ="
        )
    )
    result = _run(project, stubs=False)
    text = result.stdout.str()
    assert "pip install timm" in text and "Traceback" not in text


def test_an_unknown_hub_model_is_named_with_a_suggestion(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        '[tool.convcheck.models.m]\nfactory = "timm:tiny_nett"\nchecks = ["shapes"]\n'
    )
    result = _run(project)
    result.stdout.fnmatch_lines(["*timm has no model 'tiny_nett'. Did you mean 'tiny_net'?*"])


# ------------------------------------------------------------------ inferred inputs


class Audio(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 9, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Volume(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class WithExample(Audio):
    def example_inputs(self) -> tuple[tuple[torch.Tensor, ...], dict[str, object]]:
        return (torch.randn(1, 2, 300),), {}


class UNet48(nn.Module):
    """Takes only multiples of 48: the default 64 is not accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 48 or x.shape[-2] % 48:
            raise ValueError("sizes must be multiples of 48")
        y = F.avg_pool2d(self.conv(x), 48)
        return F.interpolate(y, scale_factor=48.0)


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.conv = nn.Conv1d(8, 8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(self.embed(ids).transpose(1, 2))


@pytest.mark.parametrize(
    ("model", "shape", "rule"),
    [
        (Audio(), (2, 2, 1024), "first conv-like layer 'conv' (Conv1d, 2 channels), 1024"),
        (Volume(), (2, 1, 16, 16, 16), "Conv3d, 1 channels), 16×16×16"),
        (WithExample(), (1, 2, 300), "the model's example_inputs"),
        (UNet48(), (2, 3, 48, 48), "Conv2d, 3 channels), 48×48"),
    ],
)
def test_inferred_inputs(model: nn.Module, shape: tuple[int, ...], rule: str) -> None:
    inputs = infer_inputs(model, "m")
    assert inputs.shape == shape
    assert rule in inputs.source


def test_torchvision_min_size_raises_the_inferred_size(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        '[tool.convcheck.models.tv]\nfactory = "torchvision:small_cnn"\nchecks = ["shapes"]\n'
    )
    result = _run(project, "--convcheck-report", "report.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["tv: input 2×3×80×80 inferred: the first conv-like layer*"])
    text = (project.path / "report.json").read_text()
    assert "80×80" in text and "min_size 80" in text


def test_a_token_model_is_refused_with_the_input_to_give() -> None:
    with pytest.raises(ConvcheckConfigError, match=r"first layer 'embed' is a Embedding"):
        infer_inputs(Tokens(), "tokens")
