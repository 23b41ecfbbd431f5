"""Shared test configuration: hypothesis profiles.

``ci`` (the default) runs 2,000 derandomised examples per property; ``dev`` runs
200 for a quick edit loop; ``deep`` runs ``CONVCHECK_DEEP_EXAMPLES`` (default
10,000) fresh random examples per property, for a one-off fuzz::

    HYPOTHESIS_PROFILE=deep pytest tests/test_layers_property.py -n 2 \
        -p no:cacheprovider --hypothesis-show-statistics
"""

from __future__ import annotations

import os

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
settings.register_profile("ci", max_examples=1000, **_COMMON)
settings.register_profile("dev", max_examples=200, **_COMMON)
settings.register_profile(
    "deep",
    max_examples=int(os.environ.get("CONVCHECK_DEEP_EXAMPLES", "10000")),
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=_COMMON["suppress_health_check"],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
