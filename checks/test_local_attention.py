"""The local path of `RelPosMHSA` (constructions.local_attention; paper_notes, Local attention).

It scores only the keys where a head's table is finite (plus the sink) and must compute the
dense layer's function: values and gradients of every parameter and of the input, for any
queries and keys, any tables (windows, scattered offsets, empty heads, wrap-around alias pairs
with equal and with different biases), in 1-D, 2-D and 3-D, with and without a sink. The oracle
is the dense softmax written out head by head here (with SDPA's 0 for a row that has no finite
logit), and `attention="reference"` where every row has one. `auto` picks the local path
exactly when Σ_h |U_h| ≤ T/4; constructed layers through it equal `F.conv2d`, up to 512×512
pixel tokens, without ever forming a T×T tensor. The FlexAttention pieces (CUDA) are checked
on the CPU: its mask and score functions against the dense bias, the block mask against
`create_block_mask`, and FlexAttention's eager kernel against the gather path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from checks.strategies import ConvCase, conv_cases
from checks.tolerances import assert_matches, reference_conv, relative_error
from constructions import (
    from_tokens,
    image_to_patches,
    image_to_pixels,
    mhsa_from_conv,
    patch_mhsa_from_conv,
    patches_to_image,
    pixel_mhsa_from_conv,
    pixels_to_image,
    to_tokens,
)
from constructions import local_attention as local
from constructions.mhsa import RelPosMHSA

ROOT = Path(__file__).resolve().parent.parent
EXACT = 1e-12  # float64: the local and dense paths differ only in summation order
KINDS = ("window", "scattered", "empty", "alias-equal", "alias-different")
PARAMETERS = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o", "rel_bias", "sink_bias")


@dataclass(frozen=True)
class TableCase:
    """A random layer: grid, widths, one table kind per head, sink, content-dependent logits."""

    grid: tuple[int, ...]
    kinds: tuple[str, ...]
    widths: tuple[int, int, int, int]  # E, Dk, Dh, F
    sink: bool
    content: bool  # random W_Q, b_Q (else zero: position-only logits)
    tied: bool  # table values from {−1, −½, 0, ½, 1}: equal biases and alias merges are common
    seed: int

    def table(self, gen: torch.Generator) -> torch.Tensor:
        """Return the (N, 2g_1−1, …) table: −∞ except where each head's kind puts entries."""
        sides = tuple(2 * g - 1 for g in self.grid)
        table = torch.full((len(self.kinds), *sides), -math.inf, dtype=torch.float64)

        def value(n: int = 1) -> torch.Tensor:
            if self.tied:
                return torch.randint(-2, 3, (n,), generator=gen).double() / 2
            return torch.randn(n, generator=gen, dtype=torch.float64)

        def pick(lo: int, hi: int) -> int:
            return int(torch.randint(lo, hi + 1, (), generator=gen))

        for h, kind in enumerate(self.kinds):
            wrappable = [a for a, g in enumerate(self.grid) if g >= 2]
            if kind == "window":
                box = []
                for g in self.grid:
                    lo = pick(-(g - 1), g - 1)
                    box.append(slice(lo + g - 1, min(lo + pick(0, 2), g - 1) + g))
                table[(h, *box)] = value(table[(h, *box)].numel()).view(table[(h, *box)].shape)
            elif kind == "scattered":
                hit = torch.rand(sides, generator=gen) < 0.3
                table[h][hit] = value(int(hit.sum()))
            elif kind.startswith("alias") and wrappable:
                u = [pick(-(g - 1), g - 1) for g in self.grid]
                axes = [a for a in wrappable if pick(0, 1)] or wrappable[:1]
                for a in axes:
                    u[a] = pick(1, self.grid[a] - 1)  # u_a and u_a − g_a both exist
                shared = value()
                for mask in range(1 << len(axes)):  # every alias u − Σ_{a∈S} g_a e_a
                    v = list(u)
                    for i, a in enumerate(axes):
                        v[a] -= self.grid[a] * (mask >> i & 1)
                    entry = (h, *(c + g - 1 for c, g in zip(v, self.grid, strict=True)))
                    table[entry] = shared if kind == "alias-equal" else value()
        return table

    def layer(self, attention: str = "local") -> tuple[RelPosMHSA, torch.Tensor]:
        """Return the layer (float64, every parameter random unless zeroed) and tokens x."""
        gen = torch.Generator().manual_seed(self.seed)
        N, (E, Dk, Dh, F_out) = len(self.kinds), self.widths
        r = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
        w_q, b_q = r(N, E, Dk), r(N, Dk)
        if not self.content:
            w_q, b_q = torch.zeros_like(w_q), torch.zeros_like(b_q)
        layer = RelPosMHSA(
            self.grid, w_q=w_q, b_q=b_q, w_k=r(N, E, Dk), b_k=r(N, Dk), w_v=r(N, E, Dh),
            b_v=r(N, Dh), w_o=r(N, Dh, F_out), b_o=r(F_out), rel_bias=self.table(gen),
            sink_bias=r(N) if self.sink else None, attention=attention,
        )  # fmt: skip
        return layer, r(2, math.prod(self.grid), E)


@st.composite
def table_cases(draw: st.DrawFn) -> TableCase:
    """Draw a `TableCase`: 1–3 axes of 1–4 tokens (1–3 in 3-D), 1–4 heads of any kind."""
    d = draw(st.integers(1, 3), label="axes")
    grid = tuple(draw(st.lists(st.integers(1, 4 if d < 3 else 3), min_size=d, max_size=d)))
    kinds = tuple(draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4), label="kinds"))
    widths = tuple(draw(st.integers(1, 3)) for _ in range(4))
    return TableCase(grid, kinds, widths, draw(st.booleans(), label="sink"),  # type: ignore[arg-type]
                     draw(st.booleans(), label="content"), draw(st.booleans(), label="tied"),
                     draw(st.integers(0, 2**31 - 1)))  # fmt: skip


def dense_oracle(layer: RelPosMHSA, x: torch.Tensor) -> torch.Tensor:
    """Return the layer's function written out head by head: softmax over all S keys of
    q·k/√Dk + bias, with SDPA's 0 for a row that has no finite logit."""
    zero = x.new_zeros(x.shape[0], 1, x.shape[2])  # the sink: a zero-content key
    keys = torch.cat([x, zero], 1) if layer.sink_bias is not None else x
    bias = layer.relative_bias()  # (N, T, S)
    out = layer.b_o.expand(*x.shape[:2], layer.out_dim)
    for h in range(layer.num_heads):
        q = x @ layer.w_q[h] + layer.b_q[h]
        k = keys @ layer.w_k[h] + layer.b_k[h]
        v = keys @ layer.w_v[h] + layer.b_v[h]
        logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]) + bias[h]
        dead = torch.isneginf(logits).all(-1, keepdim=True)
        a = torch.softmax(logits.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
        out = out + a @ v @ layer.w_o[h]
    return out


def gradients(layer: RelPosMHSA, x: torch.Tensor, out: torch.Tensor,
              probe: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return d(Σ out·probe)/d(each trained parameter and x); zeros where one is not used."""
    names = [n for n in PARAMETERS if getattr(layer, n) is not None
             and getattr(layer, n).requires_grad]  # fmt: skip
    tensors = [getattr(layer, n) for n in names] + [x]
    grads = torch.autograd.grad((out * probe).sum(), tensors, allow_unused=True,
                                retain_graph=True)  # fmt: skip
    return {n: torch.zeros_like(t) if g is None else g
            for n, t, g in zip([*names, "x"], tensors, grads, strict=True)}  # fmt: skip


def worst_gradient_error(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> tuple:
    """Return (worst relative error, its tensor's name). Each gradient is measured against its
    own scale, floored at 1 % of the largest: b_K's gradient, or the table's under one-hot
    weights, is 0 analytically and rounding noise on both sides."""
    top = max(float(g.abs().max()) for g in want.values() if g.numel())
    errors = {n: float((got[n] - g).abs().max()) / max(float(g.abs().max()), 0.01 * top, 1e-300)
              for n, g in want.items() if g.numel()}  # fmt: skip
    name = max(errors, key=errors.__getitem__)
    return errors[name], name


@given(case=table_cases(), freeze_qk=st.booleans())
def test_local_path_equals_the_dense_softmax_in_values_and_in_every_gradient(
    case: TableCase, freeze_qk: bool
) -> None:
    layer, x = case.layer("local")
    if freeze_qk:  # position-only evaluation with a learnable table
        for name in ("w_q", "b_q", "w_k", "b_k"):
            getattr(layer, name).requires_grad_(False)
    x.requires_grad_(True)
    probe = torch.randn(2, x.shape[1], layer.out_dim, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(case.seed))  # fmt: skip
    references = {"written out here": dense_oracle(layer, x)}
    if not torch.isneginf(layer.relative_bias().detach()).all(-1).any():  # no row without keys
        layer.attention = "reference"
        references["attention='reference'"] = layer(x)
        layer.attention = "local"
    out = layer(x)
    assert layer.last_local_backend == "gather"
    for what, expected in references.items():
        assert relative_error(out, expected) <= EXACT, f"{case}: values against {what}"
        err, name = worst_gradient_error(gradients(layer, x, out, probe),
                                         gradients(layer, x, expected, probe))  # fmt: skip
        assert err <= EXACT, f"{case}: gradient of {name} off by {err:.2e} against {what}"


@given(case=table_cases(), chunk=st.integers(1, 40))
def test_local_path_without_autograd_runs_in_chunks_and_still_equals_the_dense_softmax(
    case: TableCase, chunk: int
) -> None:
    layer, x = case.layer("local")
    with torch.no_grad(), mock.patch.object(local, "_CHUNK_ELEMENTS", chunk):
        out, expected = layer(x), dense_oracle(layer, x)
        assert relative_error(out, expected) <= EXACT, case
        assert torch.equal(layer(x), out)  # cached weights give the same numbers again


@given(case=table_cases())
def test_auto_picks_local_exactly_when_the_finite_entries_are_at_most_a_quarter_of_t(
    case: TableCase,
) -> None:
    layer, x = case.layer("auto")
    finite = int(torch.isfinite(layer.rel_bias).sum())
    expected = "local" if finite <= layer.num_tokens / 4 else "sdpa"
    assert layer.resolved_attention == expected
    with torch.no_grad():
        out = layer(x)
        assert relative_error(out, dense_oracle(layer, x)) <= EXACT
    assert (layer.last_local_backend is not None) == (expected == "local")


def test_auto_follows_in_place_updates_of_the_table() -> None:
    layer = RelPosMHSA.initialised((4, 4), 2, 2, 1, 2, dtype=torch.float64)
    with torch.no_grad():
        assert layer.resolved_attention == "sdpa"  # a zero table is finite everywhere
        layer.rel_bias.fill_(-math.inf)
        layer.rel_bias[0, 3, 3] = 0.0
        assert layer.resolved_attention == "local"
        layer.rel_bias[0, 0, :5] = 1.0  # 6 finite entries > T/4 = 4
        assert layer.resolved_attention == "sdpa"


def test_finite_temperature_layers_take_the_dense_path() -> None:
    conv = nn.Conv2d(2, 2, 3, padding="same", dtype=torch.float64)
    assert pixel_mhsa_from_conv(conv, 16, beta=20.0).resolved_attention == "sdpa"
    assert pixel_mhsa_from_conv(conv, 16).resolved_attention == "local"


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_circular_construction_layers_need_one_slot_per_head_not_two_to_the_d(dims: int) -> None:
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1](1, 1, 3, padding="same",
                                                       padding_mode="circular")  # fmt: skip
    layer = mhsa_from_conv(conv, 5)
    assert int(torch.isfinite(layer.rel_bias[-1]).sum()) == 2**dims  # offset +1: +1 and −4
    assert layer.local_plan().slots == 1


def test_alias_pairs_with_different_biases_stay_two_slots() -> None:
    layer = RelPosMHSA.initialised((5,), 1, 1, 1, 1, sink=True, dtype=torch.float64)
    with torch.no_grad():
        layer.rel_bias.fill_(-math.inf)
        layer.rel_bias[0, 4 + 1], layer.rel_bias[0, 4 - 4] = 0.0, 0.0  # +1 and −4: one slot
        assert layer.local_plan().slots == 1
        layer.rel_bias[0, 4 - 4] = 0.5
        assert layer.local_plan().slots == 2


def test_a_head_without_finite_entries_gives_the_sink_all_weight_or_outputs_zero() -> None:
    for sink in (True, False):
        layer = RelPosMHSA.initialised((3, 3), 2, 2, 1, 2, sink=sink, dtype=torch.float64)
        with torch.no_grad():
            layer.rel_bias.fill_(-math.inf)
            layer.b_v.fill_(1.0)
            layer.attention = "local"
            out = layer(torch.randn(1, 9, 2, dtype=torch.float64))
        sink_value = layer.b_v[0] @ layer.w_o[0] if sink else torch.zeros(2, dtype=torch.float64)
        torch.testing.assert_close(out[0], (sink_value + layer.b_o).expand(9, 2))


def test_a_local_layer_never_builds_the_dense_index_and_relative_bias_still_works() -> None:
    layer = pixel_mhsa_from_conv(nn.Conv2d(2, 3, 3, padding="same"), 20)
    with torch.no_grad():
        layer(torch.randn(1, 400, 2))
        assert "dense_index" not in layer._caches
        bias = layer.relative_bias()
    assert bias.shape == (9, 400, 401) and "dense_index" in layer._caches


def test_a_table_with_nan_entries_is_refused_by_local_and_left_to_the_dense_path() -> None:
    layer = RelPosMHSA.initialised((4, 4), 1, 1, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.rel_bias.fill_(-math.inf)
        layer.rel_bias[0, 0, 0] = math.nan
    assert layer.resolved_attention == "sdpa"
    layer.attention = "local"
    with pytest.raises(ValueError, match=r"^rel_bias has NaN or \+inf entries"):
        layer(torch.zeros(1, 16, 1, dtype=torch.float64))


# -- constructed layers through the local path equal the convolution --------------------------
@given(case=conv_cases())
def test_pixel_layer_through_the_local_path_matches_conv(case: ConvCase, target) -> None:
    device, dtype = target
    conv, x = case.conv(dtype, device), case.image(dtype=dtype, device=device)
    layer = pixel_mhsa_from_conv(conv, case.image_size, attention="local")
    with torch.no_grad():
        out = pixels_to_image(layer(image_to_pixels(x)), case.image_size)
    assert_matches(out.cpu(), reference_conv(conv, x, dtype).cpu(), dtype, f"pixel {case}")


@given(case=conv_cases())
def test_patch_layer_through_the_local_path_matches_conv(case: ConvCase, target) -> None:
    device, dtype = target
    conv, x = case.conv(dtype, device), case.image(dtype=dtype, device=device)
    P = case.patch_size
    layer = patch_mhsa_from_conv(conv, case.image_size, P, attention="local")
    with torch.no_grad():
        out = patches_to_image(layer(image_to_patches(x, P)), P, case.image_size)
    assert_matches(out.cpu(), reference_conv(conv, x, dtype).cpu(), dtype, f"patch {case}")


@settings(max_examples=20)
@given(dims=st.sampled_from([1, 3]), k=st.integers(1, 3), side=st.integers(3, 5),
       circular=st.booleans(), patch=st.sampled_from([None, 1, 2]), seed=st.integers(0, 99))
def test_1d_and_3d_layers_through_the_local_path_match_conv(
    dims: int, k: int, side: int, circular: bool, patch: int | None, seed: int
) -> None:
    torch.manual_seed(seed)
    Conv = nn.Conv1d if dims == 1 else nn.Conv3d
    size = side * (patch or 1)
    conv = Conv(2, 3, k, padding="same", padding_mode="circular" if circular else "zeros",
                dtype=torch.float64)  # fmt: skip
    x = torch.randn(2, 2, *(size,) * dims, dtype=torch.float64)
    layer = mhsa_from_conv(conv, size, patch, attention="local")
    with torch.no_grad():
        out = from_tokens(layer(to_tokens(x, patch)), patch, input_size=(size,) * dims)
    assert_matches(out, reference_conv(conv, x, torch.float64), torch.float64, f"{dims}-d k={k}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_precision_layers_through_the_cpu_gather_path_match_conv(dtype) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding="same")
    x = torch.randn(2, 3, 12, 12)
    layer = pixel_mhsa_from_conv(conv, 12, dtype=dtype, attention="local")
    with torch.no_grad():
        out = pixels_to_image(layer(image_to_pixels(x.to(dtype))), 12)
    assert_matches(out.float(), reference_conv(conv, x, dtype), dtype)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
@pytest.mark.parametrize("k", [3, 5])
def test_pixel_layer_on_224_by_224_tokens_matches_conv_through_the_default_path(
    k: int, padding_mode: str
) -> None:
    torch.manual_seed(k)
    conv = nn.Conv2d(2, 3, k, padding="same", padding_mode=padding_mode, dtype=torch.float64)
    x = torch.randn(1, 2, 224, 224, dtype=torch.float64)
    layer = pixel_mhsa_from_conv(conv, 224)
    assert layer.resolved_attention == "local"
    with torch.no_grad():
        out = pixels_to_image(layer(image_to_pixels(x)), 224)
    assert_matches(out, reference_conv(conv, x, torch.float64), torch.float64, f"k={k}")


MEMORY_PROBE = """
import json, resource, sys
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from constructions import image_to_pixels, pixel_mhsa_from_conv, pixels_to_image

def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))

class Largest(TorchDispatchMode):  # the largest tensor any op returns
    numel = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                Largest.numel = max(Largest.numel, t.numel())
        return out

side = int(sys.argv[1])
torch.manual_seed(0)
conv = nn.Conv2d(2, 3, 3, padding="same", dtype=torch.float64)
x = torch.randn(1, 2, side, side, dtype=torch.float64)
before = status("VmRSS")
limit = status("VmSize") + 3 * 2**30  # every T x T tensor (T = side^2) is far larger
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
with torch.no_grad(), Largest():
    layer = pixel_mhsa_from_conv(conv, side)
    out = pixels_to_image(layer(image_to_pixels(x)), side)
grown = status("VmHWM") - before
ref = conv(x)
error = float((out - ref).abs().max() / ref.abs().max())
print(json.dumps({"path": layer.resolved_attention, "largest": Largest.numel, "grown": grown,
                  "error": error}))
"""


def test_a_512_by_512_pixel_layer_runs_locally_in_linear_memory_without_any_t_squared_tensor(
) -> None:
    side = 512
    T = side * side
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MEMORY_PROBE), str(side)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["path"] == "local"
    assert got["largest"] <= 64 * T, f"a tensor of {got['largest']} entries (T = {T})"
    assert got["grown"] < 2 * 2**30, f"resident memory grew by {got['grown'] / 2**30:.2f} GiB"
    assert got["error"] <= 1e-10


# -- the FlexAttention pieces (CUDA), checked on the CPU --------------------------------------
def _flex_parts(layer: RelPosMHSA) -> tuple:
    """Return (plan, score_mod, block_mask) as the layer builds them for FlexAttention."""
    plan = layer.local_plan()
    score_mod, block_mask = local.flex_mods(layer, plan)
    return plan, score_mod, block_mask


@given(case=table_cases())
def test_flex_mask_and_score_functions_reproduce_the_dense_bias(case: TableCase) -> None:
    layer, _ = case.layer()
    _, score_mod, block_mask = _flex_parts(layer)
    N, T, S = layer.num_heads, layer.num_tokens, layer.num_keys
    b = torch.zeros((), dtype=torch.int32)
    h = torch.arange(N, dtype=torch.int32)[:, None, None]
    q = torch.arange(T, dtype=torch.int32)[None, :, None]
    kv = torch.arange(S, dtype=torch.int32)[None, None, :]
    with torch.no_grad():
        bias = layer.relative_bias()  # (N, T, S)
        allowed = block_mask.mask_mod(b, h, q, kv).expand(N, T, S)
        assert torch.equal(allowed, torch.isfinite(bias))
        scores = score_mod(torch.zeros((), dtype=torch.float64), b, h, q, kv).expand(N, T, S)
        assert torch.equal(scores[allowed], bias[allowed])


@given(case=table_cases(), block=st.sampled_from([1, 2, 4, 8]))
def test_the_block_mask_built_from_the_slots_equals_create_block_mask(
    case: TableCase, block: int
) -> None:
    from torch.nn.attention.flex_attention import create_block_mask

    layer, _ = case.layer()
    plan = layer.local_plan()
    _, _, reference = _flex_parts(layer)
    mine = local.flex_block_mask(plan, reference.mask_mod, block=block)
    theirs = create_block_mask(reference.mask_mod, 1, layer.num_heads, layer.num_tokens,
                               layer.num_keys, device="cpu", BLOCK_SIZE=block)  # fmt: skip
    expected = theirs.to_dense().bool()  # (1, N, query blocks, key blocks)
    listed = torch.zeros_like(expected)
    for h, qb in torch.cartesian_prod(*map(torch.arange, expected.shape[1:3])).tolist():
        n = int(mine.kv_num_blocks[0, h, qb])
        listed[0, h, qb, mine.kv_indices[0, h, qb, :n].long()] = True
        assert n == len(set(mine.kv_indices[0, h, qb, :n].tolist()))  # no block listed twice
    assert torch.equal(listed, expected)


@settings(max_examples=15)
@given(case=table_cases())
def test_eager_flex_attention_with_these_functions_equals_the_gather_path(
    case: TableCase,
) -> None:
    layer, x = case.layer()
    layer, x = layer.float(), x.float()
    with torch.no_grad():
        plan = layer.local_plan()
        mods = local.flex_mods(layer, plan)
        content = bool(layer.w_q.any() or layer.b_q.any())
        flex = local.flex_attention_local(layer, x, mods, content=content, compiled=False)
        assert_matches(flex, layer(x), torch.float32, f"{case}")
    assert layer.last_local_backend == "gather"  # on the CPU the layer itself never picks flex


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="inductor's CPU code needs a C++ compiler")
def test_compiled_cpu_flex_attention_accepts_the_block_mask_and_computes_the_convolution() -> None:
    """The one compile this suite runs: inductor's CPU FlexAttention reads the block mask (the
    layout the CUDA kernel reads too) and the captured tables; one compile, ~30 s when cold."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding="same")
    layer = pixel_mhsa_from_conv(conv, 40)  # 1600 tokens: 13 query blocks of 128
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        mods = local.flex_mods(layer, layer.local_plan())
        out = local.flex_attention_local(layer, image_to_pixels(x), mods, content=False)
        assert out is not None, local._FLEX.get("failed")
    assert_matches(pixels_to_image(out, 40), reference_conv(conv, x, torch.float32),
                   torch.float32)  # fmt: skip


def test_flex_is_refused_off_cuda_and_forcing_it_there_is_an_error() -> None:
    layer = pixel_mhsa_from_conv(nn.Conv2d(1, 1, 3, padding="same"), 8)
    x = torch.zeros(1, 64, 1)
    assert local.flex_unavailable(layer, x) == "FlexAttention runs on CUDA only here (x is on cpu)"
    layer.local_backend = "flex"
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"^local_backend='flex' cannot run"):
        layer(x)


# -- python -m benchmarks.gpu ------------------------------------------------------------------
def _gpu_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="error", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_gpu_benchmark_dry_run_prints_every_step_without_running_it() -> None:
    done = _gpu_script("--dry-run")
    assert done.returncode == 0, done.stderr
    for step in ("pytest checks/ --gpu", "benchmarks.errors --device cuda",
                 "benchmarks.constructions --device cuda", "figures --only cost_gpu",
                 "pipeline train", "torch.distributed.run --standalone --nproc_per_node 1",
                 "--amp bf16"):  # fmt: skip
        assert step in done.stdout, step


def test_gpu_benchmark_without_cuda_exits_2_with_one_line() -> None:
    done = _gpu_script()
    assert done.returncode == 2
    assert done.stdout == ""
    expected = "benchmarks.gpu: no GPU is available (torch.cuda.is_available() is False)"
    assert done.stderr.strip() == expected
