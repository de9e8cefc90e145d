"""T1/T2 sufficient and T3 necessary head counts (theory.bounds), against independent references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases

from constructions.blocks import patch_blocks
from constructions.geometry import patch_neighbourhood
from theory import head_bounds, heads_necessary, heads_sufficient
from theory.bounds import kernel_shape, structural_bound
from theory.coefficients import coefficient_matrix, patch_block, term_rank
from theory.exact import rank_domainmatrix
from theory.witnesses import random_witness


@st.composite
def shapes(draw: st.DrawFn, odd_dense: bool = False) -> dict:
    """Draw a kernel shape and patch size (P = None for pixel tokens)."""
    if odd_dense:
        kh = kw = draw(st.sampled_from([1, 3, 5, 7]), label="k")
        dilation = 1
    else:
        kh, kw = draw(st.integers(1, 6), label="kh"), draw(st.integers(1, 6), label="kw")
        dilation = draw(st.integers(1, 3), label="dilation")
    groups = draw(st.integers(1, 2), label="groups")
    return dict(
        kernel_size=(kh, kw),
        patch_size=draw(st.one_of(st.none(), st.integers(1, 4)), label="P"),
        dilation=dilation,
        in_channels=groups * draw(st.integers(1, 2), label="C/g"),
        out_channels=groups * draw(st.integers(1, 3), label="D/g"),
        groups=groups,
    )


def test_the_spec_examples_come_out_right() -> None:
    # T1–T3: |S| = k² and s = min(|S|, C·D) = min(25, 64) = 25 for pixels; reach 2 ≤ P = 16 gives
    # |N| = 9 and s = min(9, 31²·64) = 9 for patches.
    assert (
        heads_sufficient(5, in_channels=8, out_channels=8),
        heads_necessary(5, in_channels=8, out_channels=8),
    ) == (25, 25)
    assert (
        heads_sufficient(5, 16, in_channels=8, out_channels=8),
        heads_necessary(5, 16, in_channels=8, out_channels=8),
    ) == (9, 9)
    # C·D = 1: every M_δ is a scalar, so s = 1 (T3's C·D condition).
    assert heads_necessary(3, in_channels=1, out_channels=1) == 1
    # k = 7, P = 2: |N| = 25, but G has (2P−1)²·C·D = 9 columns, so s = 9.
    assert heads_sufficient(7, 2) == 25 and heads_necessary(7, 2) == 9
    # T3: P = 2, k = 9, C = 1, D = 2 gives 18 = 9·2 columns < |N| = 25.
    assert heads_necessary(9, 2, out_channels=2) == 18


@given(case=conv_cases(max_kernel=4, max_patch=3))
def test_coefficient_rows_rebuild_the_blocks_of_constructions(case) -> None:
    weight = torch.randint(-9, 10, case.conv().weight.shape, dtype=torch.int64)
    for P in (None, case.patch_size):
        offsets, G = coefficient_matrix(weight, P, groups=case.groups, dilation=case.dilation)
        if P is None:
            ref = patch_blocks(weight, 1, case.groups, case.dilation)[1]
        else:
            ref_offsets, ref = patch_blocks(weight, P, case.groups, case.dilation)
            assert (ref_offsets == offsets).all()
        rebuilt = np.stack(
            [patch_block(G, i, P, case.in_channels, case.out_channels) for i in range(len(G))]
        )
        assert np.array_equal(rebuilt, ref.numpy())


@given(shape=shapes(), seed=st.integers(0, 2**16))
def test_generic_span_equals_the_exact_rank_of_an_independent_random_kernel(shape, seed) -> None:
    P = shape.pop("patch_size")
    bounds = head_bounds(patch_size=P, **shape)
    ks = kernel_shape(**shape)
    other = random_witness(ks.weight_shape(), seed + 1)
    G = coefficient_matrix(other, P, groups=ks.groups, dilation=ks.dilation)[1]
    rank = rank_domainmatrix(G)  # sympy, independent of the FLINT route
    assert rank <= bounds.upper_bound
    assert rank == bounds.span_dim  # both random kernels attain the generic rank
    assert bounds.tight == (bounds.span_dim == structural_bound(ks, P))


@given(shape=shapes(odd_dense=True))
def test_spec_formula_holds_for_dense_odd_kernels(shape) -> None:
    P = shape.pop("patch_size")
    ks = kernel_shape(**shape)
    n = len(patch_neighbourhood(ks.kernel_size, P or 1))
    columns = (2 * (P or 1) - 1) ** 2 * ks.in_channels * ks.out_channels // ks.groups
    b = head_bounds(patch_size=P, **shape)
    assert b.span_dim == min(n, columns) and b.tight


def test_structural_bound_can_be_below_min_of_rows_and_columns() -> None:
    # k = 6×1, d = 2, P = 3 (derived in structural_bound's docstring): rows Δ ∈ {−2, 0, 2} only
    # meet odd e, rows {−1, 1} only even e, so rank ≤ 2 + 2 = 4 < min(|N|, columns) = 5.
    ks = kernel_shape((6, 1), dilation=2)
    assert structural_bound(ks, 3) == 4
    assert head_bounds((6, 1), 3, dilation=2).span_dim == 4


def _brute_term_rank(pattern: np.ndarray) -> int:
    rows, cols = pattern.shape
    for r in range(min(rows, cols), 0, -1):
        for rs in itertools.combinations(range(rows), r):
            for cs in itertools.permutations(range(cols), r):
                if all(pattern[i, j] for i, j in zip(rs, cs, strict=True)):
                    return r
    return 0


@given(
    pattern=st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=4),
    mult=st.integers(1, 2),
)
def test_term_rank_is_the_largest_matching(pattern, mult) -> None:
    a = np.array(pattern, dtype=bool)
    assert term_rank(a, mult) == _brute_term_rank(np.repeat(a, mult, axis=1))


@given(case=conv_cases(max_kernel=4, max_patch=3))
def test_a_concrete_kernel_needs_at_most_its_sufficient_heads(case) -> None:
    conv = case.conv()
    for P in (None, case.patch_size):
        b = head_bounds(kernel=conv, patch_size=P)
        assert b.concrete and b.span_dim <= b.upper_bound <= b.offsets == b.sufficient
        assert b.necessary == b.span_dim


def test_head_dim_budget_gives_the_stacked_rank_bound() -> None:
    # Pixel, C = D = 8, k = 5, head dim 2: T1 needs 25·⌈8/2⌉ = 100 heads; T3 needs
    # max(25, ⌈rank[M_δ]_vertical / 2⌉) with the vertical stack 200×8 of rank 8: 25.
    b = head_bounds(5, in_channels=8, out_channels=8, head_dim=2)
    assert (b.sufficient, b.necessary, b.stacked_ranks) == (100, 25, (8, 8))
    # Head dim 1, C = 2, D = 40, k = 3: s = 9, but the vertical stack (9·2) × 40 has rank 18, so
    # N_h ≥ 18 > s; T1 with a head per singular direction uses Σ_δ rank(M_δ) = 9·2 = 18: tight.
    b = head_bounds(3, in_channels=2, out_channels=40, head_dim=1)
    assert (b.span_dim, b.sufficient, b.necessary, b.stacked_ranks) == (9, 18, 18, (18, 2))


def test_patch_head_dim_bound_never_exceeds_the_sufficient_heads() -> None:
    for k, P, C, D, Dh in [(3, 2, 2, 3, 2), (5, 2, 1, 2, 1), (3, 4, 3, 8, 16)]:
        b = head_bounds(k, P, in_channels=C, out_channels=D, head_dim=Dh)
        assert b.span_dim <= b.necessary <= b.sufficient


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(kernel_size=0), ValueError, r"^kernel_size must be an integer >= 1, got 0$"),
        (
            dict(kernel_size=3, patch_size=-2),
            ValueError,
            r"^patch_size must be an integer >= 1, got -2$",
        ),
        (dict(kernel_size=2.5), TypeError, r"^kernel_size must be an integer >= 1, got 2\.5$"),
        (
            dict(kernel_size=3, in_channels=3, groups=2),
            ValueError,
            r"^groups=2 must divide in_channels=3$",
        ),
        (dict(kernel_size=3, head_dim=0), ValueError, r"^head_dim must be an integer >= 1, got 0$"),
        (dict(kernel_size="3"), TypeError, r"^kernel_size must be an integer >= 1, got '3'$"),
    ],
    ids=["zero-kernel", "negative-patch", "float-kernel", "groups", "head-dim", "string"],
)
def test_bad_arguments_raise_a_clear_error(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        head_bounds(**kwargs)


@st.composite
def nd_shapes(draw: st.DrawFn) -> dict:
    """Draw a 1-D or 3-D kernel shape with per-axis kernel, dilation and patch sizes."""
    d = draw(st.sampled_from([1, 3]), label="d")
    axis = st.integers(1, 3 if d == 3 else 6)
    return dict(
        kernel_size=tuple(draw(axis, label="k") for _ in range(d)),
        patch_size=draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * d)), label="P"),
        dilation=tuple(draw(st.integers(1, 2), label="dilation") for _ in range(d)),
        in_channels=draw(st.integers(1, 2), label="C"),
        out_channels=draw(st.integers(1, 2), label="D"),
    )


@given(shape=nd_shapes(), seed=st.integers(0, 2**16))
def test_one_and_three_d_bounds_equal_a_brute_force_rank_of_the_blocks(shape, seed) -> None:
    # brute force: the exact rank of the stacked blocks M_Δ of a random kernel, built by
    # constructions.blocks (index arithmetic on the convolution), not through G
    P = shape.pop("patch_size")
    bounds = head_bounds(patch_size=P, **shape)
    ks = kernel_shape(**shape)
    weight = random_witness(ks.weight_shape(), seed + 7)
    blocks = patch_blocks(weight, P or (1,) * ks.dims, 1, ks.dilation)[1]
    assert rank_domainmatrix(blocks.reshape(len(blocks), -1).numpy()) == bounds.span_dim
    assert bounds.sufficient == len(patch_neighbourhood(ks.kernel_size, P or 1, ks.dilation))


def test_pixel_and_channel_rich_shapes_need_no_matrix_at_all() -> None:
    # pixel tokens, or C·D/g ≥ |N|: s = min(|N|, C·D/g) in closed form, at any size
    b = head_bounds(4000, in_channels=3000, out_channels=3000)
    assert (b.sufficient, b.span_dim, b.tight) == (16_000_000, 9_000_000, True)
    b = head_bounds(3, 16, in_channels=768, out_channels=768)
    assert (b.span_dim, b.upper_bound) == (9, 9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kernel_size=40000, patch_size=2), r"the coefficient pattern would have \|N\|"),
        (dict(kernel_size=2**32), r"^kernel_size=4294967296 is too large: at most 2147483648"),
        (dict(kernel_size=3, patch_size=2, dilation=2**40), r"^dilation=1099511627776 is too"),
    ],
    ids=["pattern", "kernel", "dilation"],
)
def test_huge_shapes_are_refused_at_once_naming_the_size(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        head_bounds(**kwargs)


def test_bfloat16_kernels_have_exact_bounds() -> None:
    conv = torch.nn.Conv2d(2, 2, 3, padding="same", dtype=torch.bfloat16)
    assert head_bounds(kernel=conv, patch_size=2).span_dim == 9
    assert heads_necessary(kernel=conv.weight.detach()) == 4
