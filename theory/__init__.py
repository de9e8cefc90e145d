"""Statements of SPEC.md as code: neighbourhoods, head bounds, certificates, proofs, tightness.

`constructions` imports `theory._validate` and `theory.neighbourhoods`, and the bounds import
`constructions`; so the names below that need `constructions` load on first use (PEP 562), which
keeps `import constructions` and `import theory` working in either order.
"""

from __future__ import annotations

import importlib

from theory.neighbourhoods import (
    kernel_reach,
    kernel_support,
    neighbourhood_size,
    patch_neighbourhood,
)

_LAZY = {
    "Certificate": "theory.certificates",
    "HeadBounds": "theory.bounds",
    "certify_lower_bound": "theory.certificates",
    "head_bounds": "theory.bounds",
    "heads_necessary": "theory.bounds",
    "heads_sufficient": "theory.bounds",
    "recheck": "theory.certificates",
    "tight_mhsa_from_conv": "theory.tightness",
    "tight_plan": "theory.tightness",
}

__all__ = [
    "Certificate",
    "HeadBounds",
    "certify_lower_bound",
    "head_bounds",
    "heads_necessary",
    "heads_sufficient",
    "kernel_reach",
    "kernel_support",
    "neighbourhood_size",
    "patch_neighbourhood",
    "recheck",
    "tight_mhsa_from_conv",
    "tight_plan",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'theory' has no attribute {name!r}")
