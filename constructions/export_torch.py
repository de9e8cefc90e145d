"""Exporters to PyTorch's own attention: `torch.nn.MultiheadAttention` and plain SDPA calls.

Both take layers on any token grid (d ∈ {1, 2, 3} axes): the grid only enters through the dense
additive mask (Nt, S, S). How the weights are carried over is in `constructions.export`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from constructions.export import (
    ExportedAttention,
    HeadLayout,
    check_layer,
    check_layout,
    dense_mask,
    even_layout,
    export_config,
    make_target,
    needed_head_dim,
    padded_projections,
)
from constructions.mhsa import RelPosMHSA, attention_reference
from constructions.validate import positive_int

__all__ = [
    "SDPAAttention",
    "SDPAExport",
    "TorchMHAExport",
    "build_sdpa",
    "build_torch_mha",
    "export_to_sdpa",
    "export_to_torch_mha",
]


# -- nn.MultiheadAttention -------------------------------------------------------------------
class TorchMHAExport(ExportedAttention):
    """`nn.MultiheadAttention` (batch_first, bias) with a per-head float `attn_mask`.

    `fused=True` calls it with `need_weights=False` (its SDPA path), `fused=False` with
    `need_weights=True` (softmax written out, weights returned and dropped).
    """

    target = "torch_mha"

    def __init__(
        self, attn: nn.Module, config: dict[str, Any], attn_bias: torch.Tensor | None
    ) -> None:
        super().__init__(attn, config, attn_bias)
        self.need_weights = False

    @property
    def fused(self) -> bool:
        return not self.need_weights

    @fused.setter
    def fused(self, value: bool) -> None:
        self.need_weights = not value

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        B, S, _ = h.shape
        Nt = self.attn.num_heads
        mask = self.attn_bias.expand(B, Nt, S, S).reshape(B * Nt, S, S)  # MHA's (B·Nt, L, S) layout
        return self.attn(h, h, h, attn_mask=mask, need_weights=self.need_weights)[0]


def export_to_torch_mha(
    layer: RelPosMHSA, *, embed_dim: int | None = None, num_heads: int | None = None
) -> TorchMHAExport:
    """Return the layer as an `nn.MultiheadAttention` (`.attn`) plus its mask.

    `nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)` has one width for input,
    output and the Nt·Dt heads, so tokens are zero-padded to `embed_dim` (default: the smallest
    multiple of the head count that holds max(E, F) and head dim max(Dk, Dh)). The sink is the
    first token. Raises ValueError if `num_heads` < the layer's heads or `embed_dim` cannot hold
    them, naming what to change.

    >>> from constructions import pixel_mhsa_from_conv
    >>> exported = export_to_torch_mha(pixel_mhsa_from_conv(nn.Conv2d(2, 3, 3, padding="same"), 4))
    >>> exported.attn.embed_dim, exported.attn.num_heads
    (18, 9)
    """
    layer = check_layer(layer)
    layout = even_layout(layer, embed_dim, num_heads, target="torch.nn.MultiheadAttention")
    w = padded_projections(layer, layout)
    module = {
        "embed_dim": layout.in_dim,
        "num_heads": layout.num_heads,
        "bias": True,
        "batch_first": True,
    }
    config = export_config(
        "torch_mha", layer, layout, module, layer.sink_bias is not None, mask=True
    )
    attn = make_target(config, device=layer.w_q.device, dtype=layer.w_q.dtype)
    with torch.no_grad():
        attn.in_proj_weight.copy_(w["qkv_weight"])
        attn.in_proj_bias.copy_(w["qkv_bias"])
        attn.out_proj.weight.copy_(w["proj_weight"])
        attn.out_proj.bias.copy_(w["proj_bias"])
    return TorchMHAExport(attn, config, dense_mask(layer, layout.num_heads))


# -- plain F.scaled_dot_product_attention -----------------------------------------------------
class SDPAAttention(nn.Module):
    """Multi-head attention as one `F.scaled_dot_product_attention` call between two Linear maps.

    `qkv = Linear(dim, 3·N·Dh)` (rows ordered q|k|v, head, dim), then per head
    `softmax(q kᵀ/√Dh + attn_mask) v` (fused: SDPA; `fused=False`: written out), then
    `proj = Linear(N·Dh, dim_out)`. Tokens (B, S, dim) → (B, S, dim_out).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int,
        dim_out: int,
        *,
        fused: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = positive_int(num_heads, "num_heads")
        self.head_dim = positive_int(head_dim, "head_dim")
        self.fused = fused
        dd = {"device": device, "dtype": dtype}
        self.qkv = nn.Linear(positive_int(dim, "dim"), 3 * num_heads * head_dim, **dd)
        self.proj = nn.Linear(num_heads * head_dim, positive_int(dim_out, "dim_out"), **dd)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the attention output (B, S, dim_out) of tokens `x` (B, S, dim)."""
        B, S, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, S, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.fused:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, N, S, Dh)
        else:
            o = attention_reference(q, k, v, 0.0 if attn_mask is None else attn_mask)
        return self.proj(o.transpose(1, 2).reshape(B, S, self.num_heads * self.head_dim))


class SDPAExport(ExportedAttention):
    """`SDPAAttention` with the layer's mask; `fused` is `SDPAAttention.fused`."""

    target = "sdpa"

    @property
    def fused(self) -> bool:
        return self.attn.fused

    @fused.setter
    def fused(self, value: bool) -> None:
        self.attn.fused = bool(value)

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        return self.attn(h, self.attn_bias)


def export_to_sdpa(
    layer: RelPosMHSA, *, num_heads: int | None = None, head_dim: int | None = None
) -> SDPAExport:
    """Return the layer as plain `F.scaled_dot_product_attention` calls (`SDPAAttention`).

    No width padding is needed (dim = E, dim_out = F); heads are padded to `head_dim`
    (default max(Dk, Dh)) and `num_heads` (default the layer's).
    """
    layer = check_layer(layer)
    Nt = layer.num_heads if num_heads is None else positive_int(num_heads, "num_heads")
    Dt = needed_head_dim(layer) if head_dim is None else positive_int(head_dim, "head_dim")
    layout = check_layout(layer, HeadLayout(Nt, Dt, layer.in_dim, layer.out_dim),
                          target="SDPAAttention")  # fmt: skip
    w = padded_projections(layer, layout)
    module = {"dim": layer.in_dim, "num_heads": Nt, "head_dim": Dt, "dim_out": layer.out_dim}
    config = export_config("sdpa", layer, layout, module, layer.sink_bias is not None, mask=True)
    attn = make_target(config, device=layer.w_q.device, dtype=layer.w_q.dtype)
    with torch.no_grad():
        attn.qkv.weight.copy_(w["qkv_weight"])
        attn.qkv.bias.copy_(w["qkv_bias"])
        attn.proj.weight.copy_(w["proj_weight"])
        attn.proj.bias.copy_(w["proj_bias"])
    return SDPAExport(attn, config, dense_mask(layer, Nt))


def build_torch_mha(module: dict[str, Any]) -> nn.Module:
    """Return `nn.MultiheadAttention(**module)` (the `torch_mha` target of `make_target`)."""
    return nn.MultiheadAttention(**module)


def build_sdpa(module: dict[str, Any]) -> nn.Module:
    """Return `SDPAAttention(**module)` (the `sdpa` target of `make_target`)."""
    return SDPAAttention(**module)
