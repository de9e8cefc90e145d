"""`python -m theory` (theory.cli): the README examples, sweeps, d-dimensional sizes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch

from theory.cli import main

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kernel-size", "20001", "--patch-size", "16", "--minimum"],
         "--minimum: --kernel-size 20001x20001 has 400,040,001 offsets on pixel tokens; the "
         "exact minimum is computed for at most 1,024"),
        (["--kernel-size", "100001", "--patch-size", "16", "--minimum"],
         "--minimum: --kernel-size 100001x100001 has 10,000,200,001 offsets on pixel tokens"),
        (["--kernel-size", "3", "--patch-size", "16", "--in-channels", "100000", "--minimum"],
         "--minimum: --in-channels 100000 × --out-channels 1 / --groups 1 × 9 taps is 900,000 "
         "kernel entries; the exact minimum is computed for at most 262,144 (--in-channels ≤ "
         "29127 here)"),
        (["--kernel-size", "3", "--patch-size", "16", "--out-channels", "100000", "--sample", "3"],
         "--sample: --in-channels 1 × --out-channels 100000"),
        (["--kernel-size", "5001", "--patch-size", "16"],
         "kernel_size=(5001, 5001) with patch_size=(16, 16): the coefficient pattern would have"),
        (["--kernel-size", "3", "--patch-size", "100001"],
         "patch_size=(100001, 100001): the structured witness matches rows to ΠP × min(C·D/g, "
         "|N|) = 10,000,200,001 residue slots; at most 16,777,216 are supported (a patch of at "
         "most 4096x4096 here)"),
        (["--kernel-size", "3", "--patch-size", "16", "--sample", "-1"],
         "--sample takes a number of kernels, an integer >= 1, got '-1'"),
        (["--kernel-size", "3", "--patch-size", "16", "--sample", "0"],
         "--sample takes a number of kernels, an integer >= 1, got '0'"),
    ],
    ids=["minimum-kernel-20001", "minimum-kernel-100001", "minimum-100000-channels",
         "sample-100000-channels", "kernel-5001", "patch-100001", "sample-negative",
         "sample-zero"],
)  # fmt: skip
def test_work_too_large_is_refused_up_front_naming_the_parameter(argv, message, capsys) -> None:
    tracemalloc.start()
    try:
        status = main(["bounds", *argv])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("python -m theory bounds: error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert peak < 200 * 2**20, f"refused only after allocating {peak / 2**20:.0f} MiB"


def test_a_minimum_too_large_for_some_rows_is_marked_with_its_reason(capsys) -> None:
    # 33x33 pixel tokens have 33² = 1089 > 1024 offsets; 16x16 patches only 3² = 9
    assert main(["bounds", "--kernel-size", "33", "--patch-size", "16", "--minimum"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "minimum" and "s+1" not in lines[0]
    assert lines[1].split()[-2:] == ["-", "[1]"] and lines[2].split()[-1] == "9"
    assert lines[3] == ("[1] not computed: --kernel-size 33x33 has 1,089 offsets on pixel "
                        "tokens; the exact minimum is computed for at most 1,024")  # fmt: skip
    r = _json(capsys, "--kernel-size", "33", "--patch-size", "16", "--minimum")
    assert set(r["pixel"]) >= {"minimum", "skipped"} and "sample" not in r["pixel"]


def test_a_sample_shows_only_the_sample_column(capsys) -> None:
    assert main(["bounds", "--kernel-size", "3", "--patch-size", "16", "--sample", "2"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith("s+1 needed") and "minimum" not in head


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint", "is not a checkpoint; give a file written by torch.save of a "
         "state_dict or tensor holding only tensors (loaded with weights_only=True)"),
        (None, "is not a checkpoint; give a file written by torch.save"),
    ],
    ids=["text-file", "pickled-object"],
)
def test_minimum_weights_that_are_not_a_checkpoint_give_one_line(
    content, message, tmp_path
) -> None:
    path = tmp_path / "bad.pt"
    if content is None:  # a pickle weights_only refuses: torch's long advice must not show
        torch.save({"layer": torch.nn.Conv2d(1, 1, 3)}, path)
    else:
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "theory", "minimum", "--weights", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "" and len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m theory minimum: error: --weights: ")
    assert message in lines[0] and "Traceback" not in proc.stderr


def test_minimum_has_no_image_size_option(capsys) -> None:
    # a state_dict cannot select circular padding, so the option is gone, not ignored
    with pytest.raises(SystemExit) as exit_:
        main(["minimum", "--weights", "w.pt", "--image-size", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert "unrecognized arguments: --image-size" in err[0]


@pytest.mark.parametrize("module", ["constructions", "errors", "extra_key", "certificates",
                                    "minimum", "gpu"])  # fmt: skip
def test_benchmark_help_names_the_command_and_ends_its_sentence(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--help"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: python -m benchmarks.{module}")
    description = proc.stdout.split("\n\n")[1]  # the module docstring's first paragraph, whole
    assert not description.startswith("options:"), proc.stdout
    assert description.rstrip().endswith("."), description


def test_quick_benchmark_json_goes_to_runs_unless_out_says_otherwise(tmp_path, monkeypatch) -> None:
    from benchmarks import _timing

    assert _timing.RUNS == ROOT / "runs" / "benchmarks"  # ignored by git, unlike the results
    monkeypatch.setattr(_timing, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(_timing, "RUNS", tmp_path / "runs")
    assert _timing.save_json("x", {}, quick=True) == tmp_path / "runs" / "x.json"
    assert _timing.save_json("x", {}) == tmp_path / "results" / "x.json"
    assert _timing.save_json("x", {}, quick=True, out=tmp_path / "o") == tmp_path / "o" / "x.json"
