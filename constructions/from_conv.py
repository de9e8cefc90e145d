"""MHSA layers built from convolutions: pixel tokens (SPEC T1) and ViT patch tokens (SPEC T2).

One head per offset Δ (δ ∈ S for pixels, Δ ∈ N(S, P) for patches): W_Q = W_K = 0, the head's
bias table is 0 at Δ and −∞ elsewhere, and W_V^h W_O^h = M_Δ (identity on the narrower side, so
no rounding is introduced); the convolution's bias goes to b_O. Then every head's attention is
one-hot on the key at `query + Δ` and the layer is Σ_Δ x_{q+Δ} M_Δ + b: the convolution.

Borders (SPEC §2): with zero padding a zero-content sink key with logit −10⁴ takes the weight
when a head's key falls outside the grid (exp(−10⁴) is exactly 0 in every float type, so it
takes none otherwise); with circular padding the head's table is 0 at every offset ≡ Δ modulo
the grid, so its key always exists. Finite temperature: `beta=β` puts −β instead of −∞ (and the
sink at −β/2, halfway, so it still wins exactly where the target key is missing).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from constructions.blocks import lazy_zeros, patch_blocks, pixel_blocks
from constructions.convolution import ConvSpec, conv_spec
from constructions.mhsa import RelPosMHSA
from theory._validate import positive_int, positive_pair
from theory.neighbourhoods import kernel_support, patch_neighbourhood

__all__ = ["SINK_LOGIT", "patch_mhsa_from_conv", "pixel_mhsa_from_conv"]

SINK_LOGIT = -1.0e4  # exp(−10⁴) is exactly 0 in float16, bfloat16, float32 and float64


def _check_beta(beta: float | None) -> float | None:
    if beta is None:
        return None
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta must be a positive float or None, got {beta!r}")
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite float or None (exact), got {beta!r}")
    return float(beta)


def _check_grid(
    spec: ConvSpec, offsets: np.ndarray, grid: tuple[int, int], image: tuple[int, int], tokens: str
) -> None:
    """Reject grids on which the layer cannot express the convolution. SPEC §2 (Borders)."""
    if spec.circular:
        sides = zip(spec.padding, image, ("height", "width"), strict=True)
        for (before, after), size, axis in sides:
            if max(before, after) > size:
                raise ValueError(
                    f"image_size={image}: circular padding of {max(before, after)} exceeds the "
                    f"image {axis} {size}; circular 'same' convolution needs padding ≤ size"
                )
        return
    reach = np.abs(offsets).max(axis=0)
    if reach[0] >= grid[0] or reach[1] >= grid[1]:
        raise ValueError(
            f"image_size={image} gives a {grid[0]}×{grid[1]} {tokens} grid, too small for this "
            f"kernel: it reaches tokens {tuple(int(r) for r in reach)} away, which no key − query "
            f"offset on that grid expresses; use a grid of at least "
            f"{int(reach[0]) + 1}×{int(reach[1]) + 1} {tokens}"
        )


def _head_tables(
    head_offsets: torch.Tensor,
    grid: tuple[int, int],
    circular: bool,
    beta: float | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Return the bias tables (N, 2gh−1, 2gw−1): 0 where key − query hits the head's offset."""
    hits = []
    for axis, g in enumerate(grid):
        rel = torch.arange(-(g - 1), g, device=head_offsets.device)  # key − query on this axis
        diff = rel[None, :] - head_offsets[:, axis, None]  # (N, 2g−1)
        hits.append(diff % g == 0 if circular else diff == 0)
    hit = hits[0][:, :, None] & hits[1][:, None, :]
    off = -math.inf if beta is None else -beta
    zero = torch.zeros((), dtype=dtype, device=head_offsets.device)
    return torch.where(hit, zero, torch.full_like(zero, off))


def _one_head_per_offset(blocks: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (W_V (n, E, Dh), W_O (n, Dh, F)), W_V W_O = M exactly: identity on the narrow side."""
    n, E, F_out = blocks.shape
    eye = lambda rows, cols: torch.eye(rows, cols, dtype=blocks.dtype, device=blocks.device)  # noqa: E731
    if F_out >= E:
        w_o = blocks if head_dim == E else F.pad(blocks, (0, 0, 0, head_dim - E))
        return eye(E, head_dim).repeat(n, 1, 1), w_o
    w_v = blocks if head_dim == F_out else F.pad(blocks, (0, head_dim - F_out))
    return w_v, eye(head_dim, F_out).repeat(n, 1, 1)


def _heads_from_svd(
    blocks: torch.Tensor, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (offset index per head, W_V, W_O): ⌈rank(M_Δ)/Dh⌉ heads for each offset Δ.

    SPEC T1/T2 with a head-dim budget: M_Δ = U Σ Vᵀ truncated at its numerical rank (float64;
    singular values below max(E, F)·ε·max σ are dropped), split into chunks of Dh components.
    Each SVD runs on the block's non-zero rows and columns only: a corner block of a P = 16
    patch construction is 3 × 192 there, not 768 × 16384.
    """
    E, F_out = blocks.shape[1:]
    factors = []
    for block in blocks:  # one SVD per offset: |N| of them
        rows, cols = block.any(dim=1), block.any(dim=0)
        U, S, Vh = torch.linalg.svd(block[rows][:, cols], full_matrices=False)
        factors.append((rows, cols, U * S, Vh, S))
    top = max((float(f[4].max()) for f in factors if f[4].numel()), default=0.0)
    tol = max(E, F_out) * torch.finfo(blocks.dtype).eps * top
    owners, w_vs, w_os = [], [], []
    for offset, (rows, cols, US, Vh, S) in enumerate(factors):
        rank = int((tol < S).sum()) if top > 0 else 0
        heads = -(-rank // head_dim)
        if heads == 0:
            continue
        width = heads * head_dim
        w_v = blocks.new_zeros(E, width)
        w_v[rows, :rank] = US[:, :rank]
        w_o = blocks.new_zeros(width, F_out)
        w_o[:rank, cols] = Vh[:rank]
        owners += [offset] * heads
        w_vs.append(w_v.reshape(E, heads, head_dim).transpose(0, 1))  # (heads, E, Dh)
        w_os.append(w_o.reshape(heads, head_dim, F_out))
    if not owners:  # a zero kernel: one idle head keeps the layer well formed
        return (
            torch.zeros(1, dtype=torch.long, device=blocks.device),
            blocks.new_zeros(1, E, head_dim),
            blocks.new_zeros(1, head_dim, F_out),
        )
    owner = torch.tensor(owners, device=blocks.device)
    return owner, torch.cat(w_vs), torch.cat(w_os)


def _layer_from_blocks(
    spec: ConvSpec,
    offsets: np.ndarray,
    make_blocks: Callable[[torch.dtype], torch.Tensor],
    widths: tuple[int, int],
    out_bias: torch.Tensor | None,
    grid: tuple[int, int],
    *,
    head_dim: int | None,
    beta: float | None,
    attention: str,
    dtype: torch.dtype | None,
    qk_dim: int | None,
) -> RelPosMHSA:
    """Return the MHSA layer with W_V^h W_O^h = M_Δh and one-hot position-only attention."""
    dtype = dtype or spec.weight.dtype
    device = spec.weight.device
    beta = _check_beta(beta)
    offsets_t = torch.as_tensor(offsets, device=device)
    E, F_out = widths
    if head_dim is None or head_dim >= min(E, F_out):
        Dh = min(E, F_out) if head_dim is None else head_dim
        head_offsets = offsets_t
        w_v, w_o = _one_head_per_offset(make_blocks(dtype), Dh)
    else:
        Dh = head_dim
        owner, w_v, w_o = _heads_from_svd(make_blocks(torch.float64), Dh)
        head_offsets, w_v, w_o = offsets_t[owner], w_v.to(dtype), w_o.to(dtype)
    N = len(head_offsets)
    rel_bias = _head_tables(head_offsets, grid, spec.circular, beta, dtype)
    sink = None
    if not spec.circular:
        sink = torch.full(
            (N,), SINK_LOGIT if beta is None else -beta / 2, dtype=dtype, device=device
        )
    zeros = lambda *shape: lazy_zeros(shape, dtype, device)  # noqa: E731
    Dk = Dh if qk_dim is None else positive_int(qk_dim, "qk_dim")
    return RelPosMHSA(
        grid,
        w_q=zeros(N, E, Dk), b_q=zeros(N, Dk), w_k=zeros(N, E, Dk), b_k=zeros(N, Dk),
        w_v=w_v, b_v=zeros(N, Dh), w_o=w_o,
        b_o=zeros(F_out) if out_bias is None else out_bias.to(dtype).clone(),
        rel_bias=rel_bias, sink_bias=sink, attention=attention,
    )  # fmt: skip


def pixel_mhsa_from_conv(
    conv: nn.Conv2d,
    image_size: int | tuple[int, int],
    *,
    head_dim: int | None = None,
    beta: float | None = None,
    attention: str = "sdpa",
    dtype: torch.dtype | None = None,
    qk_dim: int | None = None,
) -> RelPosMHSA:
    """Return an MHSA layer on pixel tokens (B, H·W, C) → (B, H·W, D) equal to `conv`. SPEC T1.

    |S| heads (k² for a dense kernel), head dim min(C, D); with `head_dim` smaller than that,
    Σ_δ ⌈rank(M_δ)/head_dim⌉ heads. `beta` gives the finite-temperature layer instead.
    `qk_dim` sets the width of the (zero) queries and keys, by default the head dim as in a
    standard MHSA; any width gives the same output, 1 the cheapest.

    >>> conv = nn.Conv2d(3, 4, 5, padding="same")
    >>> layer = pixel_mhsa_from_conv(conv, (8, 8))
    >>> layer.num_heads
    25
    """
    spec = conv_spec(conv)
    image = positive_pair(image_size, "image_size")
    if head_dim is not None:
        head_dim = positive_int(head_dim, "head_dim")
    offsets = kernel_support(spec.kernel_size, spec.dilation)
    _check_grid(spec, offsets, image, image, "pixel")

    def make_blocks(dtype: torch.dtype) -> torch.Tensor:
        return pixel_blocks(spec.weight.to(dtype), spec.groups, spec.dilation)[1]

    widths = (spec.in_channels, spec.out_channels)
    return _layer_from_blocks(
        spec,
        offsets,
        make_blocks,
        widths,
        spec.bias,
        image,
        head_dim=head_dim,
        beta=beta,
        attention=attention,
        dtype=dtype,
        qk_dim=qk_dim,
    )


def patch_mhsa_from_conv(
    conv: nn.Conv2d,
    image_size: int | tuple[int, int],
    patch_size: int,
    *,
    head_dim: int | None = None,
    beta: float | None = None,
    attention: str = "sdpa",
    dtype: torch.dtype | None = None,
    qk_dim: int | None = None,
) -> RelPosMHSA:
    """Return an MHSA layer on patch tokens (B, h·w, P²C) → (B, h·w, P²D) equal to `conv`. SPEC T2.

    |N(S, P)| heads (9 for any kernel with reach ≤ P), head dim min(P²C, P²D); with a smaller
    `head_dim`, Σ_Δ ⌈rank(M_Δ)/head_dim⌉ heads. `beta` gives the finite-temperature layer;
    `qk_dim` the width of the zero queries and keys (default: the head dim).

    >>> conv = nn.Conv2d(3, 4, 5, padding="same")
    >>> patch_mhsa_from_conv(conv, (16, 16), 4).num_heads
    9
    """
    spec = conv_spec(conv)
    image = positive_pair(image_size, "image_size")
    P = positive_int(patch_size, "patch_size")
    if head_dim is not None:
        head_dim = positive_int(head_dim, "head_dim")
    if P > min(image):
        raise ValueError(f"patch_size={P} is larger than the image {image}")
    if image[0] % P or image[1] % P:
        raise ValueError(
            f"image_size={image} is not divisible by patch_size={P}: patch tokens need "
            "H and W to be multiples of the patch size"
        )
    grid = (image[0] // P, image[1] // P)
    offsets = patch_neighbourhood(spec.kernel_size, P, spec.dilation)
    _check_grid(spec, offsets, grid, image, "patch")

    def make_blocks(dtype: torch.dtype) -> torch.Tensor:
        return patch_blocks(spec.weight.to(dtype), P, spec.groups, spec.dilation)[1]

    bias = None if spec.bias is None else spec.bias.repeat(P * P)  # (p1, p2, D) order
    widths = (P * P * spec.in_channels, P * P * spec.out_channels)
    return _layer_from_blocks(
        spec,
        offsets,
        make_blocks,
        widths,
        bias,
        grid,
        head_dim=head_dim,
        beta=beta,
        attention=attention,
        dtype=dtype,
        qk_dim=qk_dim,
    )
