"""Exposure measures for photos without a reference: crushed shadows, newly blown
highlights and the lightness order error.

* **crushed**: the share of pixels whose luma stays below 0.05 (of 1) after enhancement;
  reported on dark photos (mean luma below 0.25), where shadows should be lifted; also
  among the *signal* pixels only, those whose input's brightest channel is at least
  :data:`SIGNAL` of 255 (a night sky at 0-2 levels carries nothing to lift).
* **newly blown**: the share of pixels above luma 0.98 in the output beyond the input's
  own share (a window that was already white does not count).
* **no-signal colour**: the mean colour (brightest minus dimmest channel, in 8-bit levels)
  of the output's pixels whose input carries no signal: colour that cannot have come from
  the photo (a night sky lifted to olive); nan for a photo where every pixel carries a signal.
* **LOE** (lightness order error; Wang et al., "Naturalness Preserved Enhancement
  Algorithm for Non-Uniform Illumination Images", TIP 2013): the lightness
  ``L = max(R, G, B)`` of input and output, both downsampled so the shorter side is
  50 pixels as the authors' code does; for each pixel, the number of other pixels whose
  order (brighter or not) differs between the two, averaged. 0 keeps every order.

Luma is BT.601 (the evaluator's grey weights), on uint8 RGB scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lowlight.histbranch.histogram import LUMA_WEIGHTS

__all__ = ["luma01", "crushed_share", "signal_pixels", "SIGNAL", "blown_share", "newly_blown", "no_signal_colour", "loe",
           "DARK_MEAN", "CRUSHED", "BLOWN"]

DARK_MEAN = 0.25  # photos darker than this on average are "dark" for the crushed measure
CRUSHED = 0.05
BLOWN = 0.98
SIGNAL = 3  # an input pixel whose brightest channel is under this (of 255) carries no signal to lift
_LOE_SIDE = 50


def luma01(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float32) @ LUMA_WEIGHTS.astype(np.float32)) / 255.0


def crushed_share(rgb: np.ndarray, where: np.ndarray | None = None) -> float:
    """Share of pixels under luma :data:`CRUSHED`; of the pixels ``where`` is True, if given (0 if none is)."""
    crushed = luma01(rgb) < CRUSHED
    if where is None:
        return float(crushed.mean())
    return float(crushed[where].mean()) if where.any() else 0.0


def signal_pixels(rgb: np.ndarray) -> np.ndarray:
    """The pixels (H x W bool) whose brightest channel is at least :data:`SIGNAL` of 255."""
    return np.asarray(rgb).max(axis=2) >= SIGNAL


def blown_share(rgb: np.ndarray) -> float:
    return float((luma01(rgb) > BLOWN).mean())


def newly_blown(before: np.ndarray, after: np.ndarray) -> float:
    return max(0.0, blown_share(after) - blown_share(before))


def no_signal_colour(before: np.ndarray, after: np.ndarray) -> float:
    """Mean max-minus-min channel (of 255) of ``after`` where ``before`` carries no signal; nan if it
    carries one everywhere."""
    dark = ~signal_pixels(before)
    if not dark.any():
        return float("nan")
    px = np.asarray(after)[dark].astype(np.int16)
    return float((px.max(axis=1) - px.min(axis=1)).mean())


def _lightness_small(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    r = _LOE_SIDE / min(h, w)
    size = (max(1, round(w * r)), max(1, round(h * r)))
    return np.asarray(Image.fromarray(np.asarray(rgb, dtype=np.uint8).max(axis=2)).resize(size, Image.BILINEAR),
                      dtype=np.int16).ravel()


def loe(before: np.ndarray, after: np.ndarray) -> float:
    """Lightness order error of ``after`` against ``before`` (same shape, uint8 RGB)."""
    a, b = _lightness_small(before), _lightness_small(after)
    total = 0
    for i in range(0, a.size, 512):  # (512, n) comparisons at a time: a few MB
        total += int(np.count_nonzero((a[i:i + 512, None] >= a[None, :]) != (b[i:i + 512, None] >= b[None, :])))
    return total / a.size
