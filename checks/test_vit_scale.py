"""ViT-scale cases (SPEC §3): a 224×224 image in 16×16 patches and a 56×56 pixel-token image.

On the CPU they run in float32; with `--gpu` on CUDA in every dtype of the tolerance table.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from checks.conftest import compute_targets
from checks.tolerances import assert_matches, reference_conv
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    targets = [
        t for t in compute_targets(metafunc.config) if t[0] == "cuda" or t[1] == torch.float32
    ]
    ids = [f"{d}-{str(t).removeprefix('torch.')}" for d, t in targets]
    metafunc.parametrize("scale_target", targets, ids=ids)


def _conv(C: int, D: int, k: int, padding_mode: str, device: str) -> nn.Conv2d:
    torch.manual_seed(k)
    return nn.Conv2d(C, D, k, padding="same", padding_mode=padding_mode).to(device)


@pytest.mark.parametrize(("k", "padding_mode"), [(3, "zeros"), (33, "circular")])
def test_vit_base_patch_layer_matches_conv_on_224_images(
    scale_target, k: int, padding_mode: str
) -> None:
    device, dtype = scale_target
    conv = _conv(3, 64, k, padding_mode, device)
    x = torch.randn(1, 3, 224, 224, device=device)
    layer = patch_mhsa_from_conv(conv, 224, 16, dtype=dtype)
    assert layer.num_heads == 9
    with torch.no_grad():
        out = patches_to_image(layer(image_to_patches(x.to(dtype), 16)), 16, (224, 224))
    assert_matches(out.float().cpu(), reference_conv(conv, x, dtype).cpu(), dtype, f"k={k}")


@pytest.mark.parametrize("k", [3, 5])
def test_pixel_layer_matches_conv_on_56_by_56_tokens(scale_target, k: int) -> None:
    device, dtype = scale_target
    conv = _conv(16, 16, k, "zeros", device)
    x = torch.randn(2, 16, 56, 56, device=device)
    layer = pixel_mhsa_from_conv(conv, 56, dtype=dtype)
    assert layer.num_heads == k * k
    with torch.no_grad():
        out = pixels_to_image(layer(image_to_pixels(x.to(dtype))), 56)
    assert_matches(out.float().cpu(), reference_conv(conv, x, dtype).cpu(), dtype, f"k={k}")
