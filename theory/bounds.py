"""Head-count bounds: T1/T2 (sufficient) and T3 (necessary), for a kernel shape or a kernel.

Dimension letters: N offsets Δ (|S| pixel offsets, or |N(S, P)| patch offsets), E = P²C input and
F = P²D output token width, e ∈ {−(P−1)..P−1}² the pixel differences inside a patch pair.

Tokens are row vectors and a convolution is `out_q = Σ_Δ x_{q+Δ} M_Δ`. Pixel tokens are patch
tokens with P = 1, so one formula serves both:

    M_Δ = Σ_e D_e ⊗ K̃[Δ·P + e],   D_e[a, b] = 1 iff a − b = e   (P²×P², 0/1),

and the D_e have disjoint supports, hence are linearly independent. So s = dim span{M_Δ} is the rank
of the *coefficient matrix* G[Δ, (e, c, o)] = K̃[Δ·P + e][c, o] (|N| × (2P−1)²·C·D,
`coefficient_matrix`), tiny next to the M_Δ themselves (P = 16, C = 3, D = 64: G is 9 × 184 512,
an M_Δ 768 × 16 384).

T3 (SPEC §2): a layer equal to the convolution has M_Δ = Σ_h a^h(Δ) W_V^h W_O^h with position-only
weights a^h ≥ 0, so N_h ≥ s, and N_h·D_h ≥ rank of the vertical stack [M_Δ]_Δ
(= Σ_h (a^h ⊗ W_V^h) W_O^h) and of the horizontal one. For a kernel *shape* the bound is the
generic value: a random integer witness kernel attains the maximal rank with probability 1; its
exact rank proves "some kernel needs ≥ s", and the structural bound (the term rank of G's zero
pattern, at most min(|N|, number of columns of G that can be non-zero)) proves that no kernel of
the shape needs more when the two meet (`HeadBounds.tight`). They meet for dense odd kernels;
where they do not (a few dilated even kernels, e.g. 2×2, d = 2, P = 2, C = 1, D = 2: s = 7 < 8,
because one tap sits in two entries of G) the witness value is sampled, not proved by the bound,
and `theory.symbolic.generic_rank` proves it exactly.

>>> heads_necessary(5, 16, in_channels=8, out_channels=8), heads_necessary(3)
(9, 1)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from constructions.blocks import dense_taps
from theory._validate import positive_int, positive_pair
from theory.exact import exact_rank
from theory.neighbourhoods import axis_offsets, patch_neighbourhood

__all__ = [
    "HeadBounds",
    "KernelShape",
    "coefficient_matrix",
    "head_bounds",
    "heads_necessary",
    "heads_sufficient",
    "kernel_shape",
    "patch_block",
    "stacked_maps",
    "structural_bound",
    "term_rank",
    "witness_kernel",
]

MAX_STACK_SIDE = 2048  # stacked maps whose smaller side exceeds this get a certified lower bound
WITNESS_RANGE = 1 << 10  # witness entries are drawn uniformly from [−2¹⁰, 2¹⁰]


@dataclass(frozen=True)
class KernelShape:
    """A validated convolution shape: what the bounds depend on."""

    kernel_size: tuple[int, int]
    in_channels: int
    out_channels: int
    groups: int = 1
    dilation: tuple[int, int] = (1, 1)

    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)


def kernel_shape(
    kernel_size: object,
    *,
    in_channels: object = 1,
    out_channels: object = 1,
    groups: object = 1,
    dilation: object = 1,
) -> KernelShape:
    """Return the validated `KernelShape`, or raise naming the parameter, value and what is allowed.

    SPEC §1 (the convolutions covered): positive sizes, groups dividing both channel counts.
    """
    shape = KernelShape(
        kernel_size=positive_pair(kernel_size, "kernel_size"),
        in_channels=positive_int(in_channels, "in_channels"),
        out_channels=positive_int(out_channels, "out_channels"),
        groups=positive_int(groups, "groups"),
        dilation=positive_pair(dilation, "dilation"),
    )
    for name in ("in_channels", "out_channels"):
        if getattr(shape, name) % shape.groups:
            raise ValueError(f"groups={shape.groups} must divide {name}={getattr(shape, name)}")
    return shape


def _patch(patch_size: object) -> int:
    return 1 if patch_size is None else positive_int(patch_size, "patch_size")


def _axis_taps(k: int, d: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return the tap index of pixel offset rows[:, None] + cols[None, :] on one axis, k if none."""
    delta = rows[:, None] + cols[None, :]
    shifted = delta + d * (k - 1) // 2  # = i·d for tap i
    tap = shifted // d
    ok = (shifted % d == 0) & (tap >= 0) & (tap < k)
    return np.where(ok, tap, k)


def _padded_taps(weight: torch.Tensor | np.ndarray, groups: int) -> np.ndarray:
    """Return K̃ as (kh+1, kw+1, C, D) with a zero tap at index kh / kw (for 'no tap here').

    A numpy object array (Python integers beyond int64, from exact float kernels) stays exact.
    """
    if isinstance(weight, np.ndarray) and weight.dtype == object:
        D, Cg, kh, kw = weight.shape
        taps = np.zeros((kh + 1, kw + 1, Cg * groups, D), dtype=object)
        for g in range(groups):  # one block per group: groups is small
            out = slice(g * D // groups, (g + 1) * D // groups)
            taps[:kh, :kw, g * Cg : (g + 1) * Cg, out] = weight[out].transpose(2, 3, 1, 0)
        return taps
    taps = dense_taps(torch.as_tensor(weight).detach().cpu(), groups).numpy()  # (kh, kw, C, D)
    return np.pad(taps, ((0, 1), (0, 1), (0, 0), (0, 0)))


def coefficient_matrix(
    weight: torch.Tensor | np.ndarray,
    patch_size: int | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (offsets N (|N|, 2), G (|N|, (2P−1)²·C·D)) with G[Δ, (e, c, o)] = K̃[ΔP + e][c, o].

    SPEC T3: s = dim span{M_Δ} = rank G. `patch_size=None` is pixel tokens (P = 1, G[δ] = vec K̃[δ]).
    Columns are ordered (e₁, e₂, c, o) with e running from −(P−1) to P−1; any dtype is kept.
    """
    P = _patch(patch_size)
    dh, dw = positive_pair(dilation, "dilation")
    kh, kw = weight.shape[2:]
    offsets = patch_neighbourhood((kh, kw), P, (dh, dw))
    rows, cols = np.unique(offsets[:, 0]), np.unique(offsets[:, 1])
    e = np.arange(-(P - 1), P)
    taps = _padded_taps(weight, groups)
    i1 = _axis_taps(kh, dh, rows * P, e)  # (n1, 2P−1)
    i2 = _axis_taps(kw, dw, cols * P, e)  # (n2, 2P−1)
    G = taps[i1[:, None, :, None], i2[None, :, None, :]]  # (n1, n2, 2P−1, 2P−1, C, D)
    return offsets, G.reshape(len(rows) * len(cols), -1)


def column_norms(patch_size: int | None, in_channels: int, out_channels: int) -> np.ndarray:
    """Return ‖D_e ⊗ E_co‖_F = √((P−|e₁|)(P−|e₂|)) for every column (e, c, o) of G.

    ‖Σ D_e ⊗ X_e‖_F² = Σ (P−|e₁|)(P−|e₂|)‖X_e‖_F², so G·diag(norms) has the singular values of the
    stacked matrix [vec M_Δ]_Δ (the Eckart–Young floor uses them).
    """
    P = _patch(patch_size)
    side = P - np.abs(np.arange(-(P - 1), P))
    per_e = np.sqrt(np.outer(side, side).ravel().astype(np.float64))
    return np.repeat(per_e, in_channels * out_channels)


def patch_block(
    G: np.ndarray, row: int, patch_size: int | None, in_channels: int, out_channels: int
) -> np.ndarray:
    """Return M_Δ = Σ_e D_e ⊗ K̃[ΔP+e] (P²C × P²D) from row `row` of G. SPEC T2."""
    P, C, D = _patch(patch_size), in_channels, out_channels
    g = G[row].reshape(2 * P - 1, 2 * P - 1, C, D)
    a = np.arange(P)
    diff = a[:, None] - a[None, :] + P - 1  # (a, b) ↦ index of e = a − b
    block = g[diff[:, None, :, None], diff[None, :, None, :]]  # (a1, a2, b1, b2, C, D)
    return block.transpose(0, 1, 4, 2, 3, 5).reshape(P * P * C, P * P * D)


def stacked_maps(
    weight: torch.Tensor | np.ndarray,
    patch_size: int | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
    max_side: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the non-zero parts of the vertical [M_Δ]_Δ and horizontal [M_Δ]_Δ stacks. SPEC T3.

    Vertical: rows (input pixel z of the receptive field of a patch, c), columns (b, o), entry
    K̃[z − b][c, o]. Horizontal: rows (a, c) of one input patch, columns (output pixel y that it
    reaches, o), entry K̃[a − y][c, o]. The rows (pixels) not reached hold zeros and are left out.
    With `max_side`, only the first `max_side` positions along the longer pixel axis are kept
    (a submatrix: its rank is a lower bound).
    """
    P = _patch(patch_size)
    dh, dw = positive_pair(dilation, "dilation")
    kh, kw = weight.shape[2:]
    taps = _padded_taps(weight, groups)
    C, D = taps.shape[2:]
    b = np.arange(P)
    (lo1, hi1), (lo2, hi2) = [
        (int(axis_offsets(k, d).min()), int(axis_offsets(k, d).max()))
        for k, d in ((kh, dh), (kw, dw))
    ]
    z1, z2 = np.arange(lo1, P + hi1), np.arange(lo2, P + hi2)  # reached input pixels
    y1, y2 = np.arange(-hi1, P - lo1), np.arange(-hi2, P - lo2)  # reached output pixels
    if max_side is not None:
        z1, y1 = z1[: max(1, max_side // (len(z2) * C))], y1[: max(1, max_side // (len(y2) * D))]
    v = taps[
        _axis_taps(kh, dh, z1, -b)[:, None, :, None], _axis_taps(kw, dw, z2, -b)[None, :, None, :]
    ]
    h = taps[
        _axis_taps(kh, dh, b, -y1)[:, None, :, None], _axis_taps(kw, dw, b, -y2)[None, :, None, :]
    ]
    vertical = v.transpose(0, 1, 4, 2, 3, 5).reshape(len(z1) * len(z2) * C, P * P * D)
    horizontal = h.transpose(0, 1, 4, 2, 3, 5).reshape(P * P * C, len(y1) * len(y2) * D)
    return vertical, horizontal


def witness_kernel(shape: KernelShape, seed: int = 0) -> torch.Tensor:
    """Return a random integer kernel (D, C/g, kh, kw), entries uniform in [−2¹⁰, 2¹⁰], int64.

    SPEC §3 (b): the generic rank is attained off a proper algebraic set, so a random witness
    attains it with probability 1 (and its exact rank is a proof for that one kernel).
    """
    rng = np.random.default_rng(seed)
    w = rng.integers(-WITNESS_RANGE, WITNESS_RANGE + 1, size=shape.weight_shape(), dtype=np.int64)
    return torch.from_numpy(w)


@dataclass(frozen=True)
class HeadBounds:
    """Sufficient (T1/T2) and necessary (T3) head counts for one token type."""

    tokens: str  # "pixel" or "patch"
    patch_size: int | None
    offsets: int  # |S| or |N(S, P)|: the heads of T1/T2
    span_dim: int  # s = dim span{M_Δ} (of the kernel, or generic for the shape)
    upper_bound: int  # structural: term rank of G's zero pattern ≥ s for every kernel
    tight: bool  # span_dim == upper_bound: the generic value is proved, not just sampled
    sufficient: int  # T1/T2 heads (exact on every token, zero or circular padding)
    necessary: int  # T3: max(s, ⌈rank(stack)/D_h⌉)
    head_dim: int | None
    stacked_ranks: tuple[int, int] | None = None  # (vertical, horizontal) when head_dim is set
    stacked_exact: bool = True  # False: a stack was too large, its rank is a lower bound
    concrete: bool = False  # bounds of one given kernel, not of a shape
    rank_method: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """Return the record as plain JSON types."""
        d = asdict(self)
        d["stacked_ranks"] = None if self.stacked_ranks is None else list(self.stacked_ranks)
        return d


def _concrete(kernel: object, shape_args: dict) -> tuple[torch.Tensor, KernelShape]:
    """Return (weight, shape) of a given kernel: a weight tensor or an `nn.Conv2d`."""
    if isinstance(kernel, nn.Conv2d):
        for name, value in (("groups", kernel.groups), ("dilation", tuple(kernel.dilation))):
            given = shape_args.get(name)
            if given not in (None, 1, value) and positive_pair(given, name) != positive_pair(
                value, name
            ):
                raise ValueError(f"{name}={given!r} contradicts the conv's {name}={value!r}")
        shape_args = {**shape_args, "groups": kernel.groups, "dilation": tuple(kernel.dilation)}
        kernel = kernel.weight.detach()
    if isinstance(kernel, np.ndarray):
        kernel = torch.from_numpy(kernel)
    if not isinstance(kernel, torch.Tensor) or kernel.ndim != 4:
        raise TypeError(
            f"kernel must be an nn.Conv2d or a weight tensor (D, C/groups, kh, kw), "
            f"got {kernel!r:.80}"
        )
    if kernel.dtype.is_complex or kernel.dtype == torch.bool:
        raise TypeError(
            f"kernel must hold real numbers (integers or floats), got dtype {kernel.dtype}"
        )
    groups = positive_int(shape_args.get("groups") or 1, "groups")
    shape = kernel_shape(
        tuple(kernel.shape[2:]),
        in_channels=kernel.shape[1] * groups,
        out_channels=kernel.shape[0],
        groups=groups,
        dilation=shape_args.get("dilation") or 1,
    )
    return kernel.detach().cpu(), shape


def term_rank(pattern: np.ndarray, multiplicity: int = 1) -> int:
    """Return the term rank of a 0/1 pattern: the most non-zeros with no two in a row or column.

    rank(A) ≤ term rank for every A with zeros where the pattern has them (a non-zero r×r minor
    needs r such entries). Computed as a maximum flow between classes of identical rows and
    identical columns (a handful of classes even for a 9 × 184 512 pattern). `multiplicity`
    repeats every column that many times (the C·D/groups channel pairs of one difference e).
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
    cap[1 : R + 1, R + 1 : R + K + 1] = np.where(row_types, pattern.size * multiplicity, 0)
    cap[R + 1 : R + K + 1, n - 1] = col_count * multiplicity
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


def structural_bound(shape: KernelShape, patch_size: int | None = None) -> int:
    """Return the term rank of G's zero pattern: an upper bound on s for every kernel of `shape`.

    SPEC T3 (generic kernels). Column (e, c, o) of G can be non-zero only if some Δ ∈ N has
    ΔP + e ∈ S and (c, o) lie in one group; all C·D/groups such pairs share the pattern of e.
    The bound is ≤ min(|N|, number of columns that can be non-zero), and stricter with gaps
    (dilation, even kernels): e.g. k = 6 × 1, d = 2, P = 3 has |N| = 5, 5 such columns, bound 4.
    """
    ones = torch.ones((1, 1, *shape.kernel_size), dtype=torch.int64)
    pattern = coefficient_matrix(ones, patch_size, dilation=shape.dilation)[1] != 0
    return term_rank(pattern, shape.in_channels * shape.out_channels // shape.groups)


def _stack_rank(m: np.ndarray) -> int:
    return exact_rank(m).rank


def _bounds_for(
    weight: torch.Tensor,
    shape: KernelShape,
    patch_size: int | None,
    head_dim: int | None,
    concrete: bool,
) -> HeadBounds:
    """Return the `HeadBounds` of `weight` (the kernel itself, or the witness of its shape)."""
    start = time.perf_counter()
    P = _patch(patch_size)
    C, D = shape.in_channels, shape.out_channels
    kw = dict(groups=shape.groups, dilation=shape.dilation)
    offsets, G = coefficient_matrix(weight, patch_size, **kw)
    upper = structural_bound(shape, patch_size)
    result = exact_rank(G, upper=upper)
    s = result.rank
    E, F = P * P * C, P * P * D
    sufficient, necessary, stacked, exact_stack = len(offsets), s, None, True
    if head_dim is not None and head_dim < min(E, F):
        blocks = [exact_rank(patch_block(G, i, patch_size, C, D)).rank for i in range(len(G))]
        sufficient = sum(math.ceil(r / head_dim) for r in blocks)
        vertical, horizontal = stacked_maps(weight, patch_size, **kw)
        sides = (min(vertical.shape), min(horizontal.shape))
        if max(sides) > MAX_STACK_SIDE:
            exact_stack = False
            vertical, horizontal = stacked_maps(weight, patch_size, **kw, max_side=MAX_STACK_SIDE)
        stacked = (_stack_rank(vertical), _stack_rank(horizontal))
        necessary = max(s, *(math.ceil(r / head_dim) for r in stacked))
    elif head_dim is not None:
        sufficient = len(offsets)
    return HeadBounds(
        tokens="pixel" if patch_size is None else "patch",
        patch_size=patch_size,
        offsets=len(offsets),
        span_dim=s,
        upper_bound=upper,
        tight=s == upper,
        sufficient=sufficient,
        necessary=necessary,
        head_dim=head_dim,
        stacked_ranks=stacked,
        stacked_exact=exact_stack,
        concrete=concrete,
        rank_method=result.method,
        seconds=time.perf_counter() - start,
    )


def head_bounds(
    kernel_size: int | tuple[int, int] | None = None,
    patch_size: int | None = None,
    *,
    dilation: int | tuple[int, int] = 1,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    head_dim: int | None = None,
    kernel: torch.Tensor | nn.Conv2d | None = None,
    seed: int = 0,
) -> HeadBounds:
    """Return the `HeadBounds` record (T1/T2 sufficient, T3 necessary) of a shape or a kernel.

    SPEC T1–T3. Without `kernel`, the bounds of the worst kernel of the shape (the generic value,
    found from the exact rank of `witness_kernel(shape, seed)`); with `kernel` (a weight tensor or
    `nn.Conv2d`; its own shape, groups and dilation are used), that kernel's exact bounds.
    """
    if patch_size is not None:
        patch_size = positive_int(patch_size, "patch_size")
    if head_dim is not None:
        head_dim = positive_int(head_dim, "head_dim")
    if kernel is None:
        if kernel_size is None:
            raise TypeError("head_bounds needs kernel_size (a kernel shape) or kernel=")
        shape = kernel_shape(
            kernel_size,
            in_channels=in_channels,
            out_channels=out_channels,
            groups=groups,
            dilation=dilation,
        )
        return _bounds_for(witness_kernel(shape, seed), shape, patch_size, head_dim, False)
    weight, shape = _concrete(kernel, {"groups": groups, "dilation": dilation})
    if kernel_size is not None and positive_pair(kernel_size, "kernel_size") != shape.kernel_size:
        raise ValueError(
            f"kernel_size={kernel_size!r} contradicts the kernel's {shape.kernel_size}"
        )
    return _bounds_for(weight, shape, patch_size, head_dim, True)


def heads_sufficient(
    kernel_size: int | tuple[int, int] | None = None,
    patch_size: int | None = None,
    *,
    dilation: int | tuple[int, int] = 1,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    head_dim: int | None = None,
    kernel: torch.Tensor | nn.Conv2d | None = None,
) -> int:
    """Return the heads of the exact T1/T2 construction (every token, zero or circular padding).

    SPEC T1/T2: |S| (pixel, `patch_size=None`) or |N(S, P)| heads with head dim min(E, F); with a
    smaller `head_dim`, Σ_Δ ⌈rank(M_Δ)/head_dim⌉. Arguments as `head_bounds`.

    >>> heads_sufficient(5), heads_sufficient(5, 16), heads_sufficient(35, 16)
    (25, 9, 25)
    """
    if head_dim is None and kernel is None:  # no rank needed: count the offsets
        shape = kernel_shape(
            kernel_size,
            in_channels=in_channels,
            out_channels=out_channels,
            groups=groups,
            dilation=dilation,
        )
        return len(patch_neighbourhood(shape.kernel_size, _patch(patch_size), shape.dilation))
    return head_bounds(
        kernel_size,
        patch_size,
        dilation=dilation,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=groups,
        head_dim=head_dim,
        kernel=kernel,
    ).sufficient


def heads_necessary(
    kernel_size: int | tuple[int, int] | None = None,
    patch_size: int | None = None,
    *,
    dilation: int | tuple[int, int] = 1,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    head_dim: int | None = None,
    kernel: torch.Tensor | nn.Conv2d | None = None,
) -> int:
    """Return the heads any exact MHSA layer needs: max(s, ⌈rank(stacks)/head_dim⌉).

    SPEC T3. For a shape, the generic (worst-case) s; for `kernel=`, that kernel's exact s.
    Arguments as `head_bounds`.

    >>> heads_necessary(7, 2), heads_necessary(7, 2, in_channels=2, out_channels=2)
    (9, 25)
    """
    return head_bounds(
        kernel_size,
        patch_size,
        dilation=dilation,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=groups,
        head_dim=head_dim,
        kernel=kernel,
    ).necessary
