"""Exploratory analysis of the training pairs: how well do the dark image's percentiles
predict the well-lit image's? The premise of the learned histogram-mapping method is
that they do; this stage measures it before the quantile model relies on it.

For every training pair and channel (and BT.601 luma) it records the low and high values
at every ``percentile_step``-th percentile, then the Pearson correlation, across images,
of each low percentile with each high percentile: per channel, pooled over the three
channels (one row per image and channel), and on luma. Summary figures go to a JSON
file; the per-image percentiles to a CSV; three PNGs show the correlation heatmaps,
the histograms of a few pairs and the brightness distributions.

What this shows on LOL is in the README ("LOL results"); each run's figures in
``metrics/eda.json``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHANNELS", "correlation_matrix", "correlation_summary", "percentile_correlations", "percentile_table"]

CHANNELS = ("r", "g", "b", "luma")


def correlation_matrix(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Pearson correlation across rows of each ``low`` column with each ``high`` column.

    ``low``: ``(n, K)``, ``high``: ``(n, K)`` -> ``(K, K)`` with ``[i, j] = corr(low_i, high_j)``.
    A column that does not vary (e.g. every dark image's 0th percentile is 0) has no
    correlation: NaN.
    """
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    if low.shape[0] < 2:
        return np.full((low.shape[1], high.shape[1]), np.nan)
    lc = low - low.mean(axis=0)
    hc = high - high.mean(axis=0)
    ls = np.sqrt((lc**2).sum(axis=0))
    hs = np.sqrt((hc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (lc.T @ hc) / np.outer(ls, hs)
    corr[~np.isfinite(corr)] = np.nan
    corr[(ls == 0)[:, None] | (hs == 0)[None, :]] = np.nan
    return np.clip(corr, -1.0, 1.0)


def correlation_summary(corr: np.ndarray, threshold: float) -> dict:
    """Share of correlations >= ``threshold`` (NaN counts as below), undefined count, max, mean, diagonal mean."""
    finite = np.isfinite(corr)
    total = corr.size
    diag = np.diag(corr)
    return {
        # NaN (a constant percentile) counts as below the threshold: it predicts nothing
        "frac_ge_threshold": float(np.sum(np.where(finite, corr, -np.inf) >= threshold) / total),
        "undefined": int(total - finite.sum()),
        "max": float(np.nanmax(corr)) if finite.any() else None,
        "mean": float(np.nanmean(corr)) if finite.any() else None,
        "diag_mean": float(np.nanmean(diag)) if np.isfinite(diag).any() else None,
    }


def percentile_table(stems, low_pct: np.ndarray, high_pct: np.ndarray, levels: np.ndarray):
    """Long table: one row per (image, channel) with ``low_pNNN`` and ``high_pNNN`` columns."""
    import pandas as pd

    rows = []
    for i, stem in enumerate(stems):
        for c, name in enumerate(CHANNELS):
            row = {"stem": stem, "channel": name}
            row.update({f"low_p{int(p):03d}": float(v) for p, v in zip(levels, low_pct[i, c])})
            row.update({f"high_p{int(p):03d}": float(v) for p, v in zip(levels, high_pct[i, c])})
            rows.append(row)
    return pd.DataFrame(rows)


def percentile_correlations(low_pct: np.ndarray, high_pct: np.ndarray) -> dict[str, np.ndarray]:
    """Low-vs-high percentile correlations ``(K, K)`` per channel, pooled over R, G, B, and on luma.

    ``low_pct``, ``high_pct``: ``(N, 4, K)`` percentiles of N pairs for R, G, B and luma.
    """
    k = low_pct.shape[-1]
    corrs = {name: correlation_matrix(low_pct[:, c], high_pct[:, c]) for c, name in enumerate(CHANNELS[:3])}
    corrs["pooled"] = correlation_matrix(low_pct[:, :3].reshape(-1, k), high_pct[:, :3].reshape(-1, k))
    corrs["luma"] = correlation_matrix(low_pct[:, 3], high_pct[:, 3])
    return corrs
