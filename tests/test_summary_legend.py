"""The summary table defines its words (a legend under it), keeps the sharing column
short, and never says "even" alone where a checkerboard check failed (issue #19)."""

from __future__ import annotations

from pytest_convcheck.summary_table import (
    LEGEND,
    SHARING_WIDTH,
    checkerboard_cell,
    legend,
    sharing_text,
)

EVEN = {"structural": False, "output_imbalance": 1.0, "upsampling_layers": [{"imbalance": 1}]}


def row(field: str = "3×3 (stride 1)", board: str = "even", sharing: str = "—") -> tuple:
    return ("net", "1×1×8×8", field, board, sharing, "10", "1 k", "—")


def test_the_legend_defines_the_words_the_table_uses_and_no_others() -> None:
    lines = legend([row("all×all (stride 28)", "UNEVEN ×9", "ALIAS a=b, 1 tied")])
    text = "\n".join(lines)
    assert lines[0] == "legend:"
    assert "all: the output sees the whole input along that axis" in text
    assert "UNEVEN ×R: kernel taps per output phase, max/min, at the worst layer" in text
    assert "a failure lists each layer's own imbalance" in text  # ×9 vs a layer's 4
    assert "JSON: output_imbalance" in text
    assert "ALIAS a=b: one module instance under several names" in text
    assert "N tied" in text
    assert "HOLES" not in text and "WEIGHTS" not in text and "norm stats" not in text
    assert "(1/4: four output steps per input pixel)" in text  # "stride 1/4" explained


def test_the_full_legend_covers_every_word() -> None:
    lines = legend([row()], everything=True)
    assert len(lines) == 1 + len(LEGEND)


def test_the_checkerboard_cell_shows_failed_weight_and_spectral_kinds() -> None:
    findings = {"checkerboard": {"output": {"figure": "82.9%"}, "weights": {"figure": "0.31"}}}
    cell = checkerboard_cell(EVEN, findings)
    assert cell == "even; OUTPUT 82.9%; WEIGHTS 0.31"
    assert checkerboard_cell(EVEN, {}) == "even"
    text = "\n".join(legend([row(board=cell)]))
    assert "OUTPUT p% / GRADIENT p%: failed kind: spectral energy at the stride" in text
    assert "WEIGHTS s: failed 'weights' kind" in text


def test_the_sharing_column_is_truncated_with_a_count() -> None:
    layers = [{"name": f"blocks.{i}", "parameters": 10} for i in range(60)]
    names = [f"encoder.stage.blocks.{i}" for i in range(60)]
    shared = {"suspicious": [names, ["a", "b"]], "reused": {}, "tied": [["x", "y"]]}
    cell = sharing_text(shared, layers)
    assert len(cell) <= SHARING_WIDTH, cell
    assert cell.startswith("ALIAS encoder.stage.blocks.0=")
    assert "(60 names)" in cell and ", +1 alias, " in cell and cell.endswith("1 tied")
    one_long = {"suspicious": [["x" * 300, "y" * 300]], "reused": {}, "tied": []}
    assert len(sharing_text(one_long, layers)) <= SHARING_WIDTH
    reused = {f"very.long.module.name.number.{i}": 2 for i in range(9)}
    layers = [{"name": n, "parameters": 1} for n in reused]
    cell = sharing_text({"suspicious": [], "reused": reused, "tied": []}, layers)
    assert len(cell) <= SHARING_WIDTH and cell.endswith("+8 reused"), cell
