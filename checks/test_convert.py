"""`constructions.convert` / `theory.convert` / `python -m constructions convert`: whole networks.

Every model is compared end to end against itself (PyTorch's own convolutions, the independent
reference), in eval mode, on a seeded random input, with random weights: the converted copy must
equal it within `TOLERANCE` of the dtype (every convolution replaced, nothing else changed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from checks.optional import require
from checks.tolerances import TOLERANCE, relative_error
from constructions import ConvAttention, convert
from constructions.convert_cli import main
from theory import convert as certified_convert
from theory import minimum_heads, recheck

DTYPES = (torch.float64, torch.float32)


def audio_net() -> nn.Module:
    """A small Conv1d audio network: strided front end, dilated and grouped stride-1 layers."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 8, 8, stride=4, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(16, 16, 5, padding=4, dilation=2, groups=4), nn.GELU(),
        nn.Conv1d(16, 16, 1, padding_mode="circular"),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


def video_net() -> nn.Module:
    """A small Conv3d video network: a tubelet stem (k = s), a strided 3×3×3 and a residual."""
    torch.manual_seed(0)

    class Video(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv3d(3, 8, (2, 4, 4), stride=(2, 4, 4))
            self.down = nn.Conv3d(8, 12, 3, stride=(1, 2, 2), padding=1)
            self.body = nn.Sequential(nn.Conv3d(12, 12, 3, padding=1), nn.BatchNorm3d(12))
            self.head = nn.Linear(12, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.down(self.stem(x)))
            x = x + self.body(x)
            return self.head(x.mean(dim=(2, 3, 4)))

    return Video()


def small_net() -> nn.Module:
    """A stride-1 Conv2d net small enough to certify every layer's minimum in a test."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, (1, 3), padding=(0, 1))
    )


def mixed_net() -> nn.Module:
    """A net with layers the constructions do not cover (reflect padding, a transposed conv)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),  # on a 7×7 map: 7/2 is no grid
        nn.ConvTranspose2d(4, 4, 2, stride=2), nn.ReLU(), nn.Conv2d(4, 2, 1),
    )  # fmt: skip


def _end_to_end(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, **kwargs: object):
    """Return (converted, report, error): the converted copy against `model` on one input."""
    model = model.eval()
    converted, report = convert(model, shape, dtype=dtype, **kwargs)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    with torch.no_grad():
        expected = model.to(dtype)(x.to(dtype))
        actual = converted.eval()(x.to(dtype))
    return converted, report, relative_error(actual, expected)


def _check_all_converted(converted: nn.Module, report, error: float, dtype: torch.dtype) -> None:
    assert report.unconverted == [], [(r.name, r.reason) for r in report.unconverted]
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    assert not any(isinstance(m, kinds) for m in converted.modules())
    assert sum(isinstance(m, ConvAttention) for m in converted.modules()) == len(report.rows)
    assert error <= TOLERANCE[dtype], error
    assert report.max_error <= TOLERANCE[dtype], report.max_error


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_resnet18_at_224_is_exactly_its_attention_form_with_all_20_convolutions_converted(
    dtype: torch.dtype,
) -> None:
    torchvision = require("torchvision", "all")
    model = torchvision.models.resnet18()
    converted, report, error = _end_to_end(model, (2, 3, 224, 224), dtype)
    assert len(report.rows) == 20
    _check_all_converted(converted, report, error, dtype)
    stem = report.rows[0]  # 7×7/s2/p3 on pixel tokens: 2×2 input patches, |N| = 4² = 16
    assert (stem.name, stem.stride, stem.patch_size, stem.tokens) == (
        "conv1",
        (2, 2),
        (2, 2),
        "pixel",
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mobilenet_v3_small_at_224_is_exactly_its_attention_form(dtype: torch.dtype) -> None:
    torchvision = require("torchvision", "all")
    converted, report, error = _end_to_end(
        torchvision.models.mobilenet_v3_small(), (1, 3, 224, 224), dtype
    )
    _check_all_converted(converted, report, error, dtype)
    assert any(r.stride == (2, 2) and r.groups == r.in_channels > 1 for r in report.rows)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_convnext_atto_at_224_is_exactly_its_attention_form(dtype: torch.dtype) -> None:
    timm = require("timm", "timm")
    converted, report, error = _end_to_end(
        timm.create_model("convnext_atto"), (1, 3, 224, 224), dtype
    )
    _check_all_converted(converted, report, error, dtype)
    assert report.rows[0].stride == (4, 4)  # the 4×4/s4 patchify stem


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_conv1d_audio_net_is_exactly_its_attention_form(dtype: torch.dtype) -> None:
    converted, report, error = _end_to_end(audio_net(), (3, 1, 256), dtype)
    _check_all_converted(converted, report, error, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("patch_size", [None, (2, 4, 4)], ids=["voxel-tokens", "tubelets"])
def test_a_conv3d_video_net_is_exactly_its_attention_form(
    dtype: torch.dtype, patch_size: tuple[int, ...] | None
) -> None:
    converted, report, error = _end_to_end(video_net(), (2, 3, 8, 64, 64), dtype,
                                           patch_size=patch_size)  # fmt: skip
    _check_all_converted(converted, report, error, dtype)
    if patch_size is not None:  # the stem's P equals its stride: one output pixel per token
        assert [r.tokens for r in report.rows] == ["pixel", "patch", "patch"]
        assert [r.patch_size for r in report.rows] == [patch_size] * 3


def test_a_patch_rule_function_chooses_tokens_per_layer() -> None:
    def rule(name: str, conv: nn.Module, size: tuple[int, ...]) -> tuple[int, ...] | None:
        return (2, 4, 4) if name == "down" else None

    converted, report, error = _end_to_end(video_net(), (1, 3, 8, 64, 64), torch.float64,
                                           patch_size=rule)  # fmt: skip
    _check_all_converted(converted, report, error, torch.float64)
    assert {r.name: r.tokens for r in report.rows} == {
        "stem": "pixel", "down": "patch", "body.0": "pixel"
    }  # fmt: skip


def test_unconvertible_layers_stay_convolutions_and_are_named_with_their_reason() -> None:
    model = mixed_net()
    converted, report, error = _end_to_end(model, (1, 3, 7, 7), torch.float64)
    reasons = {r.name: r.reason for r in report.unconverted}
    assert set(reasons) == {"2", "4", "5"}
    assert "padding_mode='reflect'" in reasons["2"]
    assert "stride (2, 2) does not divide the input size (7, 7)" in reasons["4"]
    assert "8×8" in reasons["4"]  # what would work
    assert reasons["5"].startswith("ConvTranspose2d")
    assert isinstance(converted[2], nn.Conv2d) and isinstance(converted[5], nn.ConvTranspose2d)
    assert isinstance(converted[0], ConvAttention) and isinstance(converted[7], ConvAttention)
    assert error <= TOLERANCE[torch.float64]
    table = report.table()
    for name in reasons:
        assert f"NOT CONVERTED {name} " in table


def test_a_patch_the_stride_does_not_divide_is_reported_with_what_would_work() -> None:
    model = nn.Sequential(nn.Conv2d(2, 2, 3, stride=2, padding=1))
    _, report = convert(model, 12, patch_size=lambda name, conv, size: 3)
    (row,) = report.unconverted
    assert row.reason.startswith("stride (2, 2) does not divide patch_size=(3, 3)")
    assert "e.g. (2, 2)" in row.reason


def test_the_input_model_is_left_untouched_batchnorm_statistics_included() -> None:
    model = audio_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted, _ = convert(model, 64)
    assert model.training and converted.training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model[0], nn.Conv1d) and isinstance(converted[0], ConvAttention)


@pytest.mark.parametrize(("factory", "size"), [(small_net, 8), (audio_net, 64)],
                         ids=["stride-1", "strided-1d"])  # fmt: skip
def test_certified_minima_are_rechecked_and_written_per_layer(tmp_path, factory, size) -> None:
    model = factory().double()
    _, report = certified_convert(model, size, certify_dir=tmp_path)
    assert report.unconverted == [] and all(r.note is None for r in report.rows)
    for row in report.rows:
        conv = model.get_submodule(row.name)
        assert row.minimum == minimum_heads(conv, row.patch_size).heads  # its own weights (T4)
        assert row.generic is not None and row.minimum in (row.generic, row.generic + 1)
        cert = json.loads((tmp_path / f"{row.name}.json").read_text())
        assert cert["claim"]["heads"] == row.minimum
        recheck(cert)
    assert report.total_minimum == sum(r.minimum for r in report.rows)


def test_a_converted_layer_rejects_an_input_of_another_size() -> None:
    converted, _ = convert(small_net(), 8)
    with pytest.raises(ValueError, match=r"^x has spatial size \(9, 9\), but this layer was"):
        converted(torch.zeros(1, 2, 9, 9))


def test_the_report_renders_as_a_table_and_as_json() -> None:
    _, report = convert(small_net(), (1, 2, 8, 8))
    data = json.loads(report.to_json())
    assert data["input_shape"] == [1, 2, 8, 8] and len(data["layers"]) == 2
    assert data["total_heads"] == sum(r.heads for r in report.rows) == report.total_heads
    assert report.table().splitlines()[0].split()[:2] == ["layer", "C→D"]


@pytest.mark.parametrize(
    ("model", "size", "error", "match"),
    [
        ("not a model", 8, TypeError, r"^model must be a torch\.nn\.Module, got str$"),
        (
            small_net(),
            (1, 5, 8, 8),
            ValueError,
            r"^input_size gives an input of shape \(1, 5, 8, 8\), which the model cannot take",
        ),
        (
            small_net(),
            (8, 8, 8),
            ValueError,
            r"^input_size=\(8, 8, 8\) has 3 entries; the model's first convolution is 2-D",
        ),
        (nn.Linear(2, 2), 8, ValueError, r"^model has no convolution"),
    ],
    ids=["non-module", "wrong-channels", "wrong-axes", "no-conv"],
)
def test_bad_models_and_input_sizes_raise_naming_the_parameter(model, size, error, match) -> None:
    with pytest.raises(error, match=match):
        convert(model, size)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["convert", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_prints_the_table_the_end_to_end_error_and_the_time(capsys, tmp_path) -> None:
    code, out, _ = _cli(capsys, "--model", "checks.test_convert:small_net", "--input-size", "8",
                        "--dtype", "float64", "--certify", str(tmp_path), "--save",
                        str(tmp_path / "m.pt"))  # fmt: skip
    assert code == 0
    assert "total heads" in out and "end-to-end max relative error" in out and "convert " in out
    error = float(out.split("end-to-end max relative error")[1].split(": ")[1].split()[0])
    assert error <= TOLERANCE[torch.float64]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["0.json", "2.json"]
    saved = torch.load(tmp_path / "m.pt", weights_only=False)
    assert isinstance(saved[0], ConvAttention)


def test_the_cli_json_carries_the_report_and_the_error(capsys) -> None:
    code, out, _ = _cli(capsys, "--model", "checks.test_convert:audio_net", "--input-size", "64",
                        "--json", "--no-minimum")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["report"]["unconverted"] == 0
    assert data["end_to_end_error"] <= TOLERANCE[torch.float32]


def test_cli_weights_that_do_not_match_name_the_first_key_and_both_shapes(capsys, tmp_path):
    state = small_net().state_dict()
    state["2.weight"] = torch.zeros(2, 3, 3, 3)
    torch.save(state, tmp_path / "w.pt")
    code, out, err = _cli(capsys, "--model", "checks.test_convert:small_net", "--input-size", "8",
                          "--weights", str(tmp_path / "w.pt"))  # fmt: skip
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "key '2.weight' has shape (2, 3, 3, 3) in the file but (2, 3, 1, 3) in the model" in err


def test_cli_weights_that_match_are_loaded_whole(capsys, tmp_path) -> None:
    state = {k: torch.full_like(v, 0.5) for k, v in small_net().state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    code, out, _ = _cli(capsys, "--model", "checks.test_convert:small_net", "--input-size", "8",
                        "--weights", str(tmp_path / "w.pt"), "--json", "--no-minimum")  # fmt: skip
    assert code == 0 and json.loads(out)["end_to_end_error"] <= TOLERANCE[torch.float32]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--model", "os:getcwd", "--input-size", "8"], "gave a str, not a torch.nn.Module"),
        (["--model", "resnet18", "--input-size", "8"], "expected torchvision:NAME"),
        (["--model", "torchvision:nope", "--input-size", "8"], "torchvision has no model 'nope'"),
        (["--model", "checks.test_convert:small_net", "--input-size", "1x5x8x8"],
         "which the model cannot take"),
        (["--model", "checks.test_convert:small_net", "--input-size", "8a"],
         "--input-size '8a'"),
        (["--model", "checks.test_convert:small_net", "--input-size", "8", "--weights", "nope.pt"],
         "--weights nope.pt: no such file"),
    ],
    ids=["non-module-factory", "no-source", "unknown-model", "bad-channels", "bad-size",
         "missing-weights"],
)  # fmt: skip
def test_cli_bad_input_gives_one_stderr_line_and_exit_2(capsys, argv, match) -> None:
    try:
        code, out, err = _cli(capsys, *argv)
    except SystemExit as e:  # argparse-level errors exit through the parser
        code, err, out = e.code, capsys.readouterr().err, ""
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and match in err, err


def test_the_readme_resnet18_table_is_the_benchmarks_json() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text().split("### Convert a whole CNN")[1]
    data = json.loads((root / "benchmarks" / "results" / "convert-cpu.json").read_text())
    rows = re.findall(r"^\| `([\w.]+)` \| (\d+)→(\d+) \|[^|]+\|[^|]+\| (\d+) \| (\d+) \| (\S+) \|$",
                      readme, flags=re.M)  # fmt: skip
    layers = data["report"]["layers"]
    assert [r[0] for r in rows] == [r["name"] for r in layers] and len(rows) == 20
    for (_, c, d, heads, generic, minimum), layer in zip(rows, layers, strict=True):
        assert (int(c), int(d), int(heads), int(generic)) == (
            layer["in_channels"], layer["out_channels"], layer["heads"], layer["generic"]
        )  # fmt: skip
        assert minimum == ("—" if layer["minimum"] is None else str(layer["minimum"]))
    assert f"with {data['report']['total_heads']} heads" in readme
    assert f"{data['report']['total_minimum']} in\nall, each minimum re-checked" in readme
    errors = data["end_to_end_error"]
    assert f"| {errors['float64']:.1e} | {errors['float32']:.1e} |" in readme
    assert f"({data['time_ratio']:.1f}×)" in readme and f"({data['memory_ratio']:.1f}×)" in readme
