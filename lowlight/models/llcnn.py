"""LLCNN: the published CNN for low-light enhancement, kept faithful as a baseline.

Reference: L. Tao, C. Zhu, G. Xiang, Y. Li, H. Jia, X. Xie, "LLCNN: A convolutional
neural network for low-light image enhancement", IEEE VCIP 2017.

Layout (paper, Fig. 2): one 3x3 convolution + ReLU lifts the image to
``channels`` feature maps; ``modules`` special modules follow; one 3x3
convolution fuses them into the output image. A special module has two stages:

* stage a: a 3x3-ReLU-3x3 path beside a 1x1 path (an Inception-like split that
  also adapts the identity), summed, ReLU;
* stage b: a residual block, identity plus 3x3-ReLU-3x3, summed, ReLU.

The paper uses 64 feature maps, three modules (17 convolution layers) and batch
normalisation after each convolution; ``batch_norm`` switches it off. The output
goes through a sigmoid here so that every model of this package ends in [0, 1].
The network is fully convolutional at full resolution, so any H x W works
(``size_multiple = 1``) but it is heavy: at the published width about 0.46 M
multiply-adds per pixel, 110 G for a 600 x 400 image (see
``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from lowlight.models.registry import register_model

__all__ = ["LLCNN"]


def _conv(cin: int, cout: int, k: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class SpecialModule(nn.Module):
    """Stage a (3x3-ReLU-3x3 beside 1x1, summed, ReLU) then stage b (residual block)."""

    def __init__(self, channels: int, batch_norm: bool):
        super().__init__()
        c = channels
        self.a_deep = nn.Sequential(_conv(c, c, 3, batch_norm), nn.ReLU(inplace=True), _conv(c, c, 3, batch_norm))
        self.a_skip = _conv(c, c, 1, batch_norm)
        self.b_deep = nn.Sequential(_conv(c, c, 3, batch_norm), nn.ReLU(inplace=True), _conv(c, c, 3, batch_norm))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.a_deep(x) + self.a_skip(x))
        return self.relu(x + self.b_deep(x))


class LLCNN(nn.Module):
    """LLCNN (Tao et al. 2017) with ``modules`` special modules of ``channels`` feature maps."""

    size_multiple = 1

    def __init__(self, in_channels: int = 3, channels: int = 64, modules: int = 3, batch_norm: bool = True):
        super().__init__()
        if in_channels < 1 or channels < 1 or modules < 1:
            raise ValueError("in_channels, channels and modules must be positive")
        self.head = nn.Sequential(_conv(in_channels, channels, 3, batch_norm), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*(SpecialModule(channels, batch_norm) for _ in range(modules)))
        # the fusing layer has no batch norm: it produces the image itself
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.tail(self.body(self.head(x))))


# --------------------------------------------------------------------------- variants


@register_model
def llcnn(**kwargs) -> LLCNN:
    """As published: 64 feature maps, 3 special modules, batch norm."""
    return LLCNN(**kwargs)


@register_model
def llcnn_small(**kwargs) -> LLCNN:
    """A quarter of the width-squared cost for CPU-budget comparisons: 32 maps, 2 modules."""
    return LLCNN(**{"channels": 32, "modules": 2, **kwargs})
