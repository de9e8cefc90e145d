"""Timing helpers for the benchmarks: interleaved medians, so ratios survive a noisy machine."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["add_out_option", "machine", "median_times", "print_table", "save_json"]

RESULTS = Path(__file__).resolve().parent / "results"  # tracked: full runs only
RUNS = Path(__file__).resolve().parents[1] / "runs" / "benchmarks"  # ignored: --quick runs


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_times(
    fns: dict[str, Callable[[], object]], *, repeats: int = 7, device: str = "cpu"
) -> dict[str, float]:
    """Return the median seconds per call of each function, measured round-robin.

    One warm-up call each, then `repeats` rounds in which every function runs once: a burst of
    load from elsewhere hits all of them alike, so their ratios stay meaningful.
    """
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def machine(device: str) -> dict[str, object]:
    """Return a description of the machine the numbers come from."""
    info: dict[str, object] = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def print_table(rows: list[dict[str, object]], columns: list[tuple[str, str, str]]) -> None:
    """Print rows as a fixed-width table; columns are (key, header, format)."""
    headers = [h for _, h, _ in columns]
    cells = [
        [format(row[k], f) if row.get(k) is not None else "-" for k, _, f in columns]
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def add_out_option(parser: argparse.ArgumentParser) -> None:
    """Add `--out DIR`: where the JSON goes (default benchmarks/results, runs/benchmarks with
    --quick, so quick numbers never replace the tracked results)."""
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for the JSON (default: benchmarks/results; with --quick: "
                             "runs/benchmarks)")  # fmt: skip


def save_json(
    name: str, payload: dict[str, object], *, quick: bool = False, out: Path | None = None
) -> Path:
    """Write `payload` to <folder>/<name>.json and return the path: the folder is `out`, else
    runs/benchmarks for a `quick` run, else benchmarks/results."""
    folder = out if out is not None else RUNS if quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
