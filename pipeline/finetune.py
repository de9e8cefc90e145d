"""`python -m pipeline finetune`: phase 2 for any CNN — convert it to attention, keep training.

    python -m pipeline finetune --model torchvision:resnet18 --weights cnn.pt
        --dataset imagefolder --data-dir DIR --image-size 32 --epochs 10

1. The CNN (`torchvision:NAME`, `timm:NAME` or `module.path:factory`, built with the dataset's
   class count; `--weights` a state_dict) is converted by `constructions.convert`: every
   convolution becomes its exact attention layer (T1/T2 per layer, strided included).
2. The exact conversion is checked in float64 on a validation batch (relative logit error
   ≤ `EXACT_TOLERANCE`, eval mode). The trainable start is the finite-temperature conversion
   (−β off the offsets, sink at −β/2, paper_notes' pipeline section) with W_Q, W_K ~ N(0, σ²):
   its logit error against the CNN is measured and reported, and must be ≤ `--max-start-error`.
3. Three arms train for the same epochs: `cnn` (the CNN trained on), `attention` (the converted
   start) and `scratch` (the same attention architecture, every weight at a random init).

The finite-temperature layers run the dense attention path (T² logits per head), so this is
meant for CIFAR-sized inputs; the converted layers' sizes are fixed by `--image-size`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from constructions.convert import ConvAttention, convert
from pipeline.data import DATASETS, load_dataset, subsample
from pipeline.distributed import World, setup
from pipeline.loop import AMP_MODES, Phase, train_phase
from pipeline.options import check_device, check_world, fail
from pipeline.transfer import logit_error

__all__ = ["EXACT_TOLERANCE", "FINETUNE_ARMS", "add_parser", "attention_start", "finetune"]

FINETUNE_ARMS = ("cnn", "attention", "scratch")
EXACT_TOLERANCE = 1e-9  # float64 relative logit error of the exact conversion
_PROBE = 64


def _attention_layers(model: nn.Module) -> list[ConvAttention]:
    return [m for m in model.modules() if isinstance(m, ConvAttention)]


@torch.no_grad()
def _draw_qk(model: nn.Module, qk_std: float, generator: torch.Generator) -> None:
    for layer in _attention_layers(model):
        for w in (layer.attention.w_q, layer.attention.w_k):
            w.copy_(torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w) * qk_std)
        layer.attention.check_finite = False


@torch.no_grad()
def _reinitialise(model: nn.Module, generator: torch.Generator) -> None:
    """Give every attention layer a random init: W uniform ±1/√fan_in, biases and tables 0."""
    for layer in _attention_layers(model):
        for name, p in layer.attention.named_parameters():
            if name.startswith("w_"):
                fan_in = p.shape[1] if name != "w_o" else p.shape[0] * p.shape[1]
                u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                p.copy_(((2 * u - 1) / math.sqrt(fan_in)).to(p))
            else:
                p.zero_()


def attention_start(
    cnn: nn.Module,
    input_shape: tuple[int, ...],
    probe: torch.Tensor,
    *,
    beta: float,
    qk_std: float,
    generator: torch.Generator,
) -> tuple[nn.Module, dict]:
    """Return (the trainable attention form of `cnn`, its check record).

    The record has `exact_logit_error` (float64, exact conversion; RuntimeError above
    `EXACT_TOLERANCE`), `start_logit_error` (the finite-β start, float64), the converted and
    unconverted layers, and the heads.
    """
    exact, report = convert(cnn, input_shape, dtype=torch.float64)
    if not report.converted:
        raise ValueError(
            "the model has no convolution that constructions.convert can turn "
            f"into attention: {[(r.name, r.reason) for r in report.unconverted][:3]}"
        )
    exact_error = logit_error(exact, cnn, probe)
    if not exact_error <= EXACT_TOLERANCE:
        raise RuntimeError(
            f"the exact conversion changed the logits by {exact_error:.3e} (relative, float64) "
            f"> {EXACT_TOLERANCE:.0e}: the attention model does not equal the CNN"
        )
    start, _ = convert(cnn, input_shape, beta=beta)
    _draw_qk(start, qk_std, generator)
    record = {
        "exact_logit_error": exact_error,
        "start_logit_error": logit_error(start, cnn, probe),
        "beta": beta,
        "qk_std": qk_std,
        "converted": [r.name for r in report.converted],
        "unconverted": {r.name: r.reason for r in report.unconverted},
        "heads": report.total_heads,
    }
    return start, record


def finetune(
    cnn: nn.Module,
    fresh_cnn: nn.Module,
    data: object,
    *,
    arms: tuple[str, ...] = FINETUNE_ARMS,
    epochs: int,
    batch_size: int,
    lr: float,
    beta: float = 20.0,
    qk_std: float = 0.02,
    max_start_error: float = 1e-2,
    weight_decay: float = 0.05,
    warmup_epochs: int = 1,
    amp: str = "off",
    seed: int = 0,
    world: World | None = None,
    progress: bool = True,
) -> dict:
    """Return the log {check, arms: {arm: {history, final_test_acc}}} of the three arms.

    `cnn` holds the trained weights; `fresh_cnn` is the same architecture at its random init
    (the `scratch` arm's network before its attention is re-initialised).
    """
    world = world or World()
    device = world.device
    generator = torch.Generator().manual_seed(seed)
    shape = (1, *data.image_shape)  # type: ignore[attr-defined]
    probe = data.normalise(data.probe(_PROBE)).to(torch.float32)  # type: ignore[attr-defined]
    start, check = attention_start(cnn, shape, probe, beta=beta, qk_std=qk_std, generator=generator)
    if not check["start_logit_error"] <= max_start_error:
        raise ValueError(
            f"--max-start-error {max_start_error}: the finite-temperature start is "
            f"{check['start_logit_error']:.3e} (relative) from the CNN; raise --beta (now {beta})"
        )
    models = {"cnn": copy.deepcopy(cnn), "attention": start}
    if "scratch" in arms:
        scratch, _ = convert(fresh_cnn, shape, beta=beta)
        _reinitialise(scratch, generator)
        models["scratch"] = scratch
    log: dict = {"check": check, "arms": {}}
    for arm in arms:
        model = models[arm].to(device)
        phase = Phase(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            seed=seed,
            amp=amp,
            desc=f"finetune {arm}",
        )
        started = time.perf_counter()
        history = train_phase(
            model, data, phase, generator=generator, world=world, progress=progress
        )
        log["arms"][arm] = {
            "history": history,
            "final_test_acc": history[-1]["test_acc"] if history else None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": time.perf_counter() - started,
        }
        models[arm] = model
    log["models"] = models
    return log


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `finetune` command to the pipeline's sub-parsers."""
    f = sub.add_parser(
        "finetune",
        help="convert a CNN to attention and train it on (arms cnn, attention, scratch)",
        description=__doc__.split("\n\n")[0] + " Arms: the CNN trained on, its converted "
        "attention form from the finite-temperature start, the same attention architecture "
        "from a random init; all for --epochs epochs. Writes log.json under --out.",
    )
    f.add_argument(
        "--model",
        required=True,
        help="torchvision:NAME, timm:NAME or module.path:factory (num_classes=)",
    )
    f.add_argument("--weights", type=Path, default=None, help="the CNN's state_dict (torch.save)")
    f.add_argument("--dataset", choices=DATASETS, default="digits")
    f.add_argument("--data-dir", type=Path, default=None)
    f.add_argument("--image-size", type=int, default=None, help="imagefolder only (default 224)")
    f.add_argument("--train-size", type=int, default=None, help="class-balanced subset (0: all)")
    f.add_argument("--arm", choices=[*FINETUNE_ARMS, "all"], default="all")
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--lr", type=float, default=1e-3)
    f.add_argument("--beta", type=float, default=20.0, help="finite-temperature start: -beta")
    f.add_argument("--qk-std", type=float, default=0.02, help="std of the random W_Q, W_K")
    f.add_argument(
        "--max-start-error",
        type=float,
        default=1e-2,
        help="largest relative logit error of the start against the CNN",
    )
    f.add_argument("--amp", choices=AMP_MODES, default="off")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="cpu")
    f.add_argument("--out", type=Path, default=Path("runs/finetune"))
    f.add_argument("--quiet", action="store_true")


def _checked(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected >= 1")
    for name in ("lr", "beta", "max_start_error"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{name.replace('_', '-')} {value}: expected a positive number")
    if not (math.isfinite(args.qk_std) and args.qk_std >= 0):
        raise ValueError(f"--qk-std {args.qk_std}: expected a number >= 0")
    if args.weights is not None and not args.weights.is_file():
        raise ValueError(f"--weights {args.weights}: no such file")


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Run `python -m pipeline finetune` (rank 0 prints and writes); return its log."""
    from constructions.convert_cli import load_model, load_weights

    try:
        _checked(args)
        check_device(args.device)
        check_world(args.batch_size)
        data = load_dataset(args.dataset, args.data_dir, image_size=args.image_size)
        data = subsample(data, args.train_size or None)
        torch.manual_seed(args.seed)
        fresh = load_model(args.model, data.num_classes)
        cnn = copy.deepcopy(fresh)
        if args.weights is not None:
            load_weights(cnn, str(args.weights))
        world = setup(args.device)
        arms = FINETUNE_ARMS if args.arm == "all" else (args.arm,)
        log = finetune(
            cnn,
            fresh,
            data,
            arms=arms,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            beta=args.beta,
            qk_std=args.qk_std,
            max_start_error=args.max_start_error,
            amp=args.amp,
            seed=args.seed,
            world=world,
            progress=not args.quiet,
        )
    except (ValueError, TypeError, OSError) as err:
        fail(parser, "finetune", err)
    log.pop("models")
    if world.main:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "log.json").write_text(json.dumps(log, indent=1))
        c = log["check"]
        lines = [
            f"{args.model} on {data.name} ({len(data.train_y)} training images), "
            f"{c['heads']} heads in {len(c['converted'])} converted layers; exact conversion "
            f"{c['exact_logit_error']:.1e}, finite-temperature start (beta {c['beta']:g}) "
            f"{c['start_logit_error']:.1e} relative logit error"
        ]
        for arm, r in log["arms"].items():
            lines.append(
                f"  {arm:>9}: test accuracy {r['final_test_acc']:.4f} after {args.epochs} epochs"
            )
        lines.append(f"log: {args.out / 'log.json'}")
        print("\n".join(lines), file=sys.stdout)
    world.close()
    return log
