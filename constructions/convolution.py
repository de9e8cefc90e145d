"""The convolutions the constructions accept (paper_notes, Conventions), read off an `nn.ConvNd`.

`nn.Conv1d`, `nn.Conv2d` and `nn.Conv3d` with zero or circular padding, any dilation, groups,
bias, kernel shape, and any stride s_a and padding p_a per axis whose output grid is the input
grid divided by the stride (n_a/s_a): stride 1 with `padding='same'` (or the explicit amounts that
equal it), ResNet's 3×3/s2/p1, 7×7/s2/p3 and 1×1/s2/p0, patchify stems (k = s, p = 0).
Everything else is rejected with an error that names the parameter, its value and what is
allowed. The stride, padding, dilation and kernel are normalised here, once: every later function
reads them from the `ConvSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ConvSpec", "conv_spec", "output_grid_padding", "stride_one_spec"]

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution: what the constructions need from a ConvNd, per axis."""

    weight: torch.Tensor  # (D, C/groups, *k)
    bias: torch.Tensor | None  # (D,)
    dilation: tuple[int, ...]
    groups: int
    circular: bool
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # (before, after) per axis

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
    def pad(self) -> tuple[int, ...]:
        """Return the padding p_a before each axis: tap i has offset δ_i = i·d − p."""
        return tuple(before for before, _ in self.padding)

    @property
    def strided(self) -> bool:
        return any(s != 1 for s in self.stride)


def output_grid_padding(k: int, dilation: int, stride: int, total: int) -> bool:
    """Return whether padding `total` (before + after) gives n/s outputs for every n with s | n.

    PyTorch's output count is ⌊(n + total − d·(k−1) − 1)/s⌋ + 1, which equals n/s exactly when
    d·(k−1) + 1 − s ≤ total ≤ d·(k−1), whatever n is.
    """
    span = dilation * (k - 1)
    return span + 1 - stride <= total <= span


def _paddings(conv: nn.Module, dims: int) -> tuple[tuple[int, int], ...]:
    """Return (before, after) per axis of `conv.padding` ('same', 'valid' or integers)."""
    ks, ds = tuple(conv.weight.shape[2:]), tuple(conv.dilation)
    if conv.padding == "same":  # stride 1 only (PyTorch enforces it)
        totals = [d * (k - 1) for k, d in zip(ks, ds, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)
    amounts = (0,) * dims if conv.padding == "valid" else tuple(conv.padding)
    return tuple((p, p) for p in amounts)


def conv_spec(conv: nn.Module) -> ConvSpec:
    """Return the `ConvSpec` of `conv`, or raise if the constructions do not cover it."""
    if not isinstance(conv, CONV_TYPES):
        raise TypeError(
            f"conv must be a torch.nn.Conv1d, Conv2d or Conv3d, got {type(conv).__name__}"
        )
    dims = conv.weight.ndim - 2
    if conv.padding_mode not in ("zeros", "circular"):
        raise ValueError(
            f"conv.padding_mode={conv.padding_mode!r}: only 'zeros' and 'circular' are supported"
        )
    if not conv.weight.dtype.is_floating_point:
        raise TypeError(f"conv.weight has dtype {conv.weight.dtype}; a floating dtype is needed")
    padding = _paddings(conv, dims)
    stride = tuple(int(s) for s in conv.stride)
    for a, (k, d, s, (before, after)) in enumerate(
        zip(conv.weight.shape[2:], conv.dilation, stride, padding, strict=True)
    ):
        if not output_grid_padding(k, d, s, before + after):
            span = d * (k - 1)
            low, high = max(0, -(-(span + 1 - s) // 2)), span // 2
            fix = (
                f"padding={low}" + (f"..{high}" if high > low else "")
                if low <= high
                else "no symmetric padding"
            )
            raise ValueError(
                f"conv.padding={conv.padding!r} with kernel_size={tuple(conv.kernel_size)}, "
                f"stride={stride}, dilation={tuple(conv.dilation)}: on axis {a} the output grid "
                f"is not the input grid divided by the stride (n/{s}), so no token-to-token "
                f"layer matches it; {fix} gives n/{s} outputs"
            )
    return ConvSpec(
        weight=conv.weight.detach(),
        bias=None if conv.bias is None else conv.bias.detach(),
        dilation=tuple(int(d) for d in conv.dilation),
        groups=conv.groups,
        circular=conv.padding_mode == "circular",
        stride=stride,
        padding=padding,
    )


def stride_one_spec(conv: nn.Module, what: str) -> ConvSpec:
    """Return the `ConvSpec` of `conv`, or raise if it is strided: `what` supports stride 1 only."""
    spec = conv_spec(conv)
    if spec.strided:
        raise ValueError(
            f"conv.stride={spec.stride}: {what} supports stride 1 only (the head bounds, "
            "certificates and constructions take any stride)"
        )
    return spec
