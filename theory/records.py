"""The records and tables the `python -m theory` commands print (README, "How many heads?").

`bounds_record` is the JSON object of one (kernel, patch) combination: `{"pixel": {...},
"patch": {...}, ...}` with the sufficient (T1/T2) and necessary (T3) heads, and optionally the
certificate (T3), the minimum of a random kernel of the shape (T4) and the fraction of sampled
kernels that need s + 1 heads.
"""

from __future__ import annotations

import functools
import math
import sys

from tqdm import tqdm

from constructions.geometry import neighbourhood_size
from theory.bounds import head_bounds, kernel_shape
from theory.certificates import certify_lower_bound
from theory.minimum import MAX_ROWS, minimum_heads
from theory.witnesses import random_witness

__all__ = [
    "MAX_MINIMUM_ENTRIES",
    "bounds_record",
    "bounds_table",
    "minimum_refusal",
    "minimum_row",
    "minimum_table",
    "size_text",
]

# kernel entries D·(C/g)·Πk up to which --minimum/--sample compute the exact minimum of a random
# kernel: the minimum and its certificate check cost ≈ 50 µs an entry (≈ 13 s at the limit)
MAX_MINIMUM_ENTRIES = 1 << 18


def size_text(size: tuple[int, ...]) -> str:
    """Return a size as the CLI writes it: `3x3`, `2x16x16`."""
    return "x".join(map(str, size))


def _shown(size: tuple[int, ...] | None) -> int | list[int] | None:
    """Return a per-axis size for JSON: one int for a square 2-D size (as before), else a list."""
    if size is None:
        return None
    return size[0] if len(set(size)) == 1 and len(size) == 2 else list(size)


def bounds_record(
    kernel_size: tuple[int, ...],
    patch_size: tuple[int, ...],
    *,
    dilation: tuple[int, ...],
    stride: tuple[int, ...] | None = None,
    padding: tuple[int, ...] | None = None,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    head_dim: int | None = None,
    certify: bool = False,
    minimum: bool = False,
    sample: int = 0,
) -> dict:
    """Return the JSON object of one combination: {"pixel": {...}, "patch": {...}, ...}.

    A strided shape (`stride`, and `padding` p before each axis) also records both.
    """
    shape = dict(dilation=dilation, in_channels=in_channels, out_channels=out_channels,
                 groups=groups)  # fmt: skip
    strided = stride is not None or padding is not None
    if strided:
        ks = kernel_shape(kernel_size, dilation=dilation, stride=stride or 1, padding=padding,
                          dims=len(kernel_size))  # fmt: skip
        shape |= {"stride": ks.stride, "padding": ks.padding}
    record: dict = {
        "kernel_size": list(kernel_size),
        "patch_size": _shown(patch_size),
        "dilation": _shown(dilation) if len(kernel_size) == 2 else list(dilation),
        **({"stride": list(shape["stride"]), "padding": list(shape["padding"])}
           if strided else {}),
        "in_channels": in_channels,
        "out_channels": out_channels,
        "groups": groups,
        "head_dim": head_dim,
    }
    for tokens, P in (("pixel", None), ("patch", patch_size)):
        record[tokens] = _tokens_entry(kernel_size, P, head_dim, certify, minimum, sample, **shape)
    return record


@functools.cache
def _tokens_entry(
    kernel_size: tuple[int, ...],
    P: tuple[int, ...] | None,
    head_dim: int | None,
    certify: bool,
    minimum: bool,
    sample: int,
    **shape: object,
) -> dict:
    """Return the "pixel" (P None) or "patch" entry; cached, so sweeps over P compute pixel once."""
    b = head_bounds(kernel_size, P, head_dim=head_dim, **shape)
    entry: dict = {
        "sufficient": b.sufficient,
        "necessary": b.necessary,
        "offsets": b.offsets,
        "span_dim": b.span_dim,
        "upper_bound": b.upper_bound,
        "tight": b.tight,
        "stacked_ranks": None if b.stacked_ranks is None else list(b.stacked_ranks),
        "stacked_exact": b.stacked_exact,
    }
    if minimum or sample:
        entry.update(_minima(kernel_size, P, minimum, sample, **shape))
    if certify:
        cert = certify_lower_bound(kernel_size, P, **shape)
        entry["certificate"] = cert.data
        entry["certificate_seconds"] = round(cert.seconds, 4)
    return entry


def minimum_refusal(
    kernel_size: tuple[int, ...],
    P: tuple[int, ...] | None,
    *,
    dilation: tuple[int, ...],
    in_channels: int,
    out_channels: int,
    groups: int,
    stride: tuple[int, ...] | int = 1,
    padding: tuple[int, ...] | None = None,
) -> str | None:
    """Return why the exact minimum (T4) of a kernel of this shape is not computed, or None.

    T4 runs on G, |N| rows by C·D/g pairs: counted here, nothing is allocated.
    """
    offsets = neighbourhood_size(kernel_size, P, dilation, stride, padding)
    tokens = "pixel tokens" if P is None else f"patch tokens of --patch-size {size_text(P)}"
    if offsets > MAX_ROWS:
        return (
            f"--kernel-size {size_text(kernel_size)} has {offsets:,} offsets on {tokens}; the "
            f"exact minimum is computed for at most {MAX_ROWS:,}"
        )
    taps = math.prod(kernel_size)
    entries = out_channels * (in_channels // groups) * taps
    if entries > MAX_MINIMUM_ENTRIES:
        most = MAX_MINIMUM_ENTRIES * groups // (out_channels * taps)
        return (
            f"--in-channels {in_channels} × --out-channels {out_channels} / --groups {groups} × "
            f"{taps:,} taps is {entries:,} kernel entries; the exact minimum is computed for at "
            f"most {MAX_MINIMUM_ENTRIES:,} (--in-channels ≤ {most} here)"
        )
    return None


def _minima(
    kernel_size: tuple[int, ...],
    P: tuple[int, ...] | None,
    one: bool,
    sample: int,
    **shape: object,
) -> dict:
    """Return {"minimum": …} for the seed-0 random kernel and {"sample": …} over `sample` more."""
    ks = kernel_shape(kernel_size, dims=len(kernel_size), **shape)  # type: ignore[arg-type]
    refusal = minimum_refusal(kernel_size, P, in_channels=ks.in_channels,
                              out_channels=ks.out_channels, groups=ks.groups,
                              **ks.geometry())  # fmt: skip
    if refusal is not None:  # too large for the exact minimum: say so instead
        return {**({"minimum": None} if one else {}), **({"sample": None} if sample else {}),
                "skipped": refusal}  # fmt: skip
    seeds = ([0] if one else []) + list(range(1, sample + 1))
    tokens = "pixel" if P is None else "patch"
    results = {
        seed: minimum_heads(random_witness(ks.weight_shape(), seed).double(), P,
                            groups=ks.groups, **ks.geometry())
        for seed in tqdm(seeds, desc=f"minimum ({tokens})", file=sys.stderr, delay=2,
                         leave=False)
    }  # fmt: skip
    out: dict = {}
    if one:
        r = results[0]
        out["minimum"] = {"heads": r.heads, "span_dim": r.span_dim, "kind": r.kind}
    if sample:
        extra = sum(results[s].heads > results[s].span_dim for s in range(1, sample + 1))
        out["sample"] = {"kernels": sample, "need_s_plus_1": extra, "fraction": extra / sample}
    return out


def _cells(
    r: dict, tokens: str, certify: bool, minimum: bool, sample: bool, notes: list[str]
) -> list[str]:
    """Return one table row; a value not computed shows `-` and the number of its note."""
    e = r[tokens]
    if "skipped" in e and e["skipped"] not in notes:
        notes.append(e["skipped"])
    missing = f"- [{notes.index(e['skipped']) + 1}]" if "skipped" in e else "-"
    P = r["patch_size"]
    compact = lambda v: str(v[0]) if len(set(v)) == 1 else size_text(v)  # noqa: E731
    stride = f"/s{compact(r['stride'])}/p{compact(r['padding'])}" if "stride" in r else ""
    row = [
        size_text(r["kernel_size"]) + stride,
        "-" if tokens == "pixel" else (str(P) if isinstance(P, int) else size_text(P)),
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
    if minimum:
        m = e.get("minimum")
        row.append(missing if m is None else str(m["heads"]))
    if sample:
        s = e.get("sample")
        row.append(missing if s is None else f"{s['need_s_plus_1']}/{s['kernels']}")
    if certify:
        c = e["certificate"]
        row += [f"≥{c['claim']['heads_at_least']} ({c['proof']['kind']})",
                f"{e['certificate_seconds']:.3f}s"]  # fmt: skip
    return row


def _format(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def bounds_table(records: list[dict], certify: bool) -> str:
    """Return the bounds as a text table, the pixel row once per kernel, and why a value is `-`."""
    minimum = any("minimum" in r["pixel"] for r in records)
    sample = any("sample" in r["pixel"] for r in records)
    head = ["kernel", "P", "C", "D", "Dh", "tokens", "|N|", "s", "struct", "sufficient",
            "necessary"]  # fmt: skip
    head += (["minimum"] if minimum else []) + (["s+1 needed"] if sample else [])
    head += ["certificate", "cert time"] if certify else []
    rows, shown, notes = [head], set(), []
    for r in records:
        key = (tuple(r["kernel_size"]), r["in_channels"], r["out_channels"])
        if key not in shown:  # the pixel row does not depend on P: once per kernel
            shown.add(key)
            rows.append(_cells(r, "pixel", certify, minimum, sample, notes))
        rows.append(_cells(r, "patch", certify, minimum, sample, notes))
    return "\n".join([_format(rows), *(f"[{i}] not computed: {n}" for i, n in enumerate(notes, 1))])


def minimum_row(name: str, result: object, patch: tuple[int, ...] | None) -> dict:
    """Return the JSON object of one kernel of `python -m theory minimum`."""
    return {
        "name": name,
        "patch_size": None if patch is None else list(patch),
        "offsets": result.offsets,
        "span_dim": result.span_dim,
        "minimum": result.heads,
        "kind": result.kind,
        "certificate": result.certificate.data,
    }


def minimum_table(rows: list[dict]) -> str:
    """Return the minimum of every kernel as a text table."""
    head = ["kernel", "shape", "P", "|N|", "s", "minimum", "certificate"]
    body = [
        [
            r["name"],
            size_text(r["shape"]) if "shape" in r else "-",
            "-" if r["patch_size"] is None else size_text(r["patch_size"]),
            str(r["offsets"]),
            str(r["span_dim"]),
            str(r["minimum"]),
            (
                "y: G y > 0 (s heads)"
                if r["kind"] == "positive vector"
                else "z ≥ 0, zᵀG = 0 (s+1 heads)"
            ),
        ]
        for r in rows
    ]
    return (
        _format([head, *body])
        + f"\n({len(rows)} kernel{'s' * (len(rows) != 1)}; "
        + f"{sum(r['minimum'] > r['span_dim'] for r in rows)} need s+1)"
    )
