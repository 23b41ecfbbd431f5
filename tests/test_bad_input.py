"""Bad input to ``pytest --convcheck``: every case gives a failing item (or a clean
usage error) whose message names the model and the fix; never an INTERNALERROR or
a traceback from inside the plugin.

Most cases live in one user project, run once in a subprocess (module fixture);
each case is its own test of that run's output. Cases that break the whole run
(invalid TOML, command-line errors) get their own runs, in-process (pytester)
unless a process boundary is the point: timeouts (SIGALRM), a dying xdist worker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

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


class ReturnsStr(Good):
    def forward(self, x):
        return "done"


class ExitsInForward(Good):
    def forward(self, x):
        import sys

        sys.exit(2)


def exits():
    import sys

    sys.exit(3)


class Slow(Good):
    def forward(self, x):
        import time

        time.sleep(60)
        return super().forward(x)


def slow_factory():
    import time

    with open("slow_factory_calls", "a") as calls:
        calls.write("call\\n")
    time.sleep(60)
    return Good()


class Busy(Good):
    def forward(self, x):
        import time

        end = time.monotonic() + 60
        while time.monotonic() < end:
            pass
        return super().forward(x)


class Mutates(Good):
    def forward(self, x):
        self.conv.weight.data.add_(1.0)
        return super().forward(x)


class Aliased(nn.Module):
    def __init__(self):
        super().__init__()
        block = nn.Conv2d(1, 1, 3, padding=1)
        self.blocks = nn.Sequential(*[block] * 3)

    def forward(self, x):
        return self.blocks(x)


class LayoutSecond(Good):
    def forward(self, x):
        return super().forward(x), torch.tensor(float(x.is_contiguous()))
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
    "channels": (
        'factory = "mymodels:Good"\ninput = [1, 3, 8, 8]',
        "*expected 1 input channel (in_channels=1)*",
    ),
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
    # the audit's cases (issue 18): nothing passes wrongly
    "float_input": (
        'factory = "mymodels:Good"\ninput = [2, 1, 16.9, 16.5]',
        "*16.9 is a float, not an int*write every size as a whole number*",
    ),
    "bool_input": (
        'factory = "mymodels:Good"\ninput = [true, 1, 16, 16]',
        "*True is a bool, not an int*",
    ),
    "table_input": (
        'factory = "mymodels:Good"\ninput = { n = 1 }',
        "*input.n must be a list of ints such as [1, 1, 28, 28]*",
    ),
    "allowed_import_error": (
        'factory = "nowhere.models:Net"\nallow = ["shapes"]',
        "*cannot import 'nowhere.models'*",
    ),
    "allowed_factory_error": (
        'factory = "mymodels:broken"\nallow = ["shapes"]',
        "*raised RuntimeError: no weights file*",
    ),
    "returns_none_everywhere": (
        'factory = "mymodels:ReturnsNothing"\nchecks = ["batch", "receptive_field", '
        '"checkerboard", "sharing", "parity", "layout", "snapshot"]',
        "*forward returned no tensor (None, or a value holding no tensors*",
    ),
    "returns_str": (
        'factory = "mymodels:ReturnsStr"\nchecks = ["receptive_field"]',
        "*forward returned no tensor*return the output tensor*",
    ),
    "mutates_weights": (
        'factory = "mymodels:Mutates"\nchecks = ["parity"]',
        "*forward changes the model's own parameters or buffers in place in eval mode "
        "(conv.weight)*",
    ),
    "second_output_layout": (
        'factory = "mymodels:LayoutSecond"\nchecks = ["layout"]',
        "*non-contiguous input (a strided view), output[1]: max |Δ| = 1*",
    ),
    # crashes and escapes
    "factory_exits": ('factory = "mymodels:exits"', "*'mymodels:exits' called sys.exit(3)*"),
    "forward_exits": (
        'factory = "mymodels:ExitsInForward"',
        "*forward called sys.exit(2) while check 'shapes' ran it*raise an exception instead*",
    ),
    "import_exits": (
        'factory = "exits_on_import:Net"',
        "*importing 'exits_on_import'*called sys.exit(5)*if __name__ ==*",
    ),
    "import_raises": (
        'factory = "raises_on_import:Net"',
        "*importing 'raises_on_import'*raised KeyError: 'CONFIG_PATH'*",
    ),
    "snapshot_not_utf8": (
        'factory = "mymodels:Good"\nchecks = ["snapshot"]',
        "*is not UTF-8 text*delete it and run pytest --convcheck --snapshot-update*",
    ),
    "snapshot_is_folder": (
        'factory = "mymodels:Good"\nchecks = ["snapshot"]',
        "*snapshot_is_folder.json is a folder, not a file*remove or rename the folder*",
    ),
    # time
    "bad_timeout": (
        'factory = "mymodels:Good"\ntimeout = -1',
        "*timeout must be a positive number of seconds per check*",
    ),
    "slow_forward": (
        'factory = "mymodels:Slow"\ntimeout = 1',
        "*check 'shapes' did not finish within 1 s (timeout = 1 in the model's configuration)*",
    ),
    "slow_factory": (
        'factory = "mymodels:slow_factory"\ntimeout = 1\nchecks = ["shapes", "batch"]',
        "*the factory 'mymodels:slow_factory' did not finish within 1 s*",
    ),
    # misleading words
    "factory_where": (
        'factory = "mymodels:broken"',
        "*mymodels.py:* in broken: raise RuntimeError*",
    ),
    "wrong_kwarg_signature": (
        'factory = "mymodels:NeedsArgs"\nkwargs = { depth = 3 }',
        "*it takes NeedsArgs(width)*",
    ),
    "rank_one": (
        'factory = "mymodels:Good"\ninput = [8]\nchecks = ["batch"]',
        "*input [8] has 1 axis; the checks need at least a batch and a channel axis*",
    ),
    "huge_input": (
        'factory = "mymodels:Good"\ninput = [1, 1, 10000000, 10000000]\nchecks = ["batch"]',
        "*out of memory with input [1, 1, 10000000, 10000000]*use a smaller input*",
    ),
    "field_axes": (
        'factory = "mymodels:Good"\nreceptive_field_min = [3, 3, 3]',
        "*receptive_field_min = [3, 3, 3] has 3 entries, but input [1, 1, 8, 8] has 2 spatial*",
    ),
    "sharing_hint": (
        'factory = "mymodels:Aliased"\nchecks = ["sharing"]',
        '*in the model\'s sharing_allow, e.g. sharing_allow = ["blocks"]*',
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
    "float_input",
    "bool_input",
    "table_input",
    "rank_one",
    "huge_input",
}

# tables beside CASES: malformed names (a failing item under a safe name) and a
# prefix in sharing_allow that must pass
EXTRA_TABLES = """
[tool.convcheck.models.""]
factory = "mymodels:Good"
input = [1, 1, 8, 8]

[tool.convcheck.models."../../../escaped"]
factory = "mymodels:Good"
input = [1, 1, 8, 8]
checks = ["snapshot"]

[tool.convcheck.models.aliased_allowed]
factory = "mymodels:Aliased"
input = [1, 1, 8, 8]
checks = ["sharing"]
sharing_allow = ["blocks"]
"""
_EXTRA_FAILING = {"_", "_.._.._escaped"}  # the safe names of the malformed ones


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
    tables.append(EXTRA_TABLES)
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


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_inprocess(pytester: pytest.Pytester, *args: str) -> Ran:
    """``run``'s result, from a run in this process (pytester: its own config, the
    project's modules dropped afterwards), in the current directory."""
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    return Ran(int(result.ret), result.stdout.str(), result.stderr.str())


def sections(output: str) -> dict[str, str]:
    """Failure text per item (``convcheck::NAME::CHECK`` → text)."""
    found: dict[str, str] = {}
    parts = re.split(r"^_{3,} (convcheck::\S+) _{3,}$", output, flags=re.MULTILINE)
    for name, text in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = text
    return found


def _no_plugin_traceback(output: str) -> None:
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    assert "pytest_convcheck/" not in output.replace("pytest_convcheck/plugin.py", "")


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, str]]:
    project = tmp_path_factory.mktemp("bad_project") / "deep" / "down"
    project.mkdir(parents=True)
    (project / "mymodels.py").write_text(MODELS_PY)
    (project / "exits_on_import.py").write_text("import sys\n\nsys.exit(5)\n")
    (project / "raises_on_import.py").write_text("raise KeyError('CONFIG_PATH')\n")
    snapshots = project / "__snapshots__" / "convcheck"
    snapshots.mkdir(parents=True)
    (snapshots / "snapshot_not_utf8.json").write_bytes(b"\xff\xfe{\x00}\x00")
    (snapshots / "snapshot_is_folder.json").mkdir()
    (project / "pyproject.toml").write_text(_pyproject())
    result = run(project, "--convcheck", "--convcheck-report", "report.json")
    (project / "exit_code").write_text(str(result.returncode))
    return project, result.stdout + result.stderr, sections(result.stdout)


@pytest.fixture(scope="module")
def bad_project(bad_run: tuple[Path, str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    return bad_run[1], bad_run[2]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_model_gives_a_failing_item_naming_it(
    bad_project: tuple[str, dict[str, str]], name: str
) -> None:
    output, failures = bad_project
    item = next((k for k in failures if k.startswith(f"convcheck::{name}::")), None)
    assert item is not None, f"no failing item for {name}:\n{output[-3000:]}"
    text = failures[item]
    pattern = CASES[name][1]
    regex = re.escape(pattern.strip("*")).replace(r"\*", ".*")
    assert re.search(regex, text, re.DOTALL), f"{pattern!r} not in:\n{text}"
    assert name in text  # the model is named
    assert "fix" in text  # and what to do about it
    assert "Traceback" not in text and "site-packages" not in text


def test_scalar_model_table_is_a_failing_item(bad_project: tuple[str, dict[str, str]]) -> None:
    _, failures = bad_project
    assert "must be a table, got int" in failures["convcheck::scalar::config"]


def test_empty_model_table_is_a_failing_item(bad_project: tuple[str, dict[str, str]]) -> None:
    _, failures = bad_project
    assert "missing 'factory'" in failures["convcheck::table_not_table::config"]


def test_bad_models_do_not_break_the_run(bad_run: tuple[Path, str, dict[str, str]]) -> None:
    project, output, failures = bad_run
    assert (project / "exit_code").read_text() == "1"  # tests failed: no usage or internal error
    assert all("fix" in text for text in failures.values())
    assert "INTERNALERROR" not in output
    failing = {item.split("::")[1] for item in failures}
    assert failing == set(CASES) | {"scalar", "table_not_table"} | _EXTRA_FAILING
    assert f"{len(failures)} failed" in output
    assert "likely a gap in pytest-convcheck" not in output
    _no_plugin_traceback(output)


def test_an_allowed_check_never_hides_a_model_that_cannot_be_built(
    bad_project: tuple[str, dict[str, str]],
) -> None:
    output, failures = bad_project
    # an import error is found at collection: its config item fails, once
    assert "convcheck::allowed_import_error::config" in failures
    # a factory that raises fails the model's first check, once
    assert "convcheck::allowed_factory_error::shapes" in failures
    for name in ("allowed_import_error", "allowed_factory_error"):
        assert f"XFAIL convcheck::{name}" not in output


def test_output_without_tensors_fails_every_check_that_reads_it(
    bad_project: tuple[str, dict[str, str]],
) -> None:
    _, failures = bad_project
    checks = ["batch", "receptive_field", "checkerboard", "sharing", "parity", "layout", "snapshot"]
    for check in checks:
        text = failures[f"convcheck::returns_none_everywhere::{check}"]
        assert "forward returned no tensor" in text
        assert "samples folded" not in text


def test_malformed_model_names_are_refused_and_write_nothing(
    bad_run: tuple[Path, str, dict[str, str]],
) -> None:
    project, _, failures = bad_run
    assert "model name '' in" in failures["convcheck::_::config"]
    assert "is not usable" in failures["convcheck::_::config"]
    escaped = failures["convcheck::_.._.._escaped::config"]
    assert "model name '../../../escaped'" in escaped and "fix: rename it" in escaped
    assert not list(project.parent.parent.rglob("escaped*"))
    report = json.loads((project / "report.json").read_text())
    assert "" not in report["models"]
    assert report["models"]["_"]["checks"] == {"config": "failed"}


def test_a_container_in_sharing_allow_allows_the_modules_under_it(
    bad_run: tuple[Path, str, dict[str, str]],
) -> None:
    project, _, failures = bad_run
    assert not any("aliased_allowed" in item for item in failures)
    report = json.loads((project / "report.json").read_text())
    assert report["models"]["aliased_allowed"]["checks"] == {"sharing": "passed"}


def test_a_slow_factory_is_called_once_and_each_check_fails_on_time(
    bad_run: tuple[Path, str, dict[str, str]],
) -> None:
    project, _, failures = bad_run
    assert (project / "slow_factory_calls").read_text() == "call\n"
    # reported once, by the model's first check; the other checks point at it
    assert "did not finish within 1 s" in failures["convcheck::slow_factory::shapes"]
    assert "convcheck::slow_factory::batch" not in failures
    report = json.loads((project / "report.json").read_text())
    assert report["models"]["slow_factory"]["checks"] == {"shapes": "failed", "batch": "skipped"}


def test_plain_factory_errors_get_their_own_traceback_tail_not_the_kwargs_hint(
    bad_project: tuple[str, dict[str, str]],
) -> None:
    _, failures = bad_project
    text = failures["convcheck::factory_where::shapes"]
    assert "where:" in text and "kwargs" not in text
    assert "random seeds" not in failures["convcheck::mutates_weights::parity"]


GOOD_TOML = '[tool.convcheck.models.g]\nfactory = "mymodels:Good"\ninput = [1, 1, 8, 8]\n'
PARITY_TOML = GOOD_TOML + 'checks = ["parity"]\n'
SLOW_TOML = '[tool.convcheck.models.s]\nfactory = "mymodels:Slow"\ninput = [1, 1, 8, 8]\n'
SLOW_TOML += 'checks = ["shapes"]\n'
INI_G = "[pytest]\nconvcheck_models =\n    g mymodels:Good 1,1,8,8\n"

RUN_CASES: dict[str, tuple[dict[str, str], list[str], list[str], int]] = {
    # pytest itself reads pyproject.toml first: its usage error (exit 4), no traceback
    "invalid-toml": ({"pyproject.toml": "[tool.convcheck.models.a\n"}, [], ["Expected ']'"], 4),
    "models-scalar": (
        {"pyproject.toml": "[tool.convcheck]\nmodels = 3\n"},
        [],
        ["must be a table of tables"],
        1,
    ),
    "no-models": ({}, [], ["--convcheck found no models"], 1),
    "cli-bad-suffix": (
        {},
        ["--convcheck-model", "mymodels:Good@1,,8"],
        ["input must be a list of ints"],
        1,
    ),
    "cli-bad-input": (
        {},
        ["--convcheck-model", "mymodels:Good", "--convcheck-input", "1,,8"],
        ["input must be a list of ints"],
        1,
    ),
    "device": (
        {"pyproject.toml": PARITY_TOML},
        ["--convcheck-device", "tpu"],
        ["unknown device 'tpu'"],
        1,
    ),
    "tool-string": (
        {"pyproject.toml": '[tool]\nconvcheck = "yes"\n'},
        [],
        ["[tool.convcheck] must be a table holding [tool.convcheck.models.NAME] tables, got str"],
        1,
    ),
    "tool-array": (
        {"pyproject.toml": "[[tool.convcheck]]\nmodels = 1\n"},
        [],
        ["got an array of tables [[tool.convcheck]]", "[tool.convcheck.models.decoder]"],
        1,
    ),
    "tool-unknown-key": (
        {"pyproject.toml": GOOD_TOML.replace("models.g", "model.g")},
        [],
        ["unknown key(s) model in [tool.convcheck]", "(models, plural)"],
        1,
    ),
    "duplicate-table-and-ini-line": (
        {"pyproject.toml": GOOD_TOML, "pytest.ini": INI_G},
        [],
        [
            "model name 'g' is configured 2 times: [tool.convcheck.models.g] in",
            "line 1 of the ini option convcheck_models ('g mymodels:Good 1,1,8,8')",
            "give each model its own name",
        ],
        1,
    ),
    "duplicate-ini-lines": (
        {"pytest.ini": INI_G + "    g mymodels:Flat 1,1,28,28\n"},
        [],
        ["model name 'g' is configured 2 times", "line 2 of the ini option"],
        1,
    ),
    "cli-inputs-unpaired": (
        {},
        ["--convcheck-model", "mymodels:Good", "--convcheck-model", "mymodels:Flat"]
        + ["--convcheck-input", "1,1,8,8"] * 3,
        ["2 --convcheck-model options but 3 --convcheck-input options", "in the same order"],
        1,
    ),
    "report-is-a-folder": (
        {"pyproject.toml": GOOD_TOML, "out/keep": ""},
        ["--convcheck-report", "out"],
        ["--convcheck-report out:", "is a directory", "give the path of a JSON file"],
        4,
    ),
    "report-under-a-file": (
        {"pyproject.toml": GOOD_TOML, "afile": "x"},
        ["--convcheck-report", "afile/out.json"],
        ["lies under", "which is a file, not a directory"],
        4,
    ),
    "artifacts-is-a-file": (
        {"pyproject.toml": GOOD_TOML, "afile": "x"},
        ["--convcheck-artifacts", "afile"],
        ["--convcheck-artifacts afile:", "is a file, not a folder", "give a folder"],
        4,
    ),
    "artifacts-under-a-file": (
        {"pyproject.toml": GOOD_TOML, "afile": "x"},
        ["--convcheck-artifacts", "afile/pictures"],
        ["which is a file, not a folder"],
        4,
    ),
    "require-device": (
        {"pyproject.toml": PARITY_TOML},
        ["--convcheck-device", "cuda", "--convcheck-require-device"],
        ["--convcheck-require-device turns this skip into a failure", "drop --convcheck-require"],
        1,
    ),
    "timeout-option": (
        {"pyproject.toml": SLOW_TOML},
        ["--convcheck-timeout", "1"],
        ["check 'shapes' did not finish within 1 s (--convcheck-timeout 1)"],
        1,
    ),
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_run_level_errors(pytester: pytest.Pytester, case: str) -> None:
    tmp_path = pytester.path
    files, args, messages, code = RUN_CASES[case]
    if case == "require-device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here: the device is not missing")
    (tmp_path / "mymodels.py").write_text(MODELS_PY)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    if case == "timeout-option":  # a timer signal: its own process
        result: subprocess.CompletedProcess[str] | Ran = run(tmp_path, "--convcheck", *args)
    else:
        result = run_inprocess(pytester, "--convcheck", *args)
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    for message in messages:
        assert message in output, output[-3000:]
    _no_plugin_traceback(output)


SIGNAL_TAKEN = """
import signal

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # as pytest-timeout's signal method does: SIGALRM is taken during the test
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("outer timeout"))
    signal.setitimer(signal.ITIMER_REAL, 120)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
"""


def test_the_timeout_works_when_another_plugin_holds_sigalrm(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(MODELS_PY)
    (tmp_path / "conftest.py").write_text(SIGNAL_TAKEN)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.convcheck.models.busy]\nfactory = "mymodels:Busy"\ninput = [1, 1, 8, 8]\n'
        'checks = ["shapes"]\ntimeout = 1\n'
    )
    result = run(tmp_path, "--convcheck")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "check 'shapes' did not finish within 1 s" in output
    assert "outer timeout" not in output
    _no_plugin_traceback(output)


def test_a_missing_device_skips_parity_without_require_device(pytester: pytest.Pytester) -> None:
    import torch

    tmp_path = pytester.path
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the device is not missing")
    (tmp_path / "mymodels.py").write_text(MODELS_PY)
    (tmp_path / "pyproject.toml").write_text(PARITY_TOML)
    result = run_inprocess(pytester, "--convcheck", "--convcheck-device", "cuda", "-rs")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout


def test_a_traversing_model_name_writes_no_snapshot_outside_its_folder(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = pytester.path
    project = tmp_path / "a" / "b"
    project.mkdir(parents=True)
    (project / "mymodels.py").write_text(MODELS_PY)
    (project / "pyproject.toml").write_text(
        '[tool.convcheck.models."../../../x"]\nfactory = "mymodels:Good"\n'
        'input = [1, 1, 8, 8]\nchecks = ["snapshot"]\n'
    )
    monkeypatch.chdir(project)
    result = run_inprocess(pytester, "--convcheck", "--snapshot-update")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert "model name '../../../x'" in output and "is not usable" in output
    assert not list(tmp_path.rglob("x.json"))
    _no_plugin_traceback(output)


def test_cli_models_of_one_name_get_distinct_names(pytester: pytest.Pytester) -> None:
    tmp_path = pytester.path
    (tmp_path / "mymodels.py").write_text(MODELS_PY)
    (tmp_path / "othermodels.py").write_text(MODELS_PY)
    models = ["mymodels:Good", "othermodels:Good", "mymodels:Good"]
    args = [a for m in models for a in ("--convcheck-model", m)]
    result = run_inprocess(
        pytester, "--convcheck", *args, "--convcheck-input", "1,1,8,8", "--collect-only", "-q"
    )
    assert result.returncode == 0, result.stdout[-2000:]
    for name in ("mymodels.Good", "othermodels.Good", "mymodels.Good-2"):
        assert f"convcheck::{name}::shapes" in result.stdout


def test_cli_inputs_pair_with_the_models_in_order(pytester: pytest.Pytester) -> None:
    (pytester.path / "mymodels.py").write_text(MODELS_PY)
    result = run_inprocess(
        pytester,
        "--convcheck",
        *("--convcheck-model", "mymodels:Good", "--convcheck-input", "1,1,8,8"),
        *("--convcheck-model", "mymodels:Flat", "--convcheck-input", "2,1,28,28"),
        "-k",
        "shapes",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def test_a_report_that_cannot_be_written_keeps_the_summary(pytester: pytest.Pytester) -> None:
    tmp_path = pytester.path
    (tmp_path / "mymodels.py").write_text(MODELS_PY)
    (tmp_path / "pyproject.toml").write_text(GOOD_TOML + 'checks = ["shapes"]\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "test_spoil.py").write_text(  # the folder turns into a file mid-run
        "import shutil\n\ndef test_spoil():\n    shutil.rmtree('out')\n"
        "    open('out', 'w').close()\n"
    )
    result = run_inprocess(pytester, "--convcheck", "--convcheck-report", "out/report.json")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "convcheck summary" in output and "2 passed" in output
    assert "convcheck report NOT written to out/report.json" in output
    _no_plugin_traceback(output)


def test_a_worker_that_dies_leaves_its_check_marked_did_not_finish(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    (tmp_path / "mymodels.py").write_text(
        MODELS_PY + "\n\nclass Dies(Good):\n    def forward(self, x):\n"
        "        import os\n\n        os._exit(1)\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        GOOD_TOML
        + 'checks = ["shapes"]\n\n[tool.convcheck.models.dies]\nfactory = "mymodels:Dies"\n'
        'input = [1, 1, 8, 8]\nchecks = ["shapes"]\n'
    )
    result = run(tmp_path, "--convcheck", "-n", "2", "--convcheck-report", "r.json")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["models"]["g"]["checks"] == {"shapes": "passed"}
    assert report["models"]["dies"]["checks"] == {"shapes": "did not finish"}
    assert "did not finish: shapes" in output
