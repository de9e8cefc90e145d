"""T4 layers (theory.tightness): the minimum heads, exact inside, circular and explicitly padded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import conv_cases
from tolerances import assert_matches, reference_conv
from torch import nn

from constructions import image_to_patches, patches_to_image
from constructions.geometry import patch_neighbourhood
from theory import tight_mhsa_from_conv, tight_plan
from theory.minimum import minimum_heads


def _run(layer: nn.Module, conv: nn.Conv2d, x: torch.Tensor, P: int) -> torch.Tensor:
    return patches_to_image(layer(image_to_patches(x, P)), P, tuple(x.shape[2:]))


def _low_rank_conv(case, dtype: torch.dtype, sign_constant: bool) -> nn.Conv2d:
    """Return the case's conv with an integer kernel u_o v_c w(i, j) (rank one in every sense)."""
    conv = case.conv(dtype)
    gen = torch.Generator().manual_seed(case.seed)
    lo = 1 if sign_constant else -3
    spatial = torch.randint(lo, 4, conv.weight.shape[2:], generator=gen).to(dtype)
    u = torch.randint(1, 4, (conv.weight.shape[0], 1, 1, 1), generator=gen).to(dtype)
    v = torch.randint(1, 4, (1, conv.weight.shape[1], 1, 1), generator=gen).to(dtype)
    with torch.no_grad():
        conv.weight.copy_(u * v * spatial)
    return conv


@given(case=conv_cases(max_kernel=5, max_patch=3), sign_constant=st.booleans(), pixel=st.booleans())
def test_tight_layer_equals_the_convolution_on_every_token_with_circular_or_explicit_padding(
    case, sign_constant, pixel
) -> None:
    dtype = torch.float64
    conv = _low_rank_conv(case, dtype, sign_constant)
    P = 1 if pixel else case.patch_size
    layer = tight_mhsa_from_conv(conv, case.image_size, None if pixel else P, explicit_padding=True)
    x = case.image(dtype=dtype)
    assert_matches(_run(layer, conv, x, P), reference_conv(conv, x, dtype), dtype)
    circular = case.padding_mode == "circular"
    m = minimum_heads(conv, None if pixel else P, image_size=case.image_size if circular else None)
    assert layer.num_heads == max(m.heads, 1) and m.heads in (m.span_dim, m.span_dim + 1)


@given(case=conv_cases(max_kernel=5, max_patch=3))
def test_tight_layer_is_exact_on_interior_tokens_with_plain_zero_padding(case) -> None:
    assume(case.padding_mode == "zeros")
    conv = _low_rank_conv(case, torch.float64, True)
    P = case.patch_size
    layer = tight_mhsa_from_conv(conv, case.image_size, P)
    x = case.image()
    out, ref = _run(layer, conv, x, P), reference_conv(conv, x, torch.float64)
    offsets = patch_neighbourhood(case.kernel_size, P, case.dilation)
    lo, hi = np.maximum(0, -offsets.min(0)), np.maximum(0, offsets.max(0))
    gh, gw = case.grid
    assume(lo[0] + hi[0] < gh and lo[1] + hi[1] < gw)  # some interior patch exists
    rows = slice(lo[0] * P, (gh - hi[0]) * P)
    cols = slice(lo[1] * P, (gw - hi[1]) * P)
    assert_matches(out[..., rows, cols], ref[..., rows, cols], torch.float64, "interior")


def test_plain_zero_padding_is_not_exact_at_the_border_when_a_head_is_spread() -> None:
    # A 3×3 box blur on pixels: one head spread evenly over 9 keys. At the corner only 4 keys
    # exist and softmax renormalises: the layer gives the mean of 4 pixels times 9, not their sum.
    conv = nn.Conv2d(1, 1, 3, padding="same", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    layer = tight_mhsa_from_conv(conv, (6, 6))
    assert layer.num_heads == 1
    x = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    out = _run(layer, conv, x, 1)
    assert out[0, 0, 0, 0].item() == pytest.approx(9.0) and conv(x)[0, 0, 0, 0].item() == 4.0
    explicit = tight_mhsa_from_conv(conv, (6, 6), explicit_padding=True)
    assert_matches(_run(explicit, conv, x, 1), conv(x), torch.float64, "explicit padding")


@pytest.mark.parametrize(
    ("weight", "groups", "heads", "kind"),
    [
        (torch.ones(4, 1, 5, 5), 4, 1, "positive vector"),  # per-channel box blur: s = 1
        (torch.tensor([[[[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]]]), 1, 2, "obstruction"),  # Sobel
        (
            torch.outer(torch.tensor([1.0, 4, 6, 4, 1]), torch.tensor([1.0, 4, 6, 4, 1]))[
                None, None
            ],
            1,
            1,
            "positive vector",
        ),  # separable binomial blur
        (torch.randint(-5, 6, (3, 3, 3, 3)).double(), 1, 9, "positive vector"),  # s = |S| = 9
    ],
    ids=["depthwise-blur", "sobel", "separable", "generic"],
)
def test_low_rank_kernels_need_far_fewer_heads_than_k_squared(weight, groups, heads, kind) -> None:
    plan = tight_plan(weight.double(), groups=groups)
    assert plan.heads == heads and plan.kind == kind
    assert np.allclose(plan.attention.sum(0), 1) and (plan.attention >= 0).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(image_size=(4, 4), patch_size=8),
            ValueError,
            r"^patch_size=\(8, 8\) is larger than image_size=\(4, 4\)",
        ),
        (
            dict(image_size=(6, 6), patch_size=4),
            ValueError,
            r"^image_size=\(6, 6\) is not divisible by patch_size=\(4, 4\)",
        ),
        (dict(image_size=(0, 6)), ValueError, r"^image_size must be an integer >= 1, got 0$"),
        (dict(image_size=6, patch_size=1.5), TypeError, r"^patch_size must be an integer >= 1"),
    ],
    ids=["patch-larger-than-image", "not-divisible", "zero-image", "float-patch"],
)
def test_bad_arguments_raise_a_clear_error(kwargs, error, match) -> None:
    conv = nn.Conv2d(1, 1, 3, padding="same")
    with pytest.raises(error, match=match):
        tight_mhsa_from_conv(conv, **kwargs)
