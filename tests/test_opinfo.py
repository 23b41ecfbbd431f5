"""PyTorch's own test samples against the rule table and the trace.

Every OpInfo (sample and error inputs) and ModuleInfo of an op family in the
rule table, in float32 on the CPU: the trace gives torch's output shapes where
torch runs, refuses with an exported error where torch raises, and never
crashes. See ``tests/opinfo_walk.py`` (also a script that prints the counts).
"""

from __future__ import annotations

import pytest

pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest")

from opinfo_walk import (
    Tally,
    covered_moduleinfos,
    covered_opinfos,
    walk_module_errors,
    walk_modules,
    walk_ops,
)


def _report(tally: Tally) -> str:
    shown = "\n".join(tally.findings[:30])
    more = len(tally.findings) - 30
    return shown + (f"\n… and {more} more" if more > 0 else "")


def test_every_opinfo_sample_and_error_input_gets_torchs_verdict() -> None:
    ops = covered_opinfos()
    names = {op.name for op in ops}
    # the families the table covers are all walked
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
        assert expected in names, f"{expected} is not walked"
    tally = Tally()
    walk_ops(ops, tally)
    assert tally.samples > 4000 and tally.error_inputs > 100
    assert not tally.findings, _report(tally)


def test_every_moduleinfo_input_gets_torchs_verdict() -> None:
    infos = covered_moduleinfos()
    assert len(infos) >= 75
    tally = Tally()
    walk_modules(infos, tally)
    walk_module_errors(infos, tally)
    assert tally.module_inputs > 250 and tally.error_inputs >= 10
    assert not tally.findings, _report(tally)
