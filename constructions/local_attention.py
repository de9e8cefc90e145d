"""Local evaluation of `RelPosMHSA`: score only the keys a head's bias table can reach.

paper_notes, Local attention. Write U_h for the offsets u = key − query at which head h's table
B^h is finite, and for a query q let K_h(q) = {q + u : u ∈ U_h, q + u inside the grid}, plus the
sink key when the layer has one. Every other key's logit is −∞, so its weight is exactly 0 and

    A^h_qs = exp(ℓ^h_qs) / Σ_{s' ∈ K_h(q)} exp(ℓ^h_qs')  for s ∈ K_h(q),  0 otherwise,
    o^h_q  = Σ_{s ∈ K_h(q)} A^h_qs v^h_s,   ℓ^h_qs = q^h_q·k^h_s/√Dk + B^h[s − q],

the dense layer's softmax, evaluated on |K_h(q)| ≤ |U_h| + 1 keys: Σ_h |U_h|·T·Dk for the logits
instead of N·T². A query whose K_h(q) is empty gets o^h_q = 0 (what PyTorch's SDPA returns for an
all −∞ row; the written-out softmax gives NaN there).

Slots (`local_plan`). The finite entries of each head become slots (u, wrap flags), padded to
m = max_h |slots_h| with unused slots. Two entries u and u − g_a·e_a with the same bias merge
into one slot whose key wraps modulo g_a on axis a: for every query exactly one of them points
inside the grid (a circular convolution's table holds such pairs on every axis, so its layers
need m = 1 slot instead of 2^d). Each slot becomes, per (query, head), a key token (or T, a zero
row, where it has none) and the table entry of the true offset key − query, so gradients reach
the entry the dense layer would use. The sink is one more slot whose key is that zero row.

Two evaluations: `gather_attention` (any device and dtype, autograd) gathers the slot tokens and
applies each head's maps to them; `flex_attention_local` (CUDA, float32/bfloat16/float16,
inference) runs PyTorch's FlexAttention with the table as `score_mod`, the finite supports as
`mask_mod` and a block mask built from the slots (no T×T mask is ever formed).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from constructions.heads import HeadMaps, head_projections, sink_column, table_with_sink

__all__ = ["FLEX_DTYPES", "FLEX_MAX_TILES", "FLEX_MIN_TOKENS", "LocalPlan", "canonical_slots",
           "flex_attention_local", "flex_block_mask", "flex_mods", "flex_unavailable",
           "gather_attention", "local_plan",
           "masked_softmax", "one_hot_index", "position_weights", "slot_weights"]  # fmt: skip

FLEX_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
FLEX_MIN_TOKENS = 4096  # below: the gather path, with no compile per shape (seconds each)
FLEX_MAX_TILES = 1 << 28  # N·⌈T/128⌉·⌈S/128⌉ int32 block lists: 1 GiB (e.g. 25 heads at 640²)
_HALF = (torch.float16, torch.bfloat16)  # softmax and tables in float32 for these
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalPlan:
    """The key token of every (slot, query, head) of a bias table: what the local paths score.
    m + 1 slots, the last one the sink."""

    grid: tuple[int, ...]
    finite_entries: int  # Σ_h |U_h|, before alias pairs merge
    sink: bool
    key: torch.Tensor  # (m+1, T, N) int32: the key token; T (a zero token) where there is none
    values: torch.Tensor  # (N, m): each slot's bias (−∞ for unused slots), as planned

    @property
    def slots(self) -> int:
        """Return m, the table slots per head (the sink not counted)."""
        return self.key.shape[0] - 1

    @property
    def valid(self) -> torch.Tensor:
        """Return (m+1, T, N) bool: whether each slot has a key for the (query, head)."""
        valid = self.key < self.key.shape[1]
        valid[-1] = self.sink
        return valid

    def table_index(self) -> torch.Tensor:
        """Return (m+1, T, N) int64 indices into [table (L entries), sink]: the entry of the true
        offset key − query (after any wrap), L for the sink, 0 where there is no key."""
        T = self.key.shape[1]
        token = torch.arange(T, device=self.key.device)[:, None]  # (T, 1)
        key = self.key[:-1].long()
        index = torch.zeros_like(key)
        for g, stride in zip(self.grid, _row_major_strides(self.grid), strict=True):
            index = index * (2 * g - 1) + (key // stride % g - token // stride % g + g - 1)
        sink = torch.full_like(self.key[-1:], math.prod(2 * g - 1 for g in self.grid)).long()
        return torch.cat([torch.where(key < T, index, 0), sink])


def _row_major_strides(sizes: tuple[int, ...]) -> list[int]:
    return [math.prod(sizes[a + 1 :]) for a in range(len(sizes))]


def canonical_slots(rel_bias: torch.Tensor, grid: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Return (offsets (N, m, d), wraps (N, m, d), values (N, m), Σ_h |U_h|) of a bias table;
    unused slots have value −∞.

    Slot (u, W) of head h stands for the entries u − Σ_{a ∈ S} g_a·e_a, S ⊆ W, all of one value;
    entries at u and u − g_a·e_a merge only when their values are bit-equal (module docstring).
    """
    table = rel_bias.detach()
    N, d = table.shape[0], len(grid)
    finite = torch.isfinite(table)
    head, *coords = finite.nonzero(as_tuple=True)
    count = head.numel()
    offsets = torch.stack([c - (g - 1) for c, g in zip(coords, grid, strict=True)], 1)
    values = table[finite]
    bits = (values.double() + 0.0).view(torch.int64)  # + 0.0 turns −0.0 into 0.0
    wraps = torch.zeros_like(offsets, dtype=torch.bool)
    for a, g in enumerate(grid):
        if g == 1 or offsets.shape[0] == 0:
            continue
        alias = offsets.clone()
        alias[:, a] %= g  # u and u − g·e_a share this row; nothing else does
        rows = torch.cat([head[:, None], alias, wraps.long(), bits[:, None]], 1)
        _, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
        paired = counts[inverse] == 2
        keep = ~paired | (offsets[:, a] > 0)
        wraps[:, a] |= paired
        head, offsets, wraps, bits = head[keep], offsets[keep], wraps[keep], bits[keep]
        values = values[keep]
    order = torch.argsort(head, stable=True)
    head, offsets, wraps, values = head[order], offsets[order], wraps[order], values[order]
    per_head = torch.bincount(head, minlength=N)
    m = int(per_head.max()) if N else 0
    rank = torch.arange(head.numel(), device=head.device) - (per_head.cumsum(0) - per_head)[head]
    slot_offsets, slot_wraps = offsets.new_zeros(N, m, d), wraps.new_zeros(N, m, d)
    slot_values = values.new_full((N, m), -math.inf)
    slot_offsets[head, rank], slot_wraps[head, rank] = offsets, wraps
    slot_values[head, rank] = values
    return slot_offsets, slot_wraps, slot_values, count


def local_plan(rel_bias: torch.Tensor, grid: tuple[int, ...], sink: bool) -> LocalPlan:
    """Return the `LocalPlan` of a table (N, 2g_1−1, …, 2g_d−1): loops over axes, not tokens."""
    offsets, wraps, values, count = canonical_slots(rel_bias, grid)
    N, m, _ = offsets.shape
    device = rel_bias.device
    T = math.prod(grid)
    token = torch.arange(T, device=device, dtype=torch.int32)
    offsets = offsets.int()
    inside = torch.isfinite(values).t()[:, None, :].expand(m, T, N)  # (m, T, N): used slots
    key = torch.zeros((m, T, N), dtype=torch.int32, device=device)
    for a, (g, stride) in enumerate(zip(grid, _row_major_strides(grid), strict=True)):
        q = (token // stride % g)[None, :, None]  # (1, T, 1) query coordinate on axis a
        k = q + offsets[:, :, a].t()[:, None, :]  # (m, T, N)
        k = torch.where(wraps[:, :, a].t()[:, None, :], k % g, k)
        inside = inside & (k >= 0) & (k < g)
        key = key + k * stride
    key = torch.where(inside, key, T)
    key = torch.cat([key, key.new_full((1, T, N), T)])  # the sink: the zero token
    return LocalPlan(grid, count, sink, key, values)


def masked_softmax(logits: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Return softmax(logits) along `dim`, 0 on slices that are all −∞ (SDPA's convention).

    Gradients stay finite: −∞ logits get exactly 0, and an all −∞ slice gives 0, not NaN.
    """
    top = logits.detach().amax(dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(logits - top)
    total = e.sum(dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def slot_weights(layer: HeadMaps, plan: LocalPlan,
                 content: torch.Tensor | None = None) -> torch.Tensor:
    """Return the attention weights (m+1, B or 1, T, N) of every slot, the sink last.

    `content` (m+1, B, T, N) holds q·k/√Dk at each slot's key (None when W_Q = b_Q = 0).
    """
    tracked = (layer.rel_bias, layer.sink_bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tracked):
        table = table_with_sink(layer)  # (N, L+1): the entry each (slot, query, head) uses
        index = plan.table_index()
        bias = table.t().gather(0, index.view(-1, table.shape[0])).view(index.shape)[:, None]
    else:  # the aliases of a slot share its value: (m+1, 1, 1, N)
        bias = torch.cat([plan.values, sink_column(layer)], 1).t()[:, None, None, :]
    logits = bias if content is None else content + bias
    logits = logits.float() if logits.dtype in _HALF else logits
    masked = torch.where(plan.valid[:, None], logits, torch.full_like(logits, -math.inf))
    return masked_softmax(masked, 0).to(layer.rel_bias.dtype)


def position_weights(layer: HeadMaps, plan: LocalPlan) -> tuple[torch.Tensor, object]:
    """Return the position-only slot weights (m+1, 1, T, N) and their one-hot keys (or None).

    With one-hot keys only Σ_s A_qs is kept, as a (1, 1, T, N) stack: all `gather_attention`
    then reads from the weights.
    """
    with torch.no_grad():
        weights = slot_weights(layer, plan)
    one_hot = one_hot_index(weights, plan)
    return (weights if one_hot is None else weights.sum(0, keepdim=True)), one_hot


def one_hot_index(weights: torch.Tensor, plan: LocalPlan) -> torch.Tensor | None:
    """Return the key token (T, N) each (query, head) reads when every weight is 0 or 1 and
    they sum to at most 1 (constructed layers), else None; T (the zero token) where the sink or
    no key takes the weight (the value bias enters separately, in `gather_attention`)."""
    w = weights[:, 0]  # (m+1, T, N)
    if not bool(((w == 0) | (w == 1)).all()) or bool((w.sum(0) > 1).any()):
        return None
    T = w.shape[1]
    chosen = (w[:-1].int() * plan.key[:-1]).sum(0, dtype=torch.int32)  # (T, N)
    return torch.where(w[:-1].sum(0) > 0, chosen, T)


_CHUNK_ELEMENTS = 1 << 22  # no-grad chunk buffers of 16 MB in float32, allocated once per call


def _mixed_tokens(source: torch.Tensor, plan: LocalPlan, weights: torch.Tensor,
                  one_hot: torch.Tensor | None, per_head: bool) -> torch.Tensor:
    """Return Σ_j A_j s_{key_j} per head: (B, N, T, D), from rows `source` (B, T+1, D) shared by
    the heads (tokens) or (B, (T+1)·N, D) one per (token, head) (values). The sink's row is
    zero, so its weight adds nothing here."""
    B, T, N = source.shape[0], *plan.key.shape[1:]
    heads = torch.arange(N, device=source.device)

    def rows(key: torch.Tensor) -> torch.Tensor:  # keys (T, N) → rows (B, N, T, D), head-major
        index = (key * N + heads if per_head else key).t().flatten()
        return source.index_select(1, index).view(B, N, T, -1)

    if one_hot is not None:
        return rows(one_hot)
    mixed = source.new_zeros(B, N, T, source.shape[-1])
    for j in range(plan.slots):
        mixed = mixed + rows(plan.key[j]) * weights[j].transpose(1, 2)[..., None]
    return mixed


def _chunked(layer: HeadMaps, x_ext: torch.Tensor, plan: LocalPlan, weights: torch.Tensor,
             one_hot: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """Return o W_O (B, T, F) of `gather_attention` without autograd: per batch item, queries in
    chunks whose buffers are reused (`out=`), so no (T, N·E) tensor is formed or page-faulted."""
    B, T, E = x_ext.shape[0], x_ext.shape[1] - 1, x_ext.shape[2]
    N, Dh = layer.num_heads, layer.head_dim
    chunk = max(1, min(T, _CHUNK_ELEMENTS // (N * max(E, Dh))))
    # separate buffers, each under glibc's mmap threshold, so later calls reuse the heap's pages
    rows, y, o = (x_ext.new_empty(N * chunk * D) for D in (E, Dh, Dh))
    scratch = rows if one_hot is not None else x_ext.new_empty(N * chunk * E)
    w_o = layer.w_o.flatten(0, 1)  # (N·Dh, F)
    out = x_ext.new_empty(B, T, layer.out_dim)
    for b in range(B):
        xb, wb = x_ext[b], weights[:, min(b, weights.shape[1] - 1)]  # (T+1, E), (m+1, T, N)
        for lo in range(0, T, chunk):
            hi = min(T, lo + chunk)
            c = hi - lo  # queries lo..hi
            mixed = rows[: N * c * E].view(N * c, E)  # head-major rows (h, q)
            if one_hot is not None:
                torch.index_select(xb, 0, one_hot[lo:hi].t().flatten(), out=mixed)
            else:
                mixed.zero_()
                gathered = scratch[: N * c * E].view(N * c, E)
                for j in range(plan.slots):
                    torch.index_select(xb, 0, plan.key[j, lo:hi].t().flatten(), out=gathered)
                    mixed.addcmul_(gathered, wb[j, lo:hi].t().reshape(N * c, 1))
            yv = y[: N * c * Dh].view(N, c, Dh)
            torch.bmm(mixed.view(N, c, E), layer.w_v, out=yv)  # o^h = (Σ A x) W_V^h
            ov = o[: N * c * Dh].view(c, N, Dh)
            ov.copy_(yv.transpose(0, 1))
            torch.mm(ov.view(c, N * Dh), w_o, out=out[b, lo:hi])
    return out


def _content_scores(layer: HeadMaps, x: torch.Tensor, x_ext: torch.Tensor,
                    plan: LocalPlan) -> torch.Tensor:  # fmt: skip
    """Return q·k/√Dk at every slot's key: (m+1, B, T, N); the sink's key is b_K (row T)."""
    (B, T, _), N = x.shape, layer.num_heads
    w_q, w_k = (w.transpose(0, 1).flatten(1) for w in (layer.w_q, layer.w_k))  # (E, N·Dk)
    q = (x @ w_q + layer.b_q.flatten()).view(B, T, N, -1)
    k = (x_ext @ w_k + layer.b_k.flatten()).view(B, (T + 1) * N, -1)  # one row per (token, h)
    heads = torch.arange(N, device=x.device)
    scale = 1 / math.sqrt(q.shape[-1])
    return torch.stack([
        (q * k.index_select(1, (key * N + heads).flatten()).view_as(q)).sum(-1) * scale
        for key in plan.key
    ])  # fmt: skip


def gather_attention(layer: HeadMaps, x: torch.Tensor, plan: LocalPlan, *, content: bool,
                     weights: torch.Tensor | None = None,
                     one_hot: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Return the layer's output (B, T, F) on tokens x (B, T, E), scoring only the plan's keys.

    `content=False` skips q·k (exact when W_Q = b_Q = 0); `weights` / `one_hot` are cached
    position-only weights and their one-hot keys (see `RelPosMHSA`). The value bias enters as
    Σ_s A_qs (x_s W_V + b_V) = (Σ_s A_qs x_s W_V) + (Σ_s A_qs) b_V; the mixing runs on the
    narrower of tokens (then W_V per head) and values. Without gradients the queries run in
    chunks (`_chunked`), so no (T, N·Dh) tensor is formed.
    """
    B, T, _ = x.shape
    N, Dh = layer.num_heads, layer.head_dim
    x_ext = F.pad(x, (0, 0, 0, 1))  # (B, T+1, E): row T is the zero-content sink token
    if weights is None:
        scores = _content_scores(layer, x, x_ext, plan) if content else None
        weights = slot_weights(layer, plan, scores)
    total = weights.sum(0)  # (B or 1, T, N): 1, or 0 where no key was scored
    value_bias = torch.einsum("nd,ndf->nf", layer.b_v, layer.w_o)  # (N, F): b_V^h W_O^h
    tracked = (x, *layer.parameters())
    if torch.is_grad_enabled() and any(t.requires_grad for t in tracked):
        if Dh < x.shape[2]:  # mix the narrower values: v0 = [x; 0] W_V, no bias
            v0 = (x_ext @ layer.w_v.transpose(0, 1).flatten(1)).view(B, (T + 1) * N, Dh)
            y = _mixed_tokens(v0, plan, weights, one_hot, per_head=True)  # (B, N, T, Dh)
        else:  # mix the tokens, then apply each head's W_V
            y = _mixed_tokens(x_ext, plan, weights, one_hot, per_head=False) @ layer.w_v
        o = y.transpose(1, 2).reshape(B, T, N * Dh) @ layer.w_o.flatten(0, 1)  # Σ_h o^h W_O^h
        return o + total @ value_bias + layer.b_o
    out = _chunked(layer, x_ext, plan, weights, one_hot)
    return out.add_(total @ value_bias).add_(layer.b_o)


# -- FlexAttention (CUDA) ---------------------------------------------------------------------
def _offset_index_fn(grid: tuple[int, ...]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return index(q, kv): the flat table index of kv − q (row-major tokens), or L for kv ≥ T
    (the sink). Plain integer arithmetic on the indices, so FlexAttention can compile it."""
    axes = tuple(zip(grid, _row_major_strides(grid), strict=True))
    T, L = math.prod(grid), math.prod(2 * g - 1 for g in grid)

    def index(q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        flat = torch.zeros_like(q_idx)
        for g, stride in axes:
            qa, ka = q_idx // stride % g, kv_idx // stride % g
            flat = flat * (2 * g - 1) + (ka - qa + g - 1)
        return torch.where(kv_idx >= T, torch.full_like(flat, L), flat)

    return index


def flex_block_mask(plan: LocalPlan, mask_mod: Callable[..., torch.Tensor],
                    block: int = 128) -> object:  # fmt: skip
    """Return the FlexAttention `BlockMask` listing, per head and query block, the key blocks
    that hold a key of some slot: from the plan's N·(m+1)·T keys, never from a T×S mask. Its
    lists are padded to ⌈S/block⌉ entries (FlexAttention's layout: N·⌈T/block⌉·⌈S/block⌉ int32);
    forward only (no query-side lists)."""
    from torch.nn.attention.flex_attention import BlockMask

    valid, key = plan.valid, plan.key  # (m+1, T, N); the sink's key is T
    _, T, N = valid.shape
    S = T + int(plan.sink)
    Qb, Kb = -(-T // block), -(-S // block)
    qb = (torch.arange(T, device=key.device) // block)[None, :, None]
    h = torch.arange(N, device=key.device)
    tiles = ((h * Qb + qb) * Kb + key // block)[valid].unique()  # sorted (head, q block, k block)
    row, col = tiles // Kb, (tiles % Kb).int()
    counts = torch.bincount(row, minlength=N * Qb)
    rank = torch.arange(tiles.numel(), device=key.device) - (counts.cumsum(0) - counts)[row]
    kv_indices = torch.zeros(N * Qb, Kb, dtype=torch.int32, device=key.device)  # padded rows
    kv_indices[row, rank] = col
    return BlockMask.from_kv_blocks(
        counts.int().view(1, N, Qb), kv_indices.view(1, N, Qb, -1), BLOCK_SIZE=block,
        mask_mod=mask_mod, seq_lengths=(T, S), compute_q_blocks=False,
    )  # fmt: skip


_FLEX: dict[str, object] = {}  # "compiled": the compiled flex_attention, "failed": why not


def flex_unavailable(layer: HeadMaps, x: torch.Tensor, *, forced: bool = False) -> str | None:
    """Return why FlexAttention should not run the layer on `x`, or None when it should.

    Besides device and dtype: head dims padded beyond 256 exceed its kernels, a block table
    (`flex_block_mask`) beyond `FLEX_MAX_TILES` entries costs more memory than the gather path,
    and below `FLEX_MIN_TOKENS` tokens (unless `forced`) compiling costs more than it saves.
    """
    if x.device.type != "cuda":
        return f"FlexAttention runs on CUDA only here (x is on {x.device.type})"
    if x.dtype not in FLEX_DTYPES:
        return f"FlexAttention does not take {x.dtype}"
    if max(layer.w_q.shape[2], layer.head_dim) > 256:
        return "head dims beyond 256 exceed FlexAttention's kernels"
    T, N = layer.num_tokens, layer.num_heads
    tiles = N * -(-T // 128) * -(-layer.num_keys // 128)
    if tiles > FLEX_MAX_TILES:
        return f"its block table of {tiles} entries exceeds FLEX_MAX_TILES = {FLEX_MAX_TILES}"
    if not forced and T < FLEX_MIN_TOKENS:
        return f"{T} tokens < FLEX_MIN_TOKENS = {FLEX_MIN_TOKENS}"
    return str(_FLEX["failed"]) if "failed" in _FLEX else None


def flex_mods(layer: HeadMaps, plan: LocalPlan) -> tuple[Callable[..., torch.Tensor], object]:
    """Return (score_mod, block_mask) of the layer's table for `flex_attention_local`.

    score_mod(s, b, h, q, kv) = s + B^h[kv − q] (the sink's bias for kv = T), from the table with
    −∞ entries set to 0; the block mask's mask_mod(b, h, q, kv) says whether that entry is finite.
    """
    with torch.no_grad():
        table = table_with_sink(layer)  # (N, L+1)
        finite = torch.isfinite(table)
        table = torch.where(finite, table, torch.zeros_like(table))
        table = table.float() if table.dtype in _HALF else table  # the sink's −10⁴ kept exactly
    index = _offset_index_fn(layer.grid_size)

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor,
                 kv: torch.Tensor) -> torch.Tensor:
        return finite[h, index(q, kv)]

    def score_mod(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor,
                  kv: torch.Tensor) -> torch.Tensor:
        return score + table[h, index(q, kv)].to(score.dtype)

    return score_mod, flex_block_mask(plan, mask_mod)


def flex_attention_local(
    layer: HeadMaps, x: torch.Tensor, mods: tuple, *, content: bool, compiled: bool = True
) -> torch.Tensor | None:
    """Return the layer's output (B, T, F) through compiled FlexAttention, or None (with the
    reason logged) when it fails to compile or run. `mods` = (score_mod, block_mask);
    `compiled=False` runs FlexAttention's eager reference (CPU float32 checks)."""
    from torch.nn.attention.flex_attention import flex_attention

    (score_mod, block_mask), (B, T, _) = mods, x.shape
    N, Dk = layer.num_heads, layer.w_q.shape[2]
    keys = F.pad(x, (0, 0, 0, 1)) if layer.sink_bias is not None else x
    v = head_projections(keys, layer.w_v, layer.b_v)  # (B, N, S, Dh)
    if content:
        q = head_projections(x, layer.w_q, layer.b_q)  # (B, N, T, Dk)
        k = head_projections(keys, layer.w_k, layer.b_k)  # (B, N, S, Dk)
    else:  # W_Q = b_Q = 0: every q·k is 0
        q, k = x.new_zeros(B, N, T, 16), x.new_zeros(B, N, keys.shape[1], 16)
    # zero columns up to a power of two ≥ 16 change no q·k and no A·v
    pad = lambda t: F.pad(t, (0, max(16, 1 << (t.shape[-1] - 1).bit_length()) - t.shape[-1]))  # noqa: E731
    if compiled and "compiled" not in _FLEX:
        _FLEX["compiled"] = torch.compile(flex_attention)  # dynamic shapes after a recompile
    kernel = _FLEX["compiled"] if compiled else flex_attention
    try:
        with warnings.catch_warnings():  # inductor's notice about TF32 matmuls
            warnings.filterwarnings("ignore", message=".*TensorFloat32 tensor cores")
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            o = kernel(  # type: ignore[operator]
                pad(q), pad(k), pad(v), score_mod=score_mod,
                block_mask=block_mask, scale=1 / math.sqrt(Dk),
            )[..., : v.shape[-1]]  # fmt: skip
    except Exception as error:  # compile or kernel failure: use the gather path
        if not compiled:
            raise
        _FLEX["failed"] = f"FlexAttention failed ({type(error).__name__}: {error})"[:500]
        _LOG.warning("%s; using the gather path", _FLEX["failed"])
        return None
    return o.transpose(1, 2).flatten(2) @ layer.w_o.flatten(0, 1) + layer.b_o
