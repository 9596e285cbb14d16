"""Patch transformer: the published transformer-after-histogram-mapping design, made size-agnostic.

The design this follows (reported at 20.52 dB on LOL) cuts the histogram-mapped
image into 10 x 10 patches, runs them through a transformer encoder, folds the
tokens back into an image and finishes with a small convolutional head. As in
ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) each patch
is embedded by a learned linear map (a convolution with kernel = stride = patch
size). Two changes make it work at any image size and train on crops:

* positional information comes from a depthwise 3x3 convolution over the token
  grid after the first encoder layer (the "positional encoding generator" of
  CPVT: Chu et al., "Conditional Positional Encodings for Vision Transformers",
  ICLR 2023), so there is no fixed-size table to interpolate;
* the image is padded to a multiple of the patch size and cropped back, by
  :func:`lowlight.models.padding.run_padded` like every other model.

Folding back: each token is mapped linearly to ``head_channels`` features and the
token grid is upsampled bilinearly to full resolution. (The published fold, a
learned linear map from each token to a whole feature patch via ``PixelShuffle``,
gives every pixel position inside a patch its own weights and prints a 10-px grid:
``tests/test_models.py`` measures it.) The head also sees the input image
(``head_sees_input``), because a 10 x 10 x 3 patch squeezed into one token
loses the pixel detail the head has to put back.
"""

from __future__ import annotations

import torch
from torch import nn

from lowlight.models.registry import register_model

__all__ = ["PatchTransformer"]


class PositionalConv(nn.Module):
    """CPVT's positional encoding generator: tokens plus a depthwise conv of their 2-D grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, d = tokens.shape
        x = tokens.transpose(1, 2).reshape(b, d, *grid)
        return tokens + self.proj(x).flatten(2).transpose(1, 2)


class PatchTransformer(nn.Module):
    """Patch embedding, transformer encoder with conditional positions, fold back, conv head, sigmoid."""

    def __init__(self, in_channels: int = 3, patch_size: int = 10, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 2.0, head_channels: int = 16, head_sees_input: bool = True):
        super().__init__()
        if patch_size < 1 or depth < 1 or dim % heads:
            raise ValueError(f"need patch_size >= 1, depth >= 1 and dim divisible by heads "
                             f"(got patch_size={patch_size}, depth={depth}, dim={dim}, heads={heads})")
        self.size_multiple = patch_size
        self.head_sees_input = head_sees_input
        self.embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth))
        self.position = PositionalConv(dim)
        self.norm = nn.LayerNorm(dim)
        self.unembed = nn.Linear(dim, head_channels)
        head_in = head_channels + (in_channels if head_sees_input else 0)
        self.head = nn.Sequential(nn.Conv2d(head_in, head_channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(head_channels, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x)
        grid = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)  # N x (h*w) x dim
        for i, layer in enumerate(self.layers):
            tokens = layer(tokens)
            if i == 0:  # CPVT found positions best added after the first layer
                tokens = self.position(tokens, grid)
        feats = self.unembed(self.norm(tokens)).transpose(1, 2).reshape(x.shape[0], -1, *grid)
        feats = nn.functional.interpolate(feats, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.head_sees_input:
            feats = torch.cat([feats, x], dim=1)
        return torch.sigmoid(self.head(feats))


# --------------------------------------------------------------------------- variants


@register_model
def patch_transformer(**kwargs) -> PatchTransformer:
    """10 x 10 patches, 128-wide tokens, 4 encoder layers."""
    return PatchTransformer(**kwargs)


@register_model
def patch_transformer_small(**kwargs) -> PatchTransformer:
    """64-wide tokens, 2 encoder layers."""
    return PatchTransformer(**{"dim": 64, "depth": 2, **kwargs})
