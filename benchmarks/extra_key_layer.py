"""The layer of `benchmarks.extra_key`: circular convolutions as cases, the written-out MHSA
layer with one extra key, the exact quantities (blocks, Jacobians, s, T3's floor) and the
(s − 1)-head construction whose error falls like 1/λ. The fits themselves are in extra_key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from theory import head_bounds

__all__ = [
    "Case",
    "ExtraKeyMHSA",
    "blocks",
    "cases",
    "circular_index",
    "eckart_young_floor",
    "linearisation",
    "scaled_construction",
    "span_dim",
]


@dataclass(frozen=True)
class Case:
    """A circular convolution on a grid of pixel tokens, with its training and test sizes."""

    name: str
    conv: nn.Module  # nn.Conv1d or nn.Conv2d, float64, circular 'same' padding, no bias
    grid: tuple[int, ...]
    train_images: int
    test_images: int

    @property
    def width(self) -> tuple[int, int]:
        """Return (E, F): the input and output token widths (C and D)."""
        return self.conv.in_channels, self.conv.out_channels

    @property
    def tokens(self) -> int:
        """Return T, the number of grid positions."""
        return math.prod(self.grid)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """Return the convolution of row-major tokens x (B, T, C) as tokens (B, T, D)."""
        images = x.transpose(1, 2).reshape(len(x), -1, *self.grid)  # (B, C, *grid)
        return self.conv(images).flatten(2).transpose(1, 2)

    def data(self, images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x, conv(x)) for `images` N(0, 1) images as tokens (B, T, C), (B, T, D)."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(images, self.tokens, self.width[0], generator=gen, dtype=torch.float64)
        with torch.no_grad():
            return x, self.target(x)


def _orthonormal_conv(dims: int, channels: int, k: int, seed: int) -> nn.Module:
    """Return a circular 'same' Conv{dims}d whose stacked [vec M_Δ] has orthonormal rows.

    The rows are a seeded random orthonormal set (QR of a Gaussian matrix), so all k^dims singular
    values are 1 and the Eckart–Young floor for N_h < s heads is √((s − N_h)/s): no direction of
    span{M_Δ} is cheap to drop (the Gaussian 3×3, C = D = 3 kernel tried first had
    σ_min/‖σ‖ ≈ 0.009).
    """
    cls = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    conv = cls(channels, channels, k, padding="same", padding_mode="circular", bias=False,
               dtype=torch.float64)  # fmt: skip
    taps = k**dims
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(channels**2, taps, generator=gen, dtype=torch.float64))
    rows = q.T.reshape(*(k,) * dims, channels, channels)  # [tap..., e, f] = M_Δ[e, f]
    with torch.no_grad():
        conv.weight.copy_(rows.permute(dims + 1, dims, *range(dims)))  # (F, E, k...)
    return conv


def cases(quick: bool = False) -> list[Case]:
    """Return the measured cases (s = 3, 3 and 9); `quick` keeps the first, smaller.

    Grids as small as the kernel (3, 3×3) make every offset a kernel offset, so arm (a) is exact
    at finite weights. On a larger grid (8) the weights on the other offsets must be exactly 0,
    which softmax reaches only as table entries → −∞: the control then converges only like the
    logit gap.
    """
    if quick:
        return [Case("conv1d k3 C2 L3", _orthonormal_conv(1, 2, 3, seed=1), (3,), 96, 32)]
    return [
        Case("conv1d k3 C2 L3", _orthonormal_conv(1, 2, 3, seed=1), (3,), 256, 128),
        Case("conv1d k3 C2 L8", _orthonormal_conv(1, 2, 3, seed=1), (8,), 96, 48),
        Case("conv2d 3x3 C3 3x3", _orthonormal_conv(2, 3, 3, seed=2), (3, 3), 128, 64),
    ]


def circular_index(grid: tuple[int, ...]) -> torch.Tensor:
    """Return (T, T) row-major indices [query, key] of the offset (key − query) mod grid."""
    coords = torch.cartesian_prod(*(torch.arange(g) for g in grid)).reshape(-1, len(grid))
    index = torch.zeros((), dtype=torch.long)
    for a, g in enumerate(grid):
        index = index * g + (coords[None, :, a] - coords[:, None, a]) % g  # (T, T)
    return index


class ExtraKeyMHSA(nn.Module):
    """The MHSA layer of paper_notes §Conventions with circular tables and one extra key.

    Dimension letters: B batch, T tokens, N heads, E input width, F output width, Dk query/key
    width, Dh value width. For head h, with the extra key's content c (E,) and logit bias β^h:

        Q = X W_Q + b_Q,  K = [X; c] W_K + b_K,  V = [X; c] W_V + b_V
        A = softmax_keys(Q Kᵀ/√Dk + [B^h[(key − query) mod grid], β^h])
        out = Σ_h A V W_O + b_O

    c = 0 is the zero-content sink of paper_notes (Borders): K = b_K, V = b_V.
    """

    def __init__(
        self,
        grid: tuple[int, ...],
        *,
        w_q: torch.Tensor,  # (N, E, Dk)
        b_q: torch.Tensor,  # (N, Dk)
        w_k: torch.Tensor,  # (N, E, Dk)
        b_k: torch.Tensor,  # (N, Dk)
        w_v: torch.Tensor,  # (N, E, Dh)
        b_v: torch.Tensor,  # (N, Dh)
        w_o: torch.Tensor,  # (N, Dh, F)
        b_o: torch.Tensor,  # (F,)
        table: torch.Tensor,  # (N, T): entry t is the offset of token t's coordinates
        extra_bias: torch.Tensor,  # (N,)
        content: torch.Tensor,  # (E,)
    ) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.register_buffer("index", circular_index(self.grid), persistent=False)
        named = dict(w_q=w_q, b_q=b_q, w_k=w_k, b_k=b_k, w_v=w_v, b_v=b_v, w_o=w_o, b_o=b_o,
                     table=table, extra_bias=extra_bias, content=content)  # fmt: skip
        for name, tensor in named.items():
            self.register_parameter(name, nn.Parameter(tensor.detach().clone()))

    @property
    def heads(self) -> int:
        return self.w_q.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the output tokens (B, T, F) for input tokens x (B, T, E)."""
        T, Dk = x.shape[1], self.w_q.shape[2]
        q = torch.einsum("bte,hed->bhtd", x, self.w_q) + self.b_q[:, None]  # (B, N, T, Dk)
        k = torch.einsum("bte,hed->bhtd", x, self.w_k) + self.b_k[:, None]  # (B, N, T, Dk)
        v = torch.einsum("bte,hed->bhtd", x, self.w_v) + self.b_v[:, None]  # (B, N, T, Dh)
        k_c = self.content @ self.w_k + self.b_k  # (N, Dk)
        v_c = self.content @ self.w_v + self.b_v  # (N, Dh)
        tokens = q @ k.transpose(-1, -2) / math.sqrt(Dk) + self.table[:, self.index]  # (B,N,T,T)
        extra = torch.einsum("bhtd,hd->bht", q, k_c) / math.sqrt(Dk) + self.extra_bias[:, None]
        A = torch.softmax(torch.cat([tokens, extra[..., None]], -1), -1)  # (B, N, T, T + 1)
        o = A[..., :T] @ v + A[..., T:] * v_c[:, None, :]  # (B, N, T, Dh)
        return torch.einsum("bhtd,hdf->btf", o, self.w_o) + self.b_o


def _jacobian_at_zero(f, T: int, E: int) -> torch.Tensor:
    """Return J (T, E, F) with J[t][e, f] = ∂f(x)[0, 0, f]/∂x[0, t, e] at x = 0.

    Token 0 is the query (every query is alike on a circular grid), so J[t] is the block of the
    offset Δ = t's grid coordinates, in the convention out_q = Σ_Δ x_{q+Δ} M_Δ.
    """
    x = torch.zeros(1, T, E, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: f(z)[0, 0], x)  # (F, 1, T, E)
    return jac[:, 0].permute(1, 2, 0).detach()


def blocks(case: Case) -> torch.Tensor:
    """Return M (T, C, D), M[t] = M_Δ for Δ = t's coordinates: the convolution's own Jacobian.

    Offsets outside the kernel give zero blocks; no kernel-index arithmetic of ours is involved.
    """
    return _jacobian_at_zero(case.target, case.tokens, case.width[0])


def linearisation(layer: nn.Module, case: Case) -> torch.Tensor:
    """Return the layer's Jacobian J (T, E, F) at the zero input, laid out as `blocks`."""
    return _jacobian_at_zero(layer, case.tokens, case.width[0])


def span_dim(case: Case) -> int:
    """Return s = dim span{M_Δ} (T3) from `theory.head_bounds`' exact rank, checked here."""
    M = blocks(case)
    s = head_bounds(kernel=case.conv).span_dim
    if int(np.linalg.matrix_rank(M.reshape(len(M), -1).numpy())) != s:
        raise AssertionError(f"{case.name}: the float rank of [vec M_Δ] is not s = {s}")
    return s


def eckart_young_floor(case: Case, heads: int) -> float:
    """Return √(Σ_{i>N_h} σ_i²)/‖M‖: T3's floor on ‖J − M‖/‖M‖ when the extra key is zero.

    T3. With zero-content keys J_Δ = Σ_h a^h(Δ) W_V^h W_O^h, so [vec J_Δ]_Δ has rank ≤ N_h.
    """
    rows = blocks(case).reshape(case.tokens, -1).numpy()
    rows = rows[np.abs(rows).sum(1) > 0]  # the kernel offsets (zero rows change no σ)
    sigma = np.linalg.svd(rows, compute_uv=False)
    return float(np.sqrt(np.sum(sigma[heads:] ** 2)) / np.linalg.norm(sigma))


def scaled_construction(case: Case, lam: float, seed: int = 0) -> ExtraKeyMHSA:
    """Return an (s − 1)-head layer with a content key whose linearisation is M; error O(1/λ).

    T3, extra keys. Needs s = the number of kernel taps (independent M_Δ) and rows c M_Δh, Δh ≠ 0,
    that span ℝ^F (generic c). Base layer (λ = 1): head h has table 0 at its offset Δ_h ≠ 0 and
    −∞ elsewhere, extra-key logit 0 (weights ½, ½), all biases 0, W_V = I, W_O = 2 M_{Δ_h}; so
    J_Δ = M_Δ for Δ ≠ 0. A token x at the query moves only the query: the extra key's logit gains
    x·p^h, p^h = W_Q W_Kᵀ cᵀ/√Dk, its weight ¼ x·p^h, and the output ¼ Σ_h (x·p^h) c W_O^h.
    With W_K's first column c/‖c‖² and W_Q's first column √Dk p^h, where P = [p^h] solves
    ½ P [c M_Δh]_h = M_0, also J_0 = M_0. The layer returned is λ(f(x/λ) − f(0)): W_Q, W_K, W_V
    divided by λ, c and W_O multiplied by λ, b_O = −λ f(0).
    """
    E, F_out = case.width
    M = blocks(case)
    T = len(M)
    support = [t for t in range(1, T) if M[t].abs().max() > 0]  # the offsets Δ ≠ 0
    N = len(support)
    c = torch.randn(E, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    R = torch.stack([c @ M[t] for t in support])  # (N, F): the rows c M_Δh
    P = 2 * M[0] @ torch.linalg.pinv(R)  # (E, N): ½ P R = M_0 when R has rank F
    zeros = lambda *shape: torch.zeros(shape, dtype=torch.float64)  # noqa: E731
    w_q, w_k, w_o, table = zeros(N, E, E), zeros(N, E, E), zeros(N, E, F_out), zeros(N, T)
    table.fill_(-math.inf)
    for h, t in enumerate(support):
        table[h, t] = 0.0
        w_o[h] = 2 * M[t] * lam
        w_k[h, :, 0] = c / c.dot(c) / lam
        w_q[h, :, 0] = math.sqrt(E) * P[:, h] / lam
    layer = ExtraKeyMHSA(
        case.grid, w_q=w_q, b_q=zeros(N, E), w_k=w_k, b_k=zeros(N, E),
        w_v=torch.eye(E, dtype=torch.float64).expand(N, E, E) / lam, b_v=zeros(N, E),
        w_o=w_o, b_o=zeros(F_out), table=table, extra_bias=zeros(N), content=lam * c,
    )  # fmt: skip
    with torch.no_grad():
        layer.b_o.copy_(-layer(zeros(1, T, E))[0, 0])
    return layer
