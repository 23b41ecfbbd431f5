"""Pictures of failed checks (the ``plots`` extra). Importing this module never
imports matplotlib; :func:`pyplot` does, with a clear error without it.

The figures are ``matplotlib.figure.Figure`` objects on their own Agg canvas: no
``matplotlib.use`` and no pyplot, so drawing a picture never switches the
process's backend or leaves a figure in pyplot's list of open figures.
"""

from __future__ import annotations

from typing import Any


class _Figures:
    """The two pyplot calls the pictures use, on free-standing Agg figures."""

    def __init__(self, figure_class: Any, canvas_class: Any) -> None:
        self._figure = figure_class
        self._canvas = canvas_class

    def figure(self, figsize: tuple[float, float] | None = None) -> Any:
        figure = self._figure(figsize=figsize)
        self._canvas(figure)
        return figure

    def subplots(
        self,
        nrows: int = 1,
        ncols: int = 1,
        *,
        figsize: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Any]:
        figure = self.figure(figsize)
        return figure, figure.subplots(nrows, ncols, **kwargs)

    def close(self, figure: Any) -> None:
        """Nothing to release: the figure is not registered anywhere."""


def pyplot() -> Any:
    """An object with pyplot's ``subplots``, ``figure`` and ``close`` that draws on
    free-standing figures with the Agg canvas (headless, backend untouched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "pictures need matplotlib: pip install 'pytest-convcheck[plots]'"
        ) from error
    return _Figures(Figure, FigureCanvasAgg)
