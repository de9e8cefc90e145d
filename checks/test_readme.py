"""The README's examples run as shown: every Python block, and the `bounds` table it prints."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
PYTHON_BLOCKS: list[str] = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"block{i}" for i, _ in enumerate(PYTHON_BLOCKS)]
)
def test_readme_python_examples_run_and_their_errors_are_tiny(code: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    numbers = [float(v) for v in re.findall(r"^[-+]?\d[\d.e+-]*$", out.getvalue(), flags=re.M)]
    errors = [v for v in numbers if not v.is_integer()]  # printed relative errors
    assert errors, out.getvalue()
    assert all(0 <= e <= 1e-5 for e in errors), out.getvalue()


def test_readme_bounds_example_prints_the_table_shown() -> None:
    command, shown = re.search(
        r"### How many heads\?\n\n```bash\n(python -m theory bounds[^\n]*)\n```\n\n```\n(.*?)```",
        README,
        flags=re.S,
    ).groups()
    argv = shlex.split(command)
    result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == shown.strip()
