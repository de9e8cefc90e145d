"""Data-parallel cost on CPU: `pipeline train` in 1 process against 2 gloo processes (torchrun).

    python -m benchmarks.ddp [--quick] [--out DIR]

Both runs train the convolution arm on the same digits subset with the same global batch and
seed (so the same optimisation), one thread per process. Throughput is global optimiser steps
per second of an epoch (the log's per-epoch seconds, which include rank 0's evaluation of the
898 test images), median over the epochs after the first.
What it does not show: scaling on a cluster. Two processes on a 2-core machine share the
cores with everything else, and gloo's all-reduce goes through local sockets; the number says
what the DDP path costs, not what 8 GPUs gain.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._timing import add_out_option, machine, print_table, save_json

ROOT = Path(__file__).resolve().parent.parent


def _run(world: int, out: Path, epochs: int, train_size: int, batch: int) -> dict:
    """Return the log of one `pipeline train --arm conv` run with `world` processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    head = [sys.executable, "-m"]
    if world > 1:
        head += ["torch.distributed.run", "--standalone", "--nproc_per_node", str(world)]
    args = [
        "pipeline",
        "train",
        "--arm",
        "conv",
        "--seeds",
        "0",
        "--quiet",
        "--threads",
        "1",
        "--phase1-epochs",
        str(epochs),
        "--phase2-epochs",
        "0",
        "--warmup-epochs",
        "1",
        "--train-size",
        str(train_size),
        "--batch-size",
        str(batch),
        "--out",
        str(out),
    ]
    subprocess.run([*head, *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return json.loads((out / "log.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ddp", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 epochs instead of 10")
    add_out_option(parser)
    args = parser.parse_args(argv)
    epochs, train_size, batch = (3 if args.quick else 10), 600, 32
    steps = math.ceil(train_size / batch)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddp-bench-") as tmp:
        logs = {w: _run(w, Path(tmp) / f"w{w}", epochs, train_size, batch) for w in (1, 2)}
    for world, log in logs.items():
        history = log["runs"][0]["history"]
        seconds = statistics.median(r["seconds"] for r in history[1:] or history)
        rows.append(
            {
                "processes": world,
                "steps_per_s": steps / seconds,
                "epoch_s": seconds,
                "final_loss": history[-1]["train_loss"],
            }
        )
    base = rows[0]["steps_per_s"]
    for row in rows:
        row["ratio"] = row["steps_per_s"] / base
    agreement = abs(rows[1]["final_loss"] - rows[0]["final_loss"]) / rows[0]["final_loss"]
    print_table(
        rows,
        [
            ("processes", "processes", "d"),
            ("steps_per_s", "steps/s", ".1f"),
            ("epoch_s", "s/epoch", ".2f"),
            ("ratio", "vs 1 process", ".2f"),
            ("final_loss", "final loss", ".6f"),
        ],
    )
    print(f"final-loss agreement, 2 processes vs 1: {agreement:.1e} relative")
    path = save_json(
        "ddp-cpu",
        {
            "machine": machine("cpu"),
            "epochs": epochs,
            "train_size": train_size,
            "batch_size": batch,
            "steps_per_epoch": steps,
            "rows": rows,
            "final_loss_agreement": agreement,
        },
        quick=args.quick,
        out=args.out,
    )
    print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
