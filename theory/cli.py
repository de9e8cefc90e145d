"""`python -m theory bounds`: sufficient and necessary heads for pixel and patch input (SPEC §4).

    python -m theory bounds --kernel-size K --patch-size P [--dilation D] [--in-channels C]
        [--out-channels D] [--head-dim DH] [--certify] [--json]

`--kernel-size` takes `K` or `KHxKW`; `--kernel-size` and `--patch-size` take comma lists, and a
sweep prints one table row (or one JSON object in a list) per combination, with a progress bar on
stderr. Bad arguments exit with status 2 and one readable line on stderr.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys

from tqdm import tqdm

from theory._validate import positive_int
from theory.bounds import head_bounds
from theory.certificates import certify_lower_bound

__all__ = ["bounds_record", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _kernel_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) not in (1, 2) or not all(p.strip().lstrip("+").isdigit() for p in parts):
            raise ValueError(f"--kernel-size: {item.strip()!r} is not K or KHxKW with integers ≥ 1")
        kh, kw = (int(parts[0]), int(parts[-1]))
        sizes.append((positive_int(kh, "--kernel-size"), positive_int(kw, "--kernel-size")))
    return sizes


def _ints(text: str, name: str) -> list[int]:
    values = []
    for item in text.split(","):
        if not item.strip().lstrip("+").isdigit():
            raise ValueError(f"{name}: {item.strip()!r} is not an integer ≥ 1")
        values.append(positive_int(int(item), name))
    return values


def bounds_record(
    kernel_size: tuple[int, int],
    patch_size: int,
    *,
    dilation: int = 1,
    in_channels: int = 1,
    out_channels: int = 1,
    head_dim: int | None = None,
    certify: bool = False,
) -> dict:
    """Return the JSON object of one combination: {"pixel": {...}, "patch": {...}, ...}. SPEC §4."""
    shape = dict(dilation=dilation, in_channels=in_channels, out_channels=out_channels)
    record: dict = {
        "kernel_size": list(kernel_size),
        "patch_size": patch_size,
        "dilation": dilation,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "head_dim": head_dim,
    }
    for tokens, P in (("pixel", None), ("patch", patch_size)):
        record[tokens] = _tokens_entry(kernel_size, P, head_dim, certify, **shape)
    return record


@functools.cache
def _tokens_entry(
    kernel_size: tuple[int, int], P: int | None, head_dim: int | None, certify: bool, **shape: int
) -> dict:
    """Return the "pixel" (P None) or "patch" entry; cached, so sweeps over P compute pixel once."""
    b = head_bounds(kernel_size, P, head_dim=head_dim, **shape)
    entry = {
        "sufficient": b.sufficient,
        "necessary": b.necessary,
        "offsets": b.offsets,
        "span_dim": b.span_dim,
        "upper_bound": b.upper_bound,
        "tight": b.tight,
        "stacked_ranks": None if b.stacked_ranks is None else list(b.stacked_ranks),
        "stacked_exact": b.stacked_exact,
    }
    if certify:
        cert = certify_lower_bound(kernel_size, P, **shape)
        entry["certificate"] = {
            "bound": cert.bound,
            "rank": cert.rank,
            "tight": cert.tight,
            "prime": cert.prime,
            "det_mod_p": cert.det_mod_p,
            "minor_size": len(cert.minor_rows),
            "rank_method": cert.rank_method,
            "seconds": round(cert.seconds, 4),
        }
    return entry


def _table(records: list[dict], certify: bool) -> str:
    head = [
        "kernel",
        "P",
        "C",
        "D",
        "Dh",
        "tokens",
        "|N|",
        "s",
        "struct",
        "sufficient",
        "necessary",
    ] + (["cert s", "cert time"] if certify else [])
    rows = [head]
    shown_pixels = set()
    for r in records:
        for tokens in ("pixel", "patch"):
            e = r[tokens]
            if tokens == "pixel":  # the pixel row does not depend on P: once per kernel
                if tuple(r["kernel_size"]) in shown_pixels:
                    continue
                shown_pixels.add(tuple(r["kernel_size"]))
            row = [
                "x".join(map(str, r["kernel_size"])),
                str(r["patch_size"]) if tokens == "patch" else "-",
                str(r["in_channels"]),
                str(r["out_channels"]),
                str(r["head_dim"] or "-"),
                tokens,
                str(e["offsets"]),
                str(e["span_dim"]),
                f"{e['upper_bound']}{'' if e['tight'] else ' (not met)'}",
                str(e["sufficient"]),
                str(e["necessary"]) + ("" if e["stacked_exact"] else " (≥)"),
            ]
            if certify:
                c = e["certificate"]
                row += [str(c["bound"]), f"{c['seconds']:.3f}s"]
            rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0, or 2 for bad arguments). SPEC §4."""
    parser = _Parser(prog="python -m theory", description="Head-count bounds (SPEC §2, §4).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("bounds", help="sufficient and necessary heads, pixel and patch tokens")
    b.add_argument("--kernel-size", required=True, help="K or KHxKW, or a comma list")
    b.add_argument("--patch-size", required=True, help="P, or a comma list")
    b.add_argument("--dilation", default="1")
    b.add_argument("--in-channels", default="1")
    b.add_argument("--out-channels", default="1")
    b.add_argument("--head-dim", default=None)
    b.add_argument("--certify", action="store_true", help="add an exact lower-bound certificate")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        kernels = _kernel_sizes(args.kernel_size)
        patches = _ints(args.patch_size, "--patch-size")
        (dilation,) = _single(args.dilation, "--dilation")
        (c_in,) = _single(args.in_channels, "--in-channels")
        (c_out,) = _single(args.out_channels, "--out-channels")
        head_dim = None if args.head_dim is None else _single(args.head_dim, "--head-dim")[0]
        combos = list(itertools.product(kernels, patches))
        records = [
            bounds_record(
                k,
                P,
                dilation=dilation,
                in_channels=c_in,
                out_channels=c_out,
                head_dim=head_dim,
                certify=args.certify,
            )
            for k, P in tqdm(combos, disable=len(combos) < 4, file=sys.stderr, desc="bounds")
        ]
    except (TypeError, ValueError) as err:
        sys.stderr.write(f"python -m theory bounds: error: {err}\n")
        return 2
    sweep = len(combos) > 1
    if args.json:
        print(json.dumps(records if sweep else records[0], indent=None if sweep else 2))
    else:
        print(_table(records, args.certify))
    return 0


def _single(text: str, name: str) -> list[int]:
    values = _ints(text, name)
    if len(values) != 1:
        raise ValueError(f"{name} takes one integer, got {text!r}")
    return values
