"""Statements as code: neighbourhoods, head bounds (T1–T3), certificates, exact minima (T4), proofs.

`theory` sits above `constructions` (README, Layout): it uses the geometry and the layers built
there, never the other way round. The stand-alone certificate checker, `theory/checker.py`,
imports nothing of the project at all.
"""

from __future__ import annotations

from constructions.geometry import (
    kernel_reach,
    kernel_support,
    neighbourhood_size,
    patch_neighbourhood,
)
from theory.bounds import HeadBounds, head_bounds, heads_necessary, heads_sufficient
from theory.certificates import Certificate, CertificateError, certify_lower_bound, recheck
from theory.conversion import convert
from theory.minimum import MinimumHeads, minimum_heads
from theory.tightness import tight_mhsa_from_conv, tight_plan

__all__ = [
    "Certificate",
    "CertificateError",
    "HeadBounds",
    "MinimumHeads",
    "certify_lower_bound",
    "convert",
    "head_bounds",
    "heads_necessary",
    "heads_sufficient",
    "kernel_reach",
    "kernel_support",
    "minimum_heads",
    "neighbourhood_size",
    "patch_neighbourhood",
    "recheck",
    "tight_mhsa_from_conv",
    "tight_plan",
]
