"""The training loop of the ``train`` stage: one function, :func:`train`, readable in one sitting.

What it does, in order:

1. decode the train/val pairs and their histogram-mapped images once into memory
   (:mod:`lowlight.train_data`); build the model from the registry with
   ``in_channels`` set by ``train.inputs``;
2. AdamW, ReduceLROnPlateau on the validation loss, gradient clipping, early
   stopping when validation PSNR has not improved for ``train.patience`` epochs,
   an optional time budget (``train.time_budget_min``, for equal-budget
   ablations; it counts the time spent in training steps, not validation);
3. each epoch: random crops (flips, 90-degree turns) for training, then the whole
   validation images (padded by :func:`~lowlight.models.padding.run_padded`)
   for loss, PSNR and SSIM on uint8 pixels (:mod:`lowlight.evaluation`, the same
   numbers the evaluate stage reports);
4. outputs: the best checkpoint (by validation PSNR, written atomically whenever
   it improves), a per-epoch CSV log, a metrics JSON, loss curves and a grid of
   validation samples (PNG), and per-epoch MLflow metrics (``train.<name>``, step =
   epoch).

Resuming: after every epoch the whole training state (weights, optimizer,
scheduler, grad scaler, best weights, history, time spent) goes to
``<checkpoint folder>/.train_state/<name>.last.pt``, outside DVC's outputs, so
``dvc repro`` (which deletes outputs before rerunning) does not remove it. A
rerun with the same params, data and code continues after the last finished
epoch; all
randomness is a function of (seed, epoch, sample), so on CPU the result is the
same as an uninterrupted run. The file is removed when training ends normally.

Devices: ``base.device: auto`` picks CUDA when present. There, mixed precision
(bf16 where supported, else fp16 with ``torch.amp.GradScaler``), channels_last
and optional ``torch.compile``; on CPU float32 and deterministic results for a
given seed and thread count. channels_last is used on CPU too: oneDNN's
convolutions are several times faster in that layout.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in
DistributedDataParallel (NCCL on GPUs, Gloo on CPU), each rank trains on its
share of every epoch's crops (``DistributedSampler``) and validates its share of
the validation images (sums all-reduced); rank 0 alone logs and writes files.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .atomic import atomic_dir, atomic_path, write_json
from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from .config import BaseConfig, ConfigError, TrainConfig, to_dict
from .errors import DataError
from .losses import build_loss
from .models import ModelError, build_model, count_parameters, list_models
from .models.padding import run_padded, unwrap
from .tracking import NullTracker, Tracker
from .train_data import CropDataset, SplitData, check_crop, fingerprint, input_channels, load_split, to_tensor

__all__ = ["TrainingError", "train", "state_path", "pick_device", "LOG_COLUMNS", "weights_digest",
           "cpu_ms_per_image"]

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr", "epoch_seconds",
               "images_per_second"]


class TrainingError(DataError):
    """Training cannot go on (a non-finite loss, say); one line saying why and what was kept."""

    def __init__(self, message: str):
        self.problems = [message]
        ValueError.__init__(self, message)


# --------------------------------------------------------------------------- devices and processes


@dataclass
class _Ranks:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("base.device is 'cuda' but PyTorch finds no CUDA device; use 'auto' or 'cpu'")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _start_ranks(device_name: str) -> tuple[_Ranks, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world <= 1:
        return _Ranks(), device
    owns = not dist.is_initialized()
    if owns:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Ranks(dist.get_rank(), dist.get_world_size(), local_rank, owns), device


def _amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the GPU has it (no loss scaling needed), else fp16; None = float32 (always on CPU)."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, amp: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------- small helpers


def state_path(checkpoint_path: str | Path) -> Path:
    """Where the resumable training state of ``checkpoint_path`` lives (outside DVC's outputs)."""
    p = Path(checkpoint_path)
    return p.parent / ".train_state" / f"{p.stem}.last.pt"


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the weights (layout-independent): equal digests mean equal models."""
    h = hashlib.sha256()
    for key, t in sorted(unwrap(model).state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [0, 1] -> H x W x 3 uint8, rounded as any image writer would."""
    return (batch[0].float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def cpu_ms_per_image(model: nn.Module, in_channels: int, size: tuple[int, int] = (400, 600), repeats: int = 3) -> float:
    """Median wall time of one forward pass on CPU at ``size`` (H, W), the way inference runs it."""
    import copy

    m = copy.deepcopy(unwrap(model)).cpu().eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, in_channels, *size, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        run_padded(m, x)  # warm-up: oneDNN picks its kernels on the first call
        for _ in range(repeats):
            t = time.perf_counter()
            run_padded(m, x)
            times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in LOG_COLUMNS})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    # uint8 crosses to the GPU (4x less traffic than float), the scaling happens there
    return batch.to(device, non_blocking=True).float().div_(255)


# --------------------------------------------------------------------------- validation


@torch.inference_mode()
def _validate(model: nn.Module, data: SplitData, loss_fn, device: torch.device, amp: torch.dtype | None,
              ranks: _Ranks) -> dict[str, float]:
    """Loss, PSNR and SSIM over whole validation images (each rank takes every world-th image)."""
    from .evaluation import psnr, ssim  # the evaluate stage's uint8 metrics, so the numbers agree

    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, psnr, ssim, count
    for i in range(ranks.rank, len(data), ranks.world):
        x = _to_device(to_tensor(data.inputs[i])[None], device)
        y = _to_device(to_tensor(data.targets[i])[None], device)
        with _autocast(device, amp):
            pred = run_padded(model, x)
        pred8 = to_uint8(pred)
        sums += torch.tensor([float(loss_fn(pred.float(), y)), float(psnr(pred8, data.targets[i])),
                              float(ssim(pred8, data.targets[i])), 1.0], dtype=torch.float64, device=device)
    if ranks.world > 1:
        dist.all_reduce(sums)
    n = max(float(sums[3]), 1.0)
    return {"val_loss": float(sums[0]) / n, "val_psnr": float(sums[1]) / n, "val_ssim": float(sums[2]) / n}


# --------------------------------------------------------------------------- plots


def _plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    from .plotting import plt, save_figure

    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train")
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


def _plot_samples(model: nn.Module, data: SplitData, count: int, device: torch.device, path: Path) -> None:
    from .plotting import plt, save_figure

    count = min(count, len(data))
    with torch.inference_mode():
        outputs = [to_uint8(run_padded(model.eval(), _to_device(to_tensor(data.inputs[i])[None], device)))
                   for i in range(count)]
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


# --------------------------------------------------------------------------- the loop


def train(data_root: str | Path, mapped_root: str | Path | None, cfg: TrainConfig, base: BaseConfig,
          checkpoint_path: str | Path, metrics_json: str | Path | None = None, log_csv: str | Path | None = None,
          plots_dir: str | Path | None = None, tracker: Tracker | None = None,
          extra_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``data_root``'s train split, validate on its val split; return the summary.

    ``extra_params`` (e.g. ``{"histmap": {...}}``: how the mapped inputs were
    made) are stored in the checkpoint beside ``train`` and ``base`` so that
    inference can prepare its inputs the same way. Every rank returns the
    summary (with ``final_weights_sha256`` of its own weights); only rank 0
    writes files and logs to ``tracker``.
    """
    threads = torch.get_num_threads()
    if base.threads:
        torch.set_num_threads(base.threads)
    ranks, device = _start_ranks(base.device)
    try:
        return _train(ranks, device, Path(data_root), mapped_root, cfg, base, Path(checkpoint_path),
                      metrics_json, log_csv, plots_dir, tracker or NullTracker(None, "", "train"),
                      dict(extra_params or {}))
    finally:
        torch.set_num_threads(threads)
        if ranks.owns_group:
            dist.destroy_process_group()


def _train(ranks: _Ranks, device: torch.device, data_root: Path, mapped_root, cfg: TrainConfig, base: BaseConfig,
           checkpoint_path: Path, metrics_json, log_csv, plots_dir, tracker: Tracker,
           extra_params: dict[str, Any]) -> dict[str, Any]:
    say = print if ranks.main else (lambda *a, **k: None)
    if "in_channels" in cfg.model_args:
        raise ConfigError("train.model_args must not set in_channels: it follows train.inputs")

    # ---- model first: a bad train.model / train.model_args stops before any data is read
    torch.manual_seed(base.seed)
    in_ch = input_channels(cfg.inputs)
    try:
        model = build_model(cfg.model, in_channels=in_ch, **cfg.model_args)
    except ModelError as exc:
        key = "train.model" if cfg.model not in list_models() else "train.model_args"
        raise ConfigError(f"{key}: {exc}") from None

    # ---- data, decoded once
    train_data = load_split(data_root, mapped_root, "train", cfg.inputs)
    val_data = load_split(data_root, mapped_root, "val", cfg.inputs)
    check_crop(train_data, cfg.crop_size)
    if cfg.loss == "l1_ssim" and cfg.crop_size < 11:
        raise ConfigError(f"train.crop_size {cfg.crop_size} is below the 11-pixel SSIM window of loss l1_ssim")
    params = {"train": to_dict(cfg), "base": to_dict(base), **extra_params}
    # what must be equal for a saved state to be continued (the worker count does not change results)
    identity = {"train": {k: v for k, v in params["train"].items() if k != "num_workers"}, "seed": base.seed,
                "world": ranks.world, "data": fingerprint(train_data, val_data), "code": _code_digest(cfg.model)}

    # ---- model, optimiser, schedule
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor,
                                                           patience=cfg.plateau_patience)
    amp = _amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    loss_fn = build_loss(cfg.loss)
    n_params = count_parameters(model)

    # ---- resume
    state = {"epoch": 0, "best_psnr": -math.inf, "best_ssim": float("nan"), "best_epoch": 0, "bad_epochs": 0,
             "history": [], "train_seconds": 0.0, "wall_seconds": 0.0, "stopped": ""}
    best_weights: dict[str, torch.Tensor] | None = None
    last = state_path(checkpoint_path)
    saved = _load_state(last, identity, ranks, say)
    if saved is not None:
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        state.update({k: v for k, v in saved["train_state"].items() if k in state})
        best_weights = saved["best_state_dict"]
        say(f"train: resuming after epoch {state['epoch']} from {last}")
    resumed_from = state["epoch"]

    net: nn.Module = model
    if ranks.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    # ---- data loader: a fixed number of crops per epoch, split between the ranks
    per_rank = cfg.batch_size * (cfg.steps_per_epoch or math.ceil(len(train_data) / (cfg.batch_size * ranks.world)))
    dataset = CropDataset(train_data.inputs, train_data.targets, cfg.crop_size, per_rank * ranks.world, base.seed)
    sampler = DistributedSampler(dataset, num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=base.seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda", drop_last=True)

    # the budget counts training steps only: validation costs differ between models (a full-image
    # forward pass of LLCNN takes seconds) and would otherwise eat into the budget unequally
    budget_s = cfg.time_budget_min * 60
    wall_start, wall_before = time.monotonic(), state["wall_seconds"]
    epoch = state["epoch"]
    while not state["stopped"] and epoch < cfg.epochs:
        epoch += 1
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        net.train()
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.monotonic()
        loss_sum, steps, seen, over_budget = 0.0, 0, 0, False
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", disable=not ranks.main, leave=False,
                   dynamic_ncols=True, mininterval=1.0)
        for xb, yb in bar:
            x, y = _to_device(xb, device), _to_device(yb, device)
            with _autocast(device, amp):
                pred = run_padded(net, x)
            loss = loss_fn(pred, y)
            over_budget = bool(budget_s) and state["train_seconds"] + time.monotonic() - t0 > budget_s
            # every rank must take the same decisions, so the checks travel in one small all-reduce
            flags = torch.stack([loss.detach().float(), (~torch.isfinite(loss.detach())).float(),
                                 torch.tensor(float(over_budget), device=device)])
            if ranks.world > 1:
                dist.all_reduce(flags)
            loss_value, non_finite, over_budget = float(flags[0]) / ranks.world, bool(flags[1]), bool(flags[2])
            if non_finite:
                raise TrainingError(
                    f"training stopped: the {cfg.loss} loss became {loss_value} at epoch {epoch}, step {steps + 1}. "
                    f"Kept: the best checkpoint {checkpoint_path if best_weights is not None else '(none yet)'} and "
                    f"the state after epoch {epoch - 1} in {last}. Try a lower train.lr, train.grad_clip > 0 or "
                    "train.amp: false")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss_value
            steps += 1
            seen += x.shape[0] * ranks.world
            bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{seen / (time.monotonic() - t0):.1f}")
            if over_budget:
                break
        bar.close()
        train_seconds = time.monotonic() - t0
        state["train_seconds"] += train_seconds
        if ranks.world > 1:
            # DDP syncs buffers (batch-norm statistics) before each forward, so each rank still holds the
            # statistics of its own last batch; take rank 0's so every rank validates and ends the same model
            for buf in model.buffers():
                dist.broadcast(buf, src=0)
        val = _validate(model, val_data, loss_fn, device, amp, ranks)
        scheduler.step(val["val_loss"])
        row = {"epoch": epoch, "train_loss": loss_sum / max(steps, 1), **val, "lr": lr,
               "epoch_seconds": time.monotonic() - t0, "images_per_second": seen / max(train_seconds, 1e-9)}
        state["history"].append(row)
        improved = val["val_psnr"] > state["best_psnr"]
        if improved:
            state.update(best_psnr=val["val_psnr"], best_ssim=val["val_ssim"], best_epoch=epoch, bad_epochs=0)
            best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        if over_budget:
            state["stopped"] = "time_budget"
        elif state["bad_epochs"] >= cfg.patience:
            state["stopped"] = "early_stopping"
        state["epoch"] = epoch
        state["wall_seconds"] = wall_before + time.monotonic() - wall_start
        if ranks.main:
            say(f"epoch {epoch}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  val_loss {val['val_loss']:.4f}  "
                f"val_psnr {val['val_psnr']:.2f} dB  val_ssim {val['val_ssim']:.4f}  lr {lr:.2g}  "
                f"{row['images_per_second']:.1f} img/s{'  *' if improved else ''}")
            metrics = {"val_psnr": state["best_psnr"], "val_ssim": state["best_ssim"], "epoch": state["best_epoch"]}
            if improved:  # the checkpoint first: if it cannot be written, the earlier log stays as it was
                save_checkpoint(checkpoint_path, model, cfg.inputs, params, metrics)
            if log_csv:
                _write_log(Path(log_csv), state["history"])
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch, prefix="train.")
            save_checkpoint(last, model, cfg.inputs, params, metrics, extra={
                "epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "best_state_dict": best_weights,
                "train_state": {**state, "identity": identity}})
    state["stopped"] = state["stopped"] or "epochs"

    final_digest = weights_digest(model)
    summary: dict[str, Any] = {
        "model": cfg.model, "inputs": cfg.inputs, "loss": cfg.loss, "parameters": n_params,
        "best_val_psnr": state["best_psnr"], "best_val_ssim": state["best_ssim"], "best_epoch": state["best_epoch"],
        "epochs": state["epoch"], "stopped": state["stopped"], "resumed_from_epoch": resumed_from,
        "train_minutes": state["train_seconds"] / 60, "wall_minutes": state["wall_seconds"] / 60, "world_size": ranks.world, "device": str(device.type),
        "amp": str(amp).replace("torch.", "") if amp else "off",
        "images_per_second": float(np.mean([r["images_per_second"] for r in state["history"]]))
        if state["history"] else 0.0,
    }
    if ranks.main:
        if best_weights is None:
            raise TrainingError("training ended before any epoch finished; nothing to save")
        model.load_state_dict(best_weights)
        best = {"val_psnr": state["best_psnr"], "val_ssim": state["best_ssim"], "epoch": state["best_epoch"]}
        save_checkpoint(checkpoint_path, model, cfg.inputs, params, best)
        summary["cpu_ms_per_600x400"] = cpu_ms_per_image(model, in_ch)
        summary["cpu_threads"] = torch.get_num_threads()
        _write_outputs(summary, state["history"], model, val_data, cfg.examples, device, metrics_json, log_csv,
                       plots_dir)
        last.unlink(missing_ok=True)  # finished: a rerun starts afresh
        try:
            last.parent.rmdir()
        except OSError:
            pass  # other files there
    if ranks.world > 1:
        dist.barrier()  # nobody leaves the group while rank 0 still writes
    summary["final_weights_sha256"] = final_digest
    return summary


def _write_outputs(summary: dict[str, Any], history: list[dict[str, Any]], model: nn.Module, val_data: SplitData,
                   examples: int, device: torch.device, metrics_json, log_csv, plots_dir) -> None:
    if metrics_json:
        write_json(metrics_json, summary)
    if log_csv:
        _write_log(Path(log_csv), history)
    if plots_dir:
        with atomic_dir(plots_dir) as tmp:
            _plot_curves(history, tmp / "loss_curves.png")
            if examples:
                _plot_samples(model, val_data, examples, device, tmp / "val_samples.png")


def _code_digest(model_name: str) -> str:
    """Digest of the sources that decide what a training state means (the model's file, the loop, losses, data).

    A state saved before one of them changed (a new default width, say) must not be continued.
    """
    import inspect

    from . import losses, train_data
    from .models import model_class

    h = hashlib.blake2b(digest_size=16)
    for module in (inspect.getmodule(model_class(model_name)), losses, train_data, sys.modules[__name__]):
        h.update(Path(inspect.getsourcefile(module)).read_bytes())
    return h.hexdigest()


def _load_state(path: Path, identity: dict[str, Any], ranks: _Ranks, say) -> dict[str, Any] | None:
    """Rank 0 reads the saved state if it belongs to this run; every rank gets the same answer."""
    saved = None
    if ranks.main and path.is_file():
        try:
            ckpt = read_checkpoint(path)
            if ckpt.get("train_state", {}).get("identity") == identity:
                saved = ckpt
            else:
                say(f"train: {path} is from other params or data; starting afresh")
        except CheckpointError as exc:
            say(f"train: ignoring unusable training state: {exc}")
    if ranks.world > 1:
        box = [saved]
        dist.broadcast_object_list(box, src=0)
        saved = box[0]
    return saved
