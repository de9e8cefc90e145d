"""T4: the exact minimum number of heads of a given kernel — s or s + 1, by Gordan's alternative.

Dimension letters: R rows (the offsets Δ ∈ N, or their residues modulo a circular grid), s the
rank of the coefficient matrix G (`theory.coefficients`), J s independent columns of G.

Theorem (paper_notes, T4). On interior tokens, with circular padding, or with zero padding made
explicit by zero tokens, attention at x = 0 is translation-invariant. An exact layer with s heads
exists iff col G holds a vector positive on the active rows (M_Δ ≠ 0). Gordan's alternative:
exactly one of

* some y has G_J y > 0 on the active rows — then s heads suffice (and are needed, T3);
* some z ≥ 0, z ≠ 0 on the active rows, has zᵀ G = 0 — then s heads are impossible, and s + 1
  heads (a basis shifted by multiples of the all-ones vector, plus that vector) suffice.

y and z are found by a linear program (scipy's HiGHS), then made exact: y by rounding to integers
and checking G_J y > 0 in integers, z as the exact null vector of its support (a vertex of the
LP is one). An answer that does not verify exactly is never reported: the certificate goes through
the stand-alone `theory.checker`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import flint
import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from constructions.tokens import patch_grid
from constructions.validate import per_axis
from theory.bounds import KernelShape, concrete_kernel, patch_sizes
from theory.certificates import (
    Certificate,
    certificate_format,
    claim_of,
    minor_columns,
    witness_json,
)
from theory.checker import check
from theory.coefficients import live_coefficients
from theory.exact import PRIME, det_mod_p, exact_rank, integer_matrix, nonsingular_minor

__all__ = ["MAX_ROWS", "MinimumHeads", "merged_rows", "minimum_heads"]

MAX_ROWS = 1024  # offsets (rows of G) up to which the exact minimum is computed


@dataclass(frozen=True)
class MinimumHeads:
    """The exact minimum of T4 for one kernel, with its Gordan certificate."""

    heads: int  # the minimum: span_dim or span_dim + 1
    span_dim: int  # s = dim span{M_Δ}
    offsets: int  # |N| (merged rows when offsets alias on a circular grid)
    kind: str  # "positive vector" (s heads) or "obstruction" (s + 1 heads)
    certificate: Certificate
    rows: np.ndarray  # (R, d) offsets Δ (or residues ρ modulo `grid`)
    grid: tuple[int, ...] | None  # the circular token grid when offsets alias, else None
    basis: np.ndarray  # (R, s) float64: the columns G_J (a basis of col G)
    vector: np.ndarray  # (R,) float64: G_J y > 0 on the active rows, or 1 on them


def merged_rows(
    offsets: np.ndarray, G: np.ndarray, grid: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows, G'): G unchanged without a grid, else rows summed by residue mod the grid.

    Circular padding on a grid g: offsets Δ ≡ Δ' (mod g) reach the same key, so their blocks act
    as one: M'_ρ = Σ_{Δ ≡ ρ} M_Δ (T3 hypothesis (a): without aliasing nothing merges).
    """
    if grid is None:
        return offsets, G
    residues = offsets % np.asarray(grid)
    rows, inverse = np.unique(residues, axis=0, return_inverse=True)
    merged = np.zeros((len(rows), G.shape[1]), dtype=G.dtype)
    np.add.at(merged, inverse.ravel(), G)
    return rows, merged


def _positive_vector(GJ: np.ndarray, active: np.ndarray) -> np.ndarray | None:
    """Return integers y with G_J y > 0 on the active rows, or None if there are none."""
    A = GJ[active].astype(np.float64)
    scale = np.abs(A).max(axis=1, keepdims=True)
    res = linprog(
        np.zeros(A.shape[1]), A_ub=-A / scale, b_ub=-np.ones(len(A)),
        bounds=[(None, None)] * A.shape[1], method="highs",
    )  # fmt: skip
    if res.status != 0:
        return None
    exact = GJ[active].astype(object)
    for bits in (0, 8, 16, 24, 32, 48):  # rounded y keeps G_J y > 0: the LP left a margin
        y = np.array([round(v * 2**bits) for v in res.x], dtype=object)
        if (exact @ y > 0).all():
            return y
    return None  # pragma: no cover - the margin of 1 survives rounding at 48 bits


def _obstruction(GJ: np.ndarray, active: np.ndarray, seed: int) -> np.ndarray | None:
    """Return integers z ≥ 0 (zero off the active rows, non-zero) with zᵀ G_J = 0, or None."""
    idx = np.flatnonzero(active)
    A = GJ[idx].astype(np.float64)
    A = A / np.abs(A).max()
    rng = np.random.default_rng(seed)
    for attempt in range(8):  # a vertex of {z ≥ 0, Σz = 1, Aᵀz = 0}; other objectives if needed
        cost = np.zeros(len(idx)) if attempt == 0 else rng.random(len(idx))
        res = linprog(
            cost, A_eq=np.vstack([A.T, np.ones(len(idx))]),
            b_eq=np.r_[np.zeros(A.shape[1]), 1.0], bounds=[(0, None)] * len(idx), method="highs",
        )  # fmt: skip
        if res.status != 0:
            return None
        support = np.flatnonzero(res.x > 1e-9)
        sub = GJ[idx[support]]
        basis, nullity = flint.fmpz_mat(sub.T.shape[0], len(support), [
            int(v) for v in sub.T.ravel()
        ]).nullspace()  # fmt: skip
        if nullity != 1:
            continue
        z_sup = np.array([int(basis[i, 0]) for i in range(len(support))], dtype=object)
        if (z_sup <= 0).all():
            z_sup = -z_sup
        if (z_sup > 0).all():
            z = np.zeros(len(GJ), dtype=object)
            z[idx[support]] = z_sup
            return z
    return None


def _relations(G: np.ndarray, I: np.ndarray, J: np.ndarray) -> list[tuple[int, int, list[int]]]:
    """Return (row, c, x) with c·G[row] = Σ_i x_i·G[I_i] for every row not in I (exact)."""
    rest = np.setdiff1d(np.arange(len(G)), I)
    if len(rest) == 0:
        return []
    s = len(I)
    A = flint.fmpz_mat(s, s, [int(v) for v in G[np.ix_(I, J)].T.ravel()])  # G[I, J]ᵀ
    B = flint.fmpz_mat(s, len(rest), [int(v) for v in G[np.ix_(rest, J)].T.ravel()])
    lam = A.solve(B)  # fmpq (s, |rest|): G[rest, J]ᵀ = G[I, J]ᵀ λ
    out = []
    for col, row in enumerate(rest.tolist()):
        fracs = [lam[i, col] for i in range(s)]
        c = math.lcm(*(int(f.q) for f in fracs)) if fracs else 1
        out.append((row, c, [int(f.p) * (c // int(f.q)) for f in fracs]))
    return out


def _grid(
    shape: KernelShape,
    Ps: tuple[int, ...] | None,
    image_size: object,
    circular: bool,
    offsets: np.ndarray,
) -> tuple[int, ...] | None:
    """Return the circular grid whose residues merge offsets, None if nothing aliases."""
    if image_size is None:
        return None
    size = per_axis(image_size, "image_size", shape.dims)
    grid = patch_grid(size, Ps or shape.stride, "image_size")
    reach = np.abs(offsets).max(axis=0)
    if not circular:
        if any(int(r) >= g for r, g in zip(reach, grid, strict=True)):
            raise ValueError(
                f"image_size={size} gives a {'×'.join(map(str, grid))} token grid, too small "
                f"for offsets up to {tuple(int(r) for r in reach)} with zero padding; use a "
                "larger image (or circular padding, where aliased offsets merge)"
            )
        return None
    aliases = any(2 * int(r) >= g for r, g in zip(reach, grid, strict=True))
    return grid if aliases else None


def minimum_heads(
    kernel: torch.Tensor | nn.Module,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    image_size: int | tuple[int, ...] | None = None,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
    seed: int = 0,
) -> MinimumHeads:
    """Return the exact minimum number of heads of an exact layer for `kernel`, certified. T4.

    `kernel` is an `nn.Conv1d/2d/3d` (its stride and padding are used) or a weight tensor
    (D, C/g, *k) with `groups`, `dilation`, `stride`, `padding`; `patch_size=None` means one token
    per position (for a stride-s convolution, its s×s input patches). The minimum holds on
    interior tokens, with circular padding, and with zero padding when the grid is padded with
    explicit zero tokens (`tight_mhsa_from_conv(..., explicit_padding=True)`). With `image_size`
    and a circular convolution on a grid where offsets alias, aliased blocks merge first.

    >>> w1 = [[7, 2, 10], [15, -6, 1], [12, 12, 1]]; w2 = [[1, 11, 1], [-3, 15, 4], [0, 3, 7]]
    >>> minimum_heads(torch.tensor([[w1], [w2]], dtype=torch.float64)).heads
    2
    """
    start = time.perf_counter()
    w, shape, circular = concrete_kernel(
        kernel, {"groups": groups, "dilation": dilation, "stride": stride, "padding": padding}
    )
    Ps = patch_sizes(patch_size, shape.dims)
    weight = integer_matrix(w.numpy().reshape(w.shape[0], -1)).reshape(tuple(w.shape))
    offsets, e_axes, G = live_coefficients(weight, Ps, groups=shape.groups, **shape.geometry())
    if len(offsets) > MAX_ROWS:
        raise ValueError(
            f"the kernel has {len(offsets)} offsets (rows of G); the exact minimum is computed "
            f"for at most {MAX_ROWS}"
        )
    grid = _grid(shape, Ps, image_size, circular, offsets)
    rows, G = merged_rows(offsets, integer_matrix(G), grid)
    active = (G != 0).any(axis=1)
    s = exact_rank(G).rank
    I, J = nonsingular_minor(G, s, seed) if s else (np.zeros(0, int), np.zeros(0, int))
    GJ = G[:, J]
    # a zero kernel (s = 0, no active row): the empty y is vacuously positive, 0 heads
    y = _positive_vector(GJ, active) if s else np.zeros(0, dtype=object)
    z = None if y is not None else _obstruction(GJ, active, seed)
    if y is None and z is None:  # pragma: no cover - Gordan: one of them exists
        raise RuntimeError("neither a positive vector nor an obstruction verified exactly")
    heads = s if y is not None else s + 1
    proof = {
        "kind": "gordan",
        "span_dim": s,
        "minor": {
            "kind": "determinant", "rows": rows[I].tolist(),
            "columns": minor_columns(J, e_axes, shape), "prime": PRIME,
            "det_mod_p": det_mod_p(G, I, J) if s else 1,
        },
        "relations": [
            {"row": rows[r].tolist(), "scale": c, "coefficients": x}
            for r, c, x in _relations(G, I, J)
        ],
        "positive": None if y is None else [int(v) for v in y],
        "obstruction": None if z is None else [
            [rows[i].tolist(), int(z[i])] for i in np.flatnonzero(z != 0)
        ],
    }  # fmt: skip
    data = {
        "format": certificate_format(shape),
        "claim": claim_of(shape, Ps, grid=None if grid is None else list(grid), heads=heads),
        "witness": witness_json(np.asarray(weight)),
        "proof": proof,
    }
    check(data)  # never report an answer the stand-alone checker does not accept
    kind = "positive vector" if y is not None else "obstruction"
    vector = (GJ @ y).astype(np.float64) if y is not None else active.astype(np.float64)
    certificate = Certificate(data, None, f"Gordan: {kind}", time.perf_counter() - start)
    return MinimumHeads(
        heads=heads, span_dim=s, offsets=len(rows), kind=kind, certificate=certificate,
        rows=rows, grid=grid, basis=GJ.astype(np.float64), vector=vector,
    )  # fmt: skip
