"""Token layouts of SPEC §1: pixel tokens and ViT patch tokens, and their inverses.

Dimension letters: B batch, C channels, H×W image, P patch side, h×w patch grid (H/P × W/P).

* pixel tokens: `(B, H·W, C)`, row-major (`t = y·W + x`);
* patch tokens: `(B, h·w, P·P·C)`, patches row-major, each flattened in
  `(row-in-patch, column-in-patch, channel)` order.

>>> import torch
>>> x = torch.arange(2 * 4 * 6.).reshape(1, 2, 4, 6)
>>> image_to_patches(x, 2).shape, image_to_pixels(x).shape
(torch.Size([1, 6, 8]), torch.Size([1, 24, 2]))
>>> bool((patches_to_image(image_to_patches(x, 2), 2, (4, 6)) == x).all())
True
"""

from __future__ import annotations

import torch
from einops import rearrange

from theory._validate import positive_int, positive_pair

__all__ = ["image_to_patches", "image_to_pixels", "patches_to_image", "pixels_to_image"]


def _check_tensor(x: object, name: str, ndim: int, layout: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")
    return x


def image_to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Return the pixel tokens `(B, H·W, C)` of an image `(B, C, H, W)`. SPEC §1."""
    x = _check_tensor(x, "x", 4, "(B, C, H, W)")
    return rearrange(x, "b c h w -> b (h w) c")


def pixels_to_image(t: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Return the image `(B, C, H, W)` whose pixel tokens are `t` `(B, H·W, C)`. SPEC §1."""
    t = _check_tensor(t, "t", 3, "(B, H·W, C)")
    H, W = positive_pair(image_size, "image_size")
    if t.shape[1] != H * W:
        raise ValueError(f"t has {t.shape[1]} tokens but image_size={(H, W)} needs H·W = {H * W}")
    return rearrange(t, "b (h w) c -> b c h w", h=H, w=W)


def _patch_grid(image_size: tuple[int, int], P: int) -> tuple[int, int]:
    H, W = image_size
    if P > min(H, W):
        raise ValueError(f"patch_size={P} is larger than the image {(H, W)}")
    if H % P or W % P:
        raise ValueError(
            f"image size {(H, W)} is not divisible by patch_size={P}: "
            "patch tokens need H and W to be multiples of the patch size"
        )
    return H // P, W // P


def image_to_patches(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Return the patch tokens `(B, h·w, P·P·C)` of an image `(B, C, H, W)`. SPEC §1.

    Same as einops `b c (h p1) (w p2) -> b (h w) (p1 p2 c)`; H and W must be multiples of P.
    """
    x = _check_tensor(x, "x", 4, "(B, C, H, W)")
    P = positive_int(patch_size, "patch_size")
    _patch_grid((x.shape[2], x.shape[3]), P)
    return rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P)


def patches_to_image(
    t: torch.Tensor, patch_size: int, image_size: int | tuple[int, int]
) -> torch.Tensor:
    """Return the image `(B, C, H, W)` whose patch tokens are `t` `(B, h·w, P·P·C)`. SPEC §1."""
    t = _check_tensor(t, "t", 3, "(B, h·w, P·P·C)")
    P = positive_int(patch_size, "patch_size")
    h, w = _patch_grid(positive_pair(image_size, "image_size"), P)
    if t.shape[1] != h * w:
        raise ValueError(f"t has {t.shape[1]} tokens but the {h}×{w} patch grid needs {h * w}")
    if t.shape[2] % (P * P):
        raise ValueError(f"t has token dim {t.shape[2]}, not a multiple of P·P = {P * P}")
    return rearrange(t, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=h, w=w, p1=P, p2=P)
