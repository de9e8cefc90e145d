"""T4 layers: the exact minimum number of heads (s or s + 1) of `theory.minimum`, built. d ≤ 3.

Dimension letters: R rows (offsets Δ, or residues modulo a circular grid), n heads, G the
coefficient matrix with full columns (`theory.coefficients.coefficient_matrix`, rows merged like
`minimum_heads`'), s = rank G.

Construction (paper_notes, T4, ⇐). Take the basis b_1…b_s = G_J of col G and the vector v of the
Gordan certificate: v = G_J y > 0 on the active rows (s heads), or v = 1 on them (s + 1 heads,
v appended as the last head). Shift a_i = b_i + λ_i v with λ_i large enough that a_i ≥ 0; the
a_i still span col G (det(I + y λᵀ) = 1 + λᵀy ≠ 0 is kept; in the s + 1 case v itself is a head).
Scale each a^h to sum 1 and solve G = A·Wc (exact in exact arithmetic, since col G ⊆ col A).
Head h attends with position-only weights a^h (bias table log a^h(Δ) at key − query = Δ, −∞
elsewhere, W_Q = W_K = 0) and has value map W^h = Σ_e D_e ⊗ Wc[h, e]; then
Σ_h a^h(Δ) W^h = Σ_e D_e ⊗ G[Δ, e] = M_Δ.

Where it is exact: on every token whose keys q + Δ (Δ ∈ N) all exist, i.e. the interior; on every
token with circular padding (the table folds offsets congruent modulo the grid); and on every token
with zero padding when the grid is padded with explicit zero tokens (`explicit_padding=True`:
extra keys of zero content). With plain zero padding a head spread over several keys
renormalises its weights at the border, so border tokens are wrong unless every head is one-hot.

>>> conv = nn.Conv2d(4, 4, 5, padding="same", groups=4, bias=False)
>>> with torch.no_grad(): _ = conv.weight.copy_(torch.ones(4, 1, 5, 5))   # per-channel box blur
>>> tight_plan(conv).heads   # 25 for T1, 1 here
1
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from constructions.convolution import stride_one_spec
from constructions.from_conv import SINK_LOGIT, check_grid, input_shape
from constructions.mhsa import RelPosMHSA
from constructions.tokens import patch_grid
from theory.bounds import concrete_kernel, patch_sizes
from theory.coefficients import coefficient_matrix, patch_block
from theory.minimum import MinimumHeads, merged_rows, minimum_heads

__all__ = ["ExplicitPaddingMHSA", "TightPlan", "tight_mhsa_from_conv", "tight_plan"]


@dataclass(frozen=True)
class TightPlan:
    """The T4 heads of one kernel: attention distributions and value coefficients."""

    offsets: np.ndarray  # (R, d) offsets Δ (key − query), or residues modulo `grid`
    attention: np.ndarray  # (R, n) a^h(Δ) ≥ 0, each column sums to 1
    values: np.ndarray  # (n, Π(2P_a−1)·C·D): Wc[h] in the columns of `coefficient_matrix`
    span_dim: int  # s
    kind: str  # "positive vector" (n = s) or "obstruction" (n = s + 1)
    patch_size: tuple[int, ...] | None = None
    grid: tuple[int, ...] | None = None  # the circular grid whose residues the rows are
    minimum: MinimumHeads | None = None  # the certified minimum the plan realises

    @property
    def heads(self) -> int:
        return self.attention.shape[1]


def _shifted_heads(result: MinimumHeads) -> np.ndarray:
    """Return A (R, n) ≥ 0 spanning col G with n = result.heads columns (module docstring)."""
    B, v = result.basis, result.vector
    active = v > 0
    if result.span_dim == 0:
        return np.zeros((len(v), 0))
    ratio = np.where(active[:, None], -B / np.where(active, v, 1.0)[:, None], 0.0)
    lam = np.maximum(ratio.max(axis=0), 0.0) + 1.0  # a_i = b_i + λ_i v ≥ v > 0 on active rows
    if result.kind == "obstruction":
        return np.concatenate([B + v[:, None] * lam[None, :], v[:, None]], axis=1)
    y = np.linalg.lstsq(B[active], v[active], rcond=None)[0]  # v = B y
    if abs(1.0 + lam @ y) < 0.5:  # keep det(I + y λᵀ) = 1 + λᵀy away from 0
        lam[np.argmax(np.abs(y))] += 2.0 / max(abs(y).max(), 1e-300)
    return B + v[:, None] * lam[None, :]


def tight_plan(
    kernel: torch.Tensor | nn.Module,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    image_size: int | tuple[int, ...] | None = None,
) -> TightPlan:
    """Return the T4 heads of `kernel` (an `nn.ConvNd` or weight tensor): its exact minimum.

    The head count and the vectors come from `minimum_heads` (exact, certified); the value
    coefficients Wc are solved in float64 (least squares with a zero residual).
    """
    w, shape, _ = concrete_kernel(kernel, {"groups": groups, "dilation": dilation})
    result = minimum_heads(
        kernel, patch_size, image_size=image_size, groups=shape.groups, **shape.geometry()
    )
    Ps = patch_sizes(patch_size, shape.dims)
    offsets, G = coefficient_matrix(
        w.to(torch.float64), Ps, groups=shape.groups, **shape.geometry()
    )
    rows, G = merged_rows(offsets, G, result.grid)
    A = _shifted_heads(result)
    if A.shape[1] == 0:  # a zero kernel: one idle head keeps the layer well formed
        A = np.zeros((len(rows), 1))
        A[0, 0] = 1.0
        Wc = np.zeros((1, G.shape[1]))
    else:
        A = A / A.sum(axis=0, keepdims=True)  # each head's weights sum to 1
        Wc = np.linalg.lstsq(A, G, rcond=None)[0]  # (n, columns), G = A·Wc
    return TightPlan(rows, A, Wc, result.span_dim, result.kind, Ps, result.grid, result)


def head_tables(plan: TightPlan, grid: tuple[int, ...], circular: bool) -> torch.Tensor:
    """Return the bias tables (n, 2g_1−1, …): log of the weight at each key − query offset."""
    folds = []
    for a, g in enumerate(grid):
        rel = np.arange(-(g - 1), g)[:, None]  # key − query on this axis
        diff = rel - plan.offsets[None, :, a]  # (2g−1, R)
        folds.append((diff % g == 0) if circular else (diff == 0))
    weights = np.zeros((plan.heads, *(2 * g - 1 for g in grid)))
    for r in range(len(plan.offsets)):  # R ≤ a few hundred offsets
        indicator = folds[0][:, r].astype(np.float64)
        for fold in folds[1:]:
            indicator = np.multiply.outer(indicator, fold[:, r])
        weights += plan.attention[r].reshape(-1, *([1] * len(grid))) * indicator
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(weights))  # log 0 = −inf: no weight


class ExplicitPaddingMHSA(nn.Module):
    """An MHSA layer run on the token grid padded with zero tokens, then cropped back.

    The zero tokens are extra keys of zero content (paper_notes, Conventions): with them, every
    key q + Δ of every original token exists, and holds exactly what zero padding puts there.
    """

    def __init__(
        self, layer: RelPosMHSA, grid: tuple[int, ...], pad: tuple[tuple[int, int], ...]
    ) -> None:
        super().__init__()
        self.layer, self.grid, self.pad = layer, grid, pad  # pad: (before, after) per axis

    @property
    def num_heads(self) -> int:
        return self.layer.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layer's output on the original tokens (B, T, E) → (B, T, F)."""
        B, T, E = x.shape
        grid = x.reshape(B, *self.grid, E)
        amounts = [n for before_after in reversed(self.pad) for n in before_after]
        padded = F.pad(grid, (0, 0, *amounts))  # (B, g_1 + pads, …, E)
        out = self.layer(padded.reshape(B, -1, E))
        out = out.reshape(
            B, *(g + lo + hi for g, (lo, hi) in zip(self.grid, self.pad, strict=True)), -1
        )
        crop = tuple(slice(lo, lo + g) for g, (lo, _) in zip(self.grid, self.pad, strict=True))
        return out[(slice(None), *crop)].reshape(B, T, -1)


def tight_mhsa_from_conv(
    conv: nn.Module,
    image_size: int | tuple[int, ...],
    patch_size: int | tuple[int, ...] | None = None,
    *,
    explicit_padding: bool = False,
    attention: str = "auto",
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Return an MHSA layer with exactly `minimum_heads(conv).heads` heads equal to `conv`. T4.

    Pixel tokens when `patch_size` is None, else patch tokens; `conv` an `nn.Conv1d/2d/3d`.
    Exact on every token for circular padding, or for zero padding with `explicit_padding=True`
    (an `ExplicitPaddingMHSA`); with plain zero padding exact on the interior only, unless every
    head is one-hot.

    >>> conv = nn.Conv2d(1, 1, 3, padding="same", bias=False, padding_mode="circular")
    >>> sobel = torch.tensor([[[[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]]])
    >>> with torch.no_grad(): _ = conv.weight.copy_(sobel)
    >>> tight_mhsa_from_conv(conv, (6, 6)).num_heads   # Sobel: s = 1, no positive vector
    2
    """
    spec = stride_one_spec(conv, "the tight (T4) layer")
    size = input_shape(spec, image_size, "image_size")
    Ps = patch_sizes(patch_size, spec.dims)
    grid = patch_grid(size, Ps or (1,) * spec.dims, "image_size")
    dtype = dtype or spec.weight.dtype
    plan = tight_plan(conv, Ps, image_size=size if spec.circular else None)
    if spec.circular or not explicit_padding:
        check_grid(spec, plan.offsets, grid, size, "token", "image_size")
    pad = tuple((0, 0) for _ in grid)
    if explicit_padding and not spec.circular:
        lo, hi = np.maximum(0, -plan.offsets.min(axis=0)), np.maximum(0, plan.offsets.max(axis=0))
        pad = tuple((int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    layer_grid = tuple(g + lo + hi for g, (lo, hi) in zip(grid, pad, strict=True))
    C, D, d = spec.in_channels, spec.out_channels, spec.dims
    W = torch.from_numpy(
        np.stack([patch_block(plan.values, h, Ps, C, D, d) for h in range(plan.heads)])
    ).to(dtype)  # (n, E, F)
    n, E, F_out = W.shape
    Dh = min(E, F_out)
    eye = torch.eye(Dh, dtype=dtype).expand(n, Dh, Dh)
    w_v, w_o = (eye, W) if F_out >= E else (W, eye)
    zeros = lambda *shape: torch.zeros(shape, dtype=dtype)  # noqa: E731
    inner = math.prod(Ps or (1,))
    bias = None if spec.bias is None else spec.bias.to(dtype).repeat(inner)
    layer = RelPosMHSA(
        layer_grid,
        w_q=zeros(n, E, Dh), b_q=zeros(n, Dh), w_k=zeros(n, E, Dh), b_k=zeros(n, Dh),
        w_v=w_v.clone(), b_v=zeros(n, Dh), w_o=w_o.clone(),
        b_o=zeros(F_out) if bias is None else bias.clone(),
        rel_bias=head_tables(plan, layer_grid, spec.circular).to(dtype),
        sink_bias=None if spec.circular else torch.full((n,), SINK_LOGIT, dtype=dtype),
        attention=attention,
    )  # fmt: skip
    layer.tight_plan = plan
    if all(p == (0, 0) for p in pad):
        return layer
    return ExplicitPaddingMHSA(layer, grid, pad)
