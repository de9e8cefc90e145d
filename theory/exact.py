"""Exact ranks of integer and rational matrices, and the minors that certify them (T3).

Every rank in `theory` is exact: a matrix is first turned into an integer matrix with the same rank
(`integer_matrix`: integers as they are, floats as the exact rationals they are, scaled by a common
power of two), then

* `exact_rank` computes rank_p over GF(p) with FLINT (`nmod_mat`, p = 2⁶² − 57). rank_p ≤ rank_ℚ
  always (a minor that is non-zero mod p is non-zero over ℤ), so when rank_p meets an upper bound
  (min(rows, columns), or a structural bound the caller passes) it *is* the rank; otherwise FLINT's
  fraction-free `fmpz_mat.rank` decides over ℤ. The sympy route (`DomainMatrix` over ℚ) is the
  independent second implementation, used by the re-checks. `sympy.Matrix.rank` is never used.
* `nonsingular_minor` returns rows I and columns J with det(A[I, J]) ≢ 0 (mod p): a proof that
  rank(A) ≥ |I| that anyone can re-check with one determinant.

>>> exact_rank(np.array([[1, 2], [2, 4]])).rank
1
"""

from __future__ import annotations

from dataclasses import dataclass

import flint
import numpy as np
from sympy.polys.domains import QQ
from sympy.polys.matrices import DomainMatrix

__all__ = [
    "PRIME",
    "RankResult",
    "det_mod_p",
    "exact_rank",
    "integer_matrix",
    "nonsingular_minor",
    "rank_domainmatrix",
]

PRIME = (1 << 62) - 57  # the largest prime below 2⁶²
if not flint.fmpz(PRIME).is_prime():  # pragma: no cover - guards the constant
    raise AssertionError("PRIME is not prime")


@dataclass(frozen=True)
class RankResult:
    """An exact rank and the way it was obtained."""

    rank: int
    method: str


def integer_matrix(a: np.ndarray | object) -> np.ndarray:
    """Return an integer matrix with the same rank as `a` (ints, bools or floats, exactly).

    Integer input is returned as int64 (or Python ints when it does not fit). A float matrix is
    the rational matrix m_ij·2^(e_ij) of its entries; multiplying all entries by one power of two
    2^(−min e) makes every entry an integer without changing the rank. NaN and inf are rejected.
    """
    arr = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)
    if arr.dtype == object:
        return arr
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"matrix must hold integers or floats, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("matrix has non-finite entries: NaN and inf have no exact rank")
    mant, expo = np.frexp(arr)  # arr = mant · 2^expo, 0.5 ≤ |mant| < 1
    mant_int = (mant * 2.0**53).astype(np.int64)  # exact: 53 significant bits
    expo = expo.astype(np.int64) - 53
    nonzero = mant_int != 0
    if not nonzero.any():
        return np.zeros(arr.shape, dtype=np.int64)
    low_bit = np.where(nonzero, mant_int & -mant_int, 1)  # strip trailing zero bits
    zeros = np.log2(low_bit).round().astype(np.int64)
    mant_int, expo = mant_int >> zeros, expo + zeros
    shift = np.where(nonzero, expo - expo[nonzero].min(), 0)  # ≥ 0
    if int(shift.max()) <= 9:  # |mantissa| < 2⁵³, so the shifted value fits in int64
        return np.where(nonzero, mant_int << shift, 0).astype(np.int64)
    out = np.zeros(arr.shape, dtype=object)
    pairs = zip(mant_int[nonzero], shift[nonzero], strict=True)
    out[nonzero] = [int(m) << int(s) for m, s in pairs]
    return out


def _trim(a: np.ndarray) -> np.ndarray:
    """Return `a` without its all-zero rows and columns (the rank is unchanged)."""
    nz = a != 0
    return a[nz.any(axis=1)][:, nz.any(axis=0)]


def _flat_ints(a: np.ndarray) -> list[int]:
    return [int(v) for v in a.ravel()] if a.dtype == object else a.ravel().tolist()


def _nmod(a: np.ndarray, p: int = PRIME) -> flint.nmod_mat:
    rows, cols = a.shape
    if a.dtype != object:
        return flint.nmod_mat(rows, cols, (a % p).ravel().tolist(), p)
    return flint.nmod_mat(rows, cols, [int(v) % p for v in a.ravel()], p)


def exact_rank(a: np.ndarray, *, upper: int | None = None) -> RankResult:
    """Return the exact rank of the integer (or float) matrix `a` over ℚ, and how it was found.

    paper_notes, T3 (exact arithmetic). `upper` is a proven upper bound on the rank (e.g. the
    structural bound of a kernel shape); rank_p meeting it, or min(rows, columns), ends the work.
    """
    a = _trim(integer_matrix(a))
    rows, cols = a.shape
    if rows == 0 or cols == 0:
        return RankResult(0, "zero matrix")
    ceiling = min(rows, cols) if upper is None else min(rows, cols, upper)
    how = ""
    gram = _exact_gram(a)
    if gram is not None:  # rank(A) = rank(A Aᵀ) over ℚ; the Gram is far smaller
        a, how = gram, ", of the exact Gram matrix A·Aᵀ"
        rows = cols = a.shape[0]
    rank_p = _nmod(a).rank()
    if rank_p == ceiling:
        return RankResult(rank_p, f"FLINT nmod_mat rank mod {PRIME}{how}, equal to the upper bound")
    rank = flint.fmpz_mat(rows, cols, _flat_ints(a)).rank()
    return RankResult(rank, f"FLINT fmpz_mat.rank (fraction-free over ℤ){how}")


def _exact_gram(a: np.ndarray) -> np.ndarray | None:
    """Return A·Aᵀ (or Aᵀ·A) of a much wider (taller) int64 matrix when float64 computes it exactly.

    Exact because every product and partial sum is an integer below 2⁵³ in magnitude.
    """
    if a.dtype == object or max(a.shape) < 4 * min(a.shape):
        return None
    if a.shape[0] > a.shape[1]:
        a = a.T
    peak = int(np.abs(a).max())
    if peak * peak * a.shape[1] >= 2**53:
        return None
    f = a.astype(np.float64)
    return (f @ f.T).astype(np.int64)


def rank_domainmatrix(a: np.ndarray) -> int:
    """Return the rank of `a` over ℚ with sympy's DomainMatrix (the independent slow route)."""
    a = _trim(integer_matrix(a))
    if a.size == 0:
        return 0
    rows = [[QQ(int(v)) for v in row] for row in a]
    return DomainMatrix(rows, a.shape, QQ).rank()


def _pivots(reduced: object, rank: int, cols: int) -> np.ndarray:
    """Return the pivot columns of the first `rank` rows of an rref matrix."""
    entries = np.array([int(v) for v in reduced.entries()], dtype=object).reshape(-1, cols)[:rank]
    return np.argmax(entries != 0, axis=1)


def _column_pivots(a: np.ndarray, rank: int, rng: np.random.Generator) -> np.ndarray:
    """Return `rank` columns of `a` (full row rank mod p) whose square submatrix is non-singular."""
    rows, cols = a.shape
    if rows == cols == rank:
        return np.arange(cols)
    for size in (min(cols, 4 * rows + 8), cols):  # a random subset of columns is usually enough
        subset = (
            np.sort(rng.choice(cols, size=size, replace=False)) if size < cols else np.arange(cols)
        )
        reduced, r = _nmod(a[:, subset]).rref()
        if r == rank:
            return subset[_pivots(reduced, r, len(subset))]
    raise AssertionError("rank mod p below the rank used for the minor")  # pragma: no cover


def nonsingular_minor(a: np.ndarray, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows I, columns J) of `a`, |I| = |J| = rank, with det(a[I, J]) ≢ 0 mod PRIME.

    T3. Needs rank_p(a) = `rank` (true whenever `exact_rank` returned it through the
    mod-p route; otherwise a ValueError says the minor does not exist mod PRIME).
    """
    a = integer_matrix(a)
    rng = np.random.default_rng(seed)
    if rank == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if _nmod(a).rank() != rank:
        raise ValueError(f"rank mod {PRIME} differs from {rank}: pick another prime for the minor")
    live_rows = np.flatnonzero((a != 0).any(axis=1))
    live_cols = np.flatnonzero((a != 0).any(axis=0))
    a = a[live_rows][:, live_cols]
    rows = np.arange(a.shape[0])
    if rank < a.shape[0]:  # choose independent rows first: column pivots of the transpose
        rows = _column_pivots(np.ascontiguousarray(a.T), rank, rng)
    cols = _column_pivots(a[rows], rank, rng)
    return live_rows[rows], live_cols[cols]


def det_mod_p(a: np.ndarray, rows: np.ndarray, cols: np.ndarray, p: int = PRIME) -> int:
    """Return det(a[rows, cols]) mod p with FLINT (0 for an empty minor gives 1)."""
    a = integer_matrix(a)
    if len(rows) == 0:
        return 1
    return int(_nmod(a[np.ix_(rows, cols)], p).det())
