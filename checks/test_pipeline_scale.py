"""The pipeline beyond one process: torchrun/DDP (gloo), ImageFolder data, resume, mixed precision.

A tiny synthetic ImageFolder (3 classes of 20×20 PNGs, written here) and a 1-block ViT keep every
run to seconds. The 2-process run is compared with one process at the same global batch and
seed: 36 training images, so W = 2 divides the set and every global batch is the same images.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from checks.optional import require
from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY_VIT = ["--patch-size", "4", "--sub-patch", "2", "--sub-channels", "2", "--depth", "1",
            "--seeds", "0", "--quiet"]  # fmt: skip
FOLDER = ["--dataset", "imagefolder", "--image-size", "16", "--no-augment", "--batch-size", "12"]
DIGITS = ["--patch-size", "2", "--sub-patch", "2", "--sub-channels", "2", "--depth", "1",
          "--train-size", "60", "--batch-size", "16", "--seeds", "0", "--quiet"]  # fmt: skip


def write_folder(root: Path, train: int = 12, val: int = 4, size: int = 20) -> Path:
    """Write root/{train,val}/class{0,1,2}/*.png: noise with one channel raised per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(3):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                img[..., c] = 255 - img[..., c] // 4
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("torchvision", "all")
    return write_folder(tmp_path_factory.mktemp("imagefolder"))


def _run(args: list[str], *, torchrun: int = 0, timeout: float = 300) -> object:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    head = [sys.executable, "-m"]
    if torchrun:
        head += ["torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun)]
    out = subprocess.run([*head, "pipeline", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / f"{name}.pt", weights_only=True)["model"]


def _relative(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> float:
    num = sum(((a[k] - b[k]).double() ** 2).sum() for k in keys) ** 0.5
    den = sum((a[k].double() ** 2).sum() for k in keys) ** 0.5
    return float(num / den)


# -- torchrun -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_gloo_processes_match_one_process_at_the_same_global_batch(folder, tmp_path) -> None:
    args = ["train", *FOLDER, "--data-dir", str(folder), *TINY_VIT,
            "--phase1-epochs", "2", "--phase2-epochs", "2"]  # fmt: skip
    _run([*args, "--out", str(tmp_path / "one")])
    _run([*args, "--out", str(tmp_path / "two")], torchrun=2)
    one = json.loads((tmp_path / "one" / "log.json").read_text())
    two = json.loads((tmp_path / "two" / "log.json").read_text())
    assert two["environment"]["world_size"] == 2 and one["environment"]["world_size"] == 1
    for r1, r2 in zip(one["runs"], two["runs"], strict=True):
        loss1, loss2 = r1["history"][-1]["train_loss"], r2["history"][-1]["train_loss"]
        assert abs(loss1 - loss2) <= 1e-6 * abs(loss1), (r1["arm"], loss1, loss2)
        assert r1["final_test_acc"] == r2["final_test_acc"]
    from pipeline.train import load_checkpoint

    for name in ("scratch-seed0-phase1", "conv-seed0-phase1", "two-phase-seed0-phase2"):
        a, b = _weights(tmp_path / "one", name), _weights(tmp_path / "two", name)
        # b_K has exactly zero gradient (the sink's key is b_K too, so q·b_K shifts a whole row
        # of logits: softmax ignores it); Adam turns each run's rounding noise there into steps,
        # so it differs between runs without changing the function. It is checked through the
        # logits below instead.
        keys = [k for k in a if not k.endswith("mixer.b_k")]
        assert _relative(a, b, keys) <= 1e-6, name
        x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        m1 = load_checkpoint(tmp_path / "one" / "checkpoints" / f"{name}.pt").double()
        m2 = load_checkpoint(tmp_path / "two" / "checkpoints" / f"{name}.pt").double()
        l1, l2 = m1(x.double()), m2(x.double())
        assert ((l1 - l2).abs().max() / l1.abs().max()).item() <= 1e-6, name


def test_a_world_size_that_does_not_divide_the_batch_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(SystemExit) as exit_:
        main(["train", *DIGITS])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.search(r"--batch-size 16: the global batch must be a multiple of the world size 3",
                     err), err  # fmt: skip


# -- resume -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return (an uninterrupted run, a run SIGKILLed in phase 2 and resumed)."""
    base = tmp_path_factory.mktemp("resume")
    args = ["train", *DIGITS, "--arm", "two-phase", "--phase1-epochs", "2",
            "--phase2-epochs", "4"]  # fmt: skip
    _run([*args, "--out", str(base / "whole")])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pipeline", *args, "--out", str(base / "cut")]
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, **quiet)
    killed_at = None
    while proc.poll() is None and killed_at is None:
        try:
            state = torch.load(base / "cut" / "resume.pt", weights_only=True)
        except FileNotFoundError:
            state = None
        current = state and state["current"]
        if current and current["phase"] == 2 and current["epoch"] >= 1:
            proc.send_signal(signal.SIGKILL)
            killed_at = (current["phase"], current["epoch"])
        time.sleep(0.01)
    proc.wait()
    assert killed_at is not None and killed_at[1] < 4, "the run ended before it could be killed"
    _run([*args, "--resume", str(base / "cut")])
    return base / "whole", base / "cut"


@pytest.mark.slow
def test_a_killed_and_resumed_run_ends_bit_for_bit_as_an_uninterrupted_one(
    killed_and_resumed,
) -> None:
    whole, cut = killed_and_resumed
    for name in ("two-phase-seed0-phase1", "two-phase-seed0-phase2"):
        a, b = _weights(whole, name), _weights(cut, name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    la, lb = (json.loads((p / "log.json").read_text())["runs"][0] for p in (whole, cut))
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in la["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in lb["history"]]
    assert la["transfer"] == lb["transfer"]


@pytest.mark.slow
def test_resume_with_other_options_names_every_differing_key(killed_and_resumed, capsys) -> None:
    _, cut = killed_and_resumed
    with pytest.raises(SystemExit) as exit_:
        main(["train", *DIGITS, "--arm", "two-phase", "--phase1-epochs", "2", "--phase2-epochs",
              "4", "--lr", "0.001", "--depth", "2", "--resume", str(cut)])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "train_config.lr: 0.002 → 0.001" in err and "vit_config.depth: 1 → 2" in err, err


def test_resume_of_a_folder_without_a_checkpoint_is_one_line(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", *DIGITS, "--resume", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m pipeline train: error: --resume {tmp_path}: no resume.pt there "
                   "(it is written after epoch 1)")  # fmt: skip


# -- mixed precision --------------------------------------------------------------------------
AMP_TOLERANCE = 0.05  # relative difference of the final training loss, bf16 against fp32


@pytest.mark.slow
def test_bf16_autocast_runs_and_stays_near_fp32_and_fp16_uses_a_grad_scaler(tmp_path) -> None:
    logs = {}
    for amp in ("off", "bf16", "fp16"):
        logs[amp] = main(["train", *DIGITS, "--phase1-epochs", "2", "--phase2-epochs", "2",
                          "--amp", amp, "--out", str(tmp_path / amp)])  # fmt: skip
    for r_off, r_bf in zip(logs["off"]["runs"], logs["bf16"]["runs"], strict=True):
        off, bf = r_off["history"][-1]["train_loss"], r_bf["history"][-1]["train_loss"]
        assert abs(off - bf) <= AMP_TOLERANCE * off, (r_off["arm"], off, bf)
        assert off != bf  # bf16 really ran in lower precision
    assert all(np.isfinite(r["history"][-1]["train_loss"]) for r in logs["fp16"]["runs"])
    assert logs["bf16"]["runs"][2]["transfer"]["exact_logit_error"] <= 1e-9  # float64 check


# -- ImageFolder --------------------------------------------------------------------------------
def _folder_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["train", *argv, *TINY_VIT])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_imagefolder_without_train_or_val_is_one_line(folder, tmp_path, capsys) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    err = _folder_error(["--dataset", "imagefolder", "--data-dir", str(tmp_path)], capsys)
    assert "holds no image" in err or "no val/ folder" in err
    empty = tmp_path / "only-val"
    (empty / "val").mkdir(parents=True)
    err = _folder_error(["--dataset", "imagefolder", "--data-dir", str(empty)], capsys)
    assert f"--data-dir {empty}: no train/ folder; expected {empty}/train/<class>/" in err


def test_an_empty_class_folder_is_named(folder, tmp_path, capsys) -> None:
    root = write_folder(tmp_path / "d", train=2, val=1)
    (root / "train" / "class9").mkdir()
    err = _folder_error(["--dataset", "imagefolder", "--data-dir", str(root)], capsys)
    assert f"the class folder {root}/train/class9 holds no image" in err


def test_an_unreadable_image_is_named_and_can_be_skipped(folder, tmp_path, capsys) -> None:
    root = write_folder(tmp_path / "d", train=4, val=2)
    bad = root / "train" / "class1" / "broken.png"
    bad.write_bytes(b"not a png")
    args = ["--dataset", "imagefolder", "--data-dir", str(root), "--image-size", "16",
            "--batch-size", "6", "--phase1-epochs", "1", "--phase2-epochs", "0",
            "--arm", "conv", "--out", str(tmp_path / "out")]  # fmt: skip
    err = _folder_error(args, capsys)
    assert f"1 unreadable image(s), first {bad}" in err and "--skip-unreadable" in err
    log = main(["train", *args, *TINY_VIT, "--skip-unreadable"])
    assert log["train_size"] == 12  # 3 classes × 4, the broken file left out


def test_image_size_is_refused_for_datasets_that_keep_their_size(capsys) -> None:
    err = _folder_error(["--image-size", "32"], capsys)
    assert "--image-size 32: only --dataset imagefolder is resized (digits" in err


def test_imagefolder_batches_are_uint8_at_the_image_size_and_train_size_balances(folder) -> None:
    from pipeline.data import load_dataset, subsample

    data = load_dataset("imagefolder", folder, image_size=16, augment=True)
    assert data.num_classes == 3 and data.image_shape == (3, 16, 16)
    x, y = next(data.batches("train", 5))
    assert x.dtype == torch.uint8 and tuple(x.shape) == (5, 3, 16, 16) and len(y) == 5
    small = subsample(data, 6)
    assert sorted(small.train_y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert len(small.train_set) == 6 and data.probe(3).shape == (3, 3, 16, 16)
