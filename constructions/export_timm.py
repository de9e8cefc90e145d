"""Exporters to timm's attention modules (optional extra `timm`; timm is imported only here).

Targets (the weights are laid out as in `constructions.export`; read its docstring first):

* `timm_attention` — `timm.layers.Attention(dim, num_heads, attn_head_dim, dim_out,
  qkv_bias=True)`, the attention of timm's ViT, called with the additive per-head `attn_mask`.
* `timm_relpos` — `RelPosAttention` of `timm.models.vision_transformer_relpos` with a
  `RelPosBias(window_size=grid, prefix_tokens=1 if sink else 0)` table: the attention of
  `VisionTransformerRelPos(rel_pos_type='bias', class_token=<sink>)`.
* `timm_beit` — `timm.models.beit.Attention(dim, num_heads, qkv_bias=True, window_size=grid)`:
  BEiT's attention, whose table always has a [cls] slot.

**Sign convention.** This project's tables index **key − query**; timm's
(`gen_relative_position_index`) index **query − key**: entry
`(qy − ky + gh − 1)·(2gw − 1) + (qx − kx + gw − 1)` of `relative_position_bias_table` (shape
`((2gh−1)(2gw−1) + 3·cls, heads)`). So timm's table is ours flipped on both axes, transposed to
(offsets, heads). The three [cls] rows after the grid offsets are, in timm's order, cls-query →
token-keys, token-query → cls-key, cls → cls; the sink is the cls token, so they hold 0,
`sink_bias[h]` and 0 (the layer without a sink: 0, −∞, 0 — the token takes no weight, exactly).

**Limits.** The window is the layer's whole token grid (any gh×gw, square or not); one table per
layer (no `shared_rel_pos`); `RelPosMlp` (VisionTransformerRelPos's default `rel_pos_type='mlp'`)
cannot hold an arbitrary table and is not a target. BEiT has no key bias (`k_bias` is a zero
buffer): the layer's b_K is dropped, which is exact because it adds the same q·b_K to every
logit of a row (sink included). timm's RelPos/BEiT modules split `dim` evenly into heads and map
`dim` to `dim`, so tokens are zero-padded to `dim` = Nt·Dt (see `export.even_layout`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from timm.layers import Attention, RelPosBias
from timm.models.beit import Attention as BeitAttention
from timm.models.vision_transformer_relpos import RelPosAttention
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
from constructions.mhsa import RelPosMHSA
from constructions.validate import positive_int

__all__ = [
    "TimmAttentionExport",
    "TimmTableExport",
    "export_to_timm_attention",
    "export_to_timm_beit",
    "export_to_timm_relpos",
    "timm_table",
]


class _TimmExport(ExportedAttention):
    """An export whose `fused` switch is the timm module's own `fused_attn` flag."""

    @property
    def fused(self) -> bool:
        return bool(self.attn.fused_attn)

    @fused.setter
    def fused(self, value: bool) -> None:
        self.attn.fused_attn = bool(value)


# -- timm.layers.Attention with an attn_mask -------------------------------------------------
class TimmAttentionExport(_TimmExport):
    """`timm.layers.Attention` called with the layer's additive mask; `fused` is `fused_attn`."""

    target = "timm_attention"

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        return self.attn(h, attn_mask=self.attn_bias[None])  # (1, Nt, S, S)


def build_timm_attention(module: dict[str, Any]) -> nn.Module:
    """Return `timm.layers.Attention(**module)`."""
    return Attention(**module)


def export_to_timm_attention(
    layer: RelPosMHSA,
    *,
    dim: int | None = None,
    num_heads: int | None = None,
    head_dim: int | None = None,
    dim_out: int | None = None,
) -> TimmAttentionExport:
    """Return the layer as a `timm.layers.Attention` (`.attn`) plus its `attn_mask`.

    Defaults need no padding: dim = E, dim_out = F, the layer's heads, head dim max(Dk, Dh). For a
    ViT-shaped target pass e.g. `dim=768, num_heads=12, head_dim=64, dim_out=768`.
    """
    layer = check_layer(layer)
    Nt = layer.num_heads if num_heads is None else positive_int(num_heads, "num_heads")
    Dt = needed_head_dim(layer) if head_dim is None else positive_int(head_dim, "head_dim")
    Et = layer.in_dim if dim is None else positive_int(dim, "dim")
    Ft = layer.out_dim if dim_out is None else positive_int(dim_out, "dim_out")
    layout = check_layout(
        layer,
        HeadLayout(Nt, Dt, Et, Ft),
        target="timm.layers.Attention",
        dim_name="dim",
        out_name="dim_out",
    )
    module = {"dim": Et, "num_heads": Nt, "attn_head_dim": Dt, "dim_out": Ft, "qkv_bias": True}
    config = export_config(
        "timm_attention", layer, layout, module, layer.sink_bias is not None, mask=True
    )
    attn = make_target(config, device=layer.w_q.device, dtype=layer.w_q.dtype)
    w = padded_projections(layer, layout)
    with torch.no_grad():
        attn.qkv.weight.copy_(w["qkv_weight"])
        attn.qkv.bias.copy_(w["qkv_bias"])
        attn.proj.weight.copy_(w["proj_weight"])
        attn.proj.bias.copy_(w["proj_bias"])
    return TimmAttentionExport(attn, config, dense_mask(layer, Nt))


# -- relative-position bias tables -----------------------------------------------------------
def timm_table(layer: RelPosMHSA, num_heads: int, cls_slot: bool) -> torch.Tensor:
    """Return timm's `relative_position_bias_table` ((2gh−1)(2gw−1) [+ 3], Nt) of the layer.

    Ours is indexed key − query, timm's query − key: flip both offset axes, flatten row-major,
    put heads last; idle heads get 0. With `cls_slot`, append timm's three [cls] rows
    (cls → tokens: 0, tokens → cls: the sink bias, or −∞ without a sink; cls → cls: 0).
    """
    with torch.no_grad():
        N = layer.num_heads
        table = layer.rel_bias.flip(1, 2).reshape(N, -1)  # (N, (2gh−1)(2gw−1)), query − key
        if cls_slot:
            sink = (
                layer.sink_bias
                if layer.sink_bias is not None
                else torch.full_like(table[:, 0], -torch.inf)
            )
            zero = torch.zeros_like(sink)
            table = torch.cat([table, torch.stack([zero, sink, zero], 1)], 1)
        table = torch.cat([table, table.new_zeros(num_heads - N, table.shape[1])])
        return table.T.contiguous().clone()  # (offsets, Nt)


class TimmTableExport(_TimmExport):
    """A timm attention that holds its own relative-position table (RelPos or BEiT); no mask."""

    @property
    def target(self) -> str:  # type: ignore[override]
        return self.config["target"]

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        return self.attn(h)


def build_timm_relpos(module: dict[str, Any]) -> nn.Module:
    """Return `RelPosAttention(dim, num_heads, qkv_bias, rel_pos_cls=RelPosBias(...))`."""
    rel_pos = partial(
        RelPosBias, window_size=tuple(module["window_size"]), prefix_tokens=module["prefix_tokens"]
    )
    return RelPosAttention(
        module["dim"], module["num_heads"], qkv_bias=module["qkv_bias"], rel_pos_cls=rel_pos
    )


def build_timm_beit(module: dict[str, Any]) -> nn.Module:
    """Return `timm.models.beit.Attention(**module)`."""
    return BeitAttention(**{**module, "window_size": tuple(module["window_size"])})


def _export_table(
    layer: RelPosMHSA, dim: int | None, num_heads: int | None, target: str
) -> TimmTableExport:
    layer = check_layer(layer)
    names = {"timm_relpos": "timm RelPosAttention", "timm_beit": "timm.models.beit.Attention"}
    if len(layer.grid_size) != 2:
        raise ValueError(
            f"{names[target]} holds a 2-D relative-position table (window_size), but the layer's "
            f"token grid has {len(layer.grid_size)} axes {tuple(layer.grid_size)}; export 1-D and "
            "3-D layers with export_to_timm_attention (a mask), export_to_torch_mha or "
            "export_to_sdpa"
        )
    layout = even_layout(layer, dim, num_heads, target=names[target], dim_name="dim")
    cls_slot = target == "timm_beit" or layer.sink_bias is not None
    module: dict[str, Any] = {"dim": layout.in_dim, "num_heads": layout.num_heads, "qkv_bias": True,
                              "window_size": tuple(layer.grid_size)}  # fmt: skip
    if target == "timm_relpos":
        module["prefix_tokens"] = int(cls_slot)
    config = export_config(target, layer, layout, module, cls_slot, mask=False)
    attn = make_target(config, device=layer.w_q.device, dtype=layer.w_q.dtype)
    w = padded_projections(layer, layout)
    table = timm_table(layer, layout.num_heads, cls_slot)
    Nd = layout.num_heads * layout.head_dim
    with torch.no_grad():
        attn.qkv.weight.copy_(w["qkv_weight"])
        if target == "timm_relpos":
            attn.qkv.bias.copy_(w["qkv_bias"])
            attn.rel_pos.relative_position_bias_table.copy_(table)
        else:  # BEiT: q and v biases, no k bias (dropping b_K is exact, see the module docstring)
            attn.q_bias.copy_(w["qkv_bias"][:Nd])
            attn.v_bias.copy_(w["qkv_bias"][2 * Nd :])
            attn.relative_position_bias_table.copy_(table)
        attn.proj.weight.copy_(w["proj_weight"])
        attn.proj.bias.copy_(w["proj_bias"])
    return TimmTableExport(attn, config, None)


def export_to_timm_relpos(
    layer: RelPosMHSA, *, dim: int | None = None, num_heads: int | None = None
) -> TimmTableExport:
    """Return the layer as timm's `RelPosAttention` with a `RelPosBias` table (`.attn`).

    The attention of `VisionTransformerRelPos(img_size=grid·P, patch_size=P, embed_dim=dim,
    num_heads=num_heads, rel_pos_type='bias', class_token=<layer has a sink>)`; the class token
    is the zero sink. `dim` (default the smallest that fits) must be a multiple of `num_heads`.
    """
    return _export_table(layer, dim, num_heads, "timm_relpos")


def export_to_timm_beit(
    layer: RelPosMHSA, *, dim: int | None = None, num_heads: int | None = None
) -> TimmTableExport:
    """Return the layer as BEiT's `Attention` with its relative-position table (`.attn`).

    The attention of `Beit(..., embed_dim=dim, num_heads=num_heads, use_rel_pos_bias=True)`; its
    [cls] token is the zero sink, always present (without a layer sink its column is −∞).
    """
    return _export_table(layer, dim, num_heads, "timm_beit")
