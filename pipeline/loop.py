"""One training phase: AdamW + warm-up/cosine schedule, data-parallel shards, mixed precision.

`train_phase` is the inner loop every arm of `pipeline.train` and `pipeline.finetune` runs. Per
epoch each rank takes its `DistributedSampler` shard (seed = the run's seed, reshuffled per
epoch by `set_epoch`) in batches of batch/W, so the global batch of step t is the same set of
images at every world size W that divides the training-set size; DDP averages the gradients.
The loss and accuracy are summed over ranks; rank 0 alone evaluates and broadcasts the result.
`amp` is "off", "bf16" (autocast) or "fp16" (autocast + GradScaler). After every epoch
`on_epoch` gets what a resumed run needs (optimiser, schedule and scaler states).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from pipeline.distributed import World

__all__ = ["AMP_MODES", "Phase", "autocast", "evaluate", "param_groups", "train_phase"]

AMP_MODES = ("off", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Phase:
    """What one phase needs besides the model and data: its length, rate and settings."""

    epochs: int
    lr: float
    batch_size: int  # global: each of W ranks takes batch_size / W
    weight_decay: float
    warmup_epochs: int
    seed: int  # the DistributedSampler's seed
    augment: bool = False  # the in-memory flips and shifts (ImageFolder data augments itself)
    amp: str = "off"
    eval_batch_size: int = 1000
    workers: int = 0
    first_epoch: int = 0  # epochs of the run before this phase (sampler epochs, the log)
    phase: int = 1
    desc: str = ""


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Return the autocast context of `amp` on `device` (a null context for "off")."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Return AdamW groups: decay on weight matrices, none on biases, norms and bias tables."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        no_decay = p.ndim < 2 or leaf in ("rel_bias", "sink_bias") or leaf.startswith("b_")
        (plain if no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def schedule(step: int, total: int, warmup: int) -> float:
    """Return the learning-rate factor at `step`: linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def augment_batch(x: torch.Tensor, generator: torch.Generator, shift: int = 4) -> torch.Tensor:
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
    data: object,
    device: torch.device,
    batch_size: int = 1000,
    split: str = "test",
    amp: str = "off",
    workers: int = 0,
) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of `model` on the `split` images of `data`."""
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    pin = device.type == "cuda"
    for x, y in data.batches(split, batch_size, workers=workers, pin_memory=pin):  # type: ignore[attr-defined]
        x = data.normalise(x.to(device, non_blocking=pin))  # type: ignore[attr-defined]
        y = y.to(device, non_blocking=pin)
        with autocast(device, amp):
            logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    return loss.item() / count, correct.item() / count


def train_phase(
    model: nn.Module,
    data: object,
    phase: Phase,
    *,
    generator: torch.Generator,
    world: World,
    progress: bool = True,
    state: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train `model` in place for the phase's epochs; return one record per epoch trained.

    `state` (from an earlier `on_epoch`) resumes after its epoch: optimiser, schedule and
    scaler states are restored and the finished epochs are skipped.
    """
    device = world.device
    n = len(data.train_y)  # type: ignore[attr-defined]
    sampler = DistributedSampler(
        range(n), num_replicas=world.size, rank=world.rank, shuffle=True, seed=phase.seed
    )
    local_batch = phase.batch_size // world.size
    steps_per_epoch = math.ceil(len(sampler) / local_batch)
    total = phase.epochs * steps_per_epoch
    warmup = min(phase.warmup_epochs * steps_per_epoch, total // 2)
    optimiser = torch.optim.AdamW(param_groups(model, phase.weight_decay), lr=phase.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: schedule(s, total, warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=phase.amp == "fp16")
    done = 0
    if state is not None:
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        done = state["epoch"]
    net = world.wrap(model)
    pin = device.type == "cuda"
    history = []
    bar = tqdm(
        range(done, phase.epochs),
        desc=phase.desc,
        file=sys.stderr,
        disable=not (progress and world.main),
        leave=True,
        dynamic_ncols=True,
    )
    for epoch in bar:
        start = time.perf_counter()
        net.train()
        sampler.set_epoch(phase.first_epoch + epoch)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        current_lr = scheduler.get_last_lr()[0]
        batches = data.batches(
            "train",
            local_batch,
            sampler,
            workers=phase.workers,  # type: ignore[attr-defined]
            pin_memory=pin,
        )
        for x, y in batches:
            x = data.normalise(x.to(device, non_blocking=pin))  # type: ignore[attr-defined]
            y = y.to(device, non_blocking=pin)
            if phase.augment and not data.augments_itself:  # type: ignore[attr-defined]
                x = augment_batch(x, generator)
            with autocast(device, phase.amp):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        loss_sum, correct_sum, seen_sum = world.sum(
            loss_sum, correct.double(), torch.tensor(float(seen))
        )
        train_loss = loss_sum.item() / seen_sum.item()
        if not math.isfinite(train_loss):
            raise RuntimeError(
                f"{phase.desc}: the training loss became {train_loss} at epoch "
                f"{phase.first_epoch + epoch + 1}; lower the learning rate (lr={phase.lr})"
            )
        scores = None
        if world.main:
            scores = evaluate(
                model, data, device, phase.eval_batch_size, amp=phase.amp, workers=phase.workers
            )
        test_loss, test_acc = world.broadcast(scores)  # type: ignore[misc]
        record = dict(
            epoch=phase.first_epoch + epoch + 1,
            phase=phase.phase,
            lr=current_lr,
            train_loss=train_loss,
            train_acc=correct_sum.item() / seen_sum.item(),
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=time.perf_counter() - start,
        )
        history.append(record)
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.3f}")
        if on_epoch is not None:
            on_epoch(
                {
                    "epoch": epoch + 1,
                    "record": record,
                    "optimizer": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                }
            )
    bar.close()
    return history
