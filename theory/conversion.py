"""Whole networks with certified head counts: `constructions.convert` plus T3 and T4 per layer.

`convert(model, input_size)` is `constructions.convert.convert` with two more columns filled for
every converted layer: the generic s of its shape (T3, `head_bounds`) and the exact minimum of
its actual weights (T4, `minimum_heads`), whose Gordan certificate is re-checked by the
stand-alone `theory.checker` (and written to `certify_dir` if given). An answer the checker
rejects is never reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from constructions.convert import ConversionReport, PatchRule
from constructions.convert import convert as convert_layers
from constructions.convolution import conv_spec
from theory.bounds import head_bounds
from theory.certificates import CertificateError, recheck
from theory.minimum import minimum_heads

__all__ = ["convert", "layer_theory"]


def layer_theory(
    name: str,
    conv: nn.Module,
    patch_size: tuple[int, ...] | None,
    *,
    certify: bool = True,
    certify_dir: str | Path | None = None,
) -> dict:
    """Return one layer's {generic, minimum, certificate} (or a note): T3's s and T4's minimum.

    T3 (generic s of the shape) and T4 (exact minimum of `conv`'s weights, certified and
    re-checked by `theory.checker`). `certify=False` leaves the minimum out (it is the slow
    part: an exact rank over C·D/g columns).
    """
    spec = conv_spec(conv)
    bounds = head_bounds(
        spec.kernel_size, patch_size, dilation=spec.dilation, stride=spec.stride,
        padding=spec.pad, in_channels=spec.in_channels, out_channels=spec.out_channels,
        groups=spec.groups,
    )  # fmt: skip
    out: dict = {"generic": bounds.span_dim}
    if not certify:
        return out
    try:
        result = minimum_heads(conv, patch_size)
        recheck(result.certificate)  # never report what the stand-alone checker rejects
    except CertificateError as e:
        return {**out, "note": f"minimum not reported: {e}"}  # too large, or rejected
    out["minimum"] = result.heads
    if certify_dir is not None:
        path = Path(certify_dir) / f"{name}.json"
        result.certificate.to_json(path)
        out["certificate"] = str(path)
    return out


def convert(
    model: nn.Module,
    input_size: int | tuple[int, ...],
    *,
    patch_size: PatchRule = None,
    dtype: torch.dtype | None = None,
    beta: float | None = None,
    attention: str = "auto",
    certify: bool = True,
    certify_dir: str | Path | None = None,
    progress: Callable[[object], object] | None = None,
) -> tuple[nn.Module, ConversionReport]:
    """Return (the attention form of `model`, its report with generic s and certified minima).

    T1/T2 per layer (`constructions.convert.convert`, same arguments), T3 and T4 per layer
    (`layer_theory`). `certify_dir` (created if missing) receives one certificate per layer,
    named after the module.
    """
    if certify_dir is not None:
        Path(certify_dir).mkdir(parents=True, exist_ok=True)

    def theory_columns(name: str, conv: nn.Module, P: tuple[int, ...] | None) -> dict:
        return layer_theory(name, conv, P, certify=certify, certify_dir=certify_dir)

    return convert_layers(
        model, input_size, patch_size=patch_size, dtype=dtype, beta=beta, attention=attention,
        minimum=theory_columns, progress=progress,
    )  # fmt: skip
