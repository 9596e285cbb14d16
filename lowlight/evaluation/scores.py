"""The one trusted evaluator: PSNR and SSIM on uint8 RGB, per image, then averaged.

Published low-light figures are often not comparable (Li et al., "Low-Light Image
and Video Enhancement Using Deep Learning: A Survey", TPAMI 2021, discuss this):
some pool MSE over a batch, some compute SSIM on grey, some silently rescale the
output to the reference's brightness ("GT-mean", popularised by KinD/Retinexformer
evaluation scripts). Here every number is defined once:

* **PSNR**: uint8 RGB, peak 255, MSE over all pixels and channels of ONE image;
  the dataset figure is the mean of per-image PSNRs (never PSNR of pooled MSE).
  Identical images have infinite PSNR; it is capped at :data:`PSNR_CAP` (100 dB)
  so that a mean over images stays a finite, usable number.
* **SSIM** (Wang et al., "Image Quality Assessment: From Error Visibility to
  Structural Similarity", IEEE TIP 2004): 11x11 Gaussian window, sigma 1.5,
  population covariance, K1=0.01, K2=0.03, data range 255, per RGB channel then
  averaged: the numbers of scikit-image's ``structural_similarity`` with exactly
  those settings, computed here so that the plain and GT-mean SSIM of a pair share
  the reference's local statistics (fewer filter passes; see ``_SsimReference``).
* **GT-mean** variants (``psnr_gt_mean``, ``ssim_gt_mean``): the prediction is
  first scaled so its grey mean (0.299 R + 0.587 G + 0.114 B) equals the
  reference's, rounded and clipped to uint8. They are reported beside the plain
  metrics, never instead of them.

Checked against the figures for unprocessed LOL low vs. high (``tests/test_evaluation.py``).

:mod:`lowlight.evaluation.folders` scores two folders of images (``lowlight evaluate``).
The ``evaluate`` stage (``stages/evaluate.py``) runs every method on one split with
these functions and writes the metrics, a per-image CSV, pictures and a table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from lowlight.errors import DataError
from lowlight.histbranch.histogram import LUMA_WEIGHTS
from lowlight.data.pairs import natural_key
from lowlight.parallel import pmap

if TYPE_CHECKING:  # pandas is imported lazily: `import lowlight.evaluation.scores` stays cheap
    import pandas as pd

__all__ = ["PSNR_CAP", "METRICS", "GREY_WEIGHTS", "SSIM_WINDOW", "psnr", "ssim", "grey_mean", "gt_mean",
           "score_pair", "score_images", "summarize", "METHOD_NAME", "natural_key"]

PSNR_CAP = 100.0
"""PSNR of identical images (MSE 0) in dB; a finite stand-in for infinity so means stay usable."""

METRICS = ("psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean")
GREY_WEIGHTS = LUMA_WEIGHTS  # ITU-R BT.601 luma, as in the GT-mean scripts
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11  # what scikit-image derives from sigma 1.5 (truncate 3.5 -> radius 5)
METHOD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------- one pair


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    for name, arr in (("prediction", pred), ("reference", ref)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array, got {type(arr).__name__}")
        if arr.dtype != np.uint8:
            raise TypeError(f"{name}: expected uint8 pixels (0..255), got {arr.dtype}; "
                            "metrics are defined on 8-bit images only")
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"{name}: expected an H x W x 3 RGB array, got shape {arr.shape}")
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference differ in size: {pred.shape[1]}x{pred.shape[0]} vs "
                         f"{ref.shape[1]}x{ref.shape[0]} (width x height)")


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    """PSNR in dB of one uint8 RGB image, peak 255; identical images give :data:`PSNR_CAP`."""
    _check_pair(pred, ref)
    diff = pred.astype(np.int32) - ref.astype(np.int32)  # exact integer squared error
    mse = float(np.einsum("ijk,ijk->", diff, diff, dtype=np.int64)) / diff.size
    if mse == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0 ** 2 / mse))


def _gaussian_taps(sigma: float = SSIM_SIGMA, radius: int = SSIM_WINDOW // 2) -> np.ndarray:
    """The 1-D window scipy's ``gaussian_filter`` (and so scikit-image) uses: normalised, radius 5."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


_TAPS = _gaussian_taps()
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian over the last two axes, borders reflected (scikit-image's choice).

    scipy where it is installed (the pipeline); the plain install has no scipy, and gets the same
    sums in NumPy (``lowlight evaluate`` there)."""
    try:
        from scipy.ndimage import correlate1d
    except ImportError:
        return _correlate_reflect(_correlate_reflect(x, -1), -2)
    return correlate1d(correlate1d(x, _TAPS, axis=-1, mode="reflect"), _TAPS, axis=-2, mode="reflect")


def _correlate_reflect(x: np.ndarray, axis: int) -> np.ndarray:
    """scipy's ``correlate1d(x, _TAPS, axis, mode="reflect")`` in NumPy ("reflect" is NumPy's "symmetric")."""
    r = len(_TAPS) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.moveaxis(np.pad(x, pad, mode="symmetric"), axis, 0)
    n = x.shape[axis]
    out = _TAPS[0] * xp[:n]
    for k in range(1, len(_TAPS)):
        out += _TAPS[k] * xp[k:k + n]
    return np.moveaxis(out, 0, axis)


class _SsimReference:
    """A reference image's local Gaussian mean and variance, computed once per image.

    The plain and the GT-mean SSIM of one prediction share them, which is most
    of why this module computes SSIM itself instead of calling scikit-image's
    ``structural_similarity`` twice; the formula, window, border handling and
    constants are the same (the tests check agreement with scikit-image to 1e-10).
    """

    def __init__(self, ref: np.ndarray):
        self.y = np.ascontiguousarray(ref.transpose(2, 0, 1), dtype=np.float64)  # channels first
        self.mu = _blur(self.y)
        self.var = _blur(self.y * self.y)
        self.var -= self.mu * self.mu

    def ssim(self, pred: np.ndarray) -> float:
        x = np.ascontiguousarray(pred.transpose(2, 0, 1), dtype=np.float64)
        mx = _blur(x)
        vx = _blur(x * x)
        vx -= mx * mx
        cxy = _blur(x * self.y)
        cxy -= mx * self.mu
        # SSIM = (2 mx my + C1)(2 cxy + C2) / ((mx^2 + my^2 + C1)(vx + vy + C2)), in place to spare memory
        num = mx * self.mu
        num *= 2
        num += _C1
        cxy *= 2
        cxy += _C2
        num *= cxy
        mx *= mx
        mx += self.mu * self.mu
        mx += _C1
        vx += self.var
        vx += _C2
        mx *= vx
        num /= mx
        r = SSIM_WINDOW // 2  # windows that reach past the border are left out of the mean
        return float(num[:, r:-r, r:-r].mean(axis=(1, 2)).mean())


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean SSIM over the three channels (Gaussian window 11, sigma 1.5, data range 255).

    Equal to scikit-image's ``structural_similarity(pred, ref, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)``.
    """
    _check_pair(pred, ref)
    _check_ssim_size(pred)
    return _SsimReference(ref).ssim(pred)


def ssim_size_problem(width: int, height: int) -> str | None:
    if min(width, height) < SSIM_WINDOW:
        return (f"{width}x{height} pixels; SSIM needs images at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels "
                "(its window), so this image cannot be scored")
    return None


def _check_ssim_size(img: np.ndarray) -> None:
    problem = ssim_size_problem(img.shape[1], img.shape[0])
    if problem is not None:
        raise ValueError(problem)


def grey_mean(img: np.ndarray) -> float:
    """Mean of 0.299 R + 0.587 G + 0.114 B over the image (unrounded)."""
    return float(img.reshape(-1, 3).mean(axis=0, dtype=np.float64) @ GREY_WEIGHTS)


def gt_mean(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``pred`` scaled so its grey mean equals ``ref``'s, rounded and clipped to uint8.

    An all-black prediction cannot be scaled and is returned unchanged.
    """
    _check_pair(pred, ref)
    mp = grey_mean(pred)
    if mp == 0:
        return pred.copy()
    scaled = pred.astype(np.float64) * (grey_mean(ref) / mp)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def score_pair(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """``{"psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean"}`` of one image."""
    _check_pair(pred, ref)
    _check_ssim_size(pred)
    adjusted = gt_mean(pred, ref)
    reference = _SsimReference(ref)
    return {"psnr": psnr(pred, ref), "ssim": reference.ssim(pred),
            "psnr_gt_mean": psnr(adjusted, ref), "ssim_gt_mean": reference.ssim(adjusted)}


# --------------------------------------------------------------------------- many pairs


def scores_frame(stems: Sequence[str], rows: Sequence[Mapping[str, float]]) -> "pd.DataFrame":
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=list(METRICS))
    df.insert(0, "stem", list(stems))
    return df


def score_images(preds: Mapping[str, np.ndarray], refs: Mapping[str, np.ndarray],
                 workers: int | None = None) -> "pd.DataFrame":
    """Per-image scores (columns ``stem`` + :data:`METRICS`), images paired by key.

    A key present on one side only, or a pair whose sizes differ, is a
    :class:`DataError` naming every such image. Images are scored in a thread
    pool of ``workers`` threads (default: all usable CPUs).
    """
    problems = [f"{k}: prediction has no reference" for k in sorted(set(preds) - set(refs), key=natural_key)]
    problems += [f"{k}: reference has no prediction" for k in sorted(set(refs) - set(preds), key=natural_key)]
    stems = sorted(set(preds) & set(refs), key=natural_key)
    for k in stems:
        try:
            _check_pair(preds[k], refs[k])
            _check_ssim_size(preds[k])
        except (TypeError, ValueError) as exc:
            problems.append(f"{k}: {exc}")
    if problems:
        raise DataError(problems, header="cannot score these images")
    if not stems:
        raise DataError(["no images to score"], header="cannot score these images")
    rows = pmap(lambda k: score_pair(preds[k], refs[k]), stems, workers)
    return scores_frame(stems, rows)


def summarize(df: "pd.DataFrame") -> dict[str, float]:
    """Means over images of each metric column (a mean of per-image PSNRs, not pooled MSE)."""
    out: dict[str, float] = {"n_images": int(len(df))}
    for m in METRICS:
        if m in df:
            out[m] = float(df[m].mean())
    return out
