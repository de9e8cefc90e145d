"""Kernel supports S and patch neighbourhoods N(S, P) (SPEC §1 offsets, §2 definition of N).

Offsets are always **key − query**: a tap reads the input at `query + δ`. PyTorch's
`padding='same'` puts `d·(k−1)//2` zeros before and the rest after, so tap `i` of a kernel of size
`k` and dilation `d` has offset `δ_i = i·d − d·(k−1)//2`. Every set here is a product of two
per-axis sets, returned as an `(n, 2)` integer array in row-major order.

>>> kernel_support(3).tolist()
[[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
>>> [len(patch_neighbourhood(k, 16)) for k in (5, 33, 35)]
[9, 9, 25]
"""

from __future__ import annotations

import numpy as np

from theory._validate import positive_int, positive_pair

__all__ = [
    "axis_offsets",
    "axis_patch_offsets",
    "kernel_reach",
    "kernel_support",
    "neighbourhood_size",
    "patch_neighbourhood",
]


def axis_offsets(k: int, dilation: int = 1) -> np.ndarray:
    """Return the offsets δ_i = i·d − d·(k−1)//2 of one kernel axis (PyTorch 'same')."""
    k = positive_int(k, "kernel_size")
    d = positive_int(dilation, "dilation")
    return np.arange(k, dtype=np.int64) * d - d * (k - 1) // 2


def axis_patch_offsets(k: int, patch: int, dilation: int = 1) -> np.ndarray:
    """Return the sorted patch offsets {⌊(p + δ)/P⌋ : 0 ≤ p < P, δ ∈ axis offsets} of one axis."""
    patch = positive_int(patch, "patch_size")
    pixels = np.arange(patch, dtype=np.int64)
    reached = (pixels[:, None] + axis_offsets(k, dilation)[None, :]) // patch  # (P, k)
    return np.unique(reached)


def _grid(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return the product set rows × cols as an (n, 2) array, row-major."""
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def kernel_support(
    kernel_size: int | tuple[int, int], dilation: int | tuple[int, int] = 1
) -> np.ndarray:
    """Return the support S of a dense kernel: its offsets δ (key − query), shape (kh·kw, 2).

    SPEC §1 (offsets). Row `i·kw + j` is the offset of tap `(i, j)` of `weight[:, :, i, j]`.
    """
    (kh, kw), (dh, dw) = (
        positive_pair(kernel_size, "kernel_size"),
        positive_pair(dilation, "dilation"),
    )
    return _grid(axis_offsets(kh, dh), axis_offsets(kw, dw))


def patch_neighbourhood(
    kernel_size: int | tuple[int, int],
    patch_size: int,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """Return the patch neighbourhood N(S, P) = {(⌊(p₁+δ₁)/P⌋, ⌊(p₂+δ₂)/P⌋)}, shape (|N|, 2).

    SPEC §2 (definition of N). For odd k and reach r = d·(k−1)/2 ≤ P·d this is {−m..m}² with
    m = ⌈r/P⌉; with a dilation larger than P the set has gaps (e.g. k = 3, d = 5, P = 2 gives
    {−3, −2, 0, 2, 3} per axis), which is why it is computed from the definition.
    """
    (kh, kw), (dh, dw) = (
        positive_pair(kernel_size, "kernel_size"),
        positive_pair(dilation, "dilation"),
    )
    patch = positive_int(patch_size, "patch_size")
    return _grid(axis_patch_offsets(kh, patch, dh), axis_patch_offsets(kw, patch, dw))


def neighbourhood_size(
    kernel_size: int | tuple[int, int],
    patch_size: int | None = None,
    dilation: int | tuple[int, int] = 1,
) -> int:
    """Return |S| (pixel tokens, `patch_size=None`) or |N(S, P)| (patch tokens). SPEC T1/T2."""
    if patch_size is None:
        return len(kernel_support(kernel_size, dilation))
    return len(patch_neighbourhood(kernel_size, patch_size, dilation))


def kernel_reach(
    kernel_size: int | tuple[int, int], dilation: int | tuple[int, int] = 1
) -> tuple[int, int]:
    """Return the reach r = max |δ| per axis (for odd k: d·(k−1)/2)."""
    support = kernel_support(kernel_size, dilation)
    reach = np.abs(support).max(axis=0)
    return int(reach[0]), int(reach[1])
