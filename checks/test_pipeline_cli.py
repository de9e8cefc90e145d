"""`python -m pipeline train`: every bad option is one line naming it, exit 2, before any work."""

from __future__ import annotations

import re

import pytest
import torch

from pipeline.cli import main

BAD = {
    "even-kernel": (["--kernel-size", "4"], r"--kernel-size 4: expected an odd integer >= 1"),
    "zero-kernel": (["--kernel-size", "0"], r"--kernel-size 0: expected an odd integer"),
    "wide-kernel": (["--kernel-size", "7"], r"--kernel-size 7 with sub_patch=2: .*\[3, 5\]"),
    "zero-patch": (["--patch-size", "0"], r"--patch-size 0: expected an integer >= 1"),
    "patch-16-on-digits": (["--patch-size", "16"], r"is not divisible by patch_size=16"),
    "zero-batch": (["--batch-size", "0"], r"--batch-size 0: expected an integer >= 1"),
    "negative-lr": (["--lr", "-1"], r"--lr -1.0: expected a positive number"),
    "nan-beta": (["--beta", "nan"], r"--beta nan: expected a positive number \(or inf\)"),
    "zero-threads": (["--threads", "0"], r"--threads 0: expected an integer >= 1"),
    "cifar-without-data": (["--dataset", "cifar10"], r"--dataset cifar10 needs --data-dir"),
    "missing-folder": (["--dataset", "cifar100", "--data-dir", "/nonexistent/data"],
                       r"--data-dir /nonexistent/data: no such folder"),
    "negative-seed": (["--seeds", "-1"], r"--seeds \[-1\]: expected integers >= 0"),
}  # fmt: skip
if not torch.cuda.is_available():
    BAD["cuda-without-gpu"] = (["--device", "cuda"], r"--device cuda: no CUDA GPU is available")


@pytest.mark.parametrize(("argv", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_option_is_one_line_naming_it_with_exit_2(argv, message, capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", *argv, "--out", str(tmp_path), "--quiet"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("python -m pipeline train: error: ")
    assert re.search(message, err[0]), err[0]
    assert not any(tmp_path.iterdir())  # refused before any work


def test_the_help_shows_the_defaults_as_options_not_python_reprs(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--phase1-epochs 30" in text
    assert not re.search(r"\{'|\bdict\(", text)  # no Python dict reprs


def test_a_cifar_folder_without_its_files_names_the_files(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--dataset", "cifar100", "--data-dir", str(tmp_path), "--quiet"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r"cifar-100-python' with the files \['train', 'test'\]",
                                       err[0]), err  # fmt: skip


def test_every_pipeline_command_in_the_readme_parses() -> None:
    """Each `python -m pipeline …` / `torchrun … -m pipeline …` line of the README is valid."""
    import shlex
    from pathlib import Path

    from pipeline.cli import _parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    commands = re.findall(r"^(?:python|torchrun) [^\n]*-m pipeline ([^\n`]*)$", readme, re.M)
    assert len(commands) >= 5, commands
    for command in commands:
        argv = [a for a in shlex.split(command.replace("…", "")) if a]
        args = _parser().parse_args(argv)
        assert args.command in ("train", "finetune"), command
