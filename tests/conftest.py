"""Shared test configuration: hypothesis profiles.

``ci`` (the default) runs 200 derandomised examples per property: the rule-table
suite (tests/test_layers_property.py, 40 families × dims) then costs about 50 s of
CPU in all (1,000 examples cost several minutes, most of a CI run); ``dev`` runs 50
for a quick edit loop; ``deep`` runs ``CONVCHECK_DEEP_EXAMPLES`` (default 10,000)
fresh random examples per property, for the big runs (a one-off fuzz, the README's
figures)::

    HYPOTHESIS_PROFILE=deep pytest tests/test_layers_property.py -n 2 \
        -p no:cacheprovider --hypothesis-show-statistics
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import _pytest.pytester
import torch
from hypothesis import HealthCheck, settings

# The suite's tensors are tiny: one intra-op thread per process avoids OpenMP
# threads spinning against each other under pytest-xdist on a 2-core machine.
torch.set_num_threads(1)

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
    "derandomize": True,
}
# ci: 200 examples per family and dims keep the property suite at ~50 s of CPU on
# a 2-core CI machine (issue #20); the large runs are the deep profile's.
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("dev", max_examples=50, **_COMMON)
settings.register_profile(
    "deep",
    max_examples=int(os.environ.get("CONVCHECK_DEEP_EXAMPLES", "10000")),
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=_COMMON["suppress_health_check"],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# In-process pytester runs (``runpytest_inprocess``) restore ``sys.modules`` after each
# run and each test, dropping every module imported meanwhile: a torch or matplotlib
# submodule first imported inside a run would be imported again, as a second module
# object, by whichever test comes next (an order-dependent state). Libraries (this
# environment's site-packages, the standard library) and the package under test stay
# loaded, as in any one process; modules of the pytester projects (mymodels, …) are
# still dropped, so no run sees another's. The plugin keeps no state in its modules
# across sessions: its per-run state lives on the config, its caches are cleared at
# session start.
_LIBRARY_ROOTS = tuple(
    str(Path(root).resolve())
    for root in {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        Path(__file__).parents[1] / "pytest_convcheck",
    }
)


@functools.cache
def _library_file(file: str) -> bool:
    return str(Path(file).resolve()).startswith(_LIBRARY_ROOTS)


def _is_library(name: str) -> bool:
    file = getattr(sys.modules.get(name), "__file__", None)
    if file is not None:
        return _library_file(file)
    top = name.partition(".")[0]  # no file (torch._C._nn, a builtin): its package's
    return top in sys.builtin_module_names or (top != name and _is_library(top))


class _LibrariesStayLoaded(_pytest.pytester.SysModulesSnapshot):
    def __init__(self, preserve=None) -> None:
        super().__init__(
            preserve=lambda name: _is_library(name) or bool(preserve and preserve(name))
        )


_pytest.pytester.SysModulesSnapshot = _LibrariesStayLoaded  # type: ignore[misc]
