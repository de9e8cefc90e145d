"""T4: the exact minimum of a given kernel (theory.minimum), s or s + 1, certified either way.

The reference is independent of `theory`: the blocks M_Δ are read off `F.conv2d`'s response to
unit impulses, s is numpy's rank of their stack (small integers: exact in float64), and Gordan's
alternative is decided by scipy's LP on that stack.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from torch import nn

from checks.tolerances import assert_matches
from constructions import from_tokens, to_tokens
from theory import CertificateError, recheck
from theory.minimum import minimum_heads
from theory.tightness import tight_mhsa_from_conv

W1 = [[7, 2, 10], [15, -6, 1], [12, 12, 1]]
W2 = [[1, 11, 1], [-3, 15, 4], [0, 3, 7]]


def _stacked_blocks(weight: torch.Tensor, P: int) -> np.ndarray:
    """Return [vec M_Δ]_Δ (rows Δ) read off F.conv2d: input patch q+Δ → output patch q."""
    D, C, kh, kw = weight.shape
    reach = max(kh, kw)
    m = -(-reach // P) + 1  # patches each side: more than the neighbourhood
    side = (2 * m + 1) * P
    rows = []
    for dy, dx in itertools.product(range(-m, m + 1), repeat=2):
        block = np.zeros((P, P, C, P, P, D))
        for a1, a2, c in itertools.product(range(P), range(P), range(C)):
            x = torch.zeros(1, C, side, side, dtype=torch.float64)
            x[0, c, (m + dy) * P + a1, (m + dx) * P + a2] = 1.0
            y = F.conv2d(x, weight, padding="same")[0, :, m * P : (m + 1) * P, m * P : (m + 1) * P]
            block[a1, a2, c] = y.permute(1, 2, 0).numpy()
        rows.append(block.ravel())
    return np.array(rows)


def _brute_minimum(weight: torch.Tensor, P: int) -> tuple[int, int]:
    """Return (s, minimum) by Gordan's alternative on the stacked blocks, decided by an LP."""
    M = _stacked_blocks(weight, P)
    active = np.abs(M).sum(axis=1) > 0
    M = M[active]
    if len(M) == 0:
        return 0, 0
    s = np.linalg.matrix_rank(M)
    U = np.linalg.svd(M, full_matrices=False)[0][:, :s]  # orthonormal basis of col(M)
    lp = linprog(np.zeros(s), A_ub=-U, b_ub=-np.ones(len(M)), bounds=[(None, None)] * s,
                 method="highs")  # fmt: skip
    return s, s if lp.status == 0 else s + 1


@st.composite
def small_kernels(draw: st.DrawFn) -> tuple[torch.Tensor, int | None]:
    C, D = draw(st.integers(1, 3), label="C"), draw(st.integers(1, 3), label="D")
    k = draw(st.sampled_from([1, 2, 3]), label="k")
    P = draw(st.sampled_from([None, 2, 3]), label="P")
    values = draw(st.lists(st.integers(-3, 3), min_size=D * C * k * k, max_size=D * C * k * k))
    weight = torch.tensor(values, dtype=torch.float64).reshape(D, C, k, k)
    return weight, P


@settings(max_examples=40)
@given(case=small_kernels())
def test_minimum_agrees_with_an_independent_lp_on_the_convolutions_impulse_response(case) -> None:
    weight, P = case
    result = minimum_heads(weight, P)
    assert (result.span_dim, result.heads) == _brute_minimum(weight, P or 1)
    report = recheck(result.certificate)
    assert report["summary"].startswith("verified")


@settings(max_examples=25)
@given(case=small_kernels(), circular=st.booleans())
def test_the_tight_layer_has_exactly_the_minimum_heads_and_equals_the_convolution(
    case, circular
) -> None:
    weight, P = case
    conv = nn.Conv2d(
        weight.shape[1],
        weight.shape[0],
        weight.shape[2:],
        padding="same",
        padding_mode="circular" if circular else "zeros",
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
    size = (3 * (P or 1) * 2, 2 * (P or 1) * 2)
    layer = tight_mhsa_from_conv(conv, size, P, explicit_padding=True)
    expected = minimum_heads(conv, P, image_size=size).heads
    assert layer.num_heads == max(expected, 1)  # a zero kernel keeps one idle head
    x = torch.randn(2, conv.in_channels, *size, dtype=torch.float64)
    with torch.no_grad():
        y = from_tokens(layer(to_tokens(x, P)), P, input_size=size)
    assert_matches(y, conv(x), torch.float64, "tight layer")


def test_a_kernel_whose_taps_are_positive_combinations_needs_only_s_heads() -> None:
    # w1 = 2p1 − p2, w2 = 2p2 − p1 with p1 = (2w1 + w2)/3, p2 = (w1 + 2w2)/3 ≥ 0: two heads.
    weight = torch.tensor([[W1], [W2]], dtype=torch.float64)
    p1, p2 = (2 * weight[0] + weight[1]) / 3, (weight[0] + 2 * weight[1]) / 3
    assert (p1 >= 0).all() and (p2 >= 0).all()
    result = minimum_heads(weight)
    assert (result.span_dim, result.heads, result.kind) == (2, 2, "positive vector")
    assert result.certificate.data["proof"]["positive"] is not None


def test_a_kernel_with_zero_sum_taps_needs_s_plus_one_heads() -> None:
    # C = 2, D = 4: 8 independent taps summing to zero: s = 8, and z = 1 shows no positive vector.
    gen = torch.Generator().manual_seed(3)
    taps = torch.randint(-4, 5, (8, 2, 4), generator=gen).double()
    weight = torch.cat([taps, -taps.sum(0, keepdim=True)]).permute(2, 1, 0).reshape(4, 2, 3, 3)
    result = minimum_heads(weight)
    assert (result.span_dim, result.heads, result.kind) == (8, 9, "obstruction")
    z = result.certificate.data["proof"]["obstruction"]
    assert len({v for _, v in z}) == 1 and len(z) == 9  # all offsets, equal weights


def test_aliased_offsets_merge_on_a_small_circular_grid() -> None:
    # 3×3, C = D = 3, circular, 2×2 image: offsets −1 ≡ 1 (mod 2) merge, 4 residues: 4 heads.
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, 3, padding="same", padding_mode="circular", dtype=torch.float64)
    result = minimum_heads(conv, image_size=(2, 2))
    assert (result.offsets, result.span_dim, result.heads) == (4, 4, 4)
    assert minimum_heads(conv).heads == 9  # on a large grid nothing aliases
    layer = tight_mhsa_from_conv(conv, (2, 2))
    assert layer.num_heads == 4
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        y = from_tokens(layer(to_tokens(x)), input_size=(2, 2))
    assert_matches(y, conv(x), torch.float64, "aliased circular layer")


def test_most_random_seven_by_seven_kernels_on_two_by_two_patches_need_ten_heads() -> None:
    gen = torch.Generator().manual_seed(7)
    kernels = [torch.randint(-9, 10, (1, 1, 7, 7), generator=gen).double() for _ in range(8)]
    results = [minimum_heads(w, 2) for w in kernels]
    for w, r in zip(kernels, results, strict=True):  # each one decided independently too
        assert (r.span_dim, r.heads) == _brute_minimum(w, 2)
    assert all(r.span_dim == 9 for r in results)
    assert sum(r.heads == 10 for r in results) > len(results) // 2  # "most": the issue saw 37/40


def _forged(cert: dict, path: tuple, value: object) -> dict:
    forged = copy.deepcopy(cert)
    target = forged
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return forged


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("claim", "heads"), lambda h: h + 1),
        (("claim", "heads"), lambda h: h - 1),
        (("proof", "positive"), lambda y: [-v for v in y]),
        (("proof", "positive"), lambda y: [0] * len(y)),
        (("proof", "span_dim"), lambda s: s - 1),
        (("proof", "relations"), lambda r: r[:-1]),
    ],
    ids=["heads+1", "heads-1", "y-negated", "y-zero", "span-1", "relation-dropped"],
)
def test_forged_minimum_certificates_with_a_positive_vector_are_rejected(path, value) -> None:
    cert = minimum_heads(torch.tensor([[W1], [W2]], dtype=torch.float64)).certificate.data
    assert cert["proof"]["relations"]  # s = 2 < 9 offsets: seven relations to drop from
    assert recheck(cert)
    with pytest.raises(CertificateError):
        recheck(_forged(cert, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("claim", "heads"), lambda h: h - 1),
        (("proof", "obstruction"), lambda z: [[d, -v] for d, v in z]),
        (("proof", "obstruction"), lambda z: [[d, v + (i == 0)] for i, (d, v) in enumerate(z)]),
        (("proof", "obstruction"), lambda z: z[:1]),
    ],
    ids=["heads-1", "z-negated", "z-perturbed", "z-truncated"],
)
def test_forged_minimum_certificates_with_an_obstruction_are_rejected(path, value) -> None:
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[0, 0, 0, 0], weight[0, 0, 2, 2] = 1.0, -1.0  # zᵀG = 0 with z = (1, 1) on its taps
    cert = minimum_heads(weight).certificate.data
    assert cert["proof"]["obstruction"] is not None and recheck(cert)
    with pytest.raises(CertificateError):
        recheck(_forged(cert, path, value))
