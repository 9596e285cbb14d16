"""What the training loop leaves behind: where it goes, the per-epoch log, the summary, the pictures."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lowlight.atomic import atomic_dir, atomic_path
from lowlight.metrics_files import DIGITS, write_metrics

__all__ = ["TrainOutputs", "LOG_COLUMNS", "HEADLINE", "TIMINGS", "to_uint8", "write_log", "write_outputs", "write_plots"]

# the per-epoch log DVC plots (and git holds): quality figures only, so a rerun writes the same bytes;
# epoch 0 is a fine-tune's starting weights (no train_loss, no lr). Timings: TIMINGS, in the timings file
LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr"]
EPOCH_TIMINGS = ("epoch_seconds", "images_per_second")


@dataclass(frozen=True)
class TrainOutputs:
    """Where training writes: the best checkpoint, and optionally the summary, the log and the plots."""

    checkpoint: Path
    metrics_json: Path | None = None
    log_csv: Path | None = None
    plots_dir: Path | None = None


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [0, 1] -> H x W x 3 uint8, rounded as any image writer would."""
    return (batch[0].float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if k == "lr" else f"{v:.{DIGITS}f}") if isinstance(v, float) else v
                         for k, v in row.items() if k in LOG_COLUMNS})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    from lowlight.plotting import plt, save_figure

    epochs = [r["epoch"] for r in rows]
    trained = [r for r in rows if "train_loss" in r]  # epoch 0 (a fine-tune's start) was validated only
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], marker="o", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in rows], marker="o", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax1.set_title("Loss")
    ax2.plot(epochs, [r["val_psnr"] for r in rows], marker="o", color="C2")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("PSNR (dB)")
    ax2.set_title("Validation PSNR")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    save_figure(fig, path)


def _plot_samples(model: nn.Module, data, count: int, device: torch.device, path: Path,
                  exposure_anchor: float = 0.0) -> None:
    from lowlight.plotting import plt, save_figure
    from lowlight.training.validation import val_output  # here: validation imports this module

    count = min(count, len(data))
    with torch.inference_mode():  # the pixels validation scored
        outputs = [val_output(model.eval(), data, i, device, exposure_anchor=exposure_anchor)[1] for i in range(count)]
    columns = [("low", data.lows)] + ([("mapped", data.mapped)] if data.mapped is not None else [])
    columns += [("output", outputs), ("reference", data.targets)]
    fig, axes = plt.subplots(count, len(columns), figsize=(3.2 * len(columns), 2.4 * count), squeeze=False)
    for r in range(count):
        for c, (title, images) in enumerate(columns):
            axes[r, c].imshow(images[r])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(title)
        axes[r, 0].set_ylabel(data.stems[r], fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# what the metrics file holds; the run's other figures are in the summary the stage prints and the log
HEADLINE = ("best_val_psnr", "best_val_ssim", "best_epoch", "epochs", "parameters")
# run-time figures: the untracked timings file (lowlight.metrics_files), and MLflow
TIMINGS = ("cpu_ms_per_600x400", "cpu_threads", "train_minutes", "wall_minutes", "images_per_second")


def write_outputs(outputs: TrainOutputs, summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """The summary's headline numbers (a column each in `dvc exp show`), its timings, and the per-epoch log."""
    if outputs.metrics_json:
        timings = {k: summary[k] for k in TIMINGS if k in summary}
        timings.update({k: [r[k] for r in history if k in r] for k in EPOCH_TIMINGS})
        write_metrics(outputs.metrics_json, summary, HEADLINE, timings=timings)
    if outputs.log_csv:
        write_log(Path(outputs.log_csv), history)


def write_plots(outputs: TrainOutputs, history: list[dict[str, Any]], model: nn.Module, val_data, examples: int,
                device: torch.device, exposure_anchor: float = 0.0) -> None:
    """Loss curves and, for ``examples`` validation images, low | mapped | output | reference."""
    if outputs.plots_dir:
        with atomic_dir(outputs.plots_dir) as tmp:
            _plot_curves(history, tmp / "loss_curves.png")
            if examples:
                _plot_samples(model, val_data, examples, device, tmp / "val_samples.png", exposure_anchor)
