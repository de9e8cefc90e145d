"""Per-channel normalisation of uint8 image batches, shared by in-memory and folder datasets."""

from __future__ import annotations

import torch


def normalised(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, max_value: float
) -> torch.Tensor:
    """Return (x / max_value − mean) / std as float32, per channel (dim −3), on x's device."""
    mean = mean.to(x.device)[:, None, None]
    std = std.to(x.device)[:, None, None]
    return (x.float() / max_value - mean) / std
