"""The package, the plugin's loading, and the article's ten models."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

from examples.article import MODELS
from pytest_convcheck import trace

SECTIONS = [
    "s01_transposed_conv",
    "s02_dilated_conv",
    "s03_upsampling",
    "s04_checkerboard_fix",
    "s05_feature_visualisation",
    "s06_cnn",
    "s07_deconvolution",
    "s08_conv1d",
    "s09_cnn1d",
    "s10_conv_reuse",
]


def test_importing_the_package_and_plugin_never_imports_torch() -> None:
    code = (
        "import sys, pytest_convcheck, pytest_convcheck.plugin, pytest_convcheck.config; "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "print(pytest_convcheck.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_public_names_resolve_lazily() -> None:
    import pytest_convcheck

    for name in pytest_convcheck.__all__:
        assert getattr(pytest_convcheck, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_convcheck.nope  # noqa: B018


def test_plain_pytest_run_with_the_plugin_never_imports_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_scratch="""
        import sys

        def test_no_torch(request):
            assert request.config.pluginmanager.hasplugin("convcheck")
            assert "torch" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_help_lists_the_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(["*convolution semantics checks*", "*--convcheck *"])


def test_the_article_has_ten_sections() -> None:
    assert list(MODELS) == SECTIONS


@pytest.mark.parametrize("section", SECTIONS)
def test_section_module_imports_and_documents_itself(section: str) -> None:
    module = importlib.import_module(f"examples.article.{section}")
    assert module.__doc__ and "Input" in module.__doc__
    assert MODELS[section][1] == module.INPUT_SHAPE


@pytest.mark.parametrize("section", SECTIONS)
def test_article_model_runs_forward_on_its_input(section: str) -> None:
    factory, shape = MODELS[section]
    model = factory()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert tuple(out.shape) == trace(model, shape).output_shape


def test_repeated_sections_import_rather_than_copy() -> None:
    from examples.article import s05_feature_visualisation, s07_deconvolution, s08_conv1d, s09_cnn1d

    assert s07_deconvolution.Net is s05_feature_visualisation.Net
    assert s09_cnn1d.Net is s08_conv1d.Net


def test_section_ten_is_marked_as_our_completion_and_reuses_a_conv() -> None:
    from examples.article import s10_conv_reuse

    assert "our completion" in s10_conv_reuse.__doc__
    assert trace(s10_conv_reuse.Net(), s10_conv_reuse.INPUT_SHAPE).calls["conv3"] == 2
