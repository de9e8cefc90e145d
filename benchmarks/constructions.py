"""Construction and forward time of the T1/T2 layers, and of the local path at image scale.

    python -m benchmarks.constructions [--device cuda] [--quick] [--threads N] [--out DIR]

Three tables, one JSON (benchmarks/results/constructions-<device>.json; with --quick,
runs/benchmarks/, unless --out says otherwise); every ratio comes from
interleaved medians of one run (`benchmarks._timing.median_times`).

1. `rows`: the layers as built (`attention="auto"`, the path it took in column `path`) on the
   issue's cases (pixel k ∈ {3, 5, 7}, C = D = 64, 32×32; patch P = 16, k ∈ {3, 5, 33}, C = 3,
   D = 64, 224×224):
   * `build`: seconds for `pixel_mhsa_from_conv` / `patch_mhsa_from_conv` (target ≤ 0.1 s on CPU);
   * `fwd/sdpa`: the forward over one bare `F.scaled_dot_product_attention` call with the dense
     q, k, v and bias;
   * `fwd/floor`: over the bare call plus the value and output projections (x·W_V, o·W_O);
   * `fwd/conv`: over the convolution itself.
2. `pixel_scale`: pixel tokens at 224×224, k ∈ {3, 5, 7}, C = D = 64, float32, batch 1, through
   the local path: the forward over `F.conv2d` (`/conv`) and over the value and output
   projections alone (`/proj`: x·W_V then ·W_O with the layer's shapes, the work any MHSA of
   these widths does; target ≤ 1.5). `first` is the first call (plan, caches, on CUDA the
   FlexAttention compile); on CUDA `gather` times the gather path beside FlexAttention. Then
   512×512, k = 3, timed against the 224 layer in the same run: linear cost gives
   (512/224)² ≈ 5.2.
3. `local_vs_dense`: grids 16², 24², 32², 48² (pixel k = 5, C = D = 3): the same construction
   through `local` and through dense SDPA (its bias cached, as in inference).

`--quick`: 3 repeats, no patch cases, 224² at k = 3 only, no 512², grids 16² and 32² (seconds).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._timing import add_out_option, machine, median_times, print_table, save_json
from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    pixel_mhsa_from_conv,
)
from constructions.heads import head_projections

CASES = [
    # (tokens, k, C, D, image side, patch size)
    ("pixel", 3, 64, 64, 32, None),
    ("pixel", 5, 64, 64, 32, None),
    ("pixel", 7, 64, 64, 32, None),
    ("patch", 3, 3, 64, 224, 16),
    ("patch", 5, 3, 64, 224, 16),
    ("patch", 33, 3, 64, 224, 16),
]
SCALE_KERNELS, SCALE_SIDE, LARGE_SIDE = (3, 5, 7), 224, 512
DENSE_SIDES = (16, 24, 32, 48)


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
        bias = layer.relative_bias()[None]  # 4-d, as the dense path passes it
        keys = F.pad(t, (0, 0, 0, k_.shape[2] - t.shape[1]))  # with the sink row, if any

        def floor() -> torch.Tensor:  # value projection, bare SDPA, output projection
            v2 = head_projections(keys, layer.w_v, layer.b_v)
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
    return {
        "tokens": tokens, "k": k, "C": C, "D": D, "image": side, "P": P,
        "heads": layer.num_heads, "head_dim": layer.head_dim, "T": layer.num_tokens,
        "path": layer.resolved_attention,
        "build_s": min(builds), "forward_s": times["forward"], "sdpa_s": times["sdpa"],
        "floor_s": times["floor"], "conv_s": times["conv"],
        "fwd_over_sdpa": times["forward"] / times["sdpa"],
        "fwd_over_floor": times["forward"] / times["floor"],
        "fwd_over_conv": times["forward"] / times["conv"],
    }  # fmt: skip


def _pixel_case(k: int, channels: int, side: int, device: str, **options):
    """Return (conv, layer, image, tokens) for a seeded pixel-token construction."""
    torch.manual_seed(k)
    conv = nn.Conv2d(channels, channels, k, padding="same").to(device)
    x = torch.randn(1, channels, side, side, device=device)
    return conv, pixel_mhsa_from_conv(conv, side, **options), x, image_to_pixels(x).contiguous()


def _first_call(fn, device: str) -> float:
    """Return the seconds of one call of `fn` (synchronised on CUDA)."""
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_pixel_scale(k: int, device: str, repeats: int) -> dict[str, object]:
    """Return the local forward at 224² pixel tokens against F.conv2d and the projections."""
    conv, layer, x, t = _pixel_case(k, 64, SCALE_SIDE, device)
    w_v, w_o = layer.w_v.transpose(0, 1).flatten(1), layer.w_o.flatten(0, 1)  # (E, N·Dh), (N·Dh, F)
    fns = {"forward": lambda: layer(t), "proj": lambda: (t @ w_v) @ w_o, "conv": lambda: conv(x)}
    if device == "cuda":  # the gather path beside FlexAttention
        gather = pixel_mhsa_from_conv(conv, SCALE_SIDE)
        gather.local_backend = "gather"
        fns["gather"] = lambda: gather(t)
    with torch.no_grad():
        first = _first_call(fns["forward"], device)
        times = median_times(fns, repeats=repeats, device=device)
    return {
        "k": k, "C": 64, "D": 64, "image": SCALE_SIDE, "heads": layer.num_heads,
        "T": layer.num_tokens, "path": layer.resolved_attention,
        "backend": layer.last_local_backend, "first_s": first, "forward_s": times["forward"],
        "gather_s": times.get("gather"), "proj_s": times["proj"], "conv_s": times["conv"],
        "fwd_over_proj": times["forward"] / times["proj"],
        "fwd_over_conv": times["forward"] / times["conv"],
    }  # fmt: skip


def measure_scaling(device: str, repeats: int) -> dict[str, object]:
    """Return the 512² and 224² k = 3 local forwards, timed in one interleaved run."""
    _, small, _, t_small = _pixel_case(3, 64, SCALE_SIDE, device)
    _, large, _, t_large = _pixel_case(3, 64, LARGE_SIDE, device)
    with torch.no_grad():
        first = _first_call(lambda: large(t_large), device)
        times = median_times({"small": lambda: small(t_small), "large": lambda: large(t_large)},
                             repeats=repeats, device=device)  # fmt: skip
    return {
        "k": 3, "image": LARGE_SIDE, "T": large.num_tokens, "path": large.resolved_attention,
        "backend": large.last_local_backend, "first_s": first, "forward_s": times["large"],
        "forward_224_s": times["small"], "ratio_to_224": times["large"] / times["small"],
        "token_ratio": large.num_tokens / small.num_tokens,
    }  # fmt: skip


def measure_local_vs_dense(side: int, device: str, repeats: int) -> dict[str, object]:
    """Return one pixel k = 5, C = D = 3 construction's forward through local and dense SDPA."""
    _, local, _, t = _pixel_case(5, 3, side, device, attention="local")
    _, dense, _, _ = _pixel_case(5, 3, side, device, attention="sdpa")
    with torch.no_grad():
        times = median_times({"local": lambda: local(t), "dense": lambda: dense(t)},
                             repeats=repeats, device=device)  # fmt: skip
    return {
        "image": side, "T": local.num_tokens, "heads": local.num_heads,
        "auto": pixel_mhsa_from_conv(nn.Conv2d(3, 3, 5, padding="same"), side).resolved_attention,
        "local_s": times["local"], "dense_s": times["dense"],
        "dense_over_local": times["dense"] / times["local"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.constructions",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats and fewer cases (see the module docstring)")
    add_out_option(parser)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no usable CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    cases = CASES[:3] if args.quick else CASES
    rows = [measure(*case, device=args.device, repeats=repeats) for case in cases]
    print_table(rows, [
        ("tokens", "tokens", "s"), ("k", "k", "d"), ("C", "C", "d"), ("D", "D", "d"),
        ("image", "image", "d"), ("heads", "heads", "d"), ("head_dim", "Dh", "d"),
        ("path", "path", "s"), ("build_s", "build s", ".4f"), ("forward_s", "fwd s", ".4f"),
        ("sdpa_s", "sdpa s", ".4f"), ("fwd_over_sdpa", "fwd/sdpa", ".2f"),
        ("fwd_over_floor", "fwd/floor", ".2f"), ("fwd_over_conv", "fwd/conv", ".1f"),
    ])  # fmt: skip
    kernels = SCALE_KERNELS[:1] if args.quick else SCALE_KERNELS
    scale = [measure_pixel_scale(k, args.device, repeats) for k in kernels]
    print(f"\npixel tokens {SCALE_SIDE}², C = D = 64, float32, batch 1, local path:")
    print_table(scale, [
        ("k", "k", "d"), ("heads", "heads", "d"), ("T", "T", "d"), ("backend", "backend", "s"),
        ("first_s", "first s", ".3f"), ("forward_s", "fwd s", ".4f"),
        ("gather_s", "gather s", ".4f"), ("proj_s", "proj s", ".4f"), ("conv_s", "conv s", ".4f"),
        ("fwd_over_proj", "fwd/proj", ".2f"), ("fwd_over_conv", "fwd/conv", ".1f"),
    ])  # fmt: skip
    scaling = None
    if not args.quick:
        scaling = measure_scaling(args.device, repeats)
        print(f"\n{LARGE_SIDE}², k = 3: {scaling['forward_s']:.4f} s ({scaling['backend']}; first "
              f"call {scaling['first_s']:.2f} s), {scaling['ratio_to_224']:.2f}× the "
              f"{SCALE_SIDE}² forward for {scaling['token_ratio']:.2f}× the tokens")
    sides = DENSE_SIDES[::2] if args.quick else DENSE_SIDES
    dense = [measure_local_vs_dense(side, args.device, repeats) for side in sides]
    print("\npixel k = 5, C = D = 3: local path against dense SDPA (bias cached):")
    print_table(dense, [
        ("image", "image", "d"), ("T", "T", "d"), ("heads", "heads", "d"), ("auto", "auto", "s"),
        ("local_s", "local s", ".5f"), ("dense_s", "dense s", ".5f"),
        ("dense_over_local", "dense/local", ".2f"),
    ])  # fmt: skip
    path = save_json(f"constructions-{args.device}", {
        "machine": machine(args.device), "quick": args.quick, "rows": rows,
        "pixel_scale": scale, "scaling": scaling, "local_vs_dense": dense,
    }, quick=args.quick, out=args.out)  # fmt: skip
    print(f"saved {path}")


if __name__ == "__main__":
    main()
