"""`FigureEntry`: what the registry holds for one figure (compute, axes, draw, availability)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from matplotlib.figure import Figure

__all__ = ["FigureEntry"]

D = TypeVar("D")  # the figure's data
A = TypeVar("A")  # the axes its draw function takes: one Axes, an array of them, or a dict


def _available() -> str | None:
    """Return None: the figure runs on any machine."""
    return None


@dataclass(frozen=True)
class FigureEntry(Generic[D, A]):
    """One figure: how to compute its data, lay out its axes, draw it, and whether it can run.

    `compute(quick=...)` returns the data (from the project's own code, seeded); `axes(data)`
    makes a fresh figure with the axes the data needs; `draw(data, axes)` draws and returns the
    figure those axes belong to. `unavailable()` returns why the figure cannot be made on this
    machine (e.g. no CUDA device), or None.
    """

    compute: Callable[..., D]
    axes: Callable[[D], A]
    draw: Callable[[D, A], Figure]
    summary: str
    unavailable: Callable[[], str | None] = _available
