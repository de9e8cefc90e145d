"""Lower-bound certificates (T3): produced here, checked by the stand-alone `theory.checker`.

A certificate is one JSON object `{"format", "claim", "witness", "proof"}` (format in README,
"Certificates", and in `theory/checker.py`): the claim that a kernel shape needs at least n
heads, an integer witness kernel of that shape, and a non-singular n×n minor of the matrix
[vec M_Δ]_Δ of the witness — the identity minor of a structured witness (`"triangular"`, checked in
O(n)), or a minor whose determinant is non-zero modulo a prime (`"determinant"`). rank ≥ n for the
witness proves, by T3, that every exact layer for it — and for a generic kernel of the shape —
needs n heads.

The producer may be clever (structured witnesses, FLINT, Gram matrices); the checker is plain and
shares no code with it: `recheck` hands the JSON object to `theory.checker.check`.

>>> cert = certify_lower_bound(3, 2)
>>> cert.bound, recheck(cert)["summary"].startswith("verified")
(9, True)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from constructions.geometry import neighbourhood_size
from theory.bounds import KernelShape, concrete_kernel, kernel_shape, patch_sizes, structural_bound
from theory.checker import MAX_BYTES, MAX_ENTRIES, MAX_NONZEROS, MAX_ROWS, CertificateError, parse
from theory.coefficients import live_coefficients
from theory.exact import PRIME, det_mod_p, exact_rank, integer_matrix, nonsingular_minor
from theory.recheck import check_all, read_file, read_json, summary_of
from theory.witnesses import random_witness, structured_witness

__all__ = [
    "FORMAT",
    "FORMAT_STRIDED",
    "Certificate",
    "CertificateError",
    "certificate_format",
    "certify_lower_bound",
    "claim_of",
    "minor_columns",
    "recheck",
    "witness_json",
]

FORMAT = "conv-as-attention certificate v1"
FORMAT_STRIDED = "conv-as-attention certificate v2"  # claims with "stride" and "padding"
DENSE_WITNESS_MAX = 1 << 16  # larger witnesses are written as their non-zero entries


@dataclass(frozen=True)
class Certificate:
    """A certificate (`data`, the JSON object) and how it was produced (not part of the proof)."""

    data: dict
    upper_bound: int | None = None  # the structural bound of the shape, when known
    method: str = ""
    seconds: float = 0.0

    @property
    def claim(self) -> dict:
        return self.data["claim"]

    @property
    def bound(self) -> int:
        """The heads claimed: `heads_at_least` (T3), or `heads` (an exact minimum, T4)."""
        return self.claim.get("heads_at_least", self.claim.get("heads"))

    @property
    def tight(self) -> bool:
        """Whether the bound meets the structural bound: the generic value of the shape."""
        return self.upper_bound is not None and self.bound == self.upper_bound

    def to_json(self, path: str | Path | None = None) -> str:
        """Return the certificate as JSON text (and write it to `path` if given)."""
        text = json.dumps(self.data, separators=(",", ":"))
        if len(text) > MAX_BYTES:
            raise CertificateError(f"no certificate: {len(text):,} characters of JSON, more than "
                                   f"the format's MAX_BYTES = {MAX_BYTES:,}")  # fmt: skip
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Certificate:
        """Return the certificate in a JSON string or file (parsed strictly, not yet checked)."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls(parse(text))


def certificate_format(shape: KernelShape) -> str:
    """Return the format of `shape`'s certificates: v1 for stride 1 with 'same' padding, else v2."""
    return FORMAT_STRIDED if shape.strided else FORMAT


def claim_of(shape: KernelShape, Ps: tuple[int, ...] | None, **heads: object) -> dict:
    """Return the "claim" object of a certificate for `shape` (keys in README, Certificates).

    Strided shapes (format v2) also carry `stride` and `padding` (p before each axis).
    """
    geometry = {"stride": list(shape.stride), "padding": list(shape.padding)}
    return {
        "tokens": "pixel" if Ps is None else "patch",
        "kernel_size": list(shape.kernel_size),
        "patch_size": None if Ps is None else list(Ps),
        "dilation": list(shape.dilation),
        **(geometry if shape.strided else {}),
        "groups": shape.groups,
        "in_channels": shape.in_channels,
        "out_channels": shape.out_channels,
        **heads,
    }


def witness_json(weight: np.ndarray) -> list | dict:
    """Return the witness entry of a certificate: nested lists, or its non-zero entries."""
    if weight.size <= DENSE_WITNESS_MAX:
        return weight.tolist()  # Python ints, also from an object array of big integers
    index = np.argwhere(weight != 0)
    if len(index) > MAX_ENTRIES:
        raise CertificateError(f"no certificate: the witness has {len(index):,} non-zero weights, "
                               f"more than the format's MAX_ENTRIES = {MAX_ENTRIES:,}")  # fmt: skip
    entries = [[*map(int, i), int(weight[tuple(i)])] for i in index]
    return {"shape": list(weight.shape), "entries": entries}


def minor_columns(
    columns: np.ndarray, e_axes: list[np.ndarray], shape: KernelShape
) -> list[list[int]]:
    """Return live columns j of G (`live_coefficients`) as entries [a…, c, b…, o], a − s·b = e."""
    pairs = shape.pairs
    Cg, Dg = shape.in_channels // shape.groups, shape.out_channels // shape.groups
    e_index, q = np.divmod(np.asarray(columns, dtype=np.int64), pairs)
    e = np.stack(np.unravel_index(e_index, [len(x) for x in e_axes]), -1)
    e = np.stack([e_axes[a][e[:, a]] for a in range(shape.dims)], -1)  # (n, d)
    group, rest = np.divmod(q, Cg * Dg)
    c_local, o_local = np.divmod(rest, Dg)
    stride = np.asarray(shape.stride)
    b = -(np.minimum(e, 0) // stride)  # ⌈max(−e, 0)/s⌉: an output pixel with a = e + s·b ≥ 0
    c, o = group * Cg + c_local, group * Dg + o_local
    return np.concatenate([e + stride * b, c[:, None], b, o[:, None]], axis=1).tolist()


def _determinant_proof(
    weight: np.ndarray | torch.Tensor, shape: KernelShape, Ps: tuple[int, ...] | None, seed: int
) -> tuple[dict, int, str]:
    """Return (proof, rank, method): a minor of G non-zero mod p, |minor| = rank G."""
    offsets, e_axes, G = live_coefficients(weight, Ps, groups=shape.groups, **shape.geometry())
    if np.count_nonzero(G) > MAX_NONZEROS:
        raise CertificateError(f"no certificate: G has {np.count_nonzero(G):,} non-zeros, more "
                               f"than the format's MAX_NONZEROS = {MAX_NONZEROS:,}")  # fmt: skip
    upper = structural_bound(shape, Ps)
    result = exact_rank(G, upper=upper)
    rows, cols = nonsingular_minor(G, result.rank, seed)
    det = det_mod_p(G, rows, cols)
    proof = {
        "kind": "determinant",
        "rows": offsets[rows].tolist(),
        "columns": minor_columns(cols, e_axes, shape),
        "prime": PRIME,
        "det_mod_p": det,
    }
    return proof, result.rank, f"minor non-zero mod p; rank by {result.method}"


def certify_lower_bound(
    kernel_size: int | tuple[int, ...] | None = None,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    kernel: torch.Tensor | nn.Module | None = None,
    dims: int | None = None,
    seed: int = 0,
) -> Certificate:
    """Return a `Certificate` that every exact layer needs ≥ s heads (T3), s of the witness.

    Without `kernel`, the witness of the shape: the structured one when its identity minor meets
    the structural bound (any size, O(s) to check), else a random integer kernel with an exact
    rank. With `kernel` (a float kernel is stored as the integer kernel 2^m·K: same rank), that
    kernel. The certificate re-checks with `recheck` / `python -m theory recheck`.
    """
    start = time.perf_counter()
    if kernel is None:
        if kernel_size is None:
            raise TypeError("certify_lower_bound needs kernel_size (a kernel shape) or kernel=")
        shape = kernel_shape(
            kernel_size, in_channels=in_channels, out_channels=out_channels, groups=groups,
            dilation=dilation, stride=stride, padding=padding, dims=dims,
        )  # fmt: skip
        Ps = patch_sizes(patch_size, shape.dims)
        rows = neighbourhood_size(shape.kernel_size, Ps, **shape.geometry())
        if rows > MAX_ROWS:  # offsets (rows of G) a certificate may list: the format's limit
            raise ValueError(
                f"kernel_size={shape.kernel_size}: a certificate would list up to {rows:,} "
                f"offsets; at most MAX_ROWS = {MAX_ROWS:,} are written (the bound itself needs "
                "no certificate this large: see head_bounds)"
            )
        upper = structural_bound(shape, Ps)
        sw = structured_witness(
            shape.kernel_size, Ps, in_channels=shape.in_channels,
            out_channels=shape.out_channels, groups=shape.groups, **shape.geometry(),
        )  # fmt: skip
        if sw.size == upper:
            entries = sw.entries.tolist()
            witness = (
                sw.dense().tolist()
                if np.prod(sw.shape) <= DENSE_WITNESS_MAX
                else {"shape": list(sw.shape), "entries": entries}
            )
            proof = {"kind": "triangular", "rows": sw.rows.tolist(), "columns": sw.columns.tolist()}
            rank, method = upper, "identity minor of a structured witness"
        else:
            weight = random_witness(shape.weight_shape(), seed).numpy()
            proof, rank, method = _determinant_proof(weight, shape, Ps, seed)
            witness = witness_json(weight)
    else:
        w, shape, _ = concrete_kernel(
            kernel, {"groups": groups, "dilation": dilation, "stride": stride, "padding": padding}
        )
        Ps = patch_sizes(patch_size, shape.dims)
        upper = structural_bound(shape, Ps)
        weight = integer_matrix(w.numpy().reshape(w.shape[0], -1)).reshape(tuple(w.shape))
        proof, rank, method = _determinant_proof(weight, shape, Ps, seed)  # refuses huge G first
        witness = witness_json(weight)
    data = {
        "format": certificate_format(shape),
        "claim": claim_of(shape, Ps, heads_at_least=rank),
        "witness": witness,
        "proof": proof,
    }
    return Certificate(data, upper, method, time.perf_counter() - start)


def recheck(cert: Certificate | dict | str | Path) -> dict:
    """Return what the stand-alone checker verified, or raise `CertificateError` naming the claim.

    `cert` is a `Certificate`, its JSON object (or a `bounds`/`minimum` JSON output holding
    certificates), JSON text, or a `pathlib.Path` to such a file; a string is always JSON text,
    never a file name. The check is done by `theory.checker` alone (stdlib + python-flint):
    nothing of the producer is trusted. Several certificates give {"summary", "reports"}.
    """
    if isinstance(cert, Certificate):  # as a file would hold it: its text's limits apply too
        obj, source = parse(cert.to_json()), "certificate"
    elif type(cert) is dict:
        obj, source = cert, "certificate"
    elif isinstance(cert, Path):
        obj, source = read_file(cert), str(cert)
    elif type(cert) is str:
        obj, source = read_json(cert, "the text"), "the text"
    else:
        raise TypeError(
            "cert must be a Certificate, a certificate's JSON object, JSON text (str) or a "
            f"pathlib.Path, got {type(cert).__name__}"
        )
    try:
        reports = check_all(obj, source)
    except MemoryError:
        raise CertificateError(f"{source}: too large to check (MemoryError)") from None
    if len(reports) == 1:
        return reports[0]
    return {"summary": summary_of(reports), "reports": reports}
