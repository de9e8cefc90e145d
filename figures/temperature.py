"""Figure 3 ('temperature'): error of the finite-temperature construction against β.

Shows paper_notes' Finite temperature: `pixel_mhsa_from_conv(conv, ..., beta=β)` puts −β instead of
−∞ off each head's target, and with zero padding the sink at −β/2. The error then has two rates:

* circular padding (no sink): a query's target logit is 0 and the T − 1 other keys sit at −β, so
  the weight off target is (T − 1)e^(−β) / (1 + (T − 1)e^(−β)): the error decays like e^(−β);
* zero padding: the sink at −β/2 takes e^(−β/2) of the weight even where the target exists
  (interior tokens), and where it is missing (border tokens) the sink holds the T keys at −β only
  by e^(−β/2): both decay like e^(−β/2), the price of one fixed sink logit serving both cases.

Errors are max |layer − conv| over the named tokens divided by the output scale max |conv|, the
reference being the convolution module in float64 applied to the same (dtype-rounded) weights
and input. Both dtypes flatten at their rounding floor.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from constructions import image_to_pixels, pixel_mhsa_from_conv, pixels_to_image
from figures.entry import FigureEntry
from figures.rendering import new_figure
from theory import kernel_support

__all__ = ["ENTRY", "ErrorCurve", "TemperatureData", "border_mask", "compute_temperature",
           "draw_temperature", "temperature_axes"]

SEED = 3
KERNEL_SIZE = 5
CHANNELS = 3
DTYPES = (torch.float64, torch.float32)
PADDINGS = ("zeros", "circular")


@dataclass(frozen=True)
class ErrorCurve:
    """The relative error of the β-layer on one set of tokens, one padding mode and one dtype."""

    padding: str  # 'zeros' or 'circular'
    tokens: str  # 'interior', 'border' or 'all'
    dtype: str  # 'float32' or 'float64'
    errors: np.ndarray  # (len(betas),) max-abs error / max |conv|


@dataclass(frozen=True)
class TemperatureData:
    """Errors against β for every (padding, tokens, dtype), and what they were measured on."""

    betas: np.ndarray
    image_size: int
    kernel_size: int
    channels: int
    roundoff: dict[str, float]  # unit roundoff of each dtype
    curves: tuple[ErrorCurve, ...]

    @property
    def num_tokens(self) -> int:
        """Return T = H·W, the number of pixel tokens."""
        return self.image_size**2


def border_mask(image_size: int, kernel_size: int) -> torch.Tensor:
    """Return the (H, W) mask of pixels at which some tap of the kernel reads zero padding."""
    offsets = torch.as_tensor(kernel_support(kernel_size))  # (k², 2), key − query
    pos = torch.arange(image_size)
    mask = torch.zeros(image_size, image_size, dtype=torch.bool)
    for dy, dx in offsets.tolist():
        out_y = (pos + dy < 0) | (pos + dy >= image_size)
        out_x = (pos + dx < 0) | (pos + dx >= image_size)
        mask |= out_y[:, None] | out_x[None, :]
    return mask


def _errors(conv: nn.Conv2d, x: torch.Tensor, betas: np.ndarray, dtype: torch.dtype,
            masks: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Return {token set: errors over betas} of the β-layers of `conv` against the float64 conv."""
    H = x.shape[-1]
    conv_d, x_d = copy.deepcopy(conv).to(dtype), x.to(dtype)
    with torch.no_grad():
        expected = copy.deepcopy(conv_d).to(torch.float64)(x_d.to(torch.float64))[0]  # (D, H, W)
    scale = expected.abs().max().item()
    errors = {name: np.empty(len(betas)) for name in masks}
    for i, beta in enumerate(betas):
        layer = pixel_mhsa_from_conv(conv_d, H, beta=float(beta))
        with torch.no_grad():
            actual = pixels_to_image(layer(image_to_pixels(x_d)), H)[0].to(torch.float64)
        diff = (actual - expected).abs().amax(dim=0)  # (H, W)
        for name, mask in masks.items():
            errors[name][i] = diff[mask].max().item() / scale
    return errors


def compute_temperature(*, quick: bool = False) -> TemperatureData:
    """Return the relative errors of the finite-temperature pixel layer (k = 5) for β in 1..91,
    zero and circular padding, interior and border tokens, float32 and float64."""
    image_size = 10 if quick else 16
    betas = np.linspace(1.0, 91.0, 11 if quick else 46)
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(1, CHANNELS, image_size, image_size, generator=generator, dtype=torch.float64)
    border = border_mask(image_size, KERNEL_SIZE)
    curves = []
    for padding in PADDINGS:
        conv = nn.Conv2d(CHANNELS, CHANNELS, KERNEL_SIZE, padding="same", padding_mode=padding,
                         dtype=torch.float64)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator,
                                          dtype=torch.float64))
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator, dtype=torch.float64))
        masks = ({"interior": ~border, "border": border} if padding == "zeros"
                 else {"all": torch.ones_like(border)})
        for dtype in DTYPES:
            name = str(dtype).removeprefix("torch.")
            for tokens, errors in _errors(conv, x, betas, dtype, masks).items():
                curves.append(ErrorCurve(padding, tokens, name, errors))
    roundoff = {str(d).removeprefix("torch."): torch.finfo(d).eps / 2 for d in DTYPES}
    return TemperatureData(betas, image_size, KERNEL_SIZE, CHANNELS, roundoff, tuple(curves))


def temperature_axes(data: TemperatureData) -> np.ndarray:
    """Return two side-by-side axes (zero padding, circular padding) sharing the error axis."""
    del data
    fig = new_figure(9.0, 3.9)
    return fig.subplots(1, 2, sharey=True)


_COLOURS = {"interior": "tab:blue", "border": "tab:orange", "all": "tab:green"}
_STYLES = {"float64": dict(linestyle="-", marker="o", markersize=3),
           "float32": dict(linestyle="--", marker="s", markersize=3, markerfacecolor="none")}
_TITLES = {"zeros": "zero padding: sink at −β/2", "circular": "circular padding: no sink"}


def draw_temperature(data: TemperatureData, axes: np.ndarray) -> Figure:
    """Return the figure: error vs β per padding mode (one axis each), float64 solid, float32
    dashed, the guides e^(−β/2) and (T − 1)e^(−β), and each dtype's unit roundoff."""
    betas, T = data.betas, data.num_tokens
    fine = np.linspace(betas.min(), betas.max(), 400)
    ax: Axes
    for ax, padding in zip(axes, PADDINGS, strict=True):
        for curve in data.curves:
            if curve.padding == padding:
                label = f"{curve.tokens} tokens, {curve.dtype}"
                ax.semilogy(betas, curve.errors, color=_COLOURS[curve.tokens], label=label,
                            linewidth=1.2, **_STYLES[curve.dtype])
        ax.semilogy(fine, np.exp(-fine / 2), color="0.35", linestyle="-.", linewidth=1,
                    label="guide $e^{-\\beta/2}$")
        ax.semilogy(fine, (T - 1) * np.exp(-fine), color="0.35", linestyle=":", linewidth=1.3,
                    label=f"guide $(T-1)\\,e^{{-\\beta}}$, T = {T}")
        for name, eps in data.roundoff.items():
            ax.axhline(eps, color="0.75", linewidth=0.8, zorder=0)
            # float64's label at the left end above its line, float32's at the right end below:
            # the two places no curve passes through
            left = name == "float64"
            ax.annotate(f"{name} unit roundoff", (betas.min() if left else betas.max(), eps),
                        xytext=(0, 2 if left else -2), textcoords="offset points",
                        ha="left" if left else "right", va="bottom" if left else "top",
                        fontsize=7, color="0.45")
        ax.set_title(_TITLES[padding])
        ax.set_xlabel("temperature β (off-target logit −β)")
        ax.set_ylim(1e-18, 10.0)
        ax.set_xlim(0, betas.max() + 2)
        ax.grid(True, which="major", color="0.92", linewidth=0.6)
        ax.legend(loc="upper right", frameon=False)
    axes[0].set_ylabel("max |MHSA − conv| / max |conv|")
    fig = axes[0].get_figure(root=True)
    fig.suptitle(f"Finite-temperature pixel construction: k = {data.kernel_size}, "
                 f"C = D = {data.channels}, {data.image_size}×{data.image_size} image "
                 f"(T = {T} tokens)\nerror on the dtype-rounded weights and input against "
                 "Conv2d in float64")
    return fig


ENTRY = FigureEntry(
    compute_temperature, temperature_axes, draw_temperature,
    "error vs temperature β of the finite-temperature construction (float32, float64)",
)  # fmt: skip
