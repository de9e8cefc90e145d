"""Argument checks shared by every package: clear errors that name the parameter.

Each check returns the value in canonical form or raises `TypeError` (wrong type) / `ValueError`
(wrong value) with a message that names the parameter, the value and what is allowed. Sizes are
capped (`MAX_SIZE`) so that an absurd number is rejected at once instead of after minutes of work
or a raw `OverflowError` from numpy.

>>> per_axis(3, "kernel_size", 3)
(3, 3, 3)
>>> per_axis((16, 8), "patch_size", 2)
(16, 8)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

__all__ = [
    "MAX_SIZE",
    "SPATIAL_DIMS",
    "infer_dims",
    "per_axis",
    "positive_int",
    "positive_pair",
]

MAX_SIZE = 1 << 31  # every size (kernel, dilation, patch, channels, grid) is at most 2³¹
SPATIAL_DIMS = (1, 2, 3)  # Conv1d, Conv2d, Conv3d


def positive_int(
    value: object, name: str, *, minimum: int = 1, maximum: int | None = MAX_SIZE
) -> int:
    """Return `value` as an int in [minimum, maximum], or raise naming `name`, value and range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value} is too large: at most {maximum} is supported")
    return int(value)


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def infer_dims(*values: object, default: int = 2) -> int:
    """Return the number of spatial axes d: the length of the first sequence among `values`."""
    for value in values:
        if _is_sequence(value):
            d = len(value)
            if d not in SPATIAL_DIMS:
                raise ValueError(f"{value!r} has {d} entries: 1, 2 or 3 spatial axes are supported")
            return d
    return default


def per_axis(value: object, name: str, dims: int, *, minimum: int = 1) -> tuple[int, ...]:
    """Return `value` (an int, or a sequence of `dims` ints) as `dims` ints >= `minimum`."""
    if _is_sequence(value):
        if len(value) != dims:
            raise ValueError(
                f"{name}={tuple(value)!r} has {len(value)} entries, but the input has {dims} "
                f"spatial axes: give one integer or {dims} of them"
            )
        return tuple(positive_int(v, name, minimum=minimum) for v in value)
    return (positive_int(value, name, minimum=minimum),) * dims


def positive_pair(value: object, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return `value` (an int or a pair of ints) as a pair of ints >= `minimum` (2-D callers)."""
    if _is_sequence(value) and len(value) != 2:
        raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return per_axis(value, name, 2, minimum=minimum)  # type: ignore[return-value]
