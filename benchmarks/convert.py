"""ResNet-18 as exact attention: per-layer heads and certified minima, end-to-end error, CPU cost.

    python -m benchmarks.convert [--no-minimum] [--repeats N]

One run: torchvision's ResNet-18 (random weights, seed 0, eval mode) converted at 224² by
`theory.convert` (T1/T2 per layer; generic s, T3; certified minimum of each layer's weights, T4,
re-checked by the stand-alone checker); the end-to-end relative error in float64 and float32 on
one seeded input; forward time of the CNN and of its attention form (batch 1, float32, medians of
interleaved runs) and their peak memory (resident-set growth of a first forward, each in a
fresh process). Prints the table and writes benchmarks/results/convert-cpu.json.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks._timing import machine, median_times, save_json
from constructions.convert import relative_error
from theory import convert

SIZE = 224


def _resnet18() -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def _input(dtype: torch.dtype, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, SIZE, SIZE, generator=g, dtype=torch.float64).to(dtype)


def _status_mb(field: str) -> float:
    """Return VmRSS or VmHWM (the resident-set high-water mark) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")  # pragma: no cover


def _peak_child(path: str) -> None:
    """Print the resident-set growth (MB) of the first forward of the saved model (child process).

    The high-water mark is reset after loading (clear_refs 5); the growth includes what the
    kernels allocate once (libraries, thread pools): a later forward reuses the freed memory.
    """
    model = torch.load(path, weights_only=False).eval()
    x = _input(torch.float32)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_mb("VmRSS")
    with torch.no_grad():
        model(x)
    print(_status_mb("VmHWM") - base)


def _peak_mb(model: torch.nn.Module) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "model.pt")
        torch.save(model, path)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.convert", "--peak-child", path],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.convert")
    parser.add_argument("--no-minimum", action="store_true", help="skip the certified minima")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peak-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        _peak_child(args.peak_child)
        return 0
    model = _resnet18()
    start = time.perf_counter()
    converted, report = convert(
        model, SIZE, certify=not args.no_minimum,
        progress=lambda rows: tqdm(rows, desc="convert", file=sys.stderr),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    converted.eval()
    errors = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        m64, c64 = (model, converted) if dtype == torch.float32 else (
            _resnet18().double(), convert(_resnet18(), SIZE, dtype=dtype, certify=False)[0]
        )  # fmt: skip
        with torch.no_grad():
            errors[name] = relative_error(m64(_input(dtype)), c64.eval()(_input(dtype)))
    x = _input(torch.float32)
    with torch.no_grad():
        times = median_times(
            {"cnn": lambda: model(x), "attention": lambda: converted(x)}, repeats=args.repeats
        )
    peaks = {"cnn": _peak_mb(model), "attention": _peak_mb(converted)}
    print(report.table())
    print(f"end-to-end max relative error: float64 {errors['float64']:.1e}, "
          f"float32 {errors['float32']:.1e}")  # fmt: skip
    t_ratio, m_ratio = times["attention"] / times["cnn"], peaks["attention"] / peaks["cnn"]
    print(f"forward (batch 1, 224², float32): CNN {times['cnn'] * 1e3:.1f} ms, attention "
          f"{times['attention'] * 1e3:.1f} ms ({t_ratio:.1f}×); peak memory CNN "
          f"{peaks['cnn']:.0f} MB, attention {peaks['attention']:.0f} MB ({m_ratio:.1f}×); "
          f"convert {seconds:.0f} s")  # fmt: skip
    path = save_json("convert-cpu", {
        "model": "torchvision resnet18 (random weights, seed 0)", "input": [1, 3, SIZE, SIZE],
        "report": report.as_dict(), "end_to_end_error": errors, "convert_seconds": seconds,
        "forward_seconds": times, "time_ratio": t_ratio,
        "peak_mb": peaks, "memory_ratio": m_ratio,
        "machine": machine("cpu"),
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
