"""The exposure anchor: how far the network may move the mapping's overall brightness.

The quantile model decides the exposure (the mapped image's brightness): it is a
regularised booster fitted with grouped cross-validation. The network's global
branch can move that brightness too, and on LOL ``val`` its moves are a net loss
(mean absolute error of the grey mean against the reference: 16.0 levels mapped,
16.6 after the network; correlation 0.52 -> 0.46): with a few hundred training scenes
it learns their brightness by heart. ``train.exposure_anchor`` (``alpha``) pulls the
network's output back towards the mapped image's grey mean::

    out' = round(out * (grey(mapped) / grey(out)) ** alpha)

0 keeps the network's own brightness, 1 gives the output exactly the mapping's. One
gain for the whole photo (also when the network runs in tiles), so local contrast and
colour are the network's. Training's validation applies it to the same uint8 pixels, so
checkpoints are picked on what the enhancer will output.

A gain above 1 rolls off near white (:func:`shoulder_table`), as a film or a raw
converter's highlight shoulder does: tones up to :data:`KNEE` of full scale are scaled
exactly and the brighter ones are compressed into what is left, so white stays white, and a
bright sky or window the photo did not clip is not clipped by the gain (docs/results.md,
"The highlight shoulder"; ``python benchmarks/highlight_knee_ablation.py``).

The person's own exposure compensation (``lowlight enhance --exposure EV``, the app's
exposure slider) is :func:`compensate_exposure`: the result times ``2 ** EV`` in linear light,
as a raw converter's exposure slider, with the same shoulder above the knee.
"""

from __future__ import annotations

import numpy as np

from lowlight.histbranch.histogram import LUMA_WEIGHTS, pil_view
from lowlight.srgb import linear_to_srgb, srgb_to_linear

__all__ = ["KNEE", "EXPOSURE_MAX", "exposure_gain", "anchor_exposure", "grey_mean_u8", "scale_levels", "shoulder_table",
           "compensation_table", "compensate_exposure"]

MAX_GAIN = 4.0  # a near-black network output is not scaled up without bound
KNEE = 0.8  # of full scale: a gain above 1 is exact up to here and rolls off above (chosen on LOL val and train-side photos)
EXPOSURE_MAX = 3.0  # the exposure compensation's range in stops, either way


def grey_mean_u8(rgb: np.ndarray) -> float:
    # the evaluator's grey mean (BT.601, what GT-mean scales by) from Pillow's per-channel
    # histograms (C, on the interleaved pixels, exact counts): ten times faster than a NumPy
    # sum over a float64 cast, and no full-size copy
    counts = np.asarray(pil_view(rgb).histogram(), dtype=np.float64).reshape(3, 256)
    return float(counts @ np.arange(256.0) @ LUMA_WEIGHTS) / max(1, rgb.shape[0] * rgb.shape[1])


def exposure_gain(out: np.ndarray, mapped: np.ndarray, alpha: float) -> float:
    """The factor ``(grey(mapped) / grey(out)) ** alpha``, at most :data:`MAX_GAIN` (1 for a black output)."""
    if alpha == 0.0:
        return 1.0
    g_out = grey_mean_u8(out)
    if g_out <= 0.0:
        return 1.0
    return float(min((grey_mean_u8(mapped) / g_out) ** alpha, MAX_GAIN))


def anchor_exposure(out: np.ndarray, mapped: np.ndarray, alpha: float, knee: float | None = KNEE) -> np.ndarray:
    """``out`` (uint8 H x W x 3) scaled by :func:`exposure_gain` (:func:`scale_levels`, with the
    highlight shoulder at ``knee``; None scales and clips).

    A lookup table applied a band of rows at a time, so nothing full-size but the result is
    allocated on large photos; ``out`` itself is not modified.
    """
    if out.shape != mapped.shape:
        raise ValueError(f"output is {out.shape}, mapped image {mapped.shape}")
    gain = exposure_gain(out, mapped, alpha)
    if gain == 1.0:
        return out
    return scale_levels(out, gain, knee)


def shoulder_table(gain: float, knee: float | None = KNEE) -> np.ndarray:
    """The 256 levels times ``gain`` (uint8, rounded half to even), with a highlight shoulder for a gain above 1.

    With ``x = v / 255`` and ``y = gain * x``: up to ``knee`` the level is ``y``; above, with
    ``u = (y - knee) / (gain - knee)`` and ``s = (gain - knee) / (1 - knee)``, it is
    ``knee + (1 - knee) * (1 - (1 - u) ** s)``. That curve meets the line with the same slope
    (``s`` is the slope ratio), is concave and increasing, and ends at white for white, so the
    order of tones holds and no level but the top few reaches 255. ``knee`` None (or a gain
    of 1 or less) is the plain scale, clipped.
    """
    if knee is not None and not 0.0 < knee < 1.0:
        raise ValueError(f"highlight knee must be between 0 and 1 (of full scale), got {knee}")
    y = np.arange(256, dtype=np.float32) * np.float32(gain)
    if knee is not None and gain > 1.0:
        gx = np.arange(256, dtype=np.float64) / 255.0 * float(gain)
        y = np.where(gx > knee, 255.0 * _shoulder(gx, float(knee)), y).astype(np.float32)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _shoulder(y: np.ndarray, knee: float) -> np.ndarray:
    """Values ``y`` (white at ``y[-1]`` > 1) kept up to ``knee`` and rolled off above it into
    ``(knee, 1]``, with the slope 1 at the knee and white at ``y[-1]``."""
    g = float(y[-1])
    u = np.clip((y - knee) / (g - knee), 0.0, 1.0)
    return np.where(y > knee, knee + (1.0 - knee) * (1.0 - (1.0 - u) ** ((g - knee) / (1.0 - knee))), y)


def compensation_table(ev: float, knee: float = KNEE) -> np.ndarray:
    """The 256 sRGB levels with their linear light times ``2 ** ev`` (uint8, rounded).

    A raw converter's exposure: one stop (``ev`` 1) doubles the light, so mid-grey (level 119)
    goes to level 164 and black stays black. Brightening rolls off above ``knee`` of full scale
    (the sRGB value, extended past white by the same power law) as :func:`shoulder_table` does,
    so white stays white and no tone the photo did not clip is clipped; darkening is exact.
    """
    y = linear_to_srgb(srgb_to_linear(np.arange(256) / 255.0) * 2.0 ** float(ev))
    if ev > 0:
        y = _shoulder(y, knee)
    return np.clip(np.rint(255.0 * y), 0, 255).astype(np.uint8)


def compensate_exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """``rgb`` (uint8) through :func:`compensation_table` (``ev`` stops); ``rgb`` itself for 0."""
    return rgb if ev == 0 else apply_table(rgb, compensation_table(ev))


def scale_levels(out: np.ndarray, gain: float, knee: float | None = None) -> np.ndarray:
    """``out`` (uint8) through :func:`shoulder_table` (``gain``, ``knee``); a new array."""
    return apply_table(out, shoulder_table(gain, knee))


def apply_table(out: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``out`` (uint8) through a 256-level table, a band of rows at a time; a new array."""
    result = np.empty_like(out)
    rows = max(1, (1 << 20) // max(1, out.shape[1] * 3))  # np.take widens indices: a band at a time
    for y in range(0, out.shape[0], rows):
        np.take(lut, out[y:y + rows], out=result[y:y + rows])
    return result
