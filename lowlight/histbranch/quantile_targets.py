"""What the quantile model's trees predict (``quantiles.target``), and back to percentiles.

* ``values``: the well-lit channel's 21 percentiles themselves.
* ``increments``: its 0th percentile and the 20 gaps between neighbours.
* ``residual``: the well-lit percentiles *minus the dark channel's own* (a feature column).
  A tree predicts an average of training targets, so it cannot extrapolate: asked for
  the percentiles of a photo brighter than every reference it was fitted on (LOL's are all
  near luma 110), ``values`` answers with the brightest it saw and darkens the photo. In
  residual form "leave it as it is" is a target of 0 for any brightness, which the
  identity pairs teach (README, "Histogram-branch choices").

Decoded outputs are monotone non-decreasing along the percentile axis and inside [0, 255]
*by construction*, whatever the trees say: ``values`` and ``residual`` are sorted and
clipped; for ``increments`` negative gaps are cut to zero, the gaps summed and the result
clipped.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TARGETS", "encode", "decode"]

TARGETS = ("values", "increments", "residual")


def encode(y: np.ndarray, kind: str, own: np.ndarray | None = None) -> np.ndarray:
    """Target percentiles ``(..., K)`` -> what the trees fit; ``own``, the dark channel's percentiles,
    is needed by ``residual`` only."""
    if kind == "values":
        return y
    if kind == "residual":
        return y - own
    return np.concatenate([y[..., :1], np.diff(y, axis=-1)], axis=-1)


def decode(t: np.ndarray, kind: str, own: np.ndarray | None = None) -> np.ndarray:
    """Raw tree outputs ``(..., K)`` -> percentiles, monotone and inside [0, 255]."""
    t = np.asarray(t, dtype=np.float64)
    if kind == "values":
        y = np.sort(t, axis=-1)
    elif kind == "residual":
        y = np.sort(t + own, axis=-1)
    else:
        y = np.cumsum(np.concatenate([t[..., :1], np.clip(t[..., 1:], 0.0, None)], axis=-1), axis=-1)
    return np.clip(y, 0.0, 255.0)
