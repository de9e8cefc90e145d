"""The convolution strategy reaches the corner cases the equivalence checks are about."""

from __future__ import annotations

import pytest
from hypothesis import find, settings

from checks.strategies import (
    ConvCase,
    ConvCaseND,
    StridedCase,
    conv_cases,
    conv_cases_nd,
    reach_equals_patch,
    strided_cases,
)

CORNERS = {
    "one-row-grid": lambda c: c.grid[0] == 1,
    "non-square-grid": lambda c: c.grid[0] != c.grid[1],
    "smallest-zero-padded-grid":
        lambda c: c.padding_mode == "zeros" and c.grid[0] == 2 and c.kernel_size[0] >= 3,
    "reach-equals-patch": reach_equals_patch,
    "even-kernel": lambda c: c.kernel_size[0] % 2 == 0 and c.kernel_size[1] % 2 == 0,
    "rectangular-kernel": lambda c: c.kernel_size[0] != c.kernel_size[1],
    "depthwise": lambda c: c.groups > 1 and c.in_per_group == 1 and c.out_per_group == 1,
    "dilated-grouped-circular":
        lambda c: c.groups > 1 and max(c.dilation) > 1 and c.padding_mode == "circular",
    "pixel-patch": lambda c: c.patch_size == 1,
    "no-bias": lambda c: not c.bias,
}  # fmt: skip


@pytest.mark.parametrize("predicate", CORNERS.values(), ids=CORNERS.keys())
def test_conv_strategy_reaches_the_corner_case(predicate) -> None:
    found = find(conv_cases(), predicate, settings=settings(max_examples=5000, database=None))
    assert isinstance(found, ConvCase) and predicate(found)


CORNERS_ND = {
    "one-axis": lambda c: c.dims == 1 and c.patch_size[0] > 1,
    "three-axes": lambda c: c.dims == 3 and max(c.patch_size) > 1,
    "anisotropic-patch": lambda c: len(set(c.patch_size)) > 1,
    "anisotropic-dilation": lambda c: len(set(c.dilation)) > 1,
    "tubelet-circular": lambda c: c.dims == 3 and c.padding_mode == "circular",
    "one-token-axis": lambda c: min(c.grid) == 1,
}


@pytest.mark.parametrize("name", list(CORNERS_ND))
def test_the_nd_strategy_reaches_each_corner_case(name: str) -> None:
    case = find(conv_cases_nd(), CORNERS_ND[name], settings=settings(max_examples=2000))
    assert isinstance(case, ConvCaseND)


CORNERS_STRIDED = {
    "stride-3": lambda c: max(c.stride) == 3,
    "mixed-strides": lambda c: len(set(c.stride)) > 1,
    "patchify-k-equals-s-p-0": lambda c: c.kernel_size[0] == c.stride[0] > 1 and c.padding[0] == 0,
    "resnet-3x3-s2-p1": lambda c: (c.kernel_size[0], c.stride[0], c.padding[0]) == (3, 2, 1),
    "strided-patch-tokens": lambda c: not c.pixels and c.patch_size[0] > c.stride[0] > 1,
    "strided-pixels-circular": lambda c: c.pixels and c.padding_mode == "circular",
    "strided-dilated-depthwise": lambda c: c.groups > 1 and max(c.dilation) > 1,
    "strided-three-axes": lambda c: c.dims == 3,
    "one-token-axis": lambda c: min(c.grid) == 1,
}


@pytest.mark.parametrize("name", list(CORNERS_STRIDED))
def test_the_strided_strategy_reaches_each_corner_case(name: str) -> None:
    case = find(strided_cases(), CORNERS_STRIDED[name], settings=settings(max_examples=2000))
    assert isinstance(case, StridedCase) and any(s > 1 for s in case.stride)
