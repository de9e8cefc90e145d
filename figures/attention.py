"""Figure 2 ('attention'): the attention maps of the constructed heads for one query token.

Shows T1 (k² = 25 pixel heads for k = 5, each one-hot on the key at query + δ), T2 (9 patch
heads for P = 4, k = 5, one per Δ ∈ N(S, P) = {−1, 0, 1}²) and §2 Borders (at a corner query the
heads whose target key lies outside the grid put all their weight on the zero-content sink key).
Every map is read from `RelPosMHSA.attention_weights` of the constructed layer, not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from torch import nn

from constructions import (
    RelPosMHSA,
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    pixel_mhsa_from_conv,
)
from figures.entry import FigureEntry
from figures.rendering import new_figure

__all__ = ["ENTRY", "AttentionAxes", "AttentionData", "HeadMaps", "attention_axes",
           "compute_attention", "draw_attention", "head_maps"]

SEED = 2
KERNEL_SIZE = 5
PATCH_SIZE = 4
CHANNELS = 3
PIXEL_IMAGE = 9  # a 9×9 pixel grid: the 5×5 kernel's reach (2) fits around the centre query
PATCH_IMAGE = 20  # a 5×5 grid of 4×4 patches


@dataclass(frozen=True)
class HeadMaps:
    """The attention of every head of one layer for one query token (batch element 0)."""

    title: str
    grid: tuple[int, int]  # token grid (gh, gw)
    query: tuple[int, int]  # the query's grid position (row, column)
    offsets: np.ndarray  # (N, 2) each head's target offset key − query, from its bias table
    maps: np.ndarray  # (N, gh, gw) weights on the grid's keys
    sink: np.ndarray  # (N,) weight on the sink key (the last column of attention_weights)


@dataclass(frozen=True)
class AttentionData:
    """The panels of the attention figure, left to right."""

    panels: tuple[HeadMaps, ...]


def _head_offsets(layer: RelPosMHSA) -> np.ndarray:
    """Return (N, 2) offsets key − query at which each head's bias table is largest (its target)."""
    gh, gw = layer.grid_size
    tables = layer.rel_bias.detach().reshape(layer.num_heads, -1)  # (N, (2gh−1)(2gw−1))
    flat = tables.argmax(dim=1).numpy()
    return np.stack([flat // (2 * gw - 1) - (gh - 1), flat % (2 * gw - 1) - (gw - 1)], axis=1)


def head_maps(layer: RelPosMHSA, tokens: torch.Tensor, query: tuple[int, int],
              title: str) -> HeadMaps:
    """Return the `HeadMaps` of `layer` for the query at grid position `query`.

    The weights are `layer.attention_weights(tokens)[0, :, t]` for `t = row·gw + column`; the
    layer must have a sink (zero padding), whose weight is the last key column.
    """
    if layer.sink_bias is None:
        raise ValueError("head_maps needs a layer with a sink key (a zero-padding convolution)")
    gh, gw = layer.grid_size
    with torch.no_grad():
        weights = layer.attention_weights(tokens)[0, :, query[0] * gw + query[1]]  # (N, T + 1)
    weights = weights.double().numpy()
    return HeadMaps(
        title=title,
        grid=(gh, gw),
        query=query,
        offsets=_head_offsets(layer),
        maps=weights[:, : gh * gw].reshape(-1, gh, gw),
        sink=weights[:, gh * gw],
    )


def compute_attention(*, quick: bool = False) -> AttentionData:
    """Return the head maps: pixel heads (k = 5), patch heads (P = 4, k = 5) at an interior and
    at a corner query. T1, T2, Borders. The sizes are already small, so `quick` changes
    nothing."""
    del quick
    generator = torch.Generator().manual_seed(SEED)
    conv = nn.Conv2d(CHANNELS, CHANNELS, KERNEL_SIZE, padding="same")
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
    pixel = pixel_mhsa_from_conv(conv, PIXEL_IMAGE)
    patch = patch_mhsa_from_conv(conv, PATCH_IMAGE, PATCH_SIZE)
    image = torch.randn(1, CHANNELS, PIXEL_IMAGE, PIXEL_IMAGE, generator=generator)
    patch_image = torch.randn(1, CHANNELS, PATCH_IMAGE, PATCH_IMAGE, generator=generator)
    centre, patch_centre = PIXEL_IMAGE // 2, PATCH_IMAGE // PATCH_SIZE // 2
    return AttentionData(panels=(
        head_maps(pixel, image_to_pixels(image), (centre, centre),
                  f"pixel tokens ({PIXEL_IMAGE}×{PIXEL_IMAGE}), k = {KERNEL_SIZE}: "
                  f"{pixel.num_heads} heads"),
        head_maps(patch, image_to_patches(patch_image, PATCH_SIZE), (patch_centre, patch_centre),
                  f"patch tokens ({patch.grid_size[0]}×{patch.grid_size[1]}), P = {PATCH_SIZE}, "
                  f"k = {KERNEL_SIZE}: {patch.num_heads} heads"),
        head_maps(patch, image_to_patches(patch_image, PATCH_SIZE), (0, 0),
                  "the same heads, corner query:\nmissing keys hand their weight to the sink"),
    ))  # fmt: skip


def _panel_shape(maps: HeadMaps) -> tuple[int, int]:
    """Return the (rows, columns) of the panel array: the span of the head offsets."""
    span = maps.offsets.max(axis=0) - maps.offsets.min(axis=0) + 1
    return int(span[0]), int(span[1])


@dataclass(frozen=True)
class AttentionAxes:
    """The axes of the attention figure: one array per panel, plus the key strip below."""

    panels: list[np.ndarray]  # per panel: (rows, columns) axes, the span of the head offsets
    title_at: list[tuple[float, float]]  # per panel: figure coordinates of its title's centre
    legend: Axes  # the key to the query outline and the sink cell
    colorbar: Axes


def attention_axes(data: AttentionData) -> AttentionAxes:
    """Return the axes for `data` on a new figure: a panel per layer/query, a key strip below.

    The layout is fixed arithmetic (nested grid specs, no layout engine): constrained layout
    with nested panels settles to last-bit different positions from run to run, which changes
    the SVG's clip-path ids and so its bytes.
    """
    shapes = [_panel_shape(p) for p in data.panels]
    fig = new_figure(12.0, 5.4, layout=None)
    outer = fig.add_gridspec(1, len(shapes), width_ratios=[c for _, c in shapes],
                             left=0.035, right=0.975, top=0.86, bottom=0.15, wspace=0.12)
    panels, title_at = [], []
    for cell, (rows, cols) in zip(outer, shapes, strict=True):
        inner = cell.subgridspec(rows, cols, wspace=0.2, hspace=0.2)
        panels.append(inner.subplots(squeeze=False))
        box = cell.get_position(fig)
        title_at.append(((box.x0 + box.x1) / 2, 0.965))
    legend = fig.add_axes((0.035, 0.04, 0.55, 0.07))
    colorbar = fig.add_axes((0.70, 0.085, 0.25, 0.03))
    return AttentionAxes(panels=panels, title_at=title_at, legend=legend, colorbar=colorbar)


def _draw_head(ax: Axes, weights: np.ndarray, sink: float, query: tuple[int, int],
               cmap: Colormap, norm: Normalize) -> None:
    """Draw one head's map (rows downwards), the query outlined, and the sink as a separate cell."""
    gh, gw = weights.shape
    ax.pcolormesh(np.arange(gw + 1), np.arange(gh + 1), weights, cmap=cmap, norm=norm,
                  edgecolors="0.82", linewidth=0.3)
    top = (gh - 1) / 2  # the sink cell sits right of the map, vertically centred
    ax.pcolormesh([gw + 0.6, gw + 1.6], [top, top + 1], [[sink]], cmap=cmap, norm=norm,
                  edgecolors="0.2", linewidth=0.6)
    ax.add_patch(Rectangle((query[1], query[0]), 1, 1, fill=False, edgecolor="tab:red",
                           linewidth=1.1))
    ax.set_xlim(-0.1, gw + 1.7)
    ax.set_ylim(gh + 0.1, -0.1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _signed(value: int) -> str:
    """Return `value` with a typographic minus sign."""
    return str(value).replace("-", "\N{MINUS SIGN}")


def draw_attention(data: AttentionData, axes: AttentionAxes) -> Figure:
    """Return the figure with one small map per head, placed by the head's offset (row δ_y,
    column δ_x), and the sink weight as an outlined cell right of each map."""
    cmap, norm = colormaps["Blues"], Normalize(0.0, 1.0)  # white at weight 0, dark blue at 1
    fig = axes.colorbar.get_figure(root=True)
    for maps, grid, (x, y) in zip(data.panels, axes.panels, axes.title_at, strict=True):
        low = maps.offsets.min(axis=0)
        for h, (dy, dx) in enumerate(maps.offsets):
            _draw_head(grid[dy - low[0], dx - low[1]], maps.maps[h], float(maps.sink[h]),
                       maps.query, cmap, norm)
        symbol = "δ" if maps.title.startswith("pixel") else "Δ"
        for i in range(grid.shape[0]):
            grid[i, 0].set_ylabel(f"{symbol}$_y$ = {_signed(i + low[0])}", fontsize=8)
        for j in range(grid.shape[1]):
            grid[0, j].set_title(f"{symbol}$_x$ = {_signed(j + low[1])}", fontsize=8)
        fig.text(x, y, maps.title, ha="center", va="top", fontsize=10)
    axes.legend.set_axis_off()
    handles = [
        Patch(facecolor="none", edgecolor="tab:red", linewidth=1.1, label="query token"),
        Patch(facecolor="none", edgecolor="0.2", label="sink key (cell right of each map)"),
    ]
    axes.legend.legend(handles=handles, loc="center left", ncols=2, frameon=False)
    fig.colorbar(ScalarMappable(norm, cmap), cax=axes.colorbar, orientation="horizontal",
                 label="attention weight")
    return fig


ENTRY = FigureEntry(
    compute_attention, attention_axes, draw_attention,
    "attention maps of the constructed heads (pixel k=5, patch P=4 k=5, a corner query)",
)  # fmt: skip
