"""T4 (beyond the paper): a kernel needs only s or s+1 heads, where s = dim span{M_Δ} (SPEC §2 T4).

Dimension letters as in `theory.bounds`: N offsets Δ, G the |N| × (2P−1)²·C·D coefficient matrix
(M_Δ = Σ_e D_e ⊗ K̃[ΔP + e]), s = rank G, n the heads built here.

Construction. Pick non-negative vectors a¹..aⁿ ∈ ℝ^N whose span contains the column space of G:

* n = s when that space has a non-negative basis: sign-constant columns of G (a one-hot e_Δ
  included) found by exact elimination, the standard basis when s = |N|, or a basis through the
  all-ones vector 1 with every other vector shifted by a multiple of 1;
* otherwise n = s + 1: a basis b_i of the column space shifted to b_i + c_i·1 ≥ 0, plus 1.

Scale each a^h to sum 1 and solve G = A·Wc (A = [a¹..aⁿ], exact since col G ⊆ col A). Head h attends
with position-only weights a^h (bias table log a^h(Δ) at key − query = Δ, −∞ elsewhere,
W_Q = W_K = 0) and has value map W^h = Σ_e D_e ⊗ Wc[h, e]; then
Σ_h a^h(Δ) W^h = Σ_e D_e ⊗ G[Δ, e] = M_Δ.

Where it is exact: on every token whose keys q + Δ (Δ ∈ N) all exist, i.e. the interior; on every
token with circular padding (the table folds offsets congruent modulo the grid); and on every token
with zero padding when the grid is padded with explicit zero tokens (`explicit_padding=True`, extra
fixed-content keys as SPEC §1 allows). With plain zero padding a head spread over several keys
renormalises its weights at the border (softmax over the keys that exist), so border tokens are
wrong unless every head is one-hot (s = |N|, which is T1/T2 itself).

>>> conv = nn.Conv2d(4, 4, 5, padding="same", groups=4, bias=False)
>>> with torch.no_grad(): _ = conv.weight.copy_(torch.ones(4, 1, 5, 5))   # per-channel box blur
>>> tight_plan(conv.weight, groups=4).heads   # 25 for T1, 1 here
1
"""

from __future__ import annotations

from dataclasses import dataclass

import flint
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from constructions.convolution import conv_spec
from constructions.from_conv import SINK_LOGIT
from constructions.mhsa import RelPosMHSA
from theory._validate import positive_int, positive_pair
from theory.bounds import coefficient_matrix
from theory.exact import exact_rank, integer_matrix

__all__ = ["ExplicitPaddingMHSA", "TightPlan", "tight_mhsa_from_conv", "tight_plan"]


@dataclass(frozen=True)
class TightPlan:
    """The T4 heads of one kernel: attention distributions and value coefficients."""

    offsets: np.ndarray  # (|N|, 2) patch (or pixel) offsets Δ, key − query
    attention: np.ndarray  # (|N|, n) a^h(Δ) ≥ 0, each column sums to 1
    values: np.ndarray  # (n, 2P−1, 2P−1, C, D) Wc[h, e]
    span_dim: int  # s
    kind: str  # which case of the construction gave the vectors

    @property
    def heads(self) -> int:
        return self.attention.shape[1]


def _rref_pivots(a: np.ndarray) -> np.ndarray:
    """Return the pivot columns of the exact reduced row echelon form of integer matrix `a`."""
    if a.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    reduced, _, rank = flint.fmpz_mat(a.shape[0], a.shape[1], [int(v) for v in a.ravel()]).rref()
    entries = np.array([int(v) for v in reduced.entries()], dtype=object).reshape(a.shape)[:rank]
    return np.argmax(entries != 0, axis=1)


def _nonnegative_vectors(G: np.ndarray, s: int) -> tuple[np.ndarray, str]:
    """Return (A (|N|, n) non-negative, spanning ⊇ col G, n ∈ {s, s+1}; the case used). Exact."""
    n_rows = G.shape[0]
    if s == n_rows:
        return np.eye(n_rows, dtype=object), "one-hot (s = |N|: the T1/T2 heads)"
    live = G[:, (G != 0).any(axis=0)]
    signed = live * np.where((live <= 0).all(axis=0), -1, 1)  # flip non-positive columns
    candidates = signed[:, (signed >= 0).all(axis=0)]
    if candidates.shape[1]:
        if candidates.dtype != object:
            candidates = np.unique(candidates, axis=1)
        order = np.argsort((candidates != 0).sum(axis=0), kind="stable")  # sparsest first
        candidates = candidates[:, order]
        chosen = candidates[:, _rref_pivots(candidates)]
        if chosen.shape[1] == s:
            one_hot = bool(((chosen != 0).sum(axis=0) == 1).all())
            return chosen, "one-hot columns of G" if one_hot else "sign-constant columns of G"
    basis = live[:, _rref_pivots(live)]  # (|N|, s)
    ones = np.ones((n_rows, 1), dtype=basis.dtype)
    shift = lambda b: b + np.maximum(0, -b.min(axis=0, initial=0))[None, :]  # noqa: E731
    if exact_rank(np.concatenate([basis, ones], axis=1)).rank == s:  # 1 ∈ col G
        through_one = np.concatenate([ones, basis], axis=1)
        pivots = _rref_pivots(through_one)  # includes column 0, the all-ones vector
        return np.concatenate(
            [ones, shift(through_one[:, pivots[1:]])], axis=1
        ), "basis through the all-ones vector, shifted"
    return np.concatenate([shift(basis), ones], axis=1), "basis shifted by multiples of 1, plus 1"


def tight_plan(
    weight: torch.Tensor,
    patch_size: int | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> TightPlan:
    """Return the T4 heads of `weight` (D, C/g, kh, kw): s or s+1 position-only heads. SPEC T4.

    The choice of vectors and s are exact (FLINT on the exact rationals of the weights); the
    value coefficients Wc are solved in float64 (least squares with a zero residual).
    """
    P = 1 if patch_size is None else positive_int(patch_size, "patch_size")
    w64 = weight.detach().to("cpu", torch.float64)
    offsets, G = coefficient_matrix(w64, patch_size, groups=groups, dilation=dilation)
    exact = integer_matrix(G)
    s = exact_rank(exact).rank
    vectors, kind = _nonnegative_vectors(exact, s)
    A = vectors.astype(np.float64)
    A /= A.sum(axis=0, keepdims=True)  # each head's weights sum to 1
    Wc = np.linalg.lstsq(A, G, rcond=None)[0]  # (n, (2P−1)²·C·D), G = A·Wc
    C, D = G.shape[1] // (2 * P - 1) ** 2 // weight.shape[0], weight.shape[0]
    return TightPlan(offsets, A, Wc.reshape(-1, 2 * P - 1, 2 * P - 1, C, D), s, kind)


def _value_maps(values: np.ndarray, P: int) -> torch.Tensor:
    """Return W^h = Σ_e D_e ⊗ Wc[h, e] (n, P²C, P²D): W[h, (a, c), (b, o)] = Wc[h, a − b, c, o]."""
    n, _, _, C, D = values.shape
    a = np.arange(P)
    diff = a[:, None] - a[None, :] + P - 1  # (a, b) ↦ index of e = a − b
    w = values[:, diff[:, None, :, None], diff[None, :, None, :]]  # (n, a1, a2, b1, b2, C, D)
    return torch.from_numpy(w.transpose(0, 1, 2, 5, 3, 4, 6).reshape(n, P * P * C, P * P * D))


def _tables(plan: TightPlan, grid: tuple[int, int], circular: bool) -> torch.Tensor:
    """Return the bias tables (n, 2gh−1, 2gw−1): log of the weight at each key − query offset."""
    rows, cols = np.unique(plan.offsets[:, 0]), np.unique(plan.offsets[:, 1])
    A = plan.attention.reshape(len(rows), len(cols), -1)  # (n1, n2, n)
    fold = []
    for axis_offsets, g in zip((rows, cols), grid, strict=False):
        rel = np.arange(-(g - 1), g)[:, None]  # key − query on this axis
        diff = rel - axis_offsets[None, :]
        fold.append((diff % g == 0) if circular else (diff == 0))  # (2g−1, n_axis)
    weights = np.einsum("ri,ijh,sj->hrs", fold[0].astype(np.float64), A, fold[1].astype(np.float64))
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(weights))  # log 0 = −inf: no weight


class ExplicitPaddingMHSA(nn.Module):
    """An MHSA layer run on the token grid padded with zero tokens, then cropped back.

    The zero tokens are extra keys of fixed content (SPEC §1): with them, every key q + Δ of every
    original token exists, and holds exactly what zero padding puts there.
    """

    def __init__(
        self, layer: RelPosMHSA, grid: tuple[int, int], pad: tuple[int, int, int, int]
    ) -> None:
        super().__init__()
        self.layer, self.grid, self.pad = layer, grid, pad  # pad: (top, bottom, left, right)

    @property
    def num_heads(self) -> int:
        return self.layer.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layer's output on the original tokens (B, gh·gw, E) → (B, gh·gw, F)."""
        B, T, E = x.shape
        gh, gw = self.grid
        top, bottom, left, right = self.pad
        grid = x.reshape(B, gh, gw, E)
        padded = F.pad(grid, (0, 0, left, right, top, bottom))  # (B, gh+top+bottom, gw+l+r, E)
        out = self.layer(padded.reshape(B, -1, E))
        out = out.reshape(B, gh + top + bottom, gw + left + right, -1)
        return out[:, top : top + gh, left : left + gw].reshape(B, T, -1)


def tight_mhsa_from_conv(
    conv: nn.Conv2d,
    image_size: int | tuple[int, int],
    patch_size: int | None = None,
    *,
    explicit_padding: bool = False,
    attention: str = "sdpa",
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Return an MHSA layer with s or s+1 heads equal to `conv` where T4 says so. SPEC T4.

    Pixel tokens when `patch_size` is None, else ViT patch tokens. Exact on every token for
    circular padding, or for zero padding with `explicit_padding=True` (an `ExplicitPaddingMHSA`);
    with plain zero padding exact on the interior only, unless every head is one-hot.

    >>> conv = nn.Conv2d(1, 1, 3, padding="same", bias=False, padding_mode="circular")
    >>> sobel = torch.tensor([[[[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]]])
    >>> with torch.no_grad(): _ = conv.weight.copy_(sobel)
    >>> tight_mhsa_from_conv(conv, (6, 6)).num_heads   # Sobel: s = 1, not sign-constant
    2
    """
    spec = conv_spec(conv)
    image = positive_pair(image_size, "image_size")
    P = 1 if patch_size is None else positive_int(patch_size, "patch_size")
    if min(image) < P:
        raise ValueError(f"patch_size={P} exceeds the image {image}: a patch must fit in the image")
    if image[0] % P or image[1] % P:
        raise ValueError(f"image_size={image} is not divisible by patch_size={P}")
    grid = (image[0] // P, image[1] // P)
    dtype = dtype or spec.weight.dtype
    plan = tight_plan(spec.weight, patch_size, groups=spec.groups, dilation=spec.dilation)
    reach = np.abs(plan.offsets).max(axis=0)
    if spec.circular:
        for (before, after), size in zip(spec.padding, image, strict=False):
            if max(before, after) > size:
                raise ValueError(
                    f"image_size={image}: circular padding {max(before, after)} "
                    f"exceeds the image side {size}"
                )
    elif not explicit_padding and (reach[0] >= grid[0] or reach[1] >= grid[1]):
        raise ValueError(
            f"image_size={image} gives a {grid[0]}×{grid[1]} token grid, too small "
            f"for offsets up to {tuple(int(r) for r in reach)}"
        )
    pad = (0, 0, 0, 0)
    if explicit_padding and not spec.circular:
        lo, hi = np.maximum(0, -plan.offsets.min(axis=0)), np.maximum(0, plan.offsets.max(axis=0))
        pad = (int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))
    layer_grid = (grid[0] + pad[0] + pad[1], grid[1] + pad[2] + pad[3])
    W = _value_maps(plan.values, P).to(dtype)  # (n, E, F)
    n, E, F_out = W.shape
    Dh = min(E, F_out)
    eye = torch.eye(Dh, dtype=dtype).expand(n, Dh, Dh)
    w_v, w_o = (eye, W) if F_out >= E else (W, eye)
    zeros = lambda *shape: torch.zeros(shape, dtype=dtype)  # noqa: E731
    bias = None if spec.bias is None else spec.bias.to(dtype).repeat(P * P)
    layer = RelPosMHSA(
        layer_grid,
        w_q=zeros(n, E, Dh), b_q=zeros(n, Dh), w_k=zeros(n, E, Dh), b_k=zeros(n, Dh),
        w_v=w_v.clone(), b_v=zeros(n, Dh), w_o=w_o.clone(),
        b_o=zeros(F_out) if bias is None else bias.clone(),
        rel_bias=_tables(plan, layer_grid, spec.circular).to(dtype),
        sink_bias=None if spec.circular else torch.full((n,), SINK_LOGIT, dtype=dtype),
        attention=attention,
    )  # fmt: skip
    layer.tight_plan = plan
    if pad == (0, 0, 0, 0):
        return layer
    return ExplicitPaddingMHSA(layer, grid, pad)
