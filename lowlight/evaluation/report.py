"""Pictures and tables of an evaluation: what the ``evaluate`` stage shows people.

* ``comparison.png``: one row per example image, columns low | each method |
  reference, each enhanced image titled with its PSNR;
* ``psnr_per_image.png``: per-image PSNR as bars, one panel per method, with the
  method's mean as a dashed line (where a method wins or loses, not just its mean);
* a markdown table of the means, written by the stage so the README never
  carries hand-typed numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from lowlight.atomic import atomic_dir
from lowlight.plotting import plt, save_figure

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Example", "comparison_grid", "psnr_bars", "write_plots", "markdown_table"]

_THUMB_WIDTH = 256  # pixels per picture in the grid: readable, and the PNG stays small for a README


@dataclass
class Example:
    """One image of the comparison grid: the input, the reference and every method's output."""

    stem: str
    low: np.ndarray
    ref: np.ndarray
    outputs: Mapping[str, np.ndarray]
    psnr: Mapping[str, float]


def _thumb(img: np.ndarray, width: int = _THUMB_WIDTH) -> np.ndarray:
    if img.shape[1] <= width:
        return img
    from PIL import Image

    h = max(1, round(img.shape[0] * width / img.shape[1]))
    return np.asarray(Image.fromarray(img).resize((width, h), Image.Resampling.LANCZOS))


def comparison_grid(examples: Sequence[Example], names: Sequence[str], path: str | Path) -> Path:
    """low | each method | reference for each example, PSNR in each title.

    An ``identity`` method is the low image itself, so it is not drawn twice: its
    PSNR goes in the low column's title.
    """
    shown = [n for n in names if n != "identity"]
    cols = ["low", *shown, "reference"]
    h, w = examples[0].low.shape[:2]
    cell = 2.2
    fig, axes = plt.subplots(len(examples), len(cols), squeeze=False,
                             figsize=(cell * len(cols), cell * h / w * len(examples) + 0.4 * len(examples)))
    for r, ex in enumerate(examples):
        images = [ex.low, *(ex.outputs[n] for n in shown), ex.ref]
        for c, (col, img) in enumerate(zip(cols, images)):
            ax = axes[r, c]
            ax.imshow(_thumb(img))
            ax.set_xticks([])
            ax.set_yticks([])
            if col == "low":
                score = f", {ex.psnr['identity']:.2f} dB" if "identity" in ex.psnr else ""
                title = f"low: {ex.stem}{score}"
            elif col == "reference":
                title = "reference"
            else:
                title = f"{col}: {ex.psnr[col]:.2f} dB"
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def psnr_bars(df: "pd.DataFrame", names: Sequence[str], path: str | Path, split: str = "") -> Path:
    """Per-image PSNR, one bar panel per method, sharing the axes so panels compare."""
    n = len(df)
    x = np.arange(n)
    fig, axes = plt.subplots(len(names), 1, sharex=True, sharey=True, squeeze=False,
                             figsize=(min(18.0, 3.0 + 0.18 * n), 1.4 + 1.3 * len(names)))
    for ax, name in zip(axes[:, 0], names):
        values = df[f"psnr_{name}"].to_numpy()
        ax.bar(x, values, width=0.8, color="tab:blue")
        ax.axhline(values.mean(), color="tab:red", ls="--", lw=1)
        ax.set_ylabel("PSNR (dB)", fontsize=8)
        ax.set_title(f"{name}: mean {values.mean():.2f} dB", fontsize=9, loc="left")
        ax.grid(axis="y", alpha=0.3)
    ax = axes[-1, 0]
    step = max(1, int(np.ceil(n / 60)))  # at most ~60 labels stay readable
    ax.set_xticks(x[::step])
    ax.set_xticklabels(df["stem"].astype(str).to_numpy()[::step], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel(f"image ({split} split)" if split else "image")
    fig.tight_layout()
    return save_figure(fig, path)


def write_plots(plots_dir: str | Path, examples: Sequence[Example], df: "pd.DataFrame",
                names: Sequence[str], split: str = "") -> Path:
    """Build the whole plots folder and swap it in at once (a DVC output folder)."""
    with atomic_dir(plots_dir) as tmp:
        if examples:
            comparison_grid(examples, names, tmp / "comparison.png")
        psnr_bars(df, names, tmp / "psnr_per_image.png", split)
    return Path(plots_dir)


def markdown_table(result: Mapping, dataset: str = "") -> str:
    """The means of the evaluate stage (``stages/evaluate.py``) as a markdown table; no timings, so a
    rerun of the same work writes the same bytes (they are in ``metrics/timings/eval.json``)."""
    methods = result["methods"]
    where = f" of `{dataset}`" if dataset else ""
    lines = [
        f"Split `{result['split']}`{where}, {result['n_images']} images. PSNR on uint8 RGB (peak 255) and SSIM "
        "(Gaussian 11x11, sigma 1.5, per channel), per image then averaged; GT-mean columns first scale the "
        "output to the reference's grey mean. Well-lit input: each distinct reference given as the input, "
        "PSNR against itself (a photo that needs nothing should come back as it was).",
        "",
        "| method | PSNR (dB) | SSIM | PSNR GT-mean (dB) | SSIM GT-mean | PSNR well-lit input (dB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in methods.items():
        lit = f"{m['psnr_well_lit']:.2f}" if "psnr_well_lit" in m else "-"
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['psnr_gt_mean']:.2f} | "
                     f"{m['ssim_gt_mean']:.4f} | {lit} |")
    return "\n".join(lines) + "\n"
