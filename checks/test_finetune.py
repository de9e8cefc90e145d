"""`python -m pipeline finetune`: a CNN converted to attention, checked at the start, trained on."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from checks.test_pipeline_scale import write_folder
from checks.tiny_cnn import tiny_cnn
from constructions.convert import ConvAttention
from pipeline.cli import main
from pipeline.finetune import EXACT_TOLERANCE, attention_start, finetune

MODEL = "checks.tiny_cnn:tiny_cnn"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory):
    from checks.optional import require

    require("torchvision", "all")
    from pipeline.data import load_dataset

    root = write_folder(tmp_path_factory.mktemp("ft"))
    return root, load_dataset("imagefolder", root, image_size=16, augment=False)


@pytest.fixture(scope="module")
def trained(folder) -> torch.nn.Module:
    """tiny_cnn after a few SGD steps (BN statistics and weights not the init), trained once
    per module; each test takes a copy (`_cnn`)."""
    data = folder[1]
    torch.manual_seed(0)
    cnn = tiny_cnn(3)
    opt = torch.optim.SGD(cnn.parameters(), lr=0.1)
    for x, y in data.batches("train", 12):
        loss = torch.nn.functional.cross_entropy(cnn(data.normalise(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return cnn.eval()


def _cnn(trained: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(trained)


def _start(cnn: torch.nn.Module, data) -> tuple[torch.Tensor, torch.nn.Module, dict]:
    """Return (probe, start, check): the finite-temperature start of `cnn` at β = 20."""
    probe = data.normalise(data.probe(12))
    start, check = attention_start(cnn, (1, 3, 16, 16), probe, beta=20.0, qk_std=0.02,
                                   generator=torch.Generator().manual_seed(0))  # fmt: skip
    return probe, start, check




def test_the_start_equals_the_cnn_within_the_reported_finite_temperature_error(
    folder, trained
) -> None:
    _, data = folder
    cnn = _cnn(trained)
    probe, start, check = _start(cnn, data)
    assert check["exact_logit_error"] <= EXACT_TOLERANCE
    assert check["converted"] == ["0", "3"] and check["heads"] == 9 + 4  # 3×3 s1, 3×3/s2
    with torch.no_grad():  # recomputed here, in float64, independently of logit_error
        ref = _as64(cnn)(probe.double())
        got = _as64(start)(probe.double())
    measured = ((got - ref).abs().max() / ref.abs().max()).item()
    assert measured == pytest.approx(check["start_logit_error"], rel=1e-6)
    assert 0 < measured <= 1e-2  # finite β moves the function, by little
    # the finite-temperature start is no longer one-hot: every attention weight is positive
    layer = next(m for m in start.modules() if isinstance(m, ConvAttention)).attention
    with torch.no_grad():
        weights = layer.attention_weights(torch.randn(2, layer.num_tokens, layer.in_dim))
    assert float(weights.min()) > 0


def _as64(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model).double().eval()


def test_training_the_start_moves_the_attention_tables_and_w_q_w_k(folder, trained) -> None:
    _, data = folder
    _, start, _ = _start(_cnn(trained), data)
    x, y = next(data.batches("train", 12))
    start.train()
    torch.nn.functional.cross_entropy(start(data.normalise(x)), y).backward()
    for m in start.modules():
        if isinstance(m, ConvAttention):
            for name in ("rel_bias", "w_q", "w_k", "sink_bias"):
                grad = getattr(m.attention, name).grad
                assert grad is not None and grad.abs().max() > 0, name


def test_the_three_arms_run_and_train(folder, trained) -> None:
    _, data = folder
    cnn = _cnn(trained)
    torch.manual_seed(1)
    log = finetune(cnn, tiny_cnn(3), data, epochs=2, batch_size=12, lr=1e-2, progress=False)
    assert set(log["arms"]) == {"cnn", "attention", "scratch"}
    for arm, r in log["arms"].items():
        assert len(r["history"]) == 2 and 0 <= r["final_test_acc"] <= 1, arm
    before = dict(cnn.named_parameters())["0.weight"]
    after = dict(log["models"]["cnn"].named_parameters())["0.weight"]
    assert not torch.equal(before, after)  # the cnn arm trained a copy; the input is unchanged
    scratch = next(m for m in log["models"]["scratch"].modules() if isinstance(m, ConvAttention))
    start = next(m for m in log["models"]["attention"].modules() if isinstance(m, ConvAttention))
    assert not torch.allclose(scratch.attention.w_v, start.attention.w_v)


def test_the_cli_converts_a_saved_cnn_and_writes_the_log(folder, trained, tmp_path, capsys):
    root, _ = folder
    cnn = _cnn(trained)
    torch.save(cnn.state_dict(), tmp_path / "cnn.pt")
    main(["finetune", "--model", MODEL, "--weights", str(tmp_path / "cnn.pt"), "--dataset",
          "imagefolder", "--data-dir", str(root), "--image-size", "16", "--epochs", "1",
          "--batch-size", "12", "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    log = json.loads((tmp_path / "out" / "log.json").read_text())
    assert set(log["arms"]) == {"cnn", "attention", "scratch"}
    assert re.search(r"13 heads in 2 converted layers; exact conversion \d\.\de-1[5-7]", out), out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", "/nonexistent.pt"], r"--weights /nonexistent.pt: no such file"),
        (["--epochs", "0"], r"--epochs 0: expected >= 1"),
        (["--beta", "-1"], r"--beta -1.0: expected a positive number"),
        (["--model", "nosuchmodule:f"], r"--model 'nosuchmodule:f': cannot import"),
    ],
)
def test_bad_finetune_input_is_one_line(extra, message, capsys) -> None:
    argv = ["finetune", "--model", MODEL, "--quiet", *extra]
    if "--model" in extra:
        argv = ["finetune", *extra]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(message, err), err


def test_weights_of_another_architecture_are_named(tmp_path, capsys) -> None:
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(SystemExit):
        main(["finetune", "--model", MODEL, "--weights", str(tmp_path / "other.pt")])
    err = capsys.readouterr().err.strip()
    assert re.search(r"--weights .*other.pt: key '0.weight' of the model is missing", err), err
