"""Every patch shape: Conv1d sequences, Conv3d video tubelets and rectangular patches (T1, T2).

Hypothesis draws 1-, 2- and 3-D convolutions with anisotropic kernels, dilations and patches on
grids down to the smallest the kernel allows; the layer must equal `F.conv1d/2d/3d` on every
token (borders included) through the dense fused path, the written-out softmax and the local
path.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from checks.optional import require
from checks.strategies import ConvCaseND, conv_cases_nd
from checks.tolerances import assert_matches, reference_conv
from constructions import (
    export_to_sdpa,
    export_to_torch_mha,
    from_tokens,
    mhsa_from_conv,
    patch_mhsa_from_conv,
    to_tokens,
)
from constructions.geometry import kernel_support, patch_neighbourhood

PATHS = ["sdpa", "reference", "local"]


def _output(case: ConvCaseND, target, attention: str, patched: bool) -> tuple:
    device, dtype = target
    conv = case.conv(dtype, device)
    x = case.input(dtype=dtype, device=device)
    P = case.patch_size if patched else None
    layer = mhsa_from_conv(conv, case.input_size, P, attention=attention)
    with torch.no_grad():
        out = from_tokens(layer(to_tokens(x, P)), P, input_size=case.input_size)
    return out, reference_conv(conv, x, dtype), layer


@pytest.mark.parametrize("attention", PATHS)
@given(case=conv_cases_nd(), patched=st.booleans())
def test_layer_equals_the_convolution_in_every_dimension_at_every_token(
    case: ConvCaseND, patched: bool, target, attention: str
) -> None:
    out, expected, layer = _output(case, target, attention, patched)
    assert_matches(out.cpu(), expected.cpu(), target[1], f"{case}, patched={patched}")
    offsets = (
        patch_neighbourhood(case.kernel_size, case.patch_size, case.dilation)
        if patched
        else kernel_support(case.kernel_size, case.dilation)
    )
    assert layer.num_heads == len(offsets)


@given(
    dims=st.integers(1, 3),
    P=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    grid=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    C=st.integers(1, 3),
)
def test_tokens_follow_row_major_patches_with_position_then_channel_order(dims, P, grid, C) -> None:
    P, grid = tuple(P[:dims]), tuple(grid[:dims])
    size = tuple(g * p for g, p in zip(grid, P, strict=True))
    x = torch.arange(2 * C * math.prod(size)).reshape(2, C, *size)
    t = to_tokens(x, P)
    # independent reference: explicit index arithmetic over one token's entries
    for token in range(math.prod(grid)):
        g = torch.unravel_index(torch.tensor(token), grid)
        for inner in range(math.prod(P) * C):
            *p, c = torch.unravel_index(torch.tensor(inner), (*P, C))
            pos = tuple(int(gi) * pa + int(pi) for gi, pa, pi in zip(g, P, p, strict=True))
            assert t[1, token, inner] == x[(1, int(c), *pos)]
    assert torch.equal(from_tokens(t, P, input_size=size), x)
    assert torch.equal(from_tokens(to_tokens(x), input_size=size), x)


def test_two_d_tokens_are_the_einops_patch_layout() -> None:
    x = torch.randn(2, 3, 8, 12)
    ref = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=4, p2=2)
    assert torch.equal(to_tokens(x, (4, 2)), ref)


@pytest.mark.parametrize(
    ("conv", "size", "patch", "heads"),
    [
        (nn.Conv3d(3, 4, 3, padding="same"), (4, 32, 32), (2, 16, 16), 27),
        (nn.Conv1d(1, 1, 7, padding="same"), 16, 4, 3),
        (nn.Conv1d(2, 2, 9, padding="same"), 16, 2, 5),
        (nn.Conv2d(3, 4, 3, padding="same"), (32, 16), (16, 8), 9),
        (nn.Conv2d(3, 4, 5, padding="same"), (32, 16), (16, 1), 15),
    ],
    ids=["tubelet-3x3x3", "conv1d-7-on-4", "conv1d-9-on-2", "rect-16x8", "rect-16x1"],
)
def test_head_counts_of_the_readme_shapes_come_out_right(conv, size, patch, heads) -> None:
    # |N| = Π_a (2⌈r_a/P_a⌉ + 1): 3·3·3; ⌈3/4⌉ → 3; ⌈4/2⌉ → 5; 3·3; (2⌈2/16⌉+1)(2⌈2/1⌉+1) = 3·5.
    layer = mhsa_from_conv(conv.double(), size, patch)
    assert layer.num_heads == heads
    x = torch.randn(2, conv.in_channels, *((size,) if isinstance(size, int) else size)).double()
    with torch.no_grad():
        y = from_tokens(layer(to_tokens(x, patch)), patch, input_size=x.shape[2:])
    assert_matches(y, conv.double()(x), torch.float64, "readme shape")


@pytest.mark.parametrize("exporter", [export_to_torch_mha, export_to_sdpa], ids=["mha", "sdpa"])
@pytest.mark.parametrize("dims", [1, 3])
def test_torch_exporters_carry_one_and_three_d_layers(exporter, dims: int) -> None:
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1](2, 3, 3, padding="same").double()
    size = (6,) * dims
    exported = exporter(mhsa_from_conv(conv, size, 2))
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    with torch.no_grad():
        y = from_tokens(exported(to_tokens(x, 2)), 2, input_size=size)
    assert_matches(y, conv(x), torch.float64, f"{exporter.__name__} {dims}-D")


def test_timm_table_exporters_say_they_are_two_d() -> None:
    require("timm", "timm")
    from constructions.export_timm import export_to_timm_relpos  # extra `timm` (CI has it)

    layer = mhsa_from_conv(nn.Conv1d(1, 1, 3, padding="same"), 8)
    with pytest.raises(ValueError, match=r"^timm RelPosAttention holds a 2-D relative-position"):
        export_to_timm_relpos(layer)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: mhsa_from_conv(nn.Conv1d(1, 1, 3, padding="same"), 10, 4), ValueError,
         r"^input_size=\(10,\) is not divisible by patch_size=\(4,\) on axis 0 \(10 % 4 = 2\)"),
        (lambda: mhsa_from_conv(nn.Conv3d(1, 1, 3, padding="same"), (4, 8, 8), (2, 4)),
         ValueError, r"^patch_size=\(2, 4\) has 2 entries, but the input has 3 spatial axes"),
        (lambda: mhsa_from_conv(nn.Conv3d(1, 1, 3, padding="same"), (8, 8)), ValueError,
         r"^input_size=\(8, 8\) has 2 entries, but the Conv3d has 3 spatial axes"),
        (lambda: patch_mhsa_from_conv(nn.Conv1d(1, 1, 3, padding="same"), 8, 2), TypeError,
         r"^patch_mhsa_from_conv takes an nn.Conv2d, got Conv1d; use constructions.mhsa_from_conv"),
        (lambda: to_tokens(torch.zeros(1, 1, 2, 2, 2, 2)), ValueError, r"^x must have shape"),
        (lambda: mhsa_from_conv(nn.Conv1d(1, 1, 3, stride=2, padding=1), 7), ValueError,
         r"^input_size=\(7,\) is not divisible by stride=\(2,\) on axis 0"),
    ],
    ids=["not-divisible", "patch-tuple-length", "conv3d-2d-size", "2d-wrapper", "4d-input",
         "stride-not-dividing"],
)  # fmt: skip
def test_bad_input_in_any_dimension_names_the_parameter(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_conv1d_reference_is_pytorchs_own() -> None:
    # the oracle of this file is F.conv1d/2d/3d via the module: check one by hand
    conv = nn.Conv1d(1, 1, 3, padding="same", bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, 2.0, 3.0]]]))
    x = torch.tensor([[[1.0, 0.0, 0.0, 2.0]]], dtype=torch.float64)
    assert conv(x).tolist() == [[[2.0, 1.0, 6.0, 4.0]]]
    assert torch.equal(F.conv1d(x, conv.weight, padding="same"), conv(x))
