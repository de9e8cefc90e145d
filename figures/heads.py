"""Figure 1 ('heads'): how many heads an exact MHSA convolution needs, pixel against patch input.

Left, T1/T2 against the kernel size k (odd, dense, dilation 1): pixel tokens need |S| = k²
heads, patch tokens |N(S, P)| = (2⌈r/P⌉ + 1)², r = (k − 1)/2: one head for k = 1, then a plateau of
9 heads while the reach r ≤ P (k ≤ 2P + 1), then 25 heads up to r = 2P, 49 up to 3P, ... Every
count is `theory.heads_sufficient`; the markers are `theory.heads_necessary` (T3, generic kernel)
with C·D = |N| channel pairs, where the necessary count meets the sufficient one.

Right, T3 against the number of channel pairs C·D (C = 1, D = C·D: the generic bound depends on
the product only): the necessary count s = rank of the coefficient matrix G, computed exactly by
`theory.heads_necessary` for a random integer witness kernel of each shape. The grey band under
each curve is the closed form of T3 (pixel min(k², C·D), patch min(|N|, (2P−1)²·C·D)),
drawn as a guide only. ViT-Base (Dosovitskiy et al., ICLR 2021) has 12 heads per layer and P = 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from figures.entry import FigureEntry
from figures.rendering import new_figure
from theory import heads_necessary, heads_sufficient

__all__ = ["ENTRY", "HeadsData", "NecessaryCurve", "compute_heads", "draw_heads", "heads_axes"]

VIT_BASE_HEADS = 12  # ViT-Base/16: 12 heads per layer, patch size 16
PATCH_SIZES = (2, 4, 8, 16)
# the right panel's curves: (kernel size, patch size or None for pixel tokens)
NECESSARY_CASES = ((5, None), (5, 2), (7, 2), (9, 2), (13, 2))


@dataclass(frozen=True)
class NecessaryCurve:
    """T3's necessary heads of one kernel size and token type against C·D, and the closed form."""

    kernel_size: int
    patch_size: int | None  # None: pixel tokens
    offsets: int  # |S| or |N(S, P)|: the T1/T2 heads
    necessary: np.ndarray  # (len(channel_products),) from theory.heads_necessary
    formula: np.ndarray  # T3's closed form, for the guide


@dataclass(frozen=True)
class HeadsData:
    """Sufficient and necessary head counts against k (left) and against C·D (right)."""

    kernel_sizes: np.ndarray  # odd k
    pixel_sufficient: np.ndarray  # (len(kernel_sizes),) k²
    pixel_necessary: np.ndarray  # with C·D = k²
    patch_sizes: tuple[int, ...]
    patch_sufficient: np.ndarray  # (len(patch_sizes), len(kernel_sizes)) |N(S, P)|
    patch_necessary: np.ndarray  # with C·D = |N(S, P)|
    channel_products: np.ndarray  # C·D of the right panel
    curves: tuple[NecessaryCurve, ...]
    vit_heads: int


def _formula(kernel_size: int, patch_size: int | None, channel_products: np.ndarray) -> np.ndarray:
    """Return T3's generic s: min(k², C·D) (pixel) or min(|N|, (2P−1)²·C·D) (patch)."""
    P = 1 if patch_size is None else patch_size
    r = (kernel_size - 1) // 2
    offsets = (2 * -(-r // P) + 1) ** 2
    return np.minimum(offsets, (2 * P - 1) ** 2 * channel_products)


def compute_heads(*, quick: bool = False) -> HeadsData:
    """Return T1/T2 sufficient and T3 necessary heads for odd k ≤ 33 (≤ 17 quick) and P ∈
    {2, 4, 8, 16}, and T3's necessary heads against C·D ≤ 64 (≤ 32 quick). T1–T3."""
    kernel_sizes = np.arange(1, 18 if quick else 34, 2)
    channel_products = np.arange(1, 33 if quick else 65)

    def sufficient(patch: int | None) -> np.ndarray:
        return np.array([heads_sufficient(int(k), patch) for k in kernel_sizes])

    def necessary(patch: int | None, offsets: np.ndarray) -> np.ndarray:
        # C = 1, D = |N| channel pairs: enough for the generic rank to reach |N|
        return np.array([heads_necessary(int(k), patch, out_channels=int(n))
                         for k, n in zip(kernel_sizes, offsets, strict=True)])

    pixel = sufficient(None)
    patch = np.stack([sufficient(P) for P in PATCH_SIZES])  # (len(PATCH_SIZES), len(k))
    patch_necessary = np.stack([necessary(P, n) for P, n in zip(PATCH_SIZES, patch, strict=True)])
    curves = []
    for k, P in NECESSARY_CASES:
        counts = np.array([heads_necessary(k, P, out_channels=int(cd)) for cd in channel_products])
        curves.append(NecessaryCurve(k, P, heads_sufficient(k, P), counts,
                                     _formula(k, P, channel_products)))
    return HeadsData(
        kernel_sizes=kernel_sizes,
        pixel_sufficient=pixel,
        pixel_necessary=necessary(None, pixel),
        patch_sizes=PATCH_SIZES,
        patch_sufficient=patch,
        patch_necessary=patch_necessary,
        channel_products=channel_products,
        curves=tuple(curves),
        vit_heads=VIT_BASE_HEADS,
    )


def heads_axes(data: HeadsData) -> np.ndarray:
    """Return two side-by-side axes (heads vs k, necessary heads vs C·D) on a new figure."""
    del data
    fig = new_figure(10.0, 4.4)
    return fig.subplots(1, 2)


_PATCH_COLOURS = {2: "tab:orange", 4: "tab:green", 8: "tab:red", 16: "tab:purple"}
_PIXEL_COLOUR = "0.1"


def _vit_line(ax: Axes, heads: int, x: float, above: bool = True) -> None:
    """Draw ViT-Base's head count as a horizontal line, labelled above or below it from data x."""
    ax.axhline(heads, color="tab:blue", linestyle="--", linewidth=1.0, zorder=1)
    ax.annotate(f"ViT-Base: {heads} heads", (x, heads), xytext=(0, 2 if above else -2),
                textcoords="offset points", ha="left", va="bottom" if above else "top",
                fontsize=7.5, color="tab:blue")


def _plain_log_ticks(axis: object, ticks: list[int]) -> None:
    """Put `ticks` on a log `axis` (ax.xaxis or ax.yaxis) as plain integers, no minor labels."""
    axis.set_ticks(ticks, labels=[str(t) for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def _draw_vs_kernel(data: HeadsData, ax: Axes) -> None:
    """Left panel: sufficient heads (lines) and necessary heads (open markers) against k."""
    k = data.kernel_sizes
    ax.semilogy(k, data.pixel_sufficient, color=_PIXEL_COLOUR, linewidth=1.6,
                label="pixel tokens: |S| = k² (T1)", zorder=4)
    ax.semilogy(k, data.pixel_necessary, linestyle="none", marker="o", markersize=4.5,
                markerfacecolor="white", markeredgecolor=_PIXEL_COLOUR, zorder=5)
    # larger P wider and underneath (lower zorder): the shared plateau shows every colour
    for i, P in enumerate(data.patch_sizes):
        colour = _PATCH_COLOURS[P]
        ax.semilogy(k, data.patch_sufficient[i], color=colour, linewidth=1.3 + 0.9 * i,
                    drawstyle="steps-mid", zorder=3 - 0.1 * i,
                    label=f"patch tokens, P = {P}" + (": |N(S, P)| (T2)" if i == 0 else "")
                    + (" (ViT-Base/16)" if P == 16 else ""))
        ax.semilogy(k, data.patch_necessary[i], linestyle="none", marker="o", markersize=4.5,
                    markerfacecolor="white", markeredgecolor=colour, zorder=5)
    ax.semilogy([], [], linestyle="none", marker="o", markerfacecolor="white",
                markeredgecolor="0.3", label="necessary (T3), generic kernel with C·D = count")
    _vit_line(ax, data.vit_heads, k[0])
    ax.annotate("plateau: 9 heads while the reach r = (k−1)/2 ≤ P;\n"
                "25 heads for P < r ≤ 2P, 49 for 2P < r ≤ 3P, …",
                (k[-1], 9), xytext=(0, -7), textcoords="offset points", ha="right", va="top",
                fontsize=7.5, color="0.3")
    ax.set_xticks(k[::2] if len(k) > 9 else k)
    ax.set_xlim(0, k[-1] + 1)
    ax.set_ylim(0.7, 2.5 * data.pixel_sufficient.max())
    top = int(data.pixel_sufficient.max())
    _plain_log_ticks(ax.yaxis, [t for t in (1, 9, 25, 81, 289, 1089) if t <= top])
    ax.set_xlabel("kernel size k (odd, dilation 1)")
    ax.set_ylabel("heads for an exact k×k convolution")
    ax.set_title("(a) heads vs kernel size")
    ax.grid(True, which="major", color="0.92", linewidth=0.6)
    ax.legend(loc="upper left", frameon=False)


def _curve_label(curve: NecessaryCurve, earlier: list[NecessaryCurve]) -> str:
    """Return the legend text of `curve`, naming an earlier curve with the same counts."""
    if curve.patch_size is None:
        return f"pixel, k = {curve.kernel_size}: min(k², C·D)"
    label = f"patch P = {curve.patch_size}, k = {curve.kernel_size} (|N| = {curve.offsets})"
    same = [c.kernel_size for c in earlier if np.array_equal(c.necessary, curve.necessary)
            and c.patch_size == curve.patch_size]
    return label + (f": same as k = {same[0]}" if same else "")


_CURVE_STYLES = [dict(color=_PIXEL_COLOUR, marker="o"), dict(color="tab:orange", marker="s"),
                 dict(color="tab:green", marker="D"), dict(color="tab:red", marker="x"),
                 dict(color="tab:purple", marker="^")]


def _draw_vs_channels(data: HeadsData, ax: Axes) -> None:
    """Right panel: T3's necessary heads against C·D, the closed form as a grey guide."""
    cd = data.channel_products
    for i, (curve, style) in enumerate(zip(data.curves, _CURVE_STYLES, strict=True)):
        ax.loglog(cd, curve.formula, color="0.85", linewidth=5.0, solid_capstyle="round",
                  zorder=1, label="T3 closed form (guide)" if i == 0 else None)
        ax.loglog(cd, curve.necessary, linewidth=1.1, markersize=3.5, markerfacecolor="none",
                  label=_curve_label(curve, list(data.curves[:i])), zorder=3, **style)
    # below the line, right of the patch ramps (9·C·D crosses 12 at C·D = 4/3)
    _vit_line(ax, data.vit_heads, 1.45, above=False)
    pixel = next(c for c in data.curves if c.patch_size is None)
    full = int(cd[np.argmax(pixel.necessary == pixel.offsets)])  # first C·D with s = k²
    ax.axvline(full, color="0.5", linestyle=":", linewidth=1.0, zorder=0)
    ax.annotate(f"C·D = {full}: the {pixel.kernel_size}×{pixel.kernel_size} kernel\n"
                f"needs all {pixel.offsets} pixel heads", (full, 1.0), xytext=(-4, 0),
                textcoords="offset points", ha="right", va="bottom", fontsize=7.5, color="0.3")
    ax.annotate("patch, P = 2:\ns = (2P−1)²·C·D\nuntil s = |N|", (3.3, 16.5),
                ha="left", va="center", fontsize=7.5, color="0.3")
    ax.set_xlabel("channel pairs C·D (C = 1, D = C·D)")
    ax.set_ylabel("necessary heads s (T3, generic kernel)")
    ax.set_title("(b) necessary heads vs channels")
    ax.set_xlim(0.85, cd[-1] * 1.15)
    ax.set_ylim(0.8, 120)
    _plain_log_ticks(ax.xaxis, [t for t in (1, 2, 3, 5, 9, 16, 25, 64) if t <= cd[-1]])
    _plain_log_ticks(ax.yaxis, [1, 3, 9, 12, 18, 25, 49])
    ax.grid(True, which="major", color="0.92", linewidth=0.6)
    ax.legend(loc="upper left", frameon=False)


def draw_heads(data: HeadsData, axes: np.ndarray) -> Figure:
    """Return the figure: heads vs k (T1/T2 lines, T3 markers) and necessary heads vs C·D (T3)."""
    _draw_vs_kernel(data, axes[0])
    _draw_vs_channels(data, axes[1])
    fig = axes[0].get_figure(root=True)
    fig.suptitle("Heads an MHSA layer needs to compute a k×k convolution exactly: "
                 "pixel tokens vs P×P patch tokens")
    return fig


ENTRY = FigureEntry(
    compute_heads, heads_axes, draw_heads,
    "heads needed vs kernel size (pixel k² vs patch 9-head plateau) and vs C·D (T3)",
)  # fmt: skip
