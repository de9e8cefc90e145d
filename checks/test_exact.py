"""Exact ranks (theory.exact): FLINT against sympy's DomainMatrix, floats as exact rationals."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from sympy import Matrix

from theory.exact import exact_rank, integer_matrix, nonsingular_minor, rank_domainmatrix


@st.composite
def planted_rank(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """Draw an integer matrix U·V of known rank r (checked with sympy's DomainMatrix)."""
    rows, cols = draw(st.integers(1, 9)), draw(st.integers(1, 30))
    r = draw(st.integers(0, min(rows, cols)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    a = rng.integers(-5, 6, (rows, r)) @ rng.integers(-5, 6, (r, cols))
    return a, rank_domainmatrix(a)


@given(case=planted_rank())
def test_exact_rank_agrees_with_sympy_domainmatrix(case) -> None:
    a, rank = case
    assert exact_rank(a).rank == rank
    rows, cols = nonsingular_minor(a, rank)
    assert Matrix(a[np.ix_(rows, cols)].tolist()).det() != 0 if rank else len(rows) == 0


@given(
    x=st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=6, max_size=6)
)
def test_float_matrices_become_integer_matrices_with_the_same_exact_ratios(x) -> None:
    a = np.array(x).reshape(2, 3)
    m = integer_matrix(a)
    ratios = {
        Fraction(int(i)) / Fraction(f) for i, f in zip(m.ravel(), a.ravel(), strict=True) if f
    }
    assert len(ratios) <= 1 and all(
        int(i) == 0 for i, f in zip(m.ravel(), a.ravel(), strict=True) if f == 0
    )
