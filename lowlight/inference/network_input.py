"""The network's input in NumPy: the stacked channels, padding to the size multiple, the context thumbnail.

The same numbers as the training side's PyTorch versions (:func:`lowlight.training.data.stack_inputs`,
:func:`lowlight.models.padding.pad_to_multiple`, :func:`lowlight.models.context.image_context`),
so the exported network sees at inference what it saw in training; the ``export`` stage checks it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CONTEXT_SIZE", "stack_inputs", "pad_amounts", "padded_chw", "image_context"]

CONTEXT_SIZE = 64  # lowlight.models.context.CONTEXT_SIZE
_PARTS = {"low": ("low",), "mapped": ("mapped",), "low+mapped": ("low", "mapped")}


def stack_inputs(low: np.ndarray, mapped: np.ndarray | None, inputs: str) -> list[np.ndarray]:
    """The uint8 images the network takes, in channel order (``low``, ``mapped`` or both)."""
    if inputs not in _PARTS:
        raise ValueError(f"unknown inputs {inputs!r}; use one of {', '.join(_PARTS)}")
    if inputs != "low" and (mapped is None or mapped.shape != low.shape):
        raise ValueError(f"inputs {inputs!r} needs the histogram-mapped image, of the low image's size")
    return [{"low": low, "mapped": mapped}[p] for p in _PARTS[inputs]]


def pad_amounts(h: int, w: int, multiple: int) -> tuple[int, int, str]:
    """Bottom and right padding to ``multiple``, and NumPy's mode for it: reflection, or the border
    repeated where the image is too small to reflect that far (as pad_to_multiple does)."""
    ph, pw = -h % multiple, -w % multiple
    return ph, pw, ("reflect" if ph < h and pw < w else "edge")


def padded_chw(parts: list[np.ndarray], multiple: int) -> np.ndarray:
    """1 x C x H' x W' float32 in [0, 1]: the parts' channels, padded to ``multiple`` (uint8 / 255, as training)."""
    h, w = parts[0].shape[:2]
    ph, pw, mode = pad_amounts(h, w, multiple)
    channels = sum(p.shape[2] for p in parts)
    out = np.empty((1, channels, h + ph, w + pw), dtype=np.float32)
    c = 0
    for part in parts:
        for k in range(part.shape[2]):
            plane = part[:, :, k]
            if ph or pw:
                plane = np.pad(plane, ((0, ph), (0, pw)), mode=mode)
            np.divide(plane, np.float32(255.0), out=out[0, c], dtype=np.float32)
            c += 1
    return out


def _bins(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive average pooling's bins: [floor(i n / size), ceil((i + 1) n / size))."""
    i = np.arange(size)
    return (i * n) // size, -((-(i + 1) * n) // size)


def _pool_axis(cum: np.ndarray, n: int, size: int, axis: int) -> np.ndarray:
    """Bin means along ``axis`` from its cumulative sums (with a leading zero)."""
    start, end = _bins(n, size)
    total = np.take(cum, end, axis=axis) - np.take(cum, start, axis=axis)
    shape = [1] * cum.ndim
    shape[axis] = size
    return total / (end - start).reshape(shape)


def image_context(parts: list[np.ndarray], size: int = CONTEXT_SIZE, band_rows: int = 256) -> np.ndarray:
    """1 x C x size x size float32: the stacked parts area-averaged to ``size`` (as ``adaptive_avg_pool2d``),
    built in bands of rows so no full-size float copy of the photo is ever held."""
    img_h, img_w = parts[0].shape[:2]
    if min(img_h, img_w) < size:  # stretched first by nearest neighbour, as image_context does
        rows = (np.arange(max(size, img_h)) * img_h) // max(size, img_h)
        cols = (np.arange(max(size, img_w)) * img_w) // max(size, img_w)
        parts = [p[rows][:, cols] for p in parts]
    out = []
    for part in parts:  # exact integer sums along rows (uint8 x width fits int32), then float64 down the columns
        h, w, c = part.shape
        narrow = np.empty((h, size, c), dtype=np.float64)
        for top in range(0, h, band_rows):
            band = part[top:top + band_rows]
            cum = np.zeros((band.shape[0], w + 1, c), dtype=np.int32)
            np.cumsum(band, axis=1, dtype=np.int32, out=cum[:, 1:])
            narrow[top:top + band_rows] = _pool_axis(cum, w, size, axis=1)
        cum = np.zeros((h + 1, size, c), dtype=np.float64)
        np.cumsum(narrow, axis=0, out=cum[1:])
        out.append(_pool_axis(cum, h, size, axis=0).transpose(2, 0, 1) / 255.0)
    return np.concatenate(out, axis=0)[None].astype(np.float32)
