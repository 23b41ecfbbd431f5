"""PyTorch's own test samples against the rule table and the trace.

Every OpInfo (sample and error inputs) and ModuleInfo of an op family in the
rule table, in float32 on the CPU: the trace gives torch's output shapes where
torch runs, refuses with an exported error where torch raises, and never
crashes. The walk (``tests/opinfo_walk.py``) runs in a subprocess: importing
``torch.testing._internal`` disables torch's global backend flags and loads its
own hypothesis profile, which must not leak into this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest")

WALK = Path(__file__).with_name("opinfo_walk.py")


@pytest.fixture(scope="module")
def walk() -> dict:
    done = subprocess.run(
        [sys.executable, str(WALK), "--json"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(findings: list[str]) -> str:
    more = len(findings) - 30
    return "\n".join(findings[:30]) + (f"\n… and {more} more" if more > 0 else "")


def test_every_family_of_the_rule_table_is_walked(walk: dict) -> None:
    for expected in (
        "nn.functional.conv2d",
        "nn.functional.conv_transpose3d",
        "nn.functional.max_pool2d",
        "nn.functional.avg_pool3d",
        "nn.functional.adaptive_max_pool2d",
        "nn.functional.fractional_max_pool3d",
        "nn.functional.max_unpool2d",
        "nn.functional.interpolate",
        "_upsample_bilinear2d_aa",
        "nn.functional.pixel_shuffle",
        "nn.functional.unfold",
        "nn.functional.pad",
        "constant_pad_nd",
        "__getitem__",
        "narrow",
        "unfold",
        "nn.functional.linear",
        "matmul",
        "bmm",
        "baddbmm",
        "einsum",
        "nn.functional.scaled_dot_product_attention",
        "flatten",
        "nn.functional.group_norm",
        "nn.functional.glu",
    ):
        assert expected in walk["ops"], f"{expected} is not walked"
    for module in ("Conv3d", "ConvTranspose2d", "MaxPool2d", "InstanceNorm2d", "CircularPad3d"):
        assert module in walk["modules"]
    assert len(walk["modules"]) >= 75


def test_every_sample_and_error_input_gets_torchs_verdict(walk: dict) -> None:
    assert walk["samples"] > 4000 and walk["error_inputs"] > 100
    assert walk["module_inputs"] > 250
    assert not walk["findings"], _report(walk["findings"])
