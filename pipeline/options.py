"""The pipeline commands' option checks: one stderr line naming the option, exit status 2."""

from __future__ import annotations

import argparse
import os
import sys

import torch

__all__ = ["check_device", "check_world", "fail"]


def check_device(name: str) -> None:
    """Raise a ValueError naming --device unless it is cpu, or a CUDA device that is here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: expected cpu, cuda or cuda:N")


def check_world(batch_size: int) -> None:
    """Raise a ValueError naming --batch-size unless the world size (torchrun) divides it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if batch_size % world:
        raise ValueError(
            f"--batch-size {batch_size}: the global batch must be a multiple of the world size "
            f"{world} (torchrun --nproc_per_node × nodes), as each rank takes batch/W"
        )


def fail(parser: argparse.ArgumentParser, command: str, err: BaseException) -> None:
    """Exit with status 2 after one stderr line: `err` with a leading name=value as an option."""
    options = {a.dest for a in parser._subparsers._group_actions[0].choices[command]._actions}
    sys.stderr.write(f"python -m pipeline {command}: error: {_as_option(str(err), options)}\n")
    raise SystemExit(2) from None


def _as_option(message: str, options: set[str]) -> str:
    """Return `message` with a leading `name=value` written as the option `--name value`."""
    head, sep, rest = message.partition("=")
    if sep and head in options:
        return f"--{head.replace('_', '-')} {rest}"
    return message
