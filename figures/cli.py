"""The command line `python -m figures`: pick figures, compute their data, draw, save, report.

    python -m figures                       # every figure into figures/ (PNG and SVG)
    python -m figures --only attention,photo --only cost
    python -m figures --quick               # small sizes into runs/figures (what the checks run)

Progress goes to stderr, one line per figure. Data are computed on one CPU thread, so their
floating-point results (and the files) do not depend on the machine's core count.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from figures.entry import FigureEntry
from figures.registry import FIGURES
from figures.rendering import FORMATS, save_figure, style

__all__ = ["DEFAULT_OUT", "QUICK_OUT", "main", "output_folder", "render", "select"]

DEFAULT_OUT = Path(__file__).resolve().parent  # the tracked figures: full runs only
QUICK_OUT = Path(__file__).resolve().parents[1] / "runs" / "figures"  # ignored: --quick runs


def select(only: Sequence[str] | None) -> list[str]:
    """Return the figure names asked for by `--only` values (comma lists allowed), in registry
    order; all of them when `only` is None. Raise ValueError naming any unknown name."""
    if only is None:
        return list(FIGURES)
    asked = [name.strip() for value in only for name in value.split(",")]
    unknown = [name for name in asked if name not in FIGURES]
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        raise ValueError(f"unknown figure name(s) {shown}; valid names: {', '.join(FIGURES)}")
    return [name for name in FIGURES if name in asked]


def output_folder(out: Path | None, quick: bool) -> Path:
    """Return where the files go: `out`, else runs/figures for --quick, else figures/."""
    return out if out is not None else QUICK_OUT if quick else DEFAULT_OUT


def render(entry: FigureEntry, data: object) -> Figure:
    """Return the figure of `entry` drawn from `data` on fresh axes, in the project's style."""
    with style():
        return entry.draw(data, entry.axes(data))


def _parser() -> argparse.ArgumentParser:
    """Return the argument parser; its help lists every registered figure."""
    listing = "\n".join(f"  {name:<12} {entry.summary}" for name, entry in FIGURES.items())
    parser = argparse.ArgumentParser(
        prog="python -m figures",
        description="Regenerate the figures as PNG and SVG files.",
        epilog=f"figures:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="make only these figures (repeatable, or a comma-separated list)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few points: seconds, not minutes (what the checks run)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: figures/; with --quick: runs/figures, so "
                             "quick sizes never replace the tracked figures)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad arguments, 1 when a figure asked
    for by name cannot be made on this machine)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        names = select(args.only)
    except ValueError as error:
        parser.error(str(error))
    args.out = output_folder(args.out, args.quick)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    torch.set_num_threads(1)
    start, made = time.perf_counter(), 0
    for i, name in enumerate(names, 1):
        entry = FIGURES[name]
        tag = f"[{i}/{len(names)}] {name}"
        reason = entry.unavailable()
        if reason is not None:
            if args.only is not None:
                print(f"python -m figures: error: {name} cannot be made here: {reason}",
                      file=sys.stderr)
                return 1
            print(f"{tag}: skipped, {reason}", file=sys.stderr, flush=True)
            continue
        print(f"{tag}: computing{' (quick)' if args.quick else ''} ...", file=sys.stderr,
              flush=True)
        t0 = time.perf_counter()
        data = entry.compute(quick=args.quick)
        paths = save_figure(render(entry, data), args.out, name)
        print(f"{tag}: {time.perf_counter() - t0:.1f} s -> {', '.join(map(str, paths))}",
              file=sys.stderr, flush=True)
        made += 1
    print(f"{made} figure(s), {made * len(FORMATS)} files in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return 0
