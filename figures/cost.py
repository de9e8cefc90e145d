"""Figure 5 ('cost', 'cost_gpu'): time and peak memory against image size, measured here.

Shows what the T1 and T2 layers (paper_notes) cost in practice. The pixel-token layer (25 heads
for k = 5) runs two ways: its local path scores only the N keys its tables reach per query, so
time and memory grow linearly in T = H·W, up to 512² (1024² on the GPU); the dense path forms
the N·T² bias and attention, and runs only while that bias N·T·(T + 1)·4 bytes stays under a cap
(the figure says where it stopped). The patch-token layer (P = 16, 9 heads, as built:
`attention="auto"`) has P⁴ = 65 536 times fewer pairs; the convolution is linear in H·W.
Setting: C = D = 3 channels, k = 5, float32, batch 1, forward under `torch.no_grad()`.

CPU ('cost'): every point is a fresh process (`figures._probe`) on one thread; memory is the peak
resident-set growth of the first forward pass (caches such as the dense bias or the local plan
included). GPU ('cost_gpu', only where CUDA is available): in-process, memory from
`torch.cuda.max_memory_allocated`; the local path runs through FlexAttention from 64² to 512²
(`local_attention.FLEX_MIN_TOKENS`, `FLEX_MAX_TILES`) and through the gather path elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
from tqdm import tqdm

from figures import _probe
from figures.entry import FigureEntry
from figures.rendering import new_figure
from theory import neighbourhood_size

__all__ = ["CPU_ENTRY", "GPU_ENTRY", "CostData", "CostSeries", "compute_cost_cpu",
           "compute_cost_gpu", "cost_axes", "cuda_unavailable", "draw_cost"]

CPU_THREADS = 1  # reproducible, and immune to the oversubscription of a shared machine
SIZES = (16, 24, 32, 48, 64, 96, 128, 256, 512)
QUICK_SIZES = (16, 32)
GPU_SIZES = (*SIZES, 1024)
PIXEL_BIAS_CAP = {"cpu": 2**30, "cpu-quick": 2**24, "cuda": 2**32, "cuda-quick": 2**24}  # dense


@dataclass(frozen=True)
class CostSeries:
    """One layer's measurements; NaN where not run (time) or not resolved (memory)."""

    method: str  # one of `_probe.METHODS`
    label: str
    sizes: np.ndarray  # image side H = W in pixels
    seconds: np.ndarray
    peak_bytes: np.ndarray


@dataclass(frozen=True)
class CostData:
    """The measurements of one device and what their axes mean."""

    device: str
    setting: str
    memory_label: str
    notes: tuple[str, ...]
    series: tuple[CostSeries, ...]


def _labels() -> dict[str, str]:
    """Return the legend label of each method, head counts from the theory package."""
    k, P = _probe.KERNEL_SIZE, _probe.PATCH_SIZE
    return {
        "pixel": f"pixel-token MHSA, local path ({neighbourhood_size(k)} heads)",
        "pixel_dense": f"pixel-token MHSA, dense SDPA ({neighbourhood_size(k)} heads)",
        "patch": f"patch-token MHSA, P = {P} ({neighbourhood_size(k, P)} heads)",
        "conv": f"Conv2d {k}×{k}",
    }


def _pixel_bias_bytes(size: int) -> int:
    """Return the bytes of the pixel layer's dense float32 bias N·T·(T + 1) on a size² image
    (the dense path's; the local path forms none)."""
    T = size * size
    return neighbourhood_size(_probe.KERNEL_SIZE) * T * (T + 1) * 4


def _plan(sizes: tuple[int, ...], cap: int) -> tuple[list[tuple[str, int]], list[str]]:
    """Return the (method, size) points to measure and a note on what the cap left out."""
    points = [(m, s) for m in _probe.METHODS for s in sizes if _probe.supports(m, s)]
    kept = [(m, s) for m, s in points if m != "pixel_dense" or _pixel_bias_bytes(s) <= cap]
    dropped = [s for m, s in points if (m, s) not in kept]
    notes = []
    if dropped:
        notes.append(f"dense pixel-token MHSA not run for H ≥ {min(dropped)}: its bias alone "
                     f"would take {_pixel_bias_bytes(min(dropped)) / 2**30:.1f} GiB "
                     f"(cap {cap / 2**30:.2g} GiB)")
    return kept, notes


def _collect(results: dict[tuple[str, int], dict[str, float | None]],
             sizes: tuple[int, ...]) -> tuple[CostSeries, ...]:
    """Return one `CostSeries` per method from the measured points (NaN where absent)."""
    series = []
    for method, label in _labels().items():
        got = [results.get((method, s)) for s in sizes]
        seconds = [math.nan if r is None else r["seconds"] for r in got]
        peak = [r["peak_bytes"] if r is not None and (r["peak_bytes"] or 0) > 0 else math.nan
                for r in got]
        series.append(CostSeries(method, label, np.asarray(sizes), np.asarray(seconds, float),
                                 np.asarray(peak, float)))
    return tuple(series)


def _cpu_name() -> str:
    """Return the CPU model from /proc/cpuinfo (Linux), or 'CPU'."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def _setting() -> str:
    """Return the one-line description of what every point measures."""
    return (f"C = D = {_probe.CHANNELS}, k = {_probe.KERNEL_SIZE}, float32, batch 1, "
            "forward under torch.no_grad()")


def _probe_cpu(method: str, size: int) -> dict[str, float | None]:
    """Return one point measured by `figures._probe` in a fresh Python process."""
    root = Path(__file__).resolve().parent.parent  # holds the figures and constructions packages
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # RSS follows the live tensors (see figures._probe)
    request = json.dumps({"method": method, "size": size, "threads": CPU_THREADS})
    done = subprocess.run([sys.executable, "-m", "figures._probe", request], cwd=root, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cost probe {method} H={size} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def compute_cost_cpu(*, quick: bool = False) -> CostData:
    """Return CPU time and peak-RSS growth of the pixel MHSA (local and dense), patch MHSA and
    Conv2d forward against image size (one fresh single-threaded process per point): T1, T2
    in practice."""
    sizes = QUICK_SIZES if quick else SIZES
    points, notes = _plan(sizes, PIXEL_BIAS_CAP["cpu-quick" if quick else "cpu"])
    results = {p: _probe_cpu(*p) for p in tqdm(points, desc="cost: CPU points", leave=False)}
    unresolved = [p for p, r in results.items() if not (r["peak_bytes"] or 0) > 0]
    if unresolved:
        notes.append(f"{len(unresolved)} memory point(s) not drawn: no RSS growth measurable "
                     "(below one page, or no /proc/self/clear_refs)")
    return CostData(
        device=f"CPU ({_cpu_name()}), {CPU_THREADS} thread",
        setting=_setting(),
        memory_label="peak RSS growth in the first forward (MiB)",
        notes=tuple(notes),
        series=_collect(results, sizes),
    )


def cuda_unavailable() -> str | None:
    """Return why the GPU figure cannot be made here, or None when a CUDA device is usable."""
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


def compute_cost_gpu(*, quick: bool = False) -> CostData:
    """Return CUDA time and `max_memory_allocated` growth of the same three layers against image
    size (measured in this process): T1, T2 in practice."""
    reason = cuda_unavailable()
    if reason is not None:
        raise RuntimeError(f"the GPU cost figure needs CUDA: {reason}")
    sizes = QUICK_SIZES if quick else GPU_SIZES
    points, notes = _plan(sizes, PIXEL_BIAS_CAP["cuda-quick" if quick else "cuda"])
    results = {p: _probe.measure_cuda(*p) for p in tqdm(points, desc="cost: GPU points",
                                                          leave=False)}
    return CostData(
        device=f"GPU ({torch.cuda.get_device_name()})",
        setting=_setting(),
        memory_label="max_memory_allocated growth in the first forward (MiB)",
        notes=tuple(notes),
        series=_collect(results, sizes),
    )


def cost_axes(data: CostData) -> np.ndarray:
    """Return two side-by-side axes (time, memory) on a new figure."""
    fig = new_figure(9.0, 4.0 + 0.2 * len(data.notes))
    return fig.subplots(1, 2)


_COLOURS = {"pixel": "tab:red", "pixel_dense": "tab:orange", "patch": "tab:blue",
            "conv": "tab:gray"}  # fmt: skip
_MARKERS = {"pixel": "o", "pixel_dense": "D", "patch": "s", "conv": "^"}
_LINES = {"pixel_dense": "--"}


def draw_cost(data: CostData, axes: np.ndarray) -> Figure:
    """Return the figure: forward time (left) and peak memory (right) against image side, log-log,
    one line per layer, with the device, the setting and what was not measured."""
    time_ax: Axes
    memory_ax: Axes
    time_ax, memory_ax = axes
    for s in data.series:
        style = dict(color=_COLOURS[s.method], marker=_MARKERS[s.method], markersize=4,
                     linewidth=1.3, linestyle=_LINES.get(s.method, "-"), label=s.label)
        time_ax.loglog(s.sizes, s.seconds * 1e3, **style)
        memory_ax.loglog(s.sizes, s.peak_bytes / 2**20, **style)
    time_ax.set_ylabel("forward time, median of repeats (ms)")
    memory_ax.set_ylabel(data.memory_label)
    measured = np.unique(np.concatenate([s.sizes[np.isfinite(s.seconds)] for s in data.series]))
    for ax in axes:
        ax.set_xlabel("image side H = W (pixels)")
        ax.xaxis.set_major_locator(FixedLocator(measured))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.tick_params(axis="x", labelrotation=45)
        ax.grid(True, which="major", color="0.92", linewidth=0.6)
    time_ax.legend(loc="upper left", frameon=False)
    fig = time_ax.get_figure(root=True)
    fig.suptitle(f"Cost of one forward pass on {data.device}\n{data.setting}")
    if data.notes:
        fig.supxlabel("\n".join(data.notes), fontsize=8, color="0.3")
    return fig


CPU_ENTRY = FigureEntry(
    compute_cost_cpu, cost_axes, draw_cost,
    "time and peak memory vs image size on the CPU: pixel MHSA (local, dense), patch MHSA, Conv2d",
)  # fmt: skip
GPU_ENTRY = FigureEntry(
    compute_cost_gpu, cost_axes, draw_cost,
    "the same on the GPU (torch.cuda.max_memory_allocated)", unavailable=cuda_unavailable,
)  # fmt: skip
