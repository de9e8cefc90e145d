"""Data parallelism for the pipeline: `torch.distributed` + DistributedDataParallel under torchrun.

`torchrun --nproc_per_node W -m pipeline train …` sets RANK, WORLD_SIZE and LOCAL_RANK; `setup`
reads them and joins the process group (`nccl` on CUDA, `gloo` on CPU), even for W = 1. Without
torchrun the world is one process and nothing here touches `torch.distributed`. Every rank
trains on its `DistributedSampler` shard; DDP all-reduces (averages) the gradients; rank 0 alone
evaluates, logs and writes files, and broadcasts what the others need.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["World", "setup"]

CPU = torch.device("cpu")


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank, world size, local rank and its device."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = CPU
    launched: bool = False  # started by torchrun: the process group is up, DDP wraps the model

    @property
    def distributed(self) -> bool:
        """Return whether this process is in a process group (torchrun; any world size)."""
        return self.launched

    @property
    def main(self) -> bool:
        """Return whether this is rank 0, which logs, evaluates and saves."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """Return `model` wrapped in DDP when distributed (DDP broadcasts rank 0's weights)."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, *values: torch.Tensor) -> list[torch.Tensor]:
        """Return the sums of `values` over all ranks (the values themselves in one process)."""
        if not self.distributed:
            return list(values)
        stacked = torch.stack([v.to(torch.float64) for v in values]).to(self.device)
        dist.all_reduce(stacked)
        return list(stacked.unbind())

    def broadcast(self, obj: object) -> object:
        """Return rank 0's `obj` on every rank (any picklable object)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def close(self) -> None:
        """Leave the process group (if this process joined one)."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str) -> World:
    """Return the World of this process, joining the process group when run under torchrun.

    `device` is "cpu", "cuda" or "cuda:N"; under torchrun "cuda" means cuda:LOCAL_RANK.
    """
    dev = torch.device(device)
    if "WORLD_SIZE" not in os.environ or "LOCAL_RANK" not in os.environ:
        return World(device=dev)  # not under torchrun: one process, no process group
    size = int(os.environ["WORLD_SIZE"])
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ["LOCAL_RANK"])
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    # A 1-channel conv weight's gradient has equivalent but different strides from DDP's bucket
    # view; PyTorch says so on every step ("not an error"). Nothing else is silenced.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return World(rank=rank, size=size, local_rank=local, device=dev, launched=True)
