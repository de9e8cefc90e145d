"""The README's examples run as shown: every Python block prints what its comments say, every
table the README says a command prints is what it prints, and the certificate example is real."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
PYTHON_BLOCKS: list[str] = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def _print_comments(code: str) -> list[str]:
    """Return the trailing comment of every `print(...)` line, in source order."""
    lines = code.splitlines()
    calls = [
        node
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
    ]
    comments = []
    for call in sorted(calls, key=lambda c: c.lineno):
        line = lines[call.end_lineno - 1]
        comments.append(line.split("#", 1)[1].strip() if "#" in line else "")
    return comments


def _matches(printed: str, comment: str) -> bool:
    """A comment is the printed line; `...` stands for any text; `~x` marks a relative error of
    x's order of magnitude or below (0 ≤ error ≤ 10·x)."""
    if comment.startswith("~"):
        try:
            return 0 <= float(printed) <= 10 * float(comment[1:].split()[0].rstrip(","))
        except ValueError:
            return False
    pattern = ".*".join(re.escape(part.strip()) for part in comment.split("..."))
    return re.fullmatch(pattern, printed.strip()) is not None


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"block{i}" for i, _ in enumerate(PYTHON_BLOCKS)]
)
def test_readme_python_examples_print_what_their_comments_say(code: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    comments = _print_comments(code)
    assert len(printed) == len(comments), (printed, comments)
    for line, comment in zip(printed, comments, strict=True):
        assert comment, f"print without a comment saying what it prints: {line!r}"
        assert _matches(line, comment), f"printed {line!r}, the README says {comment!r}"


def test_the_comment_rule_can_fail() -> None:
    assert not _matches("0.3", "~1e-16") and not _matches("10", "9")
    assert not _matches("2e-6", "~1e-7 in float32") and _matches("6.5e-7", "~1e-6 in float32")
    assert _matches("verified: patch tokens: the minimum is 10 heads", "verified: ... 10 heads")


def test_the_readme_certificate_is_the_one_the_cli_prints_and_it_rechecks(capsys) -> None:
    from theory import recheck
    from theory.cli import main

    (shown,) = re.findall(r"```json\n(.*?)```", README, flags=re.S)
    assert recheck(shown)["summary"].startswith("verified")
    assert main(["bounds", "--kernel-size", "3", "--patch-size", "16", "--certify", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["patch"]["certificate"]
    assert json.loads(shown) == printed


def test_readme_bounds_example_prints_the_table_shown() -> None:
    command, shown = re.search(
        r"### How many heads\?\n\n```bash\n(python -m theory bounds[^\n]*)\n```\n\n```\n(.*?)```",
        README,
        flags=re.S,
    ).groups()
    argv = shlex.split(command)
    result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == shown.strip()


def _answer_commands() -> dict[str, str]:
    """Return the "Some answers" table as {question: command}."""
    rows = re.findall(r"^\| ([^|]+) \| `(--[^`]+)` \| ([^\n]+) \|$", README, flags=re.M)
    return {q.strip(): c for q, c, _ in rows}


def test_the_answers_that_need_a_minimum_or_a_sample_ask_for_them(capsys) -> None:
    from theory.cli import main

    commands = _answer_commands()
    one = commands["3×3 on one channel, pixel tokens"]
    assert main(["bounds", *shlex.split(one), "--json"]) == 0
    pixel = json.loads(capsys.readouterr().out)["pixel"]
    assert (pixel["necessary"], pixel["minimum"]["heads"]) == (1, 2)  # "necessary 1 ... minimum 2"
    seven = commands["7×7 on 2×2 patches"]
    assert main(["bounds", *shlex.split(seven), "--json"]) == 0
    patch = json.loads(capsys.readouterr().out)["patch"]
    assert (patch["sufficient"], patch["necessary"], patch["minimum"]["heads"]) == (25, 9, 10)
    assert (patch["sample"]["need_s_plus_1"], patch["sample"]["kernels"]) == (38, 40)  # 38 of 40


def test_the_checker_table_is_the_saved_benchmark() -> None:
    saved = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "checker.json"
    cases = json.loads(saved.read_text())["cases"]
    for c in cases:  # the rows `python -m benchmarks.checker` writes, as the README shows them
        row = (f"| {c['case']} | {c['megabytes']:.1f} | {c['seconds']:.2f} s | "
               f"{c['peak_mb']:.0f} MB |")  # fmt: skip
        assert row in README, row
    assert all(c["seconds"] < 10 and c["peak_mb"] < 1000 for c in cases)  # the README's bound
