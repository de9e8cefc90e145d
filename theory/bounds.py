"""Head-count bounds: T1/T2 (sufficient) and T3 (necessary), for a kernel shape or a kernel, d ≤ 3.

T3 (paper_notes): a layer equal to the convolution on a grid where offsets do not alias, whose
extra keys have zero content, has M_Δ = Σ_h a^h(Δ) W_V^h W_O^h with position-only weights
a^h ≥ 0, so N_h ≥ s = dim span{M_Δ} = rank G (`theory.coefficients`), and N_h·D_h ≥ the rank of
the vertical and horizontal stacks of the M_Δ.

For a kernel *shape* the bound is the generic value s. The term rank of G's zero pattern (the
structural bound, `structural_bound`) bounds s from above for every kernel of the shape; a
witness kernel bounds it from below. The structured witness of `theory.witnesses` (an identity
minor, no matrix built) meets the structural bound in the usual cases, which proves s at any
size (pixel k = 63 with C = D = 63, ViT patches with C = D = 768); where it does not (few channels
and a kernel much wider than the patch, some dilated or even kernels), a random integer witness
and an exact FLINT rank give s (`HeadBounds.tight` says whether it meets the structural bound).

>>> heads_necessary(5, 16, in_channels=8, out_channels=8), heads_necessary(3)
(9, 1)
>>> heads_necessary((3, 3, 3), (2, 16, 16)), heads_necessary(7, 4, dims=1)
(27, 3)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from constructions.convolution import CONV_TYPES, conv_spec, output_grid_padding
from constructions.geometry import axis_paddings, centred_padding, neighbourhood_size
from constructions.validate import SPATIAL_DIMS, infer_dims, per_axis, positive_int
from theory.coefficients import (
    coefficient_matrix,
    live_coefficients,
    live_pattern,
    patch_block,
    stacked_maps,
    term_rank,
)
from theory.exact import exact_rank
from theory.witnesses import random_witness, structured_witness

__all__ = [
    "HeadBounds",
    "KernelShape",
    "concrete_kernel",
    "head_bounds",
    "heads_necessary",
    "heads_sufficient",
    "kernel_shape",
    "patch_sizes",
    "structural_bound",
]

MAX_RESIDUE_SLOTS = 1 << 24  # columns of the witness's residue matching (scipy allocates each)
MAX_STACK_SIDE = 2048  # stacked maps whose smaller side exceeds this get a certified lower bound


@dataclass(frozen=True)
class KernelShape:
    """A validated convolution shape: what the bounds depend on."""

    kernel_size: tuple[int, ...]
    in_channels: int
    out_channels: int
    groups: int = 1
    dilation: tuple[int, ...] = (1, 1)
    stride: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (1, 1)  # p_a before each axis: tap i has offset i·d − p

    @property
    def dims(self) -> int:
        return len(self.kernel_size)

    @property
    def strided(self) -> bool:
        """Whether the shape needs stride and padding stated: not stride 1 with 'same' padding."""
        return self.stride != (1,) * self.dims or self.padding != axis_paddings(
            None, self.kernel_size, self.dilation
        )

    def geometry(self) -> dict:
        """Return the keyword arguments dilation, stride, padding of the coefficient functions."""
        return {"dilation": self.dilation, "stride": self.stride, "padding": self.padding}

    @property
    def pairs(self) -> int:
        """The channel pairs (c, o) that lie in one group: C·D/g."""
        return self.in_channels * self.out_channels // self.groups

    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)


def kernel_shape(
    kernel_size: object,
    *,
    in_channels: object = 1,
    out_channels: object = 1,
    groups: object = 1,
    dilation: object = 1,
    stride: object = 1,
    padding: object = None,
    dims: int | None = None,
) -> KernelShape:
    """Return the validated `KernelShape`, or raise naming the parameter, value and what is allowed.

    The number of axes is `dims`, else the length of a tuple `kernel_size`, `dilation`, `stride`
    or `padding`, else 2. `padding` is p_a before each axis (None: 'same'-centred d·(k−1)//2);
    it must give the output grid n/s (`output_grid_padding`), as PyTorch pads p on both sides.
    """
    if dims is None:
        dims = infer_dims(kernel_size, dilation, stride, padding)
    elif dims not in SPATIAL_DIMS:
        raise ValueError(f"dims={dims!r}: 1, 2 or 3 spatial axes are supported")
    ks = per_axis(kernel_size, "kernel_size", dims)
    ds = per_axis(dilation, "dilation", dims)
    ss = per_axis(stride, "stride", dims)
    shape = KernelShape(
        kernel_size=ks,
        in_channels=positive_int(in_channels, "in_channels"),
        out_channels=positive_int(out_channels, "out_channels"),
        groups=positive_int(groups, "groups"),
        dilation=ds,
        stride=ss,
        padding=axis_paddings(padding, ks, ds),
    )
    if padding is not None or shape.stride != (1,) * dims:
        for a, (k, d, s, p) in enumerate(zip(ks, ds, ss, shape.padding, strict=True)):
            if not output_grid_padding(k, d, s, 2 * p) and p != centred_padding(k, d):
                raise ValueError(
                    f"padding={shape.padding} with kernel_size={ks}, stride={ss}, "
                    f"dilation={ds}: on axis {a} the output grid is not the input grid divided "
                    f"by the stride (n/{s}); padding p needs d·(k−1) + 1 − s ≤ 2p ≤ d·(k−1)"
                )
    for name in ("in_channels", "out_channels"):
        if getattr(shape, name) % shape.groups:
            raise ValueError(f"groups={shape.groups} must divide {name}={getattr(shape, name)}")
    return shape


def patch_sizes(patch_size: object, dims: int) -> tuple[int, ...] | None:
    """Return the patch size per axis, or None for pixel (voxel, sample) tokens."""
    return None if patch_size is None else per_axis(patch_size, "patch_size", dims)


@dataclass(frozen=True)
class HeadBounds:
    """Sufficient (T1/T2) and necessary (T3) head counts for one token type."""

    tokens: str  # "pixel" or "patch"
    patch_size: tuple[int, ...] | None
    offsets: int  # |S| or |N(S, P)|: the heads of T1/T2
    span_dim: int  # s = dim span{M_Δ} (of the kernel, or generic for the shape)
    upper_bound: int  # structural: term rank of G's zero pattern ≥ s for every kernel
    tight: bool  # span_dim == upper_bound: the generic value is proved, not just sampled
    sufficient: int  # T1/T2 heads (exact on every token, zero or circular padding)
    necessary: int  # T3: max(s, ⌈rank(stack)/D_h⌉)
    head_dim: int | None
    stacked_ranks: tuple[int, int] | None = None  # (vertical, horizontal) when head_dim is set
    stacked_exact: bool = True  # False: a stack was too large, its rank is a lower bound
    concrete: bool = False  # bounds of one given kernel, not of a shape
    rank_method: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """Return the record as plain JSON types."""
        d = asdict(self)
        d["patch_size"] = None if self.patch_size is None else list(self.patch_size)
        d["stacked_ranks"] = None if self.stacked_ranks is None else list(self.stacked_ranks)
        return d


def concrete_kernel(kernel: object, shape_args: dict) -> tuple[torch.Tensor, KernelShape, bool]:
    """Return (weight, shape, circular) of a given kernel: an `nn.ConvNd` or a weight tensor.

    A convolution goes through the constructions' own check (`conv_spec`: any stride and padding
    whose output grid is n/s, zero or circular padding mode; its stride and padding are used),
    so the theory answers for exactly the convolutions
    the constructions build. Any real dtype is accepted (bfloat16 included; floats are exact
    rationals).
    """
    circular = False
    if isinstance(kernel, CONV_TYPES):
        spec = conv_spec(kernel)
        for name, value in (
            ("groups", spec.groups), ("dilation", spec.dilation), ("stride", spec.stride),
            ("padding", spec.pad),
        ):  # fmt: skip
            given, least = shape_args.get(name), int(name != "padding")
            if (
                given is not None
                and (given != 1 or name == "padding")
                and per_axis(given, name, spec.dims, minimum=least)
                != per_axis(value, name, spec.dims, minimum=least)
            ):
                raise ValueError(f"{name}={given!r} contradicts the conv's {name}={value!r}")
        shape_args = {
            **shape_args, "groups": spec.groups, "dilation": spec.dilation,
            "stride": spec.stride, "padding": spec.pad,
        }  # fmt: skip
        kernel, circular = spec.weight, spec.circular
    elif isinstance(kernel, nn.Module):
        raise TypeError(
            f"kernel must be an nn.Conv1d/2d/3d or a weight tensor, got {type(kernel).__name__}"
        )
    if isinstance(kernel, np.ndarray):
        kernel = torch.from_numpy(kernel)
    if not isinstance(kernel, torch.Tensor) or kernel.ndim - 2 not in SPATIAL_DIMS:
        raise TypeError(
            f"kernel must be an nn.ConvNd or a weight tensor (D, C/groups, *kernel_size) with "
            f"1 to 3 spatial axes, got {kernel!r:.80}"
        )
    if kernel.dtype.is_complex or kernel.dtype == torch.bool:
        raise TypeError(f"kernel must hold real numbers (integers or floats), got {kernel.dtype}")
    if kernel.dtype.is_floating_point and kernel.dtype != torch.float64:
        kernel = kernel.to(torch.float64)  # exact: every float16/bfloat16/float32 is a float64
    if kernel.dtype.is_floating_point and not bool(torch.isfinite(kernel).all()):
        raise ValueError("kernel has non-finite entries: NaN and inf have no exact rank")
    groups = positive_int(shape_args.get("groups") or 1, "groups")
    shape = kernel_shape(
        tuple(kernel.shape[2:]),
        in_channels=kernel.shape[1] * groups,
        out_channels=kernel.shape[0],
        groups=groups,
        dilation=shape_args.get("dilation") or 1,
        stride=shape_args.get("stride") or 1,
        padding=shape_args.get("padding"),
        dims=kernel.ndim - 2,
    )
    return kernel.detach().cpu(), shape, circular


def structural_bound(shape: KernelShape, patch_size: tuple[int, ...] | None = None) -> int:
    """Return the term rank of G's zero pattern: an upper bound on s for every kernel of `shape`.

    T3 (generic kernels). Column (e, q) of G can be non-zero only if some Δ ∈ N has
    Δ⊙P + e ∈ S; all C·D/g pairs q share the pattern of e. The bound is ≤ min(|N|, live
    columns), and stricter with gaps (dilation, even kernels): k = 6 × 1, d = 2, P = 3 has
    |N| = 5, 5 such columns, bound 4.
    """
    pattern = live_pattern(shape.kernel_size, patch_size, **shape.geometry())[2]
    return term_rank(pattern, shape.pairs)


def _concrete_span(
    weight: torch.Tensor, shape: KernelShape, patch_size: tuple[int, ...] | None, upper: int
) -> tuple[int, str]:
    G = live_coefficients(weight, patch_size, groups=shape.groups, **shape.geometry())[2]
    result = exact_rank(G, upper=upper)
    return result.rank, result.method


def _head_dim_bounds(
    weight: torch.Tensor, shape: KernelShape, Ps: tuple[int, ...] | None, head_dim: int, s: int
) -> tuple[int, int, tuple[int, int], bool]:
    """Return (sufficient, necessary, stacked ranks, exact) under a head-dim budget. T1–T3."""
    kw = dict(groups=shape.groups, **shape.geometry())
    try:
        G = coefficient_matrix(weight, Ps, **kw)[1]
    except ValueError as err:
        message = f"head_dim={head_dim} needs the ranks of the blocks M_Δ, but {err}"
        raise ValueError(message) from None
    C, D, d = shape.in_channels, shape.out_channels, shape.dims
    blocks = [
        exact_rank(patch_block(G, i, Ps, C, D, d, shape.stride)).rank for i in range(len(G))
    ]
    sufficient = sum(math.ceil(r / head_dim) for r in blocks)
    vertical, horizontal = stacked_maps(weight, Ps, **kw)
    exact = max(min(vertical.shape), min(horizontal.shape)) <= MAX_STACK_SIDE
    if not exact:
        vertical, horizontal = stacked_maps(weight, Ps, **kw, max_side=MAX_STACK_SIDE)
    stacked = (exact_rank(vertical).rank, exact_rank(horizontal).rank)
    necessary = max(s, *(math.ceil(r / head_dim) for r in stacked))
    return sufficient, necessary, stacked, exact


def _check_residue_slots(Ps: tuple[int, ...] | None, copies: int) -> None:
    """Raise, naming patch_size, when the witness's residue matching cannot be indexed. T3.

    The matching (`theory.witnesses`) has ΠP residues × `copies` columns, each allocated.
    """
    slots = math.prod(Ps or (1,)) * copies
    if slots > MAX_RESIDUE_SLOTS:
        most = math.isqrt(MAX_RESIDUE_SLOTS // copies) if len(Ps) == 2 else None
        raise ValueError(
            f"patch_size={Ps}: the structured witness matches rows to ΠP × min(C·D/g, |N|) = "
            f"{slots:,} residue slots; at most {MAX_RESIDUE_SLOTS:,} are supported"
            + (f" (a patch of at most {most}x{most} here)" if most else "")
        )


def _bounds(
    shape: KernelShape,
    Ps: tuple[int, ...] | None,
    head_dim: int | None,
    weight: torch.Tensor | None,
    seed: int,
) -> HeadBounds:
    """Return the `HeadBounds` of `weight`, or of the shape when `weight` is None."""
    start = time.perf_counter()
    offsets = neighbourhood_size(shape.kernel_size, Ps, **shape.geometry())
    P_in = shape.stride if Ps is None else Ps
    E = math.prod(P_in) * shape.in_channels
    F = math.prod(P // s for P, s in zip(P_in, shape.stride, strict=True)) * shape.out_channels
    budget = head_dim is not None and head_dim < min(E, F)
    concrete = weight is not None
    s, method = -1, ""
    if not concrete and ((Ps is None and not shape.strided) or shape.pairs >= offsets):
        # every offset can have a channel pair of its own (pixel rows meet every pair): the
        # identity witness of `theory.witnesses` meets the term-rank bound min(|N|, C·D/g)
        s = upper = min(offsets, shape.pairs)
        method = "closed form min(|N|, C·D/g): identity minor of a structured witness"
    else:
        upper = structural_bound(shape, Ps)
    if s < 0 and not concrete:
        _check_residue_slots(Ps, min(shape.pairs, offsets))
        witness = structured_witness(
            shape.kernel_size, Ps, in_channels=shape.in_channels,
            out_channels=shape.out_channels, groups=shape.groups, **shape.geometry(),
        )  # fmt: skip
        if witness.size == upper:
            s, method = upper, f"identity {upper}×{upper} minor of a structured witness"
    if weight is None and (s < 0 or budget):  # the generic kernel the exact ranks run on
        weight = random_witness(shape.weight_shape(), seed)
    if s < 0:  # a given kernel, or no structured witness at the bound
        s, method = _concrete_span(weight, shape, Ps, upper)
    sufficient, necessary, stacked, exact = offsets, s, None, True
    if budget:
        sufficient, necessary, stacked, exact = _head_dim_bounds(weight, shape, Ps, head_dim, s)
    return HeadBounds(
        tokens="pixel" if Ps is None else "patch",
        patch_size=Ps,
        offsets=offsets,
        span_dim=s,
        upper_bound=upper,
        tight=s == upper,
        sufficient=sufficient,
        necessary=necessary,
        head_dim=head_dim,
        stacked_ranks=stacked,
        stacked_exact=exact,
        concrete=concrete,
        rank_method=method,
        seconds=time.perf_counter() - start,
    )


def head_bounds(
    kernel_size: int | tuple[int, ...] | None = None,
    patch_size: int | tuple[int, ...] | None = None,
    *,
    dilation: int | tuple[int, ...] = 1,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | None = None,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    head_dim: int | None = None,
    kernel: torch.Tensor | nn.Module | None = None,
    dims: int | None = None,
    seed: int = 0,
) -> HeadBounds:
    """Return the `HeadBounds` record (T1/T2 sufficient, T3 necessary) of a shape or a kernel.

    T1–T3. Without `kernel`, the generic (worst-case) bounds of the shape; with `kernel` (a weight
    tensor or `nn.Conv1d/2d/3d`; its own shape, groups and dilation are used), that kernel's exact
    bounds. `patch_size=None` means one token per position (for a stride-s convolution: its
    s×s input patches). `stride` and `padding` (p before each axis; None: 'same'-centred) are
    PyTorch's. Sizes are an int or a tuple per axis; `dims` sets the number of axes when every
    size is an int (default 2).
    """
    if head_dim is not None:
        head_dim = positive_int(head_dim, "head_dim")
    if kernel is None:
        if kernel_size is None:
            raise TypeError("head_bounds needs kernel_size (a kernel shape) or kernel=")
        if dims is None:
            dims = infer_dims(kernel_size, patch_size, dilation, stride, padding)
        shape = kernel_shape(
            kernel_size, in_channels=in_channels, out_channels=out_channels, groups=groups,
            dilation=dilation, stride=stride, padding=padding, dims=dims,
        )  # fmt: skip
        return _bounds(shape, patch_sizes(patch_size, shape.dims), head_dim, None, seed)
    weight, shape, _ = concrete_kernel(
        kernel, {"groups": groups, "dilation": dilation, "stride": stride, "padding": padding}
    )
    if kernel_size is not None and per_axis(kernel_size, "kernel_size", shape.dims) != (
        shape.kernel_size
    ):
        raise ValueError(
            f"kernel_size={kernel_size!r} contradicts the kernel's {shape.kernel_size}"
        )
    return _bounds(shape, patch_sizes(patch_size, shape.dims), head_dim, weight, seed)


def heads_sufficient(
    kernel_size: int | tuple[int, ...] | None = None,
    patch_size: int | tuple[int, ...] | None = None,
    **kwargs: object,
) -> int:
    """Return the heads of the exact T1/T2 construction (every token, zero or circular padding).

    T1/T2: |S| (`patch_size=None`) or |N(S, P)| heads with head dim min(E, F); with a smaller
    `head_dim`, Σ_Δ ⌈rank(M_Δ)/head_dim⌉. Keyword arguments as `head_bounds`.

    >>> heads_sufficient(5), heads_sufficient(5, 16), heads_sufficient(35, 16)
    (25, 9, 25)
    """
    if kwargs.get("head_dim") is None and kwargs.get("kernel") is None:  # count the offsets
        geometry = {k: kwargs.get(k, v) for k, v in (("dilation", 1), ("stride", 1))}
        geometry["padding"] = kwargs.get("padding")
        dims = kwargs.get("dims") or infer_dims(kernel_size, patch_size, *geometry.values())
        shape = kernel_shape(
            kernel_size,
            in_channels=kwargs.get("in_channels", 1),
            out_channels=kwargs.get("out_channels", 1),
            groups=kwargs.get("groups", 1),
            dims=dims,
            **geometry,
        )
        return neighbourhood_size(
            shape.kernel_size, patch_sizes(patch_size, shape.dims), **shape.geometry()
        )
    return head_bounds(kernel_size, patch_size, **kwargs).sufficient  # type: ignore[arg-type]


def heads_necessary(
    kernel_size: int | tuple[int, ...] | None = None,
    patch_size: int | tuple[int, ...] | None = None,
    **kwargs: object,
) -> int:
    """Return the heads any exact MHSA layer needs: max(s, ⌈rank(stacks)/head_dim⌉).

    T3. For a shape, the generic (worst-case) s; for `kernel=`, that kernel's exact s. Keyword
    arguments as `head_bounds`.

    >>> heads_necessary(7, 2), heads_necessary(7, 2, in_channels=2, out_channels=2)
    (9, 25)
    """
    return head_bounds(kernel_size, patch_size, **kwargs).necessary  # type: ignore[arg-type]
