"""Two saved pytest-benchmark runs side by side: a markdown table and, with the
``plots`` extra (matplotlib), a PNG bar chart of the change per benchmark.

Usage::

    convcheck-bench-compare BASE.json NEW.json [--stat mean] [--threshold 10]
                            [--markdown report.md] [--png report.png]
    convcheck-bench-compare .benchmarks/cpu      # the two newest runs saved there
    convcheck-bench-compare BASE.json NEW.json --regressed   # node ids, to re-run
    convcheck-bench-compare --base B1.json B2.json --new N1.json N2.json  # averaged

(or ``python -m pytest_convcheck.benchmark_comparison …``). The change of a
benchmark is ``new / base − 1`` of ``--stat`` (``mean`` by default, the statistic
of ``--benchmark-compare-fail=mean:10%``); above ``+threshold`` % it is a
regression, below ``−threshold`` % an improvement. Benchmarks are matched by
their full pytest name, as pytest-benchmark matches them.

Runs from different environments (the ``environment`` that ``conv_benchmark``
saves: ``cpu``, ``cuda: <GPU name>``, …) are never compared: the command stops
and names the benchmarks. Exit status: 0 no regression, 1 at least one
regression, 2 the runs could not be compared.

Importing this module never imports torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_convcheck.errors import ComparisonError

__all__ = [
    "Comparison",
    "ComparisonError",
    "Row",
    "compare_runs",
    "load_run",
    "main",
    "merge_runs",
    "saved_environment",
]

STATS = ("mean", "median", "min", "max")


@dataclass(frozen=True)
class Row:
    """One benchmark in both runs; times in seconds."""

    name: str
    fullname: str  # the pytest node id, e.g. benchmarks/test_layers.py::test_layer[…]
    base: float
    new: float
    base_gflops: float | None
    new_gflops: float | None
    verdict: str  # "regression", "improvement" or "same"

    @property
    def change(self) -> float:
        """``new / base − 1``: +0.5 is 50 % slower."""
        return self.new / self.base - 1


@dataclass(frozen=True)
class Comparison:
    base_label: str
    new_label: str
    stat: str
    threshold: float  # percent
    rows: tuple[Row, ...]  # most slowed down first
    only_base: tuple[str, ...]
    only_new: tuple[str, ...]

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict == "regression")

    def markdown(self) -> str:
        """The table, most slowed-down benchmark first, and a one-line verdict."""
        lines = [
            f"## Benchmarks: {self.new_label} against {self.base_label}",
            "",
            f"{self.stat} time per call; a change beyond ±{self.threshold:g} % is a regression "
            f"or an improvement.",
            "",
            "| benchmark | base | new | change | GFLOP/s base → new | verdict |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for row in self.rows:
            rate = (
                f"{row.base_gflops:,.1f} → {row.new_gflops:,.1f}"
                if row.base_gflops is not None and row.new_gflops is not None
                else "—"
            )
            verdict = f"**{row.verdict}**" if row.verdict == "regression" else row.verdict
            lines.append(
                f"| `{row.name}` | {_time(row.base)} | {_time(row.new)} | "
                f"{row.change * 100:+.1f} % | {rate} | {verdict} |"
            )
        improved = sum(r.verdict == "improvement" for r in self.rows)
        same = len(self.rows) - len(self.regressions) - improved
        lines += [
            "",
            f"{len(self.regressions)} regression(s), {improved} improvement(s), {same} within "
            f"±{self.threshold:g} %, of {len(self.rows)} benchmarks in both runs.",
        ]
        if self.only_base:
            lines.append(f"Only in the base run: {', '.join(self.only_base)}.")
        if self.only_new:
            lines.append(f"Only in the new run: {', '.join(self.only_new)}.")
        return "\n".join(lines) + "\n"


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def saved_environment(bench: dict[str, Any]) -> str | None:
    """The ``environment`` a saved benchmark was measured in (``conv_benchmark``
    records it in ``extra_info``); ``None`` for benchmarks that did not record one."""
    environment = bench.get("extra_info", {}).get("environment")
    return None if environment is None else str(environment)


def load_run(path: Path) -> dict[str, Any]:
    """A saved run (``--benchmark-autosave``, ``--benchmark-save`` or
    ``--benchmark-json``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ComparisonError(f"{path}: cannot read a saved benchmark run ({error}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ComparisonError(
            f"{path}: not a pytest-benchmark run (no 'benchmarks' list).\n  fix: pass files "
            f"written by --benchmark-autosave, --benchmark-save or --benchmark-json."
        )
    return data


def newest_runs(folder: Path) -> tuple[Path, Path]:
    """The second newest and the newest run saved under ``folder`` (by their
    ``datetime``)."""
    runs = sorted((str(load_run(p).get("datetime", "")), p) for p in Path(folder).rglob("*.json"))
    if len(runs) < 2:
        raise ComparisonError(
            f"{folder}: holds {len(runs)} saved run(s); two are needed.\n  fix: run the "
            f"benchmarks twice with --benchmark-autosave and this --benchmark-storage."
        )
    return runs[-2][1], runs[-1][1]


def merge_runs(runs: Sequence[dict[str, Any]], stat: str = "mean") -> dict[str, Any]:
    """Several runs of one code as one: per benchmark, ``stat`` averaged over the
    runs that hold it, and GFLOP/s recomputed from it (the other fields from the
    first run). Used for interleaved comparisons, where base and new runs
    alternate in fresh processes."""
    merged: dict[str, dict[str, Any]] = {}
    values: dict[str, list[float]] = {}
    for run in runs:
        for bench in run["benchmarks"]:
            name = bench["fullname"]
            first = merged.setdefault(name, bench)
            if saved_environment(first) != saved_environment(bench):
                raise ComparisonError(
                    f"{name}: the runs to merge were measured in different environments."
                )
            values.setdefault(name, []).append(float(bench["stats"][stat]))
    benchmarks = []
    for name, bench in merged.items():
        average = sum(values[name]) / len(values[name])
        info = dict(bench.get("extra_info", {}))
        if info.get("flops") and stat == "mean":  # the rate of the averaged mean
            info["gflops"] = info["flops"] / average / 1e9
        else:
            info.pop("gflops", None)
        benchmarks.append({**bench, "extra_info": info, "stats": {**bench["stats"], stat: average}})
    return {**(runs[0] if runs else {}), "benchmarks": benchmarks}


def compare_runs(
    base: dict[str, Any],
    new: dict[str, Any],
    *,
    stat: str = "mean",
    threshold: float = 10.0,
    base_label: str = "base",
    new_label: str = "new",
) -> Comparison:
    """Match the benchmarks of two runs by full name and classify each change."""
    if stat not in STATS:
        raise ComparisonError(f"unknown statistic {stat!r}; use one of {', '.join(STATS)}.")
    before = {b["fullname"]: b for b in base["benchmarks"]}
    after = {b["fullname"]: b for b in new["benchmarks"]}
    foreign = [
        f"{name} ({saved_environment(before[name])} → {saved_environment(after[name])})"
        for name in before.keys() & after.keys()
        if saved_environment(before[name]) != saved_environment(after[name])
    ]
    if foreign:
        raise ComparisonError(
            f"{base_label} and {new_label} were measured in different environments, whose "
            f"timings are never compared: {'; '.join(sorted(foreign)[:5])}"
            f"{' …' if len(foreign) > 5 else ''}.\n  fix: compare two runs of one device; "
            f"keep one --benchmark-storage per environment."
        )
    rows = []
    for name in before.keys() & after.keys():
        old_time, new_time = before[name]["stats"][stat], after[name]["stats"][stat]
        change = new_time / old_time - 1
        verdict = (
            "regression"
            if change > threshold / 100
            else "improvement"
            if change < -threshold / 100
            else "same"
        )
        rows.append(
            Row(
                after[name].get("name", name),
                name,
                old_time,
                new_time,
                before[name].get("extra_info", {}).get("gflops"),
                after[name].get("extra_info", {}).get("gflops"),
                verdict,
            )
        )
    rows.sort(key=lambda r: (-r.change, r.name))
    return Comparison(
        base_label,
        new_label,
        stat,
        threshold,
        tuple(rows),
        tuple(sorted(before.keys() - after.keys())),
        tuple(sorted(after.keys() - before.keys())),
    )


def draw(comparison: Comparison, path: Path) -> None:
    """A horizontal bar per benchmark: its change in percent, red beyond the
    threshold (slower), green beyond it the other way, grey within."""
    from pytest_convcheck.pictures import pyplot

    try:
        plt = pyplot()  # a free-standing Agg figure: the backend stays as it is
    except ImportError:
        raise ComparisonError(
            "--png needs matplotlib.\n  fix: pip install 'pytest-convcheck[plots]'"
        ) from None
    rows = comparison.rows[::-1]  # most slowed down at the top
    colours = {"regression": "#c0392b", "improvement": "#27ae60", "same": "#95a5a6"}
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.24 * max(len(rows), 1)))
    axes.barh(
        [r.name for r in rows],
        [r.change * 100 for r in rows],
        color=[colours[r.verdict] for r in rows],
    )
    for x in (-comparison.threshold, comparison.threshold):
        axes.axvline(x, color="black", linestyle="--", linewidth=0.8)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(f"change of the {comparison.stat} time, % (positive = slower)")
    axes.set_title(f"{comparison.new_label} against {comparison.base_label}", fontsize=9)
    axes.tick_params(axis="y", labelsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _label(path: Path, run: dict[str, Any]) -> str:
    commit = str(run.get("commit_info", {}).get("id") or "")[:8]
    return f"{path.name}" + (f" (commit {commit})" if commit else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="convcheck-bench-compare",
        description="Compare two saved pytest-benchmark runs: markdown table, PNG chart.",
    )
    parser.add_argument(
        "runs",
        nargs="*",
        type=Path,
        metavar="RUN",
        help="BASE.json NEW.json, or one storage folder (its two newest runs)",
    )
    parser.add_argument(
        "--base",
        nargs="+",
        type=Path,
        default=[],
        metavar="RUN",
        help="instead of RUN: base runs to average (with --new), e.g. interleaved re-runs",
    )
    parser.add_argument("--new", nargs="+", type=Path, default=[], metavar="RUN")
    parser.add_argument("--stat", default="mean", choices=STATS)
    parser.add_argument(
        "--threshold", type=float, default=10.0, help="percent (default 10, as mean:10%%)"
    )
    parser.add_argument("--markdown", type=Path, help="write the table here (default: stdout)")
    parser.add_argument("--png", type=Path, help="write a bar chart here (plots extra)")
    parser.add_argument(
        "--regressed",
        action="store_true",
        help="print only the full pytest names of the regressed benchmarks, one per line "
        "(to re-run them: pytest $(convcheck-bench-compare … --regressed))",
    )
    args = parser.parse_args(argv)
    try:
        if args.base or args.new:
            if args.runs or not (args.base and args.new):
                raise ComparisonError("give --base RUN… and --new RUN…, and no other runs.")
            base = merge_runs([load_run(p) for p in args.base], args.stat)
            new = merge_runs([load_run(p) for p in args.new], args.stat)
            base_label = f"{len(args.base)} base run(s)"
            new_label = f"{len(args.new)} new run(s)"
        else:
            if len(args.runs) == 1 and args.runs[0].is_dir():
                base_path, new_path = newest_runs(args.runs[0])
            elif len(args.runs) == 2:
                base_path, new_path = args.runs
            else:
                raise ComparisonError(
                    "give two saved runs (BASE.json NEW.json) or one storage folder."
                )
            base, new = load_run(base_path), load_run(new_path)
            base_label, new_label = _label(base_path, base), _label(new_path, new)
        comparison = compare_runs(
            base,
            new,
            stat=args.stat,
            threshold=args.threshold,
            base_label=base_label,
            new_label=new_label,
        )
        text = comparison.markdown()
        if args.regressed:
            print("".join(f"{row.fullname}\n" for row in comparison.regressions), end="")
        elif args.markdown:
            args.markdown.write_text(text, encoding="utf-8")
            print(f"wrote {args.markdown}: {text.splitlines()[-1]}")
        else:
            print(text, end="")
        if args.png:
            draw(comparison, args.png)
            print(f"wrote {args.png}")
    except ComparisonError as error:
        print(f"convcheck-bench-compare: {error}", file=sys.stderr)
        return 2
    return 1 if comparison.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
