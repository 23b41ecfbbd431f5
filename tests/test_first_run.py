"""A newcomer's first run (issue #19), as a user runs it: the ``pytest`` console
script in a plain project (no ``pythonpath`` setting, no install), factories
resolved from the project's folder, a typo answered with "did you mean", an
import error reported once, trained weights from a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_convcheck.checks import load_weights
from pytest_convcheck.config import ModelConfig
from pytest_convcheck.errors import ConvcheckConfigError

NETS = """
from torch import nn


class SmallClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


def Upsampler():
    return nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1)  # even overlap
"""

PYPROJECT = """
[tool.convcheck.models.classifier]
factory = "mymodels.nets:SmallClassifier"
input = [2, 1, 8, 8]

[tool.convcheck.models.typo]
factory = "mymodels.nets:SmallClasifier"
input = [2, 1, 8, 8]

[tool.convcheck.models.random]
factory = "mymodels.nets:Upsampler"
input = [1, 1, 8, 8]
checks = ["checkerboard"]
checkerboard_kinds = ["weights"]

[tool.convcheck.models.trained]
factory = "mymodels.nets:Upsampler"
input = [1, 1, 8, 8]
checks = ["checkerboard"]
checkerboard_kinds = ["weights"]
weights = "checkpoints/flat.pt"

[tool.convcheck.models.wrong_checkpoint]
factory = "mymodels.nets:SmallClassifier"
input = [2, 1, 8, 8]
checks = ["shapes"]
weights = "checkpoints/flat.pt"
"""


def pytest_script(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest`` as a user types it: the console script next to this interpreter, in
    the project's folder, so the folder is not on sys.path (``python -m pytest``
    would put it there and hide the problem)."""
    script = Path(sys.executable).with_name("pytest")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(
        [str(script), "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    project = tmp_path_factory.mktemp("newcomer")
    (project / "mymodels").mkdir()
    (project / "mymodels" / "__init__.py").write_text("")
    (project / "mymodels" / "nets.py").write_text(NETS)
    (project / "checkpoints").mkdir()
    flat = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1)
    with torch.no_grad():
        flat.weight.fill_(0.25)  # every output phase gets the same response: no pattern
    torch.save(flat.state_dict(), project / "checkpoints" / "flat.pt")
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    result = pytest_script(project, "--convcheck", "-rs", "--convcheck-report", "report.json")
    report = json.loads((project / "report.json").read_text())
    return project, result.stdout + result.stderr, report["models"]


def test_a_project_relative_factory_imports_without_pythonpath(first_run) -> None:
    _, output, models = first_run
    checks = models["classifier"]["checks"]
    assert set(checks.values()) == {"passed", "skipped"}, output[-3000:]
    assert checks["snapshot"] == "skipped"  # the first run is green: pinning starts later
    assert "run pytest --convcheck --snapshot-update to start pinning" in output


def test_a_typo_is_reported_once_with_did_you_mean(first_run) -> None:
    _, output, models = first_run
    checks = models["typo"]["checks"]
    assert checks.pop("config") == "failed"
    assert set(checks.values()) == {"skipped"} and len(checks) == 8
    # one failure; the skips only point at it
    assert output.count("has no attribute 'SmallClasifier'") == 1
    assert "Did you mean 'SmallClassifier'?" in output
    assert "has a configuration error, reported once by convcheck::typo::config" in output


def test_trained_weights_come_from_the_checkpoint(first_run) -> None:
    _, output, models = first_run
    assert models["random"]["checks"] == {"checkerboard": "failed"}
    assert "the factory's random initial weights (seed 0)" in output
    assert 'set weights = "path.pt" in the model\'s table' in output
    assert models["trained"]["checks"] == {"checkerboard": "passed"}
    assert models["wrong_checkpoint"]["checks"] == {"shapes": "failed"}
    assert "the weights in" in output and "do not fit 'mymodels.nets:SmallClassifier'" in output
    assert models["random"]["findings"]["checkerboard"]["weights"]["score"] > 0.05


def test_a_checkpoint_is_loaded_without_running_code(tmp_path: Path) -> None:
    torch.save(nn.Conv2d(1, 1, 3), tmp_path / "module.pt")  # a pickled module, not a state dict
    torch.save({"epoch": 3, "state_dict": nn.Conv2d(1, 1, 3).state_dict()}, tmp_path / "ok.pt")
    config = ModelConfig("m", "a:b", (1, 1, 8, 8), options={"weights": "module.pt"}, root=tmp_path)
    with pytest.raises(
        ConvcheckConfigError,
        match=r"(?s)weights_only=True \(UnpicklingError: Weights only load failed\)\.\n  fix: "
        r"save a plain state dict",
    ):
        load_weights(nn.Conv2d(1, 1, 3), config)
    model = nn.Conv2d(1, 1, 3)
    ok = ModelConfig("m", "a:b", (1, 1, 8, 8), options={"weights": "ok.pt"}, root=tmp_path)
    load_weights(model, ok)  # a training checkpoint holding the state dict under a key
    missing = ModelConfig("m", "a:b", (1, 1, 8, 8), options={"weights": "no.pt"}, root=tmp_path)
    with pytest.raises(ConvcheckConfigError, match=r"(?s)no file at .*no\.pt.*fix: give the path"):
        load_weights(model, missing)
