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
    "axis_paddings",
    "axis_patch_offsets",
    "centred_padding",
    "check_strides",
    "kernel_reach",
    "kernel_support",
    "neighbourhood_size",
    "patch_neighbourhood",
    "product_grid",
]


def centred_padding(k: int, dilation: int = 1) -> int:
    """Return d·(k−1)//2: PyTorch's 'same' padding before the input, the default padding here."""
    return dilation * (k - 1) // 2


def axis_offsets(k: int, dilation: int = 1, padding: int | None = None) -> np.ndarray:
    """Return the offsets δ_i = i·d − p of one kernel axis; p = d·(k−1)//2 (PyTorch 'same').

    A strided convolution reads `x[s·y − p + i·d]` for output y: its tap i sits δ_i = i·d − p
    input pixels from the first input pixel s·y of output y (paper_notes, strided convolutions).
    """
    k = positive_int(k, "kernel_size")
    d = positive_int(dilation, "dilation")
    p = centred_padding(k, d) if padding is None else positive_int(padding, "padding", minimum=0)
    return np.arange(k, dtype=np.int64) * d - p


def axis_patch_offsets(
    k: int, patch: int, dilation: int = 1, stride: int = 1, padding: int | None = None
) -> np.ndarray:
    """Return the sorted offsets {⌊(s·b + δ)/P⌋ : 0 ≤ b < P/s, δ ∈ axis offsets} of one axis.

    Output pixel b of a patch sits at input pixel s·b, so s·b + δ runs from δ to δ + P − s:
    the offsets of one δ are ⌊δ/P⌋ and ⌊(δ + P − s)/P⌋. O(k), whatever P is.
    """
    patch = positive_int(patch, "patch_size")
    stride = positive_int(stride, "stride")
    delta = axis_offsets(k, dilation, padding)
    low = delta // patch
    high = (delta + patch - stride) // patch  # the patch of the last output pixel's input
    return np.unique(np.concatenate([low, high]))


def product_grid(axes: list[np.ndarray]) -> np.ndarray:
    """Return the product set axes[0] × … × axes[d−1] as an (n, d) array, row-major."""
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def axis_paddings(
    padding: int | tuple[int, ...] | None, ks: tuple[int, ...], ds: tuple[int, ...]
) -> tuple[int, ...]:
    """Return the padding p_a before each axis; None means 'same'-centred d·(k−1)//2."""
    if padding is None:
        return tuple(centred_padding(k, d) for k, d in zip(ks, ds, strict=True))
    return per_axis(padding, "padding", len(ks), minimum=0)


def kernel_support(
    kernel_size: int | tuple[int, ...],
    dilation: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> np.ndarray:
    """Return the support S of a dense kernel: its offsets δ (key − query), shape (Πk, d).

    Row `i` is the offset of tap `np.unravel_index(i, kernel_size)` of `weight[:, :, *tap]`.
    """
    dims = infer_dims(kernel_size, dilation, padding)
    ks, ds = per_axis(kernel_size, "kernel_size", dims), per_axis(dilation, "dilation", dims)
    ps = axis_paddings(padding, ks, ds)
    return product_grid([axis_offsets(k, d, p) for k, d, p in zip(ks, ds, ps, strict=True)])


def patch_neighbourhood(
    kernel_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...],
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> np.ndarray:
    """Return the patch neighbourhood N(S, P) = {(⌊(s_a·b_a + δ_a)/P_a⌋)_a}, shape (|N|, d).

    paper_notes T2 (definition of N; stride 1: b runs over the whole patch). For odd k and reach
    r = d·(k−1)/2 with dilation ≤ P on an axis, that axis contributes {−m..m} with m = ⌈r/P⌉;
    with a dilation larger than P the set has gaps (k = 3, d = 5, P = 2 gives
    {−3, −2, 0, 2, 3}), which is why it is computed from the definition. Patch sizes may differ
    per axis (rectangular patches, video tubelets); a stride s_a must divide P_a (3×3, stride 2,
    padding 1 on 16×16 patches: {−1, 0}², 4 offsets).
    """
    dims = infer_dims(kernel_size, patch_size, dilation, stride, padding)
    ks = per_axis(kernel_size, "kernel_size", dims)
    Ps = per_axis(patch_size, "patch_size", dims)
    ds = per_axis(dilation, "dilation", dims)
    ss = check_strides(per_axis(stride, "stride", dims), Ps)
    ps = axis_paddings(padding, ks, ds)
    return product_grid(
        [axis_patch_offsets(*axis) for axis in zip(ks, Ps, ds, ss, ps, strict=True)]
    )


def check_strides(strides: tuple[int, ...], patch_size: tuple[int, ...]) -> tuple[int, ...]:
    """Return `strides` if each divides its patch side, else raise naming both and what works."""
    for a, (s, P) in enumerate(zip(strides, patch_size, strict=True)):
        if P % s:
            raise ValueError(
                f"stride={strides} does not divide patch_size={patch_size} on axis {a} "
                f"({P} % {s} = {P % s}): each output token holds P/s pixels, so the patch "
                f"side must be a multiple of the stride (e.g. "
                + (f"{P - P % s} or " if P > s else "")
                + f"{P - P % s + s})"
            )
    return strides


MAX_AXIS_TAPS = 1 << 24  # a gapped axis (dilation > P) is enumerated up to this many taps


def axis_neighbourhood_size(
    k: int, patch: int, dilation: int = 1, stride: int = 1, padding: int | None = None
) -> int:
    """Return |N_a| = |{⌊(s·b + δ)/P⌋}| of one axis without listing it when there are no gaps.

    When the windows [δ, δ + P − s] of consecutive taps touch (dilation ≤ P − s + 1) the offsets
    fill ⌊δ_min/P⌋ … ⌊(δ_max + P − s)/P⌋; otherwise they are enumerated (up to 2²⁴ taps: a
    larger gapped kernel is rejected naming its size).
    """
    k, patch = positive_int(k, "kernel_size"), positive_int(patch, "patch_size")
    d, s = positive_int(dilation, "dilation"), positive_int(stride, "stride")
    p = centred_padding(k, d) if padding is None else positive_int(padding, "padding", minimum=0)
    if patch == 1:  # pixel tokens: one offset per tap
        return k
    if d <= patch - s + 1 or k == 1:
        low, high = -p, d * (k - 1) - p
        return (high + patch - s) // patch - low // patch + 1
    if k > MAX_AXIS_TAPS:
        raise ValueError(
            f"kernel_size={k} with dilation={d} > patch_size={patch} leaves gaps that must be "
            f"listed tap by tap; at most {MAX_AXIS_TAPS} taps per axis are supported"
        )
    return len(axis_patch_offsets(k, patch, d, s, p))


def neighbourhood_size(
    kernel_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...] | None = None,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> int:
    """Return |S| (pixel tokens, `patch_size=None`) or |N(S, P)| (patch tokens). T1/T2.

    A product of per-axis counts (Python integers: no array is built, any size is fine). Pixel
    tokens of a strided convolution are its s×s input patches (`patch_size=None` means P = s).
    """
    dims = infer_dims(kernel_size, patch_size, dilation, stride, padding)
    ks = per_axis(kernel_size, "kernel_size", dims)
    ds = per_axis(dilation, "dilation", dims)
    ss = per_axis(stride, "stride", dims)
    Ps = ss if patch_size is None else per_axis(patch_size, "patch_size", dims)
    check_strides(ss, Ps)
    ps = axis_paddings(padding, ks, ds)
    return math.prod(
        axis_neighbourhood_size(*axis) for axis in zip(ks, Ps, ds, ss, ps, strict=True)
    )


def kernel_reach(
    kernel_size: int | tuple[int, ...], dilation: int | tuple[int, ...] = 1
) -> tuple[int, ...]:
    """Return the reach r = max |δ| per axis (for odd k: d·(k−1)/2)."""
    dims = infer_dims(kernel_size, dilation)
    ks, ds = per_axis(kernel_size, "kernel_size", dims), per_axis(dilation, "dilation", dims)
    return tuple(int(np.abs(axis_offsets(k, d)).max()) for k, d in zip(ks, ds, strict=True))
