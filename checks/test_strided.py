"""Strided convolutions (paper_notes, strided T1–T4): layers, neighbourhoods, spans, certificates.

The layer must equal `F.conv1d/2d/3d` with the drawn stride and padding on every output token,
borders included, through the three evaluation paths. N(S, P), the blocks M_Δ and s are checked
against a brute force that reads the blocks off the convolution itself: PyTorch's convolution of
one-hot inputs gives the whole token-to-token matrix, independent of this project's geometry.
"""

from __future__ import annotations

import json
import re

import flint
import numpy as np
import pytest
import torch
from einops import rearrange
from hypothesis import given, settings
from torch import nn

from checks.strategies import StridedCase, strided_cases
from checks.tolerances import assert_matches, reference_conv
from constructions import from_tokens, mhsa_from_conv, to_tokens
from constructions.blocks import patch_blocks
from constructions.geometry import neighbourhood_size, patch_neighbourhood
from theory import certify_lower_bound, head_bounds, minimum_heads, recheck
from theory.cli import main

PATHS = ["sdpa", "reference", "local"]


def _layer_output(case: StridedCase, target: tuple, attention: str) -> tuple:
    device, dtype = target
    conv = case.conv(dtype, device)
    x = case.input(dtype=dtype, device=device)
    layer = mhsa_from_conv(conv, case.input_size, case.token_patch, attention=attention)
    with torch.no_grad():
        tokens = layer(to_tokens(x, case.patch_size))
        out = from_tokens(tokens, case.output_patch, input_size=case.output_size)
    return out, reference_conv(conv, x, dtype), layer


@pytest.mark.parametrize("attention", PATHS)
@given(case=strided_cases())
def test_strided_layer_equals_the_convolution_at_every_output_token(
    case: StridedCase, target, attention: str
) -> None:
    out, expected, layer = _layer_output(case, target, attention)
    assert_matches(out.cpu(), expected.cpu(), target[1], str(case))
    assert layer.num_heads == len(
        patch_neighbourhood(case.kernel_size, case.patch_size, case.dilation, case.stride,
                            case.padding)
    )  # fmt: skip


def brute_force_blocks(conv: nn.Module, patch: tuple[int, ...]) -> dict[tuple, np.ndarray]:
    """Return {Δ: M_Δ} of `conv` on patch tokens, read off PyTorch's convolution itself.

    M_Δ[(a, c), (b, o)] is the derivative of output pixel b, channel o of the query token with
    respect to input pixel a, channel c of the token at offset Δ: the Jacobian of the bias-free
    convolution at the query token (input patches of `patch` pixels, output patches
    patch/stride), on a grid wide enough that no offset is cut by the border.
    """
    stride, dims = tuple(conv.stride), conv.weight.ndim - 2
    reach = [
        -(-(d * (k - 1)) // P) + 1
        for k, d, P in zip(conv.kernel_size, conv.dilation, patch, strict=True)
    ]
    size = [(2 * r + 1) * P for r, P in zip(reach, patch, strict=True)]
    Q = [P // s for P, s in zip(patch, stride, strict=True)]
    query = tuple(slice(r * q, (r + 1) * q) for r, q in zip(reach, Q, strict=True))
    weight = conv.weight.detach().double()

    def at_query(x: torch.Tensor) -> torch.Tensor:  # the linear part: no bias
        return conv._conv_forward(x[None], weight, None)[(0, slice(None), *query)]

    J = torch.func.jacrev(at_query)(torch.zeros(conv.in_channels, *size, dtype=torch.float64))
    g, p, q = (" ".join(f"{x}{a}" for a in range(dims)) for x in "gpq")
    spatial = " ".join(f"(g{a} p{a})" for a in range(dims))
    sizes = {f"p{a}": patch[a] for a in range(dims)}
    m = rearrange(J, f"o {q} c {spatial} -> ({g}) ({p} c) ({q} o)", **sizes).numpy()
    deltas = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1)
    return {tuple(d): m[i] for i, d in enumerate(deltas.reshape(-1, dims).tolist()) if m[i].any()}


def _exact_rank(rows: list[np.ndarray]) -> int:
    if not rows:
        return 0
    stacked = np.stack([r.ravel() for r in rows]).astype(np.int64)
    return flint.fmpz_mat(stacked.tolist()).rank()


def _integer_conv(case: StridedCase) -> nn.Module:
    """Return the case's convolution with non-zero integer weights in [−3, 3] (exact blocks)."""
    conv = case.conv()
    gen = torch.Generator().manual_seed(case.seed)
    w = torch.randint(1, 4, conv.weight.shape, generator=gen) * (
        2 * torch.randint(0, 2, conv.weight.shape, generator=gen) - 1
    )
    with torch.no_grad():
        conv.weight.copy_(w.double())
    return conv


@settings(max_examples=40, deadline=None)
@given(case=strided_cases(dims=(1, 2)))
def test_strided_offsets_blocks_and_span_match_a_brute_force_of_the_convolution(
    case: StridedCase,
) -> None:
    conv = _integer_conv(case)
    brute = brute_force_blocks(conv, case.patch_size)
    offsets, blocks = patch_blocks(
        conv.weight.detach(), case.patch_size, case.groups, case.dilation, case.stride,
        case.padding,
    )  # fmt: skip
    assert {tuple(o) for o in offsets.tolist()} == set(brute)
    assert neighbourhood_size(
        case.kernel_size, case.token_patch, case.dilation, case.stride, case.padding
    ) == len(brute)
    for o, block in zip(offsets.tolist(), blocks.numpy(), strict=True):
        np.testing.assert_array_equal(block, brute[tuple(o)])
    s = _exact_rank(list(brute.values()))
    bounds = head_bounds(kernel=conv, patch_size=case.token_patch)
    assert (bounds.offsets, bounds.span_dim) == (len(brute), s)
    generic = head_bounds(
        case.kernel_size, case.token_patch, in_channels=case.in_channels,
        out_channels=case.out_channels, groups=case.groups, dilation=case.dilation,
        stride=case.stride, padding=case.padding,
    )  # fmt: skip
    assert generic.span_dim >= s  # the generic value bounds every kernel of the shape


# The shapes of ResNet, MobileNet and ViT-style stems; |N| and s are brute-forced from a random
# integer kernel (generic with probability 1) and compared with the theory's generic answer.
SHAPES = [
    ("3x3-s2-p1-pixel", 3, 2, 1, None, 1, 1),
    ("7x7-s2-p3-pixel-resnet-stem", 7, 2, 3, None, 3, 8),
    ("1x1-s2-p0-resnet-shortcut", 1, 2, 0, None, 1, 1),
    ("4x4-s2-p1-pixel", 4, 2, 1, None, 1, 2),
    ("4x4-s4-p0-patchify", 4, 4, 0, None, 3, 2),
    ("3x3-s2-p1-16x16-patches", 3, 2, 1, 16, 1, 1),
    ("5x5-s2-p2-16x16-patches", 5, 2, 2, 16, 3, 8),
]


@pytest.mark.parametrize(
    ("k", "s", "p", "P", "C", "D"), [c[1:] for c in SHAPES], ids=[c[0] for c in SHAPES]
)
def test_strided_shapes_have_the_brute_forced_offsets_and_generic_span(k, s, p, P, C, D) -> None:
    conv = nn.Conv2d(C, D, k, stride=s, padding=p, bias=False, dtype=torch.float64)
    gen = torch.Generator().manual_seed(k * 100 + s)
    with torch.no_grad():
        conv.weight.copy_(torch.randint(-1024, 1025, conv.weight.shape, generator=gen).double())
    brute = brute_force_blocks(conv, (P or s,) * 2)
    generic = head_bounds(k, P, in_channels=C, out_channels=D, stride=s, padding=p)
    assert generic.offsets == generic.sufficient == len(brute)
    assert generic.span_dim == generic.necessary == _exact_rank(list(brute.values()))


@pytest.mark.parametrize(("k", "s", "p", "P", "C", "D"), [c[1:] for c in SHAPES[:3] + SHAPES[5:]],
                         ids=[c[0] for c in SHAPES[:3] + SHAPES[5:]])  # fmt: skip
def test_strided_certificates_verify_and_claim_the_stride(k, s, p, P, C, D) -> None:
    cert = certify_lower_bound(k, P, in_channels=C, out_channels=D, stride=s, padding=p)
    claim = cert.claim
    assert (claim["stride"], claim["padding"]) == ([s, s], [p, p])
    assert cert.data["format"].endswith("v2")
    assert recheck(cert)["summary"].startswith("verified")
    assert cert.bound == head_bounds(k, P, in_channels=C, out_channels=D, stride=s,
                                     padding=p).span_dim  # fmt: skip


def test_the_minimum_of_a_strided_conv_is_certified_and_rechecks() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, dtype=torch.float64)
    result = minimum_heads(conv)
    assert result.offsets == 4
    assert result.span_dim == head_bounds(kernel=conv).span_dim
    assert result.heads in (result.span_dim, result.span_dim + 1)
    assert result.certificate.data["claim"]["stride"] == [2, 2]
    assert recheck(result.certificate)["summary"].startswith("verified")


def test_the_cli_answers_strided_shapes_with_certificates(capsys) -> None:
    argv = ["bounds", "--kernel-size", "7", "--patch-size", "2", "--stride", "2", "--padding",
            "3", "--in-channels", "3", "--out-channels", "8", "--certify", "--json"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["stride"], record["padding"]) == ([2, 2], [3, 3])
    for tokens in ("pixel", "patch"):  # P = 2 is the stride: both read 2×2 input patches
        entry = record[tokens]
        assert entry["offsets"] == entry["necessary"] == len(
            patch_neighbourhood(7, 2, 1, 2, 3)
        )
        assert recheck(entry["certificate"])["summary"].startswith("verified")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stride", "0"], r"stride"),
        (["--padding", "-1"], r"--padding takes P, PxP or PxPxP"),
        (["--stride", "2", "--patch-size", "3"], r"stride=\(2, 2\) does not divide patch_size"),
        (["--stride", "2", "--padding", "0"], r"padding=\(0, 0\) with kernel_size=\(3, 3\), "
                                              r"stride=\(2, 2\)"),
    ],
    ids=["stride-0", "negative-padding", "stride-not-dividing-the-patch", "valid-padding"],
)  # fmt: skip
def test_bad_strided_cli_input_gives_one_line_naming_the_option(argv, message, capsys) -> None:
    base = {"--kernel-size": "3", "--patch-size": "4"}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    assert main(["bounds", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
