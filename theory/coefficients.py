"""The coefficient matrix G of a convolution: s = dim span{M_Δ} = rank G (T3), any d ≤ 3 axes.

Dimension letters: d axes, N offsets Δ (|S| pixel offsets, or |N(S, P)| patch offsets), P_a the
patch size on axis a (1 for pixel tokens, s_a for pixel tokens of a stride-s_a convolution), s_a
the stride, e ∈ Π_a [−(P_a − s_a), P_a) the differences a − s·b of an input pixel a and an output
pixel b of a patch pair, q a channel pair (c, o) of one group (C·D/g of them).

Tokens are row vectors and a convolution is `out_q = Σ_Δ x_{q+Δ} M_Δ`. Pixel tokens are patch
tokens with P = s, so one formula serves both:

    M_Δ = Σ_e D_e ⊗ K̃[Δ⊙P + e],   D_e[a, b] = 1 iff a − s⊙b = e   (ΠP_a × Π(P_a/s_a), 0/1),

and the D_e have disjoint supports, hence are linearly independent. So s is the rank of
G[Δ, (e, c, o)] = K̃[Δ⊙P + e][c, o] (`coefficient_matrix`), tiny next to the M_Δ themselves.
`live_coefficients` keeps only the columns that can be non-zero (e with some Δ⊙P + e ∈ S, and
channel pairs of one group): the same rank, and no blow-up for large P or depthwise kernels.

>>> import torch
>>> offsets, G = coefficient_matrix(torch.ones(1, 1, 3, 3, dtype=torch.int64), 2)
>>> G.shape, term_rank(G != 0)
((9, 9), 9)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from constructions.blocks import dense_taps
from constructions.geometry import (
    MAX_AXIS_TAPS,
    axis_neighbourhood_size,
    axis_offsets,
    axis_paddings,
    check_strides,
    patch_neighbourhood,
)
from constructions.validate import per_axis

__all__ = [
    "MAX_ENTRIES",
    "check_pattern_size",
    "coefficient_matrix",
    "column_norms",
    "live_coefficients",
    "live_pattern",
    "pair_taps",
    "patch_block",
    "stacked_maps",
    "term_rank",
]

MAX_ENTRIES = 1 << 25  # a coefficient matrix (or pattern) larger than this is refused, not built


def _axes(
    weight_shape: tuple[int, ...],
    patch_size: object,
    dilation: object,
    stride: object = 1,
    padding: object = None,
) -> tuple:
    """Return (ks, Ps, ds, ss, ps): per-axis kernel, patch (s for pixel tokens), dilation,
    stride and padding before the input (None: 'same'-centred d·(k−1)//2)."""
    ks = tuple(int(k) for k in weight_shape[2:])
    dims = len(ks)
    ds = per_axis(dilation, "dilation", dims)
    ss = per_axis(stride, "stride", dims)
    Ps = ss if patch_size is None else per_axis(patch_size, "patch_size", dims)
    check_strides(ss, Ps)
    return ks, Ps, ds, ss, axis_paddings(padding, ks, ds)


def axis_taps(k: int, dilation: int, delta: np.ndarray, pad: int | None = None) -> np.ndarray:
    """Return the tap index i of each pixel offset δ = i·d − p on one axis, k if none."""
    shifted = delta + (dilation * (k - 1) // 2 if pad is None else pad)  # = i·d for tap i
    tap = shifted // dilation
    ok = (shifted % dilation == 0) & (tap >= 0) & (tap < k)
    return np.where(ok, tap, k)


def differences(P: int, s: int) -> np.ndarray:
    """Return the differences e = a − s·b, 0 ≤ a < P, 0 ≤ b < P/s, of one axis: −(P−s) … P−1."""
    return np.arange(-(P - s), P)


def _padded(taps: np.ndarray, dims: int) -> np.ndarray:
    """Return `taps` (*k, …) with one zero tap appended on each axis (index k: 'no tap here')."""
    return np.pad(taps, [(0, 1)] * dims + [(0, 0)] * (taps.ndim - dims))


def _numpy_weight(weight: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(weight, np.ndarray):
        return weight
    return weight.detach().cpu().numpy()


def dense_taps_numpy(weight: torch.Tensor | np.ndarray, groups: int) -> np.ndarray:
    """Return K̃ (*k, C, D) with groups expanded; numpy object arrays (exact big ints) stay exact."""
    w = _numpy_weight(weight)
    if w.dtype != object:
        return dense_taps(torch.from_numpy(np.ascontiguousarray(w)), groups).numpy()
    D, Cg, *ks = w.shape
    dims = len(ks)
    taps = np.zeros((*ks, Cg * groups, D), dtype=object)
    Dg = D // groups
    for g in range(groups):  # one block per group: groups is small next to the entries
        block = w[g * Dg : (g + 1) * Dg].transpose(*range(2, 2 + dims), 1, 0)  # (*k, Cg, Dg)
        taps[..., g * Cg : (g + 1) * Cg, g * Dg : (g + 1) * Dg] = block
    return taps


def pair_taps(weight: torch.Tensor | np.ndarray, groups: int) -> np.ndarray:
    """Return the taps per channel pair (*k, C·D/g): pair q = (group, c_local, o_local).

    Only pairs of one group can be non-zero, so this is K̃ without its structural zeros.
    """
    w = _numpy_weight(weight)
    D, Cg, *ks = w.shape
    dims = len(ks)
    w = w.reshape(groups, D // groups, Cg, *ks)
    return w.transpose(*range(3, 3 + dims), 0, 2, 1).reshape(*ks, groups * Cg * (D // groups))


def _gather(taps: np.ndarray, index: list[np.ndarray], dims: int) -> np.ndarray:
    """Return taps[i_1, …, i_d] with i_a of shape (n_a, E_a), broadcast to (n…, E…, ·)."""
    parts = []
    for a, i in enumerate(index):
        shape = [1] * (2 * dims)
        shape[a], shape[dims + a] = i.shape
        parts.append(i.reshape(shape))
    return taps[tuple(parts)]


def check_pattern_size(
    ks: tuple, Ps: tuple, ds: tuple, ss: tuple | None = None, ps: tuple | None = None
) -> None:
    """Raise, naming the sizes, before listing a neighbourhood or pattern that would not fit.

    Rows: |N| = Π|N_a| offsets; columns: at most Π min(2P_a − s_a, 2k_a) live differences e.
    """
    ss = ss or (1,) * len(ks)
    ps = ps or axis_paddings(None, ks, ds)
    for k in ks:
        if k > MAX_AXIS_TAPS:
            raise ValueError(
                f"kernel_size={ks}: listing the offsets of {k} taps on one axis is refused "
                f"(at most {MAX_AXIS_TAPS} per axis)"
            )
    rows = math.prod(
        axis_neighbourhood_size(*axis) for axis in zip(ks, Ps, ds, ss, ps, strict=True)
    )
    cols = math.prod(min(2 * P - s, 2 * k) for k, P, s in zip(ks, Ps, ss, strict=True))
    if rows * cols > MAX_ENTRIES:
        raise ValueError(
            f"kernel_size={ks} with patch_size={Ps}: the coefficient pattern would have |N| = "
            f"{rows:,} offsets × up to {cols:,} differences = {rows * cols:,} entries; at most "
            f"{MAX_ENTRIES:,} are supported"
        )


def _rows(
    ks: tuple, Ps: tuple, ds: tuple, ss: tuple, ps: tuple
) -> tuple[np.ndarray, list[np.ndarray]]:
    check_pattern_size(ks, Ps, ds, ss, ps)
    offsets = patch_neighbourhood(ks, Ps, ds, ss, ps)
    return offsets, [np.unique(offsets[:, a]) for a in range(len(ks))]


def _check_size(rows: int, columns: int, what: str) -> None:
    if rows * columns > MAX_ENTRIES:
        raise ValueError(
            f"the {what} would have {rows} × {columns} = {rows * columns:,} entries; at most "
            f"{MAX_ENTRIES:,} are supported (give a smaller kernel, patch or channel count)"
        )


def coefficient_matrix(
    weight: torch.Tensor | np.ndarray,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (offsets N (|N|, d), G (|N|, Π(2P_a−s_a)·C·D)), G[Δ, (e, c, o)] = K̃[Δ⊙P + e][c, o].

    T3: s = dim span{M_Δ} = rank G. `patch_size=None` is pixel tokens (P = s; stride 1:
    G[δ] = vec K̃[δ]). Columns are ordered (e_1, …, e_d, c, o) with e_a running from −(P_a−s_a)
    to P_a−1; any dtype (numpy object arrays of Python ints included) is kept.
    """
    ks, Ps, ds, ss, ps = _axes(tuple(weight.shape), patch_size, dilation, stride, padding)
    dims = len(ks)
    offsets, rows = _rows(ks, Ps, ds, ss, ps)
    C, D = int(weight.shape[1]) * groups, int(weight.shape[0])
    _check_size(
        len(offsets), math.prod(2 * P - s for P, s in zip(Ps, ss, strict=True)) * C * D,
        "coefficient matrix",
    )  # fmt: skip
    taps = _padded(dense_taps_numpy(weight, groups), dims)
    index = [
        axis_taps(k, d, r[:, None] * P + differences(P, s)[None, :], p)
        for k, d, P, s, p, r in zip(ks, ds, Ps, ss, ps, rows, strict=True)
    ]
    return offsets, _gather(taps, index, dims).reshape(len(offsets), -1)


def _live_e(k: int, d: int, P: int, s: int, p: int, rows: np.ndarray) -> np.ndarray:
    """Return the sorted e ∈ [−(P−s), P) with Δ·P + e a tap offset for some Δ in `rows`."""
    e = (axis_offsets(k, d, p)[None, :] - rows[:, None] * P).ravel()
    return np.unique(e[(e >= -(P - s)) & (e < P)])


def live_pattern(
    kernel_size: tuple[int, ...],
    patch_size: int | tuple[int, ...] | None,
    dilation: int | tuple[int, ...],
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Return (offsets N, e values per axis, pattern (|N|, Πn_e) bool): where G can be non-zero.

    Pattern[Δ, e] is True iff Δ⊙P + e ∈ S; every channel pair of a group shares it.
    """
    ks, Ps, ds, ss, ps = _axes((1, 1, *kernel_size), patch_size, dilation, stride, padding)
    dims = len(ks)
    offsets, rows = _rows(ks, Ps, ds, ss, ps)
    axes = list(zip(ks, ds, Ps, ss, ps, rows, strict=True))
    e_axes = [_live_e(*axis) for axis in axes]
    _check_size(len(offsets), math.prod(len(e) for e in e_axes), "coefficient pattern")
    hit = None
    for a, ((k, d, P, _, p, r), e) in enumerate(zip(axes, e_axes, strict=True)):
        axis_hit = axis_taps(k, d, r[:, None] * P + e[None, :], p) < k  # (n_a, E_a)
        shape = [1] * (2 * dims)
        shape[a], shape[dims + a] = axis_hit.shape
        axis_hit = axis_hit.reshape(shape)
        hit = axis_hit if hit is None else hit & axis_hit
    return offsets, e_axes, hit.reshape(len(offsets), -1)


def live_coefficients(
    weight: torch.Tensor | np.ndarray,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Return (offsets N, e values per axis, G_live (|N|, Πn_e·C·D/g)): G on its live columns.

    Columns (e, q): e over the live differences of `live_pattern`, q over the channel pairs of
    one group (`pair_taps`). rank G_live = rank G = s; other columns of G are zero.
    """
    ks, Ps, ds, ss, ps = _axes(tuple(weight.shape), patch_size, dilation, stride, padding)
    dims = len(ks)
    offsets, e_axes, _ = live_pattern(ks, Ps, ds, ss, ps)
    rows = [np.unique(offsets[:, a]) for a in range(dims)]
    pairs = int(weight.shape[0]) * int(weight.shape[1])  # (D/g)·(C/g)·g
    _check_size(len(offsets), math.prod(len(e) for e in e_axes) * pairs, "coefficient matrix")
    taps = _padded(pair_taps(weight, groups), dims)
    index = [
        axis_taps(k, d, r[:, None] * P + e[None, :], p)
        for k, d, P, p, r, e in zip(ks, ds, Ps, ps, rows, e_axes, strict=True)
    ]
    return offsets, e_axes, _gather(taps, index, dims).reshape(len(offsets), -1)


def _pair_counts(P: int, s: int) -> np.ndarray:
    """Return, for each e of `differences(P, s)`, how many (a, b) have a − s·b = e."""
    a = np.arange(P)[:, None] - s * np.arange(P // s)[None, :]
    return np.bincount((a + P - s).ravel(), minlength=2 * P - s)


def column_norms(
    patch_size: int | tuple[int, ...] | None,
    in_channels: int,
    out_channels: int,
    dims: int = 2,
    stride: int | tuple[int, ...] = 1,
) -> np.ndarray:
    """Return ‖D_e ⊗ E_co‖_F = √Π_a n_a(e_a) for every column (e, c, o) of `coefficient_matrix`.

    n_a(e) = |{(a, b): a − s·b = e}| (stride 1: P − |e|). ‖Σ D_e ⊗ X_e‖_F² = Σ Π_a n_a(e_a)‖X_e‖_F²,
    so G·diag(norms) has the singular values of the stacked matrix [vec M_Δ]_Δ (the Eckart–Young
    floor uses them).
    """
    ss = per_axis(stride, "stride", dims)
    Ps = ss if patch_size is None else per_axis(patch_size, "patch_size", dims)
    per_e = np.ones(1)
    for P, s in zip(Ps, ss, strict=True):
        per_e = np.outer(per_e, _pair_counts(P, s).astype(np.float64)).ravel()
    return np.repeat(np.sqrt(per_e), in_channels * out_channels)


def _difference_index(Ps: tuple[int, ...], ss: tuple[int, ...]) -> list[np.ndarray]:
    """Return per axis the (P, P/s) index of e = a − s·b into `differences(P, s)`."""
    return [
        np.arange(P)[:, None] - s * np.arange(P // s)[None, :] + P - s
        for P, s in zip(Ps, ss, strict=True)
    ]


def patch_block(
    G: np.ndarray,
    row: int,
    patch_size: int | tuple[int, ...] | None,
    in_channels: int,
    out_channels: int,
    dims: int = 2,
    stride: int | tuple[int, ...] = 1,
) -> np.ndarray:
    """Return M_Δ = Σ_e D_e ⊗ K̃[Δ⊙P+e] (ΠP·C × Π(P/s)·D) from row `row` of G. T2."""
    ss = per_axis(stride, "stride", dims)
    Ps = ss if patch_size is None else per_axis(patch_size, "patch_size", dims)
    C, D = in_channels, out_channels
    g = G[row].reshape(*(2 * P - s for P, s in zip(Ps, ss, strict=True)), C, D)
    diff = _difference_index(Ps, ss)
    parts = []
    for a, idx in enumerate(diff):  # idx[a_a, b_a]: broadcast to (a_1…a_d, b_1…b_d)
        shape = [1] * (2 * dims)
        shape[a], shape[dims + a] = idx.shape
        parts.append(idx.reshape(shape))
    block = g[tuple(parts)]  # (a…, b…, C, D)
    order = (*range(dims), 2 * dims, *range(dims, 2 * dims), 2 * dims + 1)
    outer = math.prod(P // s for P, s in zip(Ps, ss, strict=True))
    return block.transpose(order).reshape(math.prod(Ps) * C, outer * D)


def stacked_maps(
    weight: torch.Tensor | np.ndarray,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
    max_side: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the non-zero parts of the vertical [M_Δ]_Δ and horizontal [M_Δ]_Δ stacks. T3.

    Vertical: rows (input pixel z of the receptive field of a patch, c), columns (b, o), entry
    K̃[z − s·b][c, o]. Horizontal: rows (a, c) of one input patch, columns (output pixel y that it
    reaches, o), entry K̃[a − s·y][c, o]. Pixels not reached hold zeros and are left out. With
    `max_side`, only the first positions along the first axis are kept (a submatrix: its rank
    is a lower bound).
    """
    ks, Ps, ds, ss, ps = _axes(tuple(weight.shape), patch_size, dilation, stride, padding)
    dims = len(ks)
    taps = _padded(dense_taps_numpy(weight, groups), dims)
    C, D = taps.shape[-2:]
    spans = [
        (int(min(axis_offsets(k, d, p))), int(max(axis_offsets(k, d, p))))
        for k, d, p in zip(ks, ds, ps, strict=True)
    ]
    z = [np.arange(lo, P - s + hi + 1) for (lo, hi), P, s in zip(spans, Ps, ss, strict=True)]
    y = [  # output pixels y with a − s·y a tap offset for some input pixel a of the patch
        np.arange(-(hi // s), (P - 1 - lo) // s + 1)
        for (lo, hi), P, s in zip(spans, Ps, ss, strict=True)
    ]
    if max_side is not None:
        rest_z = math.prod(len(v) for v in z[1:]) * C
        rest_y = math.prod(len(v) for v in y[1:]) * D
        z[0], y[0] = z[0][: max(1, max_side // rest_z)], y[0][: max(1, max_side // rest_y)]
    b = [s * np.arange(P // s) for P, s in zip(Ps, ss, strict=True)]  # s·b of output pixels
    a = [np.arange(P) for P in Ps]
    axes = list(zip(ks, ds, ps, ss, z, y, b, a, strict=True))
    v_index = [axis_taps(k, d, zz[:, None] - bb[None, :], p) for k, d, p, _, zz, _, bb, _ in axes]
    h_index = [
        axis_taps(k, d, aa[:, None] - s * yy[None, :], p) for k, d, p, s, _, yy, _, aa in axes
    ]
    order = (*range(dims), 2 * dims, *range(dims, 2 * dims), 2 * dims + 1)
    v = _gather(taps, v_index, dims).transpose(order)  # (z…, C, b…, D)
    h = _gather(taps, h_index, dims).transpose(order)  # (a…, C, y…, D)
    vertical = v.reshape(math.prod(len(zz) for zz in z) * C, math.prod(len(bb) for bb in b) * D)
    horizontal = h.reshape(math.prod(Ps) * C, math.prod(len(yy) for yy in y) * D)
    return vertical, horizontal


def term_rank(pattern: np.ndarray, multiplicity: int = 1) -> int:
    """Return the term rank of a 0/1 pattern: the most non-zeros with no two in a row or column.

    rank(A) ≤ term rank for every A with zeros where the pattern has them (a non-zero r×r minor
    needs r such entries). Computed as a maximum flow between classes of identical rows and
    identical columns (a handful of classes even for a 9 × 184 512 pattern). `multiplicity`
    repeats every column that many times (the C·D/g channel pairs of one difference e).
    """
    pattern = np.asarray(pattern, dtype=bool)
    pattern = pattern[pattern.any(axis=1)][:, pattern.any(axis=0)]
    if pattern.size == 0:
        return 0
    col_types, col_count = np.unique(pattern, axis=1, return_counts=True)  # (rows, K)
    row_types, row_count = np.unique(col_types, axis=0, return_counts=True)  # (R, K)
    R, K = row_types.shape
    n = R + K + 2  # source 0, row classes 1..R, column classes R+1..R+K, sink n−1
    cap = np.zeros((n, n), dtype=np.int64)
    cap[0, 1 : R + 1] = row_count
    cap[1 : R + 1, R + 1 : R + K + 1] = np.where(row_types, pattern.shape[0], 0)
    cap[R + 1 : R + K + 1, n - 1] = np.minimum(col_count * multiplicity, pattern.shape[0])
    flow = 0
    while True:  # Edmonds–Karp: shortest augmenting paths by breadth-first search
        parent = np.full(n, -1)
        parent[0] = 0
        frontier = [0]
        while frontier and parent[n - 1] < 0:
            reach = (cap[frontier] > 0) & (parent < 0)[None, :]  # (len(frontier), n)
            src, dst = np.nonzero(reach)
            dst, first = np.unique(dst, return_index=True)
            parent[dst] = np.asarray(frontier)[src[first]]
            frontier = dst.tolist()
        if parent[n - 1] < 0:
            return flow
        path, v = [], n - 1
        while v != 0:
            path.append((parent[v], v))
            v = parent[v]
        push = min(cap[u, v] for u, v in path)
        for u, v in path:
            cap[u, v] -= push
            cap[v, u] += push
        flow += int(push)
