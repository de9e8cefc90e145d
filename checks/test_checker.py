"""theory/checker.py, the stand-alone checker of "conv-as-attention certificate v1" certificates.

The checker is loaded by file path, so `theory/__init__.py` never runs, and nothing else of the
project is imported here. Certificates come from a tiny independent producer: every block M_Δ is
read off the Jacobian of `torch.nn.functional.conv{1,2,3}d` (unit inputs, padding='same') at a
central output patch; ranks, minors, determinants and relations are computed with FLINT on those
integers. The same brute force re-decides random and perturbed certificates, so the checker's
verdict is compared against an independent one, not only against hand-picked forgeries.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import itertools
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import flint
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

ROOT = Path(__file__).parents[1]
CHECKER = ROOT / "theory" / "checker.py"


def _load_checker() -> Any:
    spec = importlib.util.spec_from_file_location("standalone_certificate_checker", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()
CertificateError = checker.CertificateError
FORMAT = "conv-as-attention certificate v1"
PRIMES = (2**61 - 1, 1_000_003, 998_244_353)


# ----------------------------------------------------------------------------------------------
# An independent producer: brute-force blocks from the convolution itself.


def axis_rows(k: int, dil: int, P: int) -> list[int]:
    """N_a = {⌊(p + δ)/P⌋ : 0 ≤ p < P, δ a tap offset} (paper_notes' formula), sorted."""
    return sorted({(p + t * dil - dil * (k - 1) // 2) // P for p in range(P) for t in range(k)})


@dataclass
class Reference:
    rows: list[tuple[int, ...]]  # the offsets Δ of N, or their residues modulo the grid
    shape: tuple[int, ...]  # (P.., C, P.., D): a column label [a.., c, b.., o] indexes it
    G: np.ndarray  # (len(rows), prod(shape)) Python ints: row = vec M_Δ (merged modulo the grid)

    def column(self, label: list[int]) -> int:
        return int(np.ravel_multi_index(tuple(label), self.shape))

    def labels(self) -> list[list[int]]:
        return [list(map(int, idx)) for idx in np.ndindex(*self.shape)]

    def row(self, delta: list[int] | tuple[int, ...]) -> np.ndarray:
        index = {r: i for i, r in enumerate(self.rows)}
        i = index.get(tuple(delta))
        return self.G[i] if i is not None else np.zeros(self.G.shape[1], dtype=object)


def reference(
    weight: Any, P: list[int], dilation: list[int], groups: int, grid: list[int] | None = None
) -> Reference:
    """Return the rows of N and G = [vec M_Δ] from the convolution's Jacobian (brute force)."""
    w = torch.tensor(np.asarray(weight, dtype=np.int64).tolist(), dtype=torch.float64)
    D, Cg, *k = w.shape
    d, C = len(k), Cg * groups
    axes = [axis_rows(*a) for a in zip(k, dilation, P, strict=True)]
    reach = [max(abs(x) for x in a) for a in axes]
    size = [(2 * r + 1) * p for r, p in zip(reach, P, strict=True)]
    n = math.prod(size)
    units = torch.eye(C * n, dtype=torch.float64).reshape(C * n, C, *size)
    conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    out = conv(units, w, padding="same", dilation=tuple(dilation), groups=groups)
    J = out.round().to(torch.int64).numpy().reshape(C, *size, D, *size)  # J[c, x_in, o, x_out]
    perm = [*range(1, d + 1), 0, *range(d + 2, 2 * d + 2), d + 1]  # → (a.., c, b.., o)
    blocks: dict[tuple[int, ...], Any] = {}
    for delta in itertools.product(*axes):
        src = [slice((r + x) * p, (r + x + 1) * p) for r, x, p in zip(reach, delta, P, strict=True)]
        dst = [slice(r * p, (r + 1) * p) for r, p in zip(reach, P, strict=True)]
        block = J[(slice(None), *src, slice(None), *dst)].transpose(perm).reshape(-1)
        row = delta if grid is None else tuple(x % g for x, g in zip(delta, grid, strict=True))
        blocks[row] = blocks.get(row, 0) + block.astype(object)
    rows = sorted(blocks)
    G = np.array([[int(v) for v in blocks[r]] for r in rows], dtype=object)
    return Reference(rows, (*P, C, *P, D), G.reshape(len(rows), -1))


def pivots(M: np.ndarray) -> list[int]:
    """The pivot columns of the exact reduced row echelon form of an integer matrix."""
    if M.shape[0] == 0 or M.shape[1] == 0:
        return []
    R, _, rank = flint.fmpz_mat([[int(v) for v in row] for row in M]).rref()
    return [next(j for j in range(M.shape[1]) if R[i, j] != 0) for i in range(rank)]


def nonsingular_minor(G: np.ndarray) -> tuple[list[int], list[int]]:
    cols = pivots(G)
    return (pivots(G[:, cols].T) if cols else []), cols


def triangular_minor(G: np.ndarray) -> tuple[list[int], list[int]]:
    """Greedy, from the last pair back: take the column with the fewest non-zeros among the
    remaining rows, one of those rows with it, and drop the others (they would sit above it)."""
    remaining, picked = set(range(G.shape[0])), []
    while True:
        counts = {j: [i for i in sorted(remaining) if G[i, j] != 0] for j in range(G.shape[1])}
        counts = {j: rows for j, rows in counts.items() if rows}
        if not counts:
            break
        j = min(counts, key=lambda j: len(counts[j]))
        picked.append((counts[j][0], j))
        remaining -= set(counts[j])
    picked.reverse()
    return [i for i, _ in picked], [j for _, j in picked]


def det(X: list[list[int]]) -> int:
    return int(flint.fmpz_mat(X).det()) if X else 1


def claim_of(weight: Any, P: list[int] | None, dilation: list[int], groups: int, **heads) -> dict:
    D, Cg, *k = np.shape(weight)
    return {
        "tokens": "pixel" if P is None else "patch",
        "kernel_size": list(k),
        "patch_size": P,
        "dilation": dilation,
        "groups": groups,
        "in_channels": Cg * groups,
        "out_channels": D,
        **heads,
    }


def witness_of(weight: Any, sparse: bool) -> Any:
    w = np.asarray(weight, dtype=np.int64)
    if not sparse:
        return w.tolist()
    nonzero = zip(*np.nonzero(w), strict=True)
    return {"shape": list(w.shape), "entries": [[*map(int, i), int(w[i])] for i in nonzero]}


def minor_proof(ref: Reference, kind: str, rows: list[int], cols: list[int]) -> dict:
    labels = ref.labels()
    proof = {
        "kind": kind,
        "rows": [list(ref.rows[i]) for i in rows],
        "columns": [labels[j] for j in cols],
    }
    if kind == "determinant":
        value = det([[ref.G[i, j] for j in cols] for i in rows])
        p = next(p for p in PRIMES if value % p)
        proof |= {"prime": p, "det_mod_p": value % p}
    return proof


def lower_bound(
    weight: Any,
    P: list[int] | None = None,
    dilation: list[int] | None = None,
    groups: int = 1,
    kind: str = "triangular",
    sparse: bool = False,
) -> dict:
    """A lower-bound certificate: a triangular (greedy) or pivot minor of the brute-force G."""
    d = np.ndim(weight) - 2
    dilation = dilation or [1] * d
    ref = reference(weight, P or [1] * d, dilation, groups)
    rows, cols = (triangular_minor if kind == "triangular" else nonsingular_minor)(ref.G)
    return {
        "format": FORMAT,
        "claim": claim_of(weight, P, dilation, groups, heads_at_least=len(rows)),
        "witness": witness_of(weight, sparse),
        "proof": minor_proof(ref, kind, rows, cols),
    }


def solve(X: np.ndarray, b: list[int]) -> tuple[int, list[int]]:
    """Return (c, x) with X·x = c·b, c > 0 the lcm of the denominators of X⁻¹b."""
    if not len(b):
        return 1, []
    q = flint.fmpq_mat([[int(v) for v in row] for row in X]).solve(
        flint.fmpq_mat([[int(v)] for v in b])
    )
    entries = [q[i, 0] for i in range(len(b))]
    c = math.lcm(*(int(v.q) for v in entries))
    return c, [int(v.p) * (c // int(v.q)) for v in entries]


def gordan(
    weight: Any,
    P: list[int] | None = None,
    dilation: list[int] | None = None,
    groups: int = 1,
    grid: list[int] | None = None,
    positive: Any = None,
    obstruction: dict | None = None,
    minor: str = "determinant",
    sparse: bool = False,
) -> dict:
    """An exact-minimum certificate. `positive`: "search", or a target vector t over all rows
    (y solves X·y = t on the minor rows); `obstruction`: {row: z}."""
    d = np.ndim(weight) - 2
    dilation = dilation or [1] * d
    ref = reference(weight, P or [1] * d, dilation, groups, grid)
    rows, cols = (triangular_minor if minor == "triangular" else nonsingular_minor)(ref.G)
    if len(rows) < len(pivots(ref.G)):
        raise ValueError("no triangular minor of full rank")
    s, X = len(rows), ref.G[np.ix_(rows, cols)]
    relations = []
    for i, delta in enumerate(ref.rows):
        if i not in rows:
            scale, x = solve(X.T, list(ref.G[i, cols]))
            combo = sum((xi * ref.G[r] for xi, r in zip(x, rows, strict=True)), 0 * ref.G[i])
            assert (combo == scale * ref.G[i]).all(), "the producer's rank is wrong"
            relations.append({"row": list(delta), "scale": scale, "coefficients": x})
    active = [i for i in range(len(ref.rows)) if any(ref.G[i])]
    y = None
    if isinstance(positive, str):  # search small integer vectors
        for cand in itertools.product(range(-3, 4), repeat=s):
            v = ref.G[:, cols].dot(np.array(cand, dtype=object)) if s else np.zeros(len(ref.rows))
            if all(v[i] > 0 for i in active):
                y = list(cand)
                break
        assert y is not None, "no small positive vector"
    elif positive is not None:
        y = solve(X, [positive[i] for i in rows])[1]
    z = None if obstruction is None else [[list(r), v] for r, v in obstruction.items()]
    return {
        "format": FORMAT,
        "claim": {**claim_of(weight, P, dilation, groups, heads=s + (y is None)), "grid": grid},
        "witness": witness_of(weight, sparse),
        "proof": {
            "kind": "gordan",
            "span_dim": s,
            "minor": minor_proof(ref, minor, rows, cols),
            "relations": relations,
            "positive": y,
            "obstruction": z,
        },
    }


# ----------------------------------------------------------------------------------------------
# Independent verdicts (brute force), to compare the checker against.


def weight_of(cert: dict) -> np.ndarray:
    w = cert["witness"]
    if isinstance(w, list):
        return np.array(w, dtype=np.int64)
    out = np.zeros(w["shape"], dtype=np.int64)
    for *idx, v in w["entries"]:
        out[tuple(idx)] = v
    return out


def reference_of(cert: dict) -> Reference:
    c = cert["claim"]
    d = len(c["kernel_size"])
    P = c["patch_size"] or [1] * d
    return reference(weight_of(cert), P, c["dilation"], c["groups"], c.get("grid"))


def minor_holds(ref: Reference, m: dict) -> bool:
    X = [[ref.row(r)[ref.column(col)] for col in m["columns"]] for r in m["rows"]]
    distinct = len({tuple(r) for r in m["rows"]}) == len(m["rows"]) and len(
        {tuple(col) for col in m["columns"]}
    ) == len(m["columns"])
    if m["kind"] == "triangular":
        n = len(X)
        ok = all(X[i][i] != 0 for i in range(n)) and all(
            X[i][j] == 0 for i in range(n) for j in range(i + 1, n)
        )
    else:
        ok = (det(X) - m["det_mod_p"]) % m["prime"] == 0
    return distinct and ok


def lower_bound_holds(cert: dict) -> bool:
    proof = cert["proof"]
    return len(proof["rows"]) == cert["claim"]["heads_at_least"] and minor_holds(
        reference_of(cert), proof
    )


def gordan_holds(cert: dict) -> bool:
    ref, proof = reference_of(cert), cert["proof"]
    m, s = proof["minor"], proof["span_dim"]
    if len(m["rows"]) != s or not minor_holds(ref, m):
        return False
    covered = [tuple(r) for r in m["rows"]] + [tuple(rel["row"]) for rel in proof["relations"]]
    if sorted(covered) != sorted(ref.rows):
        return False
    for rel in proof["relations"]:
        combo = sum(
            (x * ref.row(r) for x, r in zip(rel["coefficients"], m["rows"], strict=True)),
            0 * ref.row(rel["row"]),
        )
        if rel["scale"] == 0 or not (combo == rel["scale"] * ref.row(rel["row"])).all():
            return False
    active = {r for r in ref.rows if any(ref.row(r))}
    if proof["positive"] is not None:
        cols = [ref.column(col) for col in m["columns"]]
        v = {
            r: sum(y * ref.row(r)[j] for y, j in zip(proof["positive"], cols, strict=True))
            for r in ref.rows
        }
        return all(v[r] > 0 for r in active) and cert["claim"]["heads"] == s
    z = proof["obstruction"]
    total = sum((zv * ref.row(r) for r, zv in z), 0 * ref.G[0])
    return (
        all(zv >= 0 for _, zv in z)
        and any(zv > 0 and tuple(r) in active for r, zv in z)
        and not any(total)
        and cert["claim"]["heads"] == s + 1
    )


def accepted(cert: Any) -> bool:
    try:
        checker.check(cert)
    except CertificateError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Base certificates.

KERNEL_3 = [[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]  # (1, 1, 3, 3)
W1 = [[7, 2, 10], [15, -6, 1], [12, 12, 1]]
W2 = [[1, 11, 1], [-3, 15, 4], [0, 3, 7]]


def zero_sum_kernel(D: int, C: int, seed: int) -> np.ndarray:
    """A (D, C, 3, 3) integer kernel whose nine taps sum to 0 for every channel pair."""
    w = np.random.default_rng(seed).integers(-6, 7, (D, C, 9))
    w[..., 8] = -w[..., :8].sum(axis=-1)
    return w.reshape(D, C, 3, 3)


@cache
def base(name: str) -> dict:
    """The named valid certificate (built once; callers deep-copy before mutating)."""
    makers = {
        "patch": lambda: lower_bound(KERNEL_3, P=[2, 2]),
        "patch_det": lambda: lower_bound(KERNEL_3, P=[2, 2], kind="determinant"),
        "patch_sparse": lambda: lower_bound(KERNEL_3, P=[2, 2], sparse=True),
        "groups": lambda: lower_bound(
            np.arange(1, 37).reshape(4, 1, 3, 3) % 7 - 3, groups=2, kind="determinant"
        ),
        "positive": lambda: gordan([[W1], [W2]], positive="search"),
        "obstruction": lambda: gordan(
            zero_sum_kernel(4, 2, 0),
            obstruction={(i, j): 1 for i in (-1, 0, 1) for j in (-1, 0, 1)},
        ),
        "grid_positive": lambda: gordan(KERNEL_3, grid=[2, 2], positive="search"),
        "grid_obstruction": lambda: gordan(
            [[[[1, -3, 1], [2, 5, -4], [0, 1, 0]]]], grid=[2, 2], obstruction={(0, 0): 2, (0, 1): 5}
        ),
        "grid_cancel": lambda: gordan(
            [[[[0, 3, 0], [0, 1, 0], [0, -3, 0]]]],
            grid=[2, 2],
            positive="search",
            minor="triangular",
        ),
    }
    return makers[name]()


def fresh(name: str) -> dict:
    return copy.deepcopy(base(name))


# ----------------------------------------------------------------------------------------------
# The checker stands alone.


def test_the_checker_imports_only_the_standard_library_and_flint() -> None:
    tree = ast.parse(CHECKER.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            names.add(node.module.split(".")[0])
    assert "flint" in names
    assert names - {"flint"} <= set(sys.stdlib_module_names), names


def test_the_checker_loads_by_path_without_numpy_torch_or_the_project() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('c', {str(CHECKER)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "names = ('numpy', 'torch', 'theory', 'constructions')\n"
        "print(sorted(k for k in names if k in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------
# Valid certificates pass.

LOWER_CASES = {
    "pixel 3x3 C=D=1": (lambda: lower_bound(KERNEL_3), 1),
    "patch 3x3 P=2 triangular": (lambda: base("patch"), 9),
    "patch 3x3 P=2 determinant": (lambda: base("patch_det"), 9),
    "patch 3x3 P=2 sparse": (lambda: base("patch_sparse"), 9),
    "patch 3x3 P=2 sparse determinant": (
        lambda: lower_bound(KERNEL_3, P=[2, 2], kind="determinant", sparse=True),
        9,
    ),
    "1-D k=5 P=2 determinant": (
        lambda: lower_bound([[[1, -2, 3, 4, 5]]], P=[2], kind="determinant"),
        3,
    ),
    "1-D k=5 P=2 triangular (no 3x3 one exists)": (
        lambda: lower_bound([[[1, -2, 3, 4, 5]]], P=[2]),
        2,
    ),
    "1-D k=4 (even) pixel C=2 D=3": (
        lambda: lower_bound(np.arange(24).reshape(3, 2, 4) % 5 - 2, kind="determinant"),
        4,
    ),
    "3-D k=3 P=2": (
        lambda: lower_bound(np.arange(1, 28).reshape(1, 1, 3, 3, 3), P=[2, 2, 2]),
        27,
    ),
    "3-D k=3x1x2 pixel C=D=2": (
        lambda: lower_bound(np.arange(24).reshape(2, 2, 3, 1, 2) % 7 - 3, kind="determinant"),
        4,  # min(6 taps, C·D = 4)
    ),
    "groups=2 pixel": (lambda: base("groups"), 4),
    "dilation 2 patch P=3": (
        lambda: lower_bound(KERNEL_3, P=[3, 3], dilation=[2, 2], kind="determinant"),
        None,
    ),
    "k=7 P=2 C=D=1 needs 9": (lambda: lower_bound(np.ones((1, 1, 7, 7), int), P=[2, 2]), 9),
    "rectangular 3x2 patch P=2x1": (
        lambda: lower_bound(np.arange(1, 7).reshape(1, 1, 3, 2), P=[2, 1], kind="determinant"),
        None,
    ),
}


@pytest.mark.parametrize("name", list(LOWER_CASES))
def test_valid_lower_bound_certificates_from_the_independent_producer_pass(name: str) -> None:
    make, expected = LOWER_CASES[name]
    cert = make()
    n = cert["claim"]["heads_at_least"]
    assert expected is None or n == expected
    assert lower_bound_holds(cert)
    snapshot = repr(cert)
    result = checker.check(cert)
    assert repr(cert) == snapshot, "the checker must not modify its input"
    assert result["heads"] == n and result["summary"].startswith("verified: ")
    assert checker.check_text(json.dumps(cert)) == result


def test_the_summary_states_the_verified_claim() -> None:
    assert checker.check(fresh("patch"))["summary"] == (
        "verified: patch tokens, kernel 3x3, P 2x2, C=1, D=1: every exact layer needs >= 9 heads"
        " (triangular 9x9 minor)"
    )
    assert checker.check(fresh("obstruction"))["summary"] == (
        "verified: pixel tokens, kernel 3x3, C=2, D=4: the minimum is exactly 9 heads"
        " (rank 8; no positive vector: obstruction z)"
    )
    assert checker.check(fresh("grid_positive"))["summary"] == (
        "verified: pixel tokens, kernel 3x3, circular grid 2x2, C=1, D=1: the minimum is exactly"
        " 1 head (rank 1; positive vector y)"
    )


def test_a_single_channel_pixel_kernel_proves_one_head_but_not_two() -> None:
    cert = lower_bound(KERNEL_3)
    assert checker.check(cert)["heads"] == 1
    for second in ([1, 1], [0, 1], [-1, 0]):
        forged = copy.deepcopy(cert)
        forged["claim"]["heads_at_least"] = 2
        forged["proof"]["rows"].append(second)
        forged["proof"]["columns"].append([0, 0, 0, 0, 0, 0])
        with pytest.raises(CertificateError):
            checker.check(forged)
    # every 2x2 minor of the rank-1 matrix G (9 x 1) is singular: no pair of rows works
    ref = reference(KERNEL_3, [1, 1], [1, 1], 1)
    assert ref.G.shape == (9, 1)


GORDAN_CASES = {
    "1->2 channels, positive vector": (lambda: base("positive"), 2, 2),
    "taps sum to zero, obstruction": (lambda: base("obstruction"), 8, 9),
    "circular 2x2 grid, positive": (lambda: base("grid_positive"), 1, 1),
    "circular 2x2 grid, obstruction": (lambda: base("grid_obstruction"), 1, 2),
    "circular grid with a cancelled row": (lambda: base("grid_cancel"), 1, 1),
    "patch P=2 full rank, X^-1 1": (lambda: gordan(KERNEL_3, P=[2, 2], positive=[1] * 9), 9, 9),
    "patch P=2 triangular minor, sparse": (
        lambda: gordan(KERNEL_3, P=[2, 2], positive=[1] * 9, minor="triangular", sparse=True),
        9,
        9,
    ),
    "1-D rank one, positive": (
        lambda: gordan([[[1, 2, 3, 4, 5]], [[2, 4, 6, 8, 10]]], positive="search"),
        1,
        1,
    ),
    "1-D rank one, obstruction": (
        lambda: gordan([[[1, -2, 1]], [[3, -6, 3]]], obstruction={(-1,): 1, (0,): 1, (1,): 1}),
        1,
        2,
    ),
    "groups=2, dilation 2": (
        lambda: gordan(
            np.array([[[1, 2, 1]], [[3, 1, 2]]]), groups=2, dilation=[2], positive="search"
        ),
        2,
        2,
    ),
    "3-D pixel rank one": (
        lambda: gordan(np.ones((1, 1, 2, 2, 2), int), positive="search", sparse=True),
        1,
        1,
    ),
}


@pytest.mark.parametrize("name", list(GORDAN_CASES))
def test_exact_minimum_certificates_for_both_sides_of_gordans_alternative_pass(name: str) -> None:
    make, s, heads = GORDAN_CASES[name]
    cert = make()
    assert (cert["proof"]["span_dim"], cert["claim"]["heads"]) == (s, heads)
    assert gordan_holds(cert)
    result = checker.check(copy.deepcopy(cert))
    assert (result["span_dim"], result["heads"]) == (s, heads)
    assert checker.check_text(json.dumps(cert)) == result


# ----------------------------------------------------------------------------------------------
# Forgeries fail.


def _set(path: str, value: Any) -> Any:
    """A mutation that sets cert[path] (dotted, ints index lists) to value."""

    def mutate(cert: dict) -> None:
        *head, last = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".")]
        node = cert
        for p in head:
            node = node[p]
        node[last] = value

    return mutate


def _delete(path: str) -> Any:
    def mutate(cert: dict) -> None:
        *head, last = path.split(".")
        node = cert
        for p in head:
            node = node[int(p) if p.isdigit() else p]
        del node[last]

    return mutate


def _same_class_column(cert: dict) -> None:
    """Replace a column by another label [a', 0, b', 0] of a column [a, 0, b, 0] with a = b: the
    entry depends on a − b only, so X gets two equal columns."""
    cols = cert["proof"]["columns"]
    j = next(j for j, col in enumerate(cols) if col[:2] == col[3:5])
    cols[(j + 1) % len(cols)] = [
        1 - cols[j][0],
        1 - cols[j][1],
        0,
        1 - cols[j][0],
        1 - cols[j][1],
        0,
    ]


def _witness_entry(cert: dict, change: Any) -> None:
    """Apply change(value) -> value to the witness's centre tap (dense or sparse)."""
    w = cert["witness"]
    if isinstance(w, dict):
        w["entries"][4][-1] = change(w["entries"][4][-1])
    else:
        w[0][0][1][1] = change(w[0][0][1][1])


LOWER_FORGERIES: dict[str, tuple[str, Any]] = {
    "relabelled pixel": ("patch", lambda c: c["claim"].update(tokens="pixel", patch_size=None)),
    "pixel with a patch size": ("patch", _set("claim.tokens", "pixel")),
    "unknown tokens": ("patch", _set("claim.tokens", "patches")),
    "dilation 2": ("patch", _set("claim.dilation", [2, 2])),
    "dilation 1x2": ("patch", _set("claim.dilation", [1, 2])),
    "patch size 3": ("patch", _set("claim.patch_size", [3, 3])),
    "patch size 2x1": ("patch", _set("claim.patch_size", [2, 1])),
    "patch size 1": ("patch", _set("claim.patch_size", [1, 1])),
    "kernel 3x5": ("patch", _set("claim.kernel_size", [3, 5])),
    "kernel 3": ("patch", _set("claim.kernel_size", [3])),
    "in_channels 2": ("patch", _set("claim.in_channels", 2)),
    "out_channels 2": ("patch", _set("claim.out_channels", 2)),
    "groups 2": ("patch", _set("claim.groups", 2)),
    "groups changed": ("groups", _set("claim.groups", 1)),
    "groups 4": ("groups", _set("claim.groups", 4)),
    "heads + 1": ("patch", _set("claim.heads_at_least", 10)),
    "heads - 1": ("patch", _set("claim.heads_at_least", 8)),
    "heads + 1 with a row outside N": (
        "patch",
        lambda c: (
            c["claim"].update(heads_at_least=10),
            c["proof"]["rows"].append([2, 2]),
            c["proof"]["columns"].append([1, 1, 0, 1, 1, 0]),
        ),
    ),
    "heads 1.0": ("patch", _set("claim.heads_at_least", 9.0)),
    "heads '9'": ("patch", _set("claim.heads_at_least", "9")),
    "heads true": ("patch", _set("claim.heads_at_least", True)),
    "heads negative": ("patch", _set("claim.heads_at_least", -1)),
    "centre tap 0": ("patch", lambda c: _witness_entry(c, lambda v: 0)),
    "centre tap 1.0": ("patch", lambda c: _witness_entry(c, float)),
    "centre tap true": ("patch", lambda c: _witness_entry(c, lambda v: True)),
    "centre tap '5'": ("patch", lambda c: _witness_entry(c, str)),
    "sparse centre tap 1.0": ("patch_sparse", lambda c: _witness_entry(c, float)),
    "sparse centre tap 0": ("patch_sparse", lambda c: _witness_entry(c, lambda v: 0)),
    "zero witness": ("patch", _set("witness", np.zeros((1, 1, 3, 3), int).tolist())),
    "rank-deficient witness": ("patch", _set("witness", [[[[0, 2, 3], [4, 5, 6], [7, 8, 9]]]])),
    "witness one row short": ("patch", _set("witness.0.0.2", [7, 8])),
    "witness missing a tap row": ("patch", lambda c: c["witness"][0][0].pop()),
    "witness shape 1x1x3": ("patch", _set("witness", [[[1, 2, 3]]])),
    "witness as a tuple": ("patch", lambda c: c.update(witness=tuple(c["witness"]))),
    "sparse shape short": ("patch_sparse", _set("witness.shape", [1, 1, 3])),
    "sparse duplicate index": (
        "patch_sparse",
        lambda c: c["witness"]["entries"].append([*c["witness"]["entries"][0][:-1], 5]),
    ),
    "sparse index out of range": ("patch_sparse", _set("witness.entries.0.2", 3)),
    "sparse negative index": ("patch_sparse", _set("witness.entries.0.3", -1)),
    "sparse entry too short": ("patch_sparse", _set("witness.entries.0", [0, 0, 0, 1])),
    "sparse extra key": ("patch_sparse", _set("witness.dtype", "int")),
    "sparse missing entries": ("patch_sparse", _delete("witness.entries")),
    "sparse dropped entry": ("patch_sparse", lambda c: c["witness"]["entries"].pop(4)),
    "duplicate row": ("patch", lambda c: c["proof"]["rows"].__setitem__(4, c["proof"]["rows"][3])),
    "duplicate column": (
        "patch",
        lambda c: c["proof"]["columns"].__setitem__(4, c["proof"]["columns"][3]),
    ),
    "a column repeating another's entry class": ("patch", lambda c: _same_class_column(c)),
    "row outside N": ("patch", _set("proof.rows.0", [5, 5])),
    "row with 3 coordinates": ("patch", _set("proof.rows.0", [1, 1, 0])),
    "column a = P": ("patch", _set("proof.columns.0.0", 2)),
    "column c = C": ("patch", _set("proof.columns.0.2", 1)),
    "column o = D": ("patch", _set("proof.columns.0.5", 1)),
    "column negative": ("patch", _set("proof.columns.0.3", -1)),
    "rows reversed": ("patch", lambda c: c["proof"]["rows"].reverse()),
    "columns reversed": ("patch", lambda c: c["proof"]["columns"].reverse()),
    "rows swapped": (
        "patch",
        lambda c: c["proof"]["rows"].insert(0, c["proof"]["rows"].pop(5)),
    ),
    "a row dropped": ("patch", lambda c: c["proof"]["rows"].pop()),
    "extra top-level key": ("patch", _set("comment", "trust me")),
    "extra claim key": ("patch", _set("claim.grid", None)),
    "extra proof key": ("patch", _set("proof.prime", 3)),
    "missing format": ("patch", _delete("format")),
    "missing claim key": ("patch", _delete("claim.groups")),
    "missing proof key": ("patch", _delete("proof.columns")),
    "wrong format": ("patch", _set("format", "conv-as-attention certificate v2")),
    "gordan proof for a lower bound": ("patch", _set("proof.kind", "gordan")),
    "unknown proof kind": ("patch", _set("proof.kind", "trust")),
    "determinant without prime": ("patch", _set("proof.kind", "determinant")),
    "composite prime": ("patch_det", _set("proof.prime", 1_000_001)),
    "prime 2": ("patch_det", lambda c: c["proof"].update(prime=2, det_mod_p=1)),
    "prime 2**63 + 29": ("patch_det", _set("proof.prime", 2**63 + 29)),
    "prime 1": ("patch_det", _set("proof.prime", 1)),
    "det_mod_p 0": ("patch_det", _set("proof.det_mod_p", 0)),
    "det_mod_p = p": ("patch_det", lambda c: c["proof"].update(det_mod_p=c["proof"]["prime"])),
    "det_mod_p + 1": (
        "patch_det",
        lambda c: c["proof"].update(det_mod_p=c["proof"]["det_mod_p"] + 1),
    ),
    "det_mod_p - p": (
        "patch_det",
        lambda c: c["proof"].update(det_mod_p=c["proof"]["det_mod_p"] - c["proof"]["prime"]),
    ),
    "det_mod_p 1.0": (
        "patch_det",
        lambda c: c["proof"].update(det_mod_p=float(c["proof"]["det_mod_p"])),
    ),
    "determinant centre tap changed": ("patch_det", lambda c: _witness_entry(c, lambda v: v + 1)),
    "determinant rows swapped": (
        "patch_det",
        lambda c: c["proof"]["rows"].insert(0, c["proof"]["rows"].pop(1)),
    ),
}


@pytest.mark.parametrize("name", list(LOWER_FORGERIES))
def test_every_listed_forgery_of_a_lower_bound_certificate_is_rejected(name: str) -> None:
    which, mutate = LOWER_FORGERIES[name]
    cert = fresh(which)
    mutate(cert)
    assert repr(cert) != repr(base(which))
    with pytest.raises(CertificateError):
        checker.check(cert)


def _relation(i: int, **change: Any) -> Any:
    return lambda c: c["proof"]["relations"][i].update(**change)


def _bump_coefficient(c: dict) -> None:
    rel = c["proof"]["relations"][0]
    rel["coefficients"][0] += 1


def _inactive_only(c: dict) -> None:
    c["proof"].update(positive=None, obstruction=[[[1, 0], 1]])
    c["claim"]["heads"] = 2


GORDAN_FORGERIES: dict[str, tuple[str, Any]] = {
    "heads + 1": ("positive", _set("claim.heads", 3)),
    "heads - 1": ("positive", _set("claim.heads", 1)),
    "obstruction heads - 1": ("obstruction", _set("claim.heads", 8)),
    "obstruction heads + 1": ("obstruction", _set("claim.heads", 10)),
    "heads 2.0": ("positive", _set("claim.heads", 2.0)),
    "span_dim + 1": ("positive", _set("proof.span_dim", 3)),
    "span_dim - 1 and heads - 1": (
        "positive",
        lambda c: (c["proof"].update(span_dim=1), c["claim"].update(heads=1)),
    ),
    "a minor row dropped, s - 1": (
        "obstruction",
        lambda c: (
            c["proof"].update(span_dim=7),
            c["claim"].update(heads=8),
            c["proof"]["minor"]["rows"].pop(),
            c["proof"]["minor"]["columns"].pop(),
        ),
    ),
    "relation coefficient + 1": ("positive", _bump_coefficient),
    "relation scale + 1": (
        "positive",
        lambda c: c["proof"]["relations"][0].update(scale=c["proof"]["relations"][0]["scale"] + 1),
    ),
    "relation scale 0": ("positive", _relation(0, scale=0)),
    "relation scale true": ("positive", _relation(0, scale=True)),
    "relation coefficients too short": ("positive", _relation(0, coefficients=[1])),
    "relation dropped": ("positive", lambda c: c["proof"]["relations"].pop()),
    "relation duplicated": (
        "positive",
        lambda c: c["proof"]["relations"].__setitem__(1, c["proof"]["relations"][0]),
    ),
    "relation row is a minor row": (
        "positive",
        lambda c: c["proof"]["relations"][0].update(row=c["proof"]["minor"]["rows"][0]),
    ),
    "relation row outside N": ("positive", _relation(0, row=[5, 5])),
    "relation extra key": ("positive", _relation(0, note="x")),
    "relations null": ("positive", _set("proof.relations", None)),
    "positive y all zero": ("positive", _set("proof.positive", [0, 0])),
    "positive y negated": (
        "positive",
        lambda c: c["proof"].update(positive=[-v for v in c["proof"]["positive"]]),
    ),
    "positive y one entry": ("positive", _set("proof.positive", [1])),
    "positive y float": (
        "positive",
        lambda c: c["proof"].update(positive=[float(v) for v in c["proof"]["positive"]]),
    ),
    "both positive and obstruction": (
        "positive",
        _set("proof.obstruction", [[[0, 0], 1]]),
    ),
    "neither positive nor obstruction": ("positive", _set("proof.positive", None)),
    "positive claimed with heads s + 1": ("grid_positive", _set("claim.heads", 2)),
    "obstruction claimed with heads s": ("grid_obstruction", _set("claim.heads", 1)),
    "obstruction z negative entry": ("grid_obstruction", _set("proof.obstruction.0.1", -2)),
    "obstruction z + 1": ("grid_obstruction", _set("proof.obstruction.0.1", 3)),
    "obstruction all zero": (
        "obstruction",
        lambda c: c["proof"].update(obstruction=[[r, 0] for r, _ in c["proof"]["obstruction"]]),
    ),
    "obstruction empty": ("obstruction", _set("proof.obstruction", [])),
    "obstruction one row off": ("obstruction", _set("proof.obstruction.0.1", 2)),
    "obstruction duplicate row": (
        "grid_obstruction",
        lambda c: c["proof"]["obstruction"].append(c["proof"]["obstruction"][0]),
    ),
    "obstruction row outside the grid": ("grid_obstruction", _set("proof.obstruction.0.0", [2, 0])),
    "obstruction only on an inactive row": ("grid_cancel", _inactive_only),
    "obstruction not a list": ("obstruction", _set("proof.obstruction", {"0": 1})),
    "grid removed": ("grid_obstruction", _set("claim.grid", None)),
    "grid 3x3": ("grid_obstruction", _set("claim.grid", [3, 3])),
    "grid of one axis": ("grid_obstruction", _set("claim.grid", [2])),
    "grid 0": ("grid_obstruction", _set("claim.grid", [0, 2])),
    "grid added": ("obstruction", _set("claim.grid", [2, 2])),
    "missing grid": ("positive", _delete("claim.grid")),
    "heads_at_least in a minimum claim": ("positive", _set("claim.heads_at_least", 2)),
    "minor determinant off by one": (
        "positive",
        lambda c: c["proof"]["minor"].update(det_mod_p=c["proof"]["minor"]["det_mod_p"] + 1),
    ),
    "minor row outside N": ("grid_cancel", _set("proof.minor.rows.0", [2, 0])),
    "triangular proof for a heads claim": ("positive", _set("proof.kind", "triangular")),
    "witness tap changed": ("positive", _set("witness.1.0.0.0", 2)),
    "witness zero-sum broken": ("obstruction", _set("witness.0.0.1.1", 100)),
    "relabelled patch": (
        "positive",
        lambda c: c["claim"].update(tokens="patch", patch_size=[2, 2]),
    ),
}


@pytest.mark.parametrize("name", list(GORDAN_FORGERIES))
def test_every_listed_forgery_of_an_exact_minimum_certificate_is_rejected(name: str) -> None:
    which, mutate = GORDAN_FORGERIES[name]
    cert = fresh(which)
    mutate(cert)
    assert repr(cert) != repr(base(which))
    with pytest.raises(CertificateError):
        checker.check(cert)


SEMANTIC_FORGERIES = [
    *("dilation 2", "dilation 1x2", "patch size 3", "zero witness", "rank-deficient witness"),
    *("centre tap 0", "sparse dropped entry", "row outside N", "rows reversed", "rows swapped"),
    *("columns reversed", "a column repeating another's entry class", "det_mod_p + 1"),
    *("heads + 1 with a row outside N", "determinant centre tap changed"),
    *("determinant rows swapped", "relation coefficient + 1", "relation scale + 1"),
    *("positive y all zero", "positive y negated", "obstruction z + 1", "obstruction one row off"),
    *("obstruction only on an inactive row", "witness tap changed", "witness zero-sum broken"),
    *("relabelled patch", "minor determinant off by one", "grid removed", "grid 3x3"),
]


@pytest.mark.parametrize("name", SEMANTIC_FORGERIES)
def test_well_formed_forgeries_are_caught_by_the_proof_not_by_field_validation(name: str) -> None:
    which, mutate = LOWER_FORGERIES.get(name) or GORDAN_FORGERIES[name]
    cert = fresh(which)
    mutate(cert)
    with pytest.raises(CertificateError, match=r"^proof"):
        checker.check(cert)


def test_rejections_name_the_failing_field() -> None:
    def reason(cert: Any) -> str:
        with pytest.raises(CertificateError) as info:
            checker.check(cert)
        return str(info.value)

    c = fresh("patch")
    c["claim"]["kernel_size"] = [3, 3.0]
    assert reason(c) == "claim.kernel_size: expected a list of 2 integers, got [3, 3.0]"
    c = fresh("patch")
    c["proof"]["rows"][4] = c["proof"]["rows"][0]
    assert reason(c) == "proof.rows[4]: duplicate offset"
    c = fresh("patch_sparse")
    c["witness"]["shape"] = [1, 1, 3]
    assert reason(c) == "witness: shape (1, 1, 3) does not match the claim (1, 1, 3, 3)"
    c = fresh("patch")
    c["proof"]["rows"][2] = [7, 7]
    assert reason(c) == "proof: X[2][2] is 0, the minor is not non-singular"
    c = fresh("patch")
    c["claim"]["heads_at_least"] = 9
    c["proof"]["rows"].pop()
    assert reason(c) == "claim.heads_at_least=9 but the proof has 8 rows"
    c = fresh("patch_det")
    c["proof"]["prime"] = 1_000_001
    assert reason(c) == "proof.prime: 1000001 is not prime"
    c = fresh("positive")
    c["claim"]["heads"] = 3
    assert reason(c) == "claim.heads=3 but the proof shows the minimum is 2"
    c = fresh("grid_cancel")
    _inactive_only(c)
    assert reason(c) == "proof.obstruction: 0 on every active row"
    assert reason({**fresh("patch"), "extra": 1}).startswith("certificate: missing keys [], extra")


# ----------------------------------------------------------------------------------------------
# The checker agrees with the brute force on random and perturbed certificates.


@st.composite
def small_convolutions(draw: st.DrawFn) -> tuple[np.ndarray, list[int] | None, list[int], int]:
    d = draw(st.integers(1, 2))
    k = [draw(st.integers(1, 3)) for _ in range(d)]
    patch = draw(st.booleans())
    P = [draw(st.integers(1, 3)) for _ in range(d)] if patch else None
    dilation = [draw(st.integers(1, 2)) for _ in range(d)]
    groups = draw(st.sampled_from([1, 2]))
    Cg, Dg = draw(st.integers(1, 2)), draw(st.integers(1, 2 if groups == 1 else 1))
    values = st.integers(-2, 2)
    w = np.array(
        draw(
            st.lists(
                values,
                min_size=Dg * groups * Cg * math.prod(k),
                max_size=Dg * groups * Cg * math.prod(k),
            )
        )
    ).reshape(Dg * groups, Cg, *k)
    return w, P, dilation, groups


@given(conv=small_convolutions(), data=st.data())
def test_the_verdict_on_random_minors_agrees_with_the_brute_force(conv, data) -> None:
    w, P, dilation, groups = conv
    d = w.ndim - 2
    ref = reference(w, P or [1] * d, dilation, groups)
    kind = data.draw(st.sampled_from(["triangular", "determinant"]))
    if data.draw(st.booleans()):  # a producer's minor, perhaps shuffled
        rows, cols = (triangular_minor if kind == "triangular" else nonsingular_minor)(ref.G)
        order = data.draw(st.permutations(range(len(rows))))
        if data.draw(st.booleans()):
            rows = [rows[i] for i in order]
    else:
        n = data.draw(st.integers(0, min(len(ref.rows), ref.G.shape[1], 5)))
        rows = data.draw(st.lists(st.sampled_from(range(len(ref.rows))), min_size=n, max_size=n))
        cols = data.draw(st.lists(st.sampled_from(range(ref.G.shape[1])), min_size=n, max_size=n))
    labels = ref.labels()
    proof = {
        "kind": kind,
        "rows": [list(ref.rows[i]) for i in rows],
        "columns": [labels[j] for j in cols],
    }
    if data.draw(st.booleans()) and rows:  # a row outside N
        proof["rows"][-1] = [x + 40 for x in proof["rows"][-1]]
    if kind == "determinant":
        p = data.draw(st.sampled_from([3, 5, 7, 2**61 - 1]))
        X = [[ref.row(r)[ref.column(c)] for c in proof["columns"]] for r in proof["rows"]]
        r = det(X) % p or data.draw(st.integers(1, p - 1))
        proof |= {"prime": p, "det_mod_p": r if data.draw(st.booleans()) else (r % (p - 1)) + 1}
    cert = {
        "format": FORMAT,
        "claim": claim_of(w, P, dilation, groups, heads_at_least=len(rows)),
        "witness": witness_of(w, data.draw(st.booleans())),
        "proof": proof,
    }
    assert accepted(cert) == lower_bound_holds(cert)


@given(conv=small_convolutions(), data=st.data())
def test_random_gordan_certificates_agree_with_the_brute_force(conv, data) -> None:
    """Relations and minor from the producer (any geometry, with or without a circular grid);
    a random y or z: the checker accepts exactly when the brute force says the proof holds."""
    w, P, dilation, groups = conv
    d = w.ndim - 2
    grid = data.draw(st.none() | st.lists(st.integers(1, 3), min_size=d, max_size=d))
    minor = data.draw(st.sampled_from(["triangular", "determinant"]))
    try:
        cert = gordan(w, P, dilation, groups, grid, obstruction={}, minor=minor)
    except ValueError:
        assume(False)
    s, rows = cert["proof"]["span_dim"], reference_of(cert).rows
    if data.draw(st.booleans()):
        y = data.draw(st.lists(st.integers(-2, 3), min_size=s, max_size=s))
        cert["proof"].update(positive=y, obstruction=None)
        cert["claim"]["heads"] = s
    else:
        support = data.draw(st.lists(st.sampled_from(rows), unique=True, max_size=len(rows)))
        z = [[list(r), data.draw(st.integers(0, 2))] for r in support]
        cert["proof"]["obstruction"] = z
    assert accepted(cert) == gordan_holds(cert)


GORDAN_BASES = ["positive", "obstruction", "grid_positive", "grid_obstruction", "grid_cancel"]


@given(name=st.sampled_from(GORDAN_BASES), data=st.data())
def test_the_verdict_on_perturbed_gordan_certificates_agrees_with_the_brute_force(
    name, data
) -> None:
    cert = fresh(name)
    proof = cert["proof"]
    targets = ["witness"]
    targets += ["relation"] * bool(proof["relations"])
    targets += ["positive"] if proof["positive"] is not None else ["obstruction"]
    for _ in range(data.draw(st.integers(1, 2))):
        target = data.draw(st.sampled_from(targets))
        bump = data.draw(st.integers(-3, 3))
        if target == "witness":
            w = cert["witness"]
            idx = [data.draw(st.integers(0, len(w) - 1))]
            node = w[idx[0]]
            while isinstance(node[0], list):
                idx.append(data.draw(st.integers(0, len(node) - 1)))
                node = node[idx[-1]]
            j = data.draw(st.integers(0, len(node) - 1))
            node[j] += bump
        elif target == "relation":
            rel = data.draw(st.sampled_from(proof["relations"]))
            if data.draw(st.booleans()):
                rel["scale"] += bump
            else:
                rel["coefficients"][data.draw(st.integers(0, len(rel["coefficients"]) - 1))] += bump
        elif target == "positive":
            proof["positive"][data.draw(st.integers(0, len(proof["positive"]) - 1))] += bump
        else:
            proof["obstruction"][data.draw(st.integers(0, len(proof["obstruction"]) - 1))][1] += (
                bump
            )
    assert accepted(cert) == gordan_holds(cert)


# ----------------------------------------------------------------------------------------------
# Garbage raises CertificateError and nothing else.

KEYS = [
    "format",
    "claim",
    "witness",
    "proof",
    "tokens",
    "kernel_size",
    "patch_size",
    "dilation",
    "groups",
    "in_channels",
    "out_channels",
    "heads_at_least",
    "heads",
    "grid",
    "kind",
    "rows",
    "columns",
    "prime",
    "det_mod_p",
    "shape",
    "entries",
    "span_dim",
    "minor",
    "relations",
    "positive",
    "obstruction",
    "row",
    "scale",
    "coefficients",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.integers()
    | st.sampled_from([2**1024, -(2**1024), 2**63 - 1, 2**63, 4096, 4097, 2**25, 2**40])
    | st.floats(allow_nan=True)
    | st.sampled_from(["pixel", "patch", "triangular", "determinant", "gordan", FORMAT])
    | st.text(max_size=4)
)
JSONISH = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), kids, max_size=5)
    ),
    max_leaves=25,
)


@given(value=JSONISH)
def test_random_json_values_are_rejected_with_certificate_error_only(value) -> None:
    with pytest.raises(CertificateError):
        checker.check(value)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


ALL_BASES = ["patch", "patch_det", "patch_sparse", "groups", *GORDAN_BASES]


@given(name=st.sampled_from(ALL_BASES), data=st.data(), value=JSONISH)
def test_replacing_any_field_with_garbage_raises_nothing_but_certificate_error(name, data, value):
    cert = fresh(name)
    path = data.draw(st.sampled_from(_paths(cert)[1:]))
    node = cert
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    try:
        result = checker.check(cert)
    except CertificateError:
        return
    assert result["summary"].startswith("verified: ")  # still valid: then the brute force agrees
    assert (lower_bound_holds if "heads_at_least" in cert["claim"] else gordan_holds)(cert)


@given(name=st.sampled_from(ALL_BASES), data=st.data())
def test_mangled_json_text_raises_nothing_but_certificate_error(name, data) -> None:
    text = json.dumps(base(name))
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i, min(len(text), i + 3)))
    text = text[:i] + data.draw(st.text(max_size=3)) + text[j:]
    try:
        checker.check_text(text)
    except CertificateError:
        return
    cert = json.loads(text)  # still a valid certificate: then the brute force agrees
    assert (lower_bound_holds if "heads_at_least" in cert["claim"] else gordan_holds)(cert)


@given(text=st.text())
def test_random_text_raises_nothing_but_certificate_error(text) -> None:
    with pytest.raises(CertificateError):
        checker.check_text(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1.0}',
        '{"a": 1e3}',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": 1, "a": 1}',
        '{"format": 1, "claim": {"x": 1, "x": 2}}',
        "[1, 2]",
        '"text"',
        "3",
        "null",
        "",
        "{",
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' + "9" * 400 + "}",
        '{"a": ' + "9" * 5000 + "}",
        b'{"a": 1}',
        None,
    ],
    ids=lambda t: repr(t)[:20],
)
def test_parse_rejects_floats_nan_infinity_duplicate_keys_and_non_objects(text) -> None:
    with pytest.raises(CertificateError):
        checker.parse(text)


def _nested(depth: int) -> list:
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


HOSTILE = {
    "kernel 4096^3 dense": lambda c: c["claim"].update(
        kernel_size=[4096] * 3, dilation=[1] * 3, patch_size=[2] * 3
    ),
    "kernel 4097": _set("claim.kernel_size", [4097, 3]),
    "kernel 0": _set("claim.kernel_size", [0, 3]),
    "kernel -3": _set("claim.kernel_size", [-3, 3]),
    "kernel of 4 axes": _set("claim.kernel_size", [3, 3, 3, 3]),
    "kernel empty": _set("claim.kernel_size", []),
    "patch 2**1000": _set("claim.patch_size", [2**1000, 2]),
    "patch 2**2000": _set("claim.patch_size", [2**2000, 2]),
    "dilation 2**21": _set("claim.dilation", [2**21, 1]),
    "channels 2**21": _set("claim.in_channels", 2**21),
    "channels 0": _set("claim.in_channels", 0),
    "heads 10**400": _set("claim.heads_at_least", 10**400),
    "heads 2**1024": _set("claim.heads_at_least", 2**1024),
    "witness nested 100000 deep": _set("witness", _nested(100_000)),
    "witness self-referential": lambda c: c["witness"][0][0].append(c["witness"]),
    "rows nested deep": _set("proof.rows", [_nested(10_000)] * 9),
    "rows of 10**5 items": _set("proof.rows", [[0, 0]] * 100_000),
    "column 10**400": _set("proof.columns.0.2", 10**400),
    "huge sparse shape": lambda c: c.update(
        claim={
            **c["claim"],
            "kernel_size": [4096, 4096],
            "in_channels": 2**20,
            "out_channels": 2**20,
        },
        witness={"shape": [2**20, 2**20, 4096, 4096], "entries": [[2**20 - 1, 0, 4095, 4095, 1]]},
    ),
    "sparse 2**22 + 1 entries": lambda c: c.update(
        witness={"shape": [1, 1, 3, 3], "entries": [[0, 0, 0, 0, 1]] * (2**22 + 1)}
    ),
    "determinant n = 2001": lambda c: (
        c["proof"].update(
            kind="determinant",
            prime=3,
            det_mod_p=1,
            rows=[[i, 0] for i in range(2001)],
            columns=[[0, 0, 0, 0, 0, 0]] * 2001,
        )
        or c["claim"].update(heads_at_least=2001)
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_huge_deep_negative_and_out_of_range_inputs_are_rejected_cleanly(name: str) -> None:
    cert = fresh("patch")
    HOSTILE[name](cert)
    start = time.perf_counter()
    with pytest.raises(CertificateError):
        checker.check(cert)
    print(f"{name}: rejected in {time.perf_counter() - start:.3f} s")


def test_huge_gordan_neighbourhoods_are_rejected_before_being_enumerated() -> None:
    cert = fresh("positive")
    cert["claim"].update(kernel_size=[4096, 4096], patch_size=None)
    cert["witness"] = {"shape": [2, 1, 4096, 4096], "entries": [[0, 0, 0, 0, 1]]}
    with pytest.raises(CertificateError, match="relations"):
        checker.check(cert)


# ----------------------------------------------------------------------------------------------
# Scale: large sparse certificates verify quickly (times are printed, not asserted).


def pixel_scale_certificate() -> dict:
    """Pixel tokens, 63x63 kernel, C = D = 63: tap i holds the only weight of channel pair i, so
    the minor (row i = δ_i, column i = that pair) is diagonal: 3969 heads."""
    k, C, half = 63, 63, 31
    entries, rows, cols = [], [], []
    for i in range(k * k):
        (t1, t2), (c, o) = divmod(i, k), divmod(i, C)
        entries.append([o, c, t1, t2, 1 + i % 7])
        rows.append([t1 - half, t2 - half])
        cols.append([0, 0, c, 0, 0, o])
    return {
        "format": FORMAT,
        "claim": {
            "tokens": "pixel",
            "kernel_size": [k, k],
            "patch_size": None,
            "dilation": [1, 1],
            "groups": 1,
            "in_channels": C,
            "out_channels": C,
            "heads_at_least": k * k,
        },
        "witness": {"shape": [C, C, k, k], "entries": entries},
        "proof": {"kind": "triangular", "rows": rows, "columns": cols},
    }


def patch_scale_certificate() -> dict:
    """Patch tokens P = 32x32, 3x3 kernel, C = D = 768, 9 weights on distinct channel pairs:
    row δ, column e = −31·δ with tap δ's pair; the minor is diagonal: 9 heads."""
    entries, rows, cols = [], [], []
    for i, (t1, t2) in enumerate(itertools.product(range(3), repeat=2)):
        c, o, delta = 80 * i + 7, 700 - 50 * i, (t1 - 1, t2 - 1)
        e = [-31 * x for x in delta]
        entries.append([o, c, t1, t2, i - 4 or 5])
        rows.append(list(delta))
        cols.append([max(e[0], 0), max(e[1], 0), c, max(-e[0], 0), max(-e[1], 0), o])
    return {
        "format": FORMAT,
        "claim": {
            "tokens": "patch",
            "kernel_size": [3, 3],
            "patch_size": [32, 32],
            "dilation": [1, 1],
            "groups": 1,
            "in_channels": 768,
            "out_channels": 768,
            "heads_at_least": 9,
        },
        "witness": {"shape": [768, 768, 3, 3], "entries": entries},
        "proof": {"kind": "triangular", "rows": rows, "columns": cols},
    }


def gordan_scale_certificate(sparse: bool) -> dict:
    """A random 64x64x3x3 kernel (no zero weight) on 16x16 patches: s = |N| = 9, no relations;
    the minor (row Δ, column e = −15·Δ of channel pair (0, 0)) is diagonal, y its signs."""
    rng = np.random.default_rng(1)
    w = rng.integers(1, 10, (64, 64, 3, 3)) * rng.choice([-1, 1], (64, 64, 3, 3))
    rows, cols, y = [], [], []
    for t1, t2 in itertools.product(range(3), repeat=2):
        delta = (t1 - 1, t2 - 1)
        e = [-15 * x for x in delta]
        rows.append(list(delta))
        cols.append([max(e[0], 0), max(e[1], 0), 0, max(-e[0], 0), max(-e[1], 0), 0])
        y.append(int(np.sign(w[0, 0, t1, t2])))
    return {
        "format": FORMAT,
        "claim": {**claim_of(w, [16, 16], [1, 1], 1, heads=9), "grid": None},
        "witness": witness_of(w, sparse),
        "proof": {
            "kind": "gordan",
            "span_dim": 9,
            "minor": {"kind": "triangular", "rows": rows, "columns": cols},
            "relations": [],
            "positive": y,
            "obstruction": None,
        },
    }


def _timed(cert: dict, label: str) -> dict:
    text = json.dumps(cert)
    start = time.perf_counter()
    parsed = checker.parse(text)
    middle = time.perf_counter()
    result = checker.check(parsed)
    end = time.perf_counter()
    print(f"{label}: parse {middle - start:.3f} s, check {end - middle:.3f} s")
    return result


def test_the_3969_head_pixel_certificate_with_a_sparse_witness_verifies() -> None:
    cert = pixel_scale_certificate()
    result = _timed(cert, "pixel 63x63, C=D=63, n=3969")
    assert result["heads"] == 3969
    forged = copy.deepcopy(cert)  # column 11's channel pair also gets a weight at row 10's tap
    o, c, *_ = cert["witness"]["entries"][11]
    forged["witness"]["entries"].append([o, c, *cert["witness"]["entries"][10][2:4], 1])
    with pytest.raises(CertificateError, match=r"X\[10\]\[11\] = 1 is above the diagonal"):
        checker.check(forged)
    forged = copy.deepcopy(cert)
    forged["proof"]["columns"][10], forged["proof"]["columns"][11] = cert["proof"]["columns"][
        11:9:-1
    ]
    with pytest.raises(CertificateError, match=r"X\[10\]\[10\] is 0"):
        checker.check(forged)
    forged = copy.deepcopy(cert)
    forged["witness"]["entries"][3000][-1] = 0
    with pytest.raises(CertificateError):
        checker.check(forged)
    forged = copy.deepcopy(cert)
    forged["proof"]["rows"][0] = [40, 40]
    with pytest.raises(CertificateError, match=r"X\[0\]\[0\] is 0"):
        checker.check(forged)


def test_the_nine_head_certificate_with_768_channels_and_32x32_patches_verifies() -> None:
    cert = patch_scale_certificate()
    assert _timed(cert, "patch P=32x32, C=D=768, n=9")["heads"] == 9
    forged = copy.deepcopy(cert)
    forged["proof"]["rows"][2], forged["proof"]["rows"][5] = cert["proof"]["rows"][5], [9, 9]
    with pytest.raises(CertificateError, match=r"X\[2\]\[2\] is 0"):
        checker.check(forged)
    forged = copy.deepcopy(cert)
    forged["witness"]["entries"][4][-1] = 0
    with pytest.raises(CertificateError, match="value 0"):
        checker.check(forged)
    forged = copy.deepcopy(cert)
    forged["claim"].update(tokens="pixel", patch_size=None)
    with pytest.raises(CertificateError):
        checker.check(forged)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_a_gordan_certificate_for_a_64x64x3x3_kernel_on_16x16_patches_verifies(sparse) -> None:
    cert = gordan_scale_certificate(sparse)
    result = _timed(cert, f"gordan 64x64x3x3, P=16x16 ({'sparse' if sparse else 'dense'})")
    assert (result["heads"], result["span_dim"]) == (9, 9)
    cert["proof"]["positive"][4] *= -1
    with pytest.raises(CertificateError, match=r"proof\.positive"):
        checker.check(cert)


def test_a_low_rank_64x64x3x3_pixel_kernel_has_an_exact_minimum_certificate() -> None:
    rng = np.random.default_rng(2)
    u1, u2 = rng.integers(-5, 6, (2, 64, 64, 1, 1))
    h1, h2 = rng.integers(1, 6, (3, 3)), rng.integers(-5, 6, (3, 3))
    w = u1 * h1 + u2 * h2  # rank 2, and h1 > 0 is in the span
    target = [int(h1[r[0] + 1, r[1] + 1]) for r in itertools.product((-1, 0, 1), repeat=2)]
    cert = gordan(w, positive=target, sparse=True)
    assert (cert["proof"]["span_dim"], len(cert["proof"]["relations"])) == (2, 7)
    assert _timed(cert, "gordan 64x64x3x3 pixel, rank 2, 7 relations")["heads"] == 2


# ----------------------------------------------------------------------------------------------
# The command line.


def test_main_prints_the_summary_or_the_rejection_reason(tmp_path, capsys) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(base("patch")), encoding="utf-8")
    forged = fresh("patch")
    forged["claim"]["heads_at_least"] = 10
    bad.write_text(json.dumps(forged), encoding="utf-8")
    assert checker.main([str(good)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == checker.check(base("patch"))["summary"] and out.err == ""
    assert checker.main([str(bad)]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("rejected: claim.heads_at_least=10")
    (tmp_path / "latin1.json").write_bytes(b'{"\xff": 1}')
    for path in (tmp_path / "missing.json", tmp_path / "latin1.json", tmp_path):
        assert checker.main([str(path)]) == 1
        assert capsys.readouterr().err.startswith("rejected: ")
    assert checker.main([]) == 2


def test_the_command_line_exits_0_for_a_valid_and_1_for_a_forged_certificate(tmp_path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(base("obstruction")), encoding="utf-8")
    forged = fresh("obstruction")
    forged["claim"]["heads"] = 8
    bad.write_text(json.dumps(forged), encoding="utf-8")
    run = [sys.executable, str(CHECKER.relative_to(ROOT))]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and ok.stderr == ""
    assert ok.stdout.strip().endswith(
        "the minimum is exactly 9 heads (rank 8; no positive vector: obstruction z)"
    )
    no = subprocess.run([*run, str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert no.returncode == 1 and no.stdout == ""
    assert no.stderr.startswith("rejected: claim.heads=8") and "Traceback" not in no.stderr
