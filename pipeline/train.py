"""Training the three arms the article compares, at equal total epochs (arXiv 2111.01353).

* `scratch`: the MHSA ViT from a random start, E₁ + E₂ epochs;
* `conv`: the convolutional ViT only, E₁ + E₂ epochs;
* `two-phase` (CMHSA-K): the convolutional ViT for E₁ epochs, `transfer` to MHSA (checked to
  give the same logits, float64 relative error ≤ `TRANSFER_TOLERANCE`), then E₂ epochs of MHSA
  from the finite-temperature start (see `pipeline.transfer`).

Every phase has its own AdamW optimiser and learning-rate schedule (linear warm-up, cosine decay
to 0); weight decay skips biases, norms and the attention bias tables. A seed fixes the weights
(`torch.manual_seed`) and, through one CPU `torch.Generator` seeded with it, the shuffling, the
augmentation and the W_Q/W_K draw: a CPU run repeats bit for bit (a CUDA run need not, as some
CUDA kernels sum in a varying order).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pipeline.distributed import World
from pipeline.loop import AMP_MODES, Phase, evaluate, train_phase
from pipeline.model import ViT, ViTConfig
from pipeline.resume import Checkpointer, rng_state, set_rng_state
from pipeline.transfer import logit_error, transfer

__all__ = [
    "ARMS",
    "TRANSFER_TOLERANCE",
    "TrainConfig",
    "attention_on_targets",
    "load_checkpoint",
    "run_comparison",
    "summarise",
    "train_arm",
]

ARMS = ("scratch", "conv", "two-phase")
TRANSFER_TOLERANCE = 1e-9  # float64 relative logit error of the exact transfer
_PROBE_SIZE = 256  # images on which the transfer identity is checked


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation settings of one comparison (shared by all arms and seeds)."""

    phase1_epochs: int = 30
    phase2_epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    phase2_lr: float | None = None  # None: the same as lr
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    beta: float | None = 20.0  # −β of the phase-2 start (pipeline.transfer); None: exact, frozen
    qk_std: float = 0.02  # std of the random W_Q, W_K of the phase-2 start
    augment: bool = False  # random flips and 4-pixel shifts (CIFAR)
    device: str = "cpu"
    eval_batch_size: int = 1000
    amp: str = "off"  # "bf16" or "fp16": torch.autocast (fp16 with a GradScaler)
    workers: int = 0  # DataLoader workers for ImageFolder data

    def __post_init__(self) -> None:
        for name in ("phase1_epochs", "phase2_epochs", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.phase1_epochs + self.phase2_epochs == 0:
            raise ValueError("phase1_epochs + phase2_epochs must be >= 1, got 0 and 0")
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "phase2_lr", "beta"):
            value = getattr(self, name)
            if value is None and name != "lr":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("weight_decay", "qk_std"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r}: expected one of {AMP_MODES}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {self.workers!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but torch.cuda.is_available() is False; use device='cpu'"
            )

    def phases(self, arm: str) -> list[tuple[str, int, float]]:
        """Return the (mixer, epochs, lr) of each phase of `arm`; every arm has E₁ + E₂ epochs."""
        total = self.phase1_epochs + self.phase2_epochs
        lr2 = self.lr if self.phase2_lr is None else self.phase2_lr
        if arm == "scratch":
            return [("mhsa", total, self.lr)]
        if arm == "conv":
            return [("conv", total, self.lr)]
        if arm == "two-phase":
            return [
                (m, e, lr)
                for m, e, lr in (
                    ("conv", self.phase1_epochs, self.lr),
                    ("mhsa", self.phase2_epochs, lr2),
                )
                if e > 0
            ]
        raise ValueError(f"arm={arm!r}: expected one of {ARMS}")


# -- one arm ---------------------------------------------------------------------------------
def _save(path: Path, model: ViT, **meta: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "vit_config": model.config.to_dict(),
            "mixer": model.mixer_kind,
            **meta,
        },
        path,
    )


def load_checkpoint(path: str | Path, device: str = "cpu") -> ViT:
    """Return the ViT saved at `path` by `train_arm` (read with `torch.load(weights_only=True)`)."""
    state = torch.load(path, map_location=device, weights_only=True)
    config = state["vit_config"]
    config["image_size"] = tuple(config["image_size"])
    model = ViT(ViTConfig(**config), state["mixer"]).to(device)
    model.load_state_dict(state["model"])
    return model


@torch.no_grad()
def _target_masks(exact_vit: ViT) -> list[torch.Tensor]:
    """Return, per layer of an exact transfer, its one-hot attention (N, T, S) as a 0/1 mask.

    With W_Q = W_K = 0 the exact layer's attention depends on positions only: each head puts
    weight 1 on the key at its offset Δ, or on the sink where that key is off the grid.
    """
    masks = []
    for mixer in exact_vit.mixers():
        zeros = torch.zeros(
            1, mixer.num_tokens, mixer.in_dim, dtype=mixer.w_q.dtype, device=mixer.w_q.device
        )
        masks.append((mixer.attention_weights(zeros)[0] > 0.5).float())
    return masks


@torch.no_grad()
def attention_on_targets(model: ViT, images: torch.Tensor, masks: list[torch.Tensor]) -> float:
    """Return the mean attention weight on the transferred target keys (sink at the border).

    1 for the exact transfer, 1 − O(T·e^(−β/2)) for the finite-β start; it falls as phase 2
    learns to attend away from the convolution's offsets. Mean over images, heads, queries, layers.
    """
    tokens = model.embed(images).flatten(2).transpose(1, 2)  # (B, T, d)
    mass = []
    for block, mask in zip(model.blocks, masks, strict=True):
        weights = block.mixer.attention_weights(block.norm1(tokens))  # (B, N, T, S)
        mass.append((weights * mask.to(weights.dtype)).sum(-1).mean().item())
        tokens = block(tokens)
    return sum(mass) / len(mass)


def _model_for(arm: str, phase: int, vit_config: ViTConfig, config: TrainConfig) -> ViT:
    """Return a ViT of the structure the arm has in `phase` (a resumed run loads into it)."""
    mixer = config.phases(arm)[phase - 1][0]
    if arm == "two-phase" and mixer == "mhsa" and config.phase1_epochs > 0:
        return transfer(ViT(vit_config, "conv"), beta=config.beta)  # the transferred layers
    return ViT(vit_config, mixer)


def train_arm(
    arm: str,
    data: object,
    vit_config: ViTConfig,
    config: TrainConfig,
    seed: int,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
    world: World | None = None,
    resume: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Return the record {arm, seed, history, final_test_acc, transfer} of one training run.

    T2 is used at the phase switch of the `two-phase` arm: the exact transfer must
    give the convolutional model's logits to `TRANSFER_TOLERANCE` (float64), else RuntimeError.
    Checkpoints go to `out_dir/checkpoints/{arm}-seed{seed}-phase{n}.pt` when `out_dir` is set.
    `world` runs it data-parallel (`pipeline.distributed`); `on_epoch(state)` gets, after every
    epoch, the arm's whole state, and `resume=state` continues from it (bit for bit on CPU).
    """
    world = world or World(device=torch.device(config.device))
    phases = config.phases(arm)
    device = world.device
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    first_phase = 1 if resume is None else resume["phase"]
    model = _model_for(arm, first_phase, vit_config, config).to(device)
    history: list[dict] = []
    record: dict = {"arm": arm, "seed": seed, "transfer": None}
    masks = None
    if resume is not None:
        model.load_state_dict(resume["model"])
        history, record, masks = list(resume["history"]), dict(resume["record"]), resume["masks"]
        set_rng_state(generator, resume["rng"])
    for n, (mixer, epochs, lr) in enumerate(phases, start=1):
        if n < first_phase:
            continue
        if mixer == "mhsa" and model.mixer_kind == "conv":
            record["transfer"] = _switch(model, data, config, generator, world)
            model, masks = record["transfer"].pop("model"), record["transfer"].pop("masks")

        def checkpoint(state: dict, n: int = n, model: ViT = model, masks: object = masks) -> None:
            history.append(state.pop("record"))
            if on_epoch is not None:
                on_epoch(
                    {
                        **state,
                        "arm": arm,
                        "seed": seed,
                        "phase": n,
                        "model": model.state_dict(),
                        "history": history,
                        "record": record,
                        "masks": masks,
                        "rng": rng_state(generator),
                    }
                )

        phase = Phase(
            epochs=epochs,
            lr=lr,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            warmup_epochs=config.warmup_epochs,
            seed=seed,
            augment=config.augment,
            amp=config.amp,
            eval_batch_size=config.eval_batch_size,
            workers=config.workers,
            first_epoch=sum(e for _, e, _ in phases[: n - 1]),
            phase=n,
            desc=f"{arm} seed {seed} phase {n}/{len(phases)} ({mixer})",
        )
        state = resume if resume is not None and n == first_phase else None
        train_phase(
            model,
            data,
            phase,
            generator=generator,
            world=world,
            progress=progress,
            state=state,
            on_epoch=checkpoint,
        )
        if out_dir is not None and world.main:
            _save(
                Path(out_dir) / "checkpoints" / f"{arm}-seed{seed}-phase{n}.pt",
                model,
                arm=arm,
                seed=seed,
                phase=n,
                epochs=len(history),
            )
    if record["transfer"] is not None and masks is not None and world.main:
        probe = data.normalise(data.probe(_PROBE_SIZE).to(device))  # type: ignore[attr-defined]
        record["transfer"]["attention_on_targets_end"] = attention_on_targets(model, probe, masks)
    record["transfer"] = world.broadcast(record["transfer"])
    record["history"] = history
    record["final_test_acc"] = history[-1]["test_acc"]
    return record


def _switch(
    conv_vit: ViT, data: object, config: TrainConfig, generator: torch.Generator, world: World
) -> dict:
    """Return {model: the phase-2 start, and the measured errors} for a trained `conv_vit`.

    Rank 0 builds the start (its W_Q/W_K draw) and checks the exact transfer in float64; the
    result is broadcast, and DDP then starts every rank from rank 0's weights.
    """
    device = world.device
    if not world.main:
        record = world.broadcast(None)
        if "error" in record:  # type: ignore[operator]
            raise RuntimeError(record["error"])  # type: ignore[index]
        start = transfer(conv_vit, beta=config.beta)  # the structure; DDP sends the weights
        return {**record, "model": start, "masks": None}  # type: ignore[dict-item]
    probe = data.normalise(data.probe(_PROBE_SIZE).to(device))  # type: ignore[attr-defined]
    exact = transfer(conv_vit, dtype=torch.float64)
    exact_error = logit_error(exact, conv_vit, probe)
    if not exact_error <= TRANSFER_TOLERANCE:
        message = (
            f"the exact transfer changed the logits by {exact_error:.3e} (relative, float64) > "
            f"{TRANSFER_TOLERANCE:.0e}: the MHSA model does not equal the convolutional one"
        )
        world.broadcast({"error": message})
        raise RuntimeError(message)
    start = transfer(conv_vit, beta=config.beta, qk_std=config.qk_std, generator=generator)
    _, acc_before = evaluate(conv_vit, data, device, config.eval_batch_size)
    _, acc_after = evaluate(start, data, device, config.eval_batch_size)
    masks = _target_masks(exact)
    record = {
        "exact_logit_error": exact_error,
        "start_logit_error": logit_error(start, conv_vit, probe),
        "beta": config.beta,
        "qk_std": config.qk_std,
        "test_acc_conv": acc_before,
        "test_acc_start": acc_after,
        "attention_on_targets_start": attention_on_targets(start, probe, masks),
    }
    world.broadcast(record)
    return {**record, "model": start, "masks": masks}


# -- the comparison --------------------------------------------------------------------------
def summarise(runs: list[dict]) -> dict[str, dict]:
    """Return per arm {mean, std (sample, n−1), min, max, n, per_seed} of final test accuracy."""
    out: dict[str, dict] = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        accs = [r["final_test_acc"] for r in runs if r["arm"] == arm]
        out[arm] = {
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "min": min(accs),
            "max": max(accs),
            "n": len(accs),
            "per_seed": {str(r["seed"]): r["final_test_acc"] for r in runs if r["arm"] == arm},
        }
    return out


def run_comparison(
    arms: list[str],
    data: object,
    vit_config: ViTConfig,
    config: TrainConfig,
    seeds: list[int],
    out_dir: str | Path,
    *,
    progress: bool = True,
    plot: bool = True,
    world: World | None = None,
    options: dict | None = None,
    resume: dict | None = None,
) -> dict:
    """Return the log of every (arm, seed) run; write `log.json`, `curves.png` and checkpoints.

    The log holds the configs, each run's per-epoch history and transfer errors, and `summary`
    (`summarise`). Written after every epoch with `out_dir/resume.pt` (`pipeline.resume`), so a
    killed comparison continues with `resume=` that state. `options` (the run's settings, for
    the resume check) default to the configs. Rank 0 alone writes.
    """
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"arm={arm!r}: expected one of {ARMS}")
    if not seeds:
        raise ValueError("seeds must name at least one seed, got []")
    world = world or World(device=torch.device(config.device))
    out = Path(out_dir)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    options = options or {"vit_config": vit_config.to_dict(), "train_config": asdict(config)}
    log = (
        resume["log"]
        if resume is not None
        else {
            "dataset": data.name,  # type: ignore[attr-defined]
            "train_size": len(data.train_y),  # type: ignore[attr-defined]
            "test_size": len(data.test_y),  # type: ignore[attr-defined]
            "vit_config": vit_config.to_dict(),
            "train_config": asdict(config),
            "arms": list(arms),
            "seeds": list(seeds),
            "parameters": {
                m: sum(p.numel() for p in ViT(vit_config, m).parameters()) for m in ("conv", "mhsa")
            },
            "environment": {
                "torch": str(torch.__version__),
                "threads": torch.get_num_threads(),
                "device": config.device,
                "world_size": world.size,
            },
            "runs": [],
            "seconds": 0.0,
        }
    )
    saver = Checkpointer(out, options, log, world)
    started = time.perf_counter() - log["seconds"]
    done = {(r["arm"], r["seed"]) for r in log["runs"]}
    current = resume["current"] if resume is not None else None
    for seed in seeds:
        for arm in arms:
            if (arm, seed) in done:
                continue
            state = (
                current if current and (current["arm"], current["seed"]) == (arm, seed) else None
            )
            log["runs"].append(
                train_arm(
                    arm,
                    data,
                    vit_config,
                    config,
                    seed,
                    out_dir=out,
                    progress=progress,
                    world=world,
                    resume=state,
                    on_epoch=saver.save,
                )
            )
            log["summary"] = summarise(log["runs"])
            log["seconds"] = time.perf_counter() - started
            saver.save(None)
    if plot and world.main:
        from pipeline.plots import write_curves

        write_curves(log, out / "curves.png")
    return log
