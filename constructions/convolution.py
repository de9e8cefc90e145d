"""The convolutions the constructions accept (paper_notes, Conventions), read off an `nn.ConvNd`.

`nn.Conv1d`, `nn.Conv2d` and `nn.Conv3d` with stride 1, `padding='same'` (or the explicit amounts
that equal it), zero or circular padding, any dilation, groups, bias, kernel shape. Everything
else is rejected with an error that names the parameter, its value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ConvSpec", "conv_spec"]

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ConvSpec:
    """A validated stride-1 'same' convolution: what the constructions need from a ConvNd."""

    weight: torch.Tensor  # (D, C/groups, *k)
    bias: torch.Tensor | None  # (D,)
    dilation: tuple[int, ...]
    groups: int
    circular: bool

    @property
    def dims(self) -> int:
        """The number of spatial axes d (1, 2 or 3)."""
        return self.weight.ndim - 2

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        """Return (before, after) per axis: PyTorch's 'same' amounts d·(k−1)//2 and the rest."""
        amounts = []
        for k, d in zip(self.kernel_size, self.dilation, strict=True):
            total = d * (k - 1)
            amounts.append((total // 2, total - total // 2))
        return tuple(amounts)


def conv_spec(conv: nn.Module) -> ConvSpec:
    """Return the `ConvSpec` of `conv`, or raise if the constructions do not cover it."""
    if not isinstance(conv, CONV_TYPES):
        raise TypeError(
            f"conv must be a torch.nn.Conv1d, Conv2d or Conv3d, got {type(conv).__name__}"
        )
    dims = conv.weight.ndim - 2
    if tuple(conv.stride) != (1,) * dims:
        raise ValueError(f"conv.stride={tuple(conv.stride)}: only stride 1 is supported")
    if conv.padding_mode not in ("zeros", "circular"):
        raise ValueError(
            f"conv.padding_mode={conv.padding_mode!r}: only 'zeros' and 'circular' are supported"
        )
    if not conv.weight.dtype.is_floating_point:
        raise TypeError(f"conv.weight has dtype {conv.weight.dtype}; a floating dtype is needed")
    spec = ConvSpec(
        weight=conv.weight.detach(),
        bias=None if conv.bias is None else conv.bias.detach(),
        dilation=tuple(conv.dilation),
        groups=conv.groups,
        circular=conv.padding_mode == "circular",
    )
    if conv.padding != "same":
        same = tuple(before for before, _ in spec.padding)
        symmetric = all(before == after for before, after in spec.padding)
        explicit = (0,) * dims if conv.padding == "valid" else tuple(conv.padding)
        if not (symmetric and explicit == same):
            raise ValueError(
                f"conv.padding={conv.padding!r}: only padding='same' is supported"
                + (f" (or its explicit equal {same})" if symmetric else "")
            )
    return spec
