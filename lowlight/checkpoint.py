"""Checkpoints that rebuild their model from the file alone, loaded without running pickled code.

A checkpoint is a plain dict saved with ``torch.save``::

    format, version      "lowlight-checkpoint", 1
    model, model_args    registry name and constructor arguments (lowlight.models.build_model)
    inputs               'low' | 'mapped' | 'low+mapped': what the network is fed
    params               the training params used (nested dicts of plain values)
    metrics              e.g. best validation PSNR/SSIM and the epoch they came from
    state_dict           the weights
    + for resuming       epoch, optimizer, scheduler, scaler, train_state, ...

Following nanoGPT, the constructor arguments travel with the weights. Loading
uses ``torch.load(weights_only=True)``: tensors and plain containers only, so a
file crafted to run code when unpickled is refused with a message naming it.

Denormal numbers (|x| < 1.2e-38 in float32) make CPU arithmetic tens of times
slower; weights that decayed towards zero can end up there. They are set to
zero when saving, and :func:`load_checkpoint` turns on flush-to-zero for CPU
inference (``torch.set_flush_denormal``, process-wide) so activations do not
produce new ones.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .atomic import OutputError, atomic_path
from .errors import DataError
from .models import ModelError, build_model
from .models.padding import unwrap

__all__ = ["FORMAT", "VERSION", "CheckpointError", "save_checkpoint", "read_checkpoint", "load_checkpoint",
           "load_model"]

FORMAT = "lowlight-checkpoint"
VERSION = 1
INPUTS = ("low", "mapped", "low+mapped")
_REQUIRED = ("model", "model_args", "inputs", "state_dict")


class CheckpointError(DataError):
    """A checkpoint file that cannot be used; one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        self.problems = [f"{path}: {problem}"]
        ValueError.__init__(self, f"{path}: {problem}")


def _plain_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies with denormal floats set to zero."""
    out = {}
    for key, t in state.items():
        t = t.detach().to("cpu", copy=True)
        if t.is_floating_point():
            t[(t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)] = 0
        out[key] = t
    return out


def save_checkpoint(path: str | os.PathLike, model: nn.Module, inputs: str, params: Mapping[str, Any] | None = None,
                    metrics: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (built by :func:`build_model`) atomically; ``extra`` adds resume state."""
    raw = unwrap(model)
    if not hasattr(raw, "model_name"):
        raise TypeError("save_checkpoint needs a model made by lowlight.models.build_model")
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": raw.model_name,
        "model_args": dict(raw.model_args),
        "inputs": inputs,
        "params": dict(params or {}),
        "metrics": dict(metrics or {}),
        "state_dict": _plain_state(raw.state_dict()),
    }
    clash = set(extra or {}) & set(ckpt)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with the standard ones: {sorted(clash)}")
    ckpt.update(extra or {})
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(ckpt, tmp)
        except RuntimeError as exc:  # torch reports a failed write (disk full, quota) this way
            raise OutputError(f"{path}: cannot write ({exc})") from exc
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint's dict; refuse anything that is not tensors and plain values."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist" if not path.exists() else "is not a file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # not a pickle at all, or a damaged one
            raise CheckpointError(path, "not a readable PyTorch checkpoint (damaged, or not written by "
                                        "torch.save)") from None
        raise CheckpointError(path, f"refused: loading it would run pickled code ({found.group(1)}); a lowlight "
                                    "checkpoint holds only tensors and plain values. Load such a file with "
                                    "torch.load(weights_only=False) only if you trust where it came from") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(path, f"not a lowlight checkpoint (no 'format': {FORMAT!r} entry); it may be a "
                                    "bare state_dict or another project's file")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(path, f"written by a newer lowlight (checkpoint version {ckpt['version']}, "
                                    f"this one reads up to {VERSION})")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"incomplete checkpoint, missing {', '.join(missing)}")
    if ckpt["inputs"] not in INPUTS:
        raise CheckpointError(path, f"unknown inputs {ckpt['inputs']!r}; expected one of {', '.join(INPUTS)}")
    return ckpt


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    channels_last: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, in eval mode on ``device``; also return its description.

    The description is the checkpoint without tensors: ``model``, ``model_args``,
    ``inputs`` (what to feed the network, see :func:`lowlight.train_data.stack_inputs`),
    ``params`` and ``metrics``. The model also carries ``model_name``,
    ``model_args`` and ``inputs`` as attributes.
    """
    device = torch.device(device)
    ckpt = read_checkpoint(path, map_location=device)
    try:
        model = build_model(ckpt["model"], **ckpt["model_args"])
    except ModelError as exc:
        raise CheckpointError(path, f"cannot rebuild its model: {exc}") from exc
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit model {ckpt['model']!r}: "
                                    f"{str(exc).splitlines()[0]}") from exc
    model.inputs = ckpt["inputs"]
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    model = model.to(device)
    if channels_last:
        # several times faster convolutions on CPU (oneDNN) and on GPU tensor cores
        model = model.to(memory_format=torch.channels_last)
    meta = {k: ckpt[k] for k in ("model", "model_args", "inputs", "params", "metrics", "version") if k in ckpt}
    return model.eval(), meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Just the model of :func:`load_checkpoint`, in eval mode."""
    return load_checkpoint(path, device)[0]
