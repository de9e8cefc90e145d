"""Worst relative error of the T1/T2 layers against F.conv2d over many random convolutions,
through the dense fused SDPA call, the written-out softmax and the local path.

    python -m benchmarks.errors [--cases 200] [--device cuda]

Each case draws channels, groups, kernel shape (odd, even, rectangular), dilation, bias, padding
mode, patch size and a grid just large enough for the kernel, like the hypothesis checks; the
error is max|layer − conv| / max|conv| over the whole image (borders included), against the
float64 convolution of the same dtype-rounded weights and input. Prints a table, saves JSON.
"""

from __future__ import annotations

import argparse
import copy
import math
import warnings

import torch
from torch import nn

from benchmarks._timing import machine, print_table, save_json
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
)
from constructions.geometry import patch_neighbourhood

DTYPES = {
    "cpu": [torch.float64, torch.float32],
    "cuda": [torch.float64, torch.float32, torch.bfloat16, torch.float16],
}


def _draw(gen: torch.Generator) -> tuple[nn.Conv2d, int, tuple[int, int]]:
    """Return a random conv (float64), a patch size and an image size that fits it."""
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=gen))  # noqa: E731
    groups, k, d, P = r(1, 3), (r(1, 5), r(1, 5)), (r(1, 2), r(1, 2)), r(1, 4)
    circular = bool(r(0, 1))
    sides = []
    for axis in range(2):
        kk, dd = k[axis], d[axis]
        if circular:
            need = max(1, math.ceil((dd * (kk - 1) - dd * (kk - 1) // 2) / P))
        else:
            need = int(abs(patch_neighbourhood((kk, 1), P, (dd, 1))[:, 0]).max()) + 1
        sides.append((need + r(0, 2)) * P)
    conv = nn.Conv2d(
        groups * r(1, 3),
        groups * r(1, 3),
        k,
        padding="same",
        dilation=d,
        groups=groups,
        bias=bool(r(0, 1)),
        padding_mode="circular" if circular else "zeros",
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
    return conv, P, (sides[0], sides[1])


def worst_errors(cases: int, device: str) -> list[dict[str, object]]:
    """Return one row per (tokens, dtype, attention path) with the worst error over `cases`."""
    gen = torch.Generator().manual_seed(0)
    worst: dict[tuple[str, str, str], float] = {}
    nan = 0
    for _ in range(cases):
        conv64, P, size = _draw(gen)
        x64 = torch.randn(2, conv64.in_channels, *size, generator=gen, dtype=torch.float64)
        for dtype in DTYPES[device]:
            conv = copy.deepcopy(conv64).to(device=device, dtype=dtype)
            x = x64.to(device=device, dtype=dtype)
            with torch.no_grad():
                ref = copy.deepcopy(conv).double()(x.double())
            for tokens in ("pixel", "patch"):
                for path in ("sdpa", "reference", "local"):
                    if tokens == "pixel":
                        layer = pixel_mhsa_from_conv(conv, size, attention=path)
                        to, back = image_to_pixels, lambda t: pixels_to_image(t, size)  # noqa: B023
                    else:
                        layer = patch_mhsa_from_conv(conv, size, P, attention=path)
                        to = lambda im: image_to_patches(im, P)  # noqa: E731, B023
                        back = lambda t: patches_to_image(t, P, size)  # noqa: E731, B023
                    with torch.no_grad():
                        out = back(layer(to(x))).double()
                    nan += int(not torch.isfinite(out).all())
                    err = ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()
                    key = (tokens, str(dtype).removeprefix("torch."), path)
                    worst[key] = max(worst.get(key, 0.0), err)
    return [
        {"tokens": t, "dtype": d, "attention": a, "cases": cases, "worst": e, "non_finite": nan}
        for (t, d, a), e in sorted(worst.items())
    ]


def main(argv: list[str] | None = None) -> None:
    summary = " ".join(__doc__.split("\n\n")[0].split())  # the first paragraph, whole
    parser = argparse.ArgumentParser(prog="python -m benchmarks.errors", description=summary)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no usable CUDA device")
    # PyTorch's performance notice for the reference convolution with even kernels
    warnings.filterwarnings("ignore", "Using padding='same' with even kernel lengths")
    rows = worst_errors(args.cases, args.device)
    print_table(
        rows,
        [
            ("tokens", "tokens", "s"),
            ("dtype", "dtype", "s"),
            ("attention", "attention", "s"),
            ("cases", "cases", "d"),
            ("worst", "worst rel. error", ".2e"),
            ("non_finite", "non-finite", "d"),
        ],
    )
    path = save_json(f"errors-{args.device}", {"machine": machine(args.device), "rows": rows})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
