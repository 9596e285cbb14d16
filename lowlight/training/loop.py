"""The training loop of the ``train`` stage, in named steps.

:func:`train` reads like the loop it runs::

    run = build(...)          model, optimiser, schedule, EMA, data loader (training_build.py)
    resume(run)               continue a matching interrupted run, if any (resume.py)
    start_as_best(run)        train.init: the starting weights are epoch 0 (validation.py)
    while not run.state.stopped:
        _one_epoch(run)       random crops, AdamW steps, lr schedule, EMA update
        validate(run)         whole validation images, uint8 PSNR/SSIM (validation.py)
        _checkpoint(run)      best model, per-epoch log, resumable state
    _finish(run)              best weights saved, summary returned

The state that changes while training (epoch, step, best scores, history, time
spent) is one dataclass, :class:`LoopState`, saved whole with the resumable
state; everything else is built once in :class:`Run` (both in training_run.py).

* AdamW; the learning rate follows one cosine decay over the run
  (``train.schedule: cosine``; its progress is the larger of steps done over
  ``epochs x steps_per_epoch`` and training-step time over
  ``train.time_budget_min``), or ReduceLROnPlateau on the validation loss.
* An exponential moving average of the weights (``train.ema_decay``; its decay
  ramps up as ``(1 + t) / (10 + t)`` so short runs are not dominated by the
  initial weights) is what is validated, kept as best and saved.
* Fine-tuning (``train.init``) validates the starting weights first, as epoch 0:
  they stay the best until an epoch beats them.
* Early stopping after ``train.patience`` epochs without a better validation
  PSNR; an optional budget of training-step minutes (validation not counted),
  for equal-budget ablations.
* Models with a global view get each crop's whole-image context
  (:mod:`lowlight.models.context`).

Resuming (:mod:`lowlight.training.resume`): all randomness is a function of (seed,
epoch, sample), so on CPU a resumed run equals an uninterrupted one (without a time budget).

Devices (:mod:`lowlight.models.devices`): CUDA with bf16/fp16 autocast, channels_last
and optional ``torch.compile``; on CPU float32, deterministic for a given seed
and thread count. Under ``torchrun`` the model is wrapped in
DistributedDataParallel; rank 0 alone logs and writes files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lowlight.models.checkpoint import save_checkpoint
from lowlight.config import BaseConfig, TrainConfig
from lowlight.models.devices import autocast, start_ranks
from lowlight.errors import DataError
from lowlight.models import count_parameters
from lowlight.models.padding import run_padded, unwrap
from lowlight.progress import is_terminal, progress as progress_bar
from lowlight.tracking import NullTracker, Tracker
from lowlight.training.data import input_channels
from lowlight.training.outputs import LOG_COLUMNS, TrainOutputs, to_uint8, write_log, write_outputs, write_plots
from lowlight.training.build import build
from lowlight.training.validation import start_as_best, validate
from lowlight.training.resume import drop_state, resume, save_state
from lowlight.training.state import LoopState, Run, TrainJob, cpu_ms_per_image, state_path, to_device, weights_digest

__all__ = ["TrainingError", "TrainOutputs", "LoopState", "train", "state_path", "LOG_COLUMNS", "weights_digest",
           "cpu_ms_per_image", "to_uint8"]


class TrainingError(DataError):
    """Training cannot go on (a non-finite loss, say); one line saying why and what was kept."""

    def __init__(self, message: str):
        super().__init__([message], header="training stopped")
        self.args = (message,)

    def __str__(self) -> str:
        return self.problems[0]


# --------------------------------------------------------------------------- one epoch


def _set_lr(run: Run, t0: float) -> float:
    cfg = run.cfg
    if cfg.schedule != "cosine":
        return run.optimizer.param_groups[0]["lr"]
    progress = run.state.step / max(run.total_steps, 1)
    if cfg.time_budget_min:
        progress = max(progress, (run.state.train_seconds + time.monotonic() - t0) / (cfg.time_budget_min * 60))
    m = cfg.min_lr_fraction
    lr = cfg.lr * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _step(run: Run, batch, epoch: int, steps: int, t0: float) -> tuple[float, bool]:
    """One optimiser step; returns the (rank-averaged) loss and whether the time budget is spent."""
    cfg, device = run.cfg, run.device
    x, y = to_device(batch[0], device), to_device(batch[1], device)
    ctx = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
    _set_lr(run, t0)
    with autocast(device, run.amp):
        pred = run_padded(run.net, x, ctx)
    loss = run.loss_fn(pred, y)
    budget_s = cfg.time_budget_min * 60
    over_budget = bool(budget_s) and run.state.train_seconds + time.monotonic() - t0 > budget_s
    # every rank must take the same decisions, so the checks travel in one small all-reduce
    flags = torch.stack([loss.detach().float(), (~torch.isfinite(loss.detach())).float(),
                         torch.tensor(float(over_budget), device=device)])
    if run.ranks.world > 1:
        dist.all_reduce(flags)
    loss_value, non_finite, over_budget = float(flags[0]) / run.ranks.world, bool(flags[1]), bool(flags[2])
    if non_finite:
        kept = run.outputs.checkpoint if run.best_weights is not None else "(none yet)"
        raise TrainingError(
            f"training stopped: the {cfg.loss} loss became {loss_value} at epoch {epoch}, step {steps + 1}. "
            f"Kept: the best checkpoint {kept} and the state after epoch {epoch - 1} in "
            f"{state_path(run.outputs.checkpoint)}. Try a lower train.lr, train.grad_clip > 0 or train.amp: false")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if cfg.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.state.step += 1
    return loss_value, over_budget


def _one_epoch(run: Run, epoch: int) -> dict[str, Any]:
    run.dataset.set_epoch(epoch)
    run.sampler.set_epoch(epoch)
    run.net.train()
    t0 = time.monotonic()
    lr = _set_lr(run, t0)
    loss_sum, steps, seen, over_budget = 0.0, 0, 0, False
    # a bar on a terminal only: in a log, the line per epoch (_checkpoint) is the step
    bar = progress_bar(run.loader, desc=f"epoch {epoch}/{run.cfg.epochs}", unit="batch",
                   disable=not (run.ranks.main and is_terminal()), leave=False, mininterval=1.0)
    for batch in bar:
        loss_value, over_budget = _step(run, batch, epoch, steps, t0)
        loss_sum += loss_value
        steps += 1
        seen += batch[0].shape[0] * run.ranks.world
        bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{seen / (time.monotonic() - t0):.1f}")
        if over_budget:
            break
    bar.close()
    seconds = time.monotonic() - t0
    run.state.train_seconds += seconds
    if run.ranks.world > 1:
        # DDP syncs buffers (batch-norm statistics) before each forward, so each rank still holds the
        # statistics of its own last batch; take rank 0's so every rank validates and ends the same model
        for buf in run.model.buffers():
            dist.broadcast(buf, src=0)
        if run.ema is not None:  # its averaged buffers came from each rank's own statistics too
            for buf in run.ema.module.buffers():
                dist.broadcast(buf, src=0)
    if over_budget:
        run.state.stopped = "time_budget"
    return {"epoch": epoch, "train_loss": loss_sum / max(steps, 1), "lr": lr, "train_seconds": seconds,
            "images_per_second": seen / max(seconds, 1e-9)}


# --------------------------------------------------------------------------- checkpoint


def _record(run: Run, row: dict[str, Any], wall_start: float, wall_before: float) -> bool:
    """Add an epoch to the state; returns whether it is the best so far."""
    st = run.state
    st.history.append(row)
    if run.plateau is not None:
        run.plateau.step(row["val_loss"])
    improved = row["val_psnr"] > st.best_psnr
    if improved:
        st.best_psnr, st.best_ssim, st.best_epoch, st.bad_epochs = row["val_psnr"], row["val_ssim"], row["epoch"], 0
        run.best_weights = {k: v.detach().cpu().clone() for k, v in unwrap(run.evaluated).state_dict().items()}
    else:
        st.bad_epochs += 1
    if not st.stopped and st.bad_epochs >= run.cfg.patience:
        st.stopped = "early_stopping"
    st.epoch = row["epoch"]
    st.wall_seconds = wall_before + time.monotonic() - wall_start
    return improved


def _checkpoint(run: Run, row: dict[str, Any], improved: bool) -> None:
    """Rank 0: the best checkpoint (first: if it cannot be written the log stays as it was), log, state."""
    if not run.ranks.main:
        return
    st, cfg = run.state, run.cfg
    run.say(f"epoch {st.epoch}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
            f"val_psnr {row['val_psnr']:.2f} dB  val_ssim {row['val_ssim']:.4f}  lr {row['lr']:.2g}  "
            f"{row['images_per_second']:.1f} img/s{'  *' if improved else ''}")
    metrics = {"val_psnr": st.best_psnr, "val_ssim": st.best_ssim, "epoch": st.best_epoch}
    if improved:
        save_checkpoint(run.outputs.checkpoint, unwrap(run.evaluated), cfg.inputs, run.params, metrics)
    if run.outputs.log_csv:
        write_log(Path(run.outputs.log_csv), st.history)
    run.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=st.epoch, prefix="train.")
    save_state(run, metrics)


# --------------------------------------------------------------------------- finish


def _finish(run: Run) -> dict[str, Any]:
    st, cfg = run.state, run.cfg
    st.stopped = st.stopped or "epochs"
    final_digest = weights_digest(run.evaluated)
    summary: dict[str, Any] = {
        "model": cfg.model, "inputs": cfg.inputs, "loss": cfg.loss, "parameters": count_parameters(run.model),
        "best_val_psnr": st.best_psnr, "best_val_ssim": st.best_ssim, "best_epoch": st.best_epoch,
        "epochs": st.epoch, "stopped": st.stopped, "resumed_from_epoch": run.resumed_from,
        "train_minutes": st.train_seconds / 60, "wall_minutes": st.wall_seconds / 60, "world_size": run.ranks.world,
        "device": str(run.device.type), "amp": str(run.amp).replace("torch.", "") if run.amp else "off",
        "ema": bool(run.ema is not None),
        "images_per_second": float(np.mean(speeds)) if (speeds := [r["images_per_second"] for r in st.history
                                                                    if "images_per_second" in r]) else 0.0,
        # a fine-tune none of whose epochs beat its starting weights saves them unchanged
        "kept_starting_weights": cfg.init != "none" and st.best_epoch == 0,
    }
    if run.ranks.main:
        if run.best_weights is None:
            raise TrainingError("training ended before any epoch finished; nothing to save")
        best = unwrap(run.evaluated)
        best.load_state_dict(run.best_weights)
        metrics = {"val_psnr": st.best_psnr, "val_ssim": st.best_ssim, "epoch": st.best_epoch}
        save_checkpoint(run.outputs.checkpoint, best, cfg.inputs, run.params, metrics)
        summary["cpu_ms_per_600x400"] = cpu_ms_per_image(best, input_channels(cfg.inputs))
        summary["cpu_threads"] = torch.get_num_threads()
        write_outputs(run.outputs, summary, st.history)
        write_plots(run.outputs, st.history, best, run.val_data, cfg.examples, run.device, cfg.exposure_anchor)
        drop_state(run)  # finished: a rerun starts afresh
    if run.ranks.world > 1:
        dist.barrier()  # nobody leaves the group while rank 0 still writes
    summary["final_weights_sha256"] = final_digest
    return summary


# --------------------------------------------------------------------------- the loop


def train(data_root: str | Path, mapped_root: str | Path | None, cfg: TrainConfig, base: BaseConfig,
          outputs: TrainOutputs, tracker: Tracker | None = None,
          extra_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``data_root``'s train split, validate on its val split; return the summary.

    ``extra_params`` (e.g. ``{"histmap": {...}}``: how the mapped inputs were
    made) are stored in the checkpoint beside ``train`` and ``base`` so that
    inference can prepare its inputs the same way. Every rank returns the
    summary (with ``final_weights_sha256`` of its own final weights); only rank
    0 writes files and logs to ``tracker``.
    """
    threads = torch.get_num_threads()
    if base.threads:
        torch.set_num_threads(base.threads)
    ranks, device = start_ranks(base.device)
    try:
        job = TrainJob(Path(data_root), mapped_root, cfg, base, outputs, tracker or NullTracker("train"),
                       dict(extra_params or {}))
        run = build(job, ranks, device)
        resume(run)
        if cfg.init != "none" and not run.state.history:
            start_as_best(run)
        wall_start, wall_before = time.monotonic(), run.state.wall_seconds
        while not run.state.stopped and run.state.epoch < cfg.epochs:
            row = _one_epoch(run, run.state.epoch + 1)
            row.update(validate(run))
            row["epoch_seconds"] = row.pop("train_seconds")
            improved = _record(run, row, wall_start, wall_before)
            _checkpoint(run, row, improved)
        return _finish(run)
    finally:
        torch.set_num_threads(threads)
        if ranks.owns_group:
            dist.destroy_process_group()
