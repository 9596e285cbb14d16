"""Checkpoints that rebuild their model from the file alone, loaded without running pickled code.

A checkpoint is a plain dict saved with ``torch.save``::

    format, version      "lowlight-checkpoint", 1
    model, model_args    registry name and constructor arguments (lowlight.models.build_model)
    inputs               'low' | 'mapped' | 'low+mapped': what the network is fed
    params               the training params used (nested dicts of plain values)
    metrics              e.g. best validation PSNR/SSIM and the epoch they came from
    state_dict           the weights
    + for resuming       epoch, optimizer, scheduler, scaler, train_state, ...

Following nanoGPT, the constructor arguments travel with the weights. Loading uses
``torch.load(weights_only=True)``: a file crafted to run code when unpickled is refused by name.

Denormal numbers (|x| < 1.2e-38 in float32) make CPU arithmetic tens of times slower:
they are zeroed when saving, and :func:`load_checkpoint` turns on flush-to-zero for CPU
inference (``torch.set_flush_denormal``, process-wide).
"""

from __future__ import annotations

import inspect
import os
import pickle
import pickletools
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lowlight.config import INPUT_KINDS
from lowlight.atomic import OutputError, atomic_path
from lowlight.errors import DataError, short_repr
from lowlight.models import build_model, model_class
from lowlight.models.padding import unwrap
from lowlight.models.skeleton import SkeletonError, meta_model

__all__ = ["FORMAT", "VERSION", "CheckpointError", "save_checkpoint", "read_checkpoint", "load_checkpoint",
           "load_model"]

FORMAT = "lowlight-checkpoint"
VERSION = 1
INPUTS = INPUT_KINDS
_REQUIRED = ("model", "model_args", "inputs", "state_dict")
# Bounds for files from elsewhere. The largest registered model (unet_large) has 1.1 M
# parameters; a 50 M-parameter model with its AdamW and EMA state is 0.8 GB.
MAX_PARAMETERS = 50_000_000
MAX_TENSORS = 4096  # parameters, buffers and modules; the registered models have 66 to 168
MAX_CHECKPOINT_BYTES = 2 * 2**30
# what torch's weights-only unpickler says when it refuses a global, a call or an opcode
_REFUSED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|unsupported GLOBAL ([\w.]+)|Unsupported operand (\d+)|"
                      r"call reduce for unrecognized function|Can only \w+|persistent_load|persistent id|"
                      r"allowlisted|not an allowed global")


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


def _refusal(exc: BaseException) -> str | None:
    """What torch's weights-only unpickler refused (a global, a call, an opcode), or None for damage."""
    text = str(exc)
    found = _REFUSED.search(text)
    if found is None:
        return None
    if found.group(1) or found.group(2):
        return f"it imports {found.group(1) or found.group(2)}"
    if found.group(3):
        if chr(int(found.group(3))) not in pickletools.code2op:
            return None  # not an opcode of any pickle protocol: damage, not a refusal
        return f"pickle opcode {found.group(3)}, which a weights-only load does not allow"
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return (detail.group(1).strip() if detail else found.group(0))[:160]


def _check_fields(path: Path, ckpt: dict) -> None:
    """The types of a checkpoint's standard entries: a crafted file must not reach a constructor with a list."""
    version = ckpt.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(path, f"'version' must be a whole number, got {short_repr(version)}")
    if version > VERSION:
        raise CheckpointError(path, f"written by a newer lowlight (checkpoint version {version}, "
                                    f"this one reads up to {VERSION})")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"incomplete checkpoint, missing {', '.join(missing)}")
    if not isinstance(ckpt["model"], str):
        raise CheckpointError(path, f"'model' must be a model name, got {short_repr(ckpt['model'])}")
    args = ckpt["model_args"]
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise CheckpointError(path, f"'model_args' must map argument names to values, got {short_repr(args)}")
    if not isinstance(ckpt["inputs"], str) or ckpt["inputs"] not in INPUTS:
        raise CheckpointError(path, f"unknown inputs {short_repr(ckpt['inputs'])}; expected one of {', '.join(INPUTS)}")
    for key in ("params", "metrics"):
        if not isinstance(ckpt.get(key, {}), dict):
            raise CheckpointError(path, f"'{key}' must be a mapping, got {short_repr(ckpt[key])}")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(path, "'state_dict' must map parameter names to tensors")
    if len(state) > MAX_TENSORS:
        raise CheckpointError(path, f"{len(state)} weight tensors; lowlight models have at most {MAX_TENSORS}")
    # NaN or infinite weights make every output NaN, which uint8 rounding turns into black images
    for key, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(path, f"weight {short_repr(key)} holds NaN or infinite values (training "
                                        "diverged, or the file is damaged); retrain or use another checkpoint")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint's dict; refuse anything that is not tensors and plain values."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist" if not path.exists() else "is not a file")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(path, f"{path.stat().st_size / 2**30:.1f} GiB, larger than any lowlight checkpoint "
                                    f"({MAX_CHECKPOINT_BYTES // 2**30} GiB at most)")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read it ({exc.strerror or exc})") from None
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever a crafted or damaged file makes torch raise
        refused = _refusal(exc) if isinstance(exc, pickle.UnpicklingError) else None
        if refused is not None and refused.startswith("pickle opcode") and not (head == b"PK\x03\x04"
                                                                               or head[:1] == b"\x80"):
            refused = None  # neither a zip nor a pickle: its first byte read as an opcode (a text file, say)
        if refused is None and isinstance(exc, (TypeError, AttributeError)):
            # the only calls a weights-only load makes are REDUCEs of allowed globals; a crafted one fails so
            refused = f"a pickled call that fails ({type(exc).__name__}: {str(exc)[:100]})"
        if refused is not None:
            raise CheckpointError(path, f"refused: loading it would run code ({refused}); a lowlight checkpoint "
                                        "holds only tensors and plain values. Load such a file with "
                                        "torch.load(weights_only=False) only if you trust where it came from") from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S.*)", str(exc))
        first = detail.group(1) if detail else (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
        raise CheckpointError(path, f"not a readable PyTorch checkpoint (damaged, or not written by torch.save; "
                                    f"{type(exc).__name__}{': ' + first[:160] if first else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(path, f"not a lowlight checkpoint (no 'format': {FORMAT!r} entry); it may be a "
                                    "bare state_dict or another project's file")
    _check_fields(path, ckpt)
    return ckpt


def _check_fit(path: Path, ckpt: dict, skeleton: nn.Module) -> None:
    """The file's weights against the model its arguments describe, and its channels against its inputs."""
    from lowlight.training.data import input_channels

    name, args = ckpt["model"], ckpt["model_args"]
    expected = {k: tuple(t.shape) for k, t in skeleton.state_dict().items()}
    found = {k: tuple(t.shape) for k, t in ckpt["state_dict"].items()}
    problems = []
    if set(expected) - set(found):
        problems.append(f"missing {', '.join(short_repr(k) for k in sorted(set(expected) - set(found))[:3])}")
    if set(found) - set(expected):
        problems.append(f"unexpected {', '.join(short_repr(k) for k in sorted(set(found) - set(expected))[:3])}")
    shapes = [k for k in expected if k in found and expected[k] != found[k]]
    if shapes:
        k = shapes[0]
        problems.append(f"{short_repr(k)} is {list(found[k])} in the file, {list(expected[k])} in the model")
    if problems:
        raise CheckpointError(path, f"weights do not fit model {name!r}: {'; '.join(problems)}")
    default = inspect.signature(model_class(name)).parameters.get("in_channels", inspect.Parameter.empty).default
    declared, wanted = args.get("in_channels", default), input_channels(ckpt["inputs"])
    if declared != wanted:  # the network would fail on the first image, after the batch started
        raise CheckpointError(path, f"inputs {ckpt['inputs']!r} feed {wanted} channels but its model takes "
                                    f"in_channels={short_repr(declared)}; the file is inconsistent")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    channels_last: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, in eval mode on ``device``; also return its description.

    The description is the checkpoint without tensors: ``model``, ``model_args``,
    ``inputs`` (what to feed the network, see :func:`lowlight.training.data.stack_inputs`),
    ``params`` and ``metrics``. The model also carries ``model_name``,
    ``model_args`` and ``inputs`` as attributes.

    The model is first built on the ``meta`` device (no memory) and checked against
    the weights in the file; only a model that fits is built for real.
    """
    device = torch.device(device)
    path = Path(path)
    ckpt = read_checkpoint(path, map_location=device)
    try:
        skeleton = meta_model(ckpt["model"], ckpt["model_args"], MAX_PARAMETERS, MAX_TENSORS)
    except SkeletonError as exc:
        raise CheckpointError(path, str(exc)) from None
    _check_fit(path, ckpt, skeleton)
    model = build_model(ckpt["model"], **ckpt["model_args"])
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
