"""The block matrices M_Δ of a convolution on pixel and patch tokens, any number of axes (T1, T2).

Dimension letters: d spatial axes, k_a kernel size, P_a patch size on axis a, C/D channels.
Tokens are row vectors, so a convolution is `out_q = Σ_Δ x_{q+Δ} M_Δ (+ bias)`:

* pixel tokens: `M_δ = K[:, :, δ]ᵀ`, a C×D matrix, one per tap offset δ ∈ S;
* patch tokens: `M_Δ[(a, c), (b, o)] = K̃[Δ⊙P + a − s⊙b][c, o]`, a (ΠP_a·C) × (Π(P_a/s_a)·D)
  matrix for each Δ ∈ N(S, P), where a is an input pixel of a patch and b an output pixel of the
  output patch (row-major, then channel), s the stride (1: the same patch on both sides) and
  K̃[δ] is the dense C×D tap matrix at offset δ = i·dil − p (zero off S).

The builders work for any dtype (integer kernels give exact integer blocks) and use tensor
indexing only: each non-zero C×D tap block is written once, by one `index_put`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from constructions.geometry import (
    axis_offsets,
    axis_paddings,
    check_strides,
    kernel_support,
    patch_neighbourhood,
)
from constructions.validate import per_axis, positive_int

__all__ = ["dense_taps", "lazy_zeros", "patch_blocks", "pixel_blocks"]


def lazy_zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Return a zero tensor; on the CPU through numpy's calloc, so untouched pages cost nothing.

    The patch blocks are mostly zeros (P = 16, k = 3: 0.4 % non-zero): `torch.zeros` would spend
    most of the construction time writing zeros that the allocator can hand out for free.
    """
    try:
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    except TypeError:  # bfloat16 and other dtypes numpy lacks
        np_dtype = None
    if torch.device(device).type != "cpu" or np_dtype is None:
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.zeros(shape, dtype=np_dtype))


def dense_taps(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Return the tap matrices K̃ of `weight` (D, C/g, *k) as (*k, C, D), groups expanded.

    `K̃[t, c, o] = weight[o, c − g(o)·C/g, t]` when input channel c lies in the group of output
    channel o, else 0 (a block-diagonal C×D matrix per tap t).
    """
    groups = positive_int(groups, "groups")
    D, Cg, *ks = weight.shape
    if D % groups:
        raise ValueError(f"groups={groups} does not divide the {D} output channels")
    dims = len(ks)
    w = weight.reshape(groups, D // groups, Cg, *ks)
    w = w.permute(*range(3, 3 + dims), 0, 2, 1)  # (*k, g, C/g, D/g)
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    taps = w.unsqueeze(-2) * eye[:, None, :, None]  # (*k, g, C/g, g, D/g)
    return taps.reshape(*ks, groups * Cg, D)


def pixel_blocks(
    weight: torch.Tensor, groups: int = 1, dilation: int | tuple[int, ...] = 1
) -> tuple[np.ndarray, torch.Tensor]:
    """Return (offsets S (|S|, d), blocks M_δ (|S|, C, D)) for pixel tokens (stride 1). T1."""
    ks = tuple(weight.shape[2:])
    offsets = kernel_support(ks, per_axis(dilation, "dilation", len(ks)))
    return offsets, dense_taps(weight, groups).reshape(len(offsets), -1, weight.shape[0])


def _axis_entries(
    k: int, dilation: int, patch: int, stride: int, pad: int, neighbours: np.ndarray
) -> np.ndarray:
    """Return (n, a), each (P/s, k): output pixel b's tap t reads input pixel a of the patch at
    offset neighbours[n] along this axis, i.e. neighbours[n]·P + a − s·b = δ_t."""
    b = np.arange(patch // stride)[:, None] * stride
    position = b + axis_offsets(k, dilation, pad)[None, :]  # (P/s, k): s·b + δ_t
    return np.stack([np.searchsorted(neighbours, position // patch), position % patch])


def patch_blocks(
    weight: torch.Tensor,
    patch_size: int | tuple[int, ...],
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """Return (offsets N (|N|, d), blocks M_Δ (|N|, ΠP·C, Π(P/s)·D)) for patch tokens. T2.

    `padding` is p_a before each axis (None: 'same'-centred); pixel tokens of a strided
    convolution are the case P = s.
    """
    D, _, *ks = weight.shape
    dims = len(ks)
    Ps = per_axis(patch_size, "patch_size", dims)
    ds = per_axis(dilation, "dilation", dims)
    ss = check_strides(per_axis(stride, "stride", dims), Ps)
    pads = axis_paddings(padding, tuple(ks), ds)
    Qs = tuple(P // s for P, s in zip(Ps, ss, strict=True))  # output pixels per patch side
    taps = dense_taps(weight, groups)  # (*k, C, D)
    C = taps.shape[-2]
    offsets = patch_neighbourhood(tuple(ks), Ps, ds, ss, pads)
    axes = [np.unique(offsets[:, a]) for a in range(dims)]
    # index tensors broadcast over (Q_1, k_1, …, Q_d, k_d): axis a lives at positions 2a, 2a+1
    n_idx, a_idx, b_idx = [], [], []
    for a, (k, P, d, s, p) in enumerate(zip(ks, Ps, ds, ss, pads, strict=True)):
        shape = [1] * (2 * dims)
        shape[2 * a], shape[2 * a + 1] = P // s, k
        n, pos = torch.as_tensor(_axis_entries(k, d, P, s, p, axes[a]), device=weight.device)
        n_idx.append(n.reshape(shape))
        a_idx.append(pos.reshape(shape))
        b_shape = [1] * (2 * dims)
        b_shape[2 * a] = P // s
        b_idx.append(torch.arange(P // s, device=weight.device).reshape(b_shape))
    lens = [len(ax) for ax in axes]
    blocks = lazy_zeros((*lens, *Ps, C, *Qs, D), weight.dtype, weight.device)
    # every (b, tap) pair writes tap t's C×D block; the value broadcasts over b
    value_shape = [1] * (2 * dims)
    for a, k in enumerate(ks):
        value_shape[2 * a + 1] = k
    blocks[(*n_idx, *a_idx, slice(None), *b_idx)] = taps.reshape(*value_shape, C, D)
    E, F = math.prod(Ps) * C, math.prod(Qs) * D
    return offsets, blocks.reshape(len(offsets), E, F)
