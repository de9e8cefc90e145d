"""Figure 6 ('photo'): a photograph filtered by a convolution and by the patch MHSA built from it.

Shows T2 with its Borders on real data: `patch_mhsa_from_conv` (P = 16, ViT's patch size, so
tokens are 16·16·3 = 768-wide as in ViT-Base) turns a 5×5 edge filter on the three colour
channels into 9 heads whose output equals the filter's on every pixel, the image border included;
the difference panel and its maximum are measured, in float32 and float64.

The photograph is matplotlib's sample image `grace_hopper.jpg` (shipped with matplotlib), so the
figure needs no download.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import cbook
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.ticker import ScalarFormatter
from torch import nn

from constructions import image_to_patches, patch_mhsa_from_conv, patches_to_image
from figures.entry import FigureEntry
from figures.rendering import new_figure

__all__ = ["ENTRY", "PhotoData", "compute_photo", "draw_photo", "edge_kernel", "load_photo",
           "photo_axes"]

PHOTO = "grace_hopper.jpg"
PATCH_SIZE = 16
KERNEL_SIZE = 5
SIGMA = 1.0


@dataclass(frozen=True)
class PhotoData:
    """The photograph, both filtered versions, their difference and what made them."""

    image: np.ndarray  # (H, W, 3) in [0, 1]
    conv: np.ndarray  # (H, W, 3) Conv2d output, float32
    mhsa: np.ndarray  # (H, W, 3) patch-MHSA output, float32
    difference: np.ndarray  # (H, W) max over channels of |conv − mhsa|, float32
    max_abs: dict[str, float]  # dtype → max |conv − mhsa| over the whole image
    output_scale: float  # max |conv|
    num_heads: int
    grid: tuple[int, int]  # patch grid
    filter_name: str


def load_photo(downsample: int) -> torch.Tensor:
    """Return matplotlib's sample photograph as a (1, 3, H, W) float64 image in [0, 1], averaged
    over `downsample`² blocks and centre-cropped to multiples of the patch size."""
    pixels = imread(cbook.get_sample_data(PHOTO, asfileobj=False))  # (H, W, 3) uint8
    x = torch.tensor(pixels[..., :3]).permute(2, 0, 1)[None]  # a copy: imread may be read-only
    x = F.avg_pool2d(x.to(torch.float64) / 255.0, downsample)
    H, W = x.shape[2:]
    top, left = (H % PATCH_SIZE) // 2, (W % PATCH_SIZE) // 2
    h, w = H // PATCH_SIZE * PATCH_SIZE, W // PATCH_SIZE * PATCH_SIZE
    return x[:, :, top : top + h, left : left + w]


def edge_kernel(size: int, sigma: float) -> torch.Tensor:
    """Return the (size, size) derivative of a Gaussian along the diagonal, −(y + x)·g(y, x),
    scaled to Σ|w| = 1: a relief ('emboss') edge filter."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = r[:, None], r[None, :]
    w = -(y + x) * torch.exp(-(y**2 + x**2) / (2 * sigma**2))
    return w / w.abs().sum()


def _filter_both(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (conv(x), the patch MHSA built from conv applied to x's patch tokens), as images."""
    size = tuple(x.shape[2:])
    layer = patch_mhsa_from_conv(conv, size, PATCH_SIZE)
    with torch.no_grad():
        return conv(x), patches_to_image(layer(image_to_patches(x, PATCH_SIZE)), PATCH_SIZE, size)


def compute_photo(*, quick: bool = False) -> PhotoData:
    """Return the photograph filtered by a 5×5 edge Conv2d (one filter per colour channel) and by
    the 9-head patch MHSA built from it (P = 16), with their measured difference. T2."""
    x = load_photo(downsample=4 if quick else 2)
    conv = nn.Conv2d(3, 3, KERNEL_SIZE, padding="same", groups=3, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(edge_kernel(KERNEL_SIZE, SIGMA).expand(3, 1, -1, -1))
    conv32 = copy.deepcopy(conv).to(torch.float32)
    y32, m32 = _filter_both(conv32, x.to(torch.float32))
    y64, m64 = _filter_both(conv, x)
    layer = patch_mhsa_from_conv(conv32, tuple(x.shape[2:]), PATCH_SIZE)
    as_image = lambda t: t[0].permute(1, 2, 0).double().numpy()  # noqa: E731
    return PhotoData(
        image=as_image(x),
        conv=as_image(y32),
        mhsa=as_image(m32),
        difference=(y32 - m32).abs().amax(dim=1)[0].double().numpy(),
        max_abs={"float32": (y32 - m32).abs().max().item(),
                 "float64": (y64 - m64).abs().max().item()},
        output_scale=y32.abs().max().item(),
        num_heads=layer.num_heads,
        grid=layer.grid_size,
        filter_name=f"{KERNEL_SIZE}×{KERNEL_SIZE} diagonal derivative of a Gaussian "
                    f"(σ = {SIGMA:g}) on each colour channel",
    )  # fmt: skip


def photo_axes(data: PhotoData) -> np.ndarray:
    """Return four side-by-side image axes on a new figure sized to the photograph's aspect."""
    H, W = data.image.shape[:2]
    fig = new_figure(12.0, 0.9 + 2.8 * H / W)
    return fig.subplots(1, 4)


def _show_signed(ax: Axes, image: np.ndarray, scale: float) -> None:
    """Draw a signed filter output with 0 as mid-grey: 0.5 + 0.5·image/scale per channel."""
    ax.imshow(np.clip(0.5 + 0.5 * image / scale, 0.0, 1.0), interpolation="none")


def draw_photo(data: PhotoData, axes: np.ndarray) -> Figure:
    """Return the figure: the photograph, the Conv2d output, the patch-MHSA output (both shown as
    0.5 + 0.5·y/max|conv|) and |conv − MHSA| with its colour bar and measured maximum."""
    original, conv, mhsa, diff = axes
    original.imshow(data.image, interpolation="none")
    original.set_title(f"input, {data.image.shape[0]}×{data.image.shape[1]} pixels")
    _show_signed(conv, data.conv, data.output_scale)
    conv.set_title("Conv2d (float32)")
    _show_signed(mhsa, data.mhsa, data.output_scale)
    mhsa.set_title(f"patch MHSA, P = {PATCH_SIZE}: {data.num_heads} heads,\n"
                   f"{data.grid[0]}×{data.grid[1]} tokens (float32)")
    shown = diff.imshow(data.difference, cmap="magma", interpolation="none")
    diff.set_title(f"|Conv2d − MHSA|: max {data.max_abs['float32']:.1e} (float32),\n"
                   f"{data.max_abs['float64']:.1e} in float64; max |Conv2d| = "
                   f"{data.output_scale:.2f}")
    fig = diff.get_figure(root=True)
    ticks = ScalarFormatter(useMathText=True)
    ticks.set_powerlimits((0, 0))  # one ×10⁻ⁿ offset instead of rounded per-tick exponents
    bar = fig.colorbar(shown, ax=diff, shrink=0.8, format=ticks)
    bar.ax.tick_params(labelsize=7)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"Grace Hopper (matplotlib sample data) through a {data.filter_name}")
    return fig


ENTRY = FigureEntry(
    compute_photo, photo_axes, draw_photo,
    "a photograph filtered by a convolution and by the patch MHSA built from it",
)  # fmt: skip
