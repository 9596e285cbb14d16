"""The default network: a compact U-Net with a global view that turns the low and
histogram-mapped images into the result.

Histogram mapping (:mod:`lowlight.histbranch.histmap`) gets the tone and colour roughly
right, but its percentiles are predicted and often off in global brightness; the
rest is local (the noise the mapping amplified, local contrast, colour casts in
shadows). So the network has two parts:

* a U-Net (Ronneberger et al., MICCAI 2015) kept small for CPUs. The image is
  first folded 2 x 2 into channels (``PixelUnshuffle``, FFDNet's reversible
  downsampling: Zhang et al., IEEE TIP 2018) so the encoder runs at half
  resolution; each level halves the resolution with a strided 3x3 convolution
  and doubles the channels; the decoder *adds* the skips (cheaper than
  concatenating). No normalisation layers: small batches, and full-image
  inference whose statistics differ from training crops.
* a **global branch** that sees the whole image: a small strided CNN over the
  64 x 64 context thumbnail (:mod:`lowlight.models.context`), pooled to one
  vector per image, which (a) scales and shifts the bottleneck features
  (FiLM: Perez et al., AAAI 2018) and (b) sets a per-image, per-channel gain and
  gamma applied to the output, the exposure and colour correction of IAT (Cui
  et al., BMVC 2022) and FLW-Net. Both start as the identity (near-zero
  last layer, small but not zero so that gradients reach the branch), so an
  untrained branch changes almost nothing.

Upsampling cannot print a periodic pattern: every upsampling step is bilinear
interpolation followed by a 3x3 convolution, and the last one goes back to full
resolution before the output convolution, which also sees the full-resolution
input. (A 1x1 convolution + ``PixelShuffle`` decoder, the earlier design, gives
each of the four sub-pixel phases its own weights and left a visible 2/4-px grid
on real photos; ``tests/test_models.py`` measures the grid index of every model.)

``size_multiple`` is ``unshuffle * 2 ** (levels - 1)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lowlight.models.registry import register_model

__all__ = ["UNet", "GlobalBranch"]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), _act())


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Up(nn.Module):
    """Bilinear 2x upsampling + 3x3 conv, add the skip, refine with two 3x3 convs."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Conv2d(cin, cout, 3, padding=1)
        self.refine = nn.Sequential(_conv(cout, cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.refine(self.up(_upsample(x, skip.shape[-2:])) + skip)


class GlobalBranch(nn.Module):
    """Context thumbnail -> one vector per image -> FiLM of the bottleneck and an output gain/gamma."""

    def __init__(self, in_channels: int, bottleneck: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            _conv(in_channels, width // 2, stride=2), _conv(width // 2, width, stride=2),
            _conv(width, width, stride=2), _conv(width, width, stride=2))
        self.mlp = nn.Sequential(nn.Linear(2 * width, width), _act())
        self.film = nn.Linear(width, 2 * bottleneck)
        self.tone = nn.Linear(width, 6)  # log gain and log gamma per output channel
        for head in (self.film, self.tone):  # near zero: the branch starts close to the identity
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.features(context)
        v = self.mlp(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))
        # bounded: an unbounded FiLM scale on un-normalised features let a 10,000-step run on LOL
        # blow up (validation PSNR 21.6 -> 13.5 dB in one epoch, and it never came back)
        scale, shift = torch.tanh(self.film(v)).chunk(2, dim=1)
        log_gain, log_gamma = torch.tanh(self.tone(v)).chunk(2, dim=1)  # each within e^-1 .. e^1
        return scale[..., None, None], shift[..., None, None], log_gain[..., None, None], log_gamma[..., None, None]


class UNet(nn.Module):
    """Compact U-Net with ``len(widths)`` levels; ``global_branch`` adds the whole-image view."""

    def __init__(self, in_channels: int = 6, widths: Sequence[int] = (16, 32, 64), unshuffle: int = 2,
                 global_branch: bool = True, head_channels: int = 8):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 1 or min(widths) < 1 or unshuffle < 1 or head_channels < 1:
            raise ValueError(f"need at least one positive width, unshuffle >= 1 and head_channels >= 1 "
                             f"(got {widths}, {unshuffle}, {head_channels})")
        self.size_multiple = unshuffle * 2 ** (len(widths) - 1)
        self.uses_context = bool(global_branch)
        self.fold = nn.PixelUnshuffle(unshuffle)
        self.stem = nn.Sequential(_conv(in_channels * unshuffle * unshuffle, widths[0]), _conv(widths[0], widths[0]))
        self.down = nn.ModuleList(nn.Sequential(_conv(a, b, stride=2), _conv(b, b))
                                  for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList(Up(b, a) for a, b in zip(widths[:-1], widths[1:]))
        self.glob = GlobalBranch(in_channels, widths[-1]) if global_branch else None
        # full resolution: the decoder's features (narrowed first: upsampling is memory-bound), upsampled,
        # beside the input itself
        self.narrow = nn.Conv2d(widths[0], head_channels, 1)
        self.head = nn.Sequential(_conv(head_channels + in_channels, head_channels),
                                  nn.Conv2d(head_channels, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.glob is not None and context is None:
            raise ValueError("this U-Net has a global branch: pass the image context (lowlight.models.context), "
                             "or call it through lowlight.models.padding.run_padded")
        skips = [self.stem(self.fold(x))]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        tone = None
        if self.glob is not None:
            scale, shift, log_gain, log_gamma = self.glob(context)
            y = y * (1 + scale) + shift
            tone = (log_gain, log_gamma)
        for up in reversed(self.up):
            y = up(y, skips.pop())
        y = torch.sigmoid(self.head(torch.cat([_upsample(self.narrow(y), x.shape[-2:]), x], dim=1)))
        if tone is None:
            return y
        log_gain, log_gamma = tone
        y = torch.exp(log_gain) * y.clamp_min(1e-4).pow(torch.exp(log_gamma))
        return y.clamp(0, 1)


# --------------------------------------------------------------------------- variants


@register_model
def unet(**kwargs) -> UNet:
    """The default: 16-32-64 channels over three levels after a 2 x 2 fold, with the global branch."""
    return UNet(**kwargs)


@register_model
def unet_small(**kwargs) -> UNet:
    """8-16-32 channels: a quarter of the default's cost (oneDNN runs multiples of 8 channels best)."""
    return UNet(**{"widths": (8, 16, 32), **kwargs})


@register_model
def unet_large(**kwargs) -> UNet:
    """24-48-96-192 channels over four levels: more context for heavy noise."""
    return UNet(**{"widths": (24, 48, 96, 192), **kwargs})
