"""Bad input to ``pytest --convcheck``: every case gives a failing item (or a clean
usage error) whose message names the model and the fix; never an INTERNALERROR or
a traceback from inside the plugin.

Most cases live in one user project, run once in a subprocess (module fixture);
each case is its own test of that run's output. Cases that break the whole run
(invalid TOML, command-line errors) get their own runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_models import MODELS_PY as PLUGIN_MODELS_PY

MODELS_PY = (
    PLUGIN_MODELS_PY
    + """

class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3)

    def forward(self, x):
        return self.conv(x)


class Raises(Good):
    def forward(self, x):
        raise ValueError("mode 'fast' is not supported")


class ReturnsDict(Good):
    def forward(self, x):
        return {"image": super().forward(x), "logits": x.mean((2, 3))}


class ReturnsTuple(Good):
    def forward(self, x):
        return super().forward(x), x.mean((2, 3))


class ReturnsNothing(Good):
    def forward(self, x):
        self.conv(x)


def on_meta():
    with torch.device("meta"):
        return Good()


class OddMerge(Good):
    def forward(self, x):
        a = self.conv(x)
        return torch.cat([a, self.up(F.max_pool2d(a, 2))], dim=1)


class FixedDtype(Good):
    def forward(self, x):
        return F.conv2d(super().forward(x), torch.ones(1, 1, 1, 1))


class NoisyInEval(Good):
    def forward(self, x):
        return F.dropout(super().forward(x), 0.5)
"""
)

# model name → (table body, expected line pattern in its failure text)
CASES: dict[str, tuple[str, str]] = {
    "import_path": ('factory = "nowhere.models:Net"', "*cannot import 'nowhere.models'*"),
    "attribute": ('factory = "mymodels:Missing"', "*has no attribute 'Missing'*"),
    "factory_raises": ('factory = "mymodels:broken"', "*raised RuntimeError: no weights file*"),
    "not_a_module": ('factory = "mymodels:not_a_model"', "*returned int, not an nn.Module*"),
    "needs_arguments": (
        'factory = "mymodels:NeedsArgs"',
        "*give the arguments it needs under kwargs*kwargs = { num_classes = 10 }*",
    ),
    "kwargs_form": (
        'factory = "mymodels:NeedsArgs"\nkwargs = [3]',
        "*kwargs must be a table of keyword arguments for the factory*",
    ),
    "wrong_kwarg": (
        'factory = "mymodels:NeedsArgs"\nkwargs = { depth = 3 }',
        "*raised TypeError*when called as NeedsArgs(depth=3)*",
    ),
    "channels": ('factory = "mymodels:Good"\ninput = [1, 3, 8, 8]', "*expected 1 input channels*"),
    "rank": ('factory = "mymodels:Good"\ninput = [8, 8]', "*expected a 3-D or 4-D input*"),
    "too_small": ('factory = "mymodels:Good"\ninput = [1, 1, 1, 1]', "*max_pool2d*"),
    "forward_raises": ('factory = "mymodels:Raises"', "*mode 'fast' is not supported*"),
    "returns_dict": (
        'factory = "mymodels:ReturnsDict"\nexpect_output = [1, 1, 8, 8]',
        "*forward returns 2 tensors (['image'] 1×1×8×8, ['logits'] 1×1)*is one shape*",
    ),
    "returns_tuple": (
        'factory = "mymodels:ReturnsTuple"\nexpect_output = [[1, 1, 9, 9], [1, 1]]',
        "*expected outputs 1×1×9×9, 1×1 for input 1×1×8×8, got 1×1×8×8, 1×1*",
    ),
    "returns_nothing": ('factory = "mymodels:ReturnsNothing"', "*returned no tensor*"),
    "wrong_expectation": (
        'factory = "mymodels:Good"\nexpect_output = [1, 1, 8]',
        "*expected output 1×1×8 for input 1×1×8×8, got 1×1×8×8*",
    ),
    "meta_model": (
        'factory = "mymodels:on_meta"\nchecks = ["parity"]',
        "*'conv.weight' is on the meta device*",
    ),
    "random_in_eval": (
        'factory = "mymodels:NoisyInEval"\nchecks = ["parity"]',
        "*different outputs for different random seeds even in eval mode*",
    ),
    "odd_size_merge": (
        'factory = "mymodels:OddMerge"\ninput = [1, 1, 9, 9]',
        "*inputs: 1×4×9×9 from 'conv'; 1×1×8×8 from 'up'*",
    ),
    "odd_size_hint": (
        'factory = "mymodels:OddMerge"\ninput = [1, 1, 9, 9]',
        "*inputs near 1×1×9×9 at which the model runs: 1×1×6×6, 1×1×8×8, 1×1×10×10, 1×1×12×12*",
    ),
    "same_size_hint": (
        'factory = "mymodels:Good"\ninput = [1, 1, 9, 9]\nexpect_output = [1, 1, 9, 9]',
        "*at which the model gives an output of the input's size: 1×1×6×6, 1×1×8×8, 1×1×10×10,*",
    ),
    "fixed_dtype": (
        'factory = "mymodels:FixedDtype"\nchecks = ["batch"]',
        "*cause: forward makes a tensor with a fixed dtype*",
    ),
    "unknown_check": ('factory = "mymodels:Good"\nchecks = ["speed"]', "*unknown check 'speed'*"),
    "unknown_allow": (
        'factory = "mymodels:Good"\nallow = ["everything"]',
        "*unknown check 'everything' in allow*",
    ),
    "no_factory": ("", "*missing 'factory'*"),
    "factory_form": ('factory = "mymodels.Good"', "*factory must be 'module.path:Name'*"),
    "input_text": ('factory = "mymodels:Good"\ninput = "a,b"', "*input must be a list of ints*"),
    "zero_size": ('factory = "mymodels:Good"\ninput = [1, 1, 0, 8]', "*sizes ≥ 1*"),
    "unknown_key": ('factory = "mymodels:Good"\ncolour = 3', "*unknown key(s) colour*"),
    "field_bound": (
        'factory = "mymodels:Good"\nreceptive_field_min = "big"',
        "*receptive_field_min must be an int or a list of ints*",
    ),
    "checkerboard_kind": (
        'factory = "mymodels:Good"\ncheckerboard_kinds = ["plaid"]',
        "*checkerboard_kinds must be a non-empty list of structural, weights, output, gradient*",
    ),
    "sharing_allow": (
        'factory = "mymodels:Good"\nsharing_allow = 3',
        "*sharing_allow must be a list of module names*",
    ),
}

_NEEDS_INPUT = {
    "rank",
    "channels",
    "too_small",
    "input_text",
    "zero_size",
    "odd_size_merge",
    "odd_size_hint",
    "same_size_hint",
}


def _pyproject() -> str:
    tables = []
    for name, (body, _) in CASES.items():
        lines = [f"[tool.convcheck.models.{name}]", body]
        if name not in _NEEDS_INPUT:
            lines.append("input = [1, 1, 8, 8]")
        if "checks" not in body:
            lines.append('checks = ["shapes"]')
        tables.append("\n".join(line for line in lines if line))
    tables.append("[tool.convcheck.models.table_not_table]\n")  # an empty table
    return "\n\n".join(tables) + "\n\n[tool.convcheck.models]\nscalar = 3\n"


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def sections(output: str) -> dict[str, str]:
    """Failure text per item (``convcheck::NAME::CHECK`` → text)."""
    found: dict[str, str] = {}
    parts = re.split(r"^_{3,} (convcheck::\S+) _{3,}$", output, flags=re.MULTILINE)
    for name, text in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = text
    return found


@pytest.fixture(scope="module")
def bad_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    project = tmp_path_factory.mktemp("bad_project")
    (project / "mymodels.py").write_text(MODELS_PY)
    (project / "pyproject.toml").write_text(_pyproject())
    result = run(project, "--convcheck")
    return result.stdout + result.stderr, sections(result.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_model_gives_a_failing_item_naming_it(
    bad_project: tuple[str, dict[str, str]], name: str
) -> None:
    output, failures = bad_project
    item = next((k for k in failures if k.startswith(f"convcheck::{name}::")), None)
    assert item is not None, f"no failing item for {name}:\n{output[-3000:]}"
    text = failures[item]
    pattern = CASES[name][1]
    assert any(
        re.search(re.escape(pattern.strip("*")).replace(r"\*", ".*"), line)
        for line in text.splitlines()
    ), f"{pattern!r} not in:\n{text}"
    assert name in text  # the model is named
    assert "Traceback" not in text and "site-packages" not in text


def test_scalar_model_table_is_a_failing_item(bad_project: tuple[str, dict[str, str]]) -> None:
    _, failures = bad_project
    assert "must be a table, got int" in failures["convcheck::scalar::config"]


def test_empty_model_table_is_a_failing_item(bad_project: tuple[str, dict[str, str]]) -> None:
    _, failures = bad_project
    assert "missing 'factory'" in failures["convcheck::table_not_table::config"]


def test_bad_models_do_not_break_the_run(bad_project: tuple[str, dict[str, str]]) -> None:
    output, failures = bad_project
    assert "INTERNALERROR" not in output
    assert len(failures) == len(CASES) + 2
    assert f"{len(CASES) + 2} failed" in output


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        # pytest itself reads pyproject.toml first: its usage error (exit 4), no traceback
        ({"pyproject.toml": "[tool.convcheck.models.a\n"}, [], "Expected ']'"),
        ({"pyproject.toml": "[tool.convcheck]\nmodels = 3\n"}, [], "must be a table of tables"),
        ({}, [], "--convcheck found no models"),
        ({}, ["--convcheck-model", "mymodels:Good"], "--convcheck-model needs --convcheck-input"),
        (
            {},
            ["--convcheck-model", "mymodels:Good", "--convcheck-input", "1,,8"],
            "input must be a list of ints",
        ),
        (
            {
                "pyproject.toml": '[tool.convcheck.models.g]\nfactory = "mymodels:Good"\n'
                'input = [1, 1, 8, 8]\nchecks = ["parity"]\n'
            },
            ["--convcheck-device", "tpu"],
            "unknown device 'tpu'",
        ),
    ],
    ids=["invalid-toml", "models-scalar", "no-models", "cli-no-input", "cli-bad-input", "device"],
)
def test_run_level_errors(tmp_path: Path, files: dict[str, str], args: list[str], message: str):
    (tmp_path / "mymodels.py").write_text(MODELS_PY)
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = run(tmp_path, "--convcheck", *args)
    output = result.stdout + result.stderr
    assert result.returncode == (4 if "Expected" in message else 1), output[-2000:]
    assert message in output
    assert "INTERNALERROR" not in output and "Traceback" not in output
