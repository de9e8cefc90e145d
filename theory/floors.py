"""Numerical lower-bound evidence for T3: Eckart–Young floors and gradient fits.

Linearisation. Put one token εu at key t, all others zero: any layer (paper_notes, Conventions)
outputs, at query q, const + ε Σ_h A^h_{qt}(ε) u W_V^h W_O^h, so its Jacobian at the zero input is
J_Δ(q) = Σ_h a^h(Δ) W_V^h W_O^h with a^h(Δ) = A^h_{q, q+Δ}(0) ≥ 0 (`linearisation`). Stacked over
Δ ∈ N, [vec J_Δ]_Δ has rank ≤ N_h, so by Eckart–Young

    Σ_Δ ‖J_Δ − M_Δ‖_F²  ≥  Σ_{i > N_h} σ_i²,

σ the singular values of [vec M_Δ]_Δ = G·diag(‖D_e‖_F) (`eckart_young_floor`). The floor is 0 from
N_h = s on. `fit_heads` fits N_h position-only heads to a circular convolution by gradient descent
(float64, CPU), builds the `RelPosMHSA`, and reports its output and linearisation errors next to
the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from constructions.convolution import stride_one_spec
from constructions.mhsa import RelPosMHSA
from constructions.tokens import image_to_patches
from constructions.validate import positive_int, positive_pair
from theory.coefficients import coefficient_matrix, column_norms, patch_block
from theory.exact import exact_rank
from theory.tightness import TightPlan, head_tables

__all__ = ["FitResult", "eckart_young_floor", "fit_heads", "linearisation", "singular_values"]


def singular_values(conv: nn.Conv2d, patch_size: int | None = None) -> np.ndarray:
    """Return the singular values of the stacked matrix [vec M_Δ]_Δ (|N| of them, descending)."""
    spec = stride_one_spec(conv, "the Eckart–Young floors and fits")
    G = coefficient_matrix(
        spec.weight.double(), patch_size, groups=spec.groups, dilation=spec.dilation
    )[1]
    weighted = G * column_norms(patch_size, spec.in_channels, spec.out_channels)[None, :]
    return np.linalg.svd(weighted, compute_uv=False)


def eckart_young_floor(conv: nn.Conv2d, num_heads: int, patch_size: int | None = None) -> float:
    """Return √(Σ_{i>N_h} σ_i²): no layer with `num_heads` heads has a smaller linearisation error.

    T3. The error is the Frobenius distance Σ_Δ ‖J_Δ − M_Δ‖_F² of `linearisation`.
    """
    num_heads = positive_int(num_heads, "num_heads")
    sigma = singular_values(conv, patch_size)
    return float(np.sqrt(np.sum(sigma[num_heads:] ** 2)))


def linearisation(layer: RelPosMHSA, offsets: np.ndarray, query: tuple[int, int]) -> torch.Tensor:
    """Return J_Δ(q) = Σ_h A^h_{q,q+Δ}(0) W_V^h W_O^h for Δ in `offsets`: (|N|, E, F).

    The Jacobian of the layer at the zero input (derivation in the module docstring); `query`
    must see every q + Δ inside the grid.
    """
    gh, gw = layer.grid_size
    qy, qx = query
    keys = (qy + offsets[:, 0]) * gw + (qx + offsets[:, 1])
    if not (
        ((qy + offsets[:, 0]) >= 0)
        & ((qy + offsets[:, 0]) < gh)
        & ((qx + offsets[:, 1]) >= 0)
        & ((qx + offsets[:, 1]) < gw)
    ).all():
        raise ValueError(f"query={query} does not see every offset inside the {gh}×{gw} grid")
    zero = torch.zeros(1, gh * gw, layer.in_dim, dtype=layer.w_q.dtype)
    a = layer.attention_weights(zero)[0, :, qy * gw + qx, torch.as_tensor(keys)]  # (N_h, |N|)
    return torch.einsum("hn,hef,hfg->neg", a, layer.w_v, layer.w_o)


@dataclass(frozen=True)
class FitResult:
    """A gradient fit of an N_h-head layer to a convolution, next to the Eckart–Young floor."""

    num_heads: int
    span_dim: int  # s
    floor: float  # Eckart–Young floor of the linearisation error
    linear_error: float  # √Σ_Δ ‖J_Δ − M_Δ‖_F² of the fitted layer (≥ floor, always)
    output_error: float  # ‖layer(x) − conv(x)‖ / ‖conv(x)‖ on held-out inputs
    scale: float  # √Σ_Δ ‖M_Δ‖_F², for relative numbers


def fit_heads(
    conv: nn.Conv2d,
    num_heads: int,
    image_size: int | tuple[int, int],
    patch_size: int | None = None,
    *,
    steps: int = 400,
    batch: int = 4,
    seed: int = 0,
) -> FitResult:
    """Return the `FitResult` of fitting `num_heads` heads to the circular `conv`. T3.

    The fit is over layers with position-only attention (W_Q = W_K = 0), the form the linearisation
    of every layer takes: head h has weights a^h = softmax(L^h) over the offsets N and value map
    W^h = W_V^h W_O^h (head dim min(E, F), so any E×F map). The loss is the linearisation error
    Σ_Δ ‖Σ_h a^h(Δ) W^h − M_Δ‖_F² / Σ_Δ ‖M_Δ‖_F² (the expected output error on white noise) with
    the W^h eliminated in closed form (variable projection: least squares for given a^h), and
    Adam then LBFGS move the logits L in float64. The fitted heads are then put in a `RelPosMHSA`
    on the image's token grid (tables folded modulo the grid, as in `theory.tightness`), whose
    output and Jacobian are measured.
    """
    spec = stride_one_spec(conv, "the Eckart–Young floors and fits")
    if not spec.circular:
        raise ValueError("fit_heads needs a circular convolution (padding_mode='circular')")
    num_heads = positive_int(num_heads, "num_heads")
    H, W = positive_pair(image_size, "image_size")
    P = 1 if patch_size is None else positive_int(patch_size, "patch_size")
    grid = (H // P, W // P)
    gen = torch.Generator().manual_seed(seed)
    offsets, G = coefficient_matrix(
        spec.weight.double(), patch_size, groups=spec.groups, dilation=spec.dilation
    )
    M = torch.from_numpy(
        np.stack(
            [
                patch_block(G, i, patch_size, spec.in_channels, spec.out_channels)
                for i in range(len(G))
            ]
        )
    )
    N, E, F_out = M.shape
    Dh = min(E, F_out)
    logits = torch.randn(num_heads, N, generator=gen, dtype=torch.float64).requires_grad_()
    target = M.reshape(N, E * F_out)
    norm = target.pow(2).sum()

    def residual() -> torch.Tensor:  # min over the value maps, in closed form (projection)
        Q, _ = torch.linalg.qr(torch.softmax(logits, -1).T)  # (N, N_h) orthonormal basis of col A
        return (target - Q @ (Q.T @ target)).pow(2).sum() / norm

    adam = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        adam.zero_grad()
        residual().backward()
        adam.step()
    lbfgs = torch.optim.LBFGS(
        [logits],
        lr=1,
        max_iter=steps,
        max_eval=2 * steps,
        tolerance_grad=1e-16,
        tolerance_change=1e-20,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = residual()
        loss.backward()
        return loss

    lbfgs.step(closure)
    with torch.no_grad():
        A = torch.softmax(logits, -1).T  # (N, N_h)
        values = torch.linalg.lstsq(A, target).solution.reshape(num_heads, E, F_out)
        eye = torch.eye(Dh, dtype=torch.float64).expand(num_heads, Dh, Dh)
        w_v, w_o = (eye, values) if F_out >= E else (values, eye)
    with torch.no_grad():
        a = torch.softmax(logits, -1).T.numpy()  # (N, N_h)
        plan = TightPlan(offsets, a, np.zeros((num_heads, 1)), 0, "gradient fit")
        zeros = lambda *shape: torch.zeros(shape, dtype=torch.float64)  # noqa: E731
        layer = RelPosMHSA(
            grid, w_q=zeros(num_heads, E, Dh), b_q=zeros(num_heads, Dh),
            w_k=zeros(num_heads, E, Dh), b_k=zeros(num_heads, Dh), w_v=w_v.detach().clone(),
            b_v=zeros(num_heads, Dh), w_o=w_o.detach().clone(),
            b_o=zeros(F_out) if spec.bias is None else spec.bias.double().repeat(P * P),
            rel_bias=head_tables(plan, grid, circular=True),
        )  # fmt: skip
        J = linearisation(layer, offsets, (grid[0] // 2, grid[1] // 2))
        x = torch.randn(batch, spec.in_channels, H, W, generator=gen, dtype=torch.float64)
        y = image_to_patches(conv.to(torch.float64)(x), P)
        out_err = ((layer(image_to_patches(x, P)) - y).norm() / y.norm()).item()
    return FitResult(
        num_heads=num_heads,
        span_dim=exact_rank(G).rank,
        floor=eckart_young_floor(conv, num_heads, patch_size),
        linear_error=float((J - M).norm()),
        output_error=out_err,
        scale=float(M.norm()),
    )
