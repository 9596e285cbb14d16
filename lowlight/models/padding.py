"""The one place where images are padded for a network and cropped back.

Every model declares ``size_multiple``: the factor its height and width must be
divisible by (2**levels for a U-Net, the patch size for the patch transformer,
1 for a fully convolutional net). :func:`run_padded` pads the bottom and right
edges by reflection up to that multiple, runs the model and crops the output
back, so every model accepts any H x W and no caller pads on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["unwrap", "size_multiple", "pad_to_multiple", "run_padded"]


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def size_multiple(model: nn.Module) -> int:
    return int(getattr(unwrap(model), "size_multiple", 1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad an N x C x H x W tensor at the bottom/right so H and W divide by ``multiple``.

    Returns the padded tensor and the original (H, W). Reflection avoids the
    artificial edges that zero padding would show the network; an image smaller
    than the padding it needs (reflection cannot reach that far) is padded by
    replicating its border instead.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def run_padded(model: nn.Module, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """``model(x)`` for any H x W: pad to ``model.size_multiple``, run, crop back.

    A model with a global view (``uses_context``, see :mod:`lowlight.models.context`)
    also gets ``context``: the whole image's thumbnail, computed here from ``x``
    (before padding) unless the caller passes the one of a larger image ``x`` is
    cut from (a training crop, an inference tile).
    """
    from lowlight.models.context import image_context, uses_context

    xp, (h, w) = pad_to_multiple(x, size_multiple(model))
    if _prefers_channels_last(model):
        # a model converted to channels_last runs its convolutions several times
        # faster on CPU when the input has the same layout
        xp = xp.contiguous(memory_format=torch.channels_last)
    if not uses_context(model):
        return model(xp)[..., :h, :w]
    if context is None:
        context = image_context(x)
    return model(xp, context.to(device=xp.device, dtype=xp.dtype))[..., :h, :w]


def _prefers_channels_last(model: nn.Module) -> bool:
    # 1x1 and depthwise kernels look contiguous in both layouts; the first
    # kernel that tells them apart decides
    for p in unwrap(model).parameters():
        if p.ndim == 4:
            last, first = p.is_contiguous(memory_format=torch.channels_last), p.is_contiguous()
            if last != first:
                return last
    return False
