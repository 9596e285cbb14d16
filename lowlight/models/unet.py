"""The default network: a compact U-Net that turns the low and histogram-mapped images into the result.

Histogram mapping (:mod:`lowlight.histmap`) already gets the global tone and
colour close; what is left is mostly local: the noise the mapping amplified,
local contrast, colour casts in shadows. The network sees the low image and the
mapped one together (``[low, mapped]``, :func:`lowlight.train_data.stack_inputs`;
whether the low image helps is one of the README's ablations, ``train.inputs``).

It predicts the image itself by default. The alternative, a residual over the
mapped image (``residual=True``: ``mapped + residual``, as DnCNN does for
denoising: Zhang et al., "Beyond a Gaussian Denoiser", IEEE TIP 2017), must
reproduce the mapped image's amplified noise pixel for pixel in order to cancel
it, which a network that first folds 2 x 2 blocks into fewer channels cannot do
well. On LOL crops (128 px, batch 8, a plain brightening standing in for the
mapping), after 150-300 AdamW steps the batch loss L1 + (1 - SSIM) was 0.60-0.80
with the residual, barely below the mapped image's own 0.61-0.83, and 0.27-0.47
without it.

Layout: a U-Net (Ronneberger et al., MICCAI 2015) kept small for CPUs:

* the image is first folded 2 x 2 into channels (``PixelUnshuffle``, the
  reversible downsampling of FFDNet: Zhang et al., "FFDNet: Toward a Fast and
  Flexible Solution for CNN-Based Image Denoising", IEEE TIP 2018), so even the
  top level runs at half resolution; the output is unfolded the same way;
* each level halves the resolution with a strided 3x3 convolution and doubles
  the channels; the decoder upsamples with a 1x1 convolution + ``PixelShuffle``
  and *adds* the skip (cheaper than concatenating, same information flow);
* no normalisation layers: small batches, and full-image inference whose
  statistics differ from training crops;
* the output goes through a sigmoid; with ``residual=True`` it is
  ``mapped + residual`` clamped to [0, 1] with a straight-through gradient, so
  pixels that overshoot are still pulled back during training.

``size_multiple`` is ``unshuffle * 2 ** (levels - 1)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["UNet"]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), _act())


class Up(nn.Module):
    """Double the resolution (1x1 conv + PixelShuffle), add the skip, refine with two 3x3 convs."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Sequential(nn.Conv2d(cin, cout * 4, 1), nn.PixelShuffle(2))
        self.refine = nn.Sequential(_conv(cout, cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.refine(self.up(x) + skip)


class UNet(nn.Module):
    """Compact U-Net with ``len(widths)`` levels; ``residual`` adds its output to the last 3 input channels."""

    def __init__(self, in_channels: int = 6, widths: Sequence[int] = (16, 32, 64), unshuffle: int = 2,
                 residual: bool = False):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 1 or min(widths) < 1 or unshuffle < 1:
            raise ValueError(f"need at least one positive width and unshuffle >= 1 (got {widths}, {unshuffle})")
        if residual and in_channels < 3:
            raise ValueError("a residual U-Net needs the base image as its last 3 input channels")
        self.residual = residual
        self.size_multiple = unshuffle * 2 ** (len(widths) - 1)
        s2 = unshuffle * unshuffle
        self.fold = nn.PixelUnshuffle(unshuffle)
        self.stem = nn.Sequential(_conv(in_channels * s2, widths[0]), _conv(widths[0], widths[0]))
        self.down = nn.ModuleList(nn.Sequential(_conv(a, b, stride=2), _conv(b, b))
                                  for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList(Up(b, a) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv2d(widths[0], 3 * s2, 3, padding=1)
        self.unfold = nn.PixelShuffle(unshuffle)
        if residual:
            with torch.no_grad():
                # start close to "output = mapped image", the best guess before training
                self.out.weight.mul_(0.1)
                self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(self.fold(x))]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in reversed(self.up):
            y = up(y, skips.pop())
        y = self.unfold(self.out(y))
        if not self.residual:
            return torch.sigmoid(y)
        y = x[:, -3:] + y
        return y + (y.clamp(0, 1) - y).detach()  # clamp; identity gradient


# --------------------------------------------------------------------------- variants
from . import register_model  # noqa: E402


@register_model
def unet(**kwargs) -> UNet:
    """The default: 16-32-64 channels over three levels after a 2 x 2 fold."""
    return UNet(**kwargs)


@register_model
def unet_small(**kwargs) -> UNet:
    """8-16-32 channels: a quarter of the default's cost (oneDNN runs multiples of 8 channels best)."""
    return UNet(**{"widths": (8, 16, 32), **kwargs})


@register_model
def unet_large(**kwargs) -> UNet:
    """24-48-96-192 channels over four levels: more context for heavy noise."""
    return UNet(**{"widths": (24, 48, 96, 192), **kwargs})
