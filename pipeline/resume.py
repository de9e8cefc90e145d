"""Per-epoch checkpoints of a comparison, and `--resume DIR`: a killed run continues where it was.

After every epoch rank 0 writes `DIR/resume.pt` (atomically: a temporary file, then a rename)
with the run's options, the JSON log so far (finished runs) and the current arm's whole state:
model, optimiser, schedule, GradScaler, the seed generator and torch's RNG states, phase and
epoch, its history and transfer record. `DIR/log.json` is rewritten with it. A resumed run
gives the same final weights as an uninterrupted one (bit for bit in one CPU process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pipeline.distributed import World

__all__ = ["FORMAT", "Checkpointer", "load_resume", "options_diff", "rng_state", "set_rng_state"]

FORMAT = "pipeline resume v1"
RESUME_FILE = "resume.pt"


def rng_state(generator: torch.Generator) -> dict:
    """Return the states of `generator`, torch's CPU RNG and (if any) the CUDA RNGs."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"generator": generator.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    """Restore what `rng_state` returned."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Writes `resume.pt` and `log.json` of a comparison (rank 0 only)."""

    def __init__(self, out: Path, options: dict, log: dict, world: World) -> None:
        self.out, self.options, self.log, self.world = out, options, log, world

    def save(self, current: dict | None) -> None:
        """Write the log and, with it, the current arm's state (None: between arms)."""
        if not self.world.main:
            return
        state = {"format": FORMAT, "options": self.options, "log": self.log, "current": current}
        tmp = self.out / f".{RESUME_FILE}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out / RESUME_FILE)
        text = self.out / ".log.json.tmp"
        text.write_text(json.dumps(self.log, indent=1))
        os.replace(text, self.out / "log.json")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def options_diff(saved: dict, given: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """Return 'key: saved → given' per differing option (keys ending in `ignore` left out)."""
    a, b = _flat(saved), _flat(given)
    keys = sorted(set(a) | set(b))
    return [
        f"{k}: {a.get(k, '(unset)')!r} → {b.get(k, '(unset)')!r}"
        for k in keys
        if a.get(k) != b.get(k) and not k.endswith(ignore)
    ]


def load_resume(folder: str | Path, options: dict, ignore: tuple[str, ...] = ()) -> dict:
    """Return the state saved in `folder/resume.pt`, after checking it was run with `options`.

    Raises ValueError naming the folder when there is no checkpoint, and naming every differing
    option (saved → given) when the run's options are not these.
    """
    path = Path(folder) / RESUME_FILE
    if not path.is_file():
        raise ValueError(f"--resume {folder}: no {RESUME_FILE} there (it is written after epoch 1)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a foreign or truncated file
        raise ValueError(
            f"--resume {folder}: {path} is not a pipeline checkpoint ({err!s:.80})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"--resume {folder}: {path} is not a {FORMAT!r} checkpoint")
    diff = options_diff(state["options"], options, ignore)
    if diff:
        raise ValueError(
            f"--resume {folder}: the run was started with other options; differing: "
            + "; ".join(diff)
        )
    return state
