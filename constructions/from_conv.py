"""MHSA layers built from convolutions: single-position tokens (T1) and patch tokens (T2), d ≤ 3.

One head per offset Δ (δ ∈ S for pixel/voxel/sample tokens, Δ ∈ N(S, P) for patches): W_Q = W_K
= 0, the head's bias table is 0 at Δ and −∞ elsewhere, and W_V^h W_O^h = M_Δ (identity on the
narrower side, so no rounding is introduced); the convolution's bias goes to b_O. Then every
head's attention is one-hot on the key at `query + Δ` and the layer is Σ_Δ x_{q+Δ} M_Δ + b: the
convolution. The same recipe serves `nn.Conv1d` (sequences, chunks), `nn.Conv2d` (pixels, ViT
patches, rectangular patches) and `nn.Conv3d` (voxels, video tubelets): everything is a product
over axes.

Borders (paper_notes, Borders): with zero padding a zero-content sink key with logit −10⁴ takes
the weight when a head's key falls outside the grid (exp(−10⁴) is exactly 0 in every float type,
so it takes none otherwise); with circular padding the head's table is 0 at every offset ≡ Δ
modulo the grid, so its key always exists. Finite temperature: `beta=β` puts −β instead of −∞ (and
the sink at −β/2, halfway, so it still wins exactly where the target key is missing).
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
from constructions.geometry import check_strides, kernel_support, patch_neighbourhood
from constructions.mhsa import RelPosMHSA
from constructions.tokens import patch_grid
from constructions.validate import per_axis, positive_int

__all__ = ["SINK_LOGIT", "mhsa_from_conv", "patch_mhsa_from_conv", "pixel_mhsa_from_conv"]

SINK_LOGIT = -1.0e4  # exp(−10⁴) is exactly 0 in float16, bfloat16, float32 and float64


def _check_beta(beta: float | None) -> float | None:
    if beta is None:
        return None
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta must be a positive float or None, got {beta!r}")
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite float or None (exact), got {beta!r}")
    return float(beta)


def input_shape(spec: ConvSpec, input_size: object, name: str = "input_size") -> tuple[int, ...]:
    """Return `input_size` as d ints for the convolution's d axes (an int: the same on each)."""
    if isinstance(input_size, (tuple, list)) and len(input_size) != spec.dims:
        raise ValueError(
            f"{name}={tuple(input_size)!r} has {len(input_size)} entries, but the "
            f"Conv{spec.dims}d has {spec.dims} spatial axes: give {spec.dims} sizes"
        )
    return per_axis(input_size, name, spec.dims)


def _token_grid(
    spec: ConvSpec, size: tuple[int, ...], Ps: tuple[int, ...], pixels: bool, name: str
) -> tuple[int, ...]:
    """Return the token grid n_a/P_a of a patch (or strided pixel) layer, or raise naming why."""
    if pixels:  # the input patches are s×s: the stride must divide the input
        for a, (n, s) in enumerate(zip(size, spec.stride, strict=True)):
            if n % s:
                raise ValueError(
                    f"{name}={size} is not divisible by stride={spec.stride} on axis {a} "
                    f"({n} % {s} = {n % s}): the output grid must be the input grid divided by "
                    f"the stride; use a size that is a multiple of {s} on that axis"
                )
        return tuple(n // s for n, s in zip(size, spec.stride, strict=True))
    check_strides(spec.stride, Ps)
    return patch_grid(size, Ps, name)


def check_grid(
    spec: ConvSpec,
    offsets: np.ndarray,
    grid: tuple[int, ...],
    size: tuple[int, ...],
    tokens: str,
    name: str = "input_size",
) -> None:
    """Reject grids on which the layer cannot express the convolution (paper_notes, Borders)."""
    if spec.circular:
        for axis, ((before, after), n) in enumerate(zip(spec.padding, size, strict=True)):
            if max(before, after) > n:
                raise ValueError(
                    f"{name}={size}: circular padding of {max(before, after)} exceeds the "
                    f"side {n} of axis {axis}; circular 'same' convolution needs padding ≤ size"
                )
        return
    reach = np.abs(offsets).max(axis=0)
    if any(int(r) >= g for r, g in zip(reach, grid, strict=True)):
        shown = "×".join(map(str, grid))
        least = "×".join(str(int(r) + 1) for r in reach)
        raise ValueError(
            f"{name}={size} gives a {shown} {tokens} grid, too small for this kernel: it "
            f"reaches tokens {tuple(int(r) for r in reach)} away, which no key − query offset "
            f"on that grid expresses; use a grid of at least {least} {tokens}"
        )


def head_tables(
    head_offsets: torch.Tensor,
    grid: tuple[int, ...],
    circular: bool,
    beta: float | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Return the bias tables (N, 2g_1−1, …, 2g_d−1): 0 where key − query hits the head's offset."""
    hit = None
    for axis, g in enumerate(grid):
        rel = torch.arange(-(g - 1), g, device=head_offsets.device)  # key − query on this axis
        diff = rel[None, :] - head_offsets[:, axis, None]  # (N, 2g−1)
        axis_hit = diff % g == 0 if circular else diff == 0
        shape = [axis_hit.shape[0]] + [1] * len(grid)
        shape[axis + 1] = 2 * g - 1
        axis_hit = axis_hit.reshape(shape)
        hit = axis_hit if hit is None else hit & axis_hit
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

    T1/T2 with a head-dim budget: M_Δ = U Σ Vᵀ truncated at its numerical rank (float64;
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
    grid: tuple[int, ...],
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
    rel_bias = head_tables(head_offsets, grid, spec.circular, beta, dtype)
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


def mhsa_from_conv(
    conv: nn.Module,
    input_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...] | None = None,
    *,
    head_dim: int | None = None,
    beta: float | None = None,
    attention: str = "auto",
    dtype: torch.dtype | None = None,
    qk_dim: int | None = None,
) -> RelPosMHSA:
    """Return an MHSA layer on the tokens of `constructions.to_tokens` that equals `conv`. T1/T2.

    `conv` is an `nn.Conv1d`, `nn.Conv2d` or `nn.Conv3d` (stride 1, 'same', zero or circular
    padding, any groups, dilation, bias and kernel shape); `input_size` its d spatial sizes.
    `patch_size=None` gives one token per position and |S| heads (T1); an int or a tuple per axis
    gives patch tokens and |N(S, P)| heads (T2). With `head_dim` smaller than min(E, F),
    Σ_Δ ⌈rank(M_Δ)/head_dim⌉ heads. `beta` gives the finite-temperature layer; `qk_dim` the width
    of the zero queries and keys (default: the head dim; any width gives the same output);
    `attention` the evaluation path of `RelPosMHSA`.

    >>> mhsa_from_conv(nn.Conv3d(3, 4, 3, padding="same"), (4, 32, 32), (2, 16, 16)).num_heads
    27
    >>> mhsa_from_conv(nn.Conv1d(1, 1, 7, padding="same"), 16, 4).num_heads
    3
    """
    return _build(
        conv, input_size, patch_size, "input_size", head_dim=head_dim, beta=beta,
        attention=attention, dtype=dtype, qk_dim=qk_dim,
    )  # fmt: skip


def _build(
    conv: nn.Module,
    input_size: object,
    patch_size: object,
    size_name: str,
    *,
    head_dim: int | None,
    beta: float | None,
    attention: str,
    dtype: torch.dtype | None,
    qk_dim: int | None,
) -> RelPosMHSA:
    """Return the T1/T2 layer of `mhsa_from_conv`; errors name the size parameter `size_name`."""
    spec = conv_spec(conv)
    size = input_shape(spec, input_size, size_name)
    if head_dim is not None:
        head_dim = positive_int(head_dim, "head_dim")
    tokens = "pixel" if patch_size is None else "patch"
    if patch_size is None and not spec.strided:
        Ps = Qs = (1,) * spec.dims
        offsets = kernel_support(spec.kernel_size, spec.dilation)
        grid = size

        def make_blocks(dtype: torch.dtype) -> torch.Tensor:
            return pixel_blocks(spec.weight.to(dtype), spec.groups, spec.dilation)[1]
    else:  # patch tokens; pixel tokens of a strided conv read s×s input patches (P = s)
        Ps = spec.stride if patch_size is None else per_axis(patch_size, "patch_size", spec.dims)
        grid = _token_grid(spec, size, Ps, patch_size is None, size_name)
        offsets = patch_neighbourhood(spec.kernel_size, Ps, spec.dilation, spec.stride, spec.pad)
        Qs = tuple(P // s for P, s in zip(Ps, spec.stride, strict=True))

        def make_blocks(dtype: torch.dtype) -> torch.Tensor:
            weight = spec.weight.to(dtype)
            return patch_blocks(weight, Ps, spec.groups, spec.dilation, spec.stride, spec.pad)[1]

    check_grid(spec, offsets, grid, size, tokens, size_name)
    inner_out = math.prod(Qs)
    bias = None if spec.bias is None else spec.bias.repeat(inner_out)  # (b_1, …, b_d, D) order
    return _layer_from_blocks(
        spec,
        offsets,
        make_blocks,
        (math.prod(Ps) * spec.in_channels, inner_out * spec.out_channels),
        bias,
        grid,
        head_dim=head_dim,
        beta=beta,
        attention=attention,
        dtype=dtype,
        qk_dim=qk_dim,
    )


def _require_2d(conv: nn.Module, builder: str) -> None:
    if isinstance(conv, (nn.Conv1d, nn.Conv3d)):
        raise TypeError(
            f"{builder} takes an nn.Conv2d, got {type(conv).__name__}; use "
            "constructions.mhsa_from_conv for 1-D and 3-D convolutions"
        )


def pixel_mhsa_from_conv(
    conv: nn.Conv2d,
    image_size: int | tuple[int, int],
    *,
    head_dim: int | None = None,
    beta: float | None = None,
    attention: str = "auto",
    dtype: torch.dtype | None = None,
    qk_dim: int | None = None,
) -> RelPosMHSA:
    """Return an MHSA layer on pixel tokens (B, H·W, C) → (B, H·W, D) equal to `conv`. T1.

    The 2-D case of `mhsa_from_conv` with `patch_size=None`: |S| heads (k² for a dense kernel),
    head dim min(C, D); with a smaller `head_dim`, Σ_δ ⌈rank(M_δ)/head_dim⌉ heads.

    >>> conv = nn.Conv2d(3, 4, 5, padding="same")
    >>> layer = pixel_mhsa_from_conv(conv, (8, 8))
    >>> layer.num_heads
    25
    """
    _require_2d(conv, "pixel_mhsa_from_conv")
    return _build(
        conv, image_size, None, "image_size", head_dim=head_dim, beta=beta, attention=attention,
        dtype=dtype, qk_dim=qk_dim,
    )  # fmt: skip


def patch_mhsa_from_conv(
    conv: nn.Conv2d,
    image_size: int | tuple[int, int],
    patch_size: int | tuple[int, int],
    *,
    head_dim: int | None = None,
    beta: float | None = None,
    attention: str = "auto",
    dtype: torch.dtype | None = None,
    qk_dim: int | None = None,
) -> RelPosMHSA:
    """Return an MHSA layer on patch tokens (B, h·w, P²C) → (B, h·w, P²D) equal to `conv`. T2.

    The 2-D case of `mhsa_from_conv`: |N(S, P)| heads (9 for any kernel with reach ≤ P), head dim
    min(P²C, P²D); with a smaller `head_dim`, Σ_Δ ⌈rank(M_Δ)/head_dim⌉ heads. `patch_size` may be
    a pair (rectangular patches).

    >>> conv = nn.Conv2d(3, 4, 5, padding="same")
    >>> patch_mhsa_from_conv(conv, (16, 16), 4).num_heads
    9
    """
    _require_2d(conv, "patch_mhsa_from_conv")
    if patch_size is None:
        raise TypeError("patch_mhsa_from_conv needs a patch_size (use pixel_mhsa_from_conv)")
    return _build(
        conv, image_size, patch_size, "image_size", head_dim=head_dim, beta=beta,
        attention=attention, dtype=dtype, qk_dim=qk_dim,
    )  # fmt: skip
