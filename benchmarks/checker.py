"""`python -m benchmarks.checker`: the stand-alone checker's time and memory at the format's limits.

Each case is written to a file and re-checked by `python theory/checker.py FILE` in a fresh
process; the peak resident set is that process's own (VmHWM: interpreter, JSON text, parsed
tree and work). Valid certificates must verify, garbage must be rejected:

* the audit's slow Gordan case: pixel k = 128, C = D = 256, two dense taps D_0 and D_1 = D_0 + E,
  every other tap the single entry E, so each of the 16,382 relations E = D_1 − D_0 uses both
  dense minor rows (exact checks would visit ≈ 2·10⁹ entries; the checker hashes each block once);
* a ResNet-18 layer-4 convolution (3×3, 512 → 512, pixel tokens, stride 1) as the producer writes
  it: `minimum_heads` of a random float32 kernel, 2,359,296 witness entries (= MAX_ENTRIES);
* the worst sparse and the worst dense witness the limits admit: MAX_ENTRIES (MAX_DENSE) weights of
  a 3×3×3 pixel kernel, in random order (sparse), with the longest values that keep the text
  within MAX_BYTES, and a Gordan proof (rank 27 = |N|, a positive vector) that builds every block;
* the most relations and the most rows: Gordan proofs with 32,697 relations of 64 non-zero
  coefficients (and 2.1 M witness entries), and with |N| = MAX_ROWS;
* the largest determinant minor (2000 × 2000);
* garbage: MAX_COMMAS numbers in MAX_LISTS lists, the costliest text the parser takes in.

Prints a table and writes checker.json to benchmarks/results (runs/benchmarks with --quick).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flint

from benchmarks._timing import save_json
from theory import checker

CHECKER = Path(checker.__file__).resolve()
PRIME = 1_000_000_007

# Run in a fresh interpreter: re-check FILE as `python theory/checker.py FILE` does, then report
# the wall and CPU seconds of parse + check and the peak resident set of the whole process.
_RUNNER = """
import importlib.util, json, resource, sys, time
spec = importlib.util.spec_from_file_location("checker", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
wall, cpu = time.perf_counter(), time.process_time()
code = m.main([sys.argv[2]])
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
status = open("/proc/self/status").read() if sys.platform == "linux" else ""
hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
peak = int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rc": code, "seconds": wall, "cpu_seconds": cpu, "peak_mb": peak}))
"""


def slow_gordan_certificate(k: int = 128, channels: int = 256, seed: int = 0) -> dict:
    """Return the audit's slow valid certificate (sparse witness; minimum 2 heads, rank 2)."""
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
    off = lambda t: [t[0] - (k - 1) // 2, t[1] - (k - 1) // 2]  # noqa: E731  PyTorch 'same'
    d00 = entries[0][-1]
    d01 = entries[2][-1]  # key (o=0, c=1) of tap t0; the same on t1
    relations = [{"row": off((y, x)), "scale": 1, "coefficients": [-1, 1]}
                 for y in range(k) for x in range(k) if (y, x) not in (t0, t1)]  # fmt: skip
    det = (d00 * d01 - d01 * (d00 + 1)) % PRIME  # X = [[d00, d01], [d00 + 1, d01]]
    return {
        "format": "conv-as-attention certificate v1",
        "claim": {"tokens": "pixel", "kernel_size": [k, k], "patch_size": None,
                  "dilation": [1, 1], "groups": 1, "in_channels": channels,
                  "out_channels": channels, "heads": 2, "grid": None},
        "witness": {"shape": [channels, channels, k, k], "entries": entries},
        "proof": {"kind": "gordan", "span_dim": 2,
                  "minor": {"kind": "determinant", "rows": [off(t0), off(t1)],
                            "columns": [[0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]],
                            "prime": PRIME, "det_mod_p": det},
                  "relations": relations, "positive": [1, 1], "obstruction": None},
    }  # fmt: skip


def full_rank_certificate(
    k: tuple[int, ...], channels: int, digits: int, *, dense: bool, seed: int = 0
) -> dict:
    """Return a valid Gordan certificate of a pixel kernel k (stride 1), C = D = channels, with
    every weight non-zero and `digits`-digit values (two-digit ones in the minor's columns, so
    that y stays short): rank |N| = Π k (no relations) and y > 0."""
    rng = random.Random(seed)
    lo, taps = 10 ** (digits - 1), list(itertools.product(*map(range, k)))
    W = [rng.randrange(lo, 10 * lo) * rng.choice((-1, 1)) for _ in range(channels**2 * len(taps))]
    W = [W[i] or 1 for i in range(len(W))]
    n, d = len(taps), len(k)
    pairs = [(j // channels % channels, j % channels) for j in range(n)]  # minor columns (o, c)
    for (o, c), i in itertools.product(pairs, range(n)):  # small minor entries: y stays short
        W[(o * channels + c) * n + i] = rng.randint(1, 99)
    at = lambda o, c, i: W[(o * channels + c) * n + i]  # noqa: E731  tap index i
    X = [at(o, c, i) for i in range(n) for o, c in pairs]  # X[i][j] = W[o_j][c_j][t_i]
    det = int(flint.nmod_mat(n, n, [x % PRIME for x in X], PRIME).det())
    if det == 0:  # pragma: no cover - a random integer matrix is singular mod p w.p. ~1/p
        return full_rank_certificate(k, channels, digits, dense=dense, seed=seed + 1)
    ys = flint.fmpq_mat(n, n, X).solve(flint.fmpq_mat(n, 1, [1] * n)).entries()  # X y = 1 > 0
    den = math.lcm(*(int(q.q) for q in ys))
    if dense:
        witness: object = [[_nest(W[(o * channels + c) * n : (o * channels + c + 1) * n], k)
                            for c in range(channels)] for o in range(channels)]  # fmt: skip
    else:
        entries = [[o, c, *t, W[(o * channels + c) * n + i]]
                   for o in range(channels) for c in range(channels)
                   for i, t in enumerate(taps)]  # fmt: skip
        rng.shuffle(entries)  # the checker groups by tap with a sort: the slow order
        witness = {"shape": [channels, channels, *k], "entries": entries}
    return {
        "format": "conv-as-attention certificate v1",
        "claim": {"tokens": "pixel", "kernel_size": list(k), "patch_size": None,
                  "dilation": [1] * d, "groups": 1, "in_channels": channels,
                  "out_channels": channels, "heads": n, "grid": None},
        "witness": witness,
        "proof": {"kind": "gordan", "span_dim": n,
                  "minor": {"kind": "determinant",
                            "rows": [[x - (m - 1) // 2 for x, m in zip(t, k, strict=True)]
                                     for t in taps],
                            "columns": [[0] * d + [c] + [0] * d + [o] for o, c in pairs],
                            "prime": PRIME, "det_mod_p": det},
                  "relations": [], "positive": [int(q * den) for q in ys],
                  "obstruction": None},
    }  # fmt: skip


def relations_certificate(k: int, s: int, *, dense: bool, seed: int = 0) -> dict:
    """Return a valid Gordan certificate with |N| − s relations of s coefficients each: a k×k
    pixel kernel, C = 1, D = s; tap i < s is the unit vector e_i (an identity minor), every
    other tap is Σ x_o·e_o with x ≥ 1 on all s channels (dense) or on one (sparse); y = 1."""
    rng = random.Random(seed)
    taps = list(itertools.product(range(k), repeat=2))
    entries = [[i, 0, *taps[i], 1] for i in range(s)]
    relations = []
    for t in taps[s:]:
        x = [rng.randint(1, 9) for _ in range(s)] if dense else [0] * s
        if not dense:
            x[rng.randrange(s)] = rng.randint(1, 9)
        entries += [[o, 0, *t, v] for o, v in enumerate(x) if v]
        relations.append({"row": [a - (k - 1) // 2 for a in t], "scale": 1, "coefficients": x})
    return {
        "format": "conv-as-attention certificate v1",
        "claim": {"tokens": "pixel", "kernel_size": [k, k], "patch_size": None,
                  "dilation": [1, 1], "groups": 1, "in_channels": 1, "out_channels": s,
                  "heads": s, "grid": None},
        "witness": {"shape": [s, 1, k, k], "entries": entries},
        "proof": {"kind": "gordan", "span_dim": s,
                  "minor": {"kind": "triangular",
                            "rows": [[a - (k - 1) // 2 for a in t] for t in taps[:s]],
                            "columns": [[0, 0, 0, 0, 0, o] for o in range(s)]},
                  "relations": relations, "positive": [1] * s, "obstruction": None},
    }  # fmt: skip


def determinant_certificate(n: int = 2000, seed: int = 0) -> dict:
    """Return a valid lower-bound certificate with the largest "determinant" minor (n rows): a
    pixel kernel with ≥ n taps and C = D = ⌈√n⌉, tap i holding one weight v_i at the pair i."""
    rng, side = random.Random(seed), math.isqrt(n - 1) + 1
    taps = list(itertools.product(range(side), repeat=2))[:n]
    values = [rng.randint(1, 10**6) for _ in range(n)]
    pairs = enumerate(zip(taps, values, strict=True))
    entries = [[i // side, i % side, *t, v] for i, (t, v) in pairs]
    return {
        "format": "conv-as-attention certificate v1",
        "claim": {"tokens": "pixel", "kernel_size": [side, side], "patch_size": None,
                  "dilation": [1, 1], "groups": 1, "in_channels": side, "out_channels": side,
                  "heads_at_least": n},
        "witness": {"shape": [side, side, side, side], "entries": entries},
        "proof": {"kind": "determinant", "prime": PRIME,
                  "det_mod_p": math.prod(v % PRIME for v in values) % PRIME,
                  "rows": [[a - (side - 1) // 2 for a in t] for t in taps],
                  "columns": [[0, 0, i % side, 0, 0, i // side] for i in range(n)]},
    }  # fmt: skip


def garbage_text() -> str:
    """The costliest text the parser accepts before any field is read: MAX_COMMAS numbers in
    MAX_LISTS lists, each number a separate 7-digit int object, in the largest text admitted."""
    commas, lists = checker.MAX_COMMAS - 16, checker.MAX_LISTS - 16
    per, extra = divmod(commas - lists + 1, lists)
    items = (",".join(map(str, range(10**6, 10**6 + per + (i < extra)))) for i in range(lists))
    return '{"format":[' + "],[".join(items).join("[]") + "]}"


def _nest(flat: list, shape: tuple[int, ...]) -> list:
    """The flat list (C order) as nested lists of `shape`."""
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_nest(flat[i : i + step], shape[1:]) for i in range(0, len(flat), step)]


def resnet_layer4_certificate(seed: int = 0) -> dict:
    """Return the producer's certificate of a random 3×3 512 → 512 convolution (pixel tokens)."""
    import torch

    from theory import minimum_heads

    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(512, 512, 3, padding=1, bias=False)
    return minimum_heads(conv).certificate.data


def worst_cases() -> dict[str, object]:
    """The limits' worst certificates, lazily: name → a function building it."""
    k, ch = (3, 3, 3), math.isqrt(checker.MAX_ENTRIES // 27)
    sparse_bytes = len(f"[{ch - 1},{ch - 1},2,2,2,],")
    digits = (checker.MAX_BYTES * 97 // 100) // (ch * ch * 27) - sparse_bytes - 1
    dense_digits = (checker.MAX_BYTES * 97 // 100) // (ch * ch * 27) - 2
    return {
        f"worst sparse: {ch * ch * 27:,} entries (3×3×3, C = D = {ch}), {digits}-digit values":
            lambda: full_rank_certificate(k, ch, digits, dense=False),
        f"worst dense: {ch * ch * 27:,} entries (3×3×3, C = D = {ch}), {dense_digits}-digit values":
            lambda: full_rank_certificate(k, ch, dense_digits, dense=True),
    }  # fmt: skip


def measure(cert: dict | str, checker_path: Path = CHECKER, *, valid: bool = True) -> dict:
    """Write `cert` (or this JSON text), re-check it in a fresh process; return MB, seconds, CPU
    seconds, peak MB. A valid certificate must verify; garbage (valid=False) must be rejected."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cert.json"
        text = cert if type(cert) is str else json.dumps(cert, separators=(",", ":"))
        path.write_text(text)
        run = subprocess.run([sys.executable, "-c", _RUNNER, str(checker_path), str(path)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if run.returncode != 0 or not run.stdout.strip():
        raise RuntimeError(f"the checker failed: {run.stderr.strip()[-500:]}")
    out = json.loads(run.stdout.strip().splitlines()[-1])
    said = run.stdout.strip().splitlines()[0] if out["rc"] == 0 else run.stderr.strip()
    out.update(megabytes=len(text) / 1e6, summary=said)
    if (out["rc"] == 0) != valid:
        raise RuntimeError(f"the checker's verdict is wrong (rc {out['rc']}): {said[:500]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checker", description=__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for checker.json (default: benchmarks/results, "
                             "or runs/benchmarks with --quick)")  # fmt: skip
    parser.add_argument("--checker", default=str(CHECKER), help="checker.py to measure")
    parser.add_argument("--quick", action="store_true", help="the audit's case only")
    args = parser.parse_args(argv)
    cases: dict[str, object] = {
        "audit: pixel k=128, C=D=256, Gordan, 16,382 dense relations": slow_gordan_certificate,
    }
    if not args.quick:
        cases["ResNet-18 layer 4: 3×3, 512→512, pixel tokens (producer)"] = (
            resnet_layer4_certificate
        )
        cases.update(worst_cases())
        k, s, rows = 181, 64, math.isqrt(checker.MAX_ROWS)  # 181² − 64 relations fit MAX_COMMAS
        cases[f"most relations (dense): {k}×{k} pixel taps, D = {s}, {k * k - s:,} × {s} "
              "coefficients"] = lambda: relations_certificate(k, s, dense=True)
        cases[f"most rows: {rows}×{rows} = MAX_ROWS taps, D = {s}, {rows * rows - s:,} "
              "relations"] = lambda: relations_certificate(rows, s, dense=False)  # fmt: skip
        cases["largest determinant minor: 2000 × 2000"] = determinant_certificate
        cases["garbage: MAX_COMMAS numbers in MAX_LISTS lists (rejected)"] = garbage_text
    rows = []
    print("| case | MB | re-check | CPU | s per MB | peak RSS |\n|---|---|---|---|---|---|")
    for name, build in cases.items():
        start = time.perf_counter()
        cert = build()  # type: ignore[operator]
        built = time.perf_counter() - start
        valid = type(cert) is not str
        row = {"case": name, **measure(cert, Path(args.checker), valid=valid),
               "build_seconds": built}  # fmt: skip
        del cert
        row["seconds_per_mb"] = row["seconds"] / row["megabytes"]
        rows.append(row)
        print(f"| {name} | {row['megabytes']:.1f} | {row['seconds']:.2f} s | "
              f"{row['cpu_seconds']:.2f} s | {row['seconds_per_mb']:.3f} | "
              f"{row['peak_mb']:.0f} MB |", flush=True)  # fmt: skip
    limits = {name: getattr(checker, name) for name in dir(checker) if name.startswith("MAX_")}
    path = save_json("checker", {"limits": limits, "cases": rows}, quick=args.quick, out=args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
