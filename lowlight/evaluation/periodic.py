"""A grid index: how strongly an image carries a periodic pattern at 2, 4 or 8 pixels.

Networks that upsample with a learned sub-pixel layout (``PixelShuffle``,
transposed convolutions) or fold an image into blocks can print a regular grid,
invisible in a thumbnail and obvious in a zoomed flat region (Odena et al.,
"Deconvolution and Checkerboard Artifacts", Distill 2016). Its signature is a
narrow peak in the power spectrum at the block period and its harmonics.

:func:`grid_index` measures it on the luma plane: the power spectrum of every
row (and every column), Hann-windowed and averaged over rows (columns), read at
the frequencies ``k / period`` (``k = 1 .. period // 2``) and divided by the
median power of the neighbouring frequencies (a band of ``band`` bins on each
side, the peak's own bins left out). A natural photo's spectrum falls smoothly,
so the ratio is about 1; a grid gives tens. The index is the largest ratio over
the periods and both axes.
"""

from __future__ import annotations

import numpy as np

from lowlight.histbranch.histogram import LUMA_WEIGHTS

__all__ = ["GRID_PERIODS", "grid_index", "peak_ratios"]

GRID_PERIODS = (2, 4, 8)


def _mean_power(plane: np.ndarray) -> np.ndarray:
    """Power spectrum along the last axis, averaged over the other: (n // 2 + 1,)."""
    n = plane.shape[-1]
    x = plane - plane.mean(axis=-1, keepdims=True)
    spec = np.fft.rfft(x * np.hanning(n), axis=-1)
    return (spec.real**2 + spec.imag**2).mean(axis=0)


def _ratios(power: np.ndarray, n: int, periods, band: int) -> dict[int, float]:
    out = {}
    for p in periods:
        best = 0.0
        for k in range(1, p // 2 + 1):
            f = round(n * k / p)  # bin of frequency k / p cycles per pixel
            if f >= len(power):
                f = len(power) - 1
            lo, hi = max(1, f - band), min(len(power), f + band + 1)
            neighbours = np.r_[power[lo:max(lo, f - 1)], power[min(hi, f + 2):hi]]
            if neighbours.size == 0:
                continue
            peak = power[max(0, f - 1):f + 2].max()
            best = max(best, float(peak / max(np.median(neighbours), 1e-12)))
        out[p] = best
    return out


def peak_ratios(image: np.ndarray, periods=GRID_PERIODS, band: int = 8) -> dict[str, float]:
    """``{"x2": ratio, "y2": ratio, ...}`` for a uint8 RGB (or 2-D grey) image."""
    img = np.asarray(image, dtype=np.float64)
    y = img @ LUMA_WEIGHTS if img.ndim == 3 else img
    if min(y.shape) < 4 * max(periods):
        raise ValueError(f"grid index needs an image at least {4 * max(periods)} px on each side, got "
                         f"{y.shape[1]}x{y.shape[0]}")
    out = {}
    for axis, plane in (("x", y), ("y", y.T)):
        for p, r in _ratios(_mean_power(plane), plane.shape[-1], periods, band).items():
            out[f"{axis}{p}"] = r
    return out


def grid_index(image: np.ndarray, periods=GRID_PERIODS, band: int = 8) -> float:
    """The largest spectral peak ratio at ``periods`` over both axes (about 1 for a natural image)."""
    return max(peak_ratios(image, periods, band).values())
