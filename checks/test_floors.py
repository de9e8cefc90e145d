"""Numerical lower-bound evidence (theory.floors): Eckart–Young floors and gradient fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from constructions import patch_mhsa_from_conv, pixel_mhsa_from_conv
from constructions.blocks import patch_blocks, pixel_blocks
from theory import head_bounds
from theory.floors import eckart_young_floor, fit_heads, linearisation, singular_values


def _conv(c_in: int, c_out: int, k: int, seed: int) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(c_in, c_out, k, padding="same", padding_mode="circular", dtype=torch.float64)


def test_linearisation_of_the_exact_layers_is_the_convolution_blocks() -> None:
    conv = _conv(2, 3, 3, 0)
    layer = pixel_mhsa_from_conv(conv, (5, 5))
    offsets, M = pixel_blocks(conv.weight.detach(), 1, 1)
    assert torch.equal(linearisation(layer, offsets, (2, 2)), M)
    layer = patch_mhsa_from_conv(conv, (6, 6), 2)
    offsets, M = patch_blocks(conv.weight.detach(), 2)
    assert torch.equal(linearisation(layer, offsets, (1, 1)), M)


def test_singular_values_are_those_of_the_stacked_blocks() -> None:
    conv = _conv(1, 2, 3, 1)
    _, M = patch_blocks(conv.weight.detach(), 2)  # (|N|, E, F)
    direct = np.linalg.svd(M.reshape(len(M), -1).numpy(), compute_uv=False)
    assert np.allclose(singular_values(conv, 2), direct, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("c", "k", "P", "image"),
    [(3, 3, None, (5, 5)), (1, 3, 2, (6, 6))],
    ids=["pixel-C3-k3", "patch-P2-k3"],
)
def test_fits_stay_above_the_floor_below_s_and_reach_zero_at_s(c, k, P, image) -> None:
    conv = _conv(c, c, k, 2)
    s = head_bounds(kernel=conv, patch_size=P).span_dim
    assert s == 9  # generic kernels: s = |N| = 9 in both cases (T3)
    for n in (1, s - 1, s):
        r = fit_heads(conv, n, image, P, steps=60)
        assert r.span_dim == s
        assert r.linear_error >= r.floor * (1 - 1e-9)  # Eckart–Young: no layer does better
        if n < s:
            assert r.floor > 1e-3 * r.scale  # a real gap below s
        else:
            # At s any invertible positive attention matrix works and the value maps are a
            # least-squares solve: only float64 rounding remains.
            assert r.floor == 0 and r.linear_error < 1e-9 * r.scale and r.output_error < 1e-9


def test_floor_vanishes_exactly_from_the_span_dimension_on() -> None:
    conv = nn.Conv2d(2, 2, 3, padding="same", bias=False, dtype=torch.float64)
    with torch.no_grad():  # taps spanning a 3-dimensional space: s = 3
        basis = torch.randint(-3, 4, (3, 2, 2)).double()
        coeff = torch.randint(-3, 4, (9, 3)).double()
        conv.weight.copy_(torch.einsum("tb,bco->octb", coeff, basis).sum(-1).reshape(2, 2, 3, 3))
    s = head_bounds(kernel=conv).span_dim
    floors = [eckart_young_floor(conv, n) for n in range(1, 10)]
    assert all(f > 1e-8 for f in floors[: s - 1]) and all(f < 1e-9 for f in floors[s - 1 :])
