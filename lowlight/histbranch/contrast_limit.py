"""The mapping's contrast limit (``histmap.max_slope``).

Where the dark image's histogram has a narrow peak (a clear sky, a plain wall), matching it
to a wider target stretches those few levels into many. That brings up faint gradients and
noise as blotches, e.g. a bright disc around a bird against the sky. As CLAHE clips its
histograms, :func:`limit_contrast` caps the lookup table's slope in log-log terms,
``d log(1+out) / d log(1+in) <= max_slope`` (1 is a pure gain). It then shifts the table,
in log terms, so that the channel's mean level is what the unlimited table gave. So the
booster still decides the exposure, and only the contrast inside a narrow band of levels is
limited. The choice of 1.5 and of the mean as the level kept: docs/ablations.md.
"""

from __future__ import annotations

import numpy as np

__all__ = ["limit_contrast"]

_LOG_LEVELS = np.log1p(np.arange(256, dtype=np.float64))


def limit_contrast(lut: np.ndarray, counts: np.ndarray, max_slope: float) -> np.ndarray:
    """Lookup table(s) ``lut`` ``(..., 256)`` with their log-log slope capped at ``max_slope``
    and the pixel-weighted mean level (``counts``: the source histograms) kept; 0 = unchanged.

    The capped table is ``expm1(c + cumsum(min(dlog1p(lut), max_slope * dlog1p(v))))``, still
    non-decreasing. ``c`` is found per table by bisection, since the clipped mean grows
    monotonically with it.
    """
    if max_slope <= 0:
        return lut
    lut = np.asarray(lut, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    step = np.minimum(np.diff(np.log1p(lut), axis=-1), max_slope * np.diff(_LOG_LEVELS))
    shape = np.concatenate([np.zeros_like(step[..., :1]), np.cumsum(step, axis=-1)], axis=-1)
    weight = counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1.0)
    want = (weight * lut).sum(axis=-1, keepdims=True)
    lo = np.full_like(want, -1.0)  # log1p of the table spans [0, log 256]: c lies in [-1, 6.6]
    hi = np.full_like(want, np.log1p(255.0) + 1.0)
    for _ in range(40):  # (hi - lo) / 2**40: far below a level
        mid = 0.5 * (lo + hi)
        low = (weight * np.clip(np.expm1(shape + mid), 0.0, 255.0)).sum(axis=-1, keepdims=True) < want
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return np.clip(np.expm1(shape + 0.5 * (lo + hi)), 0.0, 255.0)
