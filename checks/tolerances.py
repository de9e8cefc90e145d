"""Tolerances and the comparison every equivalence check uses (paper_notes, T1–T3).

Errors are max-abs over the whole output (every token, borders included) divided by the output
scale max|expected|. Each tolerance is a few hundred times the unit roundoff of its dtype, room
for sums of a few thousand products, and far below any real mismatch (which is O(1)):

* float64 1e-10: unit roundoff 1.1e-16;
* float32 1e-5: unit roundoff 6.0e-8;
* bfloat16, float16 1e-2: unit roundoff 3.9e-3 and 4.9e-4; the output itself is rounded once.

A NaN or inf is always a failure, whatever the tolerance.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["TOLERANCE", "assert_matches", "reference_conv", "relative_error"]

TOLERANCE: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.bfloat16: 1e-2,
    torch.float16: 1e-2,
}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Return max|actual − expected| / max|expected| (or the plain max-abs if expected is 0)."""
    diff = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    return diff / scale if scale > 0 else diff


def assert_matches(
    actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "output"
) -> float:
    """Assert `actual` equals `expected` within TOLERANCE[dtype] of the scale; return the error."""
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    bad = ~torch.isfinite(actual)
    assert not bad.any(), f"{what}: {int(bad.sum())} non-finite entries of {actual.numel()}"
    tol = TOLERANCE[dtype]
    err = relative_error(actual, expected)
    if err > tol:
        diff = (actual.double() - expected.double()).abs()
        scale = expected.double().abs().max().clamp_min(1e-300)
        worst = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        failing = (diff / scale > tol).double().mean().item()
        raise AssertionError(
            f"{what}: relative error {err:.3e} > {tol:.0e} ({dtype}); worst at {worst}: "
            f"{actual[worst].item():.6g} vs {expected[worst].item():.6g}; "
            f"{failing:.2%} of entries fail"
        )
    return err


def reference_conv(conv: nn.Conv2d, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return PyTorch's convolution in float64 of the `dtype`-rounded weights and input.

    The layer under test sees weights and input rounded to `dtype`; the reference sees the same
    numbers, so the measured error is the layer's own arithmetic, not the input rounding.
    """
    ref = copy.deepcopy(conv).to(dtype).to(torch.float64)
    with torch.no_grad():
        return ref(x.to(dtype).to(torch.float64))
