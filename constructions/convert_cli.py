"""`python -m constructions convert`: a whole CNN as exact attention, with its per-layer report.

    python -m constructions convert --model torchvision:resnet18 | timm:convnext_atto |
        module.path:factory --input-size 224 [--weights FILE] [--patch-size P] [--certify DIR]
        [--no-minimum] [--save FILE] [--json] [--dtype float32|float64]

Prints the per-layer table (`constructions.convert.ConversionReport.table`), the end-to-end
relative error of the attention form against the model (eval mode, one seeded random input) and
the times; progress goes to stderr. Generic s (T3) and the certified minimum of each layer's
weights (T4, re-checked by the stand-alone checker; `--certify DIR` also writes the
certificates) come from `theory.convert`; `--no-minimum` skips the minimum, the slow part.
Bad input exits with status 2 and one line on stderr.

This entry point is a program at the top of the stack, not a library module: it may import
`theory` (checks/test_layout.py names the exemption); nothing in `constructions` imports it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from constructions.convert import relative_error
from theory.conversion import convert

__all__ = ["load_model", "load_weights", "main", "model_outputs"]

_SIZE = re.compile(r"^\d+(x\d+){0,4}$")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def load_model(spec: str, num_classes: int | None = None) -> nn.Module:
    """Return the model named by `torchvision:NAME`, `timm:NAME` or `module.path:factory`.

    Weights are random (nothing downloads); `--weights` loads a state_dict afterwards.
    `num_classes` (if given) is passed to the constructor / factory as `num_classes=`.
    """
    extra = {} if num_classes is None else {"num_classes": num_classes}
    source, sep, name = spec.partition(":")
    if not sep or not source or not name:
        raise ValueError(
            f"--model {spec!r}: expected torchvision:NAME, timm:NAME or module.path:factory"
        )
    if source == "torchvision":
        import torchvision

        if name not in torchvision.models.list_models():
            raise ValueError(f"--model {spec!r}: torchvision has no model {name!r}")
        model = torchvision.models.get_model(name, weights=None, **extra)
    elif source == "timm":
        import timm

        if not timm.is_model(name):
            raise ValueError(f"--model {spec!r}: timm has no model {name!r}")
        model = timm.create_model(name, pretrained=False, **extra)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as e:
            raise ValueError(f"--model {spec!r}: cannot import {source!r} ({e})") from e
        factory = getattr(module, name, None)
        if not callable(factory):
            raise ValueError(f"--model {spec!r}: {source} has no callable {name!r}")
        try:
            model = factory(**extra)
        except TypeError as e:
            raise ValueError(f"--model {spec!r}: {name}(**{extra}) failed ({e})") from e
    if not isinstance(model, nn.Module):
        raise TypeError(f"--model {spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model: nn.Module, path: str) -> None:
    """Load the state_dict at `path` into `model` whole, or raise naming the first mismatch."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"--weights {path}: cannot read a state_dict ({type(e).__name__})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--weights {path}: expected a state_dict (names → tensors)")
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            raise ValueError(f"--weights {path}: key {key!r} of the model is missing")
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"--weights {path}: key {key!r} has shape {tuple(state[key].shape)} in the "
                f"file but {tuple(value.shape)} in the model"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise ValueError(f"--weights {path}: key {extra[0]!r} is not in the model")
    model.load_state_dict(state, strict=True)


def model_outputs(out: object) -> list[torch.Tensor]:
    """Return the tensors of a model's output (a tensor, or tuples/lists/dicts of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in model_outputs(item)]
    return []


def _input_size(text: str) -> int | tuple[int, ...]:
    if not _SIZE.match(text.strip().lower()):
        raise ValueError(
            f"--input-size {text!r}: expected N, NxN, NxNxN (spatial) or BxCx… (a full shape)"
        )
    values = tuple(int(v) for v in text.strip().lower().split("x"))
    return values[0] if len(values) == 1 else values


def _patch(text: str | None) -> int | tuple[int, ...] | None:
    if text is None:
        return None
    if not re.match(r"^\d+(x\d+){0,2}$", text.strip().lower()):
        raise ValueError(f"--patch-size {text!r}: expected P, PxP or PxPxP")
    values = tuple(int(v) for v in text.strip().lower().split("x"))
    return values[0] if len(values) == 1 else values


def _timed_forward(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    start = time.perf_counter()
    with torch.no_grad():
        out = model_outputs(model(x))
    return out, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict:
    """Return the conversion record of the CLI arguments (model, report, errors, times)."""
    dtype = DTYPES[args.dtype]
    model = load_model(args.model)
    if args.weights:
        load_weights(model, args.weights)
    model = model.to(dtype).eval()
    start = time.perf_counter()
    converted, report = convert(
        model, _input_size(args.input_size), patch_size=_patch(args.patch_size),
        certify=not args.no_minimum, certify_dir=args.certify,
        progress=lambda rows: tqdm(rows, desc="convert", file=sys.stderr, delay=1),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    converted.eval()
    shape = report.input_shape
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref, t_cnn = _timed_forward(model, x.to(dtype))
    got, t_att = _timed_forward(converted, x.to(dtype))
    if len(ref) != len(got) or not ref:
        raise ValueError(f"--model {args.model}: its output has no tensor to compare")
    error = max(relative_error(r, g) for r, g in zip(ref, got, strict=True))
    if args.save:
        torch.save(converted, args.save)
    return {
        "model": args.model, "dtype": args.dtype, "report": report.as_dict(),
        "end_to_end_error": error, "convert_seconds": seconds,
        "forward_seconds": {"cnn": t_cnn, "attention": t_att}, "text": report.table(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m constructions", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("convert", help="a whole CNN as exact attention, layer by layer")
    p.add_argument("--model", required=True)
    p.add_argument("--input-size", required=True)
    p.add_argument("--weights")
    p.add_argument("--patch-size")
    p.add_argument("--certify", metavar="DIR", help="write each layer's certificate here")
    p.add_argument("--no-minimum", action="store_true", help="skip the certified minima (T4)")
    p.add_argument("--save", metavar="FILE", help="torch.save the converted model")
    p.add_argument("--json", action="store_true")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = parser.parse_args(argv)
    if args.weights and not Path(args.weights).is_file():
        parser.error(f"--weights {args.weights}: no such file")
    try:
        record = run(args)
    except (ValueError, TypeError) as e:
        sys.stderr.write(f"python -m constructions convert: error: {str(e).splitlines()[0]}\n")
        return 2
    text = record.pop("text")
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(text)
    times = record["forward_seconds"]
    print(
        f"end-to-end max relative error vs {args.model} ({args.dtype}, eval mode, one random "
        f"input {'×'.join(map(str, record['report']['input_shape']))}): "
        f"{record['end_to_end_error']:.2e}"
    )
    print(
        f"convert {record['convert_seconds']:.1f} s; forward CNN {times['cnn']:.3f} s, "
        f"attention {times['attention']:.3f} s"
    )
    return 0
