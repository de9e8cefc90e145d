"""Argument checks shared by `theory` and `constructions`: clear errors that name the parameter."""

from __future__ import annotations

import numbers

__all__ = ["positive_int", "positive_pair"]


def positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return `value` as an int, or raise naming `name`, the value and what is allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_pair(value: object, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return `value` (an int or a pair of ints) as a pair of ints >= `minimum`."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
        return (
            positive_int(value[0], name, minimum=minimum),
            positive_int(value[1], name, minimum=minimum),
        )
    v = positive_int(value, name, minimum=minimum)
    return (v, v)
