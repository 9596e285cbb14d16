"""DVC stage ``eda``: percentiles of the training pairs and how the low ones correlate with
the high ones (lowlight.histbranch.eda), the premise the quantile model relies on.

For every training pair and channel (and BT.601 luma): the low and high values at every
``eda.percentile_step``-th percentile (``--percentiles``, one row per image and channel),
their correlations across images (per channel, pooled, luma; headline shares and means in
``--metrics``) and three PNGs: correlation heatmaps, the histograms of a few pairs and the
brightness distributions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# this checkout's lowlight, not an installed one: `dvc exp run --temp` and queued experiments run a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight.atomic import atomic_path
from lowlight.config import load_params
from lowlight.histbranch.eda import correlation_matrix, correlation_summary, percentile_correlations, percentile_table
from lowlight.errors import DataError, report_user_errors
from lowlight.histbranch.histogram import channel_counts, luma_counts, percentile_levels, percentiles_from_counts
from lowlight.imageio import read_rgb
from lowlight.data.pairs import list_pairs
from lowlight.metrics_files import write_metrics
from lowlight.plotting import plt, save_figure


# what metrics/eda.json holds (a column each in `dvc exp show`); every channel's figures
# are in plots/eda/correlations.csv
HEADLINE = ("train_images", "mean_luma_corr", "corr_pooled_frac_ge_threshold", "corr_luma_mean")

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset root")
    ap.add_argument("--percentiles", type=Path, required=True, help="per-image percentiles (CSV)")
    ap.add_argument("--metrics", type=Path, required=True, help="summary metrics (JSON)")
    ap.add_argument("--plots", type=Path, required=True, help="folder for the PNGs")
    return ap.parse_args(argv)


def plot_correlations(corrs: dict, levels: np.ndarray, threshold: float, path: Path) -> None:
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


def plot_histograms(stems, low_counts, high_counts, path: Path, examples: int) -> None:
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
                ax.plot(levels, counts[i, c] / max(counts[i, c].sum(), 1), color=colour, lw=1)
            ax.set_xlim(0, 255)
            ax.set_title(f"{stems[i]} {label}", fontsize=9)
            ax.set_yticks([])
    axes[-1, 0].set_xlabel("8-bit level")
    axes[-1, 1].set_xlabel("8-bit level")
    fig.tight_layout()
    save_figure(fig, path)


def plot_brightness(low_mean: np.ndarray, high_mean: np.ndarray, path: Path) -> None:
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


def analyse(args: argparse.Namespace, cfg) -> dict:
    pairs = list_pairs(args.data, "train")
    if len(pairs) < 2:
        raise DataError([f"{args.data / 'train'}: {len(pairs)} training pair(s); the EDA needs at least 2"])
    levels = percentile_levels(cfg.percentile_step)
    # counts only (4 x 256 per image): the decoded images are not kept in memory
    low_counts = np.zeros((len(pairs), 4, 256), dtype=np.int64)
    high_counts = np.zeros_like(low_counts)
    for i, pair in enumerate(pairs):
        for img, out in ((read_rgb(pair.low), low_counts), (read_rgb(pair.high), high_counts)):
            out[i, :3] = channel_counts(img)
            out[i, 3] = luma_counts(img)
    low_pct = percentiles_from_counts(low_counts, levels)  # (N, 4, K)
    high_pct = percentiles_from_counts(high_counts, levels)
    stems = [p.stem for p in pairs]
    with atomic_path(args.percentiles) as tmp:
        percentile_table(stems, low_pct, high_pct, levels).to_csv(tmp, index=False, float_format="%.4g")

    corrs = percentile_correlations(low_pct, high_pct)
    lv = np.arange(256)
    low_mean = low_counts[:, 3] @ lv / low_counts[:, 3].sum(axis=1)
    high_mean = high_counts[:, 3] @ lv / high_counts[:, 3].sum(axis=1)
    mean_corr = float(correlation_matrix(low_mean[:, None], high_mean[:, None])[0, 0])
    metrics: dict = {"train_images": len(pairs), "low_mean_luma": float(low_mean.mean()),
                     "high_mean_luma": float(high_mean.mean()),
                     "mean_luma_corr": None if mean_corr != mean_corr else mean_corr}  # NaN is not JSON
    summaries = {name: correlation_summary(corr, cfg.corr_threshold) for name, corr in corrs.items()}
    for name, summary in summaries.items():
        for key, value in summary.items():
            metrics[f"corr_{name}_{key}"] = value
    write_metrics(args.metrics, metrics, HEADLINE)  # the rest: plots/eda/correlations.csv

    args.plots.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"correlation": name, **s} for name, s in summaries.items()]).to_csv(
        args.plots / "correlations.csv", index=False, float_format="%.6g")
    plot_correlations({k: corrs[k] for k in ("pooled", "r", "g", "b", "luma")}, levels, cfg.corr_threshold,
                      args.plots / "correlation.png")
    plot_histograms(stems, low_counts, high_counts, args.plots / "histograms.png", cfg.examples)
    plot_brightness(low_mean, high_mean, args.plots / "brightness.png")
    return metrics


@report_user_errors("eda")
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    p = load_params(args.params)
    m = analyse(args, p.eda)
    print(f"eda: {m['train_images']} training pairs; pooled low/high percentile correlations >= "
          f"{p.eda.corr_threshold}: {m['corr_pooled_frac_ge_threshold']:.1%} (luma "
          f"{m['corr_luma_frac_ge_threshold']:.1%}); mean luma low {m['low_mean_luma']:.1f}, "
          f"high {m['high_mean_luma']:.1f}")
    return m


if __name__ == "__main__":
    main()
