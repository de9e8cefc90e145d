"""Witness kernels for T3: a structured one whose blocks have an identity minor, and a random one.

A witness is one integer kernel of a shape; the rank of its coefficient matrix is a lower bound on
the generic s of the shape (rank can only drop on a proper algebraic set), and with the
structural upper bound (term rank) it proves the generic value.

**Structured witness** (`structured_witness`). Give row Δ of G one live column (e, q): a
difference e with Δ⊙P + e ∈ S and a channel pair q, and set that one weight entry to 1. If the
chosen e of two rows with the same pair differ modulo P (componentwise), the square minor on these
rows and columns is the identity: G[Δ_i, (e_j, q_j)] = W[q_j, Δ_i⊙P + e_j] is non-zero only if
some row k with q_k = q_j has Δ_k⊙P + e_k = Δ_i⊙P + e_j, so e_k ≡ e_j (mod P), so k = j and
Δ_i = Δ_j. Which rows get which residue e mod P is a bipartite b-matching (each residue class
holds C·D/g pairs); its size n is the bound proved. The kernel has n non-zero entries, so it is
stored sparsely and checked in O(n) (`theory.checker`) — pixel k = 63, C = D = 63 is a
3969 × 3969 identity minor, P = 16 with C = D = 768 a 9 × 9 one.

**Random witness** (`random_witness`): entries uniform in [−2¹⁰, 2¹⁰]; attains the generic rank
with probability 1, checked by an exact rank (FLINT) and a minor non-zero modulo a prime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from constructions.geometry import axis_offsets, axis_paddings, patch_neighbourhood
from constructions.validate import per_axis
from theory.coefficients import check_pattern_size

__all__ = ["WITNESS_RANGE", "StructuredWitness", "random_witness", "structured_witness"]

WITNESS_RANGE = 1 << 10  # random witness entries are drawn uniformly from [−2¹⁰, 2¹⁰]
MAX_MATCHING_EDGES = 1 << 24


@dataclass(frozen=True)
class StructuredWitness:
    """A sparse integer kernel with an identity minor: rows Δ_i, entries (a_i, c_i, b_i, o_i)."""

    shape: tuple[int, ...]  # (D, C/g, *k)
    entries: np.ndarray  # (n, 3 + d): o, c_local, tap t_1…t_d, value (= 1)
    rows: np.ndarray  # (n, d) offsets Δ_i
    columns: np.ndarray  # (n, 2d + 2): a_1…a_d, c, b_1…b_d, o with a − b = e_i

    @property
    def size(self) -> int:
        """The size n of the identity minor: rank G ≥ n."""
        return len(self.rows)

    def dense(self) -> np.ndarray:
        """Return the kernel as a dense int64 array of `shape` (for small shapes)."""
        w = np.zeros(self.shape, dtype=np.int64)
        w[tuple(self.entries[:, :-1].T)] = self.entries[:, -1]
        return w


def random_witness(weight_shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Return a random integer kernel of `weight_shape`, entries uniform in [−2¹⁰, 2¹⁰], int64."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-WITNESS_RANGE, WITNESS_RANGE + 1, size=weight_shape, dtype=np.int64)
    return torch.from_numpy(w)


def _axis_choices(k: int, d: int, P: int, s: int, p: int, rows: np.ndarray) -> np.ndarray:
    """Return the (row index, residue, e) triples of one axis: Δ_a·P + e ∈ S_a, e ≡ ρ, and
    −(P − s) ≤ e < P (e = a − s·b for an input pixel a and an output pixel b of a patch).

    At most two rows per tap, so at most 2k triples; sorted by (row, residue).
    """
    delta = axis_offsets(k, d, p)
    low = delta // P
    cand = np.concatenate([low, low + 1])  # the rows whose patch can meet δ
    e = np.concatenate([delta, delta]) - cand * P
    ok = (e >= -(P - s)) & (e < P) & np.isin(cand, rows)
    triples = np.stack([np.searchsorted(rows, cand[ok]), e[ok] % P, e[ok]], axis=1)
    return np.unique(triples, axis=0)


def _assign_residues(
    allowed: list[list[int]], capacity: int, residues: int
) -> list[tuple[int, int, int]]:
    """Return a maximum set of (row, residue, slot): each row once, ≤ `capacity` rows a residue.

    A b-matching, solved as a bipartite matching against min(capacity, rows) copies of each
    residue (scipy's Hopcroft–Karp).
    """
    n = len(allowed)
    if capacity >= n:  # every row takes its first residue; no class can overflow
        counts: dict[int, int] = {}
        out = []
        for i, res in enumerate(allowed):
            if res:
                slot = counts.get(res[0], 0)
                counts[res[0]] = slot + 1
                out.append((i, res[0], slot))
        return out
    copies = capacity
    edges = sum(len(res) for res in allowed) * copies
    if edges > MAX_MATCHING_EDGES:
        raise ValueError(
            f"the residue matching of the structured witness needs {edges:,} edges; at most "
            f"{MAX_MATCHING_EDGES:,} are supported"
        )
    rows = np.repeat(np.arange(n), [len(res) * copies for res in allowed])
    cols = np.concatenate(
        [
            np.add.outer(np.asarray(res) * copies, np.arange(copies)).ravel()
            for res in allowed
            if res
        ]
        or [np.zeros(0, dtype=np.int64)]
    )
    graph = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), (n, residues * copies))
    match = maximum_bipartite_matching(graph, perm_type="column")
    return [(i, int(j) // copies, int(j) % copies) for i, j in enumerate(match) if j >= 0]


def structured_witness(
    kernel_size: tuple[int, ...],
    patch_size: tuple[int, ...] | None,
    *,
    in_channels: int,
    out_channels: int,
    groups: int,
    dilation: tuple[int, ...],
    stride: tuple[int, ...] | None = None,
    padding: tuple[int, ...] | None = None,
) -> StructuredWitness:
    """Return the sparse witness with the largest identity minor the residue matching finds. T3.

    Pixel tokens of a strided convolution are its s×s input patches (`patch_size=None`: P = s).
    """
    dims = len(kernel_size)
    ss = (1,) * dims if stride is None else tuple(stride)
    Ps = ss if patch_size is None else per_axis(patch_size, "patch_size", dims)
    pads = axis_paddings(padding, tuple(kernel_size), tuple(dilation))
    check_pattern_size(kernel_size, Ps, dilation, ss, pads)
    offsets = patch_neighbourhood(kernel_size, Ps, dilation, ss, pads)
    axes = [np.unique(offsets[:, a]) for a in range(dims)]
    triples = [
        _axis_choices(*axis)
        for axis in zip(kernel_size, dilation, Ps, ss, pads, axes, strict=True)
    ]
    row_index = np.stack(  # (|N|, d): each row's index on every axis
        [np.searchsorted(axes[a], offsets[:, a]) for a in range(dims)], axis=1
    )
    Cg, Dg = in_channels // groups, out_channels // groups
    pairs = groups * Cg * Dg
    if pairs >= len(offsets):  # one channel pair per row: the first residue of each axis
        first = [t[np.unique(t[:, 0], return_index=True)[1]] for t in triples]  # per row_a
        rho = np.stack([first[a][row_index[:, a], 1] for a in range(dims)], 1)
        e = np.stack([first[a][row_index[:, a], 2] for a in range(dims)], 1)
        matched = np.arange(len(offsets))
        slot = matched  # distinct pairs: the minor is the identity whatever the residues
    else:
        allowed = []
        for idx in row_index:  # fewer channel pairs than rows: a b-matching over residues
            per = [triples[a][triples[a][:, 0] == idx[a], 1] for a in range(dims)]
            grid = np.stack(np.meshgrid(*per, indexing="ij"), -1).reshape(-1, dims)
            allowed.append(np.ravel_multi_index(tuple(grid.T), Ps).tolist() if len(grid) else [])
        found = np.asarray(_assign_residues(allowed, pairs, math.prod(Ps)), dtype=np.int64)
        found = found.reshape(-1, 3)
        matched, slot = found[:, 0], found[:, 2]
        rho = np.stack(np.unravel_index(found[:, 1], Ps), 1)
        e = np.empty_like(rho)
        for a in range(dims):  # the e ≡ ρ_a of each matched row on axis a (a sorted lookup)
            t = triples[a]
            key = t[:, 0] * Ps[a] + t[:, 1]
            e[:, a] = t[np.searchsorted(key, row_index[matched, a] * Ps[a] + rho[:, a]), 2]
    rows = offsets[matched]
    delta = rows * np.asarray(Ps) + e
    taps = (delta + np.asarray(pads)) // np.asarray(dilation)
    group, rest = np.divmod(slot, Cg * Dg)
    c_local, o_local = np.divmod(rest, Dg)
    o, c = group * Dg + o_local, group * Cg + c_local
    b = -(np.minimum(e, 0) // np.asarray(ss))  # ⌈max(−e, 0)/s⌉: the output pixel, a = e + s·b
    a = e + np.asarray(ss) * b
    entries = np.concatenate([o[:, None], c_local[:, None], taps, np.ones((len(o), 1), int)], 1)
    columns = np.concatenate([a, c[:, None], b, o[:, None]], 1)
    return StructuredWitness(
        (out_channels, Cg, *kernel_size), entries.astype(np.int64), rows.astype(np.int64),
        columns.astype(np.int64),
    )  # fmt: skip
