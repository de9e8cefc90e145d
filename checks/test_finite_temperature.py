"""Finite temperature (paper_notes): −β instead of −∞; the error decays like e^(−β), and like
e^(−β/2) with zero padding, whose sink sits halfway at −β/2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from checks.tolerances import assert_matches, relative_error
from constructions import image_to_patches, patch_mhsa_from_conv, patches_to_image

BETAS = np.arange(8.0, 26.0, 2.0)


def _errors(padding_mode: str) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(2, 3, 5, padding="same", padding_mode=padding_mode, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(1, 2, 12, 12, generator=gen, dtype=torch.float64)
    expected = conv(x).detach()
    errors = []
    for beta in BETAS:
        layer = patch_mhsa_from_conv(conv, (12, 12), 3, beta=float(beta))
        with torch.no_grad():
            out = patches_to_image(layer(image_to_patches(x, 3)), 3, (12, 12))
        errors.append(relative_error(out, expected))
    return np.array(errors)


@pytest.mark.parametrize(("padding_mode", "rate"), [("circular", 1.0), ("zeros", 0.5)])
def test_finite_temperature_error_decays_like_exp_minus_rate_beta(
    padding_mode: str, rate: float
) -> None:
    errors = _errors(padding_mode)
    assert np.all(np.diff(errors) < 0), errors
    slope = np.polyfit(BETAS, np.log(errors), 1)[0]
    assert abs(slope + rate) < 0.05 * rate, (slope, errors)


def test_the_exact_layer_is_the_large_beta_limit() -> None:
    conv = nn.Conv2d(1, 1, 3, padding="same", dtype=torch.float64)
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    exact = patch_mhsa_from_conv(conv, (8, 8), 2)
    cold = patch_mhsa_from_conv(conv, (8, 8), 2, beta=200.0)
    with torch.no_grad():
        assert_matches(cold(image_to_patches(x, 2)), exact(image_to_patches(x, 2)), torch.float64)
