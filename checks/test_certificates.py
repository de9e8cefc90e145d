"""Lower-bound certificates (theory.certificates) and the exact ranks under them (theory.exact)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases
from sympy import Matrix

from theory import Certificate, certify_lower_bound, head_bounds, recheck
from theory.certificates import CertificateError
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


@given(case=conv_cases(max_kernel=4, max_patch=3), pixel=st.booleans())
def test_every_certificate_rechecks_after_a_json_round_trip(case, pixel) -> None:
    P = None if pixel else case.patch_size
    cert = certify_lower_bound(
        case.kernel_size,
        P,
        dilation=case.dilation,
        groups=case.groups,
        in_channels=case.in_channels,
        out_channels=case.out_channels,
    )
    assert (
        cert.bound
        == head_bounds(
            case.kernel_size,
            P,
            dilation=case.dilation,
            groups=case.groups,
            in_channels=case.in_channels,
            out_channels=case.out_channels,
        ).necessary
    )
    report = recheck(Certificate.from_json(cert.to_json()))
    assert report["determinant"] == "non-zero mod p"


def test_certificates_of_float_kernels_are_exact(tmp_path) -> None:
    conv = torch.nn.Conv2d(2, 3, 3, padding="same", dtype=torch.float64)
    with torch.no_grad():  # a rank-1 float kernel with entries of very different magnitudes
        u = torch.tensor([1e-7, 3.0, 2.0**40], dtype=torch.float64)
        conv.weight.copy_(torch.einsum("o,c,i,j->ocij", torch.ones(3), torch.ones(2), u, u))
    cert = certify_lower_bound(kernel=conv)
    path = tmp_path / "cert.json"
    cert.to_json(path)
    assert cert.bound == 1 and recheck(path)["determinant"] == "non-zero mod p"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(det_mod_p=12345), r"^det G\[I, J\] mod p is"),
        (dict(bound=10, rank=10), r"^minor is 9×9 but rank 10"),
        (dict(upper_bound=8), r"^structural bound is 9"),
        (dict(prime=2**62), r"^the modulus \d+ is not prime$"),
    ],
    ids=["determinant", "bound", "structural", "prime"],
)
def test_a_tampered_certificate_fails_the_recheck(change, match) -> None:
    cert = certify_lower_bound(3, 2, in_channels=2, out_channels=2)
    with pytest.raises(CertificateError, match=match):
        recheck(dataclasses.replace(cert, **change))


def test_a_witness_with_a_repeated_row_fails_the_recheck() -> None:
    cert = certify_lower_bound(3, in_channels=3, out_channels=3)  # G = taps: 9 × 9, rank 9
    w = np.array(cert.witness)
    w[:, :, 0, 1] = w[:, :, 0, 0]  # two taps equal: rows δ of G coincide, det = 0
    with pytest.raises(CertificateError, match=r"^det G\[I, J\] mod p is 0"):
        recheck(dataclasses.replace(cert, witness=w.tolist()))
