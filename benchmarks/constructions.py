"""Construction and forward time of the T1/T2 layers against F.conv2d and a bare SDPA call.

    python -m benchmarks.constructions [--device cuda] [--quick]

Cases (issue: pixel k ∈ {3, 5, 7}, C = D = 64, 32×32; patch P = 16, k ∈ {3, 5, 33}, C = 3,
D = 64, 224×224). Columns:

* `build`: seconds for `pixel_mhsa_from_conv` / `patch_mhsa_from_conv` (target ≤ 0.1 s on CPU);
* `fwd/sdpa`: the layer's forward over one bare `F.scaled_dot_product_attention` call with the
  same q, k, v and bias (target ≤ 1.3);
* `fwd/floor`: over the bare call plus the value and output projections (x·W_V, o·W_O), the
  matmuls any MHSA of these widths must do: for patch tokens of width P²D = 16384 these, not
  the attention, are most of the work, so `fwd/sdpa` cannot be near 1 there;
* `fwd/conv`: over the convolution itself.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._timing import machine, median_times, print_table, save_json
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    pixel_mhsa_from_conv,
)
from constructions.mhsa import _per_head

CASES = [
    # (tokens, k, C, D, image side, patch size)
    ("pixel", 3, 64, 64, 32, None),
    ("pixel", 5, 64, 64, 32, None),
    ("pixel", 7, 64, 64, 32, None),
    ("patch", 3, 3, 64, 224, 16),
    ("patch", 5, 3, 64, 224, 16),
    ("patch", 33, 3, 64, 224, 16),
]


def _build(tokens: str, conv: nn.Conv2d, side: int, P: int | None):
    if tokens == "pixel":
        return pixel_mhsa_from_conv(conv, side)
    return patch_mhsa_from_conv(conv, side, P)


def measure(
    tokens: str, k: int, C: int, D: int, side: int, P: int | None, device: str, repeats: int
) -> dict[str, object]:
    """Return build and forward times of one case, and the forward's ratios to its baselines."""
    torch.manual_seed(0)
    conv = nn.Conv2d(C, D, k, padding="same").to(device)
    _build(tokens, conv, side, P)  # warm-up (allocator, lazy imports)
    builds = []
    for _ in range(3):
        start = time.perf_counter()
        layer = _build(tokens, conv, side, P)
        if device == "cuda":
            torch.cuda.synchronize()
        builds.append(time.perf_counter() - start)
    x = torch.randn(1, C, side, side, device=device)
    t = image_to_pixels(x) if tokens == "pixel" else image_to_patches(x, P)
    with torch.no_grad():
        q, k_, v = layer._qkv(t)
        bias = layer.relative_bias()[None]  # 4-d, as the layer passes it
        o = F.scaled_dot_product_attention(q, k_, v, attn_mask=bias)

        keys = F.pad(t, (0, 0, 0, k_.shape[2] - t.shape[1]))  # with the sink row, if any

        def floor() -> torch.Tensor:  # value projection, bare SDPA, output projection
            v2 = _per_head(keys, layer.w_v, layer.b_v)
            o2 = F.scaled_dot_product_attention(q, k_, v2, attn_mask=bias)
            return o2.transpose(1, 2).flatten(2) @ layer.w_o.flatten(0, 1)

        times = median_times(
            {
                "forward": lambda: layer(t),
                "sdpa": lambda: F.scaled_dot_product_attention(q, k_, v, attn_mask=bias),
                "floor": floor,
                "conv": lambda: conv(x),
            },
            repeats=repeats,
            device=device,
        )
    del o
    return {
        "tokens": tokens, "k": k, "C": C, "D": D, "image": side, "P": P,
        "heads": layer.num_heads, "head_dim": layer.head_dim, "T": layer.num_tokens,
        "build_s": min(builds), "forward_s": times["forward"], "sdpa_s": times["sdpa"],
        "floor_s": times["floor"], "conv_s": times["conv"],
        "fwd_over_sdpa": times["forward"] / times["sdpa"],
        "fwd_over_floor": times["forward"] / times["floor"],
        "fwd_over_conv": times["forward"] / times["conv"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no usable CUDA device")
    rows = [measure(*case, device=args.device, repeats=3 if args.quick else 7) for case in CASES]
    print_table(rows, [
        ("tokens", "tokens", "s"), ("k", "k", "d"), ("C", "C", "d"), ("D", "D", "d"),
        ("image", "image", "d"), ("heads", "heads", "d"), ("head_dim", "Dh", "d"),
        ("build_s", "build s", ".4f"), ("forward_s", "fwd s", ".4f"), ("sdpa_s", "sdpa s", ".4f"),
        ("fwd_over_sdpa", "fwd/sdpa", ".2f"), ("fwd_over_floor", "fwd/floor", ".2f"),
        ("fwd_over_conv", "fwd/conv", ".0f"),
    ])  # fmt: skip
    path = save_json(
        f"constructions-{args.device}", {"machine": machine(args.device), "rows": rows}
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
