"""Which device a run (or an xdist worker) uses. Importing this module never imports
torch; the functions do.

``--convcheck-device cuda`` on a machine with several GPUs pins each
pytest-xdist worker to one of them: worker ``gwN`` gets ``cuda:{N mod count}``,
so ``pytest -n 4 --convcheck-device cuda`` on four GPUs runs one worker per GPU.
An explicit index (``cuda:1``) is used as given.
"""

from __future__ import annotations

import os

from pytest_convcheck.errors import DeviceUnavailable

__all__ = ["DeviceUnavailable", "default_device", "resolve_device", "worker_index"]


def worker_index() -> int:
    """The pytest-xdist worker number (``gw3`` → 3); 0 outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = name.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


def resolve_device(requested: str) -> str:
    """``requested`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``) as a concrete device for
    this process; :class:`DeviceUnavailable` (with the reason) when it is not here,
    ``ValueError`` for a name that is no device."""
    import torch

    kind, _, index = requested.partition(":")
    if kind == "cpu":
        return "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"device {requested!r} requested, but torch {torch.__version__} sees no CUDA "
                f"device (torch.cuda.is_available() is False; a CPU-only build has version "
                f"suffix +cpu)"
            )
        count = torch.cuda.device_count()
        if index:
            if not index.isdigit() or int(index) >= count:
                raise DeviceUnavailable(
                    f"device {requested!r} requested, but this machine has {count} CUDA "
                    f"device(s): cuda:0 … cuda:{count - 1}"
                )
            return requested
        return f"cuda:{worker_index() % count}"
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceUnavailable(f"device {requested!r} requested, but MPS is not available")
        return "mps"
    raise ValueError(
        f"unknown device {requested!r}; use cpu, cuda, cuda:N or mps (--convcheck-device)"
    )


def default_device() -> str:
    """This worker's GPU when CUDA is available (one per xdist worker), else ``cpu``."""
    import torch

    return resolve_device("cuda") if torch.cuda.is_available() else "cpu"
