"""Snapshots of the ten article models' reports (syrupy, ConvReportExtension), and
the properties that make them good snapshots: stable, device-independent.

The snapshots are the ones ``pytest --convcheck examples/article`` checks, in
``__snapshots__/convcheck/NAME.json`` at the repository root (the plugin's store):
one store for both, byte-identical by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from examples.article import MODELS
from pytest_convcheck import report
from pytest_convcheck.snapshots import ConvReportExtension, compare_snapshot

ARTICLE_STORE = Path(__file__).parents[1] / "__snapshots__" / "convcheck"


class ArticleStore(ConvReportExtension):
    """ConvReportExtension reading and writing the plugin's store: the snapshot of
    ``test_article_model_report[NAME]`` is ``__snapshots__/convcheck/NAME.json``."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(ARTICLE_STORE)

    @classmethod
    def get_snapshot_name(cls, *, test_location, index=0) -> str:
        return test_location.nodename.partition("[")[2].removesuffix("]")

    @classmethod
    def matches_test_location(cls, *, test_location, snapshot_location: str) -> bool:
        # the store's files belong to this test file (syrupy's unused-snapshot report)
        return (
            Path(snapshot_location).parent == ARTICLE_STORE
            and test_location.basename == Path(__file__).stem
        )


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(ArticleStore)


@pytest.mark.parametrize("section", list(MODELS))
def test_article_model_report(section: str, snapshot_json) -> None:
    factory, shape = MODELS[section]
    assert report(factory(), shape) == snapshot_json


def test_report_text_is_stable_and_weight_independent() -> None:
    factory, shape = MODELS["s04_checkerboard_fix"]
    torch.manual_seed(0)
    first = report(factory(), shape).to_json()
    torch.manual_seed(1)
    model = factory()
    assert report(model, shape).to_json() == first  # other weights, same text
    assert report(model.double(), shape).to_json() == first.replace('"float', '"float')
    data = json.loads(first)
    assert data["checkerboard"]["structural"] is False
    assert data["output_shape"] == [1, 1, 12, 12]


def test_a_changed_architecture_shows_as_a_diff(tmp_path) -> None:
    factory, shape = MODELS["s05_feature_visualisation"]
    path = tmp_path / "s05.json"
    assert compare_snapshot(path, report(factory(), shape).to_json(), update=False) is not None
    assert compare_snapshot(path, report(factory(), shape).to_json(), update=True) is None
    assert compare_snapshot(path, report(factory(), shape).to_json(), update=False) is None
    model = factory()
    model.up2 = nn.ConvTranspose2d(10, 1, 3, stride=2)  # a 3×3/s2 upsampler instead
    problem = compare_snapshot(path, report(model, shape).to_json(), update=False)
    assert problem is not None
    assert '-  "output_shape": [1, 1, 16, 16],' in problem
    assert '+  "output_shape": [1, 1, 17, 17],' in problem
    assert "--snapshot-update" in problem


def test_report_does_not_touch_the_model() -> None:
    factory, shape = MODELS["s10_conv_reuse"]
    model = factory().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    r = report(model, shape)
    assert model.training and all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert r.sharing.reused == {"conv3": 2} and r.flops == 150_220
    assert "reused modules: conv3 ×2" in str(r)


def test_field_cell_gives_one_stride_when_all_axes_agree_and_each_otherwise() -> None:
    from pytest_convcheck.reports import field_text

    cell = {"size": [212, 212], "stride": [32, 32], "whole": [False, False], "holes": False}
    assert field_text(cell) == "212×212 (stride 32)"
    video = {"size": [8, 32, 32], "stride": [8, 32, 32], "whole": [True] * 3, "holes": False}
    assert field_text(video) == "all×all×all (stride 8×32×32)"
    mixed = {"size": [5, 9], "stride": [2, 2], "whole": [False, False], "holes": True}
    assert field_text({**mixed, "stride": [2, 1]}) == "5×9 (stride 2×1) HOLES"


def test_report_sections_are_typed_and_read_back_from_their_json() -> None:
    from pytest_convcheck.reports import CheckerboardSummary, FieldSummary
    from pytest_convcheck.weight_sharing import sharing

    for factory, shape in MODELS.values():
        r = report(factory(), shape)
        data = r.to_dict()
        # the summary table renders the JSON with the report's own renderers
        assert str(FieldSummary.from_dict(data["receptive_field"])) == r.field_text
        assert str(CheckerboardSummary.from_dict(data["checkerboard"])) == r.checkerboard_text
        # the table's FLOPs column sums to what the sharing analysis counts per forward
        assert r.flops == data["flops"] == sharing(factory(), shape).flops
        assert r.parameters == data["parameters"] == r.sharing.unique_parameters
        # the dict form README.md shows still reads each section
        assert r.checkerboard["structural"] is r.checkerboard.structural
        assert r.receptive_field["whole"] == list(r.receptive_field.whole)
        assert r.sharing["reused"] == r.sharing.reused
