"""Certificate timings for the T3 lower bound (SPEC §3, fast exact arithmetic), one CPU core.

    python -m benchmarks.certificates [--timeout SECONDS] [--out PATH]

Cases: the pixel bound at k ∈ {3, 7, 15, 31} with C = D = k (G is k² × k²) and the patch bound at
P = 16, k ∈ {3, 33}, C = 3, D = 64 (G is 9 × 184 512); target ≤ 1 s each. Each certificate is timed
end to end (witness, G, structural bound, minor, determinant mod p; best of 3) and re-checked. The
baseline is the naive route, `sympy.Matrix(G).rank()` on the same G, in a subprocess killed after
`--timeout` seconds, for the cases small enough to hand to sympy at all.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy/torch load their pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import multiprocessing as mp
import platform
import time
from pathlib import Path

import torch

from theory.bounds import coefficient_matrix, kernel_shape, witness_kernel
from theory.certificates import certify_lower_bound, recheck

CASES = [
    dict(kernel_size=k, patch_size=None, in_channels=k, out_channels=k) for k in (3, 7, 15, 31)
]
CASES += [dict(kernel_size=k, patch_size=16, in_channels=3, out_channels=64) for k in (3, 33)]
SYMPY_MAX_ENTRIES = 10_000  # larger G are not handed to sympy.Matrix at all


def _sympy_rank(rows: list, queue: mp.Queue) -> None:
    import sympy

    start = time.perf_counter()
    rank = sympy.Matrix(rows).rank()
    queue.put((rank, time.perf_counter() - start))


def sympy_baseline(case: dict, timeout: float) -> dict:
    """Return {"seconds": t, "rank": r} of sympy.Matrix.rank on the witness's G, or why not."""
    shape = kernel_shape(
        case["kernel_size"], in_channels=case["in_channels"], out_channels=case["out_channels"]
    )
    G = coefficient_matrix(witness_kernel(shape), case["patch_size"])[1]
    G = G[:, (G != 0).any(axis=0)]
    if G.size > SYMPY_MAX_ENTRIES:
        return {"status": f"not run: G is {G.shape[0]}×{G.shape[1]}"}
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=_sympy_rank, args=(G.tolist(), queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"status": f"timeout after {timeout:g} s"}
    rank, seconds = queue.get()
    return {"status": "ok", "seconds": seconds, "rank": rank}


def main(argv: list[str] | None = None) -> int:
    """Time every case, print a table, write the JSON; return 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.certificates")
    parser.add_argument("--timeout", type=float, default=60.0, help="sympy baseline limit (s)")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "certificates.json")
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for case in CASES:
        times, cert = [], None
        for _ in range(3):
            start = time.perf_counter()
            cert = certify_lower_bound(**case)
            times.append(time.perf_counter() - start)
        recheck(cert)
        rows.append(
            {
                **case,
                "tokens": cert.tokens,
                "bound": cert.bound,
                "tight": cert.tight,
                "minor": len(cert.minor_rows),
                "seconds": min(times),
                "rank_method": cert.rank_method,
                "sympy_matrix_rank": sympy_baseline(case, args.timeout),
            }
        )
    header = (
        f"{'tokens':6} {'k':>3} {'P':>3} {'C':>3} {'D':>3} {'bound':>6} {'tight':>5} "
        f"{'cert (s)':>9}  sympy.Matrix.rank"
    )
    print(header)
    for r in rows:
        b = r["sympy_matrix_rank"]
        base = f"{b['seconds']:.3f} s (rank {b['rank']})" if b["status"] == "ok" else b["status"]
        print(
            f"{r['tokens']:6} {r['kernel_size']:>3} {r['patch_size'] or '-':>3} "
            f"{r['in_channels']:>3} {r['out_channels']:>3} {r['bound']:>6} {r['tight']!s:>5} "
            f"{r['seconds']:>9.3f}  {base}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "threads": 1,
                "cases": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
