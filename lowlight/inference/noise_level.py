"""The sensor noise in a photo's flattest regions, in 8-bit levels: a photo that shows it was
shot in little light and pushed.

Immerkaer's operator (J. Immerkaer, "Fast Noise Variance Estimation", CVIU 1996): the
Laplacian-difference kernel ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]] / 6`` cancels any
linear ramp of the image and passes white noise with its own standard deviation. Texture
passes too, so the estimate is the median over the flattest tenth of 8 x 8 patches that
carry a signal (mean level above 4): those hold little but noise. Luma is BT.601 from
uint8 RGB. A large photo is sampled by bands of patch rows, about a megapixel in all.
"""

from __future__ import annotations

import numpy as np

from lowlight.histbranch.histogram import LUMA_WEIGHTS

__all__ = ["flat_noise_level"]

PATCH = 8
FLATTEST = 0.1  # share of the patches, the flattest, whose noise is read
SAMPLE = 1 << 20  # pixels read at most (bands of patch rows spread over the photo)


def flat_noise_level(rgb: np.ndarray) -> float:
    """The noise standard deviation (of 255) in ``rgb``'s flattest patches; 0 if too few carry a signal."""
    h, w = rgb.shape[:2]
    band = PATCH + 2
    step = max(1, int(np.ceil(h * w / SAMPLE)))
    starts = range(0, h - band + 1, band * step)
    stds, means = [], []
    weights = LUMA_WEIGHTS.astype(np.float32)
    for y0 in starts:
        y = rgb[y0:y0 + band].astype(np.float32) @ weights
        r = (y[:-2, :-2] - 2 * y[:-2, 1:-1] + y[:-2, 2:] - 2 * y[1:-1, :-2] + 4 * y[1:-1, 1:-1]
             - 2 * y[1:-1, 2:] + y[2:, :-2] - 2 * y[2:, 1:-1] + y[2:, 2:]) / 6.0
        n = (w - 2) // PATCH * PATCH
        if n == 0:
            break
        stds.append(np.sqrt((r[:, :n] ** 2).reshape(PATCH, -1, PATCH).mean(axis=(0, 2))))
        means.append(y[1:-1, 1:n + 1].reshape(PATCH, -1, PATCH).mean(axis=(0, 2)))
    if not stds:
        return 0.0
    s, m = np.concatenate(stds), np.concatenate(means)
    s = s[m > 4]
    if s.size < 10:
        return 0.0
    k = max(1, int(s.size * FLATTEST))
    return float(np.median(np.partition(s, k - 1)[:k]))
