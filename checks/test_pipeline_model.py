"""The CMHSA ViT and its convolutional variant (pipeline.model): token-to-map view, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from constructions.geometry import patch_neighbourhood
from pipeline.model import ConvMixer, ViT, ViTConfig


def _reference_mixer(t: torch.Tensor, conv: torch.nn.Conv2d, grid: tuple[int, int], Pp: int,
                     C: int) -> torch.Tensor:
    """Return conv on the re-assembled map, written with plain reshapes (independent of einops)."""
    B, (h, w) = t.shape[0], grid
    x = t.reshape(B, h, w, Pp, Pp, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, h * Pp, w * Pp)
    y = F.conv2d(x, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)
    return y.reshape(B, C, h, Pp, w, Pp).permute(0, 2, 4, 3, 5, 1).reshape(B, h * w, Pp * Pp * C)


@pytest.mark.parametrize(
    ("image_size", "patch_size", "sub_patch", "sub_channels", "kernel_size"),
    [((8, 8), 2, 2, 3, 3), ((8, 12), 2, 2, 2, 5), ((12, 8), 4, 3, 2, 7), ((6, 6), 3, 1, 4, 3)],
    ids=["square-k3", "wide-k5", "tall-k7-P3", "P1-k3"],
)
def test_conv_mixer_is_the_convolution_of_the_reassembled_map(
    image_size: tuple[int, int], patch_size: int, sub_patch: int, sub_channels: int,
    kernel_size: int,
) -> None:
    cfg = ViTConfig(image_size=image_size, in_channels=1, num_classes=3, patch_size=patch_size,
                    sub_patch=sub_patch, sub_channels=sub_channels, kernel_size=kernel_size)
    torch.manual_seed(0)
    mixer = ConvMixer(cfg).double()
    t = torch.randn(2, cfg.grid[0] * cfg.grid[1], cfg.dim, dtype=torch.float64)
    expected = _reference_mixer(t, mixer.conv, cfg.grid, sub_patch, sub_channels)
    assert torch.allclose(mixer(t), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [3, 5], ids=["CMHSA-3", "CMHSA-5"])
def test_cmhsa3_and_cmhsa5_both_fit_nine_heads_with_sub_patch_two(kernel_size: int) -> None:
    cfg = ViTConfig(image_size=8, in_channels=1, num_classes=10, sub_patch=2,
                    kernel_size=kernel_size)
    assert len(patch_neighbourhood(kernel_size, cfg.sub_patch)) == 9 == cfg.num_heads
    model = ViT(cfg, "mhsa")
    assert [m.num_heads for m in model.mixers()] == [9] * cfg.depth
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_both_variants_share_every_weight_name_outside_the_mixers() -> None:
    cfg = ViTConfig(image_size=8, in_channels=1, num_classes=10)
    conv_keys = {k for k in ViT(cfg, "conv").state_dict() if ".mixer." not in k}
    mhsa_keys = {k for k in ViT(cfg, "mhsa").state_dict() if ".mixer." not in k}
    assert conv_keys == mhsa_keys
    assert {"embed.weight", "head.weight", "norm.weight", "blocks.1.mlp.0.weight"} <= conv_keys


@pytest.mark.parametrize(("kernel_size", "sub_patch"), [(7, 2), (5, 1), (4, 2), (1, 2)],
                         ids=["k7-P2", "k5-P1", "even", "k1"])
def test_a_kernel_beyond_nine_heads_is_rejected_naming_the_allowed_sizes(
    kernel_size: int, sub_patch: int
) -> None:
    with pytest.raises(ValueError, match=rf"^kernel_size={kernel_size} with sub_patch={sub_patch}"
                       r": .*allowed kernel sizes: \["):
        ViTConfig(image_size=8, in_channels=1, num_classes=10, sub_patch=sub_patch,
                  kernel_size=kernel_size)


def test_an_image_size_not_divisible_by_the_patch_size_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^image_size=\(10, 10\) is not divisible by "
                       r"patch_size=4: .*patch_size in \[1, 2, 5, 10\]"):
        ViTConfig(image_size=10, in_channels=1, num_classes=10, patch_size=4)


def test_a_token_grid_smaller_than_the_kernel_reach_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^image_size=\(8, 8\) with patch_size=8 gives a 1×1"):
        ViTConfig(image_size=8, in_channels=1, num_classes=10, patch_size=8)


def test_an_unknown_mixer_and_wrong_images_are_rejected() -> None:
    cfg = ViTConfig(image_size=8, in_channels=1, num_classes=10)
    with pytest.raises(ValueError, match=r"^mixer='attention': expected one of \('conv', 'mhsa'\)"):
        ViT(cfg, "attention")
    with pytest.raises(ValueError, match=r"^x has shape \(2, 3, 8, 8\); this model takes"):
        ViT(cfg, "conv")(torch.zeros(2, 3, 8, 8))
