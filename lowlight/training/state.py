"""What the training loop holds: its changing state (:class:`LoopState`, saved whole for
resuming), what it builds once (:class:`Run`), and the small helpers around them."""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler

from lowlight.config import BaseConfig, TrainConfig
from lowlight.models.devices import Ranks
from lowlight.models.padding import run_padded, unwrap
from lowlight.tracking import Tracker
from lowlight.training.data import CropDataset, SplitData
from lowlight.training.outputs import TrainOutputs

__all__ = ["TrainJob", "LoopState", "Run", "state_path", "weights_digest", "cpu_ms_per_image", "to_device", "ema_step"]


@dataclass(frozen=True)
class TrainJob:
    """What one training run is asked to do: its data, settings, outputs and where it logs.

    ``extra_params`` (e.g. ``{"histmap": {...}}``: how the mapped inputs were made) are
    stored in the checkpoint beside ``train`` and ``base``.
    """

    data_root: Path
    mapped_root: Path | None
    cfg: TrainConfig
    base: BaseConfig
    outputs: TrainOutputs
    tracker: Tracker
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopState:
    """Everything that changes while training; saved whole so a run can resume."""

    epoch: int = 0
    step: int = 0
    best_psnr: float = -math.inf
    best_ssim: float = float("nan")
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    stopped: str = ""


@dataclass
class Run:
    """What :func:`train` builds once: config, devices, model, optimiser, data, outputs."""

    cfg: TrainConfig
    base: BaseConfig
    ranks: Ranks
    device: torch.device
    model: nn.Module  # the bare model (trained)
    net: nn.Module  # what the forward pass calls (DDP / compiled wrapper of model)
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    plateau: Any  # ReduceLROnPlateau or None
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    loss_fn: Any
    train_data: SplitData
    val_data: SplitData
    dataset: CropDataset
    sampler: DistributedSampler
    loader: DataLoader
    outputs: TrainOutputs
    tracker: Tracker
    params: dict[str, Any]
    identity: dict[str, Any]
    state: LoopState = field(default_factory=LoopState)
    best_weights: dict[str, torch.Tensor] | None = None
    resumed_from: int = 0

    @property
    def say(self):
        return print if self.ranks.main else (lambda *a, **k: None)

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated and saved: the EMA when on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * len(self.loader)


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


def cpu_ms_per_image(model: nn.Module, in_channels: int, size: tuple[int, int] = (400, 600), repeats: int = 3) -> float:
    """Median wall time of one forward pass on CPU at ``size`` (H, W), the way inference runs it."""
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


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    # uint8 crosses to the GPU (4x less traffic than float), the scaling happens there
    return batch.to(device, non_blocking=True).float().div_(255)


def ema_step(decay: float):
    """EMA update for AveragedModel whose decay ramps up with the number of updates."""
    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1 - d)
        for e, p in zip(ema_params, params):
            if not e.is_floating_point():  # counters (batch norm's num_batches_tracked) follow the model
                e.copy_(p)
    return update
