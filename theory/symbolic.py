"""Symbolic proofs with sympy (SPEC §3, symbolically): construction identity, softmax limit, ranks.

* `construction_residuals`: the T1/T2 layer as a polynomial identity. Kernel, bias and image are
  sympy symbols; the layer's one-hot attention pattern and its value maps come from the real
  construction (`pixel_mhsa_from_conv` / `patch_mhsa_from_conv`, run on a kernel whose entries are
  integer labels, so W_V W_O holds the labels exactly); the convolution is written out from its
  definition (zero or circular 'same' padding). `expand(layer − conv)` is returned for every output
  entry: all zero is the proof, on every token, borders included.
* `softmax_limit`: the finite-temperature weights (target 0, other keys −β, sink −β/2 as in
  `constructions.from_conv`) tend to the one-hot weights as β → ∞; the leak decays like e^(−β/2).
* `generic_rank`: s for a kernel shape as the rank of G over the field ℚ(K) of rational functions
  in the kernel entries, i.e. the rank of a generic kernel, no sampling involved.
"""

from __future__ import annotations

import numpy as np
import sympy
import torch
from sympy.polys.matrices import DomainMatrix
from torch import nn

from constructions.from_conv import patch_mhsa_from_conv, pixel_mhsa_from_conv
from theory._validate import positive_int, positive_pair
from theory.bounds import coefficient_matrix, kernel_shape

__all__ = ["construction_residuals", "generic_rank", "softmax_limit", "symbolic_conv"]


def symbolic_conv(
    weight: np.ndarray,
    bias: np.ndarray,
    image: np.ndarray,
    dilation: tuple[int, int],
    circular: bool,
) -> np.ndarray:
    """Return conv(image) (D, H, W) of object arrays by the definition of PyTorch's 'same' conv.

    out[o, y, x] = b[o] + Σ_{c, i, j} K[o, c, i, j] · x[c, y + i·d₁ − p₁, x + j·d₂ − p₂], with
    p = d·(k−1)//2 zeros before (wrapping around instead when `circular`). One group.
    """
    D, _C, kh, kw = weight.shape
    _, H, W = image.shape
    (dh, dw) = dilation
    ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
    ys, xs = np.arange(H), np.arange(W)
    out = np.empty((D, H, W), dtype=object)
    out[...] = bias[:, None, None]
    for i in range(kh):  # kh·kw ≤ 25 taps: each tap is one vectorised shifted product
        for j in range(kw):
            y, x = ys + i * dh - ph, xs + j * dw - pw
            if circular:
                shifted = image[:, y[:, None] % H, x[None, :] % W]  # (C, H, W)
            else:
                ok = ((y >= 0) & (y < H))[:, None] & ((x >= 0) & (x < W))[None, :]
                shifted = np.where(
                    ok[None], image[:, y[:, None].clip(0, H - 1), x[None, :].clip(0, W - 1)], 0
                )
            out = out + np.einsum("oc,chw->ohw", weight[:, :, i, j], shifted)
    return out


def _tokens(image: np.ndarray, P: int) -> np.ndarray:
    """Return the patch tokens (h·w, P·P·C) of an object image (C, H, W): (p1, p2, c) order."""
    C, H, W = image.shape
    t = image.reshape(C, H // P, P, W // P, P).transpose(1, 3, 2, 4, 0)  # (h, w, p1, p2, C)
    return t.reshape((H // P) * (W // P), P * P * C)


def construction_residuals(
    kernel_size: int | tuple[int, int],
    patch_size: int | None = None,
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    dilation: int | tuple[int, int] = 1,
    circular: bool = False,
    grid: tuple[int, int] | None = None,
) -> list[sympy.Expr]:
    """Return the non-zero entries of expand(MHSA − conv) over all output tokens: [] proves T1/T2.

    SPEC §3 (a), T1 (`patch_size=None`) and T2. The grid (tokens per side) defaults to the
    smallest the construction accepts (reach + 1), so most tokens are border tokens.
    """
    shape = kernel_shape(
        kernel_size, in_channels=in_channels, out_channels=out_channels, dilation=dilation
    )
    P = 1 if patch_size is None else positive_int(patch_size, "patch_size")
    D, C, (kh, kw) = shape.out_channels, shape.in_channels, shape.kernel_size
    from theory.neighbourhoods import patch_neighbourhood

    reach = np.abs(patch_neighbourhood(shape.kernel_size, P, shape.dilation)).max(axis=0) + 1
    gh, gw = positive_pair(grid, "grid") if grid is not None else (int(reach[0]), int(reach[1]))
    H, W = gh * P, gw * P
    n_w = D * C * kh * kw
    k_sym = np.array(sympy.symbols(f"K0:{n_w}"), dtype=object).reshape(D, C, kh, kw)
    b_sym = np.array(sympy.symbols(f"b0:{D}"), dtype=object)
    x_sym = np.array(sympy.symbols(f"x0:{C * H * W}"), dtype=object).reshape(C, H, W)
    # The real construction, on a kernel whose entries are the labels 1..n_w (bias: labels too).
    conv = nn.Conv2d(
        C,
        D,
        (kh, kw),
        padding="same",
        dilation=shape.dilation,
        dtype=torch.float64,
        padding_mode="circular" if circular else "zeros",
    )
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1, n_w + 1, dtype=torch.float64).reshape(D, C, kh, kw))
        conv.bias.copy_(torch.arange(1, D + 1, dtype=torch.float64))
    layer = (
        pixel_mhsa_from_conv(conv, (H, W))
        if patch_size is None
        else patch_mhsa_from_conv(conv, (H, W), P)
    )
    E = layer.in_dim
    with torch.no_grad():
        attn = layer.attention_weights(torch.zeros(1, gh * gw, E, dtype=torch.float64))[0]
        values = layer.w_v @ layer.w_o  # (N, E, F): entries are tap labels, exactly
        b_o = layer.b_o
    A = attn[..., : gh * gw].numpy()  # the sink's value is b_V = 0: drop its column
    if not np.isin(A, (0.0, 1.0)).all():
        raise AssertionError("the construction's attention is not one-hot in float64")
    labels = np.concatenate([[0], k_sym.ravel()]).astype(object)
    w_sym = labels[values.round().long().numpy()]  # (N, E, F) symbolic W_V W_O
    bias_sym = np.concatenate([[0], b_sym])[b_o.round().long().numpy()]
    X = _tokens(x_sym, P)  # (T, E)
    out = sum(A[h].astype(np.int64).astype(object) @ X @ w_sym[h] for h in range(len(A)))
    out = out + bias_sym[None, :]
    ref = _tokens(symbolic_conv(k_sym, b_sym, x_sym, shape.dilation, circular), P)
    return [r for r in (sympy.expand(v) for v in (out - ref).ravel()) if r != 0]


def softmax_limit(keys: int = 4) -> dict[str, sympy.Expr]:
    """Return the β → ∞ limits of the finite-temperature weights of `from_conv` (SPEC §2).

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
    """Return rank G over ℚ(K): s of a generic kernel of the shape, exactly. SPEC T3 (generic).

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
