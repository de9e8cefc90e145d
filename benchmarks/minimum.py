"""How often a kernel needs s + 1 heads (T4): the exact minimum of random integer kernels.

    python -m benchmarks.minimum [--kernels N] [--quick] [--out DIR]

For each shape (3×3 and 7×7 kernels; pixel tokens and P = 2, 4; C = D = 1 and 3) it draws N
random integer kernels (entries uniform in [−2¹⁰, 2¹⁰], seeds 1…N), computes the certified
minimum with `theory.minimum.minimum_heads` (every certificate passes the stand-alone checker
before it is returned) and counts how many need s + 1 heads. Prints a table, writes
benchmarks/results/minimum.json.
"""

from __future__ import annotations

import argparse
import time

from benchmarks._timing import add_out_option, machine, save_json
from theory.bounds import kernel_shape
from theory.minimum import minimum_heads
from theory.witnesses import random_witness

SHAPES = [(k, P, c) for k in (3, 7) for P in (None, 2, 4) for c in (1, 3)]


def measure(k: int, P: int | None, channels: int, kernels: int) -> dict:
    """Return the minimum's statistics over `kernels` random kernels of one shape."""
    shape = kernel_shape(k, in_channels=channels, out_channels=channels)
    start = time.perf_counter()
    results = [
        minimum_heads(random_witness(shape.weight_shape(), seed).double(), P)
        for seed in range(1, kernels + 1)
    ]
    spans = sorted({r.span_dim for r in results})
    extra = sum(r.heads > r.span_dim for r in results)
    return {
        "kernel_size": k, "patch_size": P, "channels": channels, "kernels": kernels,
        "offsets": results[0].offsets, "span_dims": spans, "need_s_plus_1": extra,
        "fraction": extra / kernels, "seconds": time.perf_counter() - start,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure every shape, print the table, write the JSON; return 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.minimum",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--kernels", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="two shapes, 5 kernels")
    add_out_option(parser)
    args = parser.parse_args(argv)
    shapes, n = (SHAPES[:2], 5) if args.quick else (SHAPES, args.kernels)
    rows = [measure(k, P, c, n) for k, P, c in shapes]
    print(f"{'kernel':>6} {'tokens':>7} {'C=D':>4} {'|N|':>4} {'s':>6} {'need s+1':>9} {'time':>7}")
    for r in rows:
        tokens = "pixel" if r["patch_size"] is None else f"P={r['patch_size']}"
        spans = "/".join(map(str, r["span_dims"]))
        print(f"{r['kernel_size']:>4}x{r['kernel_size']:<1} {tokens:>7} {r['channels']:>4} "
              f"{r['offsets']:>4} {spans:>6} {r['need_s_plus_1']:>4}/{r['kernels']:<4} "
              f"{r['seconds']:>6.1f}s")  # fmt: skip
    path = save_json("minimum", {"machine": machine("cpu"), "quick": args.quick, "shapes": rows},
                     quick=args.quick, out=args.out)  # fmt: skip
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
