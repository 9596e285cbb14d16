"""Features of a dark image for the quantile model, and its targets (the well-lit image's percentiles).

Rows are (image, channel) pairs. Features (see :func:`feature_names`):

* the channel's normalised histogram (``bins`` bins, narrow at the dark end for
  ``bin_gamma > 1``), its 21 percentiles, a channel one-hot, its mean and std;
* the image's other channels (means, stds, percentiles) and its luma percentiles;
* ``texture``: mean absolute horizontal/vertical luma differences and Immerkaer's
  noise estimate, raw and relative to the mean luma. Shot and read noise relative to
  the signal say how short the exposure was, which the histogram alone cannot;
* ``grid``: mean luma on a ``grid x grid`` layout, raw and relative to the image mean
  (where the light falls says something about how the scene would look lit).

With ``regions = G > 1`` (local exposure, :mod:`lowlight.histbranch.regions`) the rows are
(image, cell, channel): the cell's own features as above (no grid inside a cell), then
the whole photo's row prefixed ``img_``, then the cell's centre (``cell_y``, ``cell_x``
in [0, 1]). Features are ``(N, G, G, 3, F)`` and targets ``(N, G, G, 3, K)``, the cells'
own well-lit percentiles.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from lowlight.config import QuantilesConfig
from lowlight.histbranch.histogram import LEVELS, normalized_histograms, percentile_levels, percentiles, percentiles_from_counts, pil_view
from lowlight.histbranch.region_features import cell_rows, fast_enough
from lowlight.histbranch.regions import cell_bounds, cells, local_config, region_targets

__all__ = ["feature_names", "image_features", "region_features", "features", "targets", "own_percentiles"]


def feature_names(cfg: QuantilesConfig, step: int = 5) -> list[str]:
    """Column names of the feature rows, in order (:func:`image_features`, or :func:`region_features`
    for ``cfg.regions > 1``)."""
    if cfg.regions > 1:
        whole = [f"img_{n}" for n in _image_feature_names(replace(cfg, regions=1), step)]
        return _image_feature_names(local_config(cfg), step) + whole + ["cell_y", "cell_x"]
    return _image_feature_names(cfg, step)


def _image_feature_names(cfg: QuantilesConfig, step: int) -> list[str]:
    q = [f"{int(p):03d}" for p in percentile_levels(step)]
    names = [f"hist{i:03d}" for i in range(cfg.bins)]
    names += [f"p{p}" for p in q] + ["is_r", "is_g", "is_b", "mean", "std"]
    names += ["mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b"]
    names += [f"other{j}_p{p}" for j in (1, 2) for p in q]
    names += [f"luma_p{p}" for p in q]
    if cfg.texture:
        names += ["grad_x", "grad_y", "noise", "grad_x_rel", "grad_y_rel", "noise_rel"]
    if cfg.grid:
        cells = [f"{r}{c}" for r in range(cfg.grid) for c in range(cfg.grid)]
        names += [f"grid{rc}" for rc in cells] + [f"grid_rel{rc}" for rc in cells]
    return names


def own_percentiles(x: np.ndarray, cfg: QuantilesConfig, k: int) -> np.ndarray:
    """The row's own channel percentiles (``p000`` ... ``p100``) from feature rows ``(..., F)``."""
    expected = len(feature_names(cfg, 100 // (k - 1)))  # k percentiles: a step of 100 / (k - 1)
    if x.shape[-1] != expected:
        raise ValueError(f"feature rows have {x.shape[-1]} columns, not the {expected} of feature_names(cfg): "
                         "the residual target reads the row's own percentiles from them")
    return np.asarray(x[..., cfg.bins:cfg.bins + k], dtype=np.float64)


def _texture(y: np.ndarray) -> np.ndarray:
    """Mean |dx|, |dy| and Immerkaer's (1996) noise sigma of an 8-bit luma plane."""
    yi = y.astype(np.int16)
    h, w = yi.shape
    gx = float(np.abs(np.diff(yi, axis=1)).mean()) if w > 1 else 0.0
    gy = float(np.abs(np.diff(yi, axis=0)).mean()) if h > 1 else 0.0
    if h < 3 or w < 3:
        return np.array([gx, gy, 0.0])
    # the 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of [1,-2,1]: two passes
    d2x = yi[:, :-2] - 2 * yi[:, 1:-1] + yi[:, 2:]
    d2 = d2x[:-2] - 2 * d2x[1:-1] + d2x[2:]
    sigma = np.sqrt(np.pi / 2) / 6.0 * float(np.abs(d2).mean())
    return np.array([gx, gy, sigma])


def _grid_means(y: np.ndarray, grid: int) -> np.ndarray:
    """Mean of ``y`` over a ``grid x grid`` layout of near-equal blocks (any image size)."""
    h, w = y.shape
    if h < grid or w < grid:  # tiny images: repeat pixels so every block is non-empty
        y = np.repeat(np.repeat(y, -(-grid // h), axis=0), -(-grid // w), axis=1)
        h, w = y.shape
    rows = (np.arange(grid) * h) // grid
    cols = (np.arange(grid) * w) // grid
    sums = np.add.reduceat(np.add.reduceat(y, rows, axis=0, dtype=np.float64), cols, axis=1)
    sizes = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return (sums / sizes).ravel()


def image_features(img: np.ndarray, cfg: QuantilesConfig, step: int = 5) -> np.ndarray:
    """Feature rows of one uint8 RGB image: ``(3, n_features)`` float32, one row per channel."""
    q = percentile_levels(step)
    pil = pil_view(img)
    counts = np.asarray(pil.histogram(), dtype=np.float64).reshape(3, LEVELS)
    luma = pil.convert("L")  # BT.601 in C, rounded to 8 bits
    y_counts = np.asarray(luma.histogram(), dtype=np.float64)
    n = counts[0].sum()
    levels = np.arange(LEVELS, dtype=np.float64)
    mean = counts @ levels / n
    std = np.sqrt(np.maximum(counts @ levels**2 / n - mean**2, 0.0))
    pct = percentiles_from_counts(counts, q)
    y_pct = percentiles_from_counts(y_counts, q)
    hist = normalized_histograms(counts, cfg.bins, cfg.bin_gamma)

    shared = [mean, std]
    extra = []
    if cfg.texture or cfg.grid:
        y = np.asarray(luma)
        y_mean = float(y_counts @ levels / n)
    if cfg.texture:
        tex = _texture(y)
        extra.append(np.concatenate([tex, tex / (y_mean + 1.0)]))
    if cfg.grid:
        g = _grid_means(y, cfg.grid)
        extra.append(np.concatenate([g, g / (y_mean + 1.0)]))
    rows = []
    for c in range(3):
        onehot = np.eye(3)[c]
        others = pct[[(c + 1) % 3, (c + 2) % 3]].ravel()
        rows.append(np.concatenate([hist[c], pct[c], onehot, [mean[c], std[c]], *shared, others, y_pct, *extra]))
    return np.asarray(rows, dtype=np.float32)


def region_features(img: np.ndarray, cfg: QuantilesConfig, step: int = 5) -> np.ndarray:
    """Feature rows of one image's cells: ``(G, G, 3, n_features)`` float32 for ``G = cfg.regions``."""
    g = cfg.regions
    whole = image_features(img, replace(cfg, regions=1), step)
    local = local_config(cfg)
    h, w = img.shape[:2]
    ys, xs = cell_bounds(h, g).mean(axis=1) / h, cell_bounds(w, g).mean(axis=1) / w
    out = np.empty((g, g, 3, len(feature_names(cfg, step))), dtype=np.float32)
    if fast_enough(h, w, g):
        own = cell_rows(img, g, cfg.bins, cfg.bin_gamma, cfg.texture, step)
    else:  # a few pixels a cell: each crop's own features
        own = np.asarray([[image_features(np.ascontiguousarray(c), local, step) for c in row] for row in cells(img, g)])
    f = own.shape[-1]
    out[..., :f] = own
    out[..., f:-2] = whole
    out[..., -2] = ys[:, None, None]
    out[..., -1] = xs[None, :, None]
    return out


def features(images: Sequence[np.ndarray], cfg: QuantilesConfig, step: int = 5) -> np.ndarray:
    """Feature rows of many images: ``(N, 3, n_features)`` float32, or ``(N, G, G, 3, n_features)``
    with ``cfg.regions = G > 1``."""
    cell = () if cfg.regions == 1 else (cfg.regions, cfg.regions)
    if len(images) == 0:
        return np.zeros((0, *cell, 3, len(feature_names(cfg, step))), dtype=np.float32)
    one = image_features if cfg.regions == 1 else region_features
    return np.stack([one(img, cfg, step) for img in images])


def targets(highs: Sequence[np.ndarray], step: int = 5, regions: int = 1) -> np.ndarray:
    """The well-lit images' percentiles: ``(N, 3, K)``, or per cell ``(N, G, G, 3, K)`` for ``regions = G > 1``."""
    if regions == 1:
        return percentiles(highs, step)
    k = len(percentile_levels(step))
    if len(highs) == 0:
        return np.zeros((0, regions, regions, 3, k))
    return np.stack([region_targets(h, regions, step) for h in highs])
