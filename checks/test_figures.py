"""`python -m figures`: every registered figure is written as PNG and SVG, `--only` picks exactly
the figures named and refuses unknown ones, a rerun writes identical bytes, and the GPU figure is
made exactly where CUDA is.

The command line is run as a user runs it (a subprocess of this interpreter, `--quick` sizes) with
`PYTHONWARNINGS=error`, the suite's own warning policy, so a layout or library warning fails here
too (the cost probes it starts inherit it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from figures.registry import FIGURES

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("png", "svg")
OWN_FIGURES = ("heads", "attention", "temperature", "bounds", "cost", "photo", "dimensions")
# 'cost' holds wall-clock timings; 'bounds' fits on one CPU thread (the CLI sets it), bit-stable
DETERMINISTIC = ("heads", "attention", "temperature", "bounds", "photo", "dimensions")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_figures(*args: str) -> subprocess.CompletedProcess[str]:
    """Return the finished `python -m figures *args` (output captured, warnings as errors)."""
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-m", "figures", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def files_in(folder: Path) -> set[str]:
    """Return the names of the files in `folder`."""
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the folder a full `python -m figures --quick` run wrote into."""
    out = tmp_path_factory.mktemp("figures")
    done = run_figures("--quick", "--out", str(out))
    assert done.returncode == 0, f"python -m figures --quick failed:\n{done.stderr[-4000:]}"
    return out


def test_quick_run_writes_every_available_figure_as_png_and_svg(quick_run: Path) -> None:
    available = [name for name, entry in FIGURES.items() if entry.unavailable() is None]
    assert set(OWN_FIGURES) <= set(available)
    assert files_in(quick_run) == {f"{name}.{fmt}" for name in available for fmt in FORMATS}
    for name in available:
        png = (quick_run / f"{name}.png").read_bytes()
        svg = (quick_run / f"{name}.svg").read_text(encoding="utf-8")
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000, f"{name}.png is not a figure"
        assert "<svg" in svg and "</svg>" in svg and len(svg) > 10_000, f"{name}.svg: no figure"


def test_files_carry_no_date_or_version_stamp(quick_run: Path) -> None:
    for name in OWN_FIGURES:
        assert b"Software" not in (quick_run / f"{name}.png").read_bytes()
        assert "<dc:date>" not in (quick_run / f"{name}.svg").read_text(encoding="utf-8")


def test_rerun_with_only_writes_exactly_those_figures_byte_for_byte(
    quick_run: Path, tmp_path: Path
) -> None:
    done = run_figures("--quick", "--only", ",".join(DETERMINISTIC[:-1]),
                       "--only", DETERMINISTIC[-1], "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-4000:]
    assert files_in(tmp_path) == {f"{name}.{fmt}" for name in DETERMINISTIC for fmt in FORMATS}
    differing = [f"{name}.{fmt}" for name in DETERMINISTIC for fmt in FORMATS
                 if (tmp_path / f"{name}.{fmt}").read_bytes()
                 != (quick_run / f"{name}.{fmt}").read_bytes()]
    assert not differing, f"a second run wrote different bytes: {differing}"


def test_unknown_figure_name_exits_non_zero_listing_the_valid_names(tmp_path: Path) -> None:
    done = run_figures("--only", "attention,nonsense", "--out", str(tmp_path))
    assert done.returncode == 2
    expected = (r"error: unknown figure name\(s\) 'nonsense'; valid names: "
                + re.escape(", ".join(FIGURES)) + "$")
    assert re.search(expected, done.stderr.strip()), done.stderr
    assert files_in(tmp_path) == set(), "a refused command line must not write figures"


def test_gpu_cost_figure_is_made_exactly_where_cuda_is_available(tmp_path: Path) -> None:
    done = run_figures("--quick", "--only", "cost_gpu", "--out", str(tmp_path))
    if torch.cuda.is_available():
        assert done.returncode == 0, done.stderr[-4000:]
        assert files_in(tmp_path) == {"cost_gpu.png", "cost_gpu.svg"}
    else:
        assert done.returncode == 1
        assert re.search(r"error: cost_gpu cannot be made here: no CUDA device", done.stderr)
        assert files_in(tmp_path) == set()


def test_quick_runs_write_to_runs_unless_out_says_otherwise(tmp_path: Path) -> None:
    from figures.cli import output_folder

    assert output_folder(None, quick=True) == ROOT / "runs" / "figures"  # ignored by git
    assert output_folder(None, quick=False) == ROOT / "figures"  # the tracked files
    assert output_folder(tmp_path, quick=True) == tmp_path
