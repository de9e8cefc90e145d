"""The MHSA layer (paper_notes, Conventions): offsets are key − query, the fused call equals the
written-out softmax, the sink is a zero-content key, and the dense-bias cache follows the table."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from checks.tolerances import assert_matches
from constructions.mhsa import RelPosMHSA


def _shift_layer(grid: tuple[int, int], offset: tuple[int, int], dtype=torch.float64) -> RelPosMHSA:
    """One head, W_V = W_O = I, table 0 only at `offset`, and a sink: out_q = x_{q+offset}."""
    gh, gw = grid
    table = torch.full((1, 2 * gh - 1, 2 * gw - 1), -math.inf, dtype=dtype)
    table[0, offset[0] + gh - 1, offset[1] + gw - 1] = 0.0
    z = lambda *s: torch.zeros(*s, dtype=dtype)  # noqa: E731
    eye = torch.eye(2, dtype=dtype)[None]
    return RelPosMHSA(grid, w_q=z(1, 2, 2), b_q=z(1, 2), w_k=z(1, 2, 2), b_k=z(1, 2),
                      w_v=eye.clone(), b_v=z(1, 2), w_o=eye.clone(), b_o=z(2), rel_bias=table,
                      sink_bias=torch.full((1,), -1.0e4, dtype=dtype))  # fmt: skip


@given(gh=st.integers(1, 4), gw=st.integers(1, 4), data=st.data())
def test_a_table_entry_at_offset_delta_reads_the_token_at_query_plus_delta(gh, gw, data) -> None:
    dy = data.draw(st.integers(-(gh - 1), gh - 1), label="dy")
    dx = data.draw(st.integers(-(gw - 1), gw - 1), label="dx")
    x = torch.randn(1, gh * gw, 2, dtype=torch.float64)
    with torch.no_grad():
        out = _shift_layer((gh, gw), (dy, dx))(x).reshape(gh, gw, 2)
    image = x.reshape(gh, gw, 2)
    for qy in range(gh):  # independent oracle: index arithmetic, zero outside the grid
        for qx in range(gw):
            ky, kx = qy + dy, qx + dx
            inside = 0 <= ky < gh and 0 <= kx < gw
            expected = image[ky, kx] if inside else torch.zeros(2, dtype=torch.float64)
            assert torch.equal(out[qy, qx], expected), (qy, qx)


@pytest.mark.parametrize("sink", [False, True], ids=["no-sink", "sink"])
@given(seed=st.integers(0, 2**16), gh=st.integers(1, 3), gw=st.integers(1, 3))
def test_fused_attention_equals_the_written_out_softmax(
    sink: bool, seed: int, gh: int, gw: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    layer = RelPosMHSA.initialised(
        (gh, gw), 5, 3, 4, 2, sink=sink, generator=gen, dtype=torch.float64
    )
    with torch.no_grad():
        layer.rel_bias.normal_(generator=gen)
        layer.b_k.normal_(generator=gen)
        if sink:
            layer.sink_bias.normal_(generator=gen)
    x = torch.randn(3, gh * gw, 5, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        fused = layer(x)
        layer.attention = "reference"
        reference = layer(x)
        # the definition once more, head by head, with the sink as an explicit zero token
        keys = torch.cat([x, torch.zeros(3, 1, 5, dtype=x.dtype)], 1) if sink else x
        expected = layer.b_o.expand(3, gh * gw, 3).clone()
        bias = layer.relative_bias()
        for h in range(layer.num_heads):
            q = x @ layer.w_q[h] + layer.b_q[h]
            k = keys @ layer.w_k[h] + layer.b_k[h]
            v = keys @ layer.w_v[h] + layer.b_v[h]
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(2) + bias[h], dim=-1)
            expected += a @ v @ layer.w_o[h]
    assert_matches(fused, expected, torch.float64, "sdpa")
    assert_matches(reference, expected, torch.float64, "reference")


def test_the_dense_bias_cache_follows_in_place_updates_of_the_table() -> None:
    layer = RelPosMHSA.initialised((2, 3), 2, 2, 2, 2, sink=True, dtype=torch.float64)
    with torch.no_grad():
        first = layer.relative_bias()
        assert layer.relative_bias() is first  # cached while nothing changed
        layer.rel_bias[0, 1, 2] = 7.0
        second = layer.relative_bias()
    assert second is not first
    assert second[0, 0, 0] == 7.0  # query (0, 0), key (0, 0): offset (0, 0) → table [1, 2]


def test_gradients_reach_every_parameter_of_a_randomly_initialised_layer() -> None:
    layer = RelPosMHSA.initialised(
        (3, 3), 4, 4, 2, 3, sink=True, generator=torch.Generator().manual_seed(0)
    )
    layer(torch.randn(2, 9, 4)).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (
            torch.zeros(1, 6, 3),
            ValueError,
            r"^x has shape \(1, 6, 3\); this layer takes tokens \(B, 6, 2\)",
        ),
        (torch.zeros(6, 2), ValueError, r"^x has shape \(6, 2\)"),
        (torch.zeros(1, 6, 2, dtype=torch.float32), TypeError, r"^x has dtype torch.float32 but"),
        (torch.full((1, 6, 2), math.nan, dtype=torch.float64), ValueError, r"^x has non-finite"),
        (torch.full((1, 6, 2), math.inf, dtype=torch.float64), ValueError, r"^x has non-finite"),
        ("tokens", TypeError, r"^x must be a torch.Tensor"),
    ],
    ids=["wrong-width", "2d", "dtype", "nan", "inf", "not-tensor"],
)
def test_the_layer_rejects_bad_tokens_naming_what_it_expects(x, error, message) -> None:
    layer = RelPosMHSA.initialised((2, 3), 2, 2, 1, 2, dtype=torch.float64)
    with pytest.raises(error, match=message):
        layer(x)


def test_weights_of_inconsistent_shapes_are_rejected() -> None:
    z = torch.zeros
    with pytest.raises(ValueError, match=r"^rel_bias has shape \(1, 3, 3\), expected \(1, 3, 5\)"):
        RelPosMHSA((2, 3), w_q=z(1, 2, 2), b_q=z(1, 2), w_k=z(1, 2, 2), b_k=z(1, 2),
                   w_v=z(1, 2, 2), b_v=z(1, 2), w_o=z(1, 2, 2), b_o=z(2),
                   rel_bias=z(1, 3, 3))  # fmt: skip
    with pytest.raises(ValueError, match=r"^attention='flash': expected one of"):
        RelPosMHSA.initialised((1, 1), 1, 1, 1, 1).attention = "flash"
