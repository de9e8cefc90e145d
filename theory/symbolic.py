"""Symbolic proofs with sympy (paper_notes, T1–T3): construction identity, softmax limit, ranks.

* `construction_residuals`: the T1/T2 layer as a polynomial identity. Kernel, bias and image are
  sympy symbols; the layer's one-hot attention pattern and its value maps come from the real
  construction (`constructions.mhsa_from_conv`, 1-D, 2-D or 3-D, run on a kernel whose entries are
  integer labels, so W_V W_O holds the labels exactly); the convolution is written out from its
  definition (zero or circular 'same' padding). `expand(layer − conv)` is returned for every output
  entry: all zero is the proof, on every token, borders included.
* `softmax_limit`: the finite-temperature weights (target 0, other keys −β, sink −β/2 as in
  `constructions.from_conv`) tend to the one-hot weights as β → ∞; the leak decays like e^(−β/2).
* `generic_rank`: s for a kernel shape as the rank of G over the field ℚ(K) of rational functions
  in the kernel entries, i.e. the rank of a generic kernel, no sampling involved.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy
import torch
from sympy.polys.matrices import DomainMatrix
from torch import nn

from constructions.from_conv import mhsa_from_conv
from constructions.geometry import patch_neighbourhood
from constructions.validate import per_axis, positive_int
from theory.bounds import kernel_shape
from theory.coefficients import coefficient_matrix

__all__ = ["construction_residuals", "generic_rank", "softmax_limit", "symbolic_conv"]


def symbolic_conv(
    weight: np.ndarray,
    bias: np.ndarray,
    image: np.ndarray,
    dilation: tuple[int, ...],
    circular: bool,
) -> np.ndarray:
    """Return conv(image) (D, n_1, …, n_d) of object arrays by the definition of a 'same' conv.

    out[o, y] = b[o] + Σ_{c, t} K[o, c, t] · x[c, y + t⊙dil − p], with p = dil·(k−1)//2 zeros
    before on each axis (wrapping around instead when `circular`). One group, d ≤ 3 axes.
    """
    D, _C, *ks = weight.shape
    size = image.shape[1:]
    dims = len(ks)
    out = np.empty((D, *size), dtype=object)
    out[...] = bias.reshape(D, *([1] * dims))
    for tap in itertools.product(*(range(k) for k in ks)):  # Πk ≤ 27 taps, each vectorised
        index, ok = [], np.ones(size, dtype=bool)
        for a, (t, k, d, n) in enumerate(zip(tap, ks, dilation, size, strict=True)):
            pos = np.arange(n) + t * d - d * (k - 1) // 2
            shape = [1] * dims
            shape[a] = n
            inside = ((pos >= 0) & (pos < n)).reshape(shape)
            ok = ok & inside
            index.append((pos % n if circular else pos.clip(0, n - 1)).reshape(shape))
        shifted = image[(slice(None), *index)]  # (C, n_1, …, n_d)
        if not circular:
            shifted = np.where(ok[None], shifted, 0)
        taps = weight[(slice(None), slice(None), *tap)]  # (D, C)
        out = out + np.tensordot(taps, shifted, axes=([1], [0]))
    return out


def _tokens(image: np.ndarray, Ps: tuple[int, ...]) -> np.ndarray:
    """Return the patch tokens (Πg, ΠP·C) of an object image (C, n_1, …): (p…, c) order."""
    C, *size = image.shape
    dims = len(size)
    split = [v for n, P in zip(size, Ps, strict=True) for v in (n // P, P)]
    t = image.reshape(C, *split)  # (C, g_1, P_1, …)
    order = (*range(1, 2 * dims, 2), *range(2, 2 * dims + 1, 2), 0)  # (g…, P…, C)
    return t.transpose(order).reshape(math.prod(split[0::2]), math.prod(Ps) * C)


def construction_residuals(
    kernel_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...] | None = None,
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    dilation: int | tuple[int, ...] = 1,
    circular: bool = False,
    grid: tuple[int, ...] | None = None,
) -> list[sympy.Expr]:
    """Return the non-zero entries of expand(MHSA − conv) over all output tokens: [] proves T1/T2.

    Paper_notes T1 (`patch_size=None`) and T2, on d = len(kernel_size) axes (an int: 2-D). The
    grid (tokens per axis) defaults to the smallest the construction accepts (reach + 1), so
    most tokens are border tokens.
    """
    shape = kernel_shape(
        kernel_size, in_channels=in_channels, out_channels=out_channels, dilation=dilation
    )
    dims = shape.dims
    Ps = (1,) * dims if patch_size is None else per_axis(patch_size, "patch_size", dims)
    D, C, ks = shape.out_channels, shape.in_channels, shape.kernel_size
    reach = np.abs(patch_neighbourhood(ks, Ps, shape.dilation)).max(axis=0) + 1
    g = tuple(int(r) for r in reach) if grid is None else per_axis(grid, "grid", dims)
    size = tuple(n * P for n, P in zip(g, Ps, strict=True))
    n_w = D * C * math.prod(ks)
    k_sym = np.array(sympy.symbols(f"K0:{n_w}"), dtype=object).reshape(D, C, *ks)
    b_sym = np.array(sympy.symbols(f"b0:{D}"), dtype=object)
    x_sym = np.array(sympy.symbols(f"x0:{C * math.prod(size)}"), dtype=object).reshape(C, *size)
    # The real construction, on a kernel whose entries are the labels 1..n_w (bias: labels too).
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1](
        C, D, ks, padding="same", dilation=shape.dilation, dtype=torch.float64,
        padding_mode="circular" if circular else "zeros",
    )  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1, n_w + 1, dtype=torch.float64).reshape(D, C, *ks))
        conv.bias.copy_(torch.arange(1, D + 1, dtype=torch.float64))
    layer = mhsa_from_conv(conv, size, None if patch_size is None else Ps)
    T = math.prod(g)
    with torch.no_grad():
        attn = layer.attention_weights(torch.zeros(1, T, layer.in_dim, dtype=torch.float64))[0]
        values = layer.w_v @ layer.w_o  # (N, E, F): entries are tap labels, exactly
        b_o = layer.b_o
    A = attn[..., :T].numpy()  # the sink's value is b_V = 0: drop its column
    if not np.isin(A, (0.0, 1.0)).all():
        raise AssertionError("the construction's attention is not one-hot in float64")
    labels = np.concatenate([[0], k_sym.ravel()]).astype(object)
    w_sym = labels[values.round().long().numpy()]  # (N, E, F) symbolic W_V W_O
    bias_sym = np.concatenate([[0], b_sym])[b_o.round().long().numpy()]
    X = _tokens(x_sym, Ps)  # (T, E)
    out = sum(A[h].astype(np.int64).astype(object) @ X @ w_sym[h] for h in range(len(A)))
    out = out + bias_sym[None, :]
    ref = _tokens(symbolic_conv(k_sym, b_sym, x_sym, shape.dilation, circular), Ps)
    return [r for r in (sympy.expand(v) for v in (out - ref).ravel()) if r != 0]


def softmax_limit(keys: int = 4) -> dict[str, sympy.Expr]:
    """Return the β → ∞ limits of the finite-temperature weights of `from_conv` (Borders).

    Target key logit 0, the other `keys − 1` keys −β, the zero-value sink −β/2. Returns the limits
    of the target's and an other key's weight, the sink's weight when the target is absent, and
    lim (1 − w_target)·e^(β/2) (so the error decays like e^(−β/2)).
    """
    keys = positive_int(keys, "keys", minimum=2)
    beta = sympy.symbols("beta", positive=True)
    e = sympy.exp
    denom = 1 + (keys - 1) * e(-beta) + e(-beta / 2)
    target, other = 1 / denom, e(-beta) / denom
    sink_absent = e(-beta / 2) / (keys * e(-beta) + e(-beta / 2))  # no target key in the grid
    return {
        "target": sympy.limit(target, beta, sympy.oo),
        "other": sympy.limit(other, beta, sympy.oo),
        "sink_when_absent": sympy.limit(sink_absent, beta, sympy.oo),
        "leak_rate": sympy.limit((1 - target) * e(beta / 2), beta, sympy.oo),
    }


def generic_rank(
    kernel_size: int | tuple[int, int],
    patch_size: int | None = None,
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> int:
    """Return rank G over ℚ(K): s of a generic kernel of the shape, exactly. T3 (generic).

    G's entries are the kernel entries as indeterminates (DomainMatrix over the fraction field).
    Meant for small shapes (G up to about 10 × 20): the elimination is over rational functions.
    """
    shape = kernel_shape(
        kernel_size,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=groups,
        dilation=dilation,
    )
    n = int(np.prod(shape.weight_shape()))
    labels = torch.arange(1, n + 1, dtype=torch.int64).reshape(shape.weight_shape())
    G = coefficient_matrix(labels, patch_size, groups=shape.groups, dilation=shape.dilation)[1]
    G = G[:, (G != 0).any(axis=0)]
    ring = sympy.ZZ[sympy.symbols(f"K1:{n + 1}")]
    gens = [ring.zero, *ring.gens]
    M = DomainMatrix([[gens[v] for v in row] for row in G], G.shape, ring)
    return int(M.to_field().rank())
