"""Building a training run once: the model (and ``train.init``), data, optimiser, schedule, EMA, loader."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler

from lowlight.models.checkpoint import CheckpointError, read_checkpoint
from lowlight.config import BaseConfig, ConfigError, TrainConfig, to_dict
from lowlight.models.devices import Ranks, amp_dtype
from lowlight.training.losses import build_loss
from lowlight.models import ModelError, build_model, list_models
from lowlight.models.context import uses_context
from lowlight.training.data import (CropDataset, at_mapped_exposure, check_crop, contexts, fingerprint, input_channels,
                                    load_split)
from lowlight.training.state import Run, TrainJob, ema_step

__all__ = ["build"]


def _build_model(cfg: TrainConfig, base: BaseConfig) -> nn.Module:
    if "in_channels" in cfg.model_args:
        raise ConfigError("train.model_args must not set in_channels: it follows train.inputs")
    torch.manual_seed(base.seed)
    try:
        model = build_model(cfg.model, in_channels=input_channels(cfg.inputs), **cfg.model_args)
    except ModelError as exc:
        key = "train.model" if cfg.model not in list_models() else "train.model_args"
        raise ConfigError(f"{key}: {exc}") from None
    if cfg.init != "none":
        _load_init(model, cfg)
    return model


def _load_init(model: nn.Module, cfg: TrainConfig) -> None:
    """Start from a checkpoint's weights (``train.init``): fine-tuning, or continuing on other data."""
    if cfg.init == "shipped":
        from lowlight.inference.shipped import NETWORK, WEIGHTS_DIR

        path = WEIGHTS_DIR / NETWORK  # not a dvc.yaml dep: like data.path, a path named in params
    else:
        path = Path(cfg.init)
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"train.init: {exc}") from None
    mine = {"model": model.model_name, "model_args": model.model_args}
    theirs = {"model": ckpt["model"], "model_args": {"in_channels": input_channels(ckpt["inputs"]),
                                                     **ckpt["model_args"]}}
    if mine != theirs:
        raise ConfigError(f"train.init: {path} holds {theirs['model']} {theirs['model_args']}, but train.model and "
                          f"train.model_args make {mine['model']} {mine['model_args']}; set them alike or "
                          "train.init: none")
    model.load_state_dict(ckpt["state_dict"])


def build(job: TrainJob, ranks: Ranks, device: torch.device) -> Run:
    """Everything a run builds once: model (and its init weights), data, optimiser, schedule, EMA, loader."""
    cfg, base, data_root, mapped_root = job.cfg, job.base, job.data_root, job.mapped_root
    model = _build_model(cfg, base)  # first: a bad train.model stops before any data is read
    train_data = load_split(data_root, mapped_root, "train", cfg.inputs)
    val_data = load_split(data_root, mapped_root, "val", cfg.inputs)
    if cfg.target_exposure == "mapped":  # train targets only: validation scores against the references as shot
        train_data = at_mapped_exposure(train_data)
    check_crop(train_data, cfg.crop_size)
    if cfg.loss == "l1_ssim" and cfg.crop_size < 11:
        raise ConfigError(f"train.crop_size {cfg.crop_size} is below the 11-pixel SSIM window of loss l1_ssim")
    params = {"train": to_dict(cfg), "base": to_dict(base), **job.extra_params}
    # what must be equal for a saved state to be continued (the worker count does not change results)
    identity = {"train": {k: v for k, v in params["train"].items() if k != "num_workers"}, "seed": base.seed,
                "world": ranks.world, "data": fingerprint(train_data, val_data), "code": code_digest(cfg.model)}

    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    plateau = None
    if cfg.schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor,
                                                             patience=cfg.plateau_patience)
    ema = AveragedModel(model, multi_avg_fn=ema_step(cfg.ema_decay), use_buffers=True) if cfg.ema_decay else None
    amp = amp_dtype(device, cfg.amp)
    net: nn.Module = model
    if ranks.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    # a fixed number of crops per epoch, split between the ranks
    per_rank = cfg.batch_size * (cfg.steps_per_epoch or math.ceil(len(train_data) / (cfg.batch_size * ranks.world)))
    ctx = contexts(train_data.inputs) if uses_context(model) else None
    dataset = CropDataset(train_data.inputs, train_data.targets, cfg.crop_size, per_rank * ranks.world, base.seed, ctx)
    sampler = DistributedSampler(dataset, num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=base.seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda", drop_last=True)
    return Run(cfg, base, ranks, device, model, net, ema, optimizer, plateau,
               torch.amp.GradScaler("cuda", enabled=amp == torch.float16), amp, build_loss(cfg.loss, cfg.color_weight),
               train_data, val_data, dataset, sampler, loader, job.outputs, job.tracker, params, identity)


def code_digest(model_name: str) -> str:
    """Digest of the sources that decide what a training state means (the model's file, the loop, losses, data).

    A state saved before one of them changed (a new default width, say) must not be continued.
    """
    import inspect

    from lowlight.training import data as train_data, losses
    from lowlight.models import model_class

    h = hashlib.blake2b(digest_size=16)
    here = Path(__file__).parent
    for source in (inspect.getsourcefile(model_class(model_name)), inspect.getsourcefile(losses),
                   inspect.getsourcefile(train_data), here / "loop.py", here / "state.py", here / "resume.py", __file__):
        h.update(Path(source).read_bytes())
    return h.hexdigest()
