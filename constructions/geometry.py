"""Kernel supports S and patch neighbourhoods N(S, P) on grids of d ≤ 3 axes (paper_notes, T2).

Offsets are always **key − query**: a tap reads the input at `query + δ`. PyTorch's
`padding='same'` puts `d·(k−1)//2` zeros before and the rest after, so tap `i` of a kernel axis of
size `k` and dilation `d` has offset `δ_i = i·d − d·(k−1)//2`. Every set here is a product of
per-axis sets (d ∈ {1, 2, 3} axes), returned as an `(n, d)` integer array in row-major order.

Sizes are given as an int (the same on every axis) or a tuple per axis; the number of axes is
the length of the first tuple among the arguments, 2 when all are ints (images).

>>> kernel_support(3).tolist()
[[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
>>> [len(patch_neighbourhood(k, 16)) for k in (5, 33, 35)]
[9, 9, 25]
>>> len(patch_neighbourhood((3, 3, 3), (2, 16, 16))), len(patch_neighbourhood((7,), (4,)))
(27, 3)
"""

from __future__ import annotations

import math

import numpy as np

from constructions.validate import infer_dims, per_axis, positive_int

__all__ = [
    "axis_neighbourhood_size",
    "axis_offsets",
    "axis_patch_offsets",
    "kernel_reach",
    "kernel_support",
    "neighbourhood_size",
    "patch_neighbourhood",
    "product_grid",
]


def axis_offsets(k: int, dilation: int = 1) -> np.ndarray:
    """Return the offsets δ_i = i·d − d·(k−1)//2 of one kernel axis (PyTorch 'same')."""
    k = positive_int(k, "kernel_size")
    d = positive_int(dilation, "dilation")
    return np.arange(k, dtype=np.int64) * d - d * (k - 1) // 2


def axis_patch_offsets(k: int, patch: int, dilation: int = 1) -> np.ndarray:
    """Return the sorted patch offsets {⌊(p + δ)/P⌋ : 0 ≤ p < P, δ ∈ axis offsets} of one axis.

    For one δ the offsets are ⌊δ/P⌋ and, unless P divides δ, ⌊δ/P⌋ + 1: O(k), whatever P is.
    """
    patch = positive_int(patch, "patch_size")
    delta = axis_offsets(k, dilation)
    low = delta // patch
    high = (delta + patch - 1) // patch  # ⌊(δ + P − 1)/P⌋: the patch of the last pixel
    return np.unique(np.concatenate([low, high]))


def product_grid(axes: list[np.ndarray]) -> np.ndarray:
    """Return the product set axes[0] × … × axes[d−1] as an (n, d) array, row-major."""
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def kernel_support(
    kernel_size: int | tuple[int, ...], dilation: int | tuple[int, ...] = 1
) -> np.ndarray:
    """Return the support S of a dense kernel: its offsets δ (key − query), shape (Πk, d).

    Row `i` is the offset of tap `np.unravel_index(i, kernel_size)` of `weight[:, :, *tap]`.
    """
    dims = infer_dims(kernel_size, dilation)
    ks, ds = per_axis(kernel_size, "kernel_size", dims), per_axis(dilation, "dilation", dims)
    return product_grid([axis_offsets(k, d) for k, d in zip(ks, ds, strict=True)])


def patch_neighbourhood(
    kernel_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...],
    dilation: int | tuple[int, ...] = 1,
) -> np.ndarray:
    """Return the patch neighbourhood N(S, P) = {(⌊(p_a+δ_a)/P_a⌋)_a}, shape (|N|, d).

    paper_notes T2 (definition of N). For odd k and reach r = d·(k−1)/2 with dilation ≤ P on an
    axis, that axis contributes {−m..m} with m = ⌈r/P⌉; with a dilation larger than P the set has
    gaps (k = 3, d = 5, P = 2 gives {−3, −2, 0, 2, 3}), which is why it is computed from the
    definition. Patch sizes may differ per axis (rectangular patches, video tubelets).
    """
    dims = infer_dims(kernel_size, patch_size, dilation)
    ks = per_axis(kernel_size, "kernel_size", dims)
    ps = per_axis(patch_size, "patch_size", dims)
    ds = per_axis(dilation, "dilation", dims)
    return product_grid([axis_patch_offsets(k, p, d) for k, p, d in zip(ks, ps, ds, strict=True)])


MAX_AXIS_TAPS = 1 << 24  # a gapped axis (dilation > P) is enumerated up to this many taps


def axis_neighbourhood_size(k: int, patch: int, dilation: int = 1) -> int:
    """Return |N_a| = |{⌊(p + δ)/P⌋}| of one axis without listing it when there are no gaps.

    With dilation ≤ P the offsets fill ⌊δ_min/P⌋ … ⌈δ_max/P⌉; otherwise they are enumerated
    (up to 2²⁴ taps: a larger gapped kernel is rejected naming its size).
    """
    k, patch = positive_int(k, "kernel_size"), positive_int(patch, "patch_size")
    d = positive_int(dilation, "dilation")
    if patch == 1:  # pixel tokens: one offset per tap
        return k
    if d <= patch or k == 1:
        low, high = -(d * (k - 1) // 2), d * (k - 1) - d * (k - 1) // 2
        return -(-high // patch) - low // patch + 1
    if k > MAX_AXIS_TAPS:
        raise ValueError(
            f"kernel_size={k} with dilation={d} > patch_size={patch} leaves gaps that must be "
            f"listed tap by tap; at most {MAX_AXIS_TAPS} taps per axis are supported"
        )
    return len(axis_patch_offsets(k, patch, d))


def neighbourhood_size(
    kernel_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...] | None = None,
    dilation: int | tuple[int, ...] = 1,
) -> int:
    """Return |S| (pixel tokens, `patch_size=None`) or |N(S, P)| (patch tokens). T1/T2.

    A product of per-axis counts (Python integers: no array is built, any size is fine).
    """
    dims = infer_dims(kernel_size, patch_size, dilation)
    ks = per_axis(kernel_size, "kernel_size", dims)
    ds = per_axis(dilation, "dilation", dims)
    ps = (1,) * dims if patch_size is None else per_axis(patch_size, "patch_size", dims)
    return math.prod(axis_neighbourhood_size(k, p, d) for k, p, d in zip(ks, ps, ds, strict=True))


def kernel_reach(
    kernel_size: int | tuple[int, ...], dilation: int | tuple[int, ...] = 1
) -> tuple[int, ...]:
    """Return the reach r = max |δ| per axis (for odd k: d·(k−1)/2)."""
    dims = infer_dims(kernel_size, dilation)
    ks, ds = per_axis(kernel_size, "kernel_size", dims), per_axis(dilation, "dilation", dims)
    return tuple(int(np.abs(axis_offsets(k, d)).max()) for k, d in zip(ks, ds, strict=True))
