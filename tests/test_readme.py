"""Every code block of README.md runs under a test (issue #19).

Blocks are read from README.md itself; an HTML comment on the line before a
fence says what a block is (``<!-- readme-test: WHAT -->``):

=================================  =========================================================
marker                             what the test does with the block
=================================  =========================================================
(none, python)                     executed in a fresh namespace, in an empty folder
``pytest`` (python)                written as a test file and run by pytest (pytester)
``output of the block above``      the python block above prints these lines
(none or ``config``, toml / ini)   parsed; convcheck tables and ini lines are validated by
                                   ``pytest_convcheck.config``; pytest commands in tox files
                                   use only options that exist
``yaml``                           parsed (PyYAML); its pytest commands use known options
``file NAME``                      a file of the quickstart project
``quickstart``                     run with bash in the quickstart project, first run
``quickstart output``              lines that the first run prints (``...``: anything)
``quickstart fix``                 lines that replace the same assignments in models.py
``quickstart after fix``           run with bash after the fix
``summary of examples/user_project``  the summary table and legend of that project
``skip: WHY``                      not run in CI; the reason is required
=================================  =========================================================
"""

from __future__ import annotations

import configparser
import contextlib
import io
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_convcheck.config import load_models

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- readme-test: (.+?) -->")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    index: int
    language: str
    code: str
    marker: str  # "" when none
    line: int  # 1-based line of the opening fence

    @property
    def id(self) -> str:
        return f"{self.language}-line{self.line}"


def readme_blocks(text: str | None = None) -> list[Block]:
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Block] = []
    at = 0
    while at < len(lines):
        line = lines[at]
        if line.startswith("```"):
            language = line[3:].strip()
            start = at
            at += 1
            body = []
            while not lines[at].startswith("```"):
                body.append(lines[at])
                at += 1
            before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            marked = MARKER.fullmatch(before.strip())
            found.append(
                Block(
                    len(found),
                    language,
                    "\n".join(body) + "\n",
                    marked.group(1) if marked else "",
                    start + 1,
                )
            )
        at += 1
    return found


BLOCKS = readme_blocks()
KNOWN_MARKERS = {
    "pytest",
    "config",
    "yaml",
    "quickstart",
    "quickstart output",
    "quickstart fix",
    "quickstart after fix",
    "output of the block above",
    "summary of examples/user_project",
}


def by(marker: str, language: str | None = None) -> list[Block]:
    return [
        b
        for b in BLOCKS
        if (b.marker == marker or (marker == "file" and b.marker.startswith("file ")))
        and (language is None or b.language == language)
    ]


def matches(expected: str, output: str) -> None:
    """Every line of ``expected`` appears in ``output`` in order; a line ``...``
    stands for any lines, ``...`` inside a line for any text. Runs of spaces, and
    the ``=``/``_`` rules around pytest's headings, do not count; nor do timings."""

    def norm(line: str) -> str:
        line = re.sub(r"in \d+(\.\d+)?s\b", "in <t>", line)
        return re.sub(r"\s+", " ", line.strip().strip("=_").strip())

    got = [norm(line) for line in output.splitlines()]
    at = 0
    for want in expected.splitlines():
        if not want.strip() or want.strip() == "...":
            continue
        parts = [re.escape(norm(p)) for p in norm(want).split("...")]
        pattern = re.compile(".*".join(parts))
        while at < len(got) and not pattern.search(got[at]):
            at += 1
        assert at < len(got), f"README line not in the output:\n  {want}\n--- output:\n{output}"
        at += 1


# --------------------------------------------------------------------------- coverage


def test_every_block_is_run_by_a_test_or_says_why_not() -> None:
    assert len(BLOCKS) >= 20
    for block in BLOCKS:
        marker = block.marker
        where = f"README.md:{block.line} ({block.language})"
        if marker.startswith("skip"):
            assert re.fullmatch(r"skip: \S.{10,}", marker), f"{where}: a skip needs a reason"
            continue
        if marker.startswith("file "):
            continue
        assert marker in KNOWN_MARKERS | {""}, f"{where}: unknown marker {marker!r}"
        if block.language in ("bash", "sh", "text", ""):
            assert marker, f"{where}: a {block.language or 'plain'} block needs a marker"
        assert block.language in ("python", "toml", "ini", "bash", "text", "yaml"), where
    quickstart = {b.marker for b in BLOCKS if b.marker.startswith("quickstart")}
    assert quickstart == {
        "quickstart",
        "quickstart output",
        "quickstart fix",
        "quickstart after fix",
    }
    assert {b.marker for b in by("file")} == {"file models.py", "file pyproject.toml"}


def test_the_marker_parser_reads_languages_markers_and_lines() -> None:
    text = "intro\n\n<!-- readme-test: skip: needs a GPU here -->\n```bash\nnvidia-smi\n```\n"
    [block] = readme_blocks(text)
    assert (block.language, block.code, block.marker, block.line) == (
        "bash",
        "nvidia-smi\n",
        "skip: needs a GPU here",
        4,
    )


# --------------------------------------------------------------------------- python


def _run_python(block: Block) -> str:
    out = io.StringIO()
    namespace = {"__name__": f"readme_block_{block.index}"}
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
    return out.getvalue()


PLAIN_PYTHON = [b for b in BLOCKS if b.language == "python" and not b.marker]


@pytest.mark.parametrize("block", PLAIN_PYTHON, ids=[b.id for b in PLAIN_PYTHON])
def test_python_blocks_run(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    printed = _run_python(block)
    following = BLOCKS[block.index + 1] if block.index + 1 < len(BLOCKS) else None
    if following is not None and following.marker == "output of the block above":
        matches(following.code, printed)


def test_the_several_inputs_example_prints_what_it_says() -> None:
    [block] = [b for b in PLAIN_PYTHON if "Input((2,), dtype=" in b.code]
    comment = re.search(r"print\(.*\)\s+# (\(.*?\)) (\(.*?\))", block.code)
    assert comment is not None
    assert _run_python(block).strip() == f"{comment.group(1)} {comment.group(2)}"


def test_blocks_run_as_test_files(pytester: pytest.Pytester) -> None:
    blocks = by("pytest", "python")
    assert len(blocks) >= 2
    for block in blocks:
        pytester.makepyfile(**{f"test_readme_block_{block.index}": block.code})
    pytester.makeini("[pytest]\n")
    args = ("-p", "no:cacheprovider", "--benchmark-disable")
    first = pytester.runpytest_inprocess(*args, "--snapshot-update")
    first.assert_outcomes(passed=sum(b.code.count("\ndef test_") for b in blocks))
    again = pytester.runpytest_inprocess(*args)  # the snapshot written above now matches
    again.assert_outcomes(passed=sum(b.code.count("\ndef test_") for b in blocks))


# --------------------------------------------------------------------------- config


CONFIG = [b for b in BLOCKS if b.language in ("toml", "ini") and b.marker in ("", "config")]
FILES = by("file", "toml")


OTHER_PLUGINS = {"--html", "--self-contained-html"}  # pytest-html's (the html extra)


def _pytest_options(config: pytest.Config) -> set[str]:
    """Every long option of this pytest run (pytest, this plugin, the plugins it
    needs), and pytest-html's, installed or not."""
    parser = config._parser
    options = list(parser._anonymous.options)
    for group in parser._groups:
        options += group.options
    return {name for option in options for name in option.names()} | OTHER_PLUGINS


def _check_pytest_commands(text: str, known: set[str]) -> int:
    """Every ``pytest`` command line in ``text`` uses only known long options."""
    count = 0
    for line in text.splitlines():
        found = re.search(r"(?:^|[\s\"'-])pytest (.*)$", line)
        if not found:
            continue
        count += 1
        for word in shlex.split(found.group(1).replace("{posargs}", "")):
            option = word.split("=")[0]
            if option.startswith("--"):
                assert option in known, f"unknown pytest option {option} in: {line.strip()}"
    return count


@pytest.fixture(scope="module")
def pytest_options(pytestconfig: pytest.Config) -> set[str]:
    found = _pytest_options(pytestconfig)
    assert {"--convcheck", "--snapshot-update", "--benchmark-disable", "--fulltrace"} <= found
    return found


@pytest.mark.parametrize("block", CONFIG + FILES, ids=[b.id for b in CONFIG + FILES])
def test_config_blocks_parse_and_validate(
    block: Block, tmp_path: Path, pytest_options: set[str]
) -> None:
    if block.language == "toml":
        data = tomllib.loads(block.code)
        if "convcheck" in data.get("tool", {}):
            path = tmp_path / "pyproject.toml"
            path.write_text(block.code)
            models, errors = load_models(path, [], None)
            assert not errors, errors
            assert models
        return
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(block.code)
    if parser.has_option("pytest", "convcheck_models"):
        lines = [x for x in parser.get("pytest", "convcheck_models").splitlines() if x.strip()]
        models, errors = load_models(None, [], None, lines)
        assert not errors, errors
        assert len(models) == len(lines)
    if parser.has_section("tox"):
        assert _check_pytest_commands(block.code, pytest_options) >= 2
        for section in parser.sections():
            if section.startswith("testenv:"):
                assert parser.get(section, "description")


YAML = by("yaml", "yaml")


@pytest.mark.parametrize("block", YAML, ids=[b.id for b in YAML])
def test_yaml_blocks_parse_and_use_known_options(block: Block, pytest_options: set[str]) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML parses the README's CI recipes")
    assert isinstance(yaml.safe_load(block.code), dict)
    assert _check_pytest_commands(block.code, pytest_options) >= 1


# --------------------------------------------------------------------------- quickstart


def _bash(pytester: pytest.Pytester, block: Block) -> str:
    result = pytester.run("bash", "-e", "-c", block.code, timeout=300)
    return "\n".join(result.outlines + result.errlines)


def test_the_quickstart_from_the_readme_passes_as_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh user project made of the quickstart's files, run with the README's
    commands through the ``pytest`` script (the project's folder is not on
    sys.path): the first run is green on the classifier, skips the snapshots and
    names the decoder's planted bug; after the README's fix, every check passes
    and the snapshots are written, then matched."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    for block in by("file"):
        (pytester.path / block.marker.removeprefix("file ")).write_text(block.code)
    [run] = by("quickstart", "bash")
    assert run.code.strip() == "pytest --convcheck"
    output = _bash(pytester, run)
    for expected in by("quickstart output", "text"):
        matches(expected.code, output)
    assert "2 failed, 12 passed, 2 skipped" in output
    assert "FAILED convcheck::classifier" not in output  # green on the correct model
    # the README's fix, applied to the file the user saved
    [fix] = by("quickstart fix", "python")
    models = pytester.path / "models.py"
    text = models.read_text()
    for line in fix.code.strip().splitlines():
        target = line.split("=")[0].strip()
        text, count = re.subn(rf"^(\s*){re.escape(target)} =.*$", rf"\g<1>{line}", text, flags=re.M)
        assert count == 1, target
    models.write_text(text)
    [after] = by("quickstart after fix", "bash")
    output = _bash(pytester, after)
    assert output.count("16 passed") == 2, output
    assert "2 convcheck snapshots written." in output
    assert "2 convcheck snapshots passed." in output
    assert sorted(p.name for p in (pytester.path / "__snapshots__" / "convcheck").iterdir()) == [
        "classifier.json",
        "decoder.json",
    ]


# --------------------------------------------------------------------------- summary


def test_the_user_project_summary_is_what_the_plugin_prints() -> None:
    """The example table's cells (failed column aside, which test_user_project pins)
    and its legend, computed from the example project's models."""
    sys.path.insert(0, str(ROOT / "examples" / "user_project"))
    try:
        from mypkg import models as user_models
    finally:
        sys.path.pop(0)
    from pytest_convcheck.plugin import ConvcheckSummary, legend
    from pytest_convcheck.reports import report

    [block] = by("summary of examples/user_project", "text")
    table, _, legend_text = block.code.partition("legend:\n")
    header, *rows = [re.split(r"\s{2,}", line.strip()) for line in table.strip().splitlines()]
    inputs = {
        "classifier": (user_models.Classifier, (2, 1, 28, 28)),
        "decoder": (user_models.Decoder, (2, 16, 7, 7)),
        "upsampler": (user_models.Upsampler, (1, 8, 16, 16)),
        "encoder": (user_models.Encoder, (1, 1, 32, 32)),
    }
    summary = ConvcheckSummary(None)  # type: ignore[arg-type]
    for row in rows:
        factory, shape = inputs[row[0]]
        summary.models[row[0]] = {"report": report(factory(), shape).to_dict(), "checks": {}}
    computed = summary.rows()
    assert [r[:7] for r in computed] == [tuple(r[:7]) for r in rows]
    columns = ["model", "output", "receptive field", "checkerboard", "sharing", "params"]
    assert header == [*columns, "FLOPs", "failed"]
    assert legend([tuple(r) for r in rows]) == ["legend:", *legend_text.rstrip("\n").splitlines()]


def test_the_readme_picture_is_the_decoders_checkerboard() -> None:
    from pytest_convcheck.pictures import read_png_text

    found = re.search(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", README.read_text(encoding="utf-8"))
    assert found is not None
    text = read_png_text(ROOT / found.group(1))
    assert text["Title"] == "structural checkerboard of Decoder"
    assert "imbalance ×2.56" in text["Description"]
