"""Statements of SPEC.md as code: neighbourhoods, head-count bounds, certificates, symbolic proofs."""

from theory.neighbourhoods import kernel_reach, kernel_support, neighbourhood_size, patch_neighbourhood

__all__ = ["kernel_reach", "kernel_support", "neighbourhood_size", "patch_neighbourhood"]
