"""Bad input to the constructions gets a clear error naming the parameter (README, Use)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from constructions import patch_mhsa_from_conv, pixel_mhsa_from_conv


def conv(*args, **kwargs) -> nn.Conv2d:
    kwargs.setdefault("padding", "same")
    return nn.Conv2d(*args, **kwargs)


CASES = [
    ("stride-not-dividing-the-image",
     lambda: pixel_mhsa_from_conv(nn.Conv2d(1, 1, 3, stride=2, padding=1), 9),
     ValueError, r"^image_size=\(9, 9\) is not divisible by stride=\(2, 2\) on axis 0"),
    ("stride-not-dividing-the-patch",
     lambda: patch_mhsa_from_conv(nn.Conv2d(1, 1, 3, stride=2, padding=1), 12, 3),
     ValueError, r"^stride=\(2, 2\) does not divide patch_size=\(3, 3\) on axis 0"),
    ("strided-valid-padding",
     lambda: pixel_mhsa_from_conv(nn.Conv2d(1, 1, 3, stride=2), 8),
     ValueError, r"^conv.padding=\(0, 0\) with kernel_size=\(3, 3\), stride=\(2, 2\).*"
     r"not the input grid divided by the stride \(n/2\).*padding=1 gives n/2 outputs"),
    ("valid-padding", lambda: pixel_mhsa_from_conv(nn.Conv2d(1, 1, 3), 8),
     ValueError, r"^conv.padding=\(0, 0\) with kernel_size=\(3, 3\), stride=\(1, 1\)"
                 r".*padding=1 gives n/1 outputs"),
    ("asymmetric-padding", lambda: pixel_mhsa_from_conv(nn.Conv2d(1, 1, 3, padding=(1, 0)), 8),
     ValueError, r"^conv.padding=\(1, 0\) with kernel_size=\(3, 3\).* on axis 1 the output grid"),
    ("reflect", lambda: pixel_mhsa_from_conv(conv(1, 1, 3, padding_mode="reflect"), 8),
     ValueError, r"^conv.padding_mode='reflect': only 'zeros' and 'circular' are supported"),
    ("not-a-conv", lambda: pixel_mhsa_from_conv(nn.Linear(3, 3), 8),
     TypeError, r"^conv must be a torch.nn.Conv1d, Conv2d or Conv3d, got Linear"),
    ("transposed", lambda: pixel_mhsa_from_conv(nn.ConvTranspose2d(1, 1, 3, padding=1), 8),
     TypeError, r"^conv must be a torch.nn.Conv1d, Conv2d or Conv3d, got ConvTranspose2d"),
    ("not-divisible", lambda: patch_mhsa_from_conv(conv(1, 1, 3), (12, 10), 4),
     ValueError, r"^image_size=\(12, 10\) is not divisible by patch_size=\(4, 4\) on axis 1 "
                 r"\(10 % 4 = 2\)"),
    ("patch-larger-than-image", lambda: patch_mhsa_from_conv(conv(1, 1, 3), (8, 32), 16),
     ValueError, r"^patch_size=\(16, 16\) is larger than image_size=\(8, 32\) on axis 0$"),
    ("patch-zero", lambda: patch_mhsa_from_conv(conv(1, 1, 3), 8, 0),
     ValueError, r"^patch_size must be an integer >= 1, got 0"),
    ("patch-float", lambda: patch_mhsa_from_conv(conv(1, 1, 3), 8, 2.5),
     TypeError, r"^patch_size must be an integer >= 1, got 2.5"),
    ("image-negative", lambda: pixel_mhsa_from_conv(conv(1, 1, 3), (-4, 4)),
     ValueError, r"^image_size must be an integer >= 1, got -4"),
    ("pixel-grid-too-small", lambda: pixel_mhsa_from_conv(conv(1, 1, 7), (2, 8)),
     ValueError, r"^image_size=\(2, 8\) gives a 2×8 pixel grid, too small for this kernel: it "
                 r"reaches tokens \(3, 3\) away.*at least 4×4 pixel"),
    ("patch-grid-too-small", lambda: patch_mhsa_from_conv(conv(1, 1, 3), (4, 8), 4),
     ValueError, r"^image_size=\(4, 8\) gives a 1×2 patch grid, too small"),
    ("circular-too-small",
     lambda: pixel_mhsa_from_conv(conv(1, 1, 7, padding_mode="circular"), (2, 8)),
     ValueError, r"^image_size=\(2, 8\): circular padding of 3 exceeds the side 2 of axis 0"),
    ("head-dim-zero", lambda: pixel_mhsa_from_conv(conv(1, 1, 3), 8, head_dim=0),
     ValueError, r"^head_dim must be an integer >= 1, got 0"),
    ("beta-negative", lambda: pixel_mhsa_from_conv(conv(1, 1, 3), 8, beta=-1.0),
     ValueError, r"^beta must be a positive finite float or None \(exact\), got -1.0"),
    ("beta-inf", lambda: pixel_mhsa_from_conv(conv(1, 1, 3), 8, beta=math.inf),
     ValueError, r"^beta must be a positive finite float"),
    ("beta-string", lambda: pixel_mhsa_from_conv(conv(1, 1, 3), 8, beta="10"),
     TypeError, r"^beta must be a positive float or None, got '10'"),
    ("attention-path", lambda: pixel_mhsa_from_conv(conv(1, 1, 3), 8, attention="flash"),
     ValueError, r"^attention='flash': expected one of \('auto', "),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_constructions_reject_bad_input_naming_the_parameter(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_explicit_padding_equal_to_same_is_accepted_and_exact() -> None:
    c = nn.Conv2d(2, 3, (3, 5), padding=(1, 2), dilation=1, dtype=torch.float64)
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    layer = pixel_mhsa_from_conv(c, (6, 7))
    with torch.no_grad():
        out = layer(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(1, 3, 6, 7)
        assert (out - c(x)).abs().max() <= 1e-10 * c(x).abs().max()


def test_the_smallest_allowed_grid_is_accepted() -> None:
    """The error above says 'at least 4×4 pixels' for k = 7: that grid must then work."""
    layer = pixel_mhsa_from_conv(conv(1, 1, 7, dtype=torch.float64), (4, 4))
    assert layer.num_heads == 49
