"""One cost measurement: time and peak memory of one layer's forward pass on one image size.

Methods: "pixel" is the pixel-token layer through its local path (`attention="local"`: only the
keys its tables reach, linear in the tokens), "pixel_dense" the same layer through dense SDPA
(its N·T·(T + 1) bias built and cached in the first call), "patch" the patch-token layer as
built (`attention="auto"`), "conv" the convolution.

Run as `python -m figures._probe '{"method": "pixel", "size": 32, "threads": 1}'` it prints one
JSON object `{"seconds": float, "peak_bytes": float | null}` and exits; `figures.cost` runs it
once per point in a fresh process with glibc's `MALLOC_MMAP_THRESHOLD_=65536`, so that every
tensor buffer is its own mapping, returned to the system when freed, and the resident set follows
the live tensors (with the default adaptive threshold, freed buffers linger in the heap and the
same call measures anywhere between 0 and 3× its true transient).

Memory (CPU): after a warm-up forward on a small image (kernels initialised) and with the layer's
weights resident (written once, as after loading a checkpoint), the kernel's resident-set
high-water mark is reset (`/proc/self/clear_refs`, Linux ≥ 4.0) and
`peak_bytes = VmHWM after the first full-size forward − VmRSS before it`: the memory that forward
pass adds, including its output and the bias table it builds and caches, excluding weights and
input. Where the mark cannot be reset, null.
Memory (CUDA): `torch.cuda.max_memory_allocated()` during the first forward minus the memory
allocated before it (the same quantity). Time: median of repeated calls after the first.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from constructions import (
    image_to_patches,
    image_to_pixels,
    patch_mhsa_from_conv,
    pixel_mhsa_from_conv,
)

__all__ = ["CHANNELS", "KERNEL_SIZE", "METHODS", "PATCH_SIZE", "PIXEL_PATHS", "build",
           "measure_cpu", "measure_cuda", "supports"]

KERNEL_SIZE = 5
CHANNELS = 3  # an RGB image: C = D = 3, so patch tokens are P²·3 = 768-wide as in ViT-Base
PATCH_SIZE = 16
METHODS = ("pixel", "pixel_dense", "patch", "conv")
PIXEL_PATHS = {"pixel": "local", "pixel_dense": "sdpa"}
SEED = 5
_MIN_REPEATS, _MAX_REPEATS, _MIN_SECONDS = 3, 50, 0.3


def _warmup_size(method: str) -> int:
    """Return the smallest image `method` runs on: the warm-up must not lift the memory mark."""
    return 2 * PATCH_SIZE if method == "patch" else KERNEL_SIZE + 3


def supports(method: str, size: int) -> bool:
    """Return whether `method` runs on a size×size image (patch tokens need a multiple of P and
    a grid that holds the kernel's reach)."""
    if method == "patch":
        return size % PATCH_SIZE == 0 and size >= 2 * PATCH_SIZE
    return size >= KERNEL_SIZE


def build(method: str, size: int, device: str) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                         torch.Tensor]:
    """Return (layer, input) for `method` on a size×size float32 image: the Conv2d on the image,
    or the MHSA constructed from it on pixel tokens (local or dense path) or patch tokens."""
    generator = torch.Generator().manual_seed(SEED)
    conv = nn.Conv2d(CHANNELS, CHANNELS, KERNEL_SIZE, padding="same")
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
    image = torch.randn(1, CHANNELS, size, size, generator=generator)
    conv, image = conv.to(device), image.to(device)
    if method == "conv":
        return conv, image
    if method in PIXEL_PATHS:
        layer = pixel_mhsa_from_conv(conv, size, attention=PIXEL_PATHS[method])
        return layer, image_to_pixels(image).contiguous()
    if method == "patch":
        tokens = image_to_patches(image, PATCH_SIZE).contiguous()
        return patch_mhsa_from_conv(conv, size, PATCH_SIZE), tokens
    raise ValueError(f"method={method!r}: expected one of {METHODS}")


def _median_seconds(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    sync: Callable[[], None]) -> float:
    """Return the median wall time of `layer(x)` over repeated calls (at least 0.3 s in all)."""
    times: list[float] = []
    while len(times) < _MIN_REPEATS or (sum(times) < _MIN_SECONDS and len(times) < _MAX_REPEATS):
        start = time.perf_counter()
        layer(x)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_bytes(field: str) -> int:
    """Return a `VmRSS`/`VmHWM`-style field of /proc/self/status in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise OSError(f"/proc/self/status has no {field}")


def _reset_high_water_mark() -> bool:
    """Return whether the resident-set high-water mark (VmHWM) was reset to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_cpu(method: str, size: int) -> dict[str, float | None]:
    """Return {seconds, peak_bytes} of one CPU forward pass (see module doc)."""
    with torch.no_grad():
        warm_layer, warm_x = build(method, _warmup_size(method), "cpu")
        warm_layer(warm_x)
        del warm_layer, warm_x
        layer, x = build(method, size, "cpu")
        for tensor in (*layer.parameters(), x):  # page in lazily zeroed weights
            tensor.add_(0)
        reset = _reset_high_water_mark()
        rss_before = _status_bytes("VmRSS")
        layer(x)
        mark_after = _status_bytes("VmHWM")
        seconds = _median_seconds(layer, x, lambda: None)
    return {"seconds": seconds, "peak_bytes": float(mark_after - rss_before) if reset else None}


def measure_cuda(method: str, size: int) -> dict[str, float | None]:
    """Return {seconds, peak_bytes} of one CUDA forward pass (see module doc)."""
    sync = torch.cuda.synchronize
    with torch.no_grad():
        warm_layer, warm_x = build(method, _warmup_size(method), "cuda")
        warm_layer(warm_x)
        del warm_layer, warm_x
        layer, x = build(method, size, "cuda")
        sync()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        layer(x)
        sync()
        peak = float(torch.cuda.max_memory_allocated() - before)
        seconds = _median_seconds(layer, x, sync)
    del layer, x
    torch.cuda.empty_cache()
    return {"seconds": seconds, "peak_bytes": peak}


def _main(argv: list[str]) -> int:
    """Measure the point described by the JSON argument; print the result as JSON."""
    request = json.loads(argv[0])
    torch.set_num_threads(int(request["threads"]))
    result = measure_cpu(request["method"], int(request["size"]))
    json.dump({k: (None if v is None or not math.isfinite(v) else v) for k, v in result.items()},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
