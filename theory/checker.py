"""Stand-alone checker for "conv-as-attention certificate v1" and "v2" JSON certificates.

Blocks. A kernel W of shape (D, C/g, k_1..k_d) (groups g, dilation dil, stride s, padding pad),
on patch tokens of P pixels per axis (pixel tokens: P = s), has from input patch q + Δ to output
patch q (P/s pixels per axis) the block (the M_Δ used here)

    M_Δ[(a, c), (b, o)] = W[o][c − (o // (D/g))·(C/g)][t]  if c, o share a group and
                          Δ⊙P + a − s⊙b = δ(t), δ(t)_a = t_a·dil_a − pad_a;  else 0

(offsets key − query). v1 claims are stride 1 with PyTorch's 'same' padding,
pad_a = (dil_a·(k_a − 1)) // 2; v2 claims state "stride" and "padding". A block depends on
(a, b) only through e = a − s⊙b, so span{M_Δ} is the row space of G[Δ, (e, c, o)]. Only G's
non-zeros are built, from W's non-zeros: a weight at tap t lands on the ≤ 2^d pairs (Δ, e) with
Δ⊙P + e = δ(t) and −(P_a − s_a) ≤ e_a < P_a.

What a certificate proves, and how it is verified.
* Lower bound (n = "heads_at_least"): rank G ≥ n, so by "T3 (necessity)" of paper_notes.md every
  exact MHSA layer for W (and for a generic kernel of its shape) needs ≥ n heads. Proof: the minor
  X[i][j] = M_{rows[i]}[(a_j, c_j), (b_j, o_j)] is non-singular: "triangular" (X[i][j] = 0 for
  j > i, X[i][i] ≠ 0; verified by visiting G's non-zeros, never the n² positions) or
  "determinant" (det X ≡ det_mod_p ≢ 0 modulo a prime p, computed with flint.nmod_mat).
* Exact minimum (h = "heads"): by "T4 (the exact minimum)" h is s = rank G or s + 1. Proof
  "gordan": a minor as above (rank ≥ s); for every other row Δ of N a relation
  scale·M_Δ = Σ x_i·M_{rows[i]} with scale ≠ 0 (rank ≤ s); then Gordan's alternative: a y with
  v = Σ_j y_j·X_col_j > 0 on every active row (M_Δ ≠ 0) gives h = s; a z ≥ 0 with Σ z·M_Δ = 0,
  z > 0 on some active row, gives h = s + 1. Relations are checked exactly, or, when that would
  cost more than 10⁶ steps (terms plus block entries), by Freivalds' method (`_Fingerprints`:
  random linear forms modulo two random 62-bit primes drawn at check time; a false relation
  passes with probability < 2^-100), so the cost stays linear in the certificate.
  Rows: N = Π_a {Δ : ∃ e, −(P_a − s_a) ≤ e < P_a, Δ·P_a + e ∈ S_a}
  (S_a: the tap offsets δ(t)_a), or with a circular "grid" the residues ρ of N, merged as
  M'_ρ = Σ_{Δ ≡ ρ} M_Δ.

Every field is validated strictly (exact key sets, `type(v) is int`, lengths, the format's size
bounds) before work depends on it; a rejection is a CertificateError naming the failing field or
claim. Imports: the standard library and python-flint only. Usage: python checker.py CERT.json
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import math
import os
import random
import sys
from array import array
from itertools import compress, repeat
from operator import add, eq, floordiv, gt, itemgetter, mod, mul, sub
from typing import Any

import flint

FORMAT = "conv-as-attention certificate v1"
FORMAT_STRIDED = "conv-as-attention certificate v2"  # claims with "stride" and "padding"
BIG = 2**1024  # every integer must satisfy |v| < BIG
# The format's size limits: every certificate within them re-checks in ≤ 10 s and ≤ 1 GB (README)
MAX_BYTES = 2**27  # characters of JSON text
MAX_ENTRIES = 9 * 2**18  # listed entries of a sparse witness: 512·512·9, ResNet-18's largest layer
MAX_DENSE = MAX_ENTRIES  # entries of a dense witness, zeros included
MAX_NONZEROS = 5 * 2**19  # non-zeros of G: each weight lands on up to 2^d pairs (Δ, e)
MAX_ROWS = 2**16  # rows of a minor, and |N| of a Gordan proof
MAX_COEFFICIENTS = 2**22  # of a Gordan proof's relations: span_dim × (|N| − span_dim)
# Bounds on the parsed tree, counted in the text before parsing (so no input costs > 1 GB):
MAX_COMMAS = 6 * MAX_ENTRIES + 2**18  # "," (≈ JSON values): 6 per entry of a 3-D sparse witness
MAX_LISTS = MAX_ENTRIES + 2**18  # "[": one per sparse entry, the rest for the proof
MAX_OBJECTS = MAX_ROWS + 2**10  # "{": one per relation, a few more
COMMON = {"tokens", "kernel_size", "patch_size", "dilation", "groups", "in_channels",
          "out_channels"}  # fmt: skip
MINOR = {"triangular": {"kind", "rows", "columns"},
         "determinant": {"kind", "rows", "columns", "prime", "det_mod_p"}}  # fmt: skip
Row = tuple[int, ...]
Blocks = dict[Row, dict[int, int]]  # G's non-zeros by row (merged modulo the grid): {key: value}


class CertificateError(ValueError):
    """A rejected certificate; the message names the field or claim that fails."""


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise CertificateError(message)


def _show(v: Any, depth: int = 0) -> str:
    """Render any value briefly and safely for a message."""
    if type(v) is list and len(v) <= 6 and depth < 2:
        return "[" + ", ".join(_show(x, depth + 1) for x in v) + "]"
    if type(v) in (list, dict):
        return f"<{type(v).__name__} of {len(v)} items>"
    if type(v) is int and v.bit_length() > 64:
        return f"<{v.bit_length()}-bit integer>"
    text = repr(v) if v is None or type(v) in (int, bool, float, str) else f"<{type(v).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _in(v: int, lo: int | None, hi: int | None) -> bool:
    return -BIG < v < BIG and (lo is None or v >= lo) and (hi is None or v <= hi)


def _int(v: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (not a bool, float or string) with |v| < 2**1024 and lo <= v <= hi."""
    if type(v) is not int or not _in(v, lo, hi):
        bounds = "" if lo is None and hi is None else f" >= {lo}" if hi is None else f" <= {hi}"
        bounds = f" in [{lo}, {hi}]" if lo is not None and hi is not None else bounds
        raise CertificateError(f"{where}: expected an integer{bounds}, got {_show(v)}")
    return v


def _ints(v: Any, where: str, n: int, lo: int | None = None, hi: Any = None) -> Row:
    """A list of exactly n such integers; `hi` is one bound or a tuple of n bounds."""
    if type(v) is not list or len(v) != n or any(type(x) is not int for x in v):
        raise CertificateError(f"{where}: expected a list of {n} integers, got {_show(v)}")
    his = hi if type(hi) is tuple else (hi,) * n
    for i, (x, h) in enumerate(zip(v, his, strict=True)):
        if not _in(x, lo, h):
            _int(x, f"{where}[{i}]", lo, h)
    return tuple(v)


def _table(v: list, width: int, lo: tuple, hi: tuple) -> list | None:
    """The columns of v, a list of lists of `width` integers with lo ≤ x ≤ hi per position, in
    bulk (types, lengths and ranges over whole columns); None if any item is not."""
    if not (set(map(type, v)) <= {list} and set(map(len, v)) <= {width}):
        return None
    flat = list(itertools.chain.from_iterable(v))
    cols = [flat[j::width] for j in range(width)]
    ok = set(map(type, flat)) <= {int} and all(
        not x or (min(x) >= a and max(x) <= b) for x, a, b in zip(cols, lo, hi, strict=True))
    return cols if ok else None


def _obj(v: Any, where: str, keys: set[str]) -> dict:
    """An object with exactly these keys, each an exact `str` (no subclass with its own __eq__)."""
    if type(v) is dict and any(type(k) is not str for k in list(v)):
        raise CertificateError(f"{where}: every key must be a plain string")
    if type(v) is not dict or v.keys() != keys:
        _need(type(v) is dict, f"{where}: expected an object, got {_show(v)}")
        missing, extra = sorted(keys - set(v)), sorted(map(str, set(v) - keys))
        raise CertificateError(f"{where}: missing keys {_show(missing)}, extra {_show(extra)}")
    return v


def _distinct(items: list, where: str, what: str) -> None:
    seen: set = set()
    for i, x in enumerate(items):
        if x in seen:
            raise CertificateError(f"{where}[{i}]: duplicate {what}")
        seen.add(x)


def _claim(c: Any, strided: bool) -> dict:
    lower = type(c) is dict and "heads_at_least" in c
    extra = {"stride", "padding"} if strided else set()
    _obj(c, "claim", COMMON | extra | ({"heads_at_least"} if lower else {"heads", "grid"}))
    tokens, ks = c["tokens"], c["kernel_size"]
    ok = type(tokens) is str and tokens in ("pixel", "patch")
    _need(ok, f"claim.tokens: expected 'pixel' or 'patch', got {_show(tokens)}")
    d = len(ks) if type(ks) is list and 1 <= len(ks) <= 3 else 0
    _need(d > 0, f"claim.kernel_size: expected a list of 1 to 3 integers, got {_show(ks)}")
    cl: dict[str, Any] = {"lower": lower, "tokens": tokens, "d": d, "grid": None}
    cl["k"] = _ints(ks, "claim.kernel_size", d, 1, 4096)
    _need(tokens == "patch" or c["patch_size"] is None, "claim.patch_size: must be null for pixels")
    patch = tokens == "patch"
    cl["P"] = _ints(c["patch_size"], "claim.patch_size", d, 1, 4096) if patch else (1,) * d
    cl["dil"] = _ints(c["dilation"], "claim.dilation", d, 1, 2**20)
    if strided:
        cl["s"] = _ints(c["stride"], "claim.stride", d, 1, 4096)
        cl["pad"] = _ints(c["padding"], "claim.padding", d, 0, 2**20)
        if not patch:
            cl["P"] = cl["s"]  # pixel tokens of a strided convolution: its s×s input patches
        ok = all(P % s == 0 for P, s in zip(cl["P"], cl["s"], strict=True))
        _need(ok, f"claim.stride: {list(cl['s'])} does not divide the patch {list(cl['P'])}")
    else:
        cl["s"] = (1,) * d
        cl["pad"] = tuple(x * (k - 1) // 2 for k, x in zip(cl["k"], cl["dil"], strict=True))
    names = ("in_channels", "out_channels", "groups")
    C, D, g = (_int(c[name], f"claim.{name}", 1, 2**20) for name in names)
    _need(C % g == 0 and D % g == 0, f"claim.groups: {g} does not divide both {C} and {D}")
    cl.update(C=C, D=D, g=g)
    if lower:
        cl["heads"] = _int(c["heads_at_least"], "claim.heads_at_least", 0)
    else:
        cl["heads"] = _int(c["heads"], "claim.heads", 0)
        cl["grid"] = None if c["grid"] is None else _ints(c["grid"], "claim.grid", d, 1)
    return cl


def _entries_error(entries: list, shape: tuple[int, ...]) -> None:
    """Raise naming the first invalid or repeated sparse entry (the slow path of `_witness`)."""
    n, seen = len(shape), set()
    for i, e in enumerate(entries):
        where = f"witness.entries[{i}]"
        if type(e) is not list or len(e) != n + 1:
            raise CertificateError(f"{where}: expected [o, c_local, t.., v], got {_show(e)}")
        idx = _ints(e[:-1], where, n, 0, tuple(m - 1 for m in shape))
        _need(_int(e[-1], f"{where}[{n}]") != 0, f"{where}: value 0 is listed")
        _need(idx not in seen, f"{where}: index listed twice")
        seen.add(idx)


def _dense_error(w: Any, shape: tuple[int, ...]) -> None:
    """Raise naming the first malformed node of a dense witness (the slow path of `_witness`)."""
    stack: list[tuple[Row, Any]] = [((), w)]
    while stack:  # depth-first, so the stack stays short
        idx, node = stack.pop()
        where = "witness" + "".join(f"[{i}]" for i in idx)
        if len(idx) == len(shape):
            _int(node, where)
        elif type(node) is not list or len(node) != shape[len(idx)]:
            n = shape[len(idx)]
            raise CertificateError(f"{where}: expected a list of {n} items, got {_show(node)}")
        else:
            stack.extend(((*idx, i), x) for i, x in enumerate(node))


def _flat(columns: list, radices: tuple[int, ...]) -> Any:
    """The mixed-radix numbers of the digit columns, lazily (C-speed maps, no Python loop)."""
    acc: Any = columns[0]
    for col, m in zip(columns[1:], radices[1:], strict=True):
        acc = map(add, map(mul, acc, repeat(m)), col)
    return acc


def _witness(w: Any, cl: dict) -> list[tuple[Row, dict[int, int]]]:
    """The non-zero weights by tap: [(t, {c·D + o: value})] (c global), dense or sparse form.
    Validation is in bulk (types, lengths, ranges over whole columns); a failure re-reads the
    witness slowly to name the first bad entry."""
    C, D, g, k = cl["C"], cl["D"], cl["g"], cl["k"]
    Cg, Dg = C // g, D // g
    shape, n = (D, Cg, *k), len(k) + 2
    if type(w) is dict:
        s, E = _obj(w, "witness", {"shape", "entries"})["shape"], w["entries"]
        ok = type(s) is list and len(s) <= 5 and all(type(x) is int for x in s)
        _need(ok, f"witness.shape: expected a list of integers, got {_show(s)}")
        _need(tuple(s) == shape, f"witness: shape {tuple(s)} does not match the claim {shape}")
        ok = type(E) is list and len(E) <= MAX_ENTRIES
        _need(ok, f"witness.entries: expected a list of at most MAX_ENTRIES = {MAX_ENTRIES}")
        ok = set(map(type, E)) <= {list} and set(map(len, E)) <= {n + 1}
        flat = list(itertools.chain.from_iterable(E)) if ok else []
        cols = [flat[j :: n + 1] for j in range(n + 1)]  # the columns o, c_local, t.., v
        ok = ok and set(map(type, flat)) <= {int} and 0 not in cols[-1]
        del flat
        ok = ok and all(min(x, default=0) >= 0 and max(x, default=0) < m
                        for x, m in zip(map(set, cols[:-1]), shape, strict=True))  # fmt: skip
        if not (ok and -BIG < min(cols[-1], default=0) and max(cols[-1], default=0) < BIG):
            _entries_error(E, shape)
        o, c, v = cols[0], cols[1], cols[-1]
        if g > 1:  # the global input channel
            c = map(add, map(mul, map(floordiv, o, repeat(Dg)), repeat(Cg)), c)
        keys = list(map(add, map(mul, o, repeat(C)), c))
        tf, N, T = list(_flat(cols[2:-1], k)), len(E), math.prod(k)
        del cols, c, o
        if N and N % T == 0 and tf == list(range(T)) * (N // T):  # each tap in turn: slices
            by_tap = {t: dict(zip(keys[t::T], v[t::T], strict=True)) for t in range(T)}
        else:  # any order: one pass
            by_tap = {t: {} for t in set(tf)}
            for t, key, x in zip(tf, keys, v, strict=True):
                by_tap[t][key] = x
        if sum(map(len, by_tap.values())) < N:
            _entries_error(E, shape)  # an index listed twice
        return sorted(by_tap.items())
    _need(math.prod(shape) <= MAX_DENSE, f"witness: a dense witness {shape} has > MAX_DENSE = "
          f"{MAX_DENSE} entries")  # fmt: skip
    level = [w]
    for m in shape:
        if not (set(map(type, level)) <= {list} and set(map(len, level)) <= {m}):
            _dense_error(w, shape)
        level = list(itertools.chain.from_iterable(level))
    if not (set(map(type, level)) <= {int} and -BIG < min(level) and max(level) < BIG):
        _dense_error(w, shape)
    T = math.prod(k)
    keys = [o * C + (o // Dg) * Cg + c for o in range(D) for c in range(Cg)]
    out = [(t, dict(zip(compress(keys, level[t::T]), filter(None, level[t::T]), strict=True)))
           for t in range(T)]  # fmt: skip
    return [(t, block) for t, block in out if block]


def _split(ta: int, dil: int, P: int, s: int, pad: int) -> tuple[tuple[int, int], ...]:
    """The (Δ_a, e_a) with Δ_a·P + e_a = δ(t)_a = t_a·dil − pad and −(P − s) ≤ e_a < P."""
    q, r = divmod(ta * dil - pad, P)
    return ((q, r), (q + 1, r - P)) if r >= s else ((q, r),)


def _axes(cl: dict) -> list[list[list[tuple[int, int]]]]:
    """Per axis a and tap t_a: the (Δ_a, or Δ_a modulo the grid; e_a's part of the key offset)
    with Δ_a·P_a + e_a = δ(t)_a. An entry class (e, c, o) has the key (ε·D + o)·C + c, where
    ε = Σ_a (e_a + P_a − s_a)·R_a is e's index in Π_a [−(P_a − s_a), P_a),
    R_a = Π_b>a (2P_b − s_b)."""
    grid, out, R = cl["grid"] or (0,) * cl["d"], [], cl["C"] * cl["D"]
    for a in reversed(range(cl["d"])):
        P, s, m = cl["P"][a], cl["s"][a], grid[a]
        out.insert(0, [[(x % m if m else x, (e + P - s) * R)
                        for x, e in _split(t, cl["dil"][a], P, s, cl["pad"][a])]
                       for t in range(cl["k"][a])])  # fmt: skip
        R *= 2 * P - s
    return out


def _eps(e: Any, cl: dict) -> int:
    """e's index ε in Π_a [−(P_a − s_a), P_a) (see `_axes`)."""
    out = 0
    for x, P, s in zip(e, cl["P"], cl["s"], strict=True):
        out = out * (2 * P - s) + x + P - s
    return out


def _blocks(W: list, cl: dict, keep: set[Row] | None) -> Blocks:
    """G's non-zero entries on the rows in `keep` (all rows if None), merged modulo the grid.
    Without a grid no two weights reach one (row, key): a block is a dict of the tap's, shifted."""
    k, ts, blocks = cl["k"], [t for t, _ in W], [block for _, block in W]
    digits = [map(mod, map(floordiv, ts, repeat(math.prod(k[a + 1 :]))), repeat(k[a]))
              for a in range(len(k))]  # per axis, t_a of each tap  # fmt: skip
    lands = [list(map(ax.__getitem__, t_a)) for ax, t_a in zip(_axes(cl), digits, strict=True)]
    if all(len(x) == 1 for ax in _axes(cl) for x in ax):  # one (Δ, e) per tap: in bulk
        pairs = [[pair[0] for pair in la] for la in lands]
        rows = zip(*[map(itemgetter(0), x) for x in pairs], strict=True)
        offs = map(sum, zip(*[map(itemgetter(1), x) for x in pairs], strict=True))
        reach = list(zip(blocks, ([z] for z in zip(rows, offs, strict=True)), strict=True))
    else:  # per tap: [(row, key offset)], the product over the axes
        reach = [(block, [(row, sum(offs)) for row, offs in
                          (zip(*c, strict=True) for c in itertools.product(*per_axis))])
                 for block, per_axis in zip(blocks, zip(*lands, strict=True), strict=True)]
    total = sum(len(block) * len(to) for block, to in reach)
    _need(total <= MAX_NONZEROS, f"witness: G has {total} > MAX_NONZEROS = {MAX_NONZEROS} "
          "non-zeros (each weight lands on up to 2^d pairs (Δ, e))")  # fmt: skip
    G: Blocks = {}
    own: set[Row] = set()  # the rows whose dict is G's own, not a witness tap's
    for block, to in reach:
        for row, off in to:
            if keep is not None and row not in keep:
                continue
            src = dict(zip(map(add, block, repeat(off)), block.values())) if off else block  # noqa: B905
            if row not in G:
                G[row] = src
                (own.add(row) if src is not block else None)
                continue
            if row not in own:
                G[row], _ = dict(G[row]), own.add(row)
            if cl["grid"] is None:
                G[row].update(src)
            else:
                acc = G[row]
                acc.update(zip(src, map(add, map(acc.get, src, repeat(0)), src.values())))  # noqa: B905
    if cl["grid"] is not None:
        G = {row: {key: v for key, v in block.items() if v} for row, block in G.items()}
    return {row: block for row, block in G.items() if block}


def _minor(m: Any, cl: dict, n: int, where: str, count: str) -> tuple:
    """Validate a minor of size n; return (kind, rows, column classes, prime, det_mod_p)."""
    kind = m.get("kind") if type(m) is dict else None
    ok = type(kind) is str and kind in MINOR
    _need(ok, f"{where}.kind: expected 'triangular' or 'determinant', got {_show(kind)}")
    _obj(m, where, MINOR[kind])
    _need(kind != "determinant" or n <= 2000, f"{where}: a determinant minor needs n <= 2000")
    _need(n <= MAX_ROWS, f"{count} has {n} rows: more than MAX_ROWS = {MAX_ROWS}")
    for name in ("rows", "columns"):
        got = len(m[name]) if type(m[name]) is list else _show(m[name])
        _need(got == n, f"{count} has {got} {name}")
    d, P, S = cl["d"], cl["P"], cl["s"]
    Q = [p // s for p, s in zip(P, S, strict=True)]  # output pixels per patch side
    bounds = (*(p - 1 for p in P), cl["C"] - 1, *(q - 1 for q in Q), cl["D"] - 1)
    by_row = _table(m["rows"], d, (1 - BIG,) * d, (BIG - 1,) * d)
    by_col = _table(m["columns"], 2 * d + 2, (0,) * (2 * d + 2), bounds)
    if by_row is None or by_col is None:  # name the first bad one
        [_ints(x, f"{where}.rows[{i}]", d) for i, x in enumerate(m["rows"])]
        for j, x in enumerate(m["columns"]):
            _ints(x, f"{where}.columns[{j}]", 2 * d + 2, 0, bounds)
    rows = list(zip(*by_row, strict=True)) if n else []
    if len(set(rows)) < n or len(set(zip(*by_col, strict=True))) < n:
        _distinct(rows, f"{where}.rows", "offset")
        _distinct(list(map(tuple, m["columns"])), f"{where}.columns", "column")
    eps: Any = repeat(0)  # the key (ε·D + o)·C + c of each column's entry class (see `_axes`)
    for a, (Pa, s) in enumerate(zip(P, S, strict=True)):  # ε += e_a + P − s, e_a = a_a − s·b_a
        e = map(sub, by_col[a], map(mul, by_col[d + 1 + a], repeat(s)))
        eps = map(add, map(mul, eps, repeat(2 * Pa - s)), map(add, e, repeat(Pa - s)))
    C, D = cl["C"], cl["D"]
    keys = list(map(add, map(mul, map(add, map(mul, eps, repeat(D)), by_col[-1]), repeat(C)),
                    by_col[d])) if n else []  # fmt: skip
    p = r = 0
    if kind == "determinant":
        p = _int(m["prime"], f"{where}.prime", 3, 2**63 - 1)
        _need(flint.fmpz(p).is_prime(), f"{where}.prime: {p} is not prime")
        r = _int(m["det_mod_p"], f"{where}.det_mod_p", 1, p - 1)
    return kind, rows, keys, p, r


def _nonsingular(minor: tuple, G: Blocks, where: str) -> None:
    """Verify that X[i][j] = G[rows[i]][keys[j]] is non-singular, as the minor's kind says."""
    kind, rows, keys, p, r = minor
    if kind == "triangular":
        last = {key: j for j, key in enumerate(keys)}  # the last column of each entry class
        blocks = list(map(G.get, rows, repeat({})))
        if not all(map(dict.get, blocks, keys)):  # in bulk; then find the first failure
            i = next(i for i, (b, key) in enumerate(zip(blocks, keys)) if not b.get(key))  # noqa: B905
            raise CertificateError(f"{where}: X[{i}][{i}] is 0, the minor is not non-singular")
        tops = list(map(max, map(map, repeat(last.get), blocks, repeat(repeat(-1)))))
        if any(map(gt, tops, range(len(rows)))):  # the last non-zero column of a row is > i
            i = next(i for i, top in enumerate(tops) if top > i)
            j, v = max((last.get(key, -1), v) for key, v in blocks[i].items())
            raise CertificateError(f"{where}: X[{i}][{j}] = {_show(v)} is above the diagonal")
        return
    X = [block.get(key, 0) for block in (G.get(row, {}) for row in rows) for key in keys]
    det = int(flint.nmod_mat(len(rows), len(rows), X, p).det())
    _need(det == r, f"{where}: det X mod {p} is {det}, not det_mod_p={r}")


def _vanishes(G: Blocks, terms: list[tuple[int, Row]], where: str, what: str, cl: dict) -> None:
    """Verify Σ x·G[row] = 0 on every entry class, for the terms (x, row)."""
    acc: dict[int, int] = {}
    for x, row in terms:
        block = G.get(row, {}) if x else {}
        acc.update(zip(block, map(add, map(acc.get, block, repeat(0)),
                                  map(mul, block.values(), repeat(x))), strict=False))  # fmt: skip
    bad = next((key for key, v in acc.items() if v), None)
    if bad is not None:
        (eps, o), c = divmod(bad // cl["C"], cl["D"]), bad % cl["C"]
        e = []
        for P, s in zip(cl["P"][::-1], cl["s"][::-1], strict=True):
            eps, x = divmod(eps, 2 * P - s)
            e.insert(0, x - P + s)
        raise CertificateError(f"{where}: {what} is not 0 at the entry class (e, c, o) = "
                               f"{(tuple(e), c, o)}")  # fmt: skip


EXACT_WORK = 10**6  # steps of exact relation checks (terms + block entries) before fingerprints


class _Fingerprints:
    """Freivalds' check of relations in time linear in G: each block M_Δ is hashed once to
    f(M_Δ) = Σ_key M_Δ[key]·w_key mod p, for random weights w (64 random bits from
    os.urandom, modulo p) and two random 62-bit primes p drawn now, after the certificate is
    fixed. A relation R = Σ x_i·M_i − scale·M ≠ 0 passes only if both random forms vanish on
    R: probability < 2^-100 (R has < 2^12 prime factors of 62 bits, and a non-zero form mod p
    vanishes with probability ≤ 9/2^64, the largest chance of one weight's value)."""

    def __init__(self, G: Blocks) -> None:
        rng = random.SystemRandom()
        self.primes = [self._prime(rng), self._prime(rng)]
        keys = list(set().union(*G.values()))
        raw = array("Q", os.urandom(8 * len(keys))), array("Q", os.urandom(8 * len(keys)))
        w = [dict(zip(keys, map(mod, r, repeat(p)))) for r, p in zip(raw, self.primes)]  # noqa: B905
        self.f = {row: tuple(sum(map(mul, block.values(), map(wp.__getitem__, block))) % p
                             for wp, p in zip(w, self.primes, strict=True))
                  for row, block in G.items()}  # fmt: skip

    @staticmethod
    def _prime(rng: random.SystemRandom) -> int:
        while True:
            p = rng.randrange(2**61, 2**62) | 1
            if flint.fmpz(p).is_prime():
                return p


def _gordan(proof: Any, cl: dict, W: list) -> tuple[int, bool]:
    """Verify a "gordan" proof; return (s, whether a positive vector was given)."""
    _obj(proof, "proof", {"kind", "span_dim", "minor", "relations", "positive", "obstruction"})
    s = _int(proof["span_dim"], "proof.span_dim", 0)
    minor = _minor(proof["minor"], cl, s, "proof.minor", f"proof.span_dim={s} but proof.minor")
    d, axes = cl["d"], []  # N_a per axis, or its residues modulo the grid
    per_axis = zip(cl["k"], cl["dil"], cl["P"], cl["s"], cl["pad"], cl["grid"] or (0,) * d,
                   strict=True)  # fmt: skip
    for k, dil, P, S, pad, m in per_axis:
        axes.append({x % m if m else x for t in range(k) for x, _ in _split(t, dil, P, S, pad)})

    def row_of_n(v: Any, where: str) -> Row:
        row = _ints(v, where, d)
        _need(all(x in a for x, a in zip(row, axes, strict=True)), f"{where}: not a row of N")
        return row

    rows = minor[1]
    if not all(set(x) <= a for x, a in zip(zip(*rows, strict=True), axes, strict=False)):
        [row_of_n(list(x), f"proof.minor.rows[{i}]") for i, x in enumerate(rows)]
    rel, outside = proof["relations"], math.prod(len(a) for a in axes) - s
    _need(outside + s <= MAX_ROWS, f"proof.relations: N has {outside + s} rows: more than "
          f"MAX_ROWS = {MAX_ROWS}")  # fmt: skip
    _need(s * outside <= MAX_COEFFICIENTS, f"proof.relations: {outside} × {s} coefficients: more "
          f"than MAX_COEFFICIENTS = {MAX_COEFFICIENTS}")  # fmt: skip
    got = len(rel) if type(rel) is list else _show(rel)
    _need(got == outside, f"proof.relations: {got} given, N has {outside} rows outside the minor")
    G = _blocks(W, cl, None)  # its rows are exactly the active rows
    _nonsingular(minor, G, "proof.minor")
    R, done = list(rel), set(rows)
    work = (s + sum(len(G.get(r, ())) for r in rows)) * len(R)  # exact: terms + minor blocks
    ok = set(map(type, R)) <= {dict} and set(map(type, itertools.chain.from_iterable(R))) <= {str}
    ok = ok and all(map(eq, map(dict.keys, R), repeat({"row", "scale", "coefficients"})))
    at = (lambda name: [*map(itemgetter(name), R)]) if ok else lambda name: []
    by_row, scales, coefficients = _table(at("row"), d, (1 - BIG,) * d, (BIG - 1,) * d), \
        at("scale"), at("coefficients")  # fmt: skip
    xs = _table(coefficients, s, (1 - BIG,) * s, (BIG - 1,) * s)
    ok = ok and by_row is not None and xs is not None and set(map(type, scales)) <= {int}
    ok = ok and 0 not in scales and -BIG < min(scales, default=0) and max(scales, default=0) < BIG
    ok = ok and all(set(x) <= a for x, a in zip(by_row, axes, strict=True))  # type: ignore[arg-type]
    rel_rows = list(zip(*by_row, strict=True)) if ok and R else []  # type: ignore[misc]
    if not (ok and len(done.union(rel_rows)) == len(rows) + len(R)):
        for i, item in enumerate(R):  # name the first bad relation
            where = f"proof.relations[{i}]"
            _obj(item, where, {"row", "scale", "coefficients"})
            row = row_of_n(item["row"], f"{where}.row")
            _need(row not in done, f"{where}.row: {list(row)} is a minor row or listed twice")
            done.add(row)
            _need(_int(item["scale"], f"{where}.scale") != 0, f"{where}.scale: must not be 0")
            _ints(item["coefficients"], f"{where}.coefficients", s)
        _need(False, "proof.relations: not a list of relations")  # unreachable: named above
    done.update(rel_rows)
    what = "Σ x_i·M_rows[i] − scale·M_row"
    if work <= EXACT_WORK:
        for i, (x, scale, row) in enumerate(zip(coefficients, scales, rel_rows, strict=True)):
            terms = [*zip(x, rows, strict=True), (-scale, row)]
            _vanishes(G, terms, f"proof.relations[{i}]", what, cl)
    elif R:  # Freivalds, in bulk: per prime, Σ_i x_i·f(M_rows[i]) − scale·f(M_row) ≡ 0 for all
        fast = _Fingerprints(G)
        for j, p in enumerate(fast.primes):
            f = lambda r, j=j: fast.f.get(r, (0, 0))[j]  # noqa: E731
            acc = list(map(mul, scales, map(f, rel_rows)))
            for col, fi in zip(xs, map(f, rows), strict=True):  # type: ignore[arg-type]
                acc = list(map(sub, acc, map(mul, col, repeat(fi))))
            if any(map(mod, acc, repeat(p))):
                i = next(i for i, v in enumerate(acc) if v % p)
                raise CertificateError(f"proof.relations[{i}]: {what} is not 0 (its fingerprint "
                                       f"modulo {p} is {-acc[i] % p})")  # fmt: skip
    covered = math.prod(len(a) for a in axes)
    _need(len(done) == covered, f"proof.relations: {len(done)} of the {covered} rows of N covered")
    y, z = proof["positive"], proof["obstruction"]
    _need((y is None) != (z is None), "proof: give exactly one of positive and obstruction")
    if y is not None:
        weights: dict[int, int] = {}
        for yj, key in zip(_ints(y, "proof.positive", s), minor[2], strict=True):
            weights[key] = weights.get(key, 0) + yj
        for row, block in G.items():
            few = (weights, block) if len(block) > len(weights) else (block, weights)
            v = sum(map(mul, few[0].values(), map(few[1].get, few[0], repeat(0))))
            if v <= 0:
                raise CertificateError(f"proof.positive: v = {_show(v)} <= 0 at row {list(row)}")
        return s, True
    _need(type(z) is list, f"proof.obstruction: expected a list of [row, z], got {_show(z)}")
    terms = []
    for i, pair in enumerate(z):
        at = f"proof.obstruction[{i}]"
        _need(type(pair) is list and len(pair) == 2, f"{at}: expected [row, z], got {_show(pair)}")
        terms.append((_int(pair[1], f"{at}[1]", 0), row_of_n(pair[0], f"{at}[0]")))
    _distinct([row for _, row in terms], "proof.obstruction", "row")
    _need(any(zv and row in G for zv, row in terms), "proof.obstruction: 0 on every active row")
    _vanishes(G, terms, "proof.obstruction", "Σ z·M_Δ", cl)
    return s, False


def _paused_gc(f: Any) -> Any:
    """Run f with the cyclic garbage collector paused: a certificate's tree has no cycles, and
    collecting while millions of lists are built would cost more than building them."""

    @functools.wraps(f)
    def run(*args: Any) -> Any:
        was = gc.isenabled()
        gc.disable()
        try:
            return f(*args)
        finally:
            if was:
                gc.enable()

    return run


@_paused_gc
def check(cert: Any) -> dict:
    """Validate and verify a parsed certificate: return what was verified, or raise."""
    try:
        _obj(cert, "certificate", {"format", "claim", "witness", "proof"})
        fmt = cert["format"]
        ok = type(fmt) is str and fmt in (FORMAT, FORMAT_STRIDED)
        _need(ok, f"format: expected {FORMAT!r} or {FORMAT_STRIDED!r}, got {_show(fmt)}")
        cl = _claim(cert["claim"], fmt == FORMAT_STRIDED)
        W = _witness(cert["witness"], cl)
        proof, n = cert["proof"], cl["heads"]
        heads = "head" if n == 1 else "heads"
        kind = proof.get("kind") if type(proof) is dict else None
        if cl["lower"]:
            minor = _minor(proof, cl, n, "proof", f"claim.heads_at_least={n} but the proof")
            _nonsingular(minor, _blocks(W, cl, set(minor[1])), "proof")
            s, conclusion = n, f"every exact layer needs >= {n} {heads} ({kind} {n}x{n} minor)"
        else:
            ok = type(kind) is str and kind == "gordan"
            _need(ok, f"proof.kind: expected 'gordan', got {_show(kind)}")
            s, positive = _gordan(proof, cl, W)
            need = s if positive else s + 1
            _need(n == need, f"claim.heads={n} but the proof shows the minimum is {need}")
            how = "positive vector y" if positive else "no positive vector: obstruction z"
            conclusion = f"the minimum is exactly {n} {heads} (rank {s}; {how})"
    except (MemoryError, RecursionError) as err:
        raise CertificateError(f"certificate too large to check ({type(err).__name__})") from None
    x = lambda v: "x".join(map(str, v))  # noqa: E731
    parts = [f"{cl['tokens']} tokens", f"kernel {x(cl['k'])}"]
    parts += [f"P {x(cl['P'])}"] if cl["tokens"] == "patch" else []
    parts += [f"dilation {x(cl['dil'])}"] if set(cl["dil"]) != {1} else []
    parts += [f"stride {x(cl['s'])}, padding {x(cl['pad'])}"] if set(cl["s"]) != {1} else []
    parts += [f"groups={cl['g']}"] if cl["g"] != 1 else []
    parts += [f"circular grid {x(cl['grid'])}"] if cl["grid"] else []
    summary = f"verified: {', '.join(parts)}, C={cl['C']}, D={cl['D']}: {conclusion}"
    claim = "heads_at_least" if cl["lower"] else "heads"
    return {"claim": claim, "heads": n, "span_dim": s, "proof": kind, "summary": summary}


def text_limits(text: str) -> None:
    """Reject a certificate's text over MAX_BYTES characters or the counts that bound its tree."""
    _need(len(text) <= MAX_BYTES, f"certificate: more than MAX_BYTES = {MAX_BYTES} characters")
    for mark, cap, name in ((",", MAX_COMMAS, "MAX_COMMAS"), ("[", MAX_LISTS, "MAX_LISTS"),
                            ("{", MAX_OBJECTS, "MAX_OBJECTS")):  # fmt: skip
        got = text.count(mark)
        _need(got <= cap, f"certificate: {got:,} {mark!r} characters, more than {name} = {cap:,}")


@_paused_gc
def parse(text: str) -> dict:
    """Parse strict JSON: integers only (no floats, NaN, Infinity), no duplicate keys, an object;
    at most MAX_BYTES characters, no integer of more than 320 digits."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        obj = dict(items)
        _need(len(obj) == len(items), f"duplicate key in an object {_show([k for k, _ in items])}")
        return obj

    _need(type(text) is str, f"expected JSON text, got {_show(text)}")
    text_limits(text)
    digits = text.encode("utf-8", "replace").translate(bytes.maketrans(b"012345678", b"9" * 9))
    _need(b"9" * 321 not in digits, "integer of > 320 digits")  # never parsed: int() is quadratic
    del digits
    try:
        obj = json.loads(
            text,
            parse_float=lambda s: _need(False, f"number {_show(s)}: floats are not allowed"),
            parse_constant=lambda s: _need(False, f"{s} is not allowed"),
            object_pairs_hook=pairs,
        )
    except CertificateError:
        raise
    except (ValueError, RecursionError, MemoryError) as err:
        raise CertificateError(f"not valid JSON: {err}") from None
    _need(type(obj) is dict, f"certificate: expected a JSON object, got {_show(obj)}")
    return obj


def check_text(text: str) -> dict:
    """check(parse(text))."""
    return check(parse(text))


def main(argv: list[str] | None = None) -> int:
    """`python theory/checker.py FILE`: print the summary (0) or `rejected: reason` (1)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python theory/checker.py CERTIFICATE.json", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            text = f.read(MAX_BYTES + 1)  # never more: a longer file is rejected unread
        cert = parse(text)
        del text  # the tree alone is checked
        print(check(cert)["summary"])
        return 0
    except (OSError, UnicodeDecodeError, MemoryError) as err:
        print(f"rejected: cannot read {args[0]}: {err}", file=sys.stderr)
    except CertificateError as err:
        print(f"rejected: {err}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
