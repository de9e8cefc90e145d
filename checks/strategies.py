"""Hypothesis strategies for the equivalence checks: random stride-1 'same' convolutions.

`conv_cases()` draws channels, groups (incl. depthwise), kernel shapes (odd, even, rectangular),
dilation, bias, padding mode, patch size and a patch grid (non-square, down to one row) that is
just large enough for the kernel, so the border cases are where the draws concentrate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

from constructions.geometry import kernel_reach, patch_neighbourhood

__all__ = ["ConvCase", "ConvCaseND", "conv_cases", "conv_cases_nd"]


@dataclass(frozen=True)
class ConvCase:
    """One drawn convolution with an image size that fits both pixel and patch tokens."""

    in_per_group: int
    out_per_group: int
    groups: int
    kernel_size: tuple[int, int]
    dilation: tuple[int, int]
    bias: bool
    padding_mode: str
    patch_size: int
    grid: tuple[int, int]  # patch grid (h, w); the image is (h·P, w·P)
    seed: int

    @property
    def in_channels(self) -> int:
        return self.in_per_group * self.groups

    @property
    def out_channels(self) -> int:
        return self.out_per_group * self.groups

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.grid[0] * self.patch_size, self.grid[1] * self.patch_size)

    def conv(self, dtype: torch.dtype = torch.float64, device: str = "cpu") -> nn.Conv2d:
        """Return the convolution, weights drawn from N(0, 1) with this case's seed."""
        return _seeded_conv(self, dtype, device)

    def image(
        self, batch: int = 2, dtype: torch.dtype = torch.float64, device: str = "cpu"
    ) -> torch.Tensor:
        """Return a random image batch (B, C, H, W) drawn with this case's seed."""
        return _seeded_input(self, self.image_size, batch, dtype, device)


def _min_grid(k: int, d: int, P: int, circular: bool) -> int:
    """Return the smallest patch-grid side on which the layer can express the convolution."""
    if circular:  # PyTorch's circular padding must not exceed the image side
        pad = d * (k - 1) - d * (k - 1) // 2
        return max(1, math.ceil(pad / P))
    reach = int(np.abs(patch_neighbourhood((k, 1), P, (d, 1))[:, 0]).max())
    return reach + 1


@st.composite
def conv_cases(draw: st.DrawFn, max_kernel: int = 5, max_patch: int = 4) -> ConvCase:
    """Draw a `ConvCase`: up to 3 groups of up to 3 channels each way, kernels ≤ `max_kernel`."""
    groups = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    circular = draw(st.booleans())
    P = draw(st.integers(1, max_patch))
    gh = _min_grid(kh, dh, P, circular) + draw(st.integers(0, 2))
    gw = _min_grid(kw, dw, P, circular) + draw(st.integers(0, 2))
    return ConvCase(
        in_per_group=draw(st.integers(1, 3)),
        out_per_group=draw(st.integers(1, 3)),
        groups=groups,
        kernel_size=(kh, kw),
        dilation=(dh, dw),
        bias=draw(st.booleans()),
        padding_mode="circular" if circular else "zeros",
        patch_size=P,
        grid=(gh, gw),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def reach_equals_patch(case: ConvCase) -> bool:
    """Whether the kernel's reach equals the patch size on some axis (the 9-head edge)."""
    return case.patch_size in kernel_reach(case.kernel_size, case.dilation) and case.patch_size > 1


@dataclass(frozen=True)
class ConvCaseND:
    """One drawn Conv1d/2d/3d with an input size that fits both position and patch tokens."""

    in_per_group: int
    out_per_group: int
    groups: int
    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    bias: bool
    padding_mode: str
    patch_size: tuple[int, ...]
    grid: tuple[int, ...]  # patch grid per axis; the input is grid ⊙ patch_size
    seed: int

    @property
    def dims(self) -> int:
        return len(self.kernel_size)

    @property
    def in_channels(self) -> int:
        return self.in_per_group * self.groups

    @property
    def out_channels(self) -> int:
        return self.out_per_group * self.groups

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(g * P for g, P in zip(self.grid, self.patch_size, strict=True))

    def conv(self, dtype: torch.dtype = torch.float64, device: str = "cpu") -> nn.Module:
        """Return the convolution (nn.Conv1d/2d/3d), weights N(0, 1) with this case's seed."""
        return _seeded_conv(self, dtype, device)

    def input(
        self, batch: int = 2, dtype: torch.dtype = torch.float64, device: str = "cpu"
    ) -> torch.Tensor:
        """Return a random input batch (B, C, *input_size) drawn with this case's seed."""
        return _seeded_input(self, self.input_size, batch, dtype, device)


@st.composite
def conv_cases_nd(
    draw: st.DrawFn, dims: tuple[int, ...] = (1, 2, 3), max_kernel: int = 4, max_patch: int = 3
) -> ConvCaseND:
    """Draw a `ConvCaseND`: d axes, anisotropic kernels, dilations and patches, tight grids.

    Sizes shrink with d so that 3-D cases stay small (a grid of at most a few hundred tokens).
    """
    d = draw(st.sampled_from(dims), label="dims")
    kmax, pmax = (max_kernel, max_patch) if d < 3 else (min(max_kernel, 3), min(max_patch, 2))
    groups = draw(st.integers(1, 2), label="groups")
    circular = draw(st.booleans(), label="circular")
    ks, ds, Ps, grid = [], [], [], []
    for _ in range(d):
        k, dil, P = draw(st.integers(1, kmax)), draw(st.integers(1, 2)), draw(st.integers(1, pmax))
        ks.append(k)
        ds.append(dil)
        Ps.append(P)
        grid.append(_min_grid(k, dil, P, circular) + draw(st.integers(0, 1)))
    return ConvCaseND(
        in_per_group=draw(st.integers(1, 2)),
        out_per_group=draw(st.integers(1, 2)),
        groups=groups,
        kernel_size=tuple(ks),
        dilation=tuple(ds),
        bias=draw(st.booleans()),
        padding_mode="circular" if circular else "zeros",
        patch_size=tuple(Ps),
        grid=tuple(grid),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _seeded_conv(case: ConvCase | ConvCaseND, dtype: torch.dtype, device: str) -> nn.Module:
    """Return the case's nn.Conv1d/2d/3d, weights and bias drawn from N(0, 1) with its seed."""
    cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(case.kernel_size) - 1]
    conv = cls(
        case.in_channels, case.out_channels, case.kernel_size, padding="same",
        dilation=case.dilation, groups=case.groups, bias=case.bias,
        padding_mode=case.padding_mode, dtype=torch.float64,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(case.seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
        if conv.bias is not None:
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen, dtype=torch.float64))
    return conv.to(dtype=dtype, device=device)


def _seeded_input(
    case: ConvCase | ConvCaseND, size: tuple[int, ...], batch: int, dtype: torch.dtype, device: str
) -> torch.Tensor:
    """Return a random input batch (B, C, *size) drawn with the case's seed + 1."""
    gen = torch.Generator().manual_seed(case.seed + 1)
    x = torch.randn(batch, case.in_channels, *size, generator=gen, dtype=torch.float64)
    return x.to(dtype=dtype, device=device)
