"""A tiny CNN for the finetune checks (`--model checks.tiny_cnn:tiny_cnn`): conv, BN, a stride."""

from __future__ import annotations

from torch import nn


def tiny_cnn(num_classes: int = 3) -> nn.Module:
    """Return conv3×3 → BN → ReLU → conv3×3/s2 → ReLU → global pool → linear."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )
