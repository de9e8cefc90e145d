"""The small ViT of the CMHSA pipeline and its convolutional variant (Li et al., arXiv 2111.01353).

Dimension letters: B batch, C image channels, H×W image, P patch side, h×w patch grid
(H/P × W/P), T = h·w tokens, P′ sub-patch side, C′ sub-channels, d = P′²·C′ token width.

Both models are: patch embedding (a P×P stride-P convolution, no absolute position embedding),
`depth` pre-norm blocks `x + mixer(LN(x))`, `x + MLP(LN(x))`, a final LayerNorm, global average
pooling over the tokens (no [cls] token: a convolution has no place for one) and a linear
classifier. Only the token mixer differs:

* `"mhsa"`: `constructions.RelPosMHSA` on the h×w token grid with 9 heads of width d, a relative
  position bias and a zero-content sink key (paper_notes, Conventions);
* `"conv"`: a k×k stride-1 'same' convolution with C′ → C′ channels acting on the **re-assembled
  map**: every token (d = P′²C′ numbers) is read as a P′×P′ block of C′ channels, in the
  project's patch-token order `(row-in-patch, column-in-patch, channel)`, so the tokens
  `(B, h·w, d)` are exactly the patch tokens of a `(B, C′, hP′, wP′)` image. The mixer is
  `image_to_patches(conv(patches_to_image(t)))`.

Why the re-assembled map and not the token grid: the patch construction (T2) turns this
convolution into an MHSA layer with one head per patch offset of N(S, P′), i.e. **9 heads for
every odd k ≤ 2P′+1** (CMHSA-3 and CMHSA-5 both need 9 with P′ = 2, as in the article). A k×k
convolution over the h×w token grid itself (each token one "pixel" of d channels) is the
pixel-token case (T1) and needs k² heads: 25 for CMHSA-5, more than a ViT has.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from constructions import RelPosMHSA, image_to_patches, patches_to_image
from constructions.geometry import patch_neighbourhood
from constructions.validate import positive_int, positive_pair

__all__ = ["MIXERS", "ConvMixer", "ViT", "ViTConfig"]

MIXERS = ("conv", "mhsa")
NUM_HEADS = 9  # |N(S, P′)| for every odd kernel 3 ≤ k ≤ 2P′+1 (T2)


@dataclass(frozen=True)
class ViTConfig:
    """The shape of a CMHSA ViT; `kernel_size` is K of CMHSA-K (the phase-1 convolution)."""

    image_size: tuple[int, int]
    in_channels: int
    num_classes: int
    patch_size: int = 2
    sub_patch: int = 2  # P′: a token is a P′×P′ block of C′ channels
    sub_channels: int = 8  # C′
    depth: int = 2
    mlp_ratio: float = 2.0
    kernel_size: int = 3

    def __post_init__(self) -> None:
        H, W = positive_pair(self.image_size, "image_size")
        object.__setattr__(self, "image_size", (H, W))
        for name in ("in_channels", "patch_size", "sub_patch", "sub_channels", "depth"):
            positive_int(getattr(self, name), name)
        positive_int(self.num_classes, "num_classes", minimum=2)
        P, Pp, k = self.patch_size, self.sub_patch, positive_int(self.kernel_size, "kernel_size")
        if H % P or W % P:
            raise ValueError(
                f"image_size={(H, W)} is not divisible by patch_size={P}: the patch embedding "
                f"needs H and W to be multiples of the patch size (e.g. patch_size in "
                f"{[p for p in range(1, min(H, W) + 1) if H % p == 0 and W % p == 0]})"
            )
        if k % 2 == 0 or not 3 <= k <= 2 * Pp + 1:
            raise ValueError(
                f"kernel_size={k} with sub_patch={Pp}: the patch construction gives 9 heads only "
                f"for odd kernels 3 <= k <= 2·sub_patch+1 = {2 * Pp + 1} (reach <= sub_patch); "
                f"allowed kernel sizes: {list(range(3, 2 * Pp + 2, 2))}, or raise sub_patch"
            )
        reach = max(abs(int(v)) for v in patch_neighbourhood(k, Pp).ravel())
        if reach >= min(self.grid):
            raise ValueError(
                f"image_size={(H, W)} with patch_size={P} gives a {self.grid[0]}×{self.grid[1]} "
                f"token grid; the kernel reaches {reach} token(s) away, so the grid needs at "
                f"least {reach + 1} tokens per side"
            )
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"mlp_ratio must be a positive number, got {self.mlp_ratio!r}")

    @property
    def grid(self) -> tuple[int, int]:
        """Return the token grid (h, w) = (H/P, W/P)."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def dim(self) -> int:
        """Return the token width d = P′²·C′."""
        return self.sub_patch**2 * self.sub_channels

    @property
    def map_size(self) -> tuple[int, int]:
        """Return the size (hP′, wP′) of the map the convolution acts on."""
        return (self.grid[0] * self.sub_patch, self.grid[1] * self.sub_patch)

    @property
    def num_heads(self) -> int:
        """Return the MHSA head count, 9 = |N(S, P′)| (T2)."""
        return NUM_HEADS

    def to_dict(self) -> dict:
        """Return the config as a JSON-ready dict (inverse: `ViTConfig(**d)`)."""
        return asdict(self)


class ConvMixer(nn.Module):
    """The phase-1 token mixer: a k×k 'same' convolution on the re-assembled (hP′)×(wP′) map."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.sub_patch = config.sub_patch
        self.map_size = config.map_size
        C = config.sub_channels
        self.conv = nn.Conv2d(C, C, config.kernel_size, padding="same")

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Return the tokens of conv(map(t)): (B, T, d) → (B, T, d)."""
        x = patches_to_image(t, self.sub_patch, self.map_size)  # (B, C′, hP′, wP′)
        return image_to_patches(self.conv(x), self.sub_patch)  # (B, T, P′²C′)


class _MLP(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """One pre-norm transformer block: x + mixer(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig, mixer: nn.Module) -> None:
        super().__init__()
        d = config.dim
        self.norm1 = nn.LayerNorm(d)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(d)
        self.mlp = _MLP(d, max(1, round(config.mlp_ratio * d)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output tokens (B, T, d)."""
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _mhsa(config: ViTConfig) -> RelPosMHSA:
    d = config.dim
    layer = RelPosMHSA.initialised(config.grid, d, d, config.num_heads, d, sink=True)
    layer.check_finite = False  # no host–device sync per layer and step on a GPU
    return layer


class ViT(nn.Module):
    """A CMHSA ViT: `mixer="mhsa"` (self-attention) or `mixer="conv"` (its convolutional variant).

    Images (B, C, H, W) → logits (B, num_classes). Parameters are drawn from torch's global
    generator (seed it with `torch.manual_seed` for a deterministic model).

    >>> cfg = ViTConfig(image_size=8, in_channels=1, num_classes=10)
    >>> ViT(cfg, "conv")(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, config: ViTConfig, mixer: str) -> None:
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"config must be a ViTConfig, got {type(config).__name__}")
        if mixer not in MIXERS:
            raise ValueError(f"mixer={mixer!r}: expected one of {MIXERS}")
        self.config = config
        self.mixer_kind = mixer
        d, P = config.dim, config.patch_size
        self.embed = nn.Conv2d(config.in_channels, d, P, stride=P)
        make = (lambda: ConvMixer(config)) if mixer == "conv" else (lambda: _mhsa(config))
        self.blocks = nn.ModuleList(Block(config, make()) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the class logits (B, num_classes) of images x (B, C, H, W)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(f"x must be images (B, C, H, W), got {getattr(x, 'shape', type(x))}")
        expected = (self.config.in_channels, *self.config.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"x has shape {tuple(x.shape)}; this model takes (B, {expected})")
        t = self.embed(x).flatten(2).transpose(1, 2)  # (B, T, d), tokens row-major
        for block in self.blocks:
            t = block(t)
        return self.head(self.norm(t).mean(dim=1))  # global average pooling → (B, classes)

    def mixers(self) -> list[nn.Module]:
        """Return the token mixers, one per block."""
        return [block.mixer for block in self.blocks]
