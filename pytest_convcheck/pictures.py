"""Pictures of failed checks (the ``plots`` extra). Importing this module never
imports matplotlib; :func:`pyplot` does, headless, with a clear error without it."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "pictures need matplotlib: pip install 'pytest-convcheck[plots]'"
        ) from error
    return plt
