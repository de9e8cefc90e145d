"""Certificate timings for the T3 lower bound: certify, write, re-check, peak memory; one CPU core.

    python -m benchmarks.certificates [--timeout SECONDS] [--quick] [--out DIR]

Each case runs in a fresh process (so its peak resident set is its own), twice:

* `structured`: `certify_lower_bound(shape)` — the structured witness (an identity minor, a sparse
  kernel) wherever it meets the structural bound, the random witness and a FLINT minor otherwise;
* `dense`: the earlier route — a random integer witness kernel, its whole coefficient matrix, an
  exact FLINT rank and a minor whose determinant is non-zero modulo a prime.

Both certificates go through JSON text and the stand-alone `theory.checker` (`recheck`). Columns:
certify time (s), JSON size (MB), re-check time (s, parse + check), peak MB (resident-set growth
over the imports). Targets: ≤ 1 s each and ≤ 1 GB at every size in the table. The last line
times the whole `python -m theory bounds --kernel-size 63 --patch-size 32 --in-channels 63
--out-channels 63 --certify` command.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy/torch load their pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import resource
import subprocess
import sys
import time

from benchmarks._timing import add_out_option, machine, save_json

CASES = [
    dict(kernel_size=k, patch_size=None, in_channels=k, out_channels=k) for k in (3, 7, 15, 31, 63)
]
CASES += [
    dict(kernel_size=3, patch_size=16, in_channels=3, out_channels=64),
    dict(kernel_size=33, patch_size=16, in_channels=3, out_channels=64),
    dict(kernel_size=3, patch_size=32, in_channels=3, out_channels=64),
    dict(kernel_size=65, patch_size=32, in_channels=3, out_channels=64),
    dict(kernel_size=3, patch_size=16, in_channels=768, out_channels=768),
    dict(kernel_size=(3, 3, 3), patch_size=(2, 16, 16), in_channels=3, out_channels=768),
]
QUICK = [CASES[0], CASES[5], CASES[9]]
CLI = ["bounds", "--kernel-size", "63", "--patch-size", "32", "--in-channels", "63",
       "--out-channels", "63", "--certify"]  # fmt: skip


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(case: dict, route: str) -> dict:
    """Return the timings of one route on one case (run in its own process)."""
    import torch

    from theory.bounds import kernel_shape
    from theory.certificates import certify_lower_bound, recheck
    from theory.witnesses import random_witness

    torch.set_num_threads(1)
    base = _rss_mb()
    start = time.perf_counter()
    if route == "structured":
        cert = certify_lower_bound(**case)
    else:
        shape = kernel_shape(case["kernel_size"], in_channels=case["in_channels"],
                             out_channels=case["out_channels"])  # fmt: skip
        witness = random_witness(shape.weight_shape(), 0)
        cert = certify_lower_bound(kernel=witness, patch_size=case["patch_size"])
    certify = time.perf_counter() - start
    text = cert.to_json()
    start = time.perf_counter()
    report = recheck(text)
    check = time.perf_counter() - start
    return {
        "bound": cert.bound,
        "proof": cert.data["proof"]["kind"],
        "certify_s": certify,
        "json_mb": len(text) / 2**20,
        "recheck_s": check,
        "peak_mb": _rss_mb() - base,
        "summary": report["summary"],
    }


def _run(case: dict, route: str, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.certificates", "--worker",
           json.dumps({"case": case, "route": route})]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:g} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        refused = "would have" in last and "supported" in last
        return {"status": "refused: G too large" if refused else "failed", "error": last}
    return {"status": "ok", **json.loads(proc.stdout)}


def _cli_seconds(timeout: float) -> float | None:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "theory", *CLI], capture_output=True,
                          timeout=timeout, check=False)  # fmt: skip
    return time.perf_counter() - start if proc.returncode == 0 else None


def _cells(r: dict) -> list[str]:
    if r["status"] != "ok":
        return [r["status"], "", "", "", ""]
    return [f"{r['certify_s']:.3f}", f"{r['json_mb']:.2f}", f"{r['recheck_s']:.3f}",
            f"{r['peak_mb']:.0f}", r["proof"]]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Time every case on both routes, print a table, write the JSON; return 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.certificates",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--timeout", type=float, default=120.0, help="per process (s)")
    parser.add_argument("--quick", action="store_true", help="three small cases")
    add_out_option(parser)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        job = json.loads(args.worker)
        print(json.dumps(worker(job["case"], job["route"])))
        return 0
    rows = []
    for case in QUICK if args.quick else CASES:
        result = {route: _run(case, route, args.timeout) for route in ("structured", "dense")}
        rows.append({**case, **result})
    head = ["tokens", "k", "P", "C", "D", "s", "certify s", "JSON MB", "recheck s", "peak MB",
            "proof", "dense: certify s", "JSON MB", "recheck s", "peak MB", "proof"]  # fmt: skip
    body = []
    for r in rows:
        k, P = r["kernel_size"], r["patch_size"]
        s = r["structured"].get("bound", r["dense"].get("bound", "?"))
        size = lambda v: "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)  # noqa: E731
        body.append([
            "pixel" if P is None else "patch", size(k), "-" if P is None else size(P),
            r["in_channels"], r["out_channels"], s, *_cells(r["structured"]), *_cells(r["dense"]),
        ])  # fmt: skip
    table = [head, *[[str(c) for c in row] for row in body]]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    cli = None if args.quick else _cli_seconds(args.timeout)
    if cli is not None:
        print(f"python -m theory {' '.join(CLI)}: {cli:.2f} s (whole command, imports included)")
    save_json("certificates", {"machine": machine("cpu"), "threads": 1, "cases": rows,
                               "cli": {"argv": CLI, "seconds": cli}},
              quick=args.quick, out=args.out)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
