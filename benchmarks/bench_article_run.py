"""Benchmark: the wall time of ``pytest --convcheck examples/article``, torch import
and interpreter teardown included, beside what no plugin can avoid.

Variants, alternated run by run (a host that slows down slows all of them):

- **default**: ``pytest --convcheck examples/article -q``;
- **--assert=plain**: the same without pytest's assertion rewriting;
- **-p no:hypothesispytest**: the same without Hypothesis's pytest plugin;
- **import torch**: ``python -c "import torch"``, the floor.

Where Python writes no bytecode (``PYTHONDONTWRITEBYTECODE=1``: this project's dev
machine, many Docker images) pytest cannot cache the modules it rewrites: it
rewrites the asserts of every module of each pytest-plugin distribution it imports,
and Hypothesis's terminal summary imports all of Hypothesis (about 100 modules),
in every run. The script says whether that cache is there.

Run from the repository root: ``python -m benchmarks.bench_article_run [RUNS]``
(default 5 runs of each variant).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARTICLE = [sys.executable, "-m", "pytest", "--convcheck", "examples/article", "-q"]
VARIANTS = {
    "default": ARTICLE,
    "--assert=plain": [*ARTICLE, "--assert=plain"],
    "-p no:hypothesispytest": [*ARTICLE, "-p", "no:hypothesispytest"],
    "import torch": [sys.executable, "-c", "import torch"],
}


def run_once(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def rewrite_cache() -> str:
    """Whether pytest's cache of Hypothesis's rewritten modules exists."""
    import hypothesis

    cached = list(Path(hypothesis.__file__).parent.rglob("*-pytest-*.pyc"))
    return f"{len(cached)} of Hypothesis's modules cached rewritten by pytest"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    run_once(ARTICLE)  # warm the file cache (and, where bytecode is written, pytest's)
    print(
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}; "
        f"{rewrite_cache()}"
    )
    for i in range(runs):
        for name, command in VARIANTS.items():
            times[name].append(run_once(command))
        print(f"run {i + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()))
    for name, t in times.items():
        print(f"{name}: best {min(t):.2f} s, median {statistics.median(t):.2f} s over {runs} runs")


if __name__ == "__main__":
    main()
