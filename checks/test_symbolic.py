"""Symbolic proofs (theory.symbolic): construction identity, softmax limit, generic ranks."""

from __future__ import annotations

import itertools

import pytest
import sympy

from theory import head_bounds
from theory.symbolic import construction_residuals, generic_rank, softmax_limit

GRID = [
    (k, P, circular)
    for k, P, circular in itertools.product(range(1, 6), (None, 1, 2, 3), (False, True))
]


@pytest.mark.parametrize(
    ("k", "P", "circular"),
    GRID,
    ids=[f"k{k}-{'pixel' if P is None else f'P{P}'}-{'circ' if c else 'zero'}" for k, P, c in GRID],
)
def test_construction_is_a_polynomial_identity_on_every_token(k, P, circular) -> None:
    assert construction_residuals(k, P, in_channels=2, out_channels=2, circular=circular) == []


@pytest.mark.parametrize(
    ("kernel", "P", "dilation"),
    [((2, 3), 2, 2), ((3, 1), 3, 2), ((4, 2), None, 1)],
    ids=["rect-dilated-patch", "tall-dilated-patch", "even-pixel"],
)
def test_construction_identity_holds_for_even_rectangular_and_dilated_kernels(
    kernel, P, dilation
) -> None:
    assert construction_residuals(kernel, P, out_channels=2, dilation=dilation) == []


def test_identity_check_detects_a_wrong_reference() -> None:
    # On the smallest grid a zero-padded layer and a circular convolution differ at the border:
    # the residuals must then be non-empty, or the check could never fail.
    from theory import symbolic

    original = symbolic.symbolic_conv
    try:
        symbolic.symbolic_conv = lambda w, b, x, d, circular: original(w, b, x, d, not circular)
        assert construction_residuals(3, 2) != []
    finally:
        symbolic.symbolic_conv = original


def test_finite_temperature_softmax_tends_to_the_one_hot_weights() -> None:
    limits = softmax_limit(keys=5)
    assert limits == {"target": 1, "other": 0, "sink_when_absent": 1, "leak_rate": 1}
    assert all(isinstance(v, sympy.Integer) for v in limits.values())


@pytest.mark.parametrize(
    ("shape", "P"),
    [
        (dict(kernel_size=3, in_channels=2, out_channels=2), None),
        (dict(kernel_size=3), 2),
        (dict(kernel_size=(2, 2), dilation=2, out_channels=2), 2),  # witness 7 < structural 8
        (dict(kernel_size=(2, 2), dilation=3, in_channels=2), 3),
        (dict(kernel_size=(1, 3), in_channels=2, out_channels=2, groups=2), 2),
    ],
    ids=["pixel", "patch-3x3", "not-tight-d2", "not-tight-d3", "grouped"],
)
def test_generic_rank_over_the_function_field_equals_the_witness_rank(shape, P) -> None:
    assert generic_rank(patch_size=P, **shape) == head_bounds(patch_size=P, **shape).span_dim


@pytest.mark.parametrize(
    ("kernel", "P", "circular"),
    [((3,), None, False), ((5,), 2, False), ((4,), 3, True), ((2, 3, 2), None, False),
     ((3, 3, 3), (1, 2, 2), False), ((3, 2, 3), (2, 1, 2), True)],
    ids=["1d-pixel", "1d-chunks", "1d-even-circular", "3d-voxel", "3d-tubelet",
         "3d-tubelet-circular"],
)  # fmt: skip
def test_construction_identity_holds_in_one_and_three_dimensions(kernel, P, circular) -> None:
    assert construction_residuals(kernel, P, out_channels=2, circular=circular) == []
