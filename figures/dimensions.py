"""Figure 7 ('dimensions'): heads vs kernel size in d = 1, 2, 3 spatial axes, per position vs patch.

One panel per d, the kernel k^d (odd k, dense, dilation 1) against its own token types:

* (a) d = 1, sequences (Conv1d): one token per sample needs |S| = k heads (T1); chunks of P
  samples need |N(S, P)| = 2⌈r/P⌉ + 1 (T2), r = (k − 1)/2: 3 heads while r ≤ P, then 5, 7, ...
* (b) d = 2, images (Conv2d), for reference (figure 1): k² pixel heads, (2⌈r/P⌉ + 1)² on P×P
  patches.
* (c) d = 3, videos (Conv3d): k³ voxel heads; tubelets t×P×P as in ViViT/VideoMAE need
  Π_a (2⌈r/P_a⌉ + 1): 27 for a 3×3×3 kernel on 2×16×16, but the time axis (t = 2) is crossed at
  ⌈r/2⌉ tubelets, so the count keeps growing (27, 45, 63, ...) where 16×16 patches stay at 9.

Lines are T1/T2's sufficient heads, `theory.heads_sufficient`. Markers are T3's necessary heads
for a generic kernel, `theory.heads_necessary`: open with enough channel pairs (C = 1,
D = |N|), where they meet the lines; filled with C = D = 1, where one token per position needs a
single head (s = min(k^d, C·D)) and patch tokens at most the Π_a (2P_a − 1) pixel differences of
a patch (1-D chunks of P = 2: 3 heads, P = 4: 7; 4×4 patches: 49), or fewer where G's zero pattern
says so (k = 19 on 2×8×8 tubelets: 243 of 275). It illustrates T1, T2 (sufficient) and T3
(necessary) of paper_notes, in d = 1, 2, 3 axes. ViT-Base (Dosovitskiy et al., ICLR 2021) has 12
heads per layer, as do the ViT-B of ViViT (Arnab et al., ICCV 2021) and VideoMAE (Tong et al.,
NeurIPS 2022), both on 2×16×16 tubelets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from figures.entry import FigureEntry
from figures.heads import VIT_BASE_HEADS
from figures.rendering import new_figure
from theory import heads_necessary, heads_sufficient

__all__ = ["ENTRY", "DimensionsData", "Panel", "TokenCurve", "compute_dimensions",
           "dimensions_axes", "draw_dimensions"]

# per panel: d, title, the name of one-token-per-position, the patch shapes (P_1, ..., P_d)
PANELS = (
    (1, "(a) d = 1: sequences (Conv1d)", "sample", ((2,), (4,), (16,))),
    (2, "(b) d = 2: images (Conv2d), as figure 1", "pixel", ((4, 4), (16, 16))),
    (3, "(c) d = 3: videos (Conv3d)", "voxel", ((2, 8, 8), (2, 16, 16))),
)
_NOUNS = {1: "chunks", 2: "patches", 3: "tubelets"}


@dataclass(frozen=True)
class TokenCurve:
    """One token type's heads against k: T1/T2 sufficient, T3 necessary with two channel counts."""

    patch_size: tuple[int, ...] | None  # None: one token per sample, pixel or voxel
    sufficient: np.ndarray  # (len(kernel_sizes),) |S| or |N(S, P)|
    necessary_wide: np.ndarray  # T3 with C = 1, D = |N|: meets `sufficient`
    necessary_single: np.ndarray  # T3 with C = D = 1


@dataclass(frozen=True)
class Panel:
    """The curves of one number of spatial axes d."""

    dims: int
    title: str
    position: str  # "sample", "pixel" or "voxel"
    curves: tuple[TokenCurve, ...]  # the per-position curve first


@dataclass(frozen=True)
class DimensionsData:
    """Heads against the kernel size k (cube k^d) for d = 1, 2, 3."""

    kernel_sizes: np.ndarray  # odd k
    panels: tuple[Panel, ...]
    vit_heads: int


def _curve(kernel_sizes: np.ndarray, dims: int, patch: tuple[int, ...] | None) -> TokenCurve:
    """Return the T1/T2 and T3 counts of the k^d kernel on one token type (patch or positions)."""
    shapes = [(int(k),) * dims for k in kernel_sizes]
    sufficient = np.array([heads_sufficient(k, patch) for k in shapes])
    wide = [heads_necessary(k, patch, out_channels=int(n)) for k, n in zip(shapes, sufficient,
                                                                          strict=True)]
    single = [heads_necessary(k, patch) for k in shapes]
    return TokenCurve(patch, sufficient, np.array(wide), np.array(single))


def compute_dimensions(*, quick: bool = False) -> DimensionsData:
    """Return T1/T2 sufficient and T3 necessary heads of odd k ≤ 33 (≤ 17 quick) for d = 1, 2, 3
    on one token per position and on the patch shapes of `PANELS`. T1–T3."""
    kernel_sizes = np.arange(1, 18 if quick else 34, 2)
    panels = tuple(
        Panel(d, title, position,
              tuple(_curve(kernel_sizes, d, patch) for patch in (None, *patches)))
        for d, title, position, patches in PANELS
    )  # fmt: skip
    return DimensionsData(kernel_sizes, panels, VIT_BASE_HEADS)


def dimensions_axes(data: DimensionsData) -> np.ndarray:
    """Return three side-by-side axes (d = 1, 2, 3) on a new figure."""
    del data
    fig = new_figure(13.0, 5.6)
    return fig.subplots(1, 3)


_POSITION_COLOUR = "0.1"
# by the patch side across the time/space axes: P = 16 purple in every panel, as in figure 1
_PATCH_COLOURS = {2: "tab:orange", 4: "tab:green", 8: "tab:red", 16: "tab:purple"}
_YTICKS = {1: [1, 3, 5, 7, 9, 12, 17, 25, 33], 2: [1, 9, 25, 49, 81, 289, 1089],
           3: [1, 27, 45, 81, 275, 729, 4913, 35937]}


def _vit_line(ax: Axes, heads: int, models: str, x: float, ha: str) -> None:
    """Draw the models' head count as a dashed line, labelled just above it at data x."""
    ax.axhline(heads, color="tab:blue", linestyle="--", linewidth=1.0, zorder=1)
    ax.annotate(f"{models}: {heads} heads", (x, heads), xytext=(0, 2), textcoords="offset points",
                ha=ha, va="bottom", fontsize=7.5, color="tab:blue")


def _patch_name(patch: tuple[int, ...]) -> str:
    """Return 'P = 4' (1-D) or '2×16×16' style text for a patch shape."""
    return f"P = {patch[0]}" if len(patch) == 1 else "×".join(str(p) for p in patch)


def _draw_panel(panel: Panel, k: np.ndarray, vit_heads: int, ax: Axes) -> None:
    """Draw one panel: sufficient heads (lines), T3 necessary heads (open and filled markers)."""
    d = panel.dims
    plot = ax.plot if d == 1 else ax.semilogy
    for i, curve in enumerate(panel.curves):
        if curve.patch_size is None:
            colour, width, z, steps = _POSITION_COLOUR, 1.6, 4.0, "default"
            power = "k" if d == 1 else f"$k^{d}$"
            label = f"one token per {panel.position}: |S| = {power} (T1)"
        else:  # larger patches wider and underneath: shared plateaus show every colour
            colour, width, z = _PATCH_COLOURS[curve.patch_size[-1]], 0.9 + 0.9 * i, 3.0 - 0.1 * i
            steps = "steps-mid"
            label = f"{_NOUNS[d]} {_patch_name(curve.patch_size)}" + (
                ": |N(S, P)| (T2)" if i == 1 else "")
        plot(k, curve.sufficient, color=colour, linewidth=width, drawstyle=steps,
             zorder=z, label=label)
        plot(k, curve.necessary_wide, linestyle="none", marker="o", markersize=4.5,
             markerfacecolor="white", markeredgecolor=colour, zorder=5)
        plot(k, curve.necessary_single, linestyle="none", marker="o", markersize=2.6,
             color=colour, zorder=6)
    plot([], [], linestyle="none", marker="o", markersize=4.5, markerfacecolor="white",
         markeredgecolor="0.3", label="necessary (T3), generic, C = 1, D = |N|")
    plot([], [], linestyle="none", marker="o", markersize=2.6, color="0.3",
         label="necessary (T3), generic, C = D = 1")
    if d == 1:  # left of the diagonal: the chunk curves pass 12 on the right
        _vit_line(ax, vit_heads, "ViT-Base", k[0], "left")
    else:
        _vit_line(ax, vit_heads, "ViT-Base" + (", ViViT, VideoMAE" if d == 3 else ""), k[-1],
                  "right")
    top = max(int(c.sufficient.max()) for c in panel.curves)
    ticks = [t for t in _YTICKS[d] if t <= top]
    if d == 1:
        ax.set_ylim(0, top + 2)
        ax.set_yticks(ticks)
    else:
        ax.set_ylim(0.7, 2.0 * top)
        ax.yaxis.set_ticks(ticks, labels=[str(t) for t in ticks])
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(k[::2] if len(k) > 9 else k)
    ax.set_xlim(0, k[-1] + 1)
    ax.set_xlabel("kernel size k (odd, dilation 1)")
    ax.set_title(panel.title)
    ax.grid(True, which="major", color="0.92", linewidth=0.6)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)


def _annotate(data: DimensionsData, axes: np.ndarray) -> None:
    """Write the panels' notes: the plateaus, the C = D = 1 caps, the tubelets' time reach."""
    k = data.kernel_sizes
    chunk = data.panels[0].curves[1]  # P = 2
    axes[0].annotate(f"chunks: {int(chunk.sufficient[1])} heads while r = (k−1)/2 ≤ P,\n"
                     "then 5 while r ≤ 2P, 7, …\nC = D = 1: at most 2P − 1 heads "
                     f"(P = 2: {int(chunk.necessary_single.max())})",
                     (k[0], 0.95 * k[-1]), ha="left", va="top", fontsize=7.5, color="0.3")
    patch = data.panels[1].curves[1]  # 4×4
    if patch.necessary_single[-1] < patch.sufficient[-1]:
        axes[1].annotate(f"4×4, C = D = 1: at most\n(2P − 1)² = {int(patch.necessary_single[-1])}",
                         (k[-1], 0.8 * patch.necessary_single[-1]), ha="right", va="top",
                         fontsize=7.5, color="0.3")
    cube = data.panels[2].curves[2]  # 2×16×16
    axes[2].annotate(f"3×3×3 on 2×16×16: {int(cube.sufficient[1])} heads; the time\n"
                     "reach ⌈r/2⌉ (tubelets of 2 frames) grows\nwith k: "
                     + ", ".join(str(int(n)) for n in cube.sufficient[1:8:2]) + ", … heads",
                     (k[-1], 1.6), ha="right", va="bottom", fontsize=7.5, color="0.3")


def draw_dimensions(data: DimensionsData, axes: np.ndarray) -> Figure:
    """Return the figure: heads vs k for d = 1, 2, 3 (T1/T2 lines, T3 markers)."""
    for panel, ax in zip(data.panels, axes, strict=True):
        _draw_panel(panel, data.kernel_sizes, data.vit_heads, ax)
    axes[0].set_ylabel("heads for an exact convolution with a $k^d$ kernel")
    _annotate(data, axes)
    fig = axes[0].get_figure(root=True)
    fig.suptitle("Heads an MHSA layer needs to compute a convolution exactly in d = 1, 2, 3 axes: "
                 "one token per position ($k^d$) vs chunks, patches, tubelets")
    return fig


ENTRY = FigureEntry(
    compute_dimensions, dimensions_axes, draw_dimensions,
    "heads vs kernel size in 1-D (chunks), 2-D (patches), 3-D (tubelets) against k^d (T1–T3)",
)  # fmt: skip
