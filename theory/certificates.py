"""Lower-bound certificates: an integer witness kernel whose exact rank proves T3 (SPEC §3 b).

A certificate says: *this* integer kernel (stored entry by entry) has coefficient matrix G with a
square submatrix G[I, J] whose determinant is non-zero modulo the prime p, so rank G ≥ |I| = s,
so every MHSA layer equal to that convolution has at least s heads (T3). A non-zero residue mod p
proves a non-zero integer determinant, so no floating point and no trust in the producer is needed:
`recheck` rebuilds G from the stored kernel by an independent route (an offset lookup table and an
explicit group mask instead of `coefficient_matrix`'s index arithmetic and `dense_taps`), and
recomputes the determinant with FLINT and, for small minors, with sympy's DomainMatrix over GF(p).
When s also equals the structural bound (`tight`), it is the exact worst case of the shape.

>>> cert = certify_lower_bound(3, 2, in_channels=1, out_channels=1)
>>> cert.bound, cert.tight, recheck(Certificate.from_json(cert.to_json()))["determinant"]
(9, True, 'non-zero mod p')
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import flint
import numpy as np
import sympy
import torch
from sympy.polys.domains import GF
from sympy.polys.matrices import DomainMatrix
from torch import nn

from theory._validate import positive_int
from theory.bounds import (
    _concrete,
    coefficient_matrix,
    kernel_shape,
    structural_bound,
    witness_kernel,
)
from theory.exact import PRIME, det_mod_p, exact_rank, integer_matrix, nonsingular_minor
from theory.neighbourhoods import kernel_support, patch_neighbourhood

__all__ = ["Certificate", "CertificateError", "certify_lower_bound", "recheck"]

SYMPY_RECHECK_MAX = 40  # minors up to this size are also re-checked with sympy's DomainMatrix


class CertificateError(ValueError):
    """A certificate that does not re-check: the message names the failing claim."""


@dataclass(frozen=True)
class Certificate:
    """A checkable proof that some kernel of a shape needs ≥ `bound` heads (SPEC T3)."""

    tokens: str  # "pixel" or "patch"
    kernel_size: tuple[int, int]
    patch_size: int | None
    dilation: tuple[int, int]
    in_channels: int
    out_channels: int
    groups: int
    bound: int  # heads necessary: s = rank G of the witness
    rank: int  # exact rank of G over ℚ
    upper_bound: int  # structural bound for every kernel of the shape
    tight: bool  # rank == upper_bound: the bound is the shape's exact worst case
    witness: list = field(repr=False)  # integer kernel (D, C/groups, kh, kw), nested lists
    minor_rows: list = field(repr=False)  # I: rows (offsets Δ) of the non-singular minor
    minor_cols: list = field(repr=False)  # J: columns (e, c, o) of G
    prime: int
    det_mod_p: int  # det G[I, J] mod prime, non-zero
    rank_method: str
    seconds: float
    software: dict

    def to_json(self, path: str | Path | None = None) -> str:
        """Return the certificate as JSON (and write it to `path` if given)."""
        d = asdict(self)
        text = json.dumps(d)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Certificate:
        """Return the certificate stored in a JSON string or file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        d = json.loads(text)
        for key in ("kernel_size", "dilation"):
            d[key] = tuple(d[key])
        return cls(**d)


def certify_lower_bound(
    kernel_size: int | tuple[int, int] | None = None,
    patch_size: int | None = None,
    *,
    dilation: int | tuple[int, int] = 1,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    kernel: torch.Tensor | nn.Conv2d | None = None,
    seed: int = 0,
) -> Certificate:
    """Return a `Certificate` that the witness (or `kernel`) needs ≥ s heads. SPEC T3, §3 (b).

    Without `kernel`, the witness is `witness_kernel(shape, seed)`; a given float kernel is stored
    as the integer kernel 2^m·K (same rank, exact). The rank is exact: the minor proves ≥, and
    either the structural bound or FLINT's rank over ℤ proves ≤.
    """
    start = time.perf_counter()
    if patch_size is not None:
        patch_size = positive_int(patch_size, "patch_size")
    if kernel is None:
        if kernel_size is None:
            raise TypeError("certify_lower_bound needs kernel_size (a kernel shape) or kernel=")
        shape = kernel_shape(
            kernel_size,
            in_channels=in_channels,
            out_channels=out_channels,
            groups=groups,
            dilation=dilation,
        )
        weight = witness_kernel(shape, seed).numpy()
    else:
        w, shape = _concrete(kernel, {"groups": groups, "dilation": dilation})
        weight = integer_matrix(w.double().numpy().reshape(w.shape[0], -1)).reshape(tuple(w.shape))
    G = coefficient_matrix(
        _as_tensor(weight), patch_size, groups=shape.groups, dilation=shape.dilation
    )[1]
    upper = structural_bound(shape, patch_size)
    rows, cols, rank, det, method = _minor_and_rank(G, upper, seed)
    return Certificate(
        tokens="pixel" if patch_size is None else "patch",
        kernel_size=shape.kernel_size,
        patch_size=patch_size,
        dilation=shape.dilation,
        in_channels=shape.in_channels,
        out_channels=shape.out_channels,
        groups=shape.groups,
        bound=rank,
        rank=rank,
        upper_bound=upper,
        tight=rank == upper,
        witness=np.asarray(weight).tolist() if weight.dtype != object else _nested(weight),
        minor_rows=[int(i) for i in rows],
        minor_cols=[int(j) for j in cols],
        prime=PRIME,
        det_mod_p=det,
        rank_method=method,
        seconds=time.perf_counter() - start,
        software={"python-flint": flint.__version__, "sympy": sympy.__version__},
    )


def _nested(a: np.ndarray) -> list:
    return [int(v) for v in a.ravel()] if a.ndim == 1 else [_nested(x) for x in a]


def _as_tensor(weight: np.ndarray) -> torch.Tensor | np.ndarray:
    """Return an int64 tensor when the integers fit, else the object array (kept exact)."""
    return weight if weight.dtype == object else torch.from_numpy(np.ascontiguousarray(weight))


def _minor_and_rank(
    G: np.ndarray, upper: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int, int, str]:
    """Return (I, J, exact rank, det G[I, J] mod p, method): the det is non-zero, |I| = rank G."""
    G = integer_matrix(G)
    live_rows = np.flatnonzero((G != 0).any(axis=1))
    live_cols = np.flatnonzero((G != 0).any(axis=0))
    if len(live_rows) == len(live_cols) == upper:  # square: one determinant decides
        det = det_mod_p(G, live_rows, live_cols)
        if det:
            return (
                live_rows,
                live_cols,
                upper,
                det,
                (
                    f"det mod p (FLINT nmod_mat) of the whole {upper}×{upper} non-zero part is "
                    f"non-zero, meeting the structural bound {upper}"
                ),
            )
    rank_p = exact_rank(G, upper=upper)
    rank = rank_p.rank
    rows, cols = nonsingular_minor(G, rank, seed)
    if rank == upper:
        method = (
            f"non-singular {rank}×{rank} minor mod p (FLINT nmod_mat) meets the structural "
            f"bound {upper}"
        )
    else:
        method = f"non-singular {rank}×{rank} minor mod p (FLINT nmod_mat); " + rank_p.method
    return rows, cols, rank, det_mod_p(G, rows, cols), method


# -- the independent re-check ------------------------------------------------------------------


def _dense_taps_direct(weight: np.ndarray, groups: int) -> np.ndarray:
    """Return K̃ (kh, kw, C, D) from `weight` (D, C/g, kh, kw) with an explicit group mask."""
    D, Cg, _kh, _kw = weight.shape
    C = Cg * groups
    c = np.arange(C)
    o = np.arange(D)
    same_group = (c[:, None] // Cg) == (o[None, :] // (D // groups))  # (C, D)
    w = weight.transpose(2, 3, 1, 0)  # (kh, kw, C/g, D)
    taps = w[:, :, c % Cg, :]  # (kh, kw, C, D): the entry if c is in o's group
    return np.where(same_group[None, None], taps, 0)


def _coefficients_direct(cert: Certificate) -> np.ndarray:
    """Return G of the certificate's witness, from an offset → tap lookup table."""
    weight = np.array(cert.witness, dtype=object)
    if weight.shape != (cert.out_channels, cert.in_channels // cert.groups, *cert.kernel_size):
        raise CertificateError(f"witness has shape {weight.shape}, not that of the stated kernel")
    P = cert.patch_size or 1
    support = kernel_support(cert.kernel_size, cert.dilation)  # (|S|, 2), tap t = i·kw + j
    neighbours = patch_neighbourhood(cert.kernel_size, P, cert.dilation)
    lo = support.min(axis=0)
    table = np.full(support.max(axis=0) - lo + 1, -1)
    table[support[:, 0] - lo[0], support[:, 1] - lo[1]] = np.arange(len(support))
    e = np.stack(np.meshgrid(np.arange(-(P - 1), P), np.arange(-(P - 1), P), indexing="ij"), -1)
    delta = neighbours[:, None, None, :] * P + e[None] - lo  # (|N|, 2P−1, 2P−1, 2)
    inside = ((delta >= 0) & (delta < table.shape)).all(-1)
    safe = np.where(inside[..., None], delta, 0)
    tap = np.where(inside, table[safe[..., 0], safe[..., 1]], -1)  # (|N|, 2P−1, 2P−1)
    taps = _dense_taps_direct(weight, cert.groups).reshape(len(support), -1)  # (|S|, C·D)
    taps = np.concatenate([taps, np.zeros((1, taps.shape[1]), dtype=object)])  # row −1: no tap
    return taps[tap].reshape(len(neighbours), -1)


def recheck(cert: Certificate | str | Path) -> dict[str, str]:
    """Return what was re-checked, or raise `CertificateError` naming the claim that fails.

    SPEC §3 (b). Checks: the witness has the stated shape; the minor is square with |I| = rank =
    bound; det G[I, J] mod p, recomputed by FLINT (and by sympy's DomainMatrix over GF(p) when
    |I| ≤ 40), equals the stored non-zero value; p is prime; the structural bound is recomputed.
    """
    if not isinstance(cert, Certificate):
        cert = Certificate.from_json(cert)
    report: dict[str, str] = {}
    G = _coefficients_direct(cert)
    rows, cols = (
        np.array(cert.minor_rows, dtype=np.int64),
        np.array(cert.minor_cols, dtype=np.int64),
    )
    if not (len(rows) == len(cols) == cert.rank == cert.bound):
        raise CertificateError(
            f"minor is {len(rows)}×{len(cols)} but rank {cert.rank} and bound {cert.bound} "
            "are claimed"
        )
    if not flint.fmpz(cert.prime).is_prime():
        raise CertificateError(f"the modulus {cert.prime} is not prime")
    if len(rows) and (rows.max() >= G.shape[0] or cols.max() >= G.shape[1]):
        raise CertificateError("minor indices lie outside the coefficient matrix")
    det = det_mod_p(G, rows, cols, cert.prime)
    if det == 0 or det != cert.det_mod_p % cert.prime:
        raise CertificateError(f"det G[I, J] mod p is {det}, the certificate says {cert.det_mod_p}")
    report["determinant"] = "non-zero mod p"
    if 0 < len(rows) <= SYMPY_RECHECK_MAX:
        field_ = GF(cert.prime)
        sub = [[field_(int(v) % cert.prime) for v in row] for row in G[np.ix_(rows, cols)]]
        det_sympy = DomainMatrix(sub, (len(rows), len(rows)), field_).det()
        if int(field_.to_int(det_sympy)) % cert.prime != det:
            raise CertificateError("sympy's DomainMatrix determinant disagrees with FLINT's")
        report["sympy"] = "DomainMatrix over GF(p) agrees"
    shape = kernel_shape(
        cert.kernel_size,
        in_channels=cert.in_channels,
        out_channels=cert.out_channels,
        groups=cert.groups,
        dilation=cert.dilation,
    )
    upper = structural_bound(shape, cert.patch_size)
    if upper != cert.upper_bound or (cert.rank == upper) != cert.tight or cert.rank > upper:
        raise CertificateError(
            f"structural bound is {upper}, the certificate says {cert.upper_bound}"
        )
    report["structural bound"] = f"{upper} ({'tight' if cert.tight else 'not met'})"
    return report
