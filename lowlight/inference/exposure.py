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
"""

from __future__ import annotations

import numpy as np

from lowlight.histbranch.histogram import LUMA_WEIGHTS, pil_view

__all__ = ["exposure_gain", "anchor_exposure", "grey_mean_u8", "scale_levels"]

MAX_GAIN = 4.0  # a near-black network output is not scaled up without bound


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


def anchor_exposure(out: np.ndarray, mapped: np.ndarray, alpha: float) -> np.ndarray:
    """``out`` (uint8 H x W x 3) scaled by :func:`exposure_gain`, rounded half to even and clipped.

    A lookup table applied a band of rows at a time, so nothing full-size but the result is
    allocated on large photos; ``out`` itself is not modified.
    """
    if out.shape != mapped.shape:
        raise ValueError(f"output is {out.shape}, mapped image {mapped.shape}")
    gain = exposure_gain(out, mapped, alpha)
    if gain == 1.0:
        return out
    return scale_levels(out, gain)


def scale_levels(out: np.ndarray, gain: float) -> np.ndarray:
    """``out`` (uint8) times ``gain``, rounded half to even and clipped; a new array."""
    # one 256-entry table: every level v becomes round(v * gain) (float32, half to even), clipped
    lut = np.clip(np.rint(np.arange(256, dtype=np.float32) * np.float32(gain)), 0, 255).astype(np.uint8)
    result = np.empty_like(out)
    rows = max(1, (1 << 20) // max(1, out.shape[1] * 3))  # np.take widens indices: a band at a time
    for y in range(0, out.shape[0], rows):
        np.take(lut, out[y:y + rows], out=result[y:y + rows])
    return result
