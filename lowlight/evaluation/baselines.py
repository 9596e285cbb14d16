"""Classical baselines the pipeline is compared with, each low uint8 RGB -> uint8 RGB.

* ``identity``: the input itself (what "unprocessed" scores).
* ``histeq``: global histogram equalisation of each RGB channel (Gonzalez & Woods,
  "Digital Image Processing", ch. 3), as a 256-entry lookup table per channel.
* ``clahe``: contrast-limited adaptive histogram equalisation (Zuiderveld,
  "Contrast Limited Adaptive Histogram Equalization", Graphics Gems IV, 1994),
  scikit-image's ``equalize_adapthist`` on the HSV value channel.
* ``gamma``: one gamma curve applied to every channel, its exponent chosen so the
  output's mean luma (0.299 R + 0.587 G + 0.114 B, in 0..1) equals
  ``evaluate.gamma_mean``.

:func:`baselines` returns the registry with the parameters of ``params.yaml`` bound.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from PIL import Image

from lowlight.config import EvaluateConfig
from lowlight.histbranch.histogram import LUMA_WEIGHTS

__all__ = ["identity", "histeq", "clahe", "gamma", "gamma_exponent", "baselines", "NAMES"]

NAMES = ("identity", "histeq", "clahe", "gamma")
_GAMMA_RANGE = (1 / 20, 20.0)  # exponents beyond this only posterise; the search stops at the ends


def _check(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        what = f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"expected a uint8 H x W x 3 RGB array, got a {what}")


def _channel_histograms(img: np.ndarray) -> np.ndarray:
    """(3, 256) counts, one bincount for all channels (channel c's values offset by 256 c)."""
    offsets = np.array([0, 256, 512], dtype=np.int32)
    return np.bincount((img.reshape(-1, 3) + offsets).ravel(), minlength=768).reshape(3, 256)


def _apply_luts(img: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Per-channel lookup: ``luts`` is (3, 256) uint8."""
    return luts[np.arange(3), img]


def identity(low: np.ndarray) -> np.ndarray:
    _check(low)
    return low.copy()


def histeq(low: np.ndarray) -> np.ndarray:
    """Per-channel histogram equalisation; a constant channel is left as it is."""
    _check(low)
    hist = _channel_histograms(low)
    cdf = np.cumsum(hist, axis=1)
    n = cdf[:, -1:]
    # the first occupied level maps to 0 and the last to 255 (the textbook mapping)
    cdf_min = np.take_along_axis(cdf, np.argmax(hist > 0, axis=1)[:, None], axis=1)
    span = n - cdf_min
    lut = np.where(span > 0, np.rint((cdf - cdf_min) / np.maximum(span, 1) * 255.0), np.arange(256))
    return _apply_luts(low, np.clip(lut, 0, 255).astype(np.uint8))


def clahe(low: np.ndarray, clip_limit: float = 0.01) -> np.ndarray:
    """scikit-image CLAHE (value channel of HSV, tiles of 1/8 of the image)."""
    _check(low)
    from skimage.exposure import equalize_adapthist

    out = equalize_adapthist(low, clip_limit=clip_limit)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def gamma_exponent(low: np.ndarray, target_mean: float) -> float:
    """The exponent g for which ``255 * (x / 255) ** g`` has mean luma ``target_mean`` (0..1).

    Mean luma falls monotonically as g grows, so a bisection on log g over the
    channel histograms (256 levels, not the pixels) finds it; it is clamped to
    [1/20, 20] when the target cannot be reached (e.g. an image mostly at 0).
    """
    _check(low)
    hist = _channel_histograms(low).astype(np.float64)
    weights = hist * LUMA_WEIGHTS[:, None] / low.shape[0] / low.shape[1]  # luma weight of each (channel, level)
    levels = np.arange(256) / 255.0

    def mean_luma(g: float) -> float:
        return float((weights * levels ** g).sum())

    lo, hi = np.log(_GAMMA_RANGE[0]), np.log(_GAMMA_RANGE[1])
    if mean_luma(np.exp(lo)) <= target_mean:
        return float(np.exp(lo))
    if mean_luma(np.exp(hi)) >= target_mean:
        return float(np.exp(hi))
    for _ in range(60):  # interval 6 in log g, halved 60 times: far below float resolution of the LUT
        mid = 0.5 * (lo + hi)
        if mean_luma(np.exp(mid)) > target_mean:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def gamma(low: np.ndarray, target_mean: float = 0.45) -> np.ndarray:
    """One gamma curve on all channels so the mean luma becomes ``target_mean``."""
    g = gamma_exponent(low, target_mean)
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lut[low]


def lime(low: np.ndarray, gamma_t: float = 0.8, floor: float = 0.04) -> np.ndarray:
    """A LIME-style illumination-map baseline (Guo et al., "LIME: Low-Light Image Enhancement via
    Illumination Map Estimation", TIP 2017), simplified: the illumination ``T`` is the
    per-pixel channel maximum smoothed by a Gaussian of 2 % of the shorter side (LIME
    refines it with a structure-aware optimisation), and the output is ``low / T ** gamma_t``.
    Local by construction: the benchmarks' classical reference for local exposure."""
    _check(low)
    from PIL import ImageFilter

    radius = max(1.0, 0.02 * min(low.shape[:2]))
    t = Image.fromarray(low.max(axis=2)).filter(ImageFilter.GaussianBlur(radius))
    t = np.maximum(np.asarray(t, dtype=np.float32) / 255.0, floor) ** gamma_t
    return np.clip(np.rint(low.astype(np.float32) / t[..., None]), 0, 255).astype(np.uint8)


def baselines(cfg: EvaluateConfig | None = None) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Name -> function(low) -> enhanced, with ``evaluate`` params bound, in :data:`NAMES` order."""
    cfg = cfg or EvaluateConfig()
    return {
        "identity": identity,
        "histeq": histeq,
        "clahe": functools.partial(clahe, clip_limit=cfg.clahe_clip),
        "gamma": functools.partial(gamma, target_mean=cfg.gamma_mean),
    }
