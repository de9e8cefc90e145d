"""Exporters to PyTorch's attention: nn.MultiheadAttention and plain SDPA calls compute the
convolution (T1, T2, Borders) on every token, through the fused and the written-out path.

The reference is always PyTorch's `F.conv2d` (`reference_conv`) or, for layers with learned
queries and keys, the layer's own written-out softmax in float64; never the exporter's code.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

from checks.strategies import ConvCase, conv_cases
from checks.tolerances import assert_matches, reference_conv
from constructions import (
    ExportedAttention,
    export_to_sdpa,
    export_to_torch_mha,
    image_to_patches,
    image_to_pixels,
    make_target,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
)
from constructions.mhsa import RelPosMHSA

TOKENS = ["pixel", "patch"]
Path = tuple[bool, Callable[[], AbstractContextManager] | None]  # (fused, context factory)
FUSED: dict[str, Path] = {"fused": (True, None), "written out": (False, None)}


def conv_through(
    case: ConvCase,
    target: tuple[str, torch.dtype],
    tokens: str,
    export: Callable[..., ExportedAttention],
    paths: dict[str, Path],
    **options,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, ExportedAttention]:
    """Return ({path: image through the exported layer}, F.conv2d of the image, the export).

    A path is (fused, context): the export's `fused` switch and a context (e.g. an SDPA backend).
    """
    device, dtype = target
    conv = case.conv(dtype, device)
    x = case.image(dtype=dtype, device=device)
    P = case.patch_size
    if tokens == "pixel":
        layer = pixel_mhsa_from_conv(conv, case.image_size)
        to_tokens, to_image = image_to_pixels, lambda t: pixels_to_image(t, case.image_size)
    else:
        layer = patch_mhsa_from_conv(conv, case.image_size, P)
        to_tokens, to_image = (
            (lambda im: image_to_patches(im, P)),
            (lambda t: patches_to_image(t, P, case.image_size)),
        )
    exported = export(layer, **options)
    outputs = {}
    for name, (fused, context) in paths.items():
        exported.fused = fused
        with torch.no_grad(), context() if context else nullcontext():
            outputs[name] = to_image(exported(to_tokens(x))).cpu()
    return outputs, reference_conv(conv, x, dtype).cpu(), exported


def assert_every_path_matches(
    outputs: dict[str, torch.Tensor], expected: torch.Tensor, dtype: torch.dtype, what: str
) -> None:
    """Assert each path's output equals `expected` (TOLERANCE[dtype], no NaN), naming the path."""
    assert outputs, "no path was run"
    for name, out in outputs.items():
        assert_matches(out, expected, dtype, f"{what}, path {name!r}")


def learned_layer(
    seed: int, grid: tuple[int, int], E: int, F_out: int, N: int, Dk: int, Dh: int, sink: bool
) -> RelPosMHSA:
    """Return a float64 RelPosMHSA with every weight random (W_Q, W_K, biases, table, sink).

    Projections are N(0, 1/fan_in), so logits stay O(1) and the softmax does not amplify the
    rounding of its inputs beyond what the tolerance table allows for.
    """
    gen = torch.Generator().manual_seed(seed)
    gh, gw = grid
    r = lambda *s, fan_in=1: torch.randn(*s, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)  # noqa: E731
    return RelPosMHSA(grid, w_q=r(N, E, Dk, fan_in=E), b_q=r(N, Dk), w_k=r(N, E, Dk, fan_in=E),
                      b_k=r(N, Dk), w_v=r(N, E, Dh, fan_in=E), b_v=r(N, Dh),
                      w_o=r(N, Dh, F_out, fan_in=N * Dh), b_o=r(F_out),
                      rel_bias=r(N, 2 * gh - 1, 2 * gw - 1),
                      sink_bias=r(N) if sink else None, attention="reference")  # fmt: skip


@st.composite
def learned_layers(draw: st.DrawFn) -> RelPosMHSA:
    """Draw a learned layer: query-key width Dk and value width Dh differ, sink or not."""
    return learned_layer(
        draw(st.integers(0, 2**31 - 1), label="seed"),
        (draw(st.integers(1, 3), label="gh"), draw(st.integers(1, 3), label="gw")),
        draw(st.integers(1, 5), label="E"), draw(st.integers(1, 5), label="F"),
        draw(st.integers(1, 4), label="N"), draw(st.integers(1, 4), label="Dk"),
        draw(st.integers(1, 4), label="Dh"), draw(st.booleans(), label="sink"),
    )  # fmt: skip


def layer_and_export_agree(
    layer: RelPosMHSA,
    export: Callable[..., ExportedAttention],
    target: tuple[str, torch.dtype],
    fused: bool,
    **options,
) -> float:
    """Assert the export of `layer` rounded to the target dtype equals that rounded layer's
    written-out softmax in float64 (same numbers, so only the target's arithmetic differs);
    return the error."""
    device, dtype = target
    rounded = copy.deepcopy(layer).to(dtype)
    exported = export(rounded.to(device), **options)
    exported.fused = fused
    x = torch.randn(
        2,
        layer.num_tokens,
        layer.in_dim,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(7),
    ).to(dtype)
    with torch.no_grad():
        expected = rounded.to("cpu", torch.float64)(x.double())
        actual = exported(x.to(device))
    return assert_matches(actual.cpu(), expected, dtype, f"{exported.target} fused={fused}")


# -- equivalence to F.conv2d ----------------------------------------------------------------
MHA_PATHS: dict[str, Path] = {
    "need_weights=False (SDPA)": (True, None),
    "need_weights=True (written out)": (False, None),
}
SDPA_PATHS: dict[str, Path] = {
    "SDPA default kernel": (True, None),
    "SDPA math kernel": (True, lambda: sdpa_kernel(SDPBackend.MATH)),
    "written out": (False, None),
}


@pytest.mark.parametrize("tokens", TOKENS)
@given(case=conv_cases())
def test_torch_multihead_attention_computes_the_convolution_at_every_token(
    case: ConvCase, target, tokens: str
) -> None:
    outputs, expected, exported = conv_through(case, target, tokens, export_to_torch_mha, MHA_PATHS)
    assert_every_path_matches(
        outputs, expected, target[1], f"nn.MultiheadAttention {tokens} {case}"
    )
    assert isinstance(exported.attn, torch.nn.MultiheadAttention)


@pytest.mark.parametrize("tokens", TOKENS)
@given(case=conv_cases())
def test_plain_sdpa_calls_compute_the_convolution_at_every_token(
    case: ConvCase, target, tokens: str
) -> None:
    outputs, expected, _ = conv_through(case, target, tokens, export_to_sdpa, SDPA_PATHS)
    assert_every_path_matches(outputs, expected, target[1], f"SDPA {tokens} {case}")


@settings(max_examples=20)
@given(
    case=conv_cases(max_kernel=3, max_patch=2),
    extra_heads=st.integers(0, 3),
    extra_dim=st.integers(0, 3),
    tokens=st.sampled_from(TOKENS),
)
def test_a_wider_target_with_idle_heads_and_padded_features_still_computes_the_convolution(
    case: ConvCase, target, extra_heads: int, extra_dim: int, tokens: str
) -> None:
    conv = case.conv()
    layer = (
        pixel_mhsa_from_conv(conv, case.image_size)
        if tokens == "pixel"
        else patch_mhsa_from_conv(conv, case.image_size, case.patch_size)
    )
    Nt = layer.num_heads + extra_heads
    Dt = max(layer.head_dim, -(-max(layer.in_dim, layer.out_dim) // Nt)) + extra_dim
    for export, options in (
        (export_to_torch_mha, {"embed_dim": Nt * Dt, "num_heads": Nt}),
        (export_to_sdpa, {"num_heads": Nt, "head_dim": Dt}),
    ):
        outputs, expected, exported = conv_through(case, target, tokens, export, FUSED, **options)
        assert_every_path_matches(
            outputs, expected, target[1], f"{exported.target} Nt={Nt} Dt={Dt}"
        )
        assert exported.config["module"]["num_heads"] == Nt


# -- layers that are not constructions: learned queries and keys ---------------------------
# Full-precision dtypes only: with learned (non-one-hot) attention a half-precision layer is no
# more exact than its export, so there is nothing exact to compare; the mapping is dtype-free.
LEARNED_DTYPES = [
    pytest.param(torch.float64, id="float64"),
    pytest.param(torch.float32, id="float32"),
]


@pytest.mark.parametrize("dtype", LEARNED_DTYPES)
@pytest.mark.parametrize("export", [export_to_torch_mha, export_to_sdpa], ids=["torch_mha", "sdpa"])
@given(layer=learned_layers())
def test_a_layer_with_learned_queries_and_keys_exports_with_the_targets_own_scale(
    layer: RelPosMHSA, export, device: str, dtype: torch.dtype
) -> None:
    """Dk ≠ Dh: the target divides by √Dt with Dt = max(Dk, Dh), the layer by √Dk."""
    for fused in (True, False):
        layer_and_export_agree(layer, export, (device, dtype), fused)


# -- the mask and the paths -----------------------------------------------------------------
@given(case=conv_cases(max_kernel=3, max_patch=2), tokens=st.sampled_from(TOKENS))
def test_every_mask_row_has_a_finite_entry_and_the_sink_row_is_finite(
    case: ConvCase, tokens: str
) -> None:
    conv = case.conv()
    layer = (
        pixel_mhsa_from_conv(conv, case.image_size)
        if tokens == "pixel"
        else patch_mhsa_from_conv(conv, case.image_size, case.patch_size)
    )
    mask = export_to_torch_mha(layer, num_heads=layer.num_heads + 1).attn_bias  # one idle head
    assert torch.isfinite(mask).any(dim=-1).all()
    if case.padding_mode == "zeros":  # the sink token comes first and carries the −10⁴ column
        assert torch.isfinite(mask[:, 0]).all() and (mask[:, 0] == 0).all()
        assert (mask[: layer.num_heads, 1:, 0] == -1.0e4).all()
    else:  # circular: no sink token, every head finds its wrapped key
        assert mask.shape[-1] == layer.num_tokens


@pytest.mark.parametrize("export", [export_to_torch_mha, export_to_sdpa], ids=["torch_mha", "sdpa"])
def test_the_fused_switch_picks_sdpa_or_the_written_out_softmax(export, monkeypatch) -> None:
    calls: list[int] = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    exported = export(pixel_mhsa_from_conv(torch.nn.Conv2d(1, 1, 3, padding="same"), 4))
    x = torch.randn(1, 16, 1)
    for fused, expected_calls in ((True, 1), (False, 0)):
        calls.clear()
        exported.fused = fused
        with torch.no_grad():
            exported(x)
        assert len(calls) == expected_calls, f"fused={fused}"


# -- round trip ------------------------------------------------------------------------------
@pytest.mark.parametrize("export", [export_to_torch_mha, export_to_sdpa], ids=["torch_mha", "sdpa"])
def test_exported_state_dicts_load_into_fresh_modules_of_the_documented_configuration(
    export,
) -> None:
    case = ConvCase(2, 3, 1, (3, 2), (1, 1), True, "zeros", 2, (3, 2), seed=5)
    conv = case.conv()
    x = case.image()
    exported = export(patch_mhsa_from_conv(conv, case.image_size, 2))
    fresh = make_target(exported.config, dtype=torch.float64)
    assert type(fresh) is type(exported.attn)
    fresh.load_state_dict(exported.attn.state_dict())  # strict: same keys, same shapes
    rebuilt = ExportedAttention.from_config(exported.config, dtype=torch.float64)
    rebuilt.load_state_dict(exported.state_dict())
    assert rebuilt.attn is not exported.attn
    with torch.no_grad():
        out = patches_to_image(rebuilt(image_to_patches(x, 2)), 2, case.image_size)
    assert_matches(out, reference_conv(conv, x, torch.float64), torch.float64, "rebuilt")


def test_mha_config_is_the_documented_constructor_call() -> None:
    exported = export_to_torch_mha(
        patch_mhsa_from_conv(torch.nn.Conv2d(3, 4, 3, padding="same"), 8, 2),
        embed_dim=12 * 16,
        num_heads=12,
    )
    assert exported.config["module"] == {
        "embed_dim": 192,
        "num_heads": 12,
        "bias": True,
        "batch_first": True,
    }
    assert exported.config["mask_shape"] == (12, 17, 17)


# -- bad input -------------------------------------------------------------------------------
def _pixel_layer(C: int = 4, D: int = 6, k: int = 5) -> RelPosMHSA:
    return pixel_mhsa_from_conv(torch.nn.Conv2d(C, D, k, padding="same"), 6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"embed_dim": 768, "num_heads": 12},
            r"^num_heads=12: the layer has 25 heads .* use num_heads >= 25$",
        ),
        (
            {"embed_dim": 110, "num_heads": 25},
            r"^embed_dim=110 is not a multiple of num_heads=25: .* \(e\.g\. 125\)$",
        ),
        (
            {"embed_dim": 75, "num_heads": 25},
            r"^torch\.nn\.MultiheadAttention with head dim 3 cannot hold the layer's heads "
            r"\(query/key width 4, value width 4\): it needs head dim >= 4; use embed_dim >= 100 "
            r"\(a multiple of num_heads=25\), or build the layer .*head_dim=3\)\)$",
        ),
        ({"num_heads": 0}, r"^num_heads must be an integer >= 1, got 0$"),
    ],
    ids=["too-few-heads", "not-a-multiple", "head-dim-too-small", "zero-heads"],
)
def test_a_target_that_cannot_hold_the_heads_is_rejected_saying_what_to_change(
    options, message
) -> None:
    with pytest.raises(ValueError, match=message):
        export_to_torch_mha(_pixel_layer(), **options)


def test_an_sdpa_head_dim_below_the_layers_is_rejected() -> None:
    with pytest.raises(
        ValueError,
        match=r"^SDPAAttention with head dim 3 cannot hold .* use head_dim >= 4, or build",
    ):
        export_to_sdpa(_pixel_layer(), head_dim=3)


def test_exporting_something_other_than_a_layer_is_a_type_error() -> None:
    with pytest.raises(
        TypeError, match=r"^layer must be a constructions\.RelPosMHSA .* got Conv2d$"
    ):
        export_to_torch_mha(torch.nn.Conv2d(1, 1, 3, padding="same"))


def test_tokens_of_the_wrong_shape_or_dtype_are_rejected() -> None:
    exported = export_to_torch_mha(_pixel_layer())
    with pytest.raises(
        ValueError,
        match=r"^x has shape \(1, 35, 4\); this exported module takes tokens \(B, 36, 4\)$",
    ):
        exported(torch.zeros(1, 35, 4))
    with pytest.raises(
        TypeError, match=r"^x has dtype torch\.float64 but the exported module's weights are "
    ):
        exported(torch.zeros(1, 36, 4, dtype=torch.float64))


def test_an_unknown_target_in_a_config_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^config\['target'\]='keras': expected one of \("):
        make_target({"target": "keras", "module": {}})


def test_the_scale_factor_is_exactly_one_when_the_head_dims_agree() -> None:
    """No rounding is introduced for constructed layers: W_Q is copied bit for bit."""
    layer = learned_layer(3, (2, 2), 4, 4, 2, 3, 3, sink=True)
    exported = export_to_sdpa(layer)
    w_q = exported.attn.qkv.weight[: 2 * 3].reshape(2, 3, 4).transpose(1, 2)
    assert torch.equal(w_q, layer.w_q.detach())
    wider = export_to_sdpa(layer, head_dim=12)  # √(12/3) = 2, a power of two: still exact
    w_q = wider.attn.qkv.weight[: 2 * 12].reshape(2, 12, 4).transpose(1, 2)[:, :, :3]
    assert torch.equal(w_q, 2 * layer.w_q.detach())
    assert (
        layer_and_export_agree(layer, export_to_sdpa, ("cpu", torch.float64), True, head_dim=12)
        < 1e-14
    )
