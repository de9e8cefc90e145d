"""Suite-wide options: `--gpu`, the (device, dtype) grid, and hypothesis profiles.

`pytest checks/` runs on the CPU in float64 and float32. `pytest checks/ --gpu` adds CUDA in
float64, float32, bfloat16 and float16 (tolerances in `checks/tolerances.py`); without a usable
CUDA device it is a usage error, never a silent skip. Hypothesis profiles: `dev` (default), `ci`
(derandomised, chosen when `CI` is set), `thorough` (`HYPOTHESIS_PROFILE=thorough`, many more
examples).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

CPU_DTYPES = (torch.float64, torch.float32)
GPU_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--gpu",
        action="store_true",
        help="also run the equivalence checks on CUDA (float64/32, bfloat16, float16)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--gpu") and not torch.cuda.is_available():
        raise pytest.UsageError(
            "--gpu was given but no usable CUDA device was found "
            "(torch.cuda.is_available() is False); run `pytest checks/` without --gpu"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the CUDA-only checks (marker `cuda`) unless `--gpu` is given: not skipped work,
    they belong to the GPU run (`pytest checks/ --gpu`, `python -m benchmarks.gpu`)."""
    if config.getoption("--gpu"):
        return
    cuda = [item for item in items if item.get_closest_marker("cuda")]
    if cuda:
        config.hook.pytest_deselected(items=cuda)
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]


def compute_targets(config: pytest.Config) -> list[tuple[str, torch.dtype]]:
    """Return the (device, dtype) pairs the equivalence checks run on."""
    targets = [("cpu", dtype) for dtype in CPU_DTYPES]
    if config.getoption("--gpu"):
        targets += [("cuda", dtype) for dtype in GPU_DTYPES]
    return targets


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `target` (device, dtype) and `device` from the command line."""
    if "target" in metafunc.fixturenames:
        targets = compute_targets(metafunc.config)
        ids = [f"{device}-{str(dtype).removeprefix('torch.')}" for device, dtype in targets]
        metafunc.parametrize("target", targets, ids=ids)
    if "device" in metafunc.fixturenames:
        devices = ["cpu"] + (["cuda"] if metafunc.config.getoption("--gpu") else [])
        metafunc.parametrize("device", devices)


@pytest.fixture
def gpu(request: pytest.FixtureRequest) -> bool:
    """Whether `--gpu` was given (the ViT-scale CUDA cases run only then)."""
    return bool(request.config.getoption("--gpu"))
