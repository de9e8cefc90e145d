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
from pipeline.model import ViTConfig
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train the arms (scratch, conv, two-phase) over seeds",
        description="Train MHSA from scratch, convolution only and the two-phase "
        "CMHSA-K pipeline at equal total epochs; write log.json, curves.png and "
        "checkpoints under --out. Unset options take per-dataset defaults: "
        + "; ".join(f"{k}: {v}" for k, v in DATASET_DEFAULTS.items()),
    )
    t.add_argument("--arm", choices=[*ARMS, "all"], default="all")
    t.add_argument("--dataset", choices=DATASETS, default="digits")
    t.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding cifar-10-batches-py/ or cifar-100-python/ (CIFAR only)",
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
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
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
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Return the comparison log after running `python -m pipeline train ...` with `argv`."""
    args = _parser().parse_args(argv)
    defaults = DATASET_DEFAULTS[args.dataset]
    opt = {
        k: (defaults[k] if getattr(args, k, None) is None else getattr(args, k)) for k in defaults
    }
    if opt["threads"] is not None:
        torch.set_num_threads(positive_int(opt["threads"], "threads"))
    data = load_dataset(args.dataset, args.data_dir)
    data = subsample(data, opt["train_size"] or None)
    vit_config = ViTConfig(
        image_size=data.image_shape[1:],
        in_channels=data.image_shape[0],
        num_classes=data.num_classes,
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
    )
    arms = list(ARMS) if args.arm == "all" else [args.arm]
    out = args.out or Path("runs") / f"{args.dataset}-cmhsa{args.kernel_size}"
    log = run_comparison(arms, data, vit_config, config, args.seeds, out, progress=not args.quiet)
    lines = [
        f"{data.name}, {len(data.train_y)} training images, CMHSA-{args.kernel_size}, "
        f"{config.phase1_epochs}+{config.phase2_epochs} epochs, seeds {args.seeds}:"
    ]
    for arm, s in log["summary"].items():
        lines.append(
            f"  {arm:>9}: test accuracy {s['mean']:.4f} ± {s['std']:.4f} "
            f"(min {s['min']:.4f}, max {s['max']:.4f})"
        )
    lines.append(f"log: {out / 'log.json'}; curves: {out / 'curves.png'}")
    print("\n".join(lines), file=sys.stdout)
    return log
