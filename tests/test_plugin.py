"""``pytest --convcheck`` as users run it: pytester in-process (each run a fresh
config; per-process model caches are cleared at session start), in a subprocess
where a process boundary is what a test is about (xdist, one build per process)."""

from __future__ import annotations

import json
import textwrap

import pytest
from plugin_models import MODELS_PY


def project(pytester: pytest.Pytester, tables: str) -> None:
    pytester.makepyfile(mymodels=MODELS_PY)
    pytester.makefile(".toml", pyproject=textwrap.dedent(tables))


def test_items_per_model_and_check(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.good]
        factory = "mymodels:Good"
        input = [2, 1, 28, 28]
        expect_output = [2, 1, 28, 28]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "convcheck::good::shapes",
            "convcheck::good::batch",
            "convcheck::good::receptive_field",
            "convcheck::good::checkerboard",
            "convcheck::good::sharing",
            "convcheck::good::parity",
            "convcheck::good::layout",
            "convcheck::good::snapshot",
        ]
    )
    # first run: green, the snapshot item skipped with how to start pinning
    result = pytester.runpytest_inprocess("--convcheck", "-rs")
    result.assert_outcomes(passed=7, skipped=1)
    result.stdout.fnmatch_lines(
        ["1 convcheck snapshot missing (skipped): run pytest --convcheck --snapshot-update*"]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1] convcheck::good::snapshot: model 'good': no snapshot yet*good.json*"
            "run pytest --convcheck --snapshot-update to start pinning*"
        ]
    )
    # CI opts into strictness
    result = pytester.runpytest_inprocess("--convcheck", "--convcheck-snapshot-strict")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*no snapshot at*good.json*", "*--snapshot-update*"])
    result = pytester.runpytest_inprocess("--convcheck", "-o", "convcheck_snapshot_strict=true")
    result.assert_outcomes(passed=7, failed=1)
    result = pytester.runpytest_inprocess("--convcheck", "--snapshot-update")
    result.assert_outcomes(passed=8)
    snapshot = pytester.path / "__snapshots__" / "convcheck" / "good.json"
    assert '"output_shape": [2, 1, 28, 28]' in snapshot.read_text()
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(passed=8)


def test_without_the_flag_nothing_is_added(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.good]
        factory = "mymodels:Good"
        input = [2, 1, 28, 28]
    """,
    )
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_wrong_output_size_fails_with_the_trace(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.short]
        factory = "mymodels:ShortDecoder"
        input = [2, 1, 28, 28]
        expect_output = [2, 1, 28, 28]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck", "-k", "shapes")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["collected 8 items / 7 deselected / 1 selected"])
    result.stdout.fnmatch_lines(
        [
            "*model 'short' (mymodels:ShortDecoder, input ?2, 1, 28, 28?), check 'shapes'*",
            "*expected output 2×1×28×28 for input 2×1×28×28, got 2×1×29×29*",
            "*up (ConvTranspose2d): 2×4×14×14 → 2×1×29×29*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_batch_mixing_view_is_caught(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.flat]
        factory = "mymodels:Flat"
        input = [9, 1, 20, 20]
        checks = ["batch"]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*a batch of 9 went in, output 4×3 came out*the batch dimension changed at view*"]
    )


def test_allowed_check_is_reported_not_failed(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.short]
        factory = "mymodels:ShortDecoder"
        input = [1, 1, 28, 28]
        expect_output = [1, 1, 28, 28]
        checks = ["shapes"]
        allow = ["shapes"]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck", "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*allowed in config*", "*got 1×1×29×29*"])


def test_command_line_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymodels=MODELS_PY)
    result = pytester.runpytest_inprocess(
        "--convcheck",
        "--convcheck-model",
        "mymodels:Good",
        "--convcheck-input",
        "1,1,16,16",
        "--snapshot-update",
    )
    result.assert_outcomes(passed=8)


def test_receptive_field_bounds_and_holes(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.small]
        factory = "mymodels:Good"
        input = [1, 1, 16, 16]
        checks = ["receptive_field"]
        receptive_field_min = 64

        [tool.convcheck.models.gridded]
        factory = "mymodels:Gridded"
        input = [1, 1, 16, 16]
        checks = ["receptive_field"]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*receptive field 4×4 is smaller than min_size 64×64*",
            "*Cheapest ways to grow it*",
            "*its receptive field has holes*((1, 3, 5, 7), (1, 3, 5, 7))*",
            "*use dilation rates without a common factor*",
        ]
    )


def test_checkerboard_check_and_kinds(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.short]
        factory = "mymodels:ShortDecoder"
        input = [1, 1, 16, 16]
        checks = ["checkerboard"]

        [tool.convcheck.models.good]
        factory = "mymodels:Good"
        input = [1, 1, 16, 16]
        checks = ["checkerboard"]
        checkerboard_kinds = ["structural", "weights"]

        [tool.convcheck.models.typo]
        factory = "mymodels:Good"
        input = [1, 1, 16, 16]
        checkerboard_kinds = ["spectrum"]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["convcheck::typo::config"])
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*up (ConvTranspose2d, kernel (3, 3), stride (2, 2)*taps per phase ((2, 1), (2, 1))*",
            "*respond unevenly per output phase*",
            "*checkerboard_kinds must be a non-empty list of structural, weights, output, *",
        ]
    )


def test_sharing_check_flags_repeated_blocks(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.repeated]
        factory = "mymodels:repeated"
        input = [1, 1, 8, 8]
        checks = ["sharing"]

        [tool.convcheck.models.intended]
        factory = "mymodels:repeated"
        input = [1, 1, 8, 8]
        checks = ["sharing"]
        sharing_allow = ["0"]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*`0`, `1` and `2` are one Sequential object: `[[]block[]] * 3`*"])


def test_models_from_an_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymodels=MODELS_PY)
    pytester.makeini(
        """
        [pytest]
        convcheck_models =
            good mymodels:Good 2,1,28,28 expect_output=2,1,28,28 checks=shapes,batch
            short mymodels:ShortDecoder 1,1,28,28 expect_output=1,1,28,28 checks=shapes
            grid mymodels:Gridded 1,1,32,32 checks=receptive_field receptive_field_min=9
            bad mymodels:Good
        """
    )
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*convcheck::short::shapes*",
            "*got 1×1×29×29*",
        ]
    )
    result.stdout.fnmatch_lines(["*holes*"])
    result.stdout.fnmatch_lines(["*expected NAME MODULE:FACTORY N,C,H,W*"])


def test_summary_sharing_column_names_weight_reuse_not_stateless_reuse() -> None:
    from pytest_convcheck.summary_table import sharing_text

    layers = [
        {"name": "block.relu", "parameters": 0},
        {"name": "block.relu#2", "parameters": 0},
        {"name": "conv", "parameters": 40},
        {"name": "conv#2", "parameters": 40},
    ]
    shared = {"suspicious": [], "reused": {"block.relu": 2, "conv": 2}, "tied": []}
    assert sharing_text(shared, layers) == "conv×2"
    assert sharing_text({**shared, "reused": {"block.relu": 2}}, layers) == "—"
    aliased = {**shared, "suspicious": [["a", "b"]], "tied": [["a.weight", "b.weight"]]}
    assert sharing_text(aliased, layers) == "ALIAS a=b, 1 tied"


def test_factory_keyword_arguments_from_toml_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        mymodels=MODELS_PY
        + """

class Sized(nn.Module):
    def __init__(self, width, classes=2):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))
"""
    )
    pytester.makepyprojecttoml(
        """
        [tool.convcheck.models.toml_sized]
        factory = "mymodels:Sized"
        input = [2, 1, 8, 8]
        kwargs = { width = 4, classes = 3 }
        expect_output = [2, 3]
        checks = ["shapes"]
        """
    )
    pytester.makeini(
        """
        [pytest]
        convcheck_models =
            ini mymodels:Sized 2,1,8,8 kwargs.width=5 expect_output=2,2 checks=shapes
        """
    )
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(passed=2)


def test_ini_kwargs_are_python_literals_or_strings() -> None:
    from pytest_convcheck.config import table_from_ini_line

    _, table = table_from_ini_line(
        "m pkg:Net 1,1,8,8 kwargs.width=16 kwargs.mode=bilinear kwargs.sizes=(1,2) kwargs.flag=True"
    )
    assert table["kwargs"] == {"width": 16, "mode": "bilinear", "sizes": (1, 2), "flag": True}


XDIST_TABLES = """
[tool.convcheck.models.good]
factory = "mymodels:Good"
input = [2, 1, 16, 16]
expect_output = [2, 1, 16, 16]

[tool.convcheck.models.short]
factory = "mymodels:ShortDecoder"
input = [1, 1, 16, 16]
expect_output = [1, 1, 16, 16]
allow = ["checkerboard"]

[tool.convcheck.models.flat]
factory = "mymodels:Flat"
input = [3, 1, 28, 28]

[tool.convcheck.models.gridded]
factory = "mymodels:Gridded"
input = [1, 1, 16, 16]

[tool.convcheck.models.repeated]
factory = "mymodels:repeated"
input = [1, 1, 8, 8]
"""


def test_the_json_report_is_the_same_with_and_without_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project(pytester, XDIST_TABLES)
    reports = []
    for workers in ("0", "2"):
        target = pytester.path / f"report-{workers}.json"
        run = pytester.runpytest_inprocess if workers == "0" else pytester.runpytest_subprocess
        result = run(
            "--convcheck", "-p", "no:randomly", "-n", workers, "--convcheck-report", str(target)
        )
        assert result.ret == 1  # planted bugs fail
        reports.append(target.read_bytes())
    assert reports[0] == reports[1]  # the report holds no timings: byte for byte
    data = json.loads(reports[0])
    assert list(data["models"]) == ["good", "short", "flat", "gridded", "repeated"]
    assert list(data["models"]["short"]["checks"])[:3] == ["shapes", "batch", "receptive_field"]
    assert data["models"]["short"]["checks"]["checkerboard"] == "allowed"


def test_unused_snapshots_are_reported_and_deleted_with_counts(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        """
        [tool.convcheck.models.good]
        factory = "mymodels:Good"
        input = [1, 1, 8, 8]
        checks = ["snapshot"]
    """,
    )
    folder = pytester.path / "__snapshots__" / "convcheck"
    result = pytester.runpytest_inprocess("--convcheck", "--snapshot-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 convcheck snapshot written."])
    (folder / "removed_model.json").write_text("{}\n")
    (folder / "good.json").write_text("{}\n")
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*1 convcheck snapshot unused (removed_model.json)*--snapshot-update to delete it."]
    )
    assert (folder / "removed_model.json").exists()
    result = pytester.runpytest_inprocess("--convcheck", "--snapshot-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["1 convcheck snapshot updated. 1 unused convcheck snapshot deleted (removed_model.json)."]
    )
    assert not (folder / "removed_model.json").exists()
    result = pytester.runpytest_inprocess("--convcheck")
    result.stdout.fnmatch_lines(["1 convcheck snapshot passed."])


def test_each_model_is_built_once_per_process_from_a_fixed_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        mymodels=MODELS_PY
        + """

def counted():
    with open("calls.txt", "a") as calls:
        calls.write(f"{torch.rand(1).item()!r}\\n")
    return Good()
"""
    )
    pytester.makepyprojecttoml(
        """
        [tool.convcheck.models.counted]
        factory = "mymodels:counted"
        input = [1, 1, 8, 8]
        checks = ["shapes", "batch", "receptive_field", "sharing"]
        """
    )
    result = pytester.runpytest_inprocess("--convcheck")
    result.assert_outcomes(passed=4)
    result = pytester.runpytest_subprocess("--convcheck", "-k", "batch")  # a fresh process
    result.assert_outcomes(passed=1, deselected=3)
    calls = (pytester.path / "calls.txt").read_text().splitlines()
    assert len(calls) == 2  # once per process
    assert calls[0] == calls[1]  # the same weights, whatever ran before


def test_pictures_leave_the_matplotlib_backend_alone(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import subprocess
    import sys

    code = f"""
import sys
import matplotlib
matplotlib.use("svg")
from torch import nn
from pytest_convcheck import checkerboard
tiles = checkerboard(nn.ConvTranspose2d(1, 1, 3, stride=2), (1, 1, 8, 8))
tiles.save_png({str(tmp_path / "t.png")!r})
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_that_does_not_run_at_its_input_fails_once(pytester: pytest.Pytester) -> None:
    """One failure that says why and what sizes work; the other checks skip, pointing
    at it (they would all repeat it)."""
    project(
        pytester,
        """
        [tool.convcheck.models.wrong]
        factory = "mymodels:Good"
        input = [1, 3, 8, 8]
    """,
    )
    result = pytester.runpytest_inprocess("--convcheck", "-rs", "-p", "no:randomly")
    result.assert_outcomes(failed=1, skipped=7)
    result.stdout.fnmatch_lines(
        [
            "*check 'shapes':",
            "*describe the input with 1 channel*",
            "*(the model's other checks are skipped: they need it to run at its input)",
            "SKIPPED*convcheck::wrong::batch: model 'wrong' does not run at its input "
            "[[]1, 3, 8, 8[]]: see convcheck::wrong::shapes (*)",
        ]
    )
    # whichever check comes first reports it, with the trace's message
    result = pytester.runpytest_inprocess("--convcheck", "-k", "parity or layout")
    result.assert_outcomes(failed=1, skipped=1, deselected=6)
    result.stdout.fnmatch_lines(["*check 'parity':", "*describe the input with 1 channel*"])
