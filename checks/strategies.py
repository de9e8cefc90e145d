"""Hypothesis strategies for the equivalence checks: random convolutions, stride 1 and strided.

`conv_cases()` draws channels, groups (incl. depthwise), kernel shapes (odd, even, rectangular),
dilation, bias, padding mode, patch size and a patch grid (non-square, down to one row) that is
just large enough for the kernel, so the border cases are where the draws concentrate.
`strided_cases()` draws strided Conv1d/2d/3d with every padding whose output grid is n/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

from constructions.geometry import kernel_reach, patch_neighbourhood

__all__ = [
    "ConvCase",
    "ConvCaseND",
    "StridedCase",
    "conv_cases",
    "conv_cases_nd",
    "strided_cases",
]


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


@dataclass(frozen=True)
class StridedCase(ConvCaseND):
    """A drawn strided convolution: stride s_a | P_a, padding p_a with n/s outputs per axis.

    `patch_size` is the input patch (P_a = s_a for pixel tokens); output tokens hold P_a/s_a
    pixels per axis.
    """

    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    pixels: bool = False  # pixel tokens: the patch is the stride

    @property
    def token_patch(self) -> tuple[int, ...] | None:
        """The `patch_size` to give the constructions (None for pixel tokens)."""
        return None if self.pixels else self.patch_size

    @property
    def output_patch(self) -> tuple[int, ...]:
        return tuple(P // s for P, s in zip(self.patch_size, self.stride, strict=True))

    @property
    def output_size(self) -> tuple[int, ...]:
        return tuple(n // s for n, s in zip(self.input_size, self.stride, strict=True))


@st.composite
def strided_cases(draw: st.DrawFn, dims: tuple[int, ...] = (1, 2, 3)) -> StridedCase:
    """Draw a `StridedCase`: strides 1–3 (at least one axis > 1), pixel or patch tokens, every
    padding p with d·(k−1) + 1 − s ≤ 2p ≤ d·(k−1), grids down to the smallest the kernel allows."""
    d = draw(st.sampled_from(dims), label="dims")
    kmax = 5 if d < 3 else 3
    circular = draw(st.booleans(), label="circular")
    pixels = draw(st.booleans(), label="pixels")
    ks, ds, ss, ps, Ps, grid = [], [], [], [], [], []
    for _ in range(d):
        s = draw(st.integers(1, 3))
        k = draw(st.integers(1, kmax))
        dil = draw(st.integers(1, 2))
        span = dil * (k - 1)
        low = max(0, -(-(span + 1 - s) // 2))
        if low > span // 2:  # only 'same' (stride 1, odd span) fits: take the next kernel size
            k, span = k + 1, dil * k
            low = max(0, -(-(span + 1 - s) // 2))
        p = draw(st.integers(low, span // 2))
        P = s * (1 if pixels else draw(st.integers(1, 2)))
        reach = np.abs(
            patch_neighbourhood((k,), (P,), (dil,), (s,), (p,))[:, 0]
        ).max()  # tokens the layer reaches
        g = max(int(reach) + 1, -(-p // P)) + draw(st.integers(0, 1))
        ks.append(k)
        ds.append(dil)
        ss.append(s)
        ps.append(p)
        Ps.append(P)
        grid.append(g)
    if all(s == 1 for s in ss):
        ss[0], Ps[0] = 2, 2 * Ps[0]
        ps[0] = max(ps[0], -(-(ds[0] * (ks[0] - 1) - 1) // 2))
        reach = np.abs(
            patch_neighbourhood((ks[0],), (Ps[0],), (ds[0],), (2,), (ps[0],))[:, 0]
        ).max()
        grid[0] = max(grid[0], int(reach) + 1, -(-ps[0] // Ps[0]))
    groups = draw(st.integers(1, 2), label="groups")
    return StridedCase(
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
        stride=tuple(ss),
        padding=tuple(ps),
        pixels=pixels,
    )


def _seeded_conv(case: ConvCase | ConvCaseND, dtype: torch.dtype, device: str) -> nn.Module:
    """Return the case's nn.Conv1d/2d/3d, weights and bias drawn from N(0, 1) with its seed."""
    cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(case.kernel_size) - 1]
    strided = isinstance(case, StridedCase)
    conv = cls(
        case.in_channels, case.out_channels, case.kernel_size,
        stride=case.stride if strided else 1, padding=case.padding if strided else "same",
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
