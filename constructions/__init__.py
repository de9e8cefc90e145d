"""MHSA layers built from convolutions (T1, T2), the geometry they share, token layouts, exporters.

This package is the ground of the project: it imports nothing from `theory`, `figures`,
`pipeline` or `benchmarks` (see README, Layout). The timm exporters are in
`constructions.export_timm` (extra `timm`).
"""

from constructions.convert import ConvAttention, ConversionReport, convert
from constructions.export import ExportedAttention, make_target
from constructions.export_torch import export_to_sdpa, export_to_torch_mha
from constructions.from_conv import mhsa_from_conv, patch_mhsa_from_conv, pixel_mhsa_from_conv
from constructions.mhsa import RelPosMHSA
from constructions.tokens import (
    from_tokens,
    image_to_patches,
    image_to_pixels,
    patches_to_image,
    pixels_to_image,
    to_tokens,
)

__all__ = [
    "ConvAttention",
    "ConversionReport",
    "ExportedAttention",
    "RelPosMHSA",
    "convert",
    "export_to_sdpa",
    "export_to_torch_mha",
    "from_tokens",
    "image_to_patches",
    "image_to_pixels",
    "make_target",
    "mhsa_from_conv",
    "patch_mhsa_from_conv",
    "patches_to_image",
    "pixel_mhsa_from_conv",
    "pixels_to_image",
    "to_tokens",
]
