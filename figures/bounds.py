"""Figure 4 ('bounds'): error of the best N_h-head layer vs N_h, floor and fit, pixel and patch.

Shows T3's numerical evidence: one random circular 5×5 convolution (C = D = 8, so
C·D ≥ k² and the pixel bound is the full k² = 25), seen through pixel tokens (s = 25) and through
4×4 patch tokens (s = |N| = 9). For N_h = 1 … s + 1, from `theory.floors`:

* the Eckart–Young floor √(Σ_{i>N_h} σ_i²) of the stacked blocks [vec M_Δ]_Δ
  (`eckart_young_floor`): no layer of paper_notes (Conventions) has a smaller linearisation error;
* `fit_heads`: N_h position-only heads fitted by gradient descent (variable projection, Adam then
  LBFGS; best of a few seeded starts), built into a `RelPosMHSA`; its linearisation error
  √Σ_Δ ‖J_Δ − M_Δ‖_F² and its output error on held-out white-noise images.

All errors are relative (divided by √Σ_Δ ‖M_Δ‖_F², or by ‖conv(x)‖ for the output). The output
error estimates the same quantity as the linearisation error on `HELD_OUT` images (the fitted layer
is itself a circular convolution), so, unlike that one, it can dip slightly below the floor. The
floor is exactly 0 from N_h = s on and the fitted errors are float64 rounding there, so the log
axis shows max(error, 10⁻¹⁶).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from figures.entry import FigureEntry
from figures.rendering import new_figure
from theory import head_bounds
from theory.floors import FitResult, fit_heads

__all__ = ["ENTRY", "BoundsData", "BoundsPanel", "bounds_axes", "compute_bounds", "draw_bounds"]

SEED = 4
KERNEL_SIZE = 5
CHANNELS = 8  # C = D: C·D = 64 ≥ k², so the pixel bound is k²
PATCH_SIZE = 4
PIXEL_IMAGE = 8  # an 8×8 pixel grid for the k = 5 pixel layer
PATCH_IMAGE = 16  # a 4×4 grid of 4×4 patches
HELD_OUT = 4  # white-noise images for the output error
ZERO_FLOOR = 1e-16  # what an exact zero is drawn at on the log axis (the y label says so)


@dataclass(frozen=True)
class BoundsPanel:
    """Floor and fitted errors against N_h = 1 … s + 1 for one token type."""

    title: str
    patch_size: int | None
    offsets: int  # |S| or |N(S, P)|: the heads of T1/T2
    span_dim: int  # s (T3), exact rank of the coefficient matrix
    num_heads: np.ndarray  # 1 … s + 1
    floor: np.ndarray  # Eckart–Young floor / scale
    linear_error: np.ndarray  # fitted layer's linearisation error / scale (best start)
    output_error: np.ndarray  # fitted layer's output error on held-out inputs (same start)


@dataclass(frozen=True)
class BoundsData:
    """The two panels and what they were computed on."""

    kernel_size: int
    channels: int
    steps: int  # Adam steps (and LBFGS iterations) per fit
    starts: int  # seeded starts per N_h, the best linearisation error kept
    panels: tuple[BoundsPanel, ...]


def _panel(conv: nn.Conv2d, patch_size: int | None, image_size: int, title: str, steps: int,
           starts: int) -> BoundsPanel:
    """Return the `BoundsPanel` of `conv` seen through pixel (None) or P×P patch tokens."""
    bounds = head_bounds(kernel=conv, patch_size=patch_size)
    s = bounds.span_dim
    num_heads = np.arange(1, s + 2)
    floor, linear, output = (np.empty(len(num_heads)) for _ in range(3))
    for i, n in enumerate(num_heads.tolist()):
        fits: list[FitResult] = [
            fit_heads(conv, n, image_size, patch_size, steps=steps, batch=HELD_OUT, seed=seed)
            for seed in range(starts)
        ]
        best = min(fits, key=lambda r: r.linear_error)
        assert best.span_dim == s
        floor[i] = best.floor / best.scale
        linear[i] = best.linear_error / best.scale
        output[i] = best.output_error
    return BoundsPanel(title, patch_size, bounds.offsets, s, num_heads, floor, linear, output)


def compute_bounds(*, quick: bool = False) -> BoundsData:
    """Return floors and fits for N_h = 1 … s + 1 of one circular k = 5, C = D = 8 convolution,
    pixel tokens (s = 25) and 4×4 patch tokens (s = 9). T3 (numerical evidence)."""
    steps, starts = (40, 1) if quick else (300, 3)
    generator = torch.Generator().manual_seed(SEED)
    conv = nn.Conv2d(CHANNELS, CHANNELS, KERNEL_SIZE, padding="same", padding_mode="circular",
                     dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator, dtype=torch.float64))
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator, dtype=torch.float64))
    panels = (
        _panel(conv, None, PIXEL_IMAGE, "pixel tokens", steps, starts),
        _panel(conv, PATCH_SIZE, PATCH_IMAGE, f"{PATCH_SIZE}×{PATCH_SIZE} patch tokens", steps,
               starts),
    )
    return BoundsData(KERNEL_SIZE, CHANNELS, steps, starts, panels)


def bounds_axes(data: BoundsData) -> np.ndarray:
    """Return a 2×n grid of axes: a column per panel (widths in proportion to their N_h ranges),
    linear error scale on top, logarithmic below; columns share N_h, rows share the error."""
    fig = new_figure(10.0, 6.6)
    widths = [len(p.num_heads) + 4 for p in data.panels]
    return fig.subplots(2, len(data.panels), sharex="col", sharey="row", width_ratios=widths,
                        height_ratios=[1.0, 1.25])


def _ticks(n: np.ndarray, s: int) -> list[int]:
    """Return the N_h ticks: every one up to 12 heads, else 1, multiples of 5 and s."""
    if len(n) <= 12:
        return n.tolist()
    return sorted({1, s, *(t for t in range(5, n[-1] + 1, 5) if abs(t - s) > 2)})


def _draw_panel(ax: Axes, panel: BoundsPanel, log: bool) -> None:
    """Draw one panel: floor (staircase), fitted errors (markers), s as a vertical line."""
    n, s = panel.num_heads, panel.span_dim
    show = (lambda err: np.maximum(err, ZERO_FLOOR)) if log else (lambda err: err)
    ax.set_yscale("log" if log else "linear")
    ax.axvspan(n[0] - 0.5, s - 0.5, color="0.96", zorder=0, label="$N_h < s$: no exact layer")
    ax.plot(n, show(panel.floor), color="0.2", linewidth=1.6, drawstyle="steps-mid",
            label="Eckart–Young floor: no linearisation does better", zorder=2)
    ax.plot(n, show(panel.linear_error), linestyle="none", marker="o", markersize=4.5,
            markerfacecolor="none", markeredgecolor="tab:blue", markeredgewidth=1.1,
            label="fitted layer: linearisation error", zorder=3)
    ax.plot(n, show(panel.output_error), linestyle="none", marker="x", markersize=4,
            color="tab:orange", label="fitted layer: output error on held-out inputs", zorder=4)
    ax.axvline(s, color="tab:red", linestyle="--", linewidth=1.0, zorder=1)
    if log:
        ax.axhline(ZERO_FLOOR, color="0.75", linewidth=0.8, zorder=0)
        ax.annotate(f"s = {s}", (s, 1e-6), xytext=(3, 0), textcoords="offset points", ha="left",
                    va="center", color="tab:red", fontsize=8.5)
        ax.set_xlabel("number of heads $N_h$")
    else:
        tokens = "|S|" if panel.patch_size is None else "|N(S, P)|"
        ax.set_title(f"{panel.title}: s = {s} ({tokens} = {panel.offsets})")
    ax.set_xlim(n[0] - 0.7, n[-1] + 0.7)
    ax.set_xticks(_ticks(n, s))
    ax.grid(True, which="major", axis="y", color="0.92", linewidth=0.6)


def draw_bounds(data: BoundsData, axes: np.ndarray) -> Figure:
    """Return the figure: relative error vs N_h per token type (columns), on a linear scale (top)
    and a log scale (bottom): floor and fitted layer, s marked."""
    for column, panel in enumerate(data.panels):
        _draw_panel(axes[0, column], panel, log=False)
        _draw_panel(axes[1, column], panel, log=True)
    axes[0, 0].set_ylabel("relative error")
    axes[0, 0].set_ylim(-0.03, 1.05)
    axes[1, 0].set_ylabel("relative error, log scale\n(exact 0 drawn at $10^{-16}$)")
    axes[1, 0].set_ylim(3e-17, 3.0)
    axes[1, 0].legend(loc="lower left", frameon=True, framealpha=0.95, edgecolor="none")
    fig = axes[0, 0].get_figure(root=True)
    k, c = data.kernel_size, data.channels
    fits = "fit" if data.starts == 1 else "fits"
    fig.suptitle(f"Below s heads no MHSA layer is exact (T3): one random circular {k}×{k} "
                 f"convolution, C = D = {c}\nbest of {data.starts} seeded {fits} per $N_h$ "
                 f"({data.steps} Adam steps + LBFGS); errors relative to the convolution")
    return fig


ENTRY = FigureEntry(
    compute_bounds, bounds_axes, draw_bounds,
    "error vs number of heads: Eckart–Young floor and fitted layer, pixel and patch input",
)  # fmt: skip
