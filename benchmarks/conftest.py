"""The benchmark suite (``pytest benchmarks``; ``tox -e bench``), not part of the
default test run (``testpaths = ["tests"]``).

``CONVCHECK_BENCH_SLOWDOWN=CASE`` (a case name from ``layer_cases.py``, e.g.
``conv2d_k3``) runs that layer on 1.5× its batch — 1.5× the work under the same
benchmark name. It exists to check the regression workflow: a
comparison with a run saved without it must report that case as a regression.
"""

from __future__ import annotations

import os

import torch

# One core is left to pytest and the system. On this project's 2-core machine two
# intra-op threads made a 1×1 conv's forward + backward take 8.5 ms in one process
# and 19–23 ms in the next; one thread gave 13–15 ms in each of 8 processes.
torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
