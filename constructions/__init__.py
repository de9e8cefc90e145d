"""MHSA layers built from convolutions (SPEC T1, T2), token layouts, and exporters."""

from constructions.export import (  # the timm exporters: constructions.export_timm (extra `timm`)
    ExportedAttention,
    export_to_sdpa,
    export_to_torch_mha,
    make_target,
)
from constructions.from_conv import patch_mhsa_from_conv, pixel_mhsa_from_conv
from constructions.mhsa import RelPosMHSA
from constructions.tokens import (
    image_to_patches,
    image_to_pixels,
    patches_to_image,
    pixels_to_image,
)

__all__ = [
    "ExportedAttention",
    "RelPosMHSA",
    "export_to_sdpa",
    "export_to_torch_mha",
    "image_to_patches",
    "image_to_pixels",
    "make_target",
    "patch_mhsa_from_conv",
    "patches_to_image",
    "pixel_mhsa_from_conv",
    "pixels_to_image",
]
