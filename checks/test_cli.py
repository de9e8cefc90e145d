"""`python -m theory bounds` (theory.cli): the SPEC §4 examples, sweeps, JSON and bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from theory.cli import main


def _json(capsys, *argv: str) -> object:
    assert main(["bounds", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_spec_examples(capsys) -> None:
    # Derived in SPEC §2: k = 5, C·D = 64 ≥ 25 → pixel 25/25; reach 2 ≤ P = 16 → patch 9/9.
    r = _json(
        capsys,
        "--kernel-size",
        "5",
        "--patch-size",
        "16",
        "--in-channels",
        "8",
        "--out-channels",
        "8",
    )
    assert r["pixel"] == {**r["pixel"], "sufficient": 25, "necessary": 25}
    assert r["patch"] == {**r["patch"], "sufficient": 9, "necessary": 9}
    # C = D = 1: every M_δ is a scalar, s = 1.
    r = _json(capsys, "--kernel-size", "3", "--patch-size", "2")
    assert r["pixel"]["necessary"] == 1
    # k = 7, P = 2, C = D = 1: |N| = 25 but only (2P−1)² = 9 columns in G.
    r = _json(capsys, "--kernel-size", "7", "--patch-size", "2")
    assert (r["patch"]["sufficient"], r["patch"]["necessary"]) == (25, 9)


def test_sweeps_print_one_object_per_combination(capsys) -> None:
    r = _json(capsys, "--kernel-size", "3,5x3", "--patch-size", "2,4,16")
    assert [(tuple(x["kernel_size"]), x["patch_size"]) for x in r] == [
        ((3, 3), 2),
        ((3, 3), 4),
        ((3, 3), 16),
        ((5, 3), 2),
        ((5, 3), 4),
        ((5, 3), 16),
    ]


def test_certify_adds_a_certificate_matching_the_bound(capsys) -> None:
    r = _json(
        capsys,
        "--kernel-size",
        "3",
        "--patch-size",
        "2",
        "--in-channels",
        "2",
        "--out-channels",
        "2",
        "--certify",
    )
    for tokens in ("pixel", "patch"):
        assert r[tokens]["certificate"]["bound"] == r[tokens]["necessary"]
        assert r[tokens]["certificate"]["det_mod_p"] != 0


def test_table_is_the_default_output(capsys) -> None:
    assert main(["bounds", "--kernel-size", "5", "--patch-size", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["kernel", "P", "C"] and len(lines) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--kernel-size", "0", "--patch-size", "2"],
            "--kernel-size must be an integer >= 1, got 0",
        ),
        (["--kernel-size", "3", "--patch-size", "-1"], "--patch-size: '-1' is not an integer ≥ 1"),
        (["--kernel-size", "3x", "--patch-size", "2"], "--kernel-size: '3x' is not K or KHxKW"),
        (
            ["--kernel-size", "3", "--patch-size", "2.5"],
            "--patch-size: '2.5' is not an integer ≥ 1",
        ),
        (
            ["--kernel-size", "3", "--patch-size", "2", "--head-dim", "0"],
            "--head-dim must be an integer >= 1, got 0",
        ),
    ],
    ids=["zero-kernel", "negative-patch", "bad-kernel", "float-patch", "zero-head-dim"],
)
def test_bad_arguments_exit_non_zero_with_one_readable_line(argv, message, capsys) -> None:
    assert main(["bounds", *argv]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and message in lines[0]


def test_the_module_entry_point_exits_non_zero_on_bad_arguments() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "theory", "bounds", "--kernel-size", "-3", "--patch-size", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "python -m theory bounds: error: --kernel-size: '-3' is not K or KHxKW with integers ≥ 1"
    ]
