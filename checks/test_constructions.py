"""T1 and T2: the constructed MHSA layers equal the convolution on every token.

Hypothesis draws convolutions (channels, groups, odd/even/rectangular kernels, dilation, bias,
zero/circular padding, patch sizes, grids down to the smallest the kernel allows) and compares
the layer with PyTorch's convolution on the whole image, borders included, on every
(device, dtype) target and through both the fused SDPA call and the written-out softmax.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.strategies import ConvCase, conv_cases
from checks.tolerances import assert_matches, reference_conv
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
)
from constructions.blocks import patch_blocks, pixel_blocks
from constructions.geometry import kernel_support, patch_neighbourhood

PATHS = ["sdpa", "reference", "local"]


def _pixel_output(
    case: ConvCase, target, attention: str, **options
) -> tuple[torch.Tensor, torch.Tensor, int]:
    device, dtype = target
    conv = case.conv(dtype, device)
    x = case.image(dtype=dtype, device=device)
    layer = pixel_mhsa_from_conv(conv, case.image_size, attention=attention, **options)
    with torch.no_grad():
        out = pixels_to_image(layer(image_to_pixels(x)), case.image_size)
    return out, reference_conv(conv, x, dtype), layer.num_heads


def _patch_output(
    case: ConvCase, target, attention: str, **options
) -> tuple[torch.Tensor, torch.Tensor, int]:
    device, dtype = target
    P = case.patch_size
    conv = case.conv(dtype, device)
    x = case.image(dtype=dtype, device=device)
    layer = patch_mhsa_from_conv(conv, case.image_size, P, attention=attention, **options)
    with torch.no_grad():
        out = patches_to_image(layer(image_to_patches(x, P)), P, case.image_size)
    return out, reference_conv(conv, x, dtype), layer.num_heads


@pytest.mark.parametrize("attention", PATHS)
@given(case=conv_cases())
def test_pixel_layer_matches_conv_at_every_token(case: ConvCase, target, attention: str) -> None:
    out, expected, heads = _pixel_output(case, target, attention)
    assert_matches(out.cpu(), expected.cpu(), target[1], f"pixel layer {case}")
    assert heads == len(kernel_support(case.kernel_size, case.dilation))


@pytest.mark.parametrize("attention", PATHS)
@given(case=conv_cases())
def test_patch_layer_matches_conv_at_every_token(case: ConvCase, target, attention: str) -> None:
    out, expected, heads = _patch_output(case, target, attention)
    assert_matches(out.cpu(), expected.cpu(), target[1], f"patch layer {case}")
    assert heads == len(patch_neighbourhood(case.kernel_size, case.patch_size, case.dilation))


@st.composite
def _odd_kernel_dilation_at_most_p(draw: st.DrawFn) -> tuple[int, int, int]:
    P = draw(st.integers(1, 6))
    return draw(st.sampled_from([3, 5, 7, 9])), P, draw(st.integers(1, P))


@given(kpd=_odd_kernel_dilation_at_most_p())
def test_patch_layer_has_nine_heads_exactly_when_the_reach_is_at_most_p(
    kpd: tuple[int, int, int],
) -> None:
    """T2: |N| = (2⌈r/P⌉ + 1)², 9 exactly when r ≤ P, for odd k and dilation d ≤ P."""
    k, P, d = kpd
    reach = d * (k - 1) // 2
    conv = torch.nn.Conv2d(1, 1, k, padding="same", dilation=d)
    layer = patch_mhsa_from_conv(conv, (P * (reach + 2),) * 2, P)
    assert (layer.num_heads == 9) == (reach <= P)
    assert layer.num_heads == (2 * -(-reach // P) + 1) ** 2


def test_a_dilation_larger_than_p_leaves_gaps_in_the_neighbourhood() -> None:
    """k = 3, d = 5, P = 2: ⌊(p + δ)/2⌋ for p ∈ {0, 1}, δ ∈ {−5, 0, 5} is {−3, −2, 0, 2, 3}."""
    conv = torch.nn.Conv2d(1, 1, 3, padding="same", dilation=5)
    layer = patch_mhsa_from_conv(conv, (8, 8), 2)
    assert layer.num_heads == 5 * 5  # not (2⌈5/2⌉ + 1)² = 49


def _ranks(blocks: torch.Tensor) -> np.ndarray:
    return np.linalg.matrix_rank(blocks.double().numpy())


@settings(max_examples=20)
@given(case=conv_cases(), head_dim=st.integers(1, 4), tokens=st.sampled_from(["pixel", "patch"]))
def test_head_dim_budget_gives_ceil_rank_over_head_dim_heads_and_stays_exact(
    case: ConvCase, head_dim: int, tokens: str, target
) -> None:
    conv = case.conv()
    if tokens == "pixel":
        out, expected, heads = _pixel_output(case, target, "sdpa", head_dim=head_dim)
        blocks = pixel_blocks(conv.weight.detach(), case.groups, case.dilation)[1]
    else:
        out, expected, heads = _patch_output(case, target, "sdpa", head_dim=head_dim)
        blocks = patch_blocks(conv.weight.detach(), case.patch_size, case.groups, case.dilation)[1]
    assert_matches(out.cpu(), expected.cpu(), target[1], f"{tokens} layer, head_dim={head_dim}")
    if head_dim < min(blocks.shape[1:]):
        assert heads == max(1, int(np.sum(-(-_ranks(blocks) // head_dim))))


@given(case=conv_cases(max_kernel=3, max_patch=2))
def test_layers_never_produce_nan_even_on_an_all_border_grid(case: ConvCase) -> None:
    for make in (_pixel_output, _patch_output):
        out, _, _ = make(case, ("cpu", torch.float32), "reference")
        assert torch.isfinite(out).all()


def test_constructed_weights_follow_the_spec_recipe() -> None:
    """W_Q = W_K = 0, one finite (zero) table entry per head at its offset, sink at −10⁴."""
    conv = torch.nn.Conv2d(2, 3, 3, padding="same", dtype=torch.float64)
    layer = patch_mhsa_from_conv(conv, (8, 12), 2)
    assert not layer.w_q.any() and not layer.w_k.any()
    finite = torch.isfinite(layer.rel_bias)
    assert (finite.sum(dim=(1, 2)) == 1).all()
    gh, gw = layer.grid_size
    where = finite.flatten(1).float().argmax(1)
    offsets = torch.stack([where // (2 * gw - 1) - (gh - 1), where % (2 * gw - 1) - (gw - 1)], 1)
    assert offsets.tolist() == patch_neighbourhood(3, 2).tolist()
    assert (layer.sink_bias == -1.0e4).all()
    torch.testing.assert_close(
        torch.einsum("hed,hdf->hef", layer.w_v, layer.w_o),
        patch_blocks(conv.weight.detach(), 2)[1],
        rtol=0,
        atol=0,
    )


@given(case=conv_cases(), qk_dim=st.integers(1, 3))
def test_any_query_key_width_gives_the_same_exact_layer(case: ConvCase, qk_dim: int) -> None:
    out, expected, _ = _patch_output(case, ("cpu", torch.float64), "sdpa", qk_dim=qk_dim)
    assert_matches(out, expected, torch.float64, f"qk_dim={qk_dim}")
