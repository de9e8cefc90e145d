"""ViT-scale cases (paper_notes, T1 and T2): a 224×224 image in 16×16 patches and a 56×56
pixel-token image.

On the CPU they run in float32; with `--gpu` on CUDA in every dtype of the tolerance table. With
`--gpu` only: a 224×224 pixel-token layer (50 176 tokens) through the local path on CUDA in
float32 and bfloat16, FlexAttention by default and the gather path beside it (the CPU runs of
the same size are in checks/test_local_attention.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from checks.conftest import compute_targets
from checks.tolerances import TOLERANCE, assert_matches, reference_conv
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scale_target" not in metafunc.fixturenames:
        return
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


def _pixel_224(dtype: torch.dtype, backend: str) -> tuple[torch.Tensor, torch.Tensor, object]:
    """Return (layer output as an image, F.conv2d reference, layer) on CUDA, 3×3, 16 → 16."""
    conv = _conv(16, 16, 3, "zeros", "cuda")
    x = torch.randn(1, 16, 224, 224, device="cuda")
    layer = pixel_mhsa_from_conv(conv, 224, dtype=dtype)
    layer.local_backend = backend
    with torch.no_grad():
        out = pixels_to_image(layer(image_to_pixels(x.to(dtype))), 224)
    return out.float().cpu(), reference_conv(conv, x, dtype).cpu(), layer


CUDA_LOCAL = [(torch.float32, "auto"), (torch.bfloat16, "auto"), (torch.float32, "gather"),
              (torch.bfloat16, "gather")]  # fmt: skip


@pytest.mark.cuda
@pytest.mark.parametrize(("dtype", "backend"), CUDA_LOCAL,
                         ids=[f"{str(d).removeprefix('torch.')}-{b}" for d, b in CUDA_LOCAL])
def test_pixel_layer_on_224_by_224_tokens_matches_conv_through_the_local_path_on_cuda(
    dtype: torch.dtype, backend: str
) -> None:
    out, expected, layer = _pixel_224(dtype, backend)
    assert layer.resolved_attention == "local"
    assert_matches(out, expected, dtype, f"224² pixel tokens, {backend}")
    if backend == "gather":
        assert layer.last_local_backend == "gather"


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_the_default_local_path_on_cuda_runs_flex_attention_and_agrees_with_the_gather_path(
    dtype: torch.dtype
) -> None:
    from constructions import local_attention

    flex, expected, layer = _pixel_224(dtype, "auto")
    assert layer.last_local_backend == "flex", local_attention.flex_unavailable(
        layer, torch.zeros(1, dtype=dtype, device="cuda"), forced=True
    )
    gather, _, _ = _pixel_224(dtype, "gather")
    scale = expected.abs().max().item()
    assert (flex - gather).abs().max().item() <= 2 * TOLERANCE[dtype] * scale
