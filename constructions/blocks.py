"""The block matrices M_Δ of a convolution on pixel and patch tokens (SPEC §2).

Tokens are row vectors, so a convolution is `out_q = Σ_Δ x_{q+Δ} M_Δ (+ bias)`:

* pixel tokens: `M_δ = K[:, :, δ]ᵀ`, a C×D matrix, one per tap offset δ ∈ S;
* patch tokens: `M_Δ[(a₁, a₂, c), (b₁, b₂, o)] = K̃[Δ·P + a − b][c, o]`, a P²C × P²D matrix
  for each Δ ∈ N(S, P), where K̃[δ] is the dense C×D tap matrix at offset δ (zero off S).

The builders work for any dtype (integer kernels give exact integer blocks for certificates) and
use tensor indexing only: each non-zero C×D tap block is written once, by one `index_put`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from theory._validate import positive_int, positive_pair
from theory.neighbourhoods import axis_offsets, kernel_support, patch_neighbourhood

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
    """Return the tap matrices K̃ of `weight` (D, C/g, kh, kw) as (kh, kw, C, D), groups expanded.

    `K̃[i, j, c, o] = weight[o, c − g(o)·C/g, i, j]` when input channel c lies in the group of
    output channel o, else 0 (a block-diagonal C×D matrix per tap).
    """
    groups = positive_int(groups, "groups")
    D, Cg, kh, kw = weight.shape
    if D % groups:
        raise ValueError(f"groups={groups} does not divide the {D} output channels")
    w = weight.reshape(groups, D // groups, Cg, kh, kw).permute(
        3, 4, 0, 2, 1
    )  # (kh, kw, g, C/g, D/g)
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    taps = w.unsqueeze(4) * eye[:, None, :, None]  # (kh, kw, g, C/g, g, D/g)
    return taps.reshape(kh, kw, groups * Cg, D)


def pixel_blocks(
    weight: torch.Tensor, groups: int = 1, dilation: int | tuple[int, int] = 1
) -> tuple[np.ndarray, torch.Tensor]:
    """Return (offsets S (|S|, 2), blocks M_δ (|S|, C, D)) for pixel tokens. SPEC T1."""
    kh, kw = weight.shape[2:]
    offsets = kernel_support((kh, kw), dilation)
    return offsets, dense_taps(weight, groups).reshape(kh * kw, -1, weight.shape[0])


def _axis_entries(k: int, dilation: int, patch: int, neighbours: np.ndarray) -> np.ndarray:
    """Return (n, a), each (P, k): output pixel b's tap t reads input pixel a of the patch at
    offset neighbours[n] along this axis, i.e. neighbours[n]·P + a − b = δ_t."""
    position = np.arange(patch)[:, None] + axis_offsets(k, dilation)[None, :]  # (P, k): b + δ_t
    return np.stack([np.searchsorted(neighbours, position // patch), position % patch])


def patch_blocks(
    weight: torch.Tensor,
    patch_size: int,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> tuple[np.ndarray, torch.Tensor]:
    """Return (offsets N(S, P) (|N|, 2), blocks M_Δ (|N|, P²C, P²D)) for patch tokens. SPEC T2."""
    P = positive_int(patch_size, "patch_size")
    dh, dw = positive_pair(dilation, "dilation")
    D, _, kh, kw = weight.shape
    taps = dense_taps(weight, groups)  # (kh, kw, C, D)
    C = taps.shape[2]
    offsets = patch_neighbourhood((kh, kw), P, (dh, dw))
    rows, cols = np.unique(offsets[:, 0]), np.unique(offsets[:, 1])
    as_index = partial(torch.as_tensor, device=weight.device)
    n1, a1 = as_index(_axis_entries(kh, dh, P, rows)[:, :, :, None, None])  # (P, kh, 1, 1)
    n2, a2 = as_index(_axis_entries(kw, dw, P, cols)[:, None, None])  # (1, 1, P, kw)
    b1 = as_index(np.arange(P)[:, None, None, None])
    b2 = as_index(np.arange(P)[None, None, :, None])
    blocks = lazy_zeros((len(rows), len(cols), P, P, C, P, P, D), weight.dtype, weight.device)
    # every (b1, tap i, b2, tap j) writes tap (i, j)'s C×D block; the value broadcasts over b
    blocks[n1, n2, a1, a2, :, b1, b2] = taps[None, :, None, :]  # (P, kh, P, kw, C, D)
    return offsets, blocks.reshape(len(rows) * len(cols), P * P * C, P * P * D)
