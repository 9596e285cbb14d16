"""The sRGB transfer curve (IEC 61966-2-1): 8-bit photo values to linear light and back.

Both the low-light model (:mod:`lowlight.data.degrade`) and the exposure control
(:mod:`lowlight.inference.exposure`) work in linear light, where one stop doubles the light.
"""

from __future__ import annotations

import numpy as np

__all__ = ["srgb_to_linear", "linear_to_srgb"]


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding of values in [0, 1] (not the gamma-2.2 approximation)."""
    srgb = np.asarray(srgb, dtype=np.float64)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding of linear values in [0, 1]."""
    linear = np.asarray(linear, dtype=np.float64)
    # the max() keeps the power away from negatives; that branch is discarded by where()
    return np.where(linear <= 0.0031308, linear * 12.92,
                    1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055)
