"""`python -m theory`: head bounds, exact minima, certificate re-checks (README, How many heads?).

    python -m theory bounds --kernel-size K --patch-size P [--dims N] [--dilation D]
        [--in-channels C] [--out-channels D] [--groups G] [--head-dim DH] [--certify]
        [--certificates DIR] [--minimum] [--sample N] [--json]
    python -m theory minimum --weights FILE.pt [--patch-size P] [--json]
        [--certificates DIR]
    python -m theory recheck FILE|DIR

Sizes are `K`, `KxK` or `KxKxK` (one number per axis; a single number means the same on every
axis of `--dims`, default 2); `--kernel-size` and `--patch-size` take comma lists, and a sweep
prints one row (or one JSON object in a list) per combination. Bad arguments exit with status 2
and one line on stderr; `recheck` exits 1 with `rejected: <reason>` when a certificate fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from constructions.validate import MAX_SIZE, SPATIAL_DIMS
from theory.certificates import CertificateError
from theory.minimum import minimum_heads
from theory.recheck import check_all, read_file, summary_of
from theory.records import (
    bounds_record,
    bounds_table,
    minimum_refusal,
    minimum_row,
    minimum_table,
    size_text,
)

__all__ = ["main", "parse_sizes"]

_SIZE = re.compile(r"^\+?\d+(x\+?\d+){0,2}$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _size(item: str, name: str) -> tuple[int, ...]:
    text = item.strip().lower()
    if not _SIZE.match(text):
        raise ValueError(f"{name}: {item.strip()!r} is not N, NxN or NxNxN with integers ≥ 1")
    values = tuple(int(v) for v in text.split("x"))
    for v in values:
        if v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v}")
        if v > MAX_SIZE:
            raise ValueError(f"{name}={v} is too large: at most {MAX_SIZE} is supported")
    return values


def parse_sizes(text: str, name: str) -> list[tuple[int, ...]]:
    """Return the sizes of a comma list (`3,5x3`, `2x16x16`), each a tuple of its axes."""
    return [_size(item, name) for item in text.split(",")]


def _per_dims(sizes: list[tuple[int, ...]], name: str, dims: int) -> list[tuple[int, ...]]:
    out = []
    for size in sizes:
        if len(size) == 1:
            size = size * dims
        if len(size) != dims:
            raise ValueError(
                f"{name}: {size_text(size)} has {len(size)} axes, but the sizes have {dims} "
                f"(give one number or {dims} of them, or set --dims)"
            )
        out.append(size)
    return out


def _dims(args: argparse.Namespace, named: dict[str, list[tuple[int, ...]]]) -> int:
    """Return d: the axes of the sizes written with `x`, else --dims (default 2)."""
    written = {(name, size_text(s), len(s)) for name, sizes in named.items() for s in sizes
               if len(s) > 1}  # fmt: skip
    axes = {n for _, _, n in written}
    if len(axes) > 1:
        shown = ", ".join(f"{name} {text} has {n}" for name, text, n in sorted(written))
        raise ValueError(f"sizes with different numbers of axes: {shown}")
    dims = _single(args.dims, "--dims")
    if dims not in SPATIAL_DIMS:
        raise ValueError(f"--dims must be 1, 2 or 3, got {dims}")
    if axes and args.dims_given and axes != {dims}:
        raise ValueError(f"--dims {dims} contradicts sizes with {axes.pop()} axes")
    return axes.pop() if axes else dims


def _single(text: str, name: str) -> int:
    value = _size(text, name) if "," not in text else ()
    if len(value) != 1:
        raise ValueError(f"{name} takes one integer, got {text!r}")
    return value[0]


def _count(text: str, name: str) -> int:
    """Return a count (an integer ≥ 1), or raise naming the option."""
    if not re.fullmatch(r"\+?\d+", text.strip()) or int(text) < 1:
        raise ValueError(f"{name} takes a number of kernels, an integer >= 1, got {text.strip()!r}")
    return int(text)


def _paddings(text: str) -> list[tuple[int, ...]]:
    """Return `--padding` (P, PxP or PxPxP; 0 allowed) as a one-element size list."""
    if not re.fullmatch(r"\d+(x\d+){0,2}", text.strip()):
        raise ValueError(
            f"--padding takes P, PxP or PxPxP (integers >= 0, the zeros before each axis), "
            f"got {text.strip()!r}"
        )
    return [tuple(int(v) for v in text.strip().split("x"))]


def _refuse_minimum(
    combos: list, shape: dict, dilation: tuple[int, ...], option: str, geometry: dict
) -> None:
    """Raise, before any work, when no (kernel, tokens) of the sweep allows the exact minimum."""
    strided = {k: v for k, v in geometry.items() if v is not None}
    reasons = [
        minimum_refusal(k, P, dilation=dilation, in_channels=shape["in_channels"],
                        out_channels=shape["out_channels"], groups=shape["groups"], **strided)
        for k, patch in combos for P in (None, patch)
    ]  # fmt: skip
    if all(reasons):
        raise ValueError(f"{option}: {reasons[0]}")


def _write_certificates(directory: str, named: list[tuple[str, dict]]) -> None:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name, data in named:
        (path / f"{name}.json").write_text(json.dumps(data, separators=(",", ":")))


def _bounds(args: argparse.Namespace) -> int:
    kernels = parse_sizes(args.kernel_size, "--kernel-size")
    patches = parse_sizes(args.patch_size, "--patch-size")
    dilations = parse_sizes(args.dilation, "--dilation")
    if len(dilations) != 1:
        raise ValueError(f"--dilation takes one size, got {args.dilation!r}")
    strides = None if args.stride is None else parse_sizes(args.stride, "--stride")
    paddings = None if args.padding is None else _paddings(args.padding)
    for name, given in (("--stride", strides), ("--padding", paddings)):
        if given is not None and len(given) != 1:
            raise ValueError(f"{name} takes one size, got {getattr(args, name[2:])!r}")
    sizes = {"--kernel-size": kernels, "--patch-size": patches, "--dilation": dilations}
    sizes |= {"--stride": strides} if strides else {}
    dims = _dims(args, sizes)
    kernels, patches = (
        _per_dims(kernels, "--kernel-size", dims),
        _per_dims(patches, "--patch-size", dims),
    )
    (dilation,) = _per_dims(dilations, "--dilation", dims)
    geometry = {
        "stride": None if strides is None else _per_dims(strides, "--stride", dims)[0],
        "padding": None if paddings is None else _per_dims(paddings, "--padding", dims)[0],
    }
    shape = dict(
        in_channels=_single(args.in_channels, "--in-channels"),
        out_channels=_single(args.out_channels, "--out-channels"),
        groups=_single(args.groups, "--groups"),
        head_dim=None if args.head_dim is None else _single(args.head_dim, "--head-dim"),
        sample=0 if args.sample is None else _count(args.sample, "--sample"),
    )
    certify = args.certify or args.certificates is not None
    combos = list(itertools.product(kernels, patches))
    if args.minimum or shape["sample"]:
        _refuse_minimum(combos, shape, dilation, "--minimum" if args.minimum else "--sample",
                        geometry)  # fmt: skip
    records = [
        bounds_record(k, P, dilation=dilation, certify=certify, minimum=args.minimum,
                      **geometry, **shape)
        for k, P in tqdm(combos, disable=len(combos) < 4, file=sys.stderr, desc="bounds")
    ]
    if args.certificates is not None:
        named = []
        for r in records:
            stem = f"k{size_text(r['kernel_size'])}-C{r['in_channels']}-D{r['out_channels']}"
            named.append((f"{stem}-pixel", r["pixel"]["certificate"]))
            P = r["patch_size"]
            named.append((f"{stem}-P{P if isinstance(P, int) else size_text(P)}",
                          r["patch"]["certificate"]))  # fmt: skip
        _write_certificates(args.certificates, named)
    if args.json:
        sweep = len(combos) > 1
        print(json.dumps(records if sweep else records[0], indent=None if sweep else 2))
    else:
        print(bounds_table(records, certify))
    return 0


def _kernels(path: str) -> list[tuple[str, torch.Tensor]]:
    """Return the convolution kernels (3-, 4- or 5-d weights) of a saved state_dict or tensor."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"--weights: no file {path!r}") from None
    except IsADirectoryError:
        raise ValueError(f"--weights: {path!r} is a folder, not a file") from None
    except Exception:  # torch raises many types, with pages of advice, for other files
        raise ValueError(
            f"--weights: {path!r} is not a checkpoint; give a file written by torch.save of a "
            "state_dict or tensor holding only tensors (loaded with weights_only=True)"
        ) from None
    if isinstance(obj, torch.Tensor):
        items = [("tensor", obj)]
    elif isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items() if isinstance(v, torch.Tensor)]
    else:
        raise ValueError(f"--weights: {path!r} holds a {type(obj).__name__}, not a state_dict")
    kernels = [
        (name, t) for name, t in items
        if t.ndim in (3, 4, 5) and t.dtype.is_floating_point and name.endswith(("weight", "tensor"))
    ]  # fmt: skip
    if not kernels:
        raise ValueError(
            f"--weights: {path!r} holds no convolution kernel (a 3-, 4- or 5-d weight)"
        )
    return kernels


def _minimum(args: argparse.Namespace) -> int:
    kernels = _kernels(args.weights)
    rows = []
    for name, weight in kernels:
        dims = weight.ndim - 2
        patch = None
        if args.patch_size is not None:
            (patch,) = _per_dims(parse_sizes(args.patch_size, "--patch-size"), "--patch-size", dims)
        result = minimum_heads(weight, patch)
        row = minimum_row(name, result, patch)
        row["shape"] = list(weight.shape)
        rows.append(row)
    if args.certificates is not None:
        _write_certificates(args.certificates, [(r["name"], r["certificate"]) for r in rows])
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(minimum_table(rows))
    return 0


def _recheck(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise CertificateError(f"{path} holds no .json file")
        reports = [r for f in files for r in check_all(read_file(f), str(f))]
    except CertificateError as err:
        sys.stderr.write(f"rejected: {err}\n")
        return 1
    except MemoryError:
        sys.stderr.write(f"rejected: {path}: too large to check (MemoryError)\n")
        return 1
    print(summary_of(reports))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m theory", description=(
        "Head counts of MHSA layers that compute a convolution (paper_notes T1–T4)."))  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("bounds", help="sufficient (T1/T2) and necessary (T3) heads")
    b.add_argument("--kernel-size", required=True, help="K, KxK or KxKxK, or a comma list")
    b.add_argument("--patch-size", required=True, help="P, PxP or PxPxP, or a comma list")
    b.add_argument("--dims", default=None, help="axes of single-number sizes (1, 2, 3; default 2)")
    b.add_argument("--dilation", default="1", help="D, or one per axis (DxD)")
    b.add_argument("--stride", default=None, help="S, or one per axis (SxS); default 1")
    b.add_argument(
        "--padding", default=None,
        help="zeros before each axis, P or PxP (PyTorch's padding); default dil·(k−1)//2",
    )  # fmt: skip
    b.add_argument("--in-channels", default="1")
    b.add_argument("--out-channels", default="1")
    b.add_argument("--groups", default="1")
    b.add_argument("--head-dim", default=None)
    b.add_argument("--certify", action="store_true", help="add a lower-bound certificate")
    b.add_argument(
        "--certificates",
        default=None,
        metavar="DIR",
        help="write each certificate to DIR/<name>.json (implies --certify)",
    )
    b.add_argument(
        "--minimum",
        action="store_true",
        help="the exact minimum (T4) of a random integer kernel of the shape",
    )
    b.add_argument(
        "--sample",
        default=None,
        metavar="N",
        help="how many of N random kernels of the shape need s+1 heads (T4)",
    )
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m = sub.add_parser("minimum", help="the exact minimum (T4) of every kernel in a weights file")
    m.add_argument("--weights", required=True, help="a torch.save'd state_dict or tensor")
    m.add_argument("--patch-size", default=None, help="P, PxP or PxPxP (default: pixel tokens)")
    m.add_argument("--certificates", default=None, metavar="DIR")
    m.add_argument("--json", action="store_true")
    r = sub.add_parser("recheck", help="check certificates with the stand-alone checker")
    r.add_argument("file", help="a certificate, a `bounds`/`minimum` --json output, or a folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0; 1 for a rejected certificate; 2 bad arguments)."""
    args = _parser().parse_args(argv)
    if args.command == "recheck":
        return _recheck(args)
    if args.command == "bounds":
        args.dims_given = args.dims is not None
        args.dims = args.dims or "2"
    try:
        return _bounds(args) if args.command == "bounds" else _minimum(args)
    except (TypeError, ValueError, MemoryError) as err:
        sys.stderr.write(f"python -m theory {args.command}: error: {err}\n")
        return 2
