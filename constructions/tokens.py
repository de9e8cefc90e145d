"""Token layouts (paper_notes, Conventions): position tokens and patch tokens, d ∈ {1, 2, 3} axes.

Dimension letters: B batch, C channels, (n_1, …, n_d) input size, P_a patch size on axis a,
g_a = n_a/P_a the token grid.

* tokens of single positions (`patch_size=None`): `(B, Πn_a, C)`, row-major over the axes
  (2-D: `t = y·W + x`);
* patch tokens: `(B, Πg_a, ΠP_a·C)`, patches row-major, each flattened in
  `(p_1, …, p_d, channel)` order — einops `b c (h p1) (w p2) -> b (h w) (p1 p2 c)` in 2-D.

The 2-D names (`image_to_pixels`, `image_to_patches` and their inverses) are the d = 2 case.

>>> import torch
>>> x = torch.arange(2 * 4 * 6.).reshape(1, 2, 4, 6)
>>> image_to_patches(x, 2).shape, image_to_pixels(x).shape
(torch.Size([1, 6, 8]), torch.Size([1, 24, 2]))
>>> bool((patches_to_image(image_to_patches(x, 2), 2, (4, 6)) == x).all())
True
>>> to_tokens(torch.zeros(1, 3, 4, 32, 32), (2, 16, 16)).shape   # video tubelets
torch.Size([1, 8, 1536])
"""

from __future__ import annotations

import torch
from einops import rearrange

from constructions.validate import SPATIAL_DIMS, per_axis, positive_int, positive_pair

__all__ = [
    "from_tokens",
    "image_to_patches",
    "image_to_pixels",
    "patch_grid",
    "patches_to_image",
    "pixels_to_image",
    "to_tokens",
]

_AXES = ("n1", "n2", "n3")
_PATCH = ("p1", "p2", "p3")


def _check_tensor(x: object, name: str, ndims: tuple[int, ...], layout: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim not in ndims:
        raise ValueError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")
    return x


def patch_grid(
    input_size: tuple[int, ...], patch_size: tuple[int, ...], name: str = "input size"
) -> tuple[int, ...]:
    """Return the token grid n_a/P_a per axis, or raise if a patch does not divide its axis.

    `name` is how errors call the size: a parameter (`image_size`) or words (`input size`).
    """
    shown = f"{name}={input_size}" if "_" in name else f"{name} {input_size}"
    for a, (n, P) in enumerate(zip(input_size, patch_size, strict=True)):
        if P > n:
            raise ValueError(f"patch_size={patch_size} is larger than {shown} on axis {a}")
        if n % P:
            raise ValueError(
                f"{shown} is not divisible by patch_size={patch_size} on axis "
                f"{a} ({n} % {P} = {n % P}): patch tokens need every side to be a multiple of "
                "its patch size"
            )
    return tuple(n // P for n, P in zip(input_size, patch_size, strict=True))


def _patterns(dims: int, patched: bool) -> tuple[str, str]:
    """Return the einops patterns (input side, token side) of d axes."""
    if not patched:
        axes = " ".join(_AXES[:dims])
        return f"b c {axes}", f"b ({axes}) c"
    spatial = " ".join(f"({n} {p})" for n, p in zip(_AXES[:dims], _PATCH[:dims], strict=True))
    grid, inner = " ".join(_AXES[:dims]), " ".join(_PATCH[:dims])
    return f"b c {spatial}", f"b ({grid}) ({inner} c)"


def to_tokens(x: torch.Tensor, patch_size: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """Return the tokens of an input `(B, C, n_1, …, n_d)`, d ∈ {1, 2, 3}. Conventions above.

    `patch_size=None` gives one token per position `(B, Πn_a, C)`; an int or a tuple per axis
    gives patch tokens `(B, Π(n_a/P_a), ΠP_a·C)`.
    """
    x = _check_tensor(x, "x", tuple(d + 2 for d in SPATIAL_DIMS), "(B, C, n_1, …, n_d), d ≤ 3")
    dims = x.ndim - 2
    source, tokens = _patterns(dims, patch_size is not None)
    if patch_size is None:
        return rearrange(x, f"{source} -> {tokens}")
    Ps = per_axis(patch_size, "patch_size", dims)
    patch_grid(tuple(x.shape[2:]), Ps)
    return rearrange(x, f"{source} -> {tokens}", **dict(zip(_PATCH, Ps, strict=False)))


def from_tokens(
    t: torch.Tensor,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    input_size: int | tuple[int, ...],
) -> torch.Tensor:
    """Return the input `(B, C, n_1, …, n_d)` whose tokens are `t` (the inverse of `to_tokens`).

    `input_size` is (n_1, …, n_d); an int means a 2-D square input.
    """
    t = _check_tensor(t, "t", (3,), "(B, tokens, width)")
    dims = len(input_size) if isinstance(input_size, (tuple, list)) else 2
    if dims not in SPATIAL_DIMS:
        raise ValueError(f"input_size={input_size!r}: 1, 2 or 3 spatial axes are supported")
    size = per_axis(input_size, "input_size", dims)
    Ps = (1,) * dims if patch_size is None else per_axis(patch_size, "patch_size", dims)
    grid = patch_grid(size, Ps)
    count, inner = 1, 1
    for g, P in zip(grid, Ps, strict=True):
        count, inner = count * g, inner * P
    if t.shape[1] != count:
        raise ValueError(
            f"t has {t.shape[1]} tokens but input_size={size} with patch_size={patch_size} "
            f"needs {count}"
        )
    if t.shape[2] % inner:
        raise ValueError(f"t has token width {t.shape[2]}, not a multiple of ΠP = {inner}")
    source, tokens = _patterns(dims, patch_size is not None)
    sizes = dict(zip(_AXES, grid, strict=False))
    if patch_size is not None:
        sizes.update(zip(_PATCH, Ps, strict=False))
    return rearrange(t, f"{tokens} -> {source}", **sizes)


def image_to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Return the pixel tokens `(B, H·W, C)` of an image `(B, C, H, W)`."""
    return to_tokens(_check_tensor(x, "x", (4,), "(B, C, H, W)"))


def pixels_to_image(t: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Return the image `(B, C, H, W)` whose pixel tokens are `t` `(B, H·W, C)`."""
    t = _check_tensor(t, "t", (3,), "(B, H·W, C)")
    H, W = positive_pair(image_size, "image_size")
    if t.shape[1] != H * W:
        raise ValueError(f"t has {t.shape[1]} tokens but image_size={(H, W)} needs H·W = {H * W}")
    return from_tokens(t, input_size=(H, W))


def image_to_patches(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Return the patch tokens `(B, h·w, P·P·C)` of an image `(B, C, H, W)`.

    Same as einops `b c (h p1) (w p2) -> b (h w) (p1 p2 c)`; H and W must be multiples of P.
    """
    x = _check_tensor(x, "x", (4,), "(B, C, H, W)")
    return to_tokens(x, positive_int(patch_size, "patch_size"))


def patches_to_image(
    t: torch.Tensor, patch_size: int, image_size: int | tuple[int, int]
) -> torch.Tensor:
    """Return the image `(B, C, H, W)` whose patch tokens are `t` `(B, h·w, P·P·C)`."""
    t = _check_tensor(t, "t", (3,), "(B, h·w, P·P·C)")
    P = positive_int(patch_size, "patch_size")
    return from_tokens(t, P, input_size=positive_pair(image_size, "image_size"))
