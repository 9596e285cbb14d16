"""Exploratory analysis of the training pairs: how well do the dark image's percentiles
predict the well-lit image's? The premise of the learned histogram-mapping method is
that they do; this stage measures it before the quantile model relies on it.

For every training pair and channel (and BT.601 luma) it records the low and high values
at every ``percentile_step``-th percentile, then the Pearson correlation, across images,
of each low percentile with each high percentile: per channel, pooled over the three
channels (one row per image and channel), and on luma. Summary figures go to a JSON
file; the per-image percentiles to a CSV; three PNGs show the correlation heatmaps,
the histograms of a few pairs and the brightness distributions.

On LOL (388 training pairs of the prepare stage's split) the premise holds only weakly:
no low/high percentile pair reaches r = 0.6 in any channel, pooled or on luma (the
strongest pooled r is 0.38; same-percentile pairs average 0.26), and the mean brightness
of a dark shot says almost nothing about its reference's (r = 0.09). How bright the reference is must
come from the shape of the histogram and the image content, which bounds what the
quantile model can do (see lowlight.quantiles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_json
from .config import EdaConfig
from .errors import DataError
from .histogram import channel_counts, luma_counts, percentile_levels, percentiles_from_counts

__all__ = ["CHANNELS", "correlation_matrix", "percentile_table", "run_eda"]

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


def _summary(corr: np.ndarray, threshold: float) -> dict:
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


def _plot_correlations(corrs: dict, levels: np.ndarray, threshold: float, path: Path) -> None:
    from .plotting import plt, save_figure

    names = list(corrs)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 1, 3.8), squeeze=False)
    ticks = np.arange(0, len(levels), max(1, len(levels) // 5))
    im = None
    for ax, name in zip(axes[0], names):
        im = ax.imshow(corrs[name], vmin=-1, vmax=1, cmap="RdBu_r", origin="lower")
        ax.set_title(f"{name}: {np.mean(np.nan_to_num(corrs[name], nan=-2) >= threshold):.0%} >= {threshold}",
                     fontsize=9)
        ax.set_xticks(ticks, [f"{int(levels[t])}" for t in ticks])
        ax.set_yticks(ticks, [f"{int(levels[t])}" for t in ticks])
        ax.set_xlabel("high percentile")
    axes[0, 0].set_ylabel("low percentile")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="Pearson r across images")
    save_figure(fig, path)


def _plot_histograms(stems, low_counts, high_counts, path: Path, examples: int) -> None:
    from .plotting import plt, save_figure

    n = min(examples, len(stems))
    if n == 0:
        return
    idx = np.linspace(0, len(stems) - 1, n).round().astype(int)
    fig, axes = plt.subplots(n, 2, figsize=(9, 2.2 * n), squeeze=False)
    levels = np.arange(256)
    for row, i in enumerate(idx):
        for col, (counts, label) in enumerate(((low_counts, "low"), (high_counts, "high"))):
            ax = axes[row, col]
            for c, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
                h = counts[i, c] / max(counts[i, c].sum(), 1)
                ax.plot(levels, h, color=colour, lw=1)
            ax.set_xlim(0, 255)
            ax.set_title(f"{stems[i]} {label}", fontsize=9)
            ax.set_yticks([])
    axes[-1, 0].set_xlabel("8-bit level")
    axes[-1, 1].set_xlabel("8-bit level")
    fig.tight_layout()
    save_figure(fig, path)


def _plot_brightness(low_mean: np.ndarray, high_mean: np.ndarray, path: Path) -> None:
    from .plotting import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    bins = np.linspace(0, 255, 52)
    axes[0].hist(low_mean, bins=bins, alpha=0.7, label="low")
    axes[0].hist(high_mean, bins=bins, alpha=0.7, label="high")
    axes[0].set_xlabel("mean luma (8-bit)")
    axes[0].set_ylabel("images")
    axes[0].legend()
    axes[1].scatter(low_mean, high_mean, s=6, alpha=0.6)
    axes[1].set_xlabel("low mean luma")
    axes[1].set_ylabel("high mean luma")
    r = np.corrcoef(low_mean, high_mean)[0, 1] if len(low_mean) > 1 and low_mean.std() > 0 else float("nan")
    axes[1].set_title(f"r = {r:.2f}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def run_eda(data_root: str | Path, cfg: EdaConfig, percentiles_csv: str | Path, metrics_json: str | Path,
            plots_dir: str | Path) -> dict:
    """Percentile statistics of the ``train`` pairs (see the module docstring)."""
    from .imageio import read_rgb
    from .pairs import list_pairs

    data_root, plots_dir = Path(data_root), Path(plots_dir)
    pairs = list_pairs(data_root, "train")
    if len(pairs) < 2:
        raise DataError([f"{data_root / 'train'}: {len(pairs)} training pair(s); the EDA needs at least 2"])
    levels = percentile_levels(cfg.percentile_step)
    # counts only (3 x 256 per image): the decoded images are not kept in memory
    low_counts = np.zeros((len(pairs), 4, 256), dtype=np.int64)
    high_counts = np.zeros_like(low_counts)
    for i, pair in enumerate(pairs):
        for img, out in ((read_rgb(pair.low), low_counts), (read_rgb(pair.high), high_counts)):
            out[i, :3] = channel_counts(img)
            out[i, 3] = luma_counts(img)
    low_pct = percentiles_from_counts(low_counts, levels)  # (N, 4, K)
    high_pct = percentiles_from_counts(high_counts, levels)

    stems = [p.stem for p in pairs]
    table = percentile_table(stems, low_pct, high_pct, levels)
    with atomic_path(percentiles_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4g")

    corrs = {name: correlation_matrix(low_pct[:, c], high_pct[:, c]) for c, name in enumerate(CHANNELS[:3])}
    corrs["pooled"] = correlation_matrix(low_pct[:, :3].reshape(-1, len(levels)),
                                         high_pct[:, :3].reshape(-1, len(levels)))
    corrs["luma"] = correlation_matrix(low_pct[:, 3], high_pct[:, 3])

    lv = np.arange(256)
    low_mean = low_counts[:, 3] @ lv / low_counts[:, 3].sum(axis=1)
    high_mean = high_counts[:, 3] @ lv / high_counts[:, 3].sum(axis=1)
    metrics: dict = {
        "train_images": len(pairs),
        "percentile_step": cfg.percentile_step,
        "corr_threshold": cfg.corr_threshold,
        "low_mean_luma": float(low_mean.mean()),
        "high_mean_luma": float(high_mean.mean()),
        "mean_luma_corr": float(correlation_matrix(low_mean[:, None], high_mean[:, None])[0, 0]),
    }
    for name, corr in corrs.items():
        for key, value in _summary(corr, cfg.corr_threshold).items():
            metrics[f"corr_{name}_{key}"] = value
    if metrics["mean_luma_corr"] != metrics["mean_luma_corr"]:  # NaN is not JSON
        metrics["mean_luma_corr"] = None
    write_json(metrics_json, metrics)

    plots_dir.mkdir(parents=True, exist_ok=True)
    _plot_correlations({k: corrs[k] for k in ("pooled", "r", "g", "b", "luma")}, levels, cfg.corr_threshold,
                       plots_dir / "correlation.png")
    _plot_histograms(stems, low_counts, high_counts, plots_dir / "histograms.png", cfg.examples)
    _plot_brightness(low_mean, high_mean, plots_dir / "brightness.png")
    return metrics
