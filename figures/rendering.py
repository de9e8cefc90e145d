"""Figure creation and deterministic saving: one style, PNG for the README, SVG as the vector copy.

Nothing here touches pyplot: figures are `matplotlib.figure.Figure` objects with an Agg canvas, and
the style is applied with `matplotlib.rc_context` around drawing and saving only.

Stable bytes: the PNG drops its 'Software' entry (the matplotlib version string), the SVG its 'Date'
and its element ids are salted with a fixed `svg.hashsalt` (otherwise a random UUID per process).
With those, the same data on the same matplotlib and FreeType give the same files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FORMATS", "STYLE", "new_figure", "save_figure", "style"]

FORMATS = ("png", "svg")

STYLE: dict[str, object] = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "svg.fonttype": "path",  # text as outlines: the SVG renders without the font installed
    "svg.hashsalt": "conv-as-attention-figures",
}

_METADATA: dict[str, dict[str, None]] = {"png": {"Software": None}, "svg": {"Date": None}}


@contextmanager
def style() -> Iterator[None]:
    """Yield with the project's figure style in force (fonts, sizes, svg salt); restore after."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """Return an empty `Figure` of `width`×`height` inches on an Agg canvas.

    `layout=None` for figures positioned by hand: constrained layout of nested subfigures is not
    bit-reproducible (see `figures.attention.attention_axes`).
    """
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Return the paths `out_dir/name.{png,svg}` after writing `fig` to them deterministically.

    Each file is written to a temporary name and renamed, so an interrupted run never leaves a
    truncated figure behind.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with style():
        for fmt in FORMATS:
            path = out_dir / f"{name}.{fmt}"
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt])
            os.replace(tmp, path)
            paths.append(path)
    return paths
