"""Every CUDA check and benchmark of the project in one command, within 8 minutes on one H100.

    python -m benchmarks.gpu [--dry-run]

Each step runs as a subprocess with its own time budget (their sum is 7.5 min), its output
streamed with a `[step]` prefix:

1. `pytest checks/ --gpu -q`: the equivalence checks on CUDA in float64/32, bfloat16, float16;
2. `benchmarks.errors --device cuda` (40 random convolutions) → results/errors-cuda.json;
3. `benchmarks.constructions --device cuda` → results/constructions-cuda.json (FlexAttention
   and the gather path at 224² and 512² pixel tokens);
4. `figures --only cost_gpu` → figures/cost_gpu.png, .svg;
5. a short digits run of the CMHSA pipeline on CUDA (2 + 2 epochs, one seed) into a temporary
   folder;
6. the same run data-parallel under torchrun (one process on the GPU, nccl);
7. the same run in mixed precision (`--amp bf16`).

It writes benchmarks/results/gpu-cuda.json: the GPU's name and, per step, the command, its exit
code (null when it ran out of time), seconds and the tail of its output. Exit status 0 when every
step passed, 1 otherwise; without a usable CUDA device, 2 and one line on stderr. `--dry-run`
prints the steps and runs nothing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAIL_LINES = 40


@dataclass(frozen=True)
class Step:
    """One command of the run and the seconds it may take."""

    name: str
    args: tuple[str, ...]
    budget_s: int

    def command(self) -> list[str]:
        """Return the argv to run (this interpreter, from the repository root)."""
        return [sys.executable, *self.args]


def steps(pipeline_out: str) -> list[Step]:
    """Return the steps in order; budgets sum to 450 s, leaving room for start-up."""
    short = ("train", "--device", "cuda", "--dataset", "digits", "--phase1-epochs", "2",
             "--phase2-epochs", "2", "--seeds", "0", "--quiet")  # fmt: skip
    return [
        Step("pytest", ("-m", "pytest", "checks/", "--gpu", "-q"), 190),
        Step("errors", ("-m", "benchmarks.errors", "--device", "cuda", "--cases", "40"), 40),
        Step("constructions", ("-m", "benchmarks.constructions", "--device", "cuda"), 70),
        Step("figure", ("-m", "figures", "--only", "cost_gpu"), 80),
        Step("pipeline", ("-m", "pipeline", *short, "--out", f"{pipeline_out}/plain"), 30),
        Step("pipeline-ddp", ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                              "1", "-m", "pipeline", *short, "--out", f"{pipeline_out}/ddp"), 20),
        Step("pipeline-amp", ("-m", "pipeline", *short, "--amp", "bf16",
                              "--out", f"{pipeline_out}/amp"), 20),
    ]  # fmt: skip


def cuda_unavailable() -> str | None:
    """Return why no CUDA device can be used here, or None (warnings folded into the reason)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import torch

        usable = torch.cuda.is_available()
    if usable:
        return None
    notes = "; ".join(str(w.message).splitlines()[0] for w in caught)
    return "torch.cuda.is_available() is False" + (f": {notes}" if notes else "")


def run_step(step: Step) -> dict[str, object]:
    """Run one step, streaming its output; return its summary (exit code None on timeout)."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    start = time.perf_counter()
    proc = subprocess.Popen(step.command(), cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            print(f"[{step.name}] {line}", end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code: int | None = proc.wait(timeout=step.budget_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the step and anything it started
        proc.wait()
        code = None
    reader.join(timeout=5)
    seconds = time.perf_counter() - start
    return {"name": step.name, "command": f"python {shlex.join(step.args)}", "exit_code": code,
            "timed_out": code is None, "budget_s": step.budget_s, "seconds": round(seconds, 1),
            "tail": list(tail)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run (or, with --dry-run, list) the steps; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    args = parser.parse_args(argv)
    if args.dry_run:
        for i, step in enumerate(steps("<temporary folder>"), 1):
            print(f"{i}. {step.name} ({step.budget_s} s): python {shlex.join(step.args)}")
        return 0
    reason = cuda_unavailable()
    if reason is not None:
        print(f"benchmarks.gpu: no GPU is available ({reason})", file=sys.stderr)
        return 2
    import torch

    from benchmarks._timing import machine, save_json

    with tempfile.TemporaryDirectory(prefix="gpu-pipeline-") as out:
        plan = steps(out)
        results = []
        for i, step in enumerate(plan, 1):
            print(f"== {i}/{len(plan)} {step.name} (budget {step.budget_s} s): "
                  f"python {shlex.join(step.args)}", flush=True)  # fmt: skip
            results.append(run_step(step))
            status = "timed out" if results[-1]["timed_out"] else f"exit {results[-1]['exit_code']}"
            print(f"== {step.name}: {status} after {results[-1]['seconds']} s", flush=True)
    path = save_json("gpu-cuda", {"machine": machine("cuda"),
                                  "device_name": torch.cuda.get_device_name(),
                                  "steps": results})  # fmt: skip
    failed = [r["name"] for r in results if r["exit_code"] != 0]
    print(f"saved {path}; " + (f"failed: {', '.join(failed)}" if failed else "every step passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
