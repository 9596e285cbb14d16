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

The ``evaluate`` stage (``stages/evaluate.py``) runs every method on one split with
these functions and writes the metrics, a per-image CSV, pictures and a table.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from .errors import DataError
from .histogram import LUMA_WEIGHTS
from .imageio import is_image_file, read_rgb
from .pairs import natural_key

if TYPE_CHECKING:  # pandas is imported lazily: `import lowlight.evaluation` stays cheap
    import pandas as pd

__all__ = ["PSNR_CAP", "METRICS", "GREY_WEIGHTS", "SSIM_WINDOW", "psnr", "ssim", "grey_mean", "gt_mean",
           "score_pair", "score_images", "summarize", "evaluate_dirs", "default_workers", "pmap", "METHOD_NAME",
           "natural_key"]

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
    """Separable 11x11 Gaussian over the last two axes, borders reflected (scikit-image's choice)."""
    from scipy.ndimage import correlate1d

    return correlate1d(correlate1d(x, _TAPS, axis=-1, mode="reflect"), _TAPS, axis=-2, mode="reflect")


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


def _ssim_size_problem(width: int, height: int) -> str | None:
    if min(width, height) < SSIM_WINDOW:
        return (f"{width}x{height} pixels; SSIM needs images at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels "
                "(its window), so this image cannot be scored")
    return None


def _check_ssim_size(img: np.ndarray) -> None:
    problem = _ssim_size_problem(img.shape[1], img.shape[0])
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


def default_workers() -> int:
    """Threads for scoring: the CPUs this process may use (SSIM's filters release the GIL)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pmap(fn: Callable, items: Sequence, workers: int | None) -> list:
    workers = default_workers() if workers is None else max(1, int(workers))
    workers = min(workers, len(items)) or 1
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _frame(stems: Sequence[str], rows: Sequence[Mapping[str, float]]) -> "pd.DataFrame":
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
    return _frame(stems, rows)


def summarize(df: "pd.DataFrame") -> dict[str, float]:
    """Means over images of each metric column (a mean of per-image PSNRs, not pooled MSE)."""
    out: dict[str, float] = {"n_images": int(len(df))}
    for m in METRICS:
        if m in df:
            out[m] = float(df[m].mean())
    return out


def _images_by_stem(folder: Path, role: str, problems: list[str]) -> dict[str, Path]:
    if not folder.is_dir():
        problems.append(f"{folder}: {role} folder does not exist" if not folder.exists()
                        else f"{folder}: {role} path is not a folder")
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and is_image_file(path)):
            continue
        if path.stem in found:
            problems.append(f"{path}: same stem as {found[path.stem].name}; which {role} is meant is ambiguous")
            continue
        found[path.stem] = path
    if not found and folder.is_dir():
        problems.append(f"{folder}: no {role} images found")
    return found


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the header alone, or why the file cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:  # header only; pixels are decoded when the pair is scored
            return im.size
    except (OSError, ValueError, SyntaxError) as exc:
        return f"{path}: not a readable image ({exc})"


def evaluate_dirs(pred_dir: str | Path, ref_dir: str | Path,
                  workers: int | None = None) -> tuple["pd.DataFrame", dict[str, float]]:
    """Score every prediction in ``pred_dir`` against the same-stem reference in ``ref_dir``.

    Any image format; files are decoded as strict 8-bit RGB (nothing is silently
    converted). A missing, extra, ambiguous or size-mismatched file is a
    :class:`DataError` that lists each one. Pairs are decoded and scored one at
    a time in the thread pool, so memory stays bounded on large sets.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    problems: list[str] = []
    preds = _images_by_stem(pred_dir, "prediction", problems)
    refs = _images_by_stem(ref_dir, "reference", problems)
    if preds and refs:
        problems += [f"{preds[k]}: prediction has no reference in {ref_dir}"
                     for k in sorted(set(preds) - set(refs), key=natural_key)]
        problems += [f"{refs[k]}: reference has no prediction in {pred_dir}"
                     for k in sorted(set(refs) - set(preds), key=natural_key)]
    stems = sorted(set(preds) & set(refs), key=natural_key)
    for k in stems:
        sp, sr = _image_size(preds[k]), _image_size(refs[k])
        bad = [s for s in (sp, sr) if isinstance(s, str)]
        problems += bad
        if not bad and sp != sr:
            problems.append(f"{preds[k]}: size {sp[0]}x{sp[1]} differs from its reference "
                            f"{refs[k]} ({sr[0]}x{sr[1]})")
        elif not bad and _ssim_size_problem(*sp):
            problems.append(f"{preds[k]}: {_ssim_size_problem(*sp)}")
    if problems:
        raise DataError(problems, header=f"cannot score {pred_dir} against {ref_dir}")

    def one(k: str) -> dict[str, float]:
        pred, ref = read_rgb(preds[k]), read_rgb(refs[k])
        if pred.shape != ref.shape:  # a header that lied; unlikely but checked on the pixels
            raise DataError([f"{preds[k]}: size differs from its reference {refs[k]}"])
        return score_pair(pred, ref)

    df = _frame(stems, pmap(one, stems, workers))
    return df, summarize(df)
