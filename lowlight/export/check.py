"""The exported pair checked against the PyTorch + XGBoost pipeline it came from.

On the given pairs (the ``val`` split in the ``export`` stage) both enhancers run; the exported
one passes when its outputs are within :data:`MAX_LEVEL_DIFF` of the reference's on at least
:data:`MIN_SHARE_WITHIN` of all pixels and its mean PSNR against the well-lit references is the
reference's to :data:`MAX_PSNR_DELTA` dB. These are the issue's acceptance figures, not tunables.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from lowlight.errors import UserError
from lowlight.evaluation.scores import psnr

__all__ = ["ExportCheckError", "MAX_LEVEL_DIFF", "MIN_SHARE_WITHIN", "MAX_PSNR_DELTA", "compare_pair", "require_match"]

MAX_LEVEL_DIFF = 1
MIN_SHARE_WITHIN = 0.999
MAX_PSNR_DELTA = 0.01


class ExportCheckError(UserError):
    """The exported files do not reproduce the pipeline; nothing was written."""


def compare_pair(reference, exported, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Figures of ``exported`` against ``reference`` (two enhancers) on (low, well-lit) uint8 pairs."""
    n_images = pixels = within = 0
    worst = 0
    ref_psnr, exp_psnr = [], []
    for low, high in pairs:
        a, b = reference(low), exported(low)
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        n_images += 1
        pixels += diff.size
        within += int(np.count_nonzero(diff <= MAX_LEVEL_DIFF))
        worst = max(worst, int(diff.max()))
        ref_psnr.append(psnr(a, high))
        exp_psnr.append(psnr(b, high))
    if n_images == 0:
        raise ExportCheckError("no images to check the exported files on (the val split is empty)")
    return {"n_images": n_images, "share_within_1_level": within / pixels, "max_level_diff": worst,
            "psnr_reference": float(np.mean(ref_psnr)), "psnr_exported": float(np.mean(exp_psnr)),
            "psnr_delta": float(np.mean(exp_psnr) - np.mean(ref_psnr))}


def require_match(figures: dict, where: str) -> None:
    """ExportCheckError, with the figures, unless they meet the acceptance figures."""
    problems = []
    if figures["share_within_1_level"] < MIN_SHARE_WITHIN:
        problems.append(f"{100 * figures['share_within_1_level']:.3f}% of pixels within {MAX_LEVEL_DIFF} level "
                        f"(need {100 * MIN_SHARE_WITHIN:.1f}%; worst {figures['max_level_diff']} levels)")
    if abs(figures["psnr_delta"]) > MAX_PSNR_DELTA:
        problems.append(f"PSNR {figures['psnr_exported']:.3f} dB against the pipeline's "
                        f"{figures['psnr_reference']:.3f} dB (need the same to {MAX_PSNR_DELTA} dB)")
    if problems:
        raise ExportCheckError(f"{where}: the ONNX export does not reproduce the PyTorch + XGBoost pipeline on "
                               f"{figures['n_images']} images: {'; '.join(problems)}; nothing was written")
