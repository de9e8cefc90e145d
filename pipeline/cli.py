"""`python -m pipeline train`: the three-arm comparison of the CMHSA pipeline from the command line.

Options left unset take the defaults of the chosen dataset (`DATASET_DEFAULTS`): a model and
schedule small enough for the digits comparison to run on two CPU cores in minutes, and a
ViT-sized one for CIFAR on a GPU.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from constructions.validate import positive_int
from pipeline.data import DATASETS, load_dataset, subsample
from pipeline.distributed import setup
from pipeline.finetune import add_parser as add_finetune_parser
from pipeline.loop import AMP_MODES
from pipeline.model import ViTConfig
from pipeline.options import check_device, check_world, fail
from pipeline.resume import load_resume
from pipeline.train import ARMS, TrainConfig, run_comparison

__all__ = ["DATASET_DEFAULTS", "main"]

DATASET_DEFAULTS: dict[str, dict] = {
    "digits": dict(
        patch_size=2,
        sub_patch=2,
        sub_channels=8,
        depth=2,
        mlp_ratio=2.0,
        train_size=300,
        phase1_epochs=30,
        phase2_epochs=30,
        batch_size=32,
        lr=2e-3,
        augment=False,
        threads=1,
    ),
    "cifar10": dict(
        patch_size=4,
        sub_patch=2,
        sub_channels=48,
        depth=6,
        mlp_ratio=2.0,
        train_size=None,
        phase1_epochs=100,
        phase2_epochs=100,
        batch_size=128,
        lr=1e-3,
        augment=True,
        threads=None,
    ),
}
DATASET_DEFAULTS["cifar100"] = DATASET_DEFAULTS["cifar10"]
DATASET_DEFAULTS["imagefolder"] = {**DATASET_DEFAULTS["cifar10"], "patch_size": 16}
RESUME_IGNORES = ("device", "workers", "threads")  # may change between a run and its resume


def _defaults_text(name: str, d: dict) -> str:
    """Return one dataset's defaults as the options a user would type."""
    shown = ", ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in d.items() if v is not None and k != "augment"
    )
    return f"{name}: {shown}" + (", --augment" if d["augment"] else "")


def _positive(value: float, option: str, *, zero: bool = False, inf: bool = False) -> None:
    """Raise naming `option` unless `value` is a number > 0 (≥ 0 with `zero`; inf with `inf`)."""
    ok = (value >= 0 if zero else value > 0) and (math.isfinite(value) or (inf and value > 0))
    if not ok:
        allowed = "a number >= 0" if zero else "a positive number"
        raise ValueError(f"{option} {value}: expected {allowed}" + (" (or inf)" if inf else ""))


def _check_options(args: argparse.Namespace, opt: dict) -> None:
    """Raise a ValueError naming the option, its value and what is allowed, before any work."""
    for name in ("batch_size", "threads", "patch_size", "sub_patch", "sub_channels", "depth"):
        value = opt.get(name, getattr(args, name, None))
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} {value}: expected an integer >= 1")
    for name in ("phase1_epochs", "phase2_epochs"):
        if opt[name] < 0:
            raise ValueError(f"--{name.replace('_', '-')} {opt[name]}: expected an integer >= 0")
    if args.kernel_size < 1 or args.kernel_size % 2 == 0:
        raise ValueError(
            f"--kernel-size {args.kernel_size}: expected an odd integer >= 1 (K of CMHSA-K: "
            "an odd kernel keeps the 'same' convolution centred)"
        )
    _positive(opt["lr"], "--lr")
    if args.phase2_lr is not None:
        _positive(args.phase2_lr, "--phase2-lr")
    _positive(args.weight_decay, "--weight-decay", zero=True)
    _positive(args.qk_std, "--qk-std", zero=True)
    _positive(args.beta, "--beta", inf=True)
    _positive(opt["mlp_ratio"], "--mlp-ratio")
    if args.warmup_epochs < 0:
        raise ValueError(f"--warmup-epochs {args.warmup_epochs}: expected an integer >= 0")
    if opt["train_size"] is not None and opt["train_size"] < 0:
        raise ValueError(f"--train-size {opt['train_size']}: expected an integer >= 0 (0: all)")
    if any(seed < 0 for seed in args.seeds):
        raise ValueError(f"--seeds {args.seeds}: expected integers >= 0")
    if args.dataset != "digits" and args.data_dir is None:
        held = {"cifar10": "cifar-10-batches-py/", "cifar100": "cifar-100-python/"}
        raise ValueError(
            f"--dataset {args.dataset} needs --data-dir: the folder holding "
            + held.get(args.dataset, "train/<class>/ and val/<class>/")
            + " (nothing is downloaded)"
        )
    if args.image_size is not None and args.dataset != "imagefolder":
        raise ValueError(
            f"--image-size {args.image_size}: only --dataset imagefolder is resized "
            f"({args.dataset} images keep their size)"
        )
    if args.image_size is not None and args.image_size < 1:
        raise ValueError(f"--image-size {args.image_size}: expected an integer >= 1")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers {args.workers}: expected an integer >= 0")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise ValueError(f"--data-dir {args.data_dir}: no such folder")
    check_world(opt["batch_size"])
    check_device(args.device)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train the arms (scratch, conv, two-phase) over seeds",
        description="Train MHSA from scratch, convolution only and the two-phase "
        "CMHSA-K pipeline at equal total epochs; write log.json, curves.png and "
        "checkpoints under --out. Unset options take per-dataset defaults: "
        + "; ".join(_defaults_text(k, v) for k, v in DATASET_DEFAULTS.items() if k != "cifar100")
        + " (cifar100 as cifar10).",
    )
    t.add_argument("--arm", choices=[*ARMS, "all"], default="all")
    t.add_argument("--dataset", choices=DATASETS, default="digits")
    t.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding cifar-10-batches-py/ or cifar-100-python/ (CIFAR), or "
        "train/<class>/*.png|jpg and val/<class>/... (imagefolder)",
    )
    t.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="imagefolder only: train crops and val centre crops of this size (default 224)",
    )
    t.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="imagefolder: leave out images that do not open (default: stop, naming the first)",
    )
    t.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="class-balanced subset of the training images (0: all)",
    )
    t.add_argument("--kernel-size", type=int, default=3, help="K of CMHSA-K (odd, <= 2P'+1)")
    t.add_argument("--patch-size", type=int, default=None, help="P of the patch embedding")
    t.add_argument("--sub-patch", type=int, default=None, help="P': token = P'xP' block")
    t.add_argument("--sub-channels", type=int, default=None, help="C': token width d = P'^2 C'")
    t.add_argument("--depth", type=int, default=None)
    t.add_argument("--mlp-ratio", type=float, default=None)
    t.add_argument("--phase1-epochs", type=int, default=None, help="E1 (convolution)")
    t.add_argument("--phase2-epochs", type=int, default=None, help="E2 (self-attention)")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--phase2-lr", type=float, default=None, help="default: --lr")
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--warmup-epochs", type=int, default=2)
    t.add_argument(
        "--beta",
        type=float,
        default=TrainConfig.beta,
        help="phase-2 start: -beta instead of -inf in the bias tables; 'inf' keeps "
        "the exact layer, whose attention gets zero gradient (a frozen-attention "
        "control)",
    )
    t.add_argument(
        "--qk-std",
        type=float,
        default=TrainConfig.qk_std,
        help="phase-2 start: std of the random W_Q, W_K",
    )
    t.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random flips and 4-pixel shifts (default: on for CIFAR)",
    )
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)"
    )
    t.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="off",
        help="mixed precision: torch.autocast in bf16, or fp16 with a GradScaler",
    )
    t.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers for imagefolder (default 4 on CUDA, 0 on CPU)",
    )
    t.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the run whose --out was DIR from its last epoch (same options)",
    )
    t.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (torch.set_num_threads); digits default 1: its tiny ops "
        "only lose from intra-op threads, badly so on a busy machine",
    )
    t.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/<dataset>-cmhsa<K>)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    add_finetune_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Return the comparison log after running `python -m pipeline train ...` with `argv`.

    Under `torchrun` every rank runs this; rank 0 alone prints, logs and writes.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "finetune":
        from pipeline.finetune import run_cli

        return run_cli(args, parser)
    defaults = DATASET_DEFAULTS[args.dataset]
    opt = {
        k: (defaults[k] if getattr(args, k, None) is None else getattr(args, k)) for k in defaults
    }
    out = args.resume or args.out or Path("runs") / f"{args.dataset}-cmhsa{args.kernel_size}"
    try:  # every bad option: one line naming it, exit 2 (argparse's convention)
        _check_options(args, opt)
        if opt["threads"] is not None:
            torch.set_num_threads(positive_int(opt["threads"], "threads"))
        data = load_dataset(
            args.dataset,
            args.data_dir,
            image_size=args.image_size,
            augment=bool(opt["augment"]),
            skip_unreadable=args.skip_unreadable,
        )
        data = subsample(data, opt["train_size"] or None)
        vit_config, config = _configs(args, opt, data)
        options = _options(args, opt, vit_config, config)
        resume = load_resume(args.resume, options, RESUME_IGNORES) if args.resume else None
    except (ValueError, TypeError, OSError) as err:
        fail(parser, "train", err)
    world = setup(config.device)
    arms = list(ARMS) if args.arm == "all" else [args.arm]
    try:
        log = run_comparison(
            arms,
            data,
            vit_config,
            config,
            args.seeds,
            out,
            progress=not args.quiet,
            world=world,
            options=options,
            resume=resume,
        )
    finally:
        world.close()
    if world.main:
        print(_summary_text(log, args, config, data, out), file=sys.stdout)
    return log


def _summary_text(
    log: dict, args: argparse.Namespace, config: TrainConfig, data: object, out: Path
) -> str:
    lines = [
        f"{data.name}, {len(data.train_y)} training images, CMHSA-{args.kernel_size}, "  # type: ignore[attr-defined]
        f"{config.phase1_epochs}+{config.phase2_epochs} epochs, seeds {args.seeds}:"
    ]
    for arm, s in log["summary"].items():
        lines.append(
            f"  {arm:>9}: test accuracy {s['mean']:.4f} ± {s['std']:.4f} "
            f"(min {s['min']:.4f}, max {s['max']:.4f})"
        )
    lines.append(f"log: {out / 'log.json'}; curves: {out / 'curves.png'}")
    return "\n".join(lines)


def _options(
    args: argparse.Namespace, opt: dict, vit_config: ViTConfig, config: TrainConfig
) -> dict:
    """Return the settings a resumed run must share with the run it continues."""
    from dataclasses import asdict

    return {
        "dataset": args.dataset,
        "data_dir": None if args.data_dir is None else str(args.data_dir.resolve()),
        "image_size": args.image_size,
        "train_size": opt["train_size"],
        "arms": args.arm,
        "seeds": list(args.seeds),
        "vit_config": vit_config.to_dict(),
        "train_config": asdict(config),
    }


def _configs(args: argparse.Namespace, opt: dict, data: object) -> tuple[ViTConfig, TrainConfig]:
    """Return the model and training configurations of the options (they validate themselves)."""
    vit_config = ViTConfig(
        image_size=data.image_shape[1:],  # type: ignore[attr-defined]
        in_channels=data.image_shape[0],  # type: ignore[attr-defined]
        num_classes=data.num_classes,  # type: ignore[attr-defined]
        patch_size=opt["patch_size"],
        sub_patch=opt["sub_patch"],
        sub_channels=opt["sub_channels"],
        depth=opt["depth"],
        mlp_ratio=opt["mlp_ratio"],
        kernel_size=args.kernel_size,
    )
    config = TrainConfig(
        phase1_epochs=opt["phase1_epochs"],
        phase2_epochs=opt["phase2_epochs"],
        batch_size=opt["batch_size"],
        lr=opt["lr"],
        phase2_lr=args.phase2_lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        beta=None if args.beta == math.inf else args.beta,
        qk_std=args.qk_std,
        augment=opt["augment"],
        device=args.device,
        amp=args.amp,
        workers=args.workers if args.workers is not None else (4 if _on_cuda(args) else 0),
    )
    return vit_config, config


def _on_cuda(args: argparse.Namespace) -> bool:
    return args.dataset == "imagefolder" and args.device.startswith("cuda")
