"""Exporters: a `RelPosMHSA` layer (paper_notes, Conventions) inside PyTorch's own attention code.

This module holds what every target shares: the head layout, the padded weights, the dense mask,
the `ExportedAttention` wrapper and the registry of targets (`make_target`). The targets live in
`constructions.export_torch` (`torch.nn.MultiheadAttention`, plain
`F.scaled_dot_product_attention` calls) and `constructions.export_timm` (optional extra `timm`).

Dimension letters: B batch, T tokens (a gh×gw grid), S = T + 1 with the sink token (T without),
N the layer's heads, Nt ≥ N the target's heads, E/F the layer's input/output widths, Et ≥ E and
Ft ≥ F the target's, Dk/Dh the layer's query-key/value widths, Dt ≥ max(Dk, Dh) the target's
head dim.

How the layer is carried over (every step is an identity; only the scale can round, and only when
√(Dt/Dk) is not a power of two — never for the constructions, where Dt = Dk):

* **Widths.** Tokens are padded with zeros from E to Et features; the projections read the first
  E rows and write the first F columns, the rest are zero, and the output is sliced back to F.
* **Heads.** Head h of the layer is head h of the target, its query/key/value widths padded with
  zeros to Dt (zero columns add 0 to every q·k and give zero value features); heads N..Nt−1
  are idle (zero value and output maps), so a target may have more heads, never fewer.
* **Scale.** Targets divide q·k by √Dt, the layer by √Dk: W_Q and b_Q are multiplied by √(Dt/Dk).
* **Sink.** The zero-content sink key (paper_notes, Borders) is an extra token **first** in the
  sequence, where a [cls] or register token sits: its features are 0, so its key is b_K and its
  value b_V, as in the layer. Its column of the additive mask holds the layer's `sink_bias`; as a
  query it gets a row of zeros (finite, so no softmax row is all −∞), and its output is dropped.
* **Bias.** The additive float mask (Nt, S, S) is `B^h[key − query]` on the token block, the
  sink column beside it, 0 in the sink row and for idle heads. Wherever the layer has a sink, every
  row of every head has a finite entry, so no path (fused or written out) can produce a NaN.

What is conv-equivalent: the attention module with its mask (or table), on tokens whose first
slot holds zeros. A pre-norm transformer block around it is not (the LayerNorm rescales every
token, the residual adds x, the MLP adds more), unless the norm is removed, the residual folded
into the centre head (W_V W_O = M_0 − I, which needs E = F) and the MLP branch zeroed.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from constructions.mhsa import RelPosMHSA, check_tokens
from constructions.validate import positive_int

__all__ = [
    "ExportedAttention",
    "HeadLayout",
    "check_layer",
    "check_layout",
    "dense_mask",
    "even_layout",
    "export_config",
    "make_target",
    "needed_head_dim",
    "padded_projections",
]


# -- the layout of the layer's heads in a target -------------------------------------------
@dataclass(frozen=True)
class HeadLayout:
    """Head count, head dim and token widths of a target module (Nt, Dt, Et, Ft)."""

    num_heads: int
    head_dim: int
    in_dim: int
    out_dim: int


def check_layer(layer: object) -> RelPosMHSA:
    """Return `layer` if it is a `RelPosMHSA` (paper_notes, Conventions), else raise TypeError."""
    if not isinstance(layer, RelPosMHSA):
        raise TypeError(
            f"layer must be a constructions.RelPosMHSA (e.g. from pixel_mhsa_from_conv or "
            f"patch_mhsa_from_conv), got {type(layer).__name__}"
        )
    return layer


def needed_head_dim(layer: RelPosMHSA) -> int:
    """Return max(Dk, Dh): the smallest head dim of a target that holds the layer's heads."""
    return max(layer.w_q.shape[2], layer.head_dim)


def check_layout(
    layer: RelPosMHSA,
    layout: HeadLayout,
    *,
    target: str,
    dim_name: str = "embed_dim",
    out_name: str | None = None,
    head_dim_fix: str = "",
) -> HeadLayout:
    """Return `layout` if it holds the heads and widths of `layer`, else raise saying what to do.

    Head h of the layer becomes head h of the target, so Nt ≥ N and Dt ≥ max(Dk, Dh);
    tokens are zero-padded, so Et ≥ E and Ft ≥ F. `head_dim_fix` says how to widen the heads.
    """
    N, need = layer.num_heads, needed_head_dim(layer)
    if layout.num_heads < N:
        raise ValueError(
            f"num_heads={layout.num_heads}: the layer has {N} heads and each needs a head of "
            f"its own in {target} (idle extra heads are fine, merging heads is not); "
            f"use num_heads >= {N}"
        )
    if layout.head_dim < need:
        raise ValueError(
            f"{target} with head dim {layout.head_dim} cannot hold the layer's heads (query/key "
            f"width {layer.w_q.shape[2]}, value width {layer.head_dim}): it needs head dim >= "
            f"{need}; {head_dim_fix or f'use head_dim >= {need}'}, or build the layer with a "
            f"head_dim budget (pixel_mhsa_from_conv / patch_mhsa_from_conv(..., "
            f"head_dim={layout.head_dim}))"
        )
    out_name = out_name or dim_name
    sides = ((dim_name, layout.in_dim, layer.in_dim, "input"),
             (out_name, layout.out_dim, layer.out_dim, "output"))  # fmt: skip
    for name, width, own, side in sides:
        if width < own:
            least = max(layer.in_dim, layer.out_dim) if out_name == dim_name else own
            raise ValueError(
                f"{name}={width} is narrower than the layer's {side} width {own}; "
                f"use {name} >= {least}"
            )
    return layout


def even_layout(
    layer: RelPosMHSA,
    embed_dim: int | None,
    num_heads: int | None,
    *,
    target: str,
    dim_name: str = "embed_dim",
) -> HeadLayout:
    """Return the layout of a target whose width is split evenly into heads (Et = Ft = Nt·Dt).

    Without `embed_dim`: the smallest Nt·Dt with Dt ≥ max(Dk, Dh) and Nt·Dt ≥ max(E, F).
    """
    Nt = layer.num_heads if num_heads is None else positive_int(num_heads, "num_heads")
    Dt = max(needed_head_dim(layer), -(-max(layer.in_dim, layer.out_dim) // Nt))
    if embed_dim is None:
        return check_layout(layer, HeadLayout(Nt, Dt, Nt * Dt, Nt * Dt), target=target,
                            dim_name=dim_name)  # fmt: skip
    embed_dim = positive_int(embed_dim, dim_name)
    if embed_dim % Nt:
        up = -(-embed_dim // Nt) * Nt
        raise ValueError(
            f"{dim_name}={embed_dim} is not a multiple of num_heads={Nt}: {target} splits "
            f"{dim_name} evenly into heads; use a multiple of {Nt} (e.g. {up})"
        )
    fix = f"use {dim_name} >= {Nt * Dt} (a multiple of num_heads={Nt})"
    layout = HeadLayout(Nt, embed_dim // Nt, embed_dim, embed_dim)
    return check_layout(layer, layout, target=target, dim_name=dim_name, head_dim_fix=fix)


# -- the layer's weights, padded to a layout -----------------------------------------------
def padded_projections(layer: RelPosMHSA, layout: HeadLayout) -> dict[str, torch.Tensor]:
    """Return the target's Linear weights: qkv (3·Nt·Dt, Et) + bias, proj (Ft, Nt·Dt) + bias.

    Rows of qkv are ordered (q|k|v, head, dim), the layout of `nn.MultiheadAttention.in_proj_weight`
    and of timm's fused `qkv`. W_Q and b_Q carry √(Dt/Dk), so the target's 1/√Dt scale gives the
    layer's 1/√Dk. paper_notes, Conventions.
    """
    Nt, Dt, Et, Ft = layout.num_heads, layout.head_dim, layout.in_dim, layout.out_dim
    N, E, Dk = layer.w_q.shape
    scale = math.sqrt(Dt / Dk)
    with torch.no_grad():

        def heads(
            w: torch.Tensor, b: torch.Tensor, factor: float = 1.0
        ) -> tuple[torch.Tensor, torch.Tensor]:
            # (N, E, d) -> (Nt·Dt, Et) Linear weight; (N, d) -> (Nt·Dt,) bias
            w = F.pad(
                w * factor if factor != 1.0 else w, (0, Dt - w.shape[2], 0, Et - E, 0, Nt - N)
            )
            b = F.pad(b * factor if factor != 1.0 else b, (0, Dt - b.shape[1], 0, Nt - N))
            return w.permute(0, 2, 1).reshape(Nt * Dt, Et), b.reshape(Nt * Dt)

        wq, bq = heads(layer.w_q, layer.b_q, scale)
        wk, bk = heads(layer.w_k, layer.b_k)
        wv, bv = heads(layer.w_v, layer.b_v)
        w_o = F.pad(
            layer.w_o, (0, Ft - layer.out_dim, 0, Dt - layer.head_dim, 0, Nt - N)
        )  # (Nt, Dt, Ft)
        return {
            "qkv_weight": torch.cat([wq, wk, wv]).clone(),
            "qkv_bias": torch.cat([bq, bk, bv]).clone(),
            "proj_weight": w_o.reshape(Nt * Dt, Ft).T.clone(),
            "proj_bias": F.pad(layer.b_o, (0, Ft - layer.out_dim)).clone(),
        }


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """Return a copy of `t`, its last axis allocated in multiples of 16 (fused-kernel stride)."""
    S = t.shape[-1]
    return F.pad(t, (0, -S % 16))[..., :S]


def dense_mask(layer: RelPosMHSA, num_heads: int) -> torch.Tensor:
    """Return the additive mask (Nt, S, S) of the layer: sink token first, then the T tokens.

    Entry [h, query, key] is `B^h[key − query]` (this project's key − query convention) for two
    grid tokens, `sink_bias[h]` for a token query and the sink key, 0 in the sink's own row and for
    idle heads h ≥ N. Borders (paper_notes): every row has a finite entry.
    """
    with torch.no_grad():
        bias = layer.relative_bias()  # (N, T, T[+1]), the sink last
        N, T = layer.num_heads, layer.num_tokens
        if layer.sink_bias is None:
            mask = F.pad(bias, (0, 0, 0, 0, 0, num_heads - N))
        else:
            mask = bias.new_zeros(num_heads, T + 1, T + 1)
            mask[:N, 1:, 1:] = bias[:, :, :T]
            mask[:N, 1:, 0] = bias[:, :, T]
        return _aligned(mask)


# -- the wrapper -----------------------------------------------------------------------------
class ExportedAttention(nn.Module):
    """Tokens (B, T, E) → (B, T, F) through a real attention module `.attn`, like `RelPosMHSA`.

    The wrapper only pads features, puts the zero sink token first (if the layer has a sink),
    calls `.attn`, and slices its output; the additive mask, if the target takes one, is the buffer
    `attn_bias` (Nt, S, S). `fused` picks the target's fused (SDPA) or written-out softmax path.

    `config` (plain Python values) rebuilds the same target (`make_target(config)`) and the same
    wrapper (`ExportedAttention.from_config(config)`), into which the state dicts load:
    `target` (the exporter), `module` (the target's constructor arguments), `grid_size`,
    `in_dim`/`out_dim` (E, F), `embed_in` (Et), `sink_token` (a zero token comes first) and, for
    mask targets, `mask_shape` (Nt, S, S).
    """

    target: str = ""

    def __init__(
        self, attn: nn.Module, config: dict[str, Any], attn_bias: torch.Tensor | None
    ) -> None:
        super().__init__()
        self.attn = attn
        self.config = config
        self.grid_size: tuple[int, ...] = tuple(config["grid_size"])
        self.in_dim: int = config["in_dim"]
        self.out_dim: int = config["out_dim"]
        self.sink_token: bool = config["sink_token"]
        self.register_buffer("attn_bias", attn_bias)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_size)

    @property
    def extra_tokens(self) -> int:
        """Return how many fixed tokens precede the grid tokens in `.attn`'s input (the sink)."""
        return int(self.sink_token)

    @property
    def fused(self) -> bool:
        raise NotImplementedError

    @fused.setter
    def fused(self, value: bool) -> None:
        raise NotImplementedError

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> ExportedAttention:
        """Return a fresh wrapper of `config` (random weights, zero mask) to load a state dict."""
        wrapper_cls, _ = _target_entry(config)
        attn = make_target(config, device=device, dtype=dtype)
        bias = None
        if "mask_shape" in config:
            bias = _aligned(
                torch.zeros(
                    config["mask_shape"], device=device, dtype=dtype or torch.get_default_dtype()
                )
            )
        return wrapper_cls(attn, config, bias)

    def extra_repr(self) -> str:
        return (
            f"target={self.target!r}, grid_size={self.grid_size}, sink_token={self.sink_token}, "
            f"fused={self.fused}"
        )

    def tokens_in(self, x: object) -> torch.Tensor:
        """Return `.attn`'s input (B, S, Et): `x` (B, T, E) zero-padded, the zero sink first."""
        check_tokens(
            x, self.num_tokens, self.in_dim, next(self.attn.parameters()), owner="exported module"
        )
        Et = self.config["embed_in"]
        return F.pad(x, (0, Et - self.in_dim, self.extra_tokens, 0))  # (B, S, Et)

    def tokens_out(self, y: torch.Tensor) -> torch.Tensor:
        """Return the grid tokens (B, T, F) of `.attn`'s output (B, S, Ft)."""
        return y[:, self.extra_tokens :, : self.out_dim]

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        """Return `.attn` applied to its input `h` (B, S, Et): (B, S, Ft)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layer's output (B, T, F) computed by `.attn`. paper_notes, Conventions."""
        return self.tokens_out(self.attend(self.tokens_in(x)))


def export_config(
    target: str,
    layer: RelPosMHSA,
    layout: HeadLayout,
    module: dict[str, Any],
    sink_token: bool,
    mask: bool,
) -> dict[str, Any]:
    """Return the `config` of an export (keys in `ExportedAttention`); S counts the sink token."""
    S = layer.num_tokens + int(sink_token)
    config = {
        "target": target,
        "module": module,
        "grid_size": tuple(layer.grid_size),
        "in_dim": layer.in_dim,
        "out_dim": layer.out_dim,
        "embed_in": layout.in_dim,
        "sink_token": sink_token,
    }
    if mask:
        config["mask_shape"] = (layout.num_heads, S, S)
    return config


# -- the documented configurations -----------------------------------------------------------
_TARGETS: dict[str, tuple[str, str, str]] = {  # target -> (module, wrapper class, builder)
    "torch_mha": ("constructions.export_torch", "TorchMHAExport", "build_torch_mha"),
    "sdpa": ("constructions.export_torch", "SDPAExport", "build_sdpa"),
    "timm_attention": ("constructions.export_timm", "TimmAttentionExport", "build_timm_attention"),
    "timm_relpos": ("constructions.export_timm", "TimmTableExport", "build_timm_relpos"),
    "timm_beit": ("constructions.export_timm", "TimmTableExport", "build_timm_beit"),
}


def _target_entry(config: object) -> tuple[type[ExportedAttention], Any]:
    if not isinstance(config, dict) or config.get("target") not in _TARGETS:
        got = config.get("target") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"config['target']={got!r}: expected one of {tuple(_TARGETS)}")
    module_name, wrapper, builder = _TARGETS[config["target"]]
    module = importlib.import_module(module_name)  # timm is imported only for the timm targets
    return getattr(module, wrapper), getattr(module, builder)


def make_target(
    config: dict[str, Any],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Return a fresh target module of `config` (an export's `.config`) to load `.attn` into.

    `config["module"]` holds the constructor arguments: `torch_mha` →
    `nn.MultiheadAttention(embed_dim, num_heads, bias=True, batch_first=True)`; `sdpa` →
    `SDPAAttention(dim, num_heads, head_dim, dim_out)`; the timm targets are documented in
    `constructions.export_timm`.
    """
    _, builder = _target_entry(config)
    attn = builder(config["module"])
    return attn.to(device=device, dtype=dtype) if device is not None or dtype is not None else attn
