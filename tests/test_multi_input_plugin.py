"""Models with several inputs, keyword inputs, integer inputs and example-input
factories, run as users run them (``pytest --convcheck``, pytester in-process) and
through the analyses (issue #17)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from pytest_convcheck import (
    Input,
    ModelRunError,
    assert_output_shape,
    checkerboard,
    receptive_field,
    report,
    trace,
    valid_input_sizes,
)

MODELS = '''
import torch
from torch import nn


class Inpaint(nn.Module):
    """An image and its mask."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, image, mask):
        return self.conv(torch.cat([image, mask], 1))


class TimestepUNet(nn.Module):
    """A diffusion-style U-Net: a sample and an integer timestep."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 8)
        self.down = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)

    def forward(self, sample, timestep):
        h = self.down(sample) + self.embed(timestep)[:, :, None, None]
        return self.up(torch.relu(h))


class DictInput(nn.Module):
    """A training batch as a dict."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, batch):
        return self.conv(batch["image"]) * batch["scale"]


def dict_inputs():
    return ({"image": torch.randn(2, 3, 16, 16), "scale": torch.ones(2, 1, 1, 1)},), {}


class Tokens(nn.Module):
    """Token ids → embedding → Conv1d."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.conv = nn.Conv1d(8, 8, 5, padding=2)

    def forward(self, ids):
        return self.conv(self.embed(ids).transpose(1, 2))


class TwoOutputs(nn.Module):
    """Returns (tensor, dict)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y, {"pooled": y.mean((2, 3)), "mask": y[:, :1].sigmoid()}


class MixedSecondOutput(TwoOutputs):
    """Planted bug: the second output mixes the samples of a batch."""

    def forward(self, x):
        y = self.conv(x)
        return y, {"pooled": y.mean((0, 2, 3)).expand(x.shape[0], -1)}


class LayoutSecondOutput(TwoOutputs):
    """Planted bug: the second output depends on memory layout."""

    def forward(self, x):
        y = self.conv(x)
        flat = y.reshape(y.shape[0], -1)
        return y, {"flat": flat if y.is_contiguous() else flat.flip(-1)}
'''

CONFIG = """
[tool.convcheck.models.inpaint]
factory = "mymodels:Inpaint"
input = [[2, 3, 16, 16], [2, 1, 16, 16]]
expect_output = [2, 3, 16, 16]
checks = CHECKS

[tool.convcheck.models.unet]
factory = "mymodels:TimestepUNet"
input = { sample = [2, 4, 16, 16], timestep = { shape = [2], dtype = "int64", high = 1000 } }
checks = CHECKS

[tool.convcheck.models.batch_dict]
factory = "mymodels:DictInput"
example_inputs = "mymodels:dict_inputs"
checks = CHECKS

[tool.convcheck.models.tokens]
factory = "mymodels:Tokens"
input = { ids = { shape = [2, 32], dtype = "int64", high = 100 } }
checks = CHECKS

[tool.convcheck.models.two_outputs]
factory = "mymodels:TwoOutputs"
input = [2, 3, 16, 16]
expect_output = [[2, 4, 16, 16], { pooled = [2, 4], mask = [2, 1, 16, 16] }]
checks = CHECKS
"""

DEFAULT_CHECKS = (
    '["shapes", "batch", "receptive_field", "checkerboard", "sharing", "parity", "layout"]'
)


def _project(pytester: pytest.Pytester, config: str) -> None:
    pytester.makepyfile(mymodels=MODELS)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\npythonpath = ["."]\n' + config.replace("CHECKS", DEFAULT_CHECKS)
    )


def test_multi_input_models_pass_every_default_check(pytester: pytest.Pytester) -> None:
    _project(pytester, CONFIG)
    result = pytester.runpytest_inprocess("--convcheck", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=35)
    assert "INTERNALERROR" not in result.stdout.str()


def test_planted_bugs_in_a_second_output_are_found(pytester: pytest.Pytester) -> None:
    _project(
        pytester,
        """
[tool.convcheck.models.mixed]
factory = "mymodels:MixedSecondOutput"
input = [2, 3, 16, 16]
checks = ["batch"]

[tool.convcheck.models.layout]
factory = "mymodels:LayoutSecondOutput"
input = [2, 3, 16, 16]
checks = ["layout"]
""",
    )
    result = pytester.runpytest_inprocess("--convcheck", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert "pooled" in text and "flat" in text


def test_one_line_input_forms(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymodels=MODELS)
    pytester.makeini(
        """
[pytest]
pythonpath = .
convcheck_models =
    inpaint mymodels:Inpaint 2,3,16,16;2,1,16,16 checks=shapes,receptive_field
    unet mymodels:TimestepUNet sample=2,4,16,16;timestep=2:int64 checks=shapes,batch
"""
    )
    result = pytester.runpytest_inprocess("--convcheck", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)
    cli = pytester.runpytest_inprocess(
        "--convcheck",
        "-p",
        "no:cacheprovider",
        "-q",
        "--convcheck-model",
        "mymodels:Inpaint",
        "--convcheck-input",
        "2,3,16,16;2,1,16,16",
        "-k",
        "Inpaint and shapes",
    )
    cli.assert_outcomes(passed=2)  # the ini line's inpaint and the command line's Inpaint


def test_a_missing_input_is_named_with_the_config_line(pytester: pytest.Pytester) -> None:
    _project(
        pytester,
        """
[tool.convcheck.models.inpaint]
factory = "mymodels:Inpaint"
input = [2, 3, 16, 16]
checks = ["shapes"]
""",
    )
    result = pytester.runpytest_inprocess("--convcheck", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*Inpaint.forward needs 1 more input(s): mask*", "*fix: describe every input*mask*"]
    )


# ------------------------------------------------------------------- the analyses


class Inpaint(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([image, mask], 1))


class TimestepUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 8)
        self.down = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(sample) + self.embed(timestep)[:, :, None, None])


UNET_INPUTS = {"sample": (2, 4, 16, 16), "timestep": Input((2,), dtype="int64", high=1000)}


def test_trace_and_report_of_several_inputs() -> None:
    result = trace(Inpaint(), ((2, 3, 16, 16), (2, 1, 16, 16)))
    assert result.output_shape == (2, 3, 16, 16)
    assert result.inputs is not None and result.inputs.describe() == "2×3×16×16, 2×1×16×16"
    data = report(TimestepUNet(), UNET_INPUTS).to_dict()
    assert data["inputs"] == "sample=2×4×16×16, timestep=2 (int64)"
    assert data["output_shape"] == [2, 4, 16, 16]


def test_receptive_field_over_the_concatenation_is_the_conv() -> None:
    assert receptive_field(Inpaint(), ((2, 3, 16, 16), (2, 1, 16, 16))).size == (3, 3)
    # the mask as primary input: the same conv reads it
    assert receptive_field(Inpaint(), ((2, 3, 16, 16), (2, 1, 16, 16)), input=1).size == (3, 3)
    with pytest.raises(ValueError, match=r"input=5 names no tensor input"):
        receptive_field(Inpaint(), ((2, 3, 16, 16), (2, 1, 16, 16)), input=5)


def test_checkerboard_and_valid_sizes_of_a_timestep_unet() -> None:
    assert checkerboard(TimestepUNet(), UNET_INPUTS).structural  # k=3, s=2: uneven
    sizes = valid_input_sizes(TimestepUNet(), UNET_INPUTS, sizes=range(8, 20))
    assert sizes == list(range(8, 20))


def test_example_inputs_and_nested_expectations() -> None:
    def example() -> tuple[tuple[object, ...], dict[str, object]]:
        return (torch.randn(2, 4, 16, 16),), {"timestep": torch.tensor([3, 999])}

    result = trace(TimestepUNet(), example_inputs=example)
    assert result.inputs is not None
    timestep = dict(result.inputs.kwargs)["timestep"]
    assert (timestep.low, timestep.high) == (3, 1000)  # integer ranges read off the values

    class Outputs(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return x, {"pooled": x.mean((2, 3))}

    assert_output_shape(Outputs(), (2, 3, 8, 8), [(2, 3, 8, 8), {"pooled": (2, 3)}])
    with pytest.raises(AssertionError, match=r"\['pooled'\] 2×3"):
        assert_output_shape(Outputs(), (2, 3, 8, 8), [(2, 3, 8, 8), {"pooled": (2, 4)}])


def test_a_missing_input_names_the_parameter() -> None:
    with pytest.raises(ModelRunError, match=r"needs 1 more input.*mask"):
        trace(Inpaint(), (2, 3, 16, 16))


def test_bad_descriptions_are_refused_with_a_fix() -> None:
    with pytest.raises(TypeError, match="fix:"):
        trace(Inpaint(), "nonsense")
    with pytest.raises(ValueError, match="unknown dtype"):
        Input((2,), dtype="int65")


@pytest.mark.parametrize(
    "line", [textwrap.dedent("2,3,16,16;2,1,16,16"), "image=2,3,16,16;mask=2,1,16,16"]
)
def test_config_one_line_forms_match_the_table_forms(line: str) -> None:
    from pytest_convcheck.config import model_from_table

    config = model_from_table("m", {"factory": "a:B", "input": line}, "here")
    assert config.input_shape == (2, 3, 16, 16)
    assert config.inputs is not None
