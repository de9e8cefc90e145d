"""Training the three arms (pipeline.train, pipeline.cli): smoke runs, outputs, seeds, errors."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from checks.test_pipeline_data import write_cifar
from pipeline.cli import main
from pipeline.data import load_cifar
from pipeline.loop import augment_batch as _augment
from pipeline.loop import evaluate
from pipeline.loop import schedule as _schedule
from pipeline.model import ViTConfig
from pipeline.train import (
    ARMS,
    TRANSFER_TOLERANCE,
    TrainConfig,
    load_checkpoint,
    run_comparison,
    train_arm,
)

TINY_MODEL = ["--patch-size", "8", "--sub-patch", "2", "--sub-channels", "2", "--depth", "1",
              "--batch-size", "8", "--phase1-epochs", "1", "--phase2-epochs", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded (as the CLI does for small models) and restore the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_cifar(tmp_path: Path) -> Path:
    """Return a folder holding a generated CIFAR-10 release: 5×8 training and 8 test images."""
    write_cifar(tmp_path / "data", "cifar10", per_batch=8)
    return tmp_path / "data"


@pytest.mark.parametrize("arm", ARMS)
def test_each_arm_runs_one_epoch_per_phase_and_writes_log_curves_and_checkpoints(
    tiny_cifar: Path, tmp_path: Path, arm: str
) -> None:
    out = tmp_path / "out"
    log = main(["train", "--arm", arm, "--dataset", "cifar10", "--data-dir", str(tiny_cifar),
                "--seeds", "0", "--out", str(out), *TINY_MODEL])
    assert json.loads((out / "log.json").read_text()) == json.loads(json.dumps(log))
    (run,) = log["runs"]
    assert run["arm"] == arm and len(run["history"]) == 2  # E1 + E2 epochs for every arm
    assert all(math.isfinite(h["train_loss"]) and 0 <= h["test_acc"] <= 1 for h in run["history"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    phases = 2 if arm == "two-phase" else 1
    last = out / "checkpoints" / f"{arm}-seed0-phase{phases}.pt"
    model = load_checkpoint(last)
    assert model.mixer_kind == ("conv" if arm == "conv" else "mhsa")
    _, acc = evaluate(model, load_cifar("cifar10", tiny_cifar), torch.device("cpu"))
    assert acc == run["final_test_acc"]
    if arm == "two-phase":
        assert run["transfer"]["exact_logit_error"] <= TRANSFER_TOLERANCE
        assert [h["phase"] for h in run["history"]] == [1, 2]
        assert (out / "checkpoints" / "two-phase-seed0-phase1.pt").is_file()
    else:
        assert run["transfer"] is None


def test_the_default_digits_comparison_runs_all_arms_and_reports_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = main(["train", "--train-size", "40", "--phase1-epochs", "1", "--phase2-epochs", "1",
                "--seeds", "0", "1", "--kernel-size", "5", "--out", str(tmp_path)])
    assert log["vit_config"]["kernel_size"] == 5 and log["train_size"] == 40
    assert set(log["summary"]) == set(ARMS)
    assert all(s["n"] == 2 and s["std"] >= 0 for s in log["summary"].values())
    for run in log["runs"]:
        if run["arm"] == "two-phase":
            t = run["transfer"]
            assert t["exact_logit_error"] <= TRANSFER_TOLERANCE
            assert 0 < t["start_logit_error"] < 1e-3  # the finite-β start, β = 20
            assert t["attention_on_targets_start"] > 0.999
    captured = capsys.readouterr()
    assert "two-phase seed 1 phase 2/2 (mhsa)" in captured.err  # tqdm progress on stderr
    assert "two-phase: test accuracy" in captured.out


def _tiny_setup(tiny_cifar: Path) -> tuple:
    data = load_cifar("cifar10", tiny_cifar)
    vit = ViTConfig(image_size=32, in_channels=3, num_classes=10, patch_size=8, sub_channels=2,
                    depth=1)
    return data, vit, TrainConfig(phase1_epochs=1, phase2_epochs=1, batch_size=8)


def test_a_seed_fixes_the_whole_run_and_another_seed_changes_it(tiny_cifar: Path) -> None:
    data, vit, config = _tiny_setup(tiny_cifar)

    def losses(seed: int) -> list[float]:
        run = train_arm("two-phase", data, vit, config, seed, progress=False)
        return [h["train_loss"] for h in run["history"]] + [run["transfer"]["start_logit_error"]]

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)


def test_phase2_changes_the_attention_parameters(tiny_cifar: Path, tmp_path: Path) -> None:
    data, vit, config = _tiny_setup(tiny_cifar)
    train_arm("two-phase", data, vit, config, 0, out_dir=tmp_path, progress=False)
    # the transfer is taken after phase 1; rebuild that start and compare with the end of phase 2
    from pipeline.transfer import transfer

    conv = load_checkpoint(tmp_path / "checkpoints" / "two-phase-seed0-phase1.pt")
    start = transfer(conv, beta=config.beta).mixers()[0]
    end = load_checkpoint(tmp_path / "checkpoints" / "two-phase-seed0-phase2.pt").mixers()[0]
    for name in ("rel_bias", "sink_bias", "w_q", "w_k"):
        moved = (getattr(end, name) - getattr(start, name)).abs()
        assert moved.max() > 1e-4, f"{name} did not move in phase 2"


def test_the_schedule_warms_up_then_decays_to_zero() -> None:
    factors = [_schedule(s, total=100, warmup=10) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert factors[100] == pytest.approx(0.0, abs=1e-12)


def test_augmentation_is_a_flip_then_a_crop_of_the_zero_padded_image() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    out = _augment(x, g, shift=2)
    g.set_state(state)
    flip = torch.rand(2, generator=g) < 0.5
    dy, dx = torch.randint(0, 5, (2, 2), generator=g)
    for b in range(2):  # reference: explicit padding and slicing, one image at a time
        img = x[b].flip(-1) if flip[b] else x[b]
        padded = torch.zeros(3, 10, 10)
        padded[:, 2:8, 2:8] = img
        assert torch.equal(out[b], padded[:, dy[b]:dy[b] + 6, dx[b]:dx[b] + 6])


def test_run_comparison_writes_the_log_after_every_run(tiny_cifar: Path, tmp_path: Path) -> None:
    data, vit, config = _tiny_setup(tiny_cifar)
    log = run_comparison(["conv", "scratch"], data, vit, config, [0], tmp_path, progress=False,
                         plot=False)
    saved = json.loads((tmp_path / "log.json").read_text())
    assert [r["arm"] for r in saved["runs"]] == ["conv", "scratch"]
    assert saved["summary"]["conv"]["per_seed"] == {"0": log["runs"][0]["final_test_acc"]}
    assert not (tmp_path / "curves.png").exists()


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(device="tpu"), r"^device='tpu': expected 'cpu', 'cuda' or 'cuda:N'"),
    (dict(phase1_epochs=-1), r"^phase1_epochs must be an integer >= 0, got -1"),
    (dict(phase1_epochs=0, phase2_epochs=0), r"^phase1_epochs \+ phase2_epochs must be >= 1"),
    (dict(beta=0.0), r"^beta must be a positive finite number, got 0.0"),
    (dict(lr=math.inf), r"^lr must be a positive finite number, got inf"),
    (dict(qk_std=-0.1), r"^qk_std must be a finite number >= 0, got -0.1"),
    (dict(batch_size=0), r"^batch_size must be an integer >= 1, got 0"),
], ids=["device", "epochs", "no-epochs", "beta", "lr", "qk-std", "batch"])
def test_bad_training_settings_are_rejected_naming_the_parameter(kwargs: dict,
                                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_an_unknown_arm_or_no_seeds_is_rejected(tiny_cifar: Path, tmp_path: Path) -> None:
    data, vit, config = _tiny_setup(tiny_cifar)
    with pytest.raises(ValueError, match=r"^arm='cnn': expected one of \('scratch', 'conv', "
                       r"'two-phase'\)"):
        run_comparison(["cnn"], data, vit, config, [0], tmp_path)
    with pytest.raises(ValueError, match=r"^seeds must name at least one seed"):
        run_comparison(["conv"], data, vit, config, [], tmp_path)
