"""Token layouts (paper_notes, Conventions) against independent index arithmetic."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from constructions import image_to_patches, image_to_pixels, patches_to_image, pixels_to_image


@given(B=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 5), W=st.integers(1, 5))
def test_pixel_token_t_is_pixel_y_times_w_plus_x(B: int, C: int, H: int, W: int) -> None:
    x = torch.arange(B * C * H * W).reshape(B, C, H, W)
    t = image_to_pixels(x)
    y, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    tokens = (y * W + xx).flatten()
    assert torch.equal(t[:, tokens, :], x.flatten(2).transpose(1, 2))
    assert torch.equal(pixels_to_image(t, (H, W)), x)


@given(B=st.integers(1, 2), C=st.integers(1, 3), P=st.integers(1, 3), h=st.integers(1, 3),
       w=st.integers(1, 3))  # fmt: skip
def test_patch_token_entries_follow_row_col_channel_order(
    B: int, C: int, P: int, h: int, w: int
) -> None:
    x = torch.arange(B * C * h * P * w * P).reshape(B, C, h * P, w * P)
    t = image_to_patches(x, P)
    assert t.shape == (B, h * w, P * P * C)
    # entry (token i·w + j, feature (p1·P + p2)·C + c) is pixel (c, i·P + p1, j·P + p2)
    i, j, p1, p2, c = torch.meshgrid(*(torch.arange(n) for n in (h, w, P, P, C)), indexing="ij")
    expected = x[:, c, i * P + p1, j * P + p2]  # (B, h, w, P, P, C)
    assert torch.equal(t, expected.reshape(B, h * w, P * P * C))
    assert torch.equal(patches_to_image(t, P, (h * P, w * P)), x)


def test_patches_need_image_sides_divisible_by_the_patch_size() -> None:
    with pytest.raises(
        ValueError, match=r"^input size \(6, 8\) is not divisible by patch_size=\(4, 4\) on axis 0"
    ):
        image_to_patches(torch.zeros(1, 1, 6, 8), 4)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: image_to_pixels(torch.zeros(2, 3, 4)), ValueError,
         r"^x must have shape \(B, C, H, W\)"),
        (lambda: image_to_pixels([[1.0]]), TypeError, r"^x must be a torch.Tensor"),
        (lambda: pixels_to_image(torch.zeros(1, 5, 2), (2, 2)), ValueError, r"^t has 5 tokens"),
        (lambda: image_to_patches(torch.zeros(1, 1, 4, 4), 0), ValueError, r"^patch_size must be"),
        (lambda: image_to_patches(torch.zeros(1, 1, 4, 4), 2.0), TypeError, r"^patch_size must be"),
        (lambda: patches_to_image(torch.zeros(1, 4, 6), 2, (4, 4)), ValueError,
         r"^t has token width 6"),
    ],
    ids=["pixels-3d-image", "pixels-not-tensor", "pixels-wrong-count", "patch-zero",
         "patch-float", "patch-bad-dim"],
)  # fmt: skip
def test_layouts_reject_bad_input_naming_the_parameter(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
