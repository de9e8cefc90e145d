"""The figure registry `FIGURES`: name → `FigureEntry`, in the order the figures are numbered.

Adding a figure is one module and one line. The module `figures/x.py` defines

    def compute_x(*, quick: bool) -> XData: ...           # numbers from the project's own code
    def x_axes(data: XData) -> Axes: ...                   # `rendering.new_figure` + its axes
    def draw_x(data: XData, ax: Axes) -> Figure: ...       # draws on `ax`, returns the figure
    ENTRY = FigureEntry(compute_x, x_axes, draw_x, "one-line summary")

and `"x": x.ENTRY,` goes into `FIGURES` below, where the figure belongs in the numbering.
`python -m figures` then writes `x.png` and `x.svg`. An entry whose `unavailable()` gives a reason
(no CUDA device, say) is skipped in a full run and is an error when asked for with `--only`.
Keep files byte-stable: seed every random draw, and lay out nested panels by hand
(`new_figure(..., layout=None)`), since constrained layout with subfigures is not reproducible to
the last bit; then add the name to `DETERMINISTIC` in checks/test_figures.py.
"""

from __future__ import annotations

from typing import Any

from figures import attention, bounds, cost, dimensions, heads, photo, temperature
from figures.entry import FigureEntry

__all__ = ["FIGURES", "FigureEntry"]

FIGURES: dict[str, FigureEntry[Any, Any]] = {
    "heads": heads.ENTRY,  # figure 1
    "attention": attention.ENTRY,  # figure 2
    "temperature": temperature.ENTRY,  # figure 3
    "bounds": bounds.ENTRY,  # figure 4
    "cost": cost.CPU_ENTRY,  # figure 5
    "cost_gpu": cost.GPU_ENTRY,  # figure 5, GPU version (only where CUDA is available)
    "photo": photo.ENTRY,  # figure 6
    "dimensions": dimensions.ENTRY,  # figure 7
}
