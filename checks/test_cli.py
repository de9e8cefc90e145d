"""`python -m theory` (theory.cli): the README examples, sweeps, d-dimensional sizes, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from theory.cli import main

W1 = [[7, 2, 10], [15, -6, 1], [12, 12, 1]]
W2 = [[1, 11, 1], [-3, 15, 4], [0, 3, 7]]


def _json(capsys, *argv: str) -> object:
    assert main(["bounds", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_spec_examples(capsys) -> None:
    # Derived from T1–T3: k = 5, C·D = 64 ≥ 25 → pixel 25/25; reach 2 ≤ P = 16 → patch 9/9.
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
    r = _json(capsys, "--kernel-size", "3", "--patch-size", "2", "--in-channels", "2",
              "--out-channels", "2", "--certify")  # fmt: skip
    for tokens in ("pixel", "patch"):
        cert = r[tokens]["certificate"]
        assert cert["claim"]["heads_at_least"] == r[tokens]["necessary"]
        assert set(cert) == {"format", "claim", "witness", "proof"}


def test_table_is_the_default_output(capsys) -> None:
    assert main(["bounds", "--kernel-size", "5", "--patch-size", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["kernel", "P", "C"] and len(lines) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kernel-size", "0", "--patch-size", "2"],
         "--kernel-size must be an integer >= 1, got 0"),
        (["--kernel-size", "3", "--patch-size", "-1"],
         "--patch-size: '-1' is not N, NxN or NxNxN with integers ≥ 1"),
        (["--kernel-size", "3x", "--patch-size", "2"], "--kernel-size: '3x' is not N, NxN"),
        (["--kernel-size", "3", "--patch-size", "2.5"], "--patch-size: '2.5' is not N, NxN"),
        (["--kernel-size", "3", "--patch-size", "2", "--head-dim", "0"],
         "--head-dim must be an integer >= 1, got 0"),
        (["--kernel-size", "99999999999999999999", "--patch-size", "2"],
         "--kernel-size=99999999999999999999 is too large: at most 2147483648 is supported"),
        (["--kernel-size", "3", "--patch-size", "2", "--dilation", "99999999999999999999"],
         "--dilation=99999999999999999999 is too large"),
        (["--kernel-size", "40000", "--patch-size", "2"],
         "the coefficient pattern would have |N| = 400,040,001 offsets"),
        (["--kernel-size", "3x3x3", "--patch-size", "16x8"],
         "different numbers of axes: --kernel-size 3x3x3 has 3, --patch-size 16x8 has 2"),
        (["--kernel-size", "3", "--patch-size", "2", "--dims", "4"], "--dims must be 1, 2 or 3"),
        (["--kernel-size", "3", "--patch-size", "2", "--in-channels", "3x3"],
         "--in-channels takes one integer, got '3x3'"),
        (["--kernel-size", "3x3", "--patch-size", "2", "--dims", "3"],
         "--dims 3 contradicts sizes with 2 axes"),
        (["--kernel-size", "4000", "--patch-size", "2", "--certify"],
         "a certificate would list up to 16,000,000 offsets"),
    ],
    ids=["zero-kernel", "negative-patch", "bad-kernel", "float-patch", "zero-head-dim",
         "huge-kernel", "huge-dilation", "huge-pattern", "axes-mismatch", "dims-4",
         "dims-contradiction", "huge-certificate", "channels-with-axes"],
)  # fmt: skip
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
        "python -m theory bounds: error: --kernel-size: '-3' is not N, NxN or NxNxN with integers "
        "≥ 1"
    ]


def test_any_dimension_and_rectangular_patches_come_out_right(capsys) -> None:
    # |N| = Π(2⌈r_a/P_a⌉ + 1): 3·3·3 tubelets; ⌈3/4⌉ = 1 → 3 chunks; 3·3 for 16x8 patches.
    r = _json(capsys, "--kernel-size", "3x3x3", "--patch-size", "2x16x16")
    assert (r["patch"]["sufficient"], r["patch"]["necessary"]) == (27, 27)
    assert r["patch_size"] == [2, 16, 16]
    r = _json(capsys, "--kernel-size", "7", "--patch-size", "4", "--dims", "1")
    assert (r["patch"]["sufficient"], r["patch"]["necessary"], r["pixel"]["sufficient"]) == (
        3,
        3,
        7,
    )
    r = _json(capsys, "--kernel-size", "9", "--patch-size", "2", "--dims", "1")
    assert (r["patch"]["sufficient"], r["patch"]["necessary"]) == (5, 3)  # 2P − 1 = 3 columns
    r = _json(capsys, "--kernel-size", "5", "--patch-size", "16x8", "--in-channels", "2")
    assert (r["patch"]["sufficient"], r["patch_size"]) == (9, [16, 8])


def test_minimum_and_sample_report_the_exact_t4_counts(capsys) -> None:
    r = _json(capsys, "--kernel-size", "7", "--patch-size", "2", "--minimum", "--sample", "6")
    minimum, sample = r["patch"]["minimum"], r["patch"]["sample"]
    assert minimum["span_dim"] == 9 and minimum["heads"] in (9, 10)
    assert sample["kernels"] == 6 and 0 <= sample["need_s_plus_1"] <= 6


def test_minimum_reads_every_kernel_of_a_state_dict(tmp_path, capsys) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding="same"), torch.nn.ReLU(),
                                torch.nn.Conv1d(2, 2, 3, padding="same"))  # fmt: skip
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[W1], [W2]], dtype=torch.float32))
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    assert main(["minimum", "--weights", str(path), "--json",
                 "--certificates", str(tmp_path / "certs")]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["0.weight", "2.weight"]
    assert (rows[0]["span_dim"], rows[0]["minimum"], rows[0]["kind"]) == (2, 2, "positive vector")
    for cert in sorted((tmp_path / "certs").iterdir()):
        assert main(["recheck", str(cert)]) == 0
    assert main(["minimum", "--weights", str(path)]) == 0
    assert "0.weight" in capsys.readouterr().out


def test_minimum_rejects_a_file_without_kernels(tmp_path, capsys) -> None:
    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    assert main(["minimum", "--weights", str(path)]) == 2
    assert "holds no convolution kernel" in capsys.readouterr().err
