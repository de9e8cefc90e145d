"""The phase switch of the pipeline (pipeline.transfer): exact, function-preserving, then trainable.

The reference is the convolutional model itself (PyTorch's F.conv2d inside `ConvMixer`): the MHSA
model is built by the patch construction and must give the same logits, and every mixer the same
tokens, border tokens included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from checks.tolerances import assert_matches
from pipeline.model import ViT, ViTConfig
from pipeline.train import TRANSFER_TOLERANCE, TrainConfig, load_checkpoint, train_arm
from pipeline.transfer import logit_error, transfer

CONFIGS = {
    "digits-k3": ViTConfig(image_size=8, in_channels=1, num_classes=10, kernel_size=3),
    "digits-k5": ViTConfig(image_size=8, in_channels=1, num_classes=10, kernel_size=5),
    "rectangular-P3-k7": ViTConfig(image_size=(12, 18), in_channels=3, num_classes=4,
                                   patch_size=3, sub_patch=3, sub_channels=2, kernel_size=7),
    "P1-k3-deep": ViTConfig(image_size=6, in_channels=2, num_classes=3, patch_size=2,
                            sub_patch=1, sub_channels=5, kernel_size=3, depth=3),
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded (tiny ops lose from intra-op threads) and restore the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_conv_vit(config: ViTConfig, seed: int) -> ViT:
    """Return a float64 conv ViT with every parameter drawn from N(0, 0.5²) (norms around 1)."""
    torch.manual_seed(seed)
    model = ViT(config, "conv").double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight")
                      else 0.0, 0.5)
    return model


def _images(config: ViTConfig, n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, config.in_channels, *config.image_size, generator=g, dtype=torch.float64)


def _mixer_inputs(model: ViT, x: torch.Tensor) -> list[torch.Tensor]:
    """Return the LayerNorm-ed tokens each block hands to its mixer."""
    tokens, inputs = model.embed(x).flatten(2).transpose(1, 2), []
    for block in model.blocks:
        inputs.append(block.norm1(tokens))
        tokens = block(tokens)
    return inputs


@pytest.mark.parametrize("name", CONFIGS)
def test_exact_transfer_gives_the_same_logits_for_random_weights(name: str) -> None:
    config = CONFIGS[name]
    conv_vit = _random_conv_vit(config, seed=3)
    mhsa_vit = transfer(conv_vit)
    assert mhsa_vit.mixer_kind == "mhsa"
    assert [m.num_heads for m in mhsa_vit.mixers()] == [9] * config.depth
    x = _images(config)
    with torch.no_grad():
        expected = conv_vit(x)
        assert_matches(mhsa_vit(x), expected, torch.float64, what=f"{name} logits")
    assert logit_error(mhsa_vit, conv_vit, x) <= TRANSFER_TOLERANCE


@pytest.mark.parametrize("name", CONFIGS)
def test_every_transferred_mixer_matches_its_convolution_at_every_border_token(name: str) -> None:
    config = CONFIGS[name]
    conv_vit = _random_conv_vit(config, seed=4)
    mhsa_vit = transfer(conv_vit)
    with torch.no_grad():
        for i, t in enumerate(_mixer_inputs(conv_vit, _images(config, seed=5))):
            expected = conv_vit.blocks[i].mixer(t)  # (B, T, d), F.conv2d with zero padding
            actual = mhsa_vit.blocks[i].mixer(t)
            h, w = config.grid
            border = torch.ones(h, w, dtype=torch.bool)
            border[1:-1, 1:-1] = False
            border = border.flatten()
            assert_matches(actual[:, border], expected[:, border], torch.float64,
                           what=f"block {i} border tokens")
            assert_matches(actual, expected, torch.float64, what=f"block {i} all tokens")


def test_exact_transfer_copies_every_weight_outside_the_mixers() -> None:
    conv_vit = _random_conv_vit(CONFIGS["digits-k5"], seed=6)
    mhsa_vit = transfer(conv_vit)
    source, copied = conv_vit.state_dict(), mhsa_vit.state_dict()
    outside = [k for k in source if ".mixer." not in k]
    assert outside and {k for k in copied if ".mixer." not in k} == set(outside)
    for key in outside:
        assert torch.equal(copied[key], source[key]), key
    assert copied["blocks.0.mixer.w_v"].data_ptr() != 0  # an MHSA layer, not the conv


def test_exact_transfer_gives_the_same_logits_after_training(tmp_path) -> None:
    config = CONFIGS["digits-k3"]
    data = _tiny_data(config)
    train_arm("conv", data, config, TrainConfig(phase1_epochs=2, phase2_epochs=0, batch_size=8,
                                                lr=1e-2), seed=0, out_dir=tmp_path, progress=False)
    trained = load_checkpoint(tmp_path / "checkpoints" / "conv-seed0-phase1.pt")
    untrained = ViT(config, "conv")
    changed = max((p - q).abs().max().item() for p, q in
                  zip(trained.parameters(), untrained.parameters(), strict=True))
    assert changed > 1e-3  # the weights did move
    x = data.normalise(data.test_x)
    error = logit_error(transfer(trained, dtype=torch.float64), trained, x)
    assert error <= TRANSFER_TOLERANCE


def _tiny_data(config: ViTConfig):
    from pipeline.data import _make

    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % config.num_classes
    x = torch.randint(0, 17, (40, config.in_channels, *config.image_size), generator=g)
    x[:, :, : config.image_size[0] // 2] += (y * 2)[:, None, None, None]  # a learnable signal
    return _make("tiny", x[:32].numpy(), y[:32].numpy(), x[32:].numpy(), y[32:].numpy(),
                 config.num_classes, 40.0)


# -- the phase-2 start ------------------------------------------------------------------------
ATTENTION_PARAMS = ("w_q", "b_q", "w_k", "rel_bias", "sink_bias")


def _attention_grads(model: ViT, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model(x).logsumexp(1).sum().backward()  # a loss that depends on every logit
    return {f"{i}.{n}": getattr(m, n).grad for i, m in enumerate(model.mixers())
            for n in ATTENTION_PARAMS}


@pytest.mark.parametrize("qk_std", [0.0, 0.02], ids=["zero-qk", "random-qk"])
def test_the_exact_transfer_gives_attention_exactly_zero_gradient(qk_std: float) -> None:
    config = CONFIGS["digits-k3"]
    model = transfer(_random_conv_vit(config, seed=7), qk_std=qk_std,
                     generator=torch.Generator().manual_seed(0))
    grads = _attention_grads(model, _images(config))
    for name, grad in grads.items():
        assert grad is not None and bool((grad == 0).all()), f"{name}: {grad.abs().max()}"
    assert model.blocks[0].mixer.w_v.grad.abs().max() > 0  # the values do learn


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_the_phase2_start_gives_every_attention_parameter_a_nonzero_gradient(
    dtype: torch.dtype,
) -> None:
    config = CONFIGS["digits-k3"]
    conv_vit = _random_conv_vit(config, seed=8).to(dtype)
    model = transfer(conv_vit, beta=TrainConfig.beta, qk_std=TrainConfig.qk_std,
                     generator=torch.Generator().manual_seed(0))
    grads = _attention_grads(model, _images(config).to(dtype))
    for name, grad in grads.items():
        assert bool(torch.isfinite(grad).all()), name
        if name.endswith(("w_q", "w_k", "b_q")):
            assert grad.abs().amax(dim=(-1, -2) if grad.ndim == 3 else -1).min() > 0, name
        else:  # every head, every offset of the bias table, and every sink logit
            assert bool((grad != 0).all()), f"{name}: {int((grad == 0).sum())} zero entries"


@pytest.mark.parametrize("beta", [10.0, 20.0, 30.0])
def test_the_phase2_start_changes_the_logits_by_at_most_tokens_times_exp_minus_half_beta(
    beta: float,
) -> None:
    for name in ("digits-k3", "digits-k5", "rectangular-P3-k7"):
        config = CONFIGS[name]
        conv_vit = _random_conv_vit(config, seed=9)
        start = transfer(conv_vit, beta=beta, qk_std=TrainConfig.qk_std,
                         generator=torch.Generator().manual_seed(1))
        bound = config.grid[0] * config.grid[1] * math.exp(-beta / 2)
        error = logit_error(start, conv_vit, _images(config))
        assert 0 < error <= bound, f"{name}: {error:.3e} > {bound:.3e}"


def test_transfer_rejects_a_model_that_is_not_convolutional() -> None:
    config = CONFIGS["digits-k3"]
    with pytest.raises(TypeError, match=r"^conv_vit must be a ViT with mixer='conv'"):
        transfer(ViT(config, "mhsa"))
    with pytest.raises(ValueError, match=r"^qk_std must be a float >= 0, got -1"):
        transfer(ViT(config, "conv"), qk_std=-1)
