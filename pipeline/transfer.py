"""Phase 1 → phase 2 of the CMHSA pipeline: a convolutional ViT turned into an MHSA ViT (T2).

`transfer(conv_vit)` builds every MHSA layer from its trained convolution with
`constructions.patch_mhsa_from_conv(conv, (hP′, wP′), P′)` (9 heads, W_Q = W_K = 0, one-hot
attention, zero-content sink at −10⁴ for the zero padding) and copies every other weight, so the
two models compute the same function on every input, border tokens included.

The exact layer cannot learn attention. Its attention is one-hot with the other logits at −∞
and W_Q = W_K = 0: the softmax Jacobian diag(a) − a aᵀ vanishes at a one-hot a, so W_Q, W_K,
b_Q, b_K, the bias table and the sink get exactly zero gradient and phase 2 would train a frozen
convolution. `transfer(conv_vit, beta=β, qk_std=σ)` gives the trainable start instead:

* the finite-temperature construction (paper_notes): −β instead of −∞ and the sink at −β/2, so every
  attention weight is positive and the softmax Jacobian is non-zero (of order e^(−β/2));
* W_Q, W_K drawn from N(0, σ²): at W_Q = W_K = 0 the logits QKᵀ are bilinear with a saddle at
  zero (∂L/∂W_Q ∝ K = 0 and vice versa), so content attention needs a non-zero start. Its
  logits are O(σ²·d), far below β, so it barely moves the function.

The function changes by O(T·e^(−β/2)) (T tokens; the sink at −β/2 leaks e^(−β/2) in the
interior, the T keys at −β leak T·e^(−β/2) against it at the border); `logit_error` measures it.
The pipeline's default β = 20, σ = 0.02 was chosen by measurement (sklearn digits, 300 images,
5 seeds): the start's logits differ from the trained convolutional model's by 3–4.5·10⁻⁴
relative (test accuracy unchanged), every entry of every bias table, the sinks, W_Q and W_K get
non-zero gradients, and phase 2 moves 0.6–2.3 % of the attention mass off the convolution's
offsets. β = 5 loses 3–7 points of test accuracy at the switch (logits off by 0.29–0.42);
β = 40 starts within 2·10⁻⁸ but its gradients (∝ e^(−β/2)) are too small for Adam to move the
attention at all.
b_K never gets a gradient in any `RelPosMHSA` with a sink: the sink's key is b_K too, so q·b_K
shifts every logit of a row equally and the softmax ignores it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from constructions import patch_mhsa_from_conv
from pipeline.model import ConvMixer, ViT

__all__ = ["logit_error", "transfer"]


def transfer(
    conv_vit: ViT,
    *,
    beta: float | None = None,
    qk_std: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> ViT:
    """Return the MHSA ViT equal to `conv_vit`: mixers by the patch construction, the rest copied.

    T2 (9 heads per layer, borders by the zero sink). With `beta=None` the result computes
    exactly the function of `conv_vit` (any `qk_std`: −∞ logits stay −∞); `beta` gives the
    finite-temperature layers and `qk_std` random W_Q, W_K ~ N(0, qk_std²) for phase-2 training.
    `dtype` defaults to the dtype of `conv_vit`; `conv_vit` is left unchanged.
    """
    if not isinstance(conv_vit, ViT) or conv_vit.mixer_kind != "conv":
        raise TypeError(f"conv_vit must be a ViT with mixer='conv', got {conv_vit!r:.80}")
    if isinstance(qk_std, bool) or not isinstance(qk_std, (int, float)) or not qk_std >= 0:
        raise ValueError(f"qk_std must be a float >= 0, got {qk_std!r}")
    source = next(conv_vit.parameters())
    dtype = dtype or source.dtype
    config = conv_vit.config
    mhsa_vit = copy.deepcopy(conv_vit).to(dtype)  # every non-mixer weight, copied
    mhsa_vit.mixer_kind = "mhsa"
    for block in mhsa_vit.blocks:
        mixer = block.mixer
        assert isinstance(mixer, ConvMixer)
        layer = patch_mhsa_from_conv(
            mixer.conv, config.map_size, config.sub_patch, beta=beta, dtype=dtype
        )
        if layer.num_heads != config.num_heads:  # guarded by ViTConfig; a changed constructor
            raise RuntimeError(f"the construction gave {layer.num_heads} heads, expected 9")
        if qk_std > 0:
            with torch.no_grad():
                for w in (layer.w_q, layer.w_k):
                    noise = torch.randn(w.shape, generator=generator, dtype=torch.float64)
                    w.copy_(noise.to(w) * qk_std)
        layer.check_finite = False  # as in `model._mhsa`: no sync per layer and step
        block.mixer = layer.to(source.device)
    return mhsa_vit


@torch.no_grad()
def logit_error(model_a: nn.Module, model_b: nn.Module, images: torch.Tensor) -> float:
    """Return max|a(x) − b(x)| / max|b(x)| over the logits of both models, in float64.

    Both models are evaluated on float64 copies (their own weights, rounded once), so the
    number measures how far the two functions are apart, not the float32 arithmetic.
    """
    a = copy.deepcopy(model_a).double().eval()
    b = copy.deepcopy(model_b).double().eval()
    x = images.double()
    la, lb = a(x), b(x)
    scale = lb.abs().max().item()
    diff = (la - lb).abs().max().item()
    return diff / scale if scale > 0 else diff
