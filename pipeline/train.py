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

import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipeline.data import ImageData
from pipeline.model import ViT, ViTConfig
from pipeline.transfer import logit_error, transfer

__all__ = [
    "ARMS",
    "TRANSFER_TOLERANCE",
    "TrainConfig",
    "attention_on_targets",
    "evaluate",
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


# -- one phase -------------------------------------------------------------------------------
def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Return AdamW groups: decay on weight matrices, none on biases, norms and bias tables."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        no_decay = p.ndim < 2 or leaf in ("rel_bias", "sink_bias") or leaf.startswith("b_")
        (plain if no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def _schedule(step: int, total: int, warmup: int) -> float:
    """Return the learning-rate factor at `step`: linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _augment(x: torch.Tensor, generator: torch.Generator, shift: int = 4) -> torch.Tensor:
    """Return x (B, C, H, W) randomly flipped left-right and shifted by up to `shift` pixels."""
    B, _, H, W = x.shape
    flip = torch.rand(B, generator=generator) < 0.5
    dy, dx = (torch.randint(0, 2 * shift + 1, (2, B), generator=generator)).to(x.device)
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (shift, shift, shift, shift))  # zeros = the mean after normalising
    rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageData,
    device: torch.device,
    batch_size: int = 1000,
    split: str = "test",
) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of `model` on the `split` images of `data`."""
    xs, ys = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for start in range(0, len(ys), batch_size):
        x = data.normalise(xs[start : start + batch_size].to(device))
        y = ys[start : start + batch_size].to(device)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    return loss.item() / len(ys), correct.item() / len(ys)


def _train_phase(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    *,
    epochs: int,
    lr: float,
    generator: torch.Generator,
    device: torch.device,
    desc: str,
    first_epoch: int,
    phase: int,
    progress: bool,
) -> list[dict]:
    """Train `model` in place for `epochs` epochs; return one record per epoch."""
    n = len(data.train_y)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = epochs * steps_per_epoch
    warmup = min(config.warmup_epochs * steps_per_epoch, total // 2)
    optimiser = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _schedule(s, total, warmup))
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    history = []
    bar = tqdm(
        range(epochs),
        desc=desc,
        file=sys.stderr,
        disable=not progress,
        leave=True,
        dynamic_ncols=True,
    )
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        current_lr = scheduler.get_last_lr()[0]
        for s in range(steps_per_epoch):
            idx = order[s * config.batch_size : (s + 1) * config.batch_size]
            x = data.normalise(train_x[idx])
            if config.augment:
                x = _augment(x, generator)
            y = train_y[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            loss_sum += loss.detach().double() * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
        train_loss = loss_sum.item() / n
        if not math.isfinite(train_loss):
            raise RuntimeError(
                f"{desc}: the training loss became {train_loss} at epoch "
                f"{epoch + 1}; lower the learning rate (lr={lr})"
            )
        test_loss, test_acc = evaluate(model, data, device, config.eval_batch_size)
        record = dict(
            epoch=first_epoch + epoch + 1,
            phase=phase,
            lr=current_lr,
            train_loss=train_loss,
            train_acc=correct.item() / n,
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=time.perf_counter() - start,
        )
        history.append(record)
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.3f}")
    bar.close()
    return history


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


def train_arm(
    arm: str,
    data: ImageData,
    vit_config: ViTConfig,
    config: TrainConfig,
    seed: int,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Return the record {arm, seed, history, final_test_acc, transfer} of one training run.

    T2 is used at the phase switch of the `two-phase` arm: the exact transfer must
    give the convolutional model's logits to `TRANSFER_TOLERANCE` (float64), else RuntimeError.
    Checkpoints go to `out_dir/checkpoints/{arm}-seed{seed}-phase{n}.pt` when `out_dir` is set.
    """
    phases = config.phases(arm)
    device = torch.device(config.device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ViT(vit_config, phases[0][0]).to(device)
    history: list[dict] = []
    record: dict = {"arm": arm, "seed": seed, "transfer": None}
    for n, (mixer, epochs, lr) in enumerate(phases, start=1):
        if mixer == "mhsa" and model.mixer_kind == "conv":
            record["transfer"] = _switch(model, data, config, generator, device)
            model, masks = record["transfer"].pop("model"), record["transfer"].pop("masks")
        desc = f"{arm} seed {seed} phase {n}/{len(phases)} ({mixer})"
        history += _train_phase(
            model,
            data,
            config,
            epochs=epochs,
            lr=lr,
            generator=generator,
            device=device,
            desc=desc,
            first_epoch=len(history),
            phase=n,
            progress=progress,
        )
        if out_dir is not None:
            _save(
                Path(out_dir) / "checkpoints" / f"{arm}-seed{seed}-phase{n}.pt",
                model,
                arm=arm,
                seed=seed,
                phase=n,
                epochs=len(history),
            )
    if record["transfer"] is not None:
        probe = data.normalise(data.test_x[:_PROBE_SIZE].to(device))
        record["transfer"]["attention_on_targets_end"] = attention_on_targets(model, probe, masks)
    record["history"] = history
    record["final_test_acc"] = history[-1]["test_acc"]
    return record


def _switch(
    conv_vit: ViT,
    data: ImageData,
    config: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
) -> dict:
    """Return {model: the phase-2 start, and the measured errors} for a trained `conv_vit`."""
    probe = data.normalise(data.test_x[:_PROBE_SIZE].to(device))
    exact = transfer(conv_vit, dtype=torch.float64)
    exact_error = logit_error(exact, conv_vit, probe)
    if not exact_error <= TRANSFER_TOLERANCE:
        raise RuntimeError(
            f"the exact transfer changed the logits by {exact_error:.3e} (relative, float64) > "
            f"{TRANSFER_TOLERANCE:.0e}: the MHSA model does not equal the convolutional one"
        )
    start = transfer(conv_vit, beta=config.beta, qk_std=config.qk_std, generator=generator)
    _, acc_before = evaluate(conv_vit, data, device, config.eval_batch_size)
    _, acc_after = evaluate(start, data, device, config.eval_batch_size)
    masks = _target_masks(exact)
    return {
        "model": start,
        "masks": masks,
        "exact_logit_error": exact_error,
        "start_logit_error": logit_error(start, conv_vit, probe),
        "beta": config.beta,
        "qk_std": config.qk_std,
        "test_acc_conv": acc_before,
        "test_acc_start": acc_after,
        "attention_on_targets_start": attention_on_targets(start, probe, masks),
    }


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
    data: ImageData,
    vit_config: ViTConfig,
    config: TrainConfig,
    seeds: list[int],
    out_dir: str | Path,
    *,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    """Return the log of every (arm, seed) run; write `log.json`, `curves.png` and checkpoints.

    The log holds the configs, each run's per-epoch history and transfer errors, and `summary`
    (`summarise`). Written after every run, so an interrupted comparison keeps what it has.
    """
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"arm={arm!r}: expected one of {ARMS}")
    if not seeds:
        raise ValueError("seeds must name at least one seed, got []")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = {
        "dataset": data.name,
        "train_size": len(data.train_y),
        "test_size": len(data.test_y),
        "vit_config": vit_config.to_dict(),
        "train_config": asdict(config),
        "arms": list(arms),
        "seeds": list(seeds),
        "parameters": {
            m: sum(p.numel() for p in ViT(vit_config, m).parameters()) for m in ("conv", "mhsa")
        },
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": config.device,
        },
        "runs": [],
    }
    started = time.perf_counter()
    for seed in seeds:
        for arm in arms:
            log["runs"].append(
                train_arm(arm, data, vit_config, config, seed, out_dir=out, progress=progress)
            )
            log["summary"] = summarise(log["runs"])
            log["seconds"] = time.perf_counter() - started
            (out / "log.json").write_text(json.dumps(log, indent=1))
    if plot:
        from pipeline.plots import write_curves

        write_curves(log, out / "curves.png")
    return log
