"""Local exposure: the histogram branch on a coarse grid of regions, blended without seams.

One prediction for the whole photo cannot lift the shadows of a backlit room and hold
its window at the same time: a photo that is partly bright looks "exposed enough". With
``quantiles.regions = G > 1`` the quantile model predicts the well-lit percentiles of
each cell of a ``G x G`` grid from that cell's own features *and* the whole photo's
(:func:`region_features`), and the mapping gives each cell its own CDF-matching table.

The tables are blended bilinearly between cell centres, per pixel, as CLAHE blends its
tiles (Zuiderveld, "Contrast Limited Adaptive Histogram Equalization", Graphics Gems IV,
1994): a pixel's value is the weighted mean of the four nearest cells' tables applied to
its level, so the result is continuous everywhere and there are no seams. Inside the
outer half-cells the nearest centre's table applies alone.

The blend is vectorised per band of rows (a float table row per cell column, two gathers
per channel), so memory stays bounded on camera-size photos.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lowlight.histbranch.histogram import LEVELS, percentiles_from_counts, percentile_levels, pil_view

__all__ = ["cell_bounds", "cells", "region_targets", "blend_tables", "region_counts"]

_BAND_PIXELS = 1 << 20  # rows of the blend processed together: bounds the index arrays to a few MB


def cell_bounds(n: int, g: int) -> np.ndarray:
    """``(g, 2)`` start/end of ``g`` near-equal cells along an axis of ``n`` pixels (each at least one pixel)."""
    starts = np.minimum((np.arange(g) * n) // g, n - 1)
    ends = np.maximum((np.arange(1, g + 1) * n) // g, starts + 1)
    return np.stack([starts, ends], axis=1)


def cells(img: np.ndarray, g: int) -> list[list[np.ndarray]]:
    """The ``g x g`` cells of an image (views, row-major)."""
    rows, cols = cell_bounds(img.shape[0], g), cell_bounds(img.shape[1], g)
    return [[img[r0:r1, c0:c1] for c0, c1 in cols] for r0, r1 in rows]


def region_counts(img: np.ndarray, g: int) -> np.ndarray:
    """Per-cell, per-channel level counts ``(g, g, 3, 256)`` of a uint8 RGB image."""
    return np.asarray([[np.asarray(pil_view(c).histogram(), dtype=np.float64).reshape(3, LEVELS) for c in row]
                       for row in cells(img, g)])


def region_targets(high: np.ndarray, g: int, step: int = 5) -> np.ndarray:
    """The well-lit image's percentiles per cell: ``(g, g, 3, K)``."""
    return percentiles_from_counts(region_counts(high, g), percentile_levels(step))


def local_config(cfg):
    """The per-cell feature settings: no luma grid inside a cell (the whole photo's rows carry it)."""
    return replace(cfg, grid=0, regions=1)


def _centre_weights(n: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pixel along an axis: the lower neighbouring cell, the upper one and the upper's weight."""
    b = cell_bounds(n, g)
    centres = (b[:, 0] + b[:, 1] - 1) / 2.0
    pos = np.arange(n, dtype=np.float64)
    if g == 1:
        zero = np.zeros(n, dtype=np.intp)
        return zero, zero, np.zeros(n, dtype=np.float32)
    lo = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, g - 2)
    span = np.maximum(centres[lo + 1] - centres[lo], 1e-9)
    w = np.clip((pos - centres[lo]) / span, 0.0, 1.0)
    return lo.astype(np.intp), (lo + 1).astype(np.intp), w.astype(np.float32)


def blend_tables(low: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Apply per-cell tables ``luts`` ``(g, g, 3, 256)`` (float levels) to ``low`` (uint8 H x W x 3),
    bilinearly blended between cell centres; uint8 result."""
    h, w = low.shape[:2]
    g = luts.shape[0]
    r0, r1, wr = _centre_weights(h, g)
    c0, c1, wc = _centre_weights(w, g)
    out = np.empty_like(low)
    tables = luts.astype(np.float32)
    band = max(1, _BAND_PIXELS // max(w, 1))
    col = np.arange(w, dtype=np.intp)
    for c in range(3):
        t = tables[:, :, c, :]  # (g, g, 256)
        # blend along x once per cell row: (g, W, 256), then along y per pixel (two gathers)
        across = (t[:, c0, :] * (1.0 - wc)[None, :, None] + t[:, c1, :] * wc[None, :, None]).reshape(-1)
        for y0 in range(0, h, band):
            y1 = min(y0 + band, h)
            v = low[y0:y1, :, c].astype(np.intp)
            base = col[None, :] * LEVELS + v
            top = np.take(across, r0[y0:y1, None] * (w * LEVELS) + base)
            bottom = np.take(across, r1[y0:y1, None] * (w * LEVELS) + base)
            wy = wr[y0:y1, None]
            res = top * (1.0 - wy) + bottom * wy
            np.rint(res, out=res)
            np.clip(res, 0, 255, out=res)
            out[y0:y1, :, c] = res
    return out
