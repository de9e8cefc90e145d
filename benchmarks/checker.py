"""`python -m benchmarks.checker`: the stand-alone checker's time on the audit's slow Gordan case.

Pixel k = 128, C = D = 256: two dense taps D_0 and D_1 = D_0 + E, every other tap the single
entry E, so every one of the 16,382 relations E = D_1 − D_0 uses both dense minor rows. Exact
relation checks visit 2·65,536 entries per relation (≈ 2·10⁹ in all); the checker hashes each
block once instead (Freivalds). Prints a table and writes benchmarks/results/checker.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from theory.checker import check, parse

RESULTS = Path(__file__).resolve().parent / "results"


def slow_gordan_certificate(k: int = 128, channels: int = 256, seed: int = 0) -> dict:
    """Return the valid certificate above (sparse witness; minimum 2 heads, rank 2)."""
    rng = random.Random(seed)
    t0, t1 = (0, 0), (0, 1)
    entries = []
    for o in range(channels):
        for c in range(channels):
            v = rng.randint(1, 1000)
            entries.append([o, c, *t0, v])
            entries.append([o, c, *t1, v + (o == 0 and c == 0)])
    for y in range(k):
        for x in range(k):
            if (y, x) not in (t0, t1):
                entries.append([0, 0, y, x, 1])
    r = k // 2  # PyTorch 'same': tap t has offset t − (k − 1)//2
    off = lambda t: [t[0] - (k - 1) // 2, t[1] - (k - 1) // 2]  # noqa: E731
    d00 = entries[0][-1]
    d01 = entries[2][-1]  # key (o=0, c=1) of tap t0; the same on t1
    relations = [{"row": off((y, x)), "scale": 1, "coefficients": [-1, 1]}
                 for y in range(k) for x in range(k) if (y, x) not in (t0, t1)]  # fmt: skip
    p = 1_000_000_007
    det = (d00 * d01 - d01 * (d00 + 1)) % p  # X = [[d00, d01], [d00 + 1, d01]]
    del r
    return {
        "format": "conv-as-attention certificate v1",
        "claim": {"tokens": "pixel", "kernel_size": [k, k], "patch_size": None,
                  "dilation": [1, 1], "groups": 1, "in_channels": channels,
                  "out_channels": channels, "heads": 2, "grid": None},
        "witness": {"shape": [channels, channels, k, k], "entries": entries},
        "proof": {"kind": "gordan", "span_dim": 2,
                  "minor": {"kind": "determinant", "rows": [off(t0), off(t1)],
                            "columns": [[0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]],
                            "prime": p, "det_mod_p": det},
                  "relations": relations, "positive": [1, 1], "obstruction": None},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checker", description=__doc__)
    parser.add_argument("--out", default=str(RESULTS), help="folder for checker.json")
    args = parser.parse_args(argv)
    text = json.dumps(slow_gordan_certificate(), separators=(",", ":"))
    start = time.perf_counter()
    report = check(parse(text))
    seconds = time.perf_counter() - start
    mb = len(text) / 1e6
    row = {"case": "pixel k=128, C=D=256, Gordan, 16,382 dense relations", "megabytes": mb,
           "seconds": seconds, "seconds_per_mb": seconds / mb, "summary": report["summary"]}
    print(f"| case | MB | re-check | s per MB |\n|---|---|---|---|\n| {row['case']} | "
          f"{mb:.2f} | {seconds:.2f} s | {seconds / mb:.2f} |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "checker.json").write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
