"""The whole-image context a model with a global view receives beside its (cropped) input.

A network trained on 128-256 px crops and run on whole photos sees, at test
time, an image whose brightness and colour statistics differ from any crop.
Models with ``uses_context = True`` therefore take a second input: the whole
network input shrunk to ``CONTEXT_SIZE x CONTEXT_SIZE`` by area averaging
(:func:`image_context`). Training computes it once per image from the full
image and applies the crop's flips and turns to it; inference computes it once
from the whole photo and hands the same context to every tile, so a tiled run
and a whole-image run see the same global view.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CONTEXT_SIZE", "image_context", "image_context_uint8", "uses_context"]

CONTEXT_SIZE = 64


def image_context(x: torch.Tensor, size: int = CONTEXT_SIZE) -> torch.Tensor:
    """N x C x H x W in [0, 1] -> N x C x size x size, area-averaged (any H, W; smaller images are stretched)."""
    if x.ndim != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    x = x.float()
    if min(x.shape[-2:]) < size:
        x = F.interpolate(x, size=(max(size, x.shape[-2]), max(size, x.shape[-1])), mode="nearest")
    return F.adaptive_avg_pool2d(x, size)


def uses_context(model: torch.nn.Module) -> bool:
    from lowlight.models.padding import unwrap

    return bool(getattr(unwrap(model), "uses_context", False))


def image_context_uint8(image, size: int = CONTEXT_SIZE, band_rows: int = 512) -> torch.Tensor:
    """:func:`image_context` of one H x W x C uint8 array, built in bands of rows: 1 x C x size x size.

    Area averaging is separable (a bin is a rectangle of rows times columns), so each band
    is first averaged across its columns, then the narrow full-height result across rows:
    the same numbers as :func:`image_context` on the whole float image, without ever
    holding it (a 24-megapixel photo would take 290 MB per 3 channels in float32).
    """
    import numpy as np

    def tensor(a):  # a read-only array (np.asarray of a PIL image) is copied: torch warns on those
        return torch.from_numpy(np.require(a, requirements=("C", "W"))).permute(2, 0, 1)

    h, w, c = image.shape
    if min(h, w) < size:
        return image_context(tensor(image)[None].float().div_(255))
    columns = []
    for top in range(0, h, band_rows):
        band = tensor(image[top:top + band_rows]).float().div_(255)
        columns.append(F.adaptive_avg_pool1d(band, size))  # C x rows x size
    narrow = torch.cat(columns, dim=1)  # C x H x size
    return F.adaptive_avg_pool1d(narrow.transpose(1, 2), size).transpose(1, 2)[None]
