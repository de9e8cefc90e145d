"""Whole networks as exact attention: every convolution of a model replaced by its MHSA layer.

`convert(model, input_size)` deep-copies `model`, runs ONE traced forward pass (forward hooks) on
a seeded random input to record the input size of every `nn.Conv1d/2d/3d`, and replaces each one
by a `ConvAttention`: image in, image out, the same shapes as the convolution, with
`to_tokens → RelPosMHSA (T1/T2) → from_tokens` inside. Norms, activations, pooling, linear
layers and residual paths stay as they are. A layer the constructions do not cover (reflect
padding, a transposed convolution, a size that does not divide) stays a convolution and is named
in the report with the reason — never silently. The input model is not modified.

Tokens: pixel tokens by default (a stride-s convolution reads s×s patches: P = s); `patch_size`
(an int, a tuple, or a function of the layer) gives patch tokens where the patch divides the map.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from constructions.from_conv import mhsa_from_conv
from constructions.mhsa import RelPosMHSA
from constructions.tokens import from_tokens, to_tokens
from constructions.validate import SPATIAL_DIMS, per_axis

__all__ = ["ConvAttention", "ConversionReport", "LayerRow", "convert", "relative_error"]

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PatchRule = int | tuple[int, ...] | Callable[[str, nn.Module, tuple[int, ...]], object] | None
_CONV_FORWARDS = {c.forward for c in CONV_TYPES}
FILLED = ("generic", "minimum", "certificate", "note")  # the columns a `minimum` callable may fill


class ConvAttention(nn.Module):
    """An exact attention form of one convolution: (B, C, *n) → (B, D, *n/s), as the conv. T1/T2.

    `to_tokens(x, P)` (P = None: one token per position) → `attention` → `from_tokens(·, P/s)`
    on the output size n/s. The layer is built for the traced input size `input_size` only.
    """

    def __init__(
        self,
        attention: RelPosMHSA,
        input_size: tuple[int, ...],
        patch_size: tuple[int, ...] | None,
        stride: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.attention = attention
        self.input_size = tuple(input_size)
        self.patch_size = patch_size
        self.stride = tuple(stride)
        self.output_size = tuple(n // s for n, s in zip(input_size, stride, strict=True))
        self.out_patch = None  # the output tokens' patch P/s
        if patch_size is not None:
            self.out_patch = tuple(P // s for P, s in zip(patch_size, stride, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"x has spatial size {tuple(x.shape[2:])}, but this layer was converted for "
                f"{self.input_size}; convert the model again with that input size"
            )
        y = self.attention(to_tokens(x, self.patch_size))  # (B, T, ΠP·C) → (B, T, Π(P/s)·D)
        return from_tokens(y, self.out_patch, input_size=self.output_size)

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, patch_size={self.patch_size}, stride={self.stride}, "
            f"heads={self.attention.num_heads}"
        )


@dataclass
class LayerRow:
    """One convolution of the model: what it is, how it was converted (or why not), its error."""

    name: str
    module: str  # "Conv2d", "ConvTranspose2d", …
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    input_size: tuple[int, ...] | None  # traced; None when the forward pass never called it
    tokens: str = ""  # "pixel" or "patch", "" when not converted
    patch_size: tuple[int, ...] | None = None  # P of the input tokens (pixel tokens: the stride)
    heads: int | None = None  # heads of the layer used (= |N| with the default head dim)
    offsets: int | None = None  # |N|: |S| for pixel tokens, |N(S, P)| for patches
    generic: int | None = None  # generic s of the shape (T3), filled by the theory layer
    minimum: int | None = None  # certified minimum of this layer's weights (T4), theory layer
    certificate: str | None = None  # where the minimum's certificate was written, if anywhere
    error: float | None = None  # max |attention − conv| / max |conv| on the traced input
    reason: str | None = None  # why the layer stayed a convolution; None when converted
    note: str | None = None  # why a filled column is missing (e.g. a certificate not checked)

    @property
    def converted(self) -> bool:
        return self.reason is None


@dataclass
class ConversionReport:
    """The per-layer rows of `convert`, with a text table and JSON."""

    rows: list[LayerRow] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()

    @property
    def converted(self) -> list[LayerRow]:
        return [r for r in self.rows if r.converted]

    @property
    def unconverted(self) -> list[LayerRow]:
        return [r for r in self.rows if not r.converted]

    @property
    def total_heads(self) -> int:
        """Return the heads of all converted layers together."""
        return sum(r.heads or 0 for r in self.converted)

    @property
    def total_minimum(self) -> int | None:
        """Return the certified minima summed over converted layers (None if any is missing)."""
        mins = [r.minimum for r in self.converted]
        return None if not mins or None in mins else sum(mins)  # type: ignore[arg-type]

    @property
    def max_error(self) -> float:
        return max((r.error for r in self.converted if r.error is not None), default=0.0)

    def as_dict(self) -> dict:
        """Return the report as plain JSON types."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [asdict(r) for r in self.rows],
            "converted": len(self.converted),
            "unconverted": len(self.unconverted),
            "total_heads": self.total_heads,
            "total_minimum": self.total_minimum,
            "max_layer_error": self.max_error,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def table(self) -> str:
        """Return the report as a text table, one line per convolution, unconverted ones last."""
        x = lambda t: "×".join(map(str, t)) if t else "—"  # noqa: E731
        opt = lambda v: "—" if v is None else str(v)  # noqa: E731
        head = ("layer", "C→D", "kernel", "stride", "dil", "groups", "input", "tokens",
                "heads", "|N|", "generic s", "minimum", "max rel err")  # fmt: skip
        lines = []
        for r in self.converted:
            tokens = "pixel" if r.tokens == "pixel" else f"patch {x(r.patch_size)}"
            lines.append((
                r.name, f"{r.in_channels}→{r.out_channels}", x(r.kernel), x(r.stride),
                x(r.dilation), str(r.groups), x(r.input_size), tokens, opt(r.heads),
                opt(r.offsets), opt(r.generic), opt(r.minimum),
                "—" if r.error is None else f"{r.error:.1e}",
            ))  # fmt: skip
        widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(  # noqa: E731
            c.ljust(w) for c, w in zip(cells, widths, strict=True)
        ).rstrip()
        out = [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)]
        total = f"total heads {self.total_heads} in {len(self.converted)} converted layers"
        if self.total_minimum is not None:
            total += f" (certified minimum {self.total_minimum})"
        out.append(total)
        for r in self.converted:
            if r.note:
                out.append(f"note {r.name}: {r.note}")
        for r in self.unconverted:
            out.append(f"NOT CONVERTED {r.name} ({r.module} {r.in_channels}→{r.out_channels} "
                       f"k={x(r.kernel)} s={x(r.stride)}): {r.reason}")  # fmt: skip
        return "\n".join(out)


def relative_error(reference: torch.Tensor, value: torch.Tensor) -> float:
    """Return max |value − reference| / max |reference| (0 when both are 0; inf on NaN)."""
    diff = (value.double() - reference.double()).abs().max()
    if torch.isnan(diff):
        return math.inf
    scale = reference.double().abs().max()
    return float(diff / scale) if scale > 0 else float(diff)


def _first_conv_dims(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.weight.ndim - 2
    raise ValueError("model has no convolution (nn.Conv1d/2d/3d): there is nothing to convert")


def traced_input_shape(model: nn.Module, input_size: object) -> tuple[int, ...]:
    """Return the full input shape (1, C, *n) of the traced pass from `input_size`.

    `input_size` is an int (the same size on each of the first convolution's d axes), d spatial
    sizes, or a full input shape (B, C, *n) of d + 2 entries; C is the first convolution's
    `in_channels` when not given.
    """
    dims = _first_conv_dims(model)
    first = next(m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd))
    if isinstance(input_size, (tuple, list, torch.Size)):
        sizes = tuple(input_size)
        if len(sizes) == dims + 2:
            return tuple(per_axis(sizes, "input_size", dims + 2))
        if len(sizes) != dims:
            raise ValueError(
                f"input_size={sizes!r} has {len(sizes)} entries; the model's first convolution "
                f"is {dims}-D: give {dims} spatial sizes or a full shape of {dims + 2}"
            )
    return (1, first.in_channels, *per_axis(input_size, "input_size", dims))


def _trace(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
    """Return (input, {conv name: [(traced input, output)]}) of one eval-mode forward pass."""
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):

            def hook(_m, args, out, name=name):
                seen.setdefault(name, []).append((args[0].detach(), out.detach()))

            hooks.append(m.register_forward_hook(hook))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x.to(dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except Exception as e:  # the model rejects the input: name the parameter
        raise ValueError(
            f"input_size gives an input of shape {shape}, which the model cannot take: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return x, seen


def _divides(sizes: tuple[int, ...], by: tuple[int, ...]) -> bool:
    return all(n % b == 0 for n, b in zip(sizes, by, strict=True))


def _patch_for(
    rule: PatchRule, name: str, conv: nn.Module, size: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[tuple[int, ...] | None, str | None]:
    """Return (P, reason): the layer's input patch (None: pixel tokens of stride 1), or why not."""
    dims = len(size)
    if not _divides(size, stride):
        fits = "×".join(str(-(-n // s) * s) for n, s in zip(size, stride, strict=True))
        return None, (
            f"stride {stride} does not divide the input size {size}: the output grid is not "
            f"n/s; an input of {fits} (a multiple of the stride on each axis) would work"
        )
    pixel = None if stride == (1,) * dims else stride
    if rule is None:
        return pixel, None
    if callable(rule):
        given = rule(name, conv, size)
        if given is None:
            return pixel, None
        P = per_axis(given, f"patch_size({name!r})", dims)
        if not _divides(P, stride):
            fits = tuple(max(p // s, 1) * s for p, s in zip(P, stride, strict=True))
            return None, (
                f"stride {stride} does not divide patch_size={P}: patches must be multiples "
                f"of the stride, e.g. {fits}"
            )
        if not _divides(size, P):
            return None, (
                f"patch_size={P} does not divide the input size {size}; a patch that divides "
                f"each side would work (pixel tokens: return None)"
            )
        return P, None
    P = per_axis(rule, "patch_size", dims)
    fits = all(p <= n for p, n in zip(P, size, strict=True))
    if fits and _divides(size, P) and _divides(P, stride):
        return P, None
    return pixel, None  # an int or tuple patch applies where it divides the map and the stride


def _row(name: str, m: nn.Module, size: tuple[int, ...] | None) -> LayerRow:
    return LayerRow(
        name=name, module=type(m).__name__, in_channels=m.in_channels,
        out_channels=m.out_channels, kernel=tuple(m.kernel_size), stride=tuple(m.stride),
        dilation=tuple(m.dilation), groups=m.groups, input_size=size,
    )  # fmt: skip


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def convert(
    model: nn.Module,
    input_size: int | tuple[int, ...],
    *,
    patch_size: PatchRule = None,
    dtype: torch.dtype | None = None,
    beta: float | None = None,
    attention: str = "auto",
    minimum: Callable[[str, nn.Module, tuple[int, ...] | None], dict] | None = None,
    progress: Callable[[object], object] | None = None,
) -> tuple[nn.Module, ConversionReport]:
    """Return (a copy of `model` with every convolution as exact attention, the per-layer report).

    T1/T2 layer by layer (paper_notes, Strided convolutions for stride s: P = s pixel tokens).
    `input_size`: see `traced_input_shape`. `patch_size`: None (pixel tokens), an int/tuple
    (patch tokens where it divides the map and is a multiple of the stride, pixel tokens
    elsewhere), or a function (name, conv, input size) → patch or None. `dtype` casts the copy
    first (default: the model's). `beta` gives finite-temperature layers. `minimum(name, conv,
    P)` returns a dict of the row's `generic`, `minimum`, `certificate` (the theory layer's
    `theory.convert` passes one); `progress` wraps the list of layers (e.g. `tqdm`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
    shape = traced_input_shape(model, input_size)
    if len(shape) - 2 not in SPATIAL_DIMS:
        raise ValueError(f"input_size={input_size!r}: 1, 2 or 3 spatial axes are supported")
    out = copy.deepcopy(model)
    if dtype is not None:
        out = out.to(dtype)
    param = next(out.parameters())
    _, seen = _trace(out, shape, param.dtype, param.device)
    report = ConversionReport(input_shape=shape)
    convs = [(n, m) for n, m in out.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    for name, m in progress(convs) if progress else convs:
        calls = seen.get(name, [])
        sizes = {tuple(x.shape[2:]) for x, _ in calls}
        row = _row(name, m, next(iter(sizes)) if len(sizes) == 1 else None)
        report.rows.append(row)
        if not isinstance(m, CONV_TYPES):
            row.reason = f"{type(m).__name__}: only nn.Conv1d, Conv2d and Conv3d are converted"
            continue
        if type(m).forward not in _CONV_FORWARDS:
            row.reason = f"{type(m).__name__} overrides forward: its semantics are not conv_spec's"
            continue
        if not calls:
            row.reason = "not called by the traced forward pass: its input size is unknown"
            continue
        if len(sizes) > 1:
            row.reason = f"called on several input sizes {sorted(sizes)}; one layer has one grid"
            continue
        P, reason = _patch_for(patch_size, name, m, row.input_size, row.stride)
        if reason is not None:
            row.reason = reason
            continue
        try:
            layer = mhsa_from_conv(m, row.input_size, P, beta=beta, attention=attention)
            new = ConvAttention(layer, row.input_size, P, row.stride)
            with torch.no_grad():
                errors = [relative_error(y, new(x)) for x, y in calls]
        except (ValueError, TypeError) as e:
            row.reason = str(e)
            continue
        row.tokens = "pixel" if P is None or P == row.stride else "patch"
        row.patch_size, row.heads, row.offsets = P, layer.num_heads, layer.num_heads
        row.error = max(errors)
        if minimum is not None:
            filled = minimum(name, m, P)
            unknown = set(filled) - set(FILLED)
            if unknown:
                raise ValueError(f"minimum returned unknown columns {sorted(unknown)}")
            for key, value in filled.items():
                setattr(row, key, value)
        _set_module(out, name, new)
    return out, report
