"""What a person picks for enhancing, and how each choice is checked: the weight files, the
device, the strength, the anchor a checkpoint carries, and the :class:`EnhanceError` they
raise (one line on the command line). Used by the enhancer, ``lowlight enhance`` and the app."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from lowlight.errors import UserError
from lowlight.inference import shipped

__all__ = ["EnhanceError", "WEIGHTS_DIR", "STRENGTH_MAX", "default_weights", "resolve_weights", "resolve_device",
           "check_strength", "check_shadows", "check_exposure", "check_anchor", "checkpoint_anchor", "providers_for"]

WEIGHTS_DIR = shipped.WEIGHTS_DIR

STRENGTH_MAX = 1.5
"""Above 1 the enhancement is extrapolated (brighter still); past 1.5 highlights clip badly."""


class EnhanceError(UserError, ValueError):
    """A setting or file for enhancing that the person can fix (device, weights, strength);
    the command line prints it as one line."""


def default_weights() -> tuple[Path, Path]:
    """The shipped quantile model and network as the ONNX files the tool runs (trained on LOL by this
    pipeline; the ``.ubj`` and ``.pt`` beside them are for fine-tuning)."""
    q, n = WEIGHTS_DIR / shipped.QUANTILE_MODEL_ONNX, WEIGHTS_DIR / shipped.NETWORK_ONNX
    missing = [str(p) for p in (q, n) if not p.is_file()]
    if missing:
        raise EnhanceError(f"shipped weights are missing: {', '.join(missing)}; reinstall lowlight or "
                           "pass --weights and --quantile-model")
    return q, n


def resolve_weights(quantile_model: str | Path | None, network: str | Path | None) -> tuple[Path, Path]:
    """The files to load: the ones given (``--quantile-model``, ``--weights``), the shipped ones for the
    others; a missing file is an EnhanceError naming its flag."""
    if quantile_model is None or network is None:
        shipped_q, shipped_n = default_weights()
        quantile_model, network = quantile_model or shipped_q, network or shipped_n
    for flag, path in (("--quantile-model", quantile_model), ("--weights", network)):
        if not Path(path).is_file():
            raise EnhanceError(f"{flag} {path}: file does not exist")
    return Path(quantile_model), Path(network)


def resolve_device(device: str) -> str:
    """``'auto'`` (CUDA when ONNX Runtime has its CUDA provider), ``'cpu'`` or ``'cuda'`` (``cuda:N``: that GPU);
    an unusable choice is an EnhanceError of one line."""
    kind = str(device).split(":")[0]
    if device != "auto" and kind not in ("cpu", "cuda"):
        raise EnhanceError(f"--device {device}: unknown device; use --device cpu, cuda or auto")
    if kind == "cpu":
        return "cpu"
    import onnxruntime

    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise EnhanceError(f"--device {device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu "
                           "instead of onnxruntime); use --device cpu or auto")
    return str(device)


def providers_for(device: str) -> list:
    """ONNX Runtime's execution providers for a device :func:`resolve_device` accepts."""
    device = resolve_device(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    index = int(device.split(":")[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def check_strength(strength) -> float:
    """``strength`` as a float in [0, STRENGTH_MAX]; anything else is an EnhanceError."""
    ok = isinstance(strength, numbers.Real) and not isinstance(strength, bool) and math.isfinite(strength)
    if not ok or not 0 <= strength <= STRENGTH_MAX:
        raise EnhanceError(f"--strength {strength!r}: must be a number from 0 (the input unchanged) to "
                           f"{STRENGTH_MAX:g}; 1 is the full enhancement")
    return float(strength)


def check_shadows(amount) -> float | None:
    """The shadow lift's ``amount`` (:mod:`lowlight.inference.shadows`) as a float in [0, SHADOWS_MAX], or None
    (auto); anything else is an EnhanceError."""
    from lowlight.inference.shadows import SHADOWS_MAX

    if amount is None:
        return None
    ok = isinstance(amount, numbers.Real) and not isinstance(amount, bool) and math.isfinite(amount)
    if not ok or not 0 <= amount <= SHADOWS_MAX:
        raise EnhanceError(f"--shadows {amount!r}: must be a number from 0 (off) to {SHADOWS_MAX:g}; leave it out "
                           "for auto, which lifts the shadows of dark photos only")
    return float(amount)


def check_exposure(ev) -> float:
    """The exposure compensation ``ev`` (stops, :func:`lowlight.inference.exposure.compensate_exposure`) as a
    float in [-EXPOSURE_MAX, EXPOSURE_MAX]; anything else is an EnhanceError."""
    from lowlight.inference.exposure import EXPOSURE_MAX

    ok = isinstance(ev, numbers.Real) and not isinstance(ev, bool) and math.isfinite(ev)
    if not ok or not -EXPOSURE_MAX <= ev <= EXPOSURE_MAX:
        raise EnhanceError(f"--exposure {ev!r}: must be a number of stops from -{EXPOSURE_MAX:g} to "
                           f"{EXPOSURE_MAX:g} (0: the tool's own exposure, 1: twice the light)")
    return float(ev)


def check_anchor(anchor, what: str = "exposure_anchor", fix: str = "") -> float:
    """``anchor`` as a float in [0, 1] (:mod:`lowlight.inference.exposure`); anything else is an EnhanceError."""
    if isinstance(anchor, bool) or not isinstance(anchor, numbers.Real) or not 0 <= anchor <= 1:
        raise EnhanceError(f"{what} is {anchor!r}, not a number from 0 to 1{fix}")
    return float(anchor)


def checkpoint_anchor(path: Path, meta: dict) -> float:
    """The checkpoint's ``train.exposure_anchor``; 0 for one from before it (validated without it)."""
    train = (meta.get("params") or {}).get("train")
    anchor = train.get("exposure_anchor", 0.0) if isinstance(train, dict) else 0.0
    return check_anchor(anchor, f"{path}: params train.exposure_anchor",
                        "; the checkpoint is damaged or was not written by lowlight")
