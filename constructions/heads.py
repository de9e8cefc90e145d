"""A layer's per-head maps: the query/key/value projections of every head and its bias table.

paper_notes, Conventions: head h maps a token x to x W_Q^h + b_Q^h, x W_K^h + b_K^h and
x W_V^h + b_V^h, and scores key − query offsets with its table B^h (plus an optional sink key).
`RelPosMHSA` (`constructions.mhsa`) holds these maps; its local evaluation
(`constructions.local_attention`) reads them through `HeadMaps`, so both import this module and
neither imports the other back.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

__all__ = ["HeadMaps", "head_projections", "sink_column", "table_with_sink"]


class HeadMaps(Protocol):
    """What a local evaluation reads from a layer (N heads, T tokens): `RelPosMHSA` has it."""

    w_q: torch.Tensor  # (N, E, Dk)
    b_q: torch.Tensor  # (N, Dk)
    w_k: torch.Tensor  # (N, E, Dk)
    b_k: torch.Tensor  # (N, Dk)
    w_v: torch.Tensor  # (N, E, Dh)
    b_v: torch.Tensor  # (N, Dh)
    w_o: torch.Tensor  # (N, Dh, F)
    b_o: torch.Tensor  # (F,)
    rel_bias: torch.Tensor  # (N, 2g_1 − 1, …, 2g_d − 1)
    sink_bias: torch.Tensor | None  # (N,)
    grid_size: tuple[int, ...]

    @property
    def num_heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def num_keys(self) -> int: ...
    @property
    def out_dim(self) -> int: ...
    def parameters(self) -> object: ...


def head_projections(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return x W^h + b^h for every head: x (B, S, E), w (N, E, D), b (N, D) → (B, N, S, D).

    paper_notes, Conventions (the per-head projections). One matmul against the heads side by
    side (E, N·D) rather than N small ones.
    """
    N, E, D = w.shape
    y = x @ w.transpose(0, 1).reshape(E, N * D) + b.reshape(N * D)  # (B, S, N·D)
    return y.unflatten(-1, (N, D)).transpose(1, 2)


def sink_column(layer: HeadMaps) -> torch.Tensor:
    """Return the sink's bias (N, 1), −∞ without a sink.

    paper_notes, Conventions (the sink key).
    """
    if layer.sink_bias is None:
        return layer.rel_bias.new_full((layer.num_heads, 1), -math.inf)
    return layer.sink_bias[:, None]


def table_with_sink(layer: HeadMaps) -> torch.Tensor:
    """Return [table (N, L), sink (N, 1)]: the entries `LocalPlan.table_index` points into.

    paper_notes, Local attention.
    """
    return torch.cat([layer.rel_bias.reshape(layer.num_heads, -1), sink_column(layer)], 1)
