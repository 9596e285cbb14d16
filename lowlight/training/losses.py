"""Training losses, chosen by ``train.loss``, and a differentiable SSIM.

* ``mse_mae``: MSE + MAE, the loss of the published LLCNN-style network.
* ``psnr_l1``: -PSNR (dB, per image, peak 1) + L1, the loss of the published
  patch transformer. Only the relative weight of the terms matters to Adam;
  the PSNR term dominates, the L1 term keeps gradients informative once the
  error is small and PSNR's log flattens.
* ``l1_ssim``: L1 + (1 - SSIM), the default. L1 keeps colours and brightness
  right, SSIM (Wang et al., "Image quality assessment: from error visibility to
  structural similarity", IEEE TIP 2004) rewards local structure (edges, texture)
  over the smoothing that pixel losses alone favour on noisy inputs.

:class:`SSIM` is the evaluation SSIM in torch: an 11-tap Gaussian window with
sigma 1.5 per channel, population covariances, K1 = 0.01, K2 = 0.03, averaged over
the positions where the window fits inside the image. That is exactly what
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=...)`` computes (it filters the whole
image and then crops the 5-pixel border), which ``tests/test_losses.py`` checks.
``train.color_weight`` adds an L1 term on each image's channel means
(:func:`mean_color`): the global brightness and colour that the GT-mean
PSNR forgives and plain PSNR does not. Losses are computed in float32 even under autocast.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SSIM", "ssim", "psnr", "LOSSES", "mean_color", "build_loss"]


def gaussian_kernel(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (scipy.ndimage's weights for truncate=(size//2)/sigma)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class SSIM(nn.Module):
    """Mean SSIM of two N x C x H x W batches in [0, ``data_range``]; ``reduction='none'`` gives one per image."""

    def __init__(self, window: int = 11, sigma: float = 1.5, data_range: float = 1.0, k1: float = 0.01,
                 k2: float = 0.03):
        super().__init__()
        if window % 2 != 1:
            raise ValueError(f"SSIM window must be odd, got {window}")
        self.window = window
        self.c1 = (k1 * data_range) ** 2
        self.c2 = (k2 * data_range) ** 2
        self.register_buffer("kernel", gaussian_kernel(window, sigma).float(), persistent=False)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        # separable 'valid' filtering: no padding, so no border effects to crop
        c = x.shape[1]
        k = self.kernel.to(x.dtype)
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def forward(self, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4:
            raise ValueError(f"SSIM needs two N x C x H x W tensors of one shape, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
        if min(x.shape[-2:]) < self.window:
            raise ValueError(f"SSIM needs images of at least {self.window} x {self.window} pixels, "
                             f"got {x.shape[-2]} x {x.shape[-1]}")
        x, y = x.float(), y.float()
        n, c = x.shape[:2]
        # one blur call for the five maps: means, second moments and the cross term
        stats = self._blur(torch.cat([x, y, x * x, y * y, x * y], dim=1))
        mx, my, mxx, myy, mxy = stats.split(c, dim=1)
        vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
        s = ((2 * mx * my + self.c1) * (2 * vxy + self.c2)) / ((mx * mx + my * my + self.c1) * (vx + vy + self.c2))
        per_image = s.mean(dim=(1, 2, 3))
        if reduction == "none":
            return per_image
        if reduction == "mean":
            return per_image.mean()
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


_SSIM = SSIM()


def ssim(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """SSIM of images in [0, 1] (see :class:`SSIM`)."""
    return _SSIM.to(x.device)(x, y, reduction=reduction)


def psnr(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """PSNR in dB of images in [0, 1], per image (peak 1); the float counterpart of the uint8 metric."""
    mse = (x.float() - y.float()).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    per_image = -10.0 * torch.log10(mse)
    return per_image.mean() if reduction == "mean" else per_image


def mse_mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred, target = pred.float(), target.float()
    return F.mse_loss(pred, target) + F.l1_loss(pred, target)


def psnr_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -psnr(pred, target) + F.l1_loss(pred.float(), target.float())


def l1_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred.float(), target.float()) + (1.0 - ssim(pred, target))


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse_mae": mse_mae,
    "psnr_l1": psnr_l1,
    "l1_ssim": l1_ssim,
}


def mean_color(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance of each image's per-channel means: its global brightness and colour, whatever the detail."""
    return (pred.float().mean(dim=(2, 3)) - target.float().mean(dim=(2, 3))).abs().mean()


def build_loss(name: str, color_weight: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``train.loss`` by name, plus ``color_weight`` x :func:`mean_color` when that weight is above 0."""
    try:
        base = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}") from None
    if color_weight <= 0:
        return base

    def with_color(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return base(pred, target) + color_weight * mean_color(pred, target)

    return with_color

