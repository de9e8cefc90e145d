"""Exporters to timm: `timm.layers.Attention` with an `attn_mask`, and the two timm attentions
that hold a relative-position table (VisionTransformerRelPos's `RelPosAttention`, BEiT's
`Attention`) compute the convolution (paper_notes: T1, T2, Borders) on every token, fused and not.

timm is the optional extra `timm`. Without it (the lighter install) this module is skipped with
the reason; under `CI=true`, where the extra is installed, a missing timm is an error instead.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import timm
except ImportError as missing:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        ci = os.environ["CI"]
        raise ImportError(f"CI={ci} installs the extra `timm`, but {missing}") from None
    pytest.skip(f"timm is not installed ({missing}); pip install -e '.[timm]' runs these checks",
                allow_module_level=True)  # fmt: skip

import torch
from hypothesis import given
from timm.layers import Attention
from timm.models.beit import Attention as BeitAttention
from timm.models.beit import Beit
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer_relpos import RelPosAttention, VisionTransformerRelPos

from checks.strategies import ConvCase, conv_cases
from checks.test_export import (
    FUSED,
    LEARNED_DTYPES,
    TOKENS,
    assert_every_path_matches,
    conv_through,
    layer_and_export_agree,
    learned_layers,
)
from checks.tolerances import assert_matches, reference_conv
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
)
from constructions.export import ExportedAttention, make_target
from constructions.export_timm import (
    export_to_timm_attention,
    export_to_timm_beit,
    export_to_timm_relpos,
    timm_table,
)
from constructions.mhsa import RelPosMHSA

EXPORTERS = {
    "timm.layers.Attention": (export_to_timm_attention, Attention),
    "VisionTransformerRelPos RelPosAttention": (export_to_timm_relpos, RelPosAttention),
    "BEiT Attention": (export_to_timm_beit, BeitAttention),
}


# -- equivalence to F.conv2d ----------------------------------------------------------------
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("name", list(EXPORTERS))
@given(case=conv_cases())
def test_timm_attention_modules_compute_the_convolution_at_every_token(
    case: ConvCase, target, name: str, tokens: str
) -> None:
    export, module = EXPORTERS[name]
    outputs, expected, exported = conv_through(case, target, tokens, export, FUSED)
    assert_every_path_matches(outputs, expected, target[1], f"{name} {tokens} {case}")
    assert type(exported.attn) is module


@pytest.mark.parametrize("dtype", LEARNED_DTYPES)
@pytest.mark.parametrize("name", list(EXPORTERS))
@given(layer=learned_layers())
def test_a_layer_with_learned_queries_and_keys_exports_to_timm_exactly(
    layer: RelPosMHSA, device: str, dtype: torch.dtype, name: str
) -> None:
    """Scale √(Dt/Dk) on W_Q, any table, any sink bias; BEiT drops b_K (a per-row shift)."""
    for fused in (True, False):
        layer_and_export_agree(layer, EXPORTERS[name][0], (device, dtype), fused)


def test_the_fused_switch_reaches_timms_own_flag() -> None:
    layer = pixel_mhsa_from_conv(torch.nn.Conv2d(1, 1, 3, padding="same"), 3)
    for export, _ in EXPORTERS.values():
        exported = export(layer)
        for fused in (True, False):
            exported.fused = fused
            assert exported.attn.fused_attn is fused


# -- the sign convention of timm's tables ----------------------------------------------------
@pytest.mark.parametrize(
    "export", [export_to_timm_relpos, export_to_timm_beit], ids=["relpos", "beit"]
)
def test_timm_tables_are_indexed_query_minus_key_so_ours_are_flipped(export) -> None:
    """A kernel with one tap at (0, 2) of 3×3 reads x at query + (−1, +1) (key − query); timm
    stores that head's finite entry at query − key = (+1, −1), row-major in (2gh−1)×(2gw−1)."""
    gh, gw = 4, 5
    conv = torch.nn.Conv2d(1, 1, 3, padding="same", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 2] = 1.0
    layer = pixel_mhsa_from_conv(conv, (gh, gw))
    exported = export(layer)
    table = exported.attn.rel_pos if hasattr(exported.attn, "rel_pos") else exported.attn
    table = table.relative_position_bias_table.detach()  # ((2gh−1)(2gw−1) + 3, N)
    head = 2  # tap (0, 2) is row 2 of the row-major support
    finite = torch.isfinite(table[: (2 * gh - 1) * (2 * gw - 1), head]).nonzero().flatten().tolist()
    assert finite == [(+1 + gh - 1) * (2 * gw - 1) + (-1 + gw - 1)]
    x = torch.randn(1, 1, gh, gw, dtype=torch.float64)
    with torch.no_grad():
        out = pixels_to_image(exported(image_to_pixels(x)), (gh, gw))
    shifted = torch.zeros_like(x)
    shifted[..., 1:, :-1] = x[..., :-1, 1:]  # out[y, x] = x[y − 1, x + 1], zero outside
    assert torch.equal(out, shifted)


def test_the_cls_rows_of_the_table_hold_zero_the_sink_bias_and_zero() -> None:
    conv = torch.nn.Conv2d(2, 2, 3, padding="same", dtype=torch.float64)
    layer = patch_mhsa_from_conv(conv, (6, 4), 2)
    table = timm_table(layer, layer.num_heads + 2, cls_slot=True)
    assert table.shape == ((2 * 3 - 1) * (2 * 2 - 1) + 3, layer.num_heads + 2)
    cls_rows = table[-3:, : layer.num_heads]
    assert (cls_rows[0] == 0).all() and (cls_rows[1] == -1.0e4).all() and (cls_rows[2] == 0).all()
    assert (table[:, layer.num_heads :] == 0).all()  # idle heads
    wrap = torch.nn.Conv2d(2, 2, 3, padding="same", padding_mode="circular")
    circular = patch_mhsa_from_conv(wrap, (6, 4), 2)
    assert (timm_table(circular, circular.num_heads, cls_slot=True)[-2] == -math.inf).all()


# -- round trip into real timm models --------------------------------------------------------
def _patch_case() -> tuple[torch.nn.Conv2d, torch.Tensor, RelPosMHSA]:
    """A 5×3 conv (asymmetric reach) on 2×2 patches of an 8×6 image: a 4×3 grid, 9 heads."""
    case = ConvCase(2, 2, 1, (5, 3), (1, 1), True, "zeros", 2, (4, 3), seed=11)
    conv, x = case.conv(), case.image()
    return conv, x, patch_mhsa_from_conv(conv, case.image_size, 2)


def _through_module(
    attn: torch.nn.Module, x: torch.Tensor, P: int, exported: ExportedAttention, **kwargs
) -> torch.Tensor:
    """Return the image through a module of a timm model, fed as the exporter feeds `.attn`."""
    with torch.no_grad():
        y = attn(exported.tokens_in(image_to_patches(x, P)), **kwargs)
    return patches_to_image(exported.tokens_out(y), P, tuple(x.shape[2:]))


def _assert_first_block_computes_the_conv(
    model: torch.nn.Module, exported: ExportedAttention, conv: torch.nn.Conv2d,
    x: torch.Tensor, **kwargs: torch.Tensor,
) -> None:
    """Load `exported.attn` strictly into the model's first block; check both softmax paths."""
    attn = model.blocks[0].attn
    attn.load_state_dict(exported.attn.state_dict())  # strict
    expected = reference_conv(conv, x, torch.float64)
    for fused in (True, False):
        attn.fused_attn = fused
        out = _through_module(attn, x, 2, exported, **kwargs)
        assert_matches(out, expected, torch.float64, f"fused={fused}")


def test_relpos_weights_drop_into_a_vision_transformer_relpos_model() -> None:
    conv, x, layer = _patch_case()
    exported = export_to_timm_relpos(layer, dim=12 * 8, num_heads=12)  # idle heads 9..11
    model = VisionTransformerRelPos(
        img_size=(8, 6), patch_size=2, in_chans=2, embed_dim=96, depth=1, num_heads=12,
        rel_pos_type="bias", class_token=True, num_classes=0,
    ).double()  # fmt: skip
    _assert_first_block_computes_the_conv(model, exported, conv, x)


def test_beit_weights_drop_into_a_beit_model() -> None:
    conv, x, layer = _patch_case()
    exported = export_to_timm_beit(layer, dim=9 * 8)
    model = Beit(img_size=(8, 6), patch_size=2, in_chans=2, embed_dim=72, depth=1, num_heads=9,
                 use_rel_pos_bias=True, num_classes=0).double()  # fmt: skip
    _assert_first_block_computes_the_conv(model, exported, conv, x)


def test_timm_attention_weights_drop_into_a_vision_transformer_block() -> None:
    conv, x, layer = _patch_case()
    exported = export_to_timm_attention(layer, dim=96, num_heads=12, head_dim=8, dim_out=96)
    model = VisionTransformer(img_size=(8, 6), patch_size=2, in_chans=2, embed_dim=96, depth=1,
                              num_heads=12, num_classes=0).double()  # fmt: skip
    _assert_first_block_computes_the_conv(
        model, exported, conv, x, attn_mask=exported.attn_bias[None]
    )


@pytest.mark.parametrize("name", list(EXPORTERS))
def test_timm_state_dicts_load_into_fresh_modules_of_the_documented_configuration(
    name: str,
) -> None:
    conv, x, layer = _patch_case()
    exported = EXPORTERS[name][0](layer)
    fresh = make_target(exported.config, dtype=torch.float64)
    assert type(fresh) is EXPORTERS[name][1]
    fresh.load_state_dict(exported.attn.state_dict())  # strict
    rebuilt = ExportedAttention.from_config(exported.config, dtype=torch.float64)
    rebuilt.load_state_dict(exported.state_dict())
    with torch.no_grad():
        out = _through_module(
            rebuilt.attn,
            x,
            2,
            rebuilt,
            **({"attn_mask": rebuilt.attn_bias[None]} if rebuilt.attn_bias is not None else {}),
        )
    assert_matches(out, reference_conv(conv, x, torch.float64), torch.float64, name)


def test_a_beit_block_is_the_convolution_once_its_norm_is_removed_and_the_residual_folded() -> None:
    """x + attn(norm1(x)) is not conv-equivalent; with norm1 = identity, the centre head's map
    M_0 − I and a zero MLP output, the block computes the convolution exactly."""
    conv, x, layer = _patch_case()  # E = F = P²C = 8
    with torch.no_grad():
        centre = int(torch.isfinite(layer.rel_bias[:, 3, 2]).nonzero())  # offset (0, 0) on 4×3
        layer.w_o[centre] -= torch.eye(8, dtype=torch.float64)  # W_V = I there: W_V W_O = M_0 − I
    exported = export_to_timm_beit(layer, dim=72)
    block = Beit(img_size=(8, 6), patch_size=2, in_chans=2, embed_dim=72, depth=1, num_heads=9,
                 use_rel_pos_bias=True, num_classes=0).double().blocks[0]  # fmt: skip
    block.attn.load_state_dict(exported.attn.state_dict())
    expected = reference_conv(conv, x, torch.float64)
    as_is = _through_module(block, x, 2, exported)  # pre-norm block with LayerNorm
    assert (as_is - expected).abs().max() > 1e-2 * expected.abs().max()
    block.norm1 = torch.nn.Identity()
    with torch.no_grad():
        block.mlp.fc2.weight.zero_()
        block.mlp.fc2.bias.zero_()
    assert_matches(_through_module(block, x, 2, exported), expected, torch.float64, "folded block")


# -- bad input -------------------------------------------------------------------------------
def test_relpos_and_beit_reject_a_dim_that_does_not_split_into_the_heads() -> None:
    layer = pixel_mhsa_from_conv(torch.nn.Conv2d(4, 4, 3, padding="same"), 5)  # 9 heads of dim 4
    with pytest.raises(
        ValueError,
        match=r"^dim=40 is not a multiple of num_heads=9: timm "
        r"RelPosAttention splits dim evenly into heads; .*\(e\.g\. 45\)$",
    ):
        export_to_timm_relpos(layer, dim=40)
    with pytest.raises(
        ValueError, match=r"^num_heads=8: the layer has 9 heads .* use num_heads >= 9$"
    ):
        export_to_timm_beit(layer, dim=64, num_heads=8)
    with pytest.raises(
        ValueError,
        match=r"^timm\.models\.beit\.Attention with head dim 3 .* "
        r"use dim >= 48 \(a multiple of num_heads=12\)",
    ):
        export_to_timm_beit(layer, dim=36, num_heads=12)


def test_timm_attention_rejects_widths_narrower_than_the_layer() -> None:
    layer = pixel_mhsa_from_conv(torch.nn.Conv2d(4, 6, 3, padding="same"), 5)
    with pytest.raises(
        ValueError,
        match=r"^dim_out=5 is narrower than the layer's output width 6; "
        r"use dim_out >= 6$",
    ):
        export_to_timm_attention(layer, dim_out=5)
    with pytest.raises(
        ValueError, match=r"^dim=3 is narrower than the layer's input width 4; use dim >= 4$"
    ):
        export_to_timm_attention(layer, dim=3)


def test_timm_is_the_version_these_exporters_were_checked_with() -> None:
    """The exporters rely on `Attention(attn_head_dim=, dim_out=)` and its `attn_mask` argument."""
    major, minor = (int(v) for v in timm.__version__.split(".")[:2])
    assert (major, minor) >= (1, 0)
    assert {"attn_head_dim", "dim_out"} <= set(Attention.__init__.__code__.co_varnames)


def _without_timm(ci: str | None) -> subprocess.CompletedProcess[str]:
    """Return this module's collection in a fresh interpreter where `import timm` fails."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci else {})
    code = (
        "import sys, pytest; sys.modules['timm'] = None; "
        "sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', sys.argv[1]]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, __file__], capture_output=True, text=True, env=env,
        cwd=Path(__file__).parents[1], timeout=300, check=False,
    )  # fmt: skip


def test_without_timm_this_module_skips_with_a_reason_but_fails_under_ci() -> None:
    local = _without_timm(None)
    # pytest's 5 is "no tests collected": the module skipped as a whole, nothing failed
    assert local.returncode == 5 and "1 skipped" in local.stdout, local.stdout[-2000:]
    assert "timm is not installed" in local.stdout
    ci = _without_timm("true")
    assert ci.returncode not in (0, 5) and "error" in ci.stdout, ci.stdout[-2000:]
    assert "CI=true installs the extra `timm`" in ci.stdout, ci.stdout[-2000:]
