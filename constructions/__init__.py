"""MHSA layers built from convolutions (SPEC T1, T2), token layouts, and exporters."""

from constructions.from_conv import patch_mhsa_from_conv, pixel_mhsa_from_conv
from constructions.mhsa import RelPosMHSA
from constructions.tokens import (
    image_to_patches,
    image_to_pixels,
    patches_to_image,
    pixels_to_image,
)

__all__ = [
    "RelPosMHSA",
    "image_to_patches",
    "image_to_pixels",
    "patch_mhsa_from_conv",
    "patches_to_image",
    "pixel_mhsa_from_conv",
    "pixels_to_image",
]
