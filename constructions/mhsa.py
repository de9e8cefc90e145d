"""The multi-head self-attention layer of paper_notes §Conventions, with a relative-position bias.

Dimension letters: B batch, T tokens (a g_1×…×g_d grid, d ∈ {1, 2, 3}, row-major), S keys (T,
plus 1 with the sink), N heads, E input width, F output width, Dk query/key width, Dh value width
(the head dim).

For head h (Vaswani et al. 2017; relative bias as in Shaw et al. 2018 / Cordonnier et al. 2020):

    Q = X W_Q^h + b_Q^h,  K = X W_K^h + b_K^h,  V = X W_V^h + b_V^h
    A^h = softmax_keys(Q Kᵀ/√Dk + B^h[key − query])
    out = Σ_h A^h V^h W_O^h + b_O

`B^h` is a table over the (2g_1−1)×…×(2g_d−1) offsets **key − query** (timm and Swin index
query − key); entries may be −∞. With `sink_bias` set, one extra key of zero content (so K = b_K,
V = b_V) is appended for every query, with the finite logit `Q·b_K/√Dk + sink_bias[h]`: a row
whose other keys are all −∞ then still has a finite entry, so no softmax implementation can
return NaN (paper_notes, Borders).

Evaluation paths (`attention=`):

* `"sdpa"`: all heads in one `F.scaled_dot_product_attention` call with the dense (N, T, S) bias;
* `"reference"`: the softmax written out (`attention_reference`), the oracle for the fused call
  and the path that `attention_weights` uses;
* `"local"`: only the keys where a head's table is finite, plus the sink
  (`constructions.local_attention`, paper_notes, Local attention): O(T·Σ_h |U_h|) time and
  O(B·T·(N·Dh + E + F)) memory, nothing of size T². The same function as the dense paths, except
  that a query with no scorable key gets 0 from a head (SDPA's value; the reference gives NaN);
* `"auto"` (default): `"local"` when the tables have Σ_h |U_h| ≤ T/4 finite entries (decided
  once per table version), else `"sdpa"`. Constructed layers are local; finite-temperature and
  trained tables (finite everywhere) are dense.

The dense index behind `relative_bias` (T×S int32) is built on first use, so a local layer never
allocates it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from constructions import local_attention as local
from constructions.heads import head_projections
from constructions.validate import SPATIAL_DIMS, per_axis

__all__ = ["RelPosMHSA", "attention_reference", "check_tokens", "relative_index"]

ATTENTION_PATHS = ("auto", "sdpa", "reference", "local")


def relative_index(grid_size: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
    """Return (T, T) indices into the flattened (2g_1−1)×…×(2g_d−1) table of key − query offsets.

    Entry [query, key] is the row-major index of (k_a − q_a + g_a − 1)_a; in 2-D
    `(ky − qy + gh − 1)·(2gw − 1) + (kx − qx + gw − 1)`.
    """
    coords = torch.cartesian_prod(*(torch.arange(g, device=device) for g in grid_size))
    coords = coords.reshape(-1, len(grid_size))  # (T, d), row-major
    index = torch.zeros((), dtype=torch.long, device=device)
    for a, g in enumerate(grid_size):
        rel = coords[None, :, a] - coords[:, None, a] + g - 1  # (T, T) key − query on axis a
        index = index * (2 * g - 1) + rel
    return index


def attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Return softmax(q kᵀ/√Dk + bias) v, the softmax written out (the oracle for SDPA).

    Shapes: q (B, N, T, Dk), k and v (B, N, S, ·), bias (N, T, S).
    """
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias  # (B, N, T, S)
    return torch.softmax(logits, dim=-1) @ v


def _autocast_to(x: torch.Tensor) -> bool:
    """Return whether `x` has the dtype of an autocast region active on its device (mixed
    precision: the projections then run in that dtype, as every nn.Linear does)."""
    kind = x.device.type
    return torch.is_autocast_enabled(kind) and x.dtype == torch.get_autocast_dtype(kind)


def check_tokens(
    x: object,
    num_tokens: int,
    width: int,
    weight: torch.Tensor,
    *,
    owner: str = "layer",
    finite: bool = True,
) -> torch.Tensor:
    """Return `x` if it is a finite (B, num_tokens, width) tensor of `weight`'s dtype and device.

    Otherwise raise TypeError/ValueError saying what the layer takes. Non-finite tokens are
    rejected: attention multiplies every key's value by its weight, so one inf or NaN
    (0·inf = NaN) would spread to tokens a convolution leaves alone.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of tokens, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[1:] != (num_tokens, width):
        raise ValueError(
            f"x has shape {tuple(x.shape)}; this {owner} takes tokens (B, {num_tokens}, {width})"
        )
    if x.dtype != weight.dtype and not _autocast_to(x):
        raise TypeError(
            f"x has dtype {x.dtype} but the {owner}'s weights are {weight.dtype}; "
            f"convert one of them (e.g. {owner}.to(x.dtype))"
        )
    if x.device != weight.device:
        raise ValueError(f"x is on {x.device} but the {owner} is on {weight.device}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(
            "x has non-finite entries: attention multiplies every key's value by its weight, "
            "so one inf or NaN (0·inf = NaN) would spread to tokens a convolution leaves alone"
        )
    return x


def _grid(grid_size: object) -> tuple[int, ...]:
    """Return the token grid as a tuple of d ints (an int means a square 2-D grid)."""
    if isinstance(grid_size, (tuple, list)):
        if len(grid_size) not in SPATIAL_DIMS:
            raise ValueError(
                f"grid_size={tuple(grid_size)!r}: 1, 2 or 3 spatial axes are supported"
            )
        return per_axis(grid_size, "grid_size", len(grid_size))
    return per_axis(grid_size, "grid_size", 2)


class RelPosMHSA(nn.Module):
    """Multi-head self-attention with a relative-position bias table and an optional sink key.

    Implements the layer of paper_notes (Conventions) on a `grid_size = (g_1, …, g_d)` token grid
    (an int means a square 2-D grid), tokens `(B, T, E)` to `(B, T, F)`. Build one from explicit
    weights (the constructions do) or with `initialised`.

    `check_finite` (default True) rejects inf/NaN tokens; a training loop on a GPU may switch it
    off to save the host–device sync it costs. `local_backend` picks the local path's kernel:
    "auto" (FlexAttention for CUDA inference in float32/bfloat16/float16 from
    `FLEX_MIN_TOKENS` tokens on, else the gather path), "gather" or "flex" (an error where it
    cannot run); `last_local_backend` says which one ran. b_K never receives a gradient: q·b_K
    is added to every logit of a row, the sink's included, and the softmax ignores such shifts.
    """

    check_finite: bool = True
    local_backend: str = "auto"  # or "gather", "flex"

    def __init__(
        self,
        grid_size: int | tuple[int, ...],
        *,
        w_q: torch.Tensor,  # (N, E, Dk)
        b_q: torch.Tensor,  # (N, Dk)
        w_k: torch.Tensor,  # (N, E, Dk)
        b_k: torch.Tensor,  # (N, Dk)
        w_v: torch.Tensor,  # (N, E, Dh)
        b_v: torch.Tensor,  # (N, Dh)
        w_o: torch.Tensor,  # (N, Dh, F)
        b_o: torch.Tensor,  # (F,)
        rel_bias: torch.Tensor,  # (N, 2g_1−1, …, 2g_d−1), key − query
        sink_bias: torch.Tensor | None = None,  # (N,)
        attention: str = "auto",
    ) -> None:
        super().__init__()
        self.grid_size = _grid(grid_size)
        table = tuple(2 * g - 1 for g in self.grid_size)
        grid_text = "×".join(map(str, self.grid_size))
        N, E, Dk = w_q.shape
        Dh, F_out = w_v.shape[2], w_o.shape[2]
        expected = {
            "w_q": (N, E, Dk), "b_q": (N, Dk), "w_k": (N, E, Dk), "b_k": (N, Dk),
            "w_v": (N, E, Dh), "b_v": (N, Dh), "w_o": (N, Dh, F_out), "b_o": (F_out,),
            "rel_bias": (N, *table),
        }  # fmt: skip
        given = dict(w_q=w_q, b_q=b_q, w_k=w_k, b_k=b_k, w_v=w_v, b_v=b_v, w_o=w_o, b_o=b_o,
                     rel_bias=rel_bias)  # fmt: skip
        if sink_bias is not None:
            expected["sink_bias"], given["sink_bias"] = (N,), sink_bias
        for name, tensor in given.items():
            if not isinstance(tensor, torch.Tensor) or not tensor.dtype.is_floating_point:
                raise TypeError(f"{name} must be a floating-point tensor, got {tensor!r:.60}")
            if tuple(tensor.shape) != expected[name]:
                raise ValueError(
                    f"{name} has shape {tuple(tensor.shape)}, expected {expected[name]} "
                    f"(N={N} heads, E={E}, Dk={Dk}, Dh={Dh}, F={F_out}, grid {grid_text})"
                )
            self.register_parameter(name, nn.Parameter(tensor))
        if sink_bias is None:
            self.register_parameter("sink_bias", None)
        self.attention = attention
        self._bias_cache: tuple[tuple, torch.Tensor] | None = None
        self._caches: dict[str, tuple[tuple, object]] = {}  # name → (version key, value)
        self.last_local_backend: str | None = None  # "gather" or "flex" after a local forward

    def __getstate__(self) -> dict:
        """Return the module's state without its caches (pickling; they rebuild on first use)."""
        return {**self.__dict__, "_caches": {}, "_bias_cache": None}

    @classmethod
    def initialised(
        cls,
        grid_size: int | tuple[int, ...],
        in_dim: int,
        out_dim: int,
        num_heads: int,
        head_dim: int,
        *,
        sink: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> RelPosMHSA:
        """Return a layer with random projections (uniform ±1/√fan_in) and a zero bias table."""
        grid = _grid(grid_size)

        def uniform(*shape: int, fan_in: int) -> torch.Tensor:
            u = torch.rand(shape, generator=generator, dtype=dtype)
            return ((2 * u - 1) / math.sqrt(fan_in)).to(device)

        zeros = dict(dtype=dtype, device=device)
        return cls(
            grid,
            w_q=uniform(num_heads, in_dim, head_dim, fan_in=in_dim),
            b_q=torch.zeros(num_heads, head_dim, **zeros),
            w_k=uniform(num_heads, in_dim, head_dim, fan_in=in_dim),
            b_k=torch.zeros(num_heads, head_dim, **zeros),
            w_v=uniform(num_heads, in_dim, head_dim, fan_in=in_dim),
            b_v=torch.zeros(num_heads, head_dim, **zeros),
            w_o=uniform(num_heads, head_dim, out_dim, fan_in=num_heads * head_dim),
            b_o=torch.zeros(out_dim, **zeros),
            rel_bias=torch.zeros(num_heads, *(2 * g - 1 for g in grid), **zeros),
            sink_bias=torch.zeros(num_heads, **zeros) if sink else None,
        )

    # -- shapes ------------------------------------------------------------------------------
    @property
    def num_heads(self) -> int:
        return self.w_q.shape[0]

    @property
    def head_dim(self) -> int:
        return self.w_v.shape[2]

    @property
    def in_dim(self) -> int:
        return self.w_q.shape[1]

    @property
    def out_dim(self) -> int:
        return self.w_o.shape[2]

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_size)

    @property
    def attention(self) -> str:
        return self._attention

    @attention.setter
    def attention(self, value: str) -> None:
        if value not in ATTENTION_PATHS:
            raise ValueError(f"attention={value!r}: expected one of {ATTENTION_PATHS}")
        self._attention = value

    def extra_repr(self) -> str:
        return (
            f"grid_size={self.grid_size}, in_dim={self.in_dim}, out_dim={self.out_dim}, "
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"sink={self.sink_bias is not None}, attention={self.attention!r}"
        )

    # -- the layer ---------------------------------------------------------------------------
    @property
    def num_keys(self) -> int:
        return self.num_tokens + (self.sink_bias is not None)

    def _cached(self, name: str, key: tuple, make: object) -> object:
        """Return the cached value `name` if its version key is `key`, else `make()`, cached."""
        hit = self._caches.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = make()  # type: ignore[operator]
        self._caches[name] = (key, value)
        return value

    def _dense_index(self, device: torch.device) -> torch.Tensor:
        """Return (T, S′) int32 indices into [table (L entries), sink?, 0] giving the dense bias.

        S′ rounds the S keys up to a multiple of 16: the padding columns read the trailing 0 and
        are sliced off, so each bias row starts 16-aligned (the fused kernels' fast path). Built
        on first use (T² entries: a local layer never needs it) and kept per device.
        """

        def make() -> torch.Tensor:
            T, S = self.num_tokens, self.num_keys
            L = self.rel_bias[0].numel()
            index = torch.full((T, S + (-S % 16)), L + S - T, dtype=torch.int32, device=device)
            index[:, :T] = relative_index(self.grid_size, device)
            if S > T:
                index[:, T] = L  # the sink's entry
            return index

        return self._cached("dense_index", (device,), make)  # type: ignore[return-value]

    def relative_bias(self) -> torch.Tensor:
        """Return the dense bias (N, T, S): `B^h[key − query]`, then the sink column if any.

        One differentiable gather from the table. Cached while no gradient is needed and the
        table is unchanged (keyed on its version), so inference does not rebuild N·T² entries.
        """
        tables = [self.rel_bias] + ([] if self.sink_bias is None else [self.sink_bias])
        cacheable = not (torch.is_grad_enabled() and any(t.requires_grad for t in tables))
        key = tuple((id(t), t._version, t.dtype, t.device) for t in tables)
        if cacheable and self._bias_cache is not None and self._bias_cache[0] == key:
            return self._bias_cache[1]
        N, T = self.num_heads, self.num_tokens
        entries = [t.reshape(N, -1) for t in tables] + [self.rel_bias.new_zeros(N, 1)]
        index = self._dense_index(self.rel_bias.device).flatten()
        flat = torch.cat(entries, dim=1).index_select(1, index)
        bias = flat.view(N, T, -1)[..., : self.num_keys]  # (N, T, S), rows 16-aligned
        if cacheable:
            self._bias_cache = (key, bias)
        return bias

    def _check_tokens(self, x: object) -> torch.Tensor:
        return check_tokens(
            x, self.num_tokens, self.in_dim, self.w_q, owner="layer", finite=self.check_finite
        )

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return q (B, N, T, Dk), k (B, N, S, Dk), v (B, N, S, Dh), the sink key last if any."""
        keys = F.pad(x, (0, 0, 0, 1)) if self.sink_bias is not None else x  # zero-content sink
        return (
            head_projections(x, self.w_q, self.b_q),
            head_projections(keys, self.w_k, self.b_k),
            head_projections(keys, self.w_v, self.b_v),
        )

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Return the attention weights A (B, N, T, S) of tokens `x`; the sink is column S − 1."""
        q, k, _ = self._qkv(self._check_tokens(x))
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + self.relative_bias()
        return torch.softmax(logits, dim=-1)

    # -- the local path (constructions.local_attention) ------------------------------------
    def _versions(self, *tensors: torch.Tensor | None) -> tuple:
        return tuple(None if t is None else (id(t), t._version, t.dtype, t.device) for t in tensors)

    @property
    def resolved_attention(self) -> str:
        """Return the path `forward` takes: "local", "sdpa" or "reference" ("auto" resolved).

        "auto" is "local" when Σ_h |U_h| ≤ T/4 (finite table entries) and the table has no NaN
        or +∞, else "sdpa"; decided once per table version.
        """
        if self.attention != "auto":
            return self.attention

        def decide() -> str:
            table = self.rel_bias.detach()
            if bool((torch.isnan(table) | (table == math.inf)).any()):
                return "sdpa"
            sparse = int(torch.isfinite(table).sum()) <= self.num_tokens / 4
            return "local" if sparse else "sdpa"

        return self._cached("auto", self._versions(self.rel_bias), decide)  # type: ignore[return-value]

    def local_plan(self) -> local.LocalPlan:
        """Return the table's `LocalPlan` (slots, keys per query and head), cached per version."""

        def make() -> local.LocalPlan:
            table = self.rel_bias.detach()
            if bool((torch.isnan(table) | (table == math.inf)).any()):
                raise ValueError(
                    "rel_bias has NaN or +inf entries: the local path scores the finite entries "
                    "and drops the −inf ones; use attention='sdpa' for such a table"
                )
            return local.local_plan(table, self.grid_size, self.sink_bias is not None)

        return self._cached("plan", self._versions(self.rel_bias), make)  # type: ignore[return-value]

    def _queries_are_zero(self) -> bool:
        """Return whether W_Q and b_Q are exactly 0 (every q·k is then 0), cached per version."""
        return self._cached(  # type: ignore[return-value]
            "zero_q", self._versions(self.w_q, self.b_q),
            lambda: not (bool(self.w_q.detach().any()) or bool(self.b_q.detach().any())),
        )  # fmt: skip

    def _local_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layer's output through the local path (gather, or FlexAttention on CUDA)."""
        plan = self.local_plan()
        grad = torch.is_grad_enabled()
        needs = lambda *ts: grad and any(t is not None and t.requires_grad for t in ts)  # noqa: E731
        content = not self._queries_are_zero() or needs(self.w_q, self.b_q, self.w_k, self.b_k)
        tables = self._versions(self.rel_bias, self.sink_bias)
        if self.local_backend not in ("auto", "gather", "flex"):
            raise ValueError(f"local_backend={self.local_backend!r}: expected auto, gather or flex")
        if self.local_backend != "gather" and not needs(x, *self.parameters()):
            forced = self.local_backend == "flex"
            reason = local.flex_unavailable(self, x, forced=forced)
            if reason is None:
                mods = self._cached("flex", tables, lambda: local.flex_mods(self, plan))
                out = local.flex_attention_local(self, x, mods, content=content)  # type: ignore[arg-type]
                if out is not None:
                    self.last_local_backend = "flex"
                    return out
                reason = local.flex_unavailable(self, x, forced=True)
            if forced:
                raise RuntimeError(f"local_backend='flex' cannot run: {reason}")
        weights = one_hot = None
        if not content and not needs(self.rel_bias, self.sink_bias):
            weights, one_hot = self._cached(  # type: ignore[misc]
                "weights",
                (*tables, *self._versions(self.w_q, self.b_q)),
                lambda: local.position_weights(self, plan),
            )
        self.last_local_backend = "gather"
        return local.gather_attention(
            self, x, plan, content=content, weights=weights, one_hot=one_hot
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return Σ_h A^h V^h W_O^h + b_O for tokens `x` (B, T, E): (B, T, F)."""
        x = self._check_tokens(x)
        path = self.resolved_attention
        if path == "local":
            return self._local_forward(x)
        q, k, v = self._qkv(x)
        bias = self.relative_bias().to(q.dtype)
        if path == "sdpa":
            # a 4-d mask keeps PyTorch's CPU backend on its fused kernel (3-d: materialised)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])  # (B, N, T, Dh)
        else:
            o = attention_reference(q, k, v, bias)
        return o.transpose(1, 2).flatten(2) @ self.w_o.flatten(0, 1) + self.b_o  # Σ_h o^h W_O^h
